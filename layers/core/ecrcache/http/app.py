"""The REST API: one Powertools resolver, a router per resource, one error table.

``functions/api/app.py`` wires adapters into :class:`DesiredStateService` and :class:`PlanService`
(over ECR readers: the API holds nothing that can write ECR) and calls :func:`create_app`; the local
stack serves the very same resolver.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, SecurityScheme, Server, Tag
from aws_lambda_powertools.utilities.typing import LambdaContext

import ecrcache
from ecrcache.errors import EcrcacheError
from ecrcache.http.common import normalise_body
from ecrcache.http.errors import ErrorResponse, register_error_handlers
from ecrcache.http.routes import control, credentials, desired_state, history, meta, rules, warm_sets
from ecrcache.ports import StatusStore
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.importer import ImportService
from ecrcache.services.plan import PlanService

TITLE = "ecrcache API"
DESCRIPTION = (
    "Desired state for Amazon ECR pull-through cache: cache rules, upstream credentials, warm sets, "
    "and the whole document for GitOps. Every method is authorised with AWS IAM (SigV4). Writes are "
    "conditional with `If-Match` (the `ETag` of the version read) and `If-None-Match: *` (create only)."
)
TAGS: list[Tag | str] = [
    Tag(name="rules", description="Pull-through cache rules, one per ECR repository prefix"),
    Tag(name="credentials", description="Upstream registry credentials (tokens are write-only)"),
    Tag(name="warm-sets", description="Images to pull through the cache on a schedule"),
    Tag(name="desired-state", description="The whole desired state as one document"),
    Tag(name="history", description="Every change, who made it, before and after"),
    Tag(name="controller", description="The plan, reconcile runs and the status of every rule"),
]

SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "sigv4": APIKey.model_validate(
        {
            "name": "Authorization",
            "in": APIKeyIn.header,
            "description": "AWS Signature Version 4 (service `execute-api`); API Gateway authorises with AWS_IAM.",
        }
    )
}
SECURITY: list[dict[str, list[str]]] = [{"sigv4": []}]


def create_app(
    service: DesiredStateService,
    *,
    planner: PlanService,
    importer: ImportService,
    status: StatusStore,
    clock: Callable[[], datetime],
) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    register_error_handlers(app)
    rules.register(app, service)
    credentials.register(app, service)
    warm_sets.register(app, service)
    desired_state.register(app, service, planner)
    history.register(app, service)
    control.register(app, planner=planner, importer=importer, status=status, clock=clock)
    meta.register(app, openapi_json=lambda: openapi_json(app))
    app.enable_swagger(
        path="/v1/docs",
        title=TITLE,
        version=ecrcache.__version__,
        description=DESCRIPTION,
        tags=TAGS,
        security_schemes=SECURITY_SCHEMES,
        security=SECURITY,
    )
    return app


def openapi_json(app: APIGatewayRestResolver) -> str:
    return app.get_openapi_json_schema(
        title=TITLE,
        version=ecrcache.__version__,
        description=DESCRIPTION,
        tags=TAGS,
        servers=[
            Server(
                url="/", description="The API stage root: https://<api-id>.execute-api.<region>.amazonaws.com/<stage>"
            )
        ],
        security_schemes=SECURITY_SCHEMES,
        security=SECURITY,
    )


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Route one API Gateway event; body problems found before routing get the same error shape."""
    try:
        normalise_body(event)
    except EcrcacheError as exc:
        body = ErrorResponse(code=exc.code, message=exc.message, details=[]).model_dump_json()
        return {
            "statusCode": exc.status,
            "multiValueHeaders": {"Content-Type": ["application/json"]},
            "body": body,
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


__all__ = ["create_app", "openapi_json", "resolve"]

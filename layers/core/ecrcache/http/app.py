"""The REST API: one Powertools resolver, a router per resource, one error table.

``functions/api/app.py`` wires adapters into :class:`DesiredStateService` and :class:`PlanService`
(over ECR readers: the API holds nothing that can write ECR) and calls :func:`create_app`; the local
stack serves the very same resolver.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

import ecrcache
from ecrcache.errors import EcrcacheError
from ecrcache.http.common import normalise_body
from ecrcache.http.errors import proxy_error, register_error_handlers, request_id
from ecrcache.http.routes import control, credentials, desired_state, history, meta, pulls, rotations, rules, warm_sets
from ecrcache.observability import count_by, logger
from ecrcache.parsing import JSON_MEDIA_TYPES, YAML_MEDIA_TYPES
from ecrcache.ports import CredentialHealthReader, StatusStore, WarmRunStore
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.importer import ImportService
from ecrcache.services.plan import PlanService
from ecrcache.services.pull_stats import PullStatsService
from ecrcache.services.rotations import RotationsService
from ecrcache.services.warm_runs import WarmRunsService

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI, SecurityScheme, Tag

TITLE = "ecrcache API"
DESCRIPTION = (
    "Desired state for Amazon ECR pull-through cache: cache rules, upstream credentials, warm sets, "
    "and the whole document for GitOps. Every method is authorised with AWS IAM (SigV4). Writes are "
    "conditional with `If-Match` (the `ETag` of the version read) and `If-None-Match: *` (create only)."
)
TAGS: Final = (
    ("rules", "Pull-through cache rules, one per ECR repository prefix"),
    ("credentials", "Upstream registry credentials (tokens are write-only)"),
    ("warm-sets", "Images to pull through the cache on a schedule"),
    ("desired-state", "The whole desired state as one document"),
    ("history", "Every change, who made it, before and after"),
    ("controller", "The plan, reconcile runs and the status of every rule"),
    ("pulls", "Pull statistics: the most pulled images of each rule, per day"),
)
"""The operations' tags (name, description): Powertools' ``Tag`` models are made by :func:`tags`."""


# Powertools' OpenAPI models (aws_lambda_powertools.event_handler.openapi.models: a few dozen pydantic models, built
# when imported) describe the API; only the description's routes (/v1/openapi.json, /v1/docs) and the CLI use them,
# not the requests: they are imported there, on first use (cold start).
@cache
def tags() -> list[Tag | str]:
    from aws_lambda_powertools.event_handler.openapi.models import Tag  # noqa: PLC0415 -- on first use (cold start)

    return [Tag(name=name, description=description) for name, description in TAGS]


@cache
def security_schemes() -> dict[str, SecurityScheme]:
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn  # noqa: PLC0415 -- on first use

    return {
        "sigv4": APIKey.model_validate(
            {
                "name": "Authorization",
                "in": APIKeyIn.header,
                "description": "AWS Signature Version 4 (service `execute-api`); API Gateway authorises with AWS_IAM.",
            }
        )
    }


SECURITY: list[dict[str, list[str]]] = [{"sigv4": []}]


class ApiResolver(APIGatewayRestResolver):
    """The resolver, describing every body type its routes accept: JSON, and YAML alike (:mod:`ecrcache.parsing`).

    Powertools documents one media type per request body; every body goes through the same parser before
    routing, so each ``application/json`` request body is also listed under each YAML media type.
    """

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        from aws_lambda_powertools.event_handler.openapi.models import RequestBody  # noqa: PLC0415 -- on first use

        schema = super().get_openapi_schema(*args, **kwargs)
        for item in (schema.paths or {}).values():
            for operation in (item.get, item.put, item.post, item.patch, item.delete):
                body = operation.requestBody if operation is not None else None
                if isinstance(body, RequestBody) and JSON_MEDIA_TYPES[0] in body.content:
                    for media in YAML_MEDIA_TYPES:
                        body.content.setdefault(media, body.content[JSON_MEDIA_TYPES[0]])
        return schema

    def enable_swagger_on_first_use(self, path: str, options: Callable[[], dict[str, Any]]) -> None:
        """Powertools' Swagger UI at ``path`` (``enable_swagger(path=path, **options())``), made on its first request.

        ``enable_swagger`` imports Powertools' OpenAPI models when it is called (a cold start would build them for a
        page few invocations serve): the route is registered now, and Powertools' own handler is made on the first
        request there, with the resolver's ``get`` borrowed for that call so that the handler is kept, not registered
        a second time (the same route options as ``enable_swagger``'s: not in the schema, no middlewares, no
        compression)."""
        made: list[Callable[[], Any]] = []

        def keep(*_: Any, **__: Any) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
            def register(handler: Callable[[], Any]) -> Callable[[], Any]:
                made.append(handler)
                return handler

            return register

        @self.get(path, include_in_schema=False)
        def swagger() -> Response[Any]:
            if not made:
                vars(self)["get"] = keep
                try:
                    APIGatewayRestResolver.enable_swagger(self, path=path, **options())
                finally:
                    del vars(self)["get"]
                if len(made) != 1:  # Powertools registers its handler otherwise: its Swagger UI would be missing
                    raise RuntimeError("enable_swagger registered no handler through the resolver's get")
            result: Response[Any] = made[0]()
            return result


def create_app(
    service: DesiredStateService,
    *,
    planner: PlanService,
    importer: ImportService,
    status: StatusStore,
    pull_stats: PullStatsService,
    warm_runs: WarmRunStore,
    clock: Callable[[], datetime],
    rotation_service: RotationsService | None = None,
    health: CredentialHealthReader | None = None,
) -> APIGatewayRestResolver:
    """``rotation_service``: ``None`` leaves out the rotation routes (a resolver built for one test)."""
    app = ApiResolver(enable_validation=True)
    register_error_handlers(app)
    runs = WarmRunsService(desired=service.store, runs=warm_runs, clock=clock)
    rules.register(app, service)
    credentials.register(app, service, health=health, clock=clock)
    if rotation_service is not None:
        rotations.register(app, rotation_service)
    warm_sets.register(app, service, runs)
    desired_state.register(app, service, planner)
    history.register(app, service)
    control.register(app, planner=planner, importer=importer, status=status, warm=runs, clock=clock)
    pulls.register(app, pull_stats, clock=clock)
    meta.register(app, openapi_json=lambda: openapi_json(app))
    app.enable_swagger_on_first_use(
        "/v1/docs",
        lambda: {
            "title": TITLE,
            "version": ecrcache.__version__,
            "description": DESCRIPTION,
            "tags": tags(),
            "security_schemes": security_schemes(),
            "security": SECURITY,
        },
    )
    return app


def openapi_json(app: APIGatewayRestResolver) -> str:
    from aws_lambda_powertools.event_handler.openapi.models import Server  # noqa: PLC0415 -- on first use (cold start)

    return app.get_openapi_json_schema(
        title=TITLE,
        version=ecrcache.__version__,
        description=DESCRIPTION,
        tags=tags(),
        servers=[
            Server(
                url="/", description="The API stage root: https://<api-id>.execute-api.<region>.amazonaws.com/<stage>"
            )
        ],
        security_schemes=security_schemes(),
        security=SECURITY,
    )


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Route one API Gateway event and count its answer (``ApiRequests`` by ``status_class``: 2xx, 4xx, 5xx)."""
    response = _resolve(app, event, context)
    status = response.get("statusCode")
    status_class = f"{status // 100}xx" if isinstance(status, int) else "5xx"
    count_by("ApiRequests", dimension="status_class", value=status_class, count=1)
    return response


def _resolve(app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Body problems found before routing get the one error shape, and so does anything that escapes the
    resolver (a 500 naming the request id, never API Gateway's bare 502)."""
    try:
        normalise_body(event)
        return app.resolve(event, context)
    except EcrcacheError as exc:
        return proxy_error(exc, request_id(event, context))
    except Exception:
        # The last resort: whatever escaped (the body parser, Powertools' own validation or serialisation, an
        # error handler) is logged with the request id and answered in the error shape, without its text.
        correlation = request_id(event, context)
        logger.exception("unhandled error outside the routes", extra={"request_id": correlation})
        return proxy_error(None, correlation)


__all__ = ["ApiResolver", "create_app", "openapi_json", "request_id", "resolve"]

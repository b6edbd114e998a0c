"""`/v1/rules`: one pull-through cache rule per ECR repository prefix (`%2F` for `/`, or `ROOT`)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from pydantic import ValidationError

from ecrcache.errors import InvalidInputError, field_errors_from_pydantic
from ecrcache.http.common import caller_arn, json_response, path_name, precondition
from ecrcache.http.errors import responses
from ecrcache.http.schemas import RuleList, RuleResource
from ecrcache.models.common import parse_ecr_prefix
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.services.desired_state import DesiredStateService

PrefixParam = Annotated[
    str,
    Path(description="ECR repository prefix, percent-encoded (`team%2Fdocker-hub`), or `ROOT`.", max_length=100),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description='Version to replace, e.g. "3".')]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", description='"*" to create only.')]
UndocumentedIfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", include_in_schema=False)]
"""A delete evaluates ``If-None-Match`` too, as it always has (``*`` fails: the item exists; anything
else is a 422); the spec does not advertise it there, where it is of no use."""


def register(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.get("/v1/rules", tags=["rules"], summary="List rules", responses=responses(RuleList))
    def list_rules() -> RuleList:
        return RuleList(items=[RuleResource.of(r) for r in service.list_all(ResourceKind.RULE)])

    @app.get("/v1/rules/<prefix>", tags=["rules"], summary="Get a rule", responses=responses(RuleResource))
    def get_rule(prefix: PrefixParam) -> Response[RuleResource]:
        stored = service.get(ResourceKind.RULE, prefix_param(prefix))
        return json_response(RuleResource.of(stored), version=stored.version)

    @app.put(
        "/v1/rules/<prefix>",
        tags=["rules"],
        summary="Create or replace a rule",
        responses=responses(RuleResource, description="Replaced", also={201: RuleResource}),
    )
    def put_rule(
        prefix: PrefixParam,
        spec: Annotated[RuleSpec, Body(description="The desired rule.")],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[RuleResource]:
        result = service.put_rule(
            prefix_param(prefix), spec, actor=caller_arn(app), precondition=precondition(if_match, if_none_match)
        )
        status = 201 if result.created else 200
        return json_response(RuleResource.of(result.resource), status=status, version=result.resource.version)

    @app.delete(
        "/v1/rules/<prefix>",
        tags=["rules"],
        summary="Delete a rule",
        responses=responses(status=204, description="Deleted"),
    )
    def delete_rule(
        prefix: PrefixParam, if_match: IfMatch = None, if_none_match: UndocumentedIfNoneMatch = None
    ) -> Response[None]:
        name = prefix_param(prefix)
        service.delete(
            ResourceKind.RULE, name, actor=caller_arn(app), precondition=precondition(if_match, if_none_match)
        )
        return Response(status_code=204)


def prefix_param(raw: str) -> str:
    """The rule's ECR prefix from the path, normalised as ECR does (`docker-hub/` is `docker-hub`).

    Parsed once per request: the service takes the normalised prefix as it is.
    """
    name = path_name(raw)
    try:
        return parse_ecr_prefix(name)
    except ValidationError as exc:
        details = field_errors_from_pydantic(exc, "prefix")
        raise InvalidInputError(f"prefix: {details[0].message}", details) from None

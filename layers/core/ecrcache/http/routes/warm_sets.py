"""`/v1/warm-sets`: images to pull through the cache ahead of need (desired state)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from ecrcache.http.common import caller_arn, json_response, precondition, resource_name
from ecrcache.http.errors import responses
from ecrcache.http.routes.rules import IfMatch, IfNoneMatch, UndocumentedIfNoneMatch
from ecrcache.http.schemas import WarmSetList, WarmSetResource
from ecrcache.models.records import ResourceKind
from ecrcache.models.warm_set import WarmSetSpec
from ecrcache.services.desired_state import DesiredStateService

NameParam = Annotated[str, Path(description="Warm-set name.", max_length=100)]


def register(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.get("/v1/warm-sets", tags=["warm-sets"], summary="List warm sets", responses=responses(WarmSetList))
    def list_warm_sets() -> WarmSetList:
        return WarmSetList(items=[WarmSetResource.of(w) for w in service.list_all(ResourceKind.WARM_SET)])

    @app.get("/v1/warm-sets/<name>", tags=["warm-sets"], summary="Get a warm set", responses=responses(WarmSetResource))
    def get_warm_set(name: NameParam) -> Response[WarmSetResource]:
        stored = service.get(ResourceKind.WARM_SET, resource_name(name))
        return json_response(WarmSetResource.of(stored), version=stored.version)

    @app.put(
        "/v1/warm-sets/<name>",
        tags=["warm-sets"],
        summary="Create or replace a warm set (its rule must exist)",
        responses=responses(WarmSetResource, description="Replaced", also={201: WarmSetResource}),
    )
    def put_warm_set(
        name: NameParam,
        spec: Annotated[WarmSetSpec, Body(description="The desired warm set.")],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[WarmSetResource]:
        result = service.put_warm_set(
            resource_name(name), spec, actor=caller_arn(app), precondition=precondition(if_match, if_none_match)
        )
        body = WarmSetResource.of(result.resource)
        return json_response(body, status=201 if result.created else 200, version=result.resource.version)

    @app.delete(
        "/v1/warm-sets/<name>",
        tags=["warm-sets"],
        summary="Delete a warm set",
        responses=responses(status=204, description="Deleted"),
    )
    def delete_warm_set(
        name: NameParam, if_match: IfMatch = None, if_none_match: UndocumentedIfNoneMatch = None
    ) -> Response[None]:
        cond = precondition(if_match, if_none_match)
        service.delete(ResourceKind.WARM_SET, resource_name(name), actor=caller_arn(app), precondition=cond)
        return Response(status_code=204)

"""`/v1/history`: every write, newest first."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Query

from ecrcache.errors import invalid
from ecrcache.http.errors import responses
from ecrcache.http.schemas import HistoryPage
from ecrcache.models.records import ResourceKind
from ecrcache.services.desired_state import DesiredStateService


def register(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.get("/v1/history", tags=["history"], summary="Change history, newest first", responses=responses(HistoryPage))
    def get_history(
        kind: Annotated[ResourceKind | None, Query(description="Only this kind of resource.")] = None,
        name: Annotated[str | None, Query(description="Only this resource (needs kind).", max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
        next_token: Annotated[str | None, Query(max_length=2048, description="From the previous page.")] = None,
    ) -> HistoryPage:
        if name is not None and kind is None:
            raise invalid("kind", "required when name is given")
        page = service.history(kind, name, limit=limit, next_token=next_token)
        return HistoryPage(items=page.items, next_token=page.next_token)

"""The API's own description: `/v1/openapi.json` (Swagger UI is at `/v1/docs`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types


def register(app: APIGatewayRestResolver, *, openapi_json: Callable[[], str]) -> None:
    @app.get("/v1/openapi.json", include_in_schema=False)
    def get_openapi() -> Response[Any]:
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())

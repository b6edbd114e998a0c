"""A handler never answers API Gateway's bare 502: whatever escapes becomes the one error shape.

A route that raises, a failure in the body parser before routing, or anything escaping the resolver
itself (its validation, serialisation or an error handler) is a ``500 InternalError`` whose message
carries the request id; the log line with the exception carries the same id, and the body carries no
exception text (which could hold a secret).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.http.app import create_app, resolve
from ecrcache.observability import logger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.importer import ImportService
from ecrcache.services.plan import PlanService
from ecrcache.services.pull_stats import PullStatsService
from tests.conftest import FakeLambdaContext
from tests.fakes.ecr_registry import REGION, MemoryEcrReader
from tests.fakes.pull_stats import MemoryPullStatsStore
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemorySecretStore, MemoryStateStore
from tests.fakes.warm import MemoryWarmRunStore
from tests.functional.api.assertions import assert_error
from tests.functional.api.client import ApiResponse, api_event

pytestmark = pytest.mark.functional

SECRET_TEXT = "hunter2-token-value"
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # api_event's requestContext.requestId


CONTEXT = cast(LambdaContext, FakeLambdaContext())


def now() -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC)


def app_with_a_route_that_raises() -> APIGatewayRestResolver:
    """The API on in-memory fakes, plus ``GET /v1/boom`` raising an error whose text holds a secret."""
    service = DesiredStateService(MemoryStateStore(), MemorySecretStore(), now, stack_region=REGION)
    status = MemoryStatusStore()
    reader = MemoryEcrReader()
    planner = PlanService(desired=MemoryStateStore(), status=status, registry=lambda _: reader, stack_region=REGION)
    app = create_app(
        service,
        planner=planner,
        importer=ImportService(service, lambda _: reader, stack_region=REGION),
        status=status,
        pull_stats=PullStatsService(MemoryPullStatsStore(), stack_region=REGION),
        warm_runs=MemoryWarmRunStore(),
        clock=now,
    )

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError(f"cannot connect with {SECRET_TEXT}")

    return app


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the Powertools logger writes (its handler holds the stdout of import time)."""
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    captured = io.StringIO()
    previous = handler.setStream(captured)
    yield captured
    handler.setStream(previous)


def answer(out: dict[str, Any]) -> ApiResponse:
    headers = {k: v[-1] for k, v in (out.get("multiValueHeaders") or {}).items()}
    headers.update(out.get("headers") or {})
    return ApiResponse(out["statusCode"], headers, out.get("body") or "", out)


def assert_internal_error(out: dict[str, Any], logs: io.StringIO) -> None:
    response = answer(out)
    body = assert_error(response, 500, "InternalError")
    assert REQUEST_ID in body["message"]
    assert SECRET_TEXT not in response.text
    logged = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    errors = [entry for entry in logged if entry.get("level") == "ERROR"]
    assert errors, logs.getvalue()
    assert errors[-1]["request_id"] == REQUEST_ID
    assert "exception" in errors[-1]  # the traceback is in the log, where the id leads


def test_a_route_that_raises_is_a_500_with_the_request_id(logs: io.StringIO) -> None:
    # GIVEN the API with a route that raises
    app = app_with_a_route_that_raises()
    # WHEN it is called
    out = resolve(app, api_event("GET", "/v1/boom"), CONTEXT)
    # THEN the answer is the error shape naming the request id, and the log has the exception under that id
    assert_internal_error(out, logs)


def test_an_exception_escaping_the_resolver_is_a_500_not_a_502(
    logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a resolver that fails outside any route (its own validation, serialisation or error handlers)
    app = app_with_a_route_that_raises()

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise ValueError(f"Exceeds the limit (4300 digits) near {SECRET_TEXT}")

    monkeypatch.setattr(app, "resolve", broken)
    # WHEN a request comes in
    out = resolve(app, api_event("GET", "/v1/rules"), CONTEXT)
    # THEN it is still a 500 in the error shape (the exception escaping the handler is API Gateway's bare 502)
    assert_internal_error(out, logs)


def test_an_unexpected_failure_in_the_body_parser_is_a_500(logs: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a body parser that fails unexpectedly
    def broken(event: dict[str, Any]) -> None:
        raise TypeError(f"keys must be str, not date ({SECRET_TEXT})")

    monkeypatch.setattr("ecrcache.http.app.normalise_body", broken)
    # WHEN a body arrives
    out = resolve(app_with_a_route_that_raises(), api_event("PUT", "/v1/rules/quay", body={}), CONTEXT)
    # THEN it is a 500 in the error shape
    assert_internal_error(out, logs)


def test_the_lambda_handler_answers_500_when_the_resolver_fails(
    aws: None, logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the deployed handler, whose resolver fails
    from functions.api import app as api_app

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RecursionError(SECRET_TEXT)

    monkeypatch.setattr(api_app.app, "resolve", broken)
    # WHEN API Gateway invokes it
    out = api_app.lambda_handler(api_event("GET", "/v1/rules"), FakeLambdaContext())
    # THEN it answers the error shape (API Gateway passes it on), not an exception (API Gateway's bare 502)
    assert_internal_error(out, logs)


def test_without_a_request_context_the_lambda_request_id_is_the_correlation_id(logs: io.StringIO) -> None:
    event = api_event("GET", "/v1/boom")
    del event["requestContext"]["requestId"]
    out = resolve(app_with_a_route_that_raises(), event, CONTEXT)
    response = answer(out)
    assert_error(response, 500, "InternalError")
    assert FakeLambdaContext().aws_request_id in response.json["message"]

"""The pull-statistics function and the API on moto: desired rules through the API, as users write them."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import pytest

from ecrcache.observability import metrics
from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient
from tests.pull_events import AT

TOKEN = "test-token-not-a-secret"


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch) -> ApiClient:
    """The api function, its clock at :data:`~tests.pull_events.AT` (the pull events' time)."""
    from functions.api import app

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(AT.timestamp(), tz)

    monkeypatch.setattr(app, "datetime", Frozen)
    return ApiClient(lambda_context)


@pytest.fixture
def rules(api: ApiClient) -> ApiClient:
    """A docker-hub rule (with its credential) in the stack's Region and a quay rule in eu-west-1."""
    credential = {"upstream_kind": "docker-hub", "username": "ci-bot", "token": TOKEN}
    assert api.put("/v1/credentials/dockerhub", credential).status == 201
    assert api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "dockerhub"}).status == 201
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay", "regions": ["eu-west-1"]}).status == 201
    return api


@pytest.fixture
def invoke(state_table: str, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pull_stats function's handler (its EMF metrics off: they print to stdout)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from functions.pull_stats import app

    def call(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = dict(app.lambda_handler(event, lambda_context))
        return answer

    return call


@pytest.fixture
def metrics_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """The service's metrics, recorded (not printed)."""
    sent: list[tuple[str, float]] = []
    monkeypatch.setattr(metrics, "add_metric", lambda name, unit, value: sent.append((name, value)))
    monkeypatch.setattr("ecrcache.services.pull_stats.count_by", lambda name, *, dimension, value, count: None)
    return sent

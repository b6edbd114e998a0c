"""``ecrcache pulls`` against the real API handler, over pulls the pull_stats function counted."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, tzinfo
from typing import Any

import pytest

from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient
from tests.pull_events import AT, NODE, pull_body, sqs_batch
from tests.unit.cli.support import run_cli

pytestmark = pytest.mark.functional


@pytest.fixture
def pulled(api: ApiClient, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quay rule, node pulled three times over three days and redis once; the API's clock at the pulls' day."""
    from functions.api import app as api_app
    from functions.pull_stats import app as pull_stats_app

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(AT.timestamp(), tz)

    monkeypatch.setattr(api_app, "datetime", Frozen)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    node = NODE.replace("docker-hub", "quay")
    batch = sqs_batch(
        pull_body("e1", repository=node, at=AT - timedelta(days=2)),
        pull_body("e2", repository=node, at=AT - timedelta(days=1)),
        pull_body("e3", repository=node),
        pull_body("e4", repository="quay/bitnami/redis", tag="7"),
    )
    answer: dict[str, Any] = dict(pull_stats_app.lambda_handler(batch, lambda_context))
    assert answer == {"batchItemFailures": []}


def test_pulls_table_ranks_with_a_sparkline(endpoint: str, pulled: None) -> None:
    result = run_cli(["--endpoint", endpoint, "pulls", "--rule", "quay", "--window", "3"])
    assert result.code == 0, result.output
    header, node, redis = result.stdout.splitlines()
    assert header.startswith("IMAGE")
    assert node.split()[:3] == ["quay/library/node:18-alpine", "3", "███"]
    assert redis.split()[:3] == ["quay/bitnami/redis:7", "1", "▁▁█"]


def test_pulls_json_is_the_apis_answer_and_an_unknown_rule_exits_4(endpoint: str, pulled: None) -> None:
    result = run_cli(["--endpoint", endpoint, "pulls", "--top", "1", "-o", "json"])
    assert result.code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["window_days"], body["rule"], [i["pulls"] for i in body["items"]]) == (14, None, [3])
    missing = run_cli(["--endpoint", endpoint, "pulls", "--rule", "ghcr"])
    assert missing.code == 4 and "no rule 'ghcr'" in missing.stderr

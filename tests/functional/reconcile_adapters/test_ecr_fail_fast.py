"""A terminal ECR answer is not retried like a transient one.

botocore's standard and adaptive retry modes count ``LimitExceededException`` as throttling: a 51st
rule was sent 5 times with exponential backoff, and the adaptive limiter then slowed every later
call of the run (six limit errors took 110 s). ECR's ``LimitExceededException`` is a quota: the
registry's client now raises it at the first answer. Real throttling is still retried. Attempts are
counted on the wire (botocore's ``before-send``, once per HTTP attempt).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from pydantic import JsonValue

from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.engine.plan import ActionKind, PlannedAction
from tests.conftest import REGION
from tests.functional.reconcile_adapters.conftest import Ecr

pytestmark = pytest.mark.functional


class Attempts:
    """Counts the HTTP attempts of one client per operation (botocore's ``before-send``, once per attempt).

    With ``answers``, it is the wire: each attempt gets the next ``(status, body)`` and nothing is sent.
    """

    def __init__(self, client: Any, answers: list[tuple[int, dict[str, Any]]] | None = None) -> None:
        self.sent: dict[str, int] = {}
        self.answers = answers
        client.meta.events.register_first("before-send.ecr", self.before_send)

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        operation = request.headers["X-Amz-Target"].decode().rsplit(".", 1)[-1]
        self.sent[operation] = self.sent.get(operation, 0) + 1
        if self.answers is None:
            return None
        status, body = self.answers.pop(0)
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        return AWSResponse(request.url, status, headers, _Raw(json.dumps(body).encode()))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


THROTTLED: Final = (400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
LIMIT: Final = (400, {"__type": "LimitExceededException", "message": "The quota for rules has been reached"})
CREATED: Final = (200, {"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "upstreamRegistry": "quay"})


def create(prefix: str) -> PlannedAction:
    request: dict[str, JsonValue] = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": "quay.io",
        "upstreamRegistry": "quay",
    }
    return PlannedAction(
        kind=ActionKind.CREATE_RULE, region=REGION, target=prefix, rule_prefix=prefix, reason="test", request=request
    )


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's backoff sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", slept.append)
    return slept


def test_the_51st_rule_fails_at_the_first_answer_and_terminally(ecr: Ecr, no_wait: list[float]) -> None:
    # GIVEN ECR holding 50 rules, its quota per Region
    for i in range(50):
        ecr.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=f"r{i:02d}", upstreamRegistryUrl="quay.io")
    attempts = Attempts(ecr.registry.client)
    # WHEN the registry creates a 51st
    result = ecr.registry.apply(create("r50"))
    # THEN ECR was asked once: no botocore retry, no backoff, no retry of ours; and it is terminal
    assert attempts.sent == {"CreatePullThroughCacheRule": 1}
    assert no_wait == [] and ecr.sleeps.delays == []
    assert (result.ok, result.retryable, result.code) == (False, False, "LimitExceededException")
    # AND the next call goes out at once, on the first attempt (the client was not slowed down)
    assert ecr.registry.apply(create("r00")).ok  # already there, identical: done
    assert attempts.sent["CreatePullThroughCacheRule"] == 2


def test_real_throttling_is_still_retried_by_botocore(no_wait: list[float]) -> None:
    # GIVEN ECR throttling the first two attempts (on a wire of our own: no request leaves the test)
    registry = Boto3EcrRegistry(REGION, sleep=lambda _: None)
    attempts = Attempts(registry.client, [THROTTLED, THROTTLED, CREATED])
    # WHEN a rule is created
    result = registry.apply(create("quay"))
    # THEN botocore retried it, with backoff, and the third attempt made it
    assert result.ok, result
    assert attempts.sent == {"CreatePullThroughCacheRule": 3}
    assert len(no_wait) == 2


def test_a_limit_answer_is_not_retried_on_any_ecr_call(no_wait: list[float]) -> None:
    # GIVEN ECR answering LimitExceededException (e.g. to a template write) WHEN the registry applies it
    registry = Boto3EcrRegistry(REGION, sleep=lambda _: None)
    attempts = Attempts(registry.client, [LIMIT])
    template: dict[str, JsonValue] = {"prefix": "quay", "appliedFor": ["PULL_THROUGH_CACHE"]}
    action = PlannedAction(
        kind=ActionKind.CREATE_TEMPLATE, region=REGION, target="quay", rule_prefix="quay", reason="t", request=template
    )
    result = registry.apply(action)
    # THEN once, terminal, no backoff
    assert attempts.sent == {"CreateRepositoryCreationTemplate": 1}
    assert (result.ok, result.retryable, result.code) == (False, False, "LimitExceededException")
    assert no_wait == []

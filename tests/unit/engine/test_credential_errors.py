"""Credential errors seen outside the health check (pure): pull-through cache actions and warm failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.engine.credential_errors import CredentialError, cache_action_errors, newest, warm_error
from ecrcache.engine.pull_stats import BridgeEvent, PullScope
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import ImageOutcome, Outcome, WarmTask

pytestmark = pytest.mark.unit

AT = datetime(2027, 3, 1, 12, tzinfo=UTC)
SCOPE = PullScope.of({"docker-hub": (), "ghcr": ("us-east-1", "eu-west-1"), "ROOT": ()}, stack_region="us-east-1")
CREDENTIALS = {"docker-hub": "hub", "ghcr": "gh"}


def action(
    event_id: str,
    *,
    status: str = "FAILED",
    code: str | None = "UpstreamAccessDenied",
    reason: str | None = "The authentication to the upstream registry failed",
    repository: str = "docker-hub/library/node",
    prefix: str | None = "docker-hub",
    region: str = "us-east-1",
    at: datetime = AT,
    detail_type: str = "ECR Pull Through Cache Action",
) -> BridgeEvent:
    detail: dict[str, Any] = {"sync-status": status, "repository-name": repository, "image-tag": "18-alpine"}
    if prefix is not None:
        detail["ecr-repository-prefix"] = prefix
    if code is not None:
        detail["failure-code"] = code
    if reason is not None:
        detail["failure-reason"] = reason
    return BridgeEvent(f"m-{event_id}", event_id, at, region, detail_type, detail)


def test_an_upstream_auth_refusal_names_the_rule_credential_with_the_evidence() -> None:
    found = cache_action_errors([action("e1")], SCOPE, CREDENTIALS)
    assert set(found) == {"hub"}
    error = found["hub"]
    assert "docker-hub (us-east-1)" in error.message
    assert "UpstreamAccessDenied" in error.message
    assert "e1" in error.evidence and "docker-hub/library/node:18-alpine" in error.evidence
    assert error.at == AT


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("UpstreamTooManyRequests", "rate limiting (HTTP 429)"),  # a rate limit: not the credential
        ("UpstreamUnavailable", "The upstream registry is unavailable"),
        (None, "some text nobody classifies"),
    ],
)
def test_other_failures_mark_nothing(code: str | None, reason: str) -> None:
    assert cache_action_errors([action("e1", code=code, reason=reason)], SCOPE, CREDENTIALS) == {}


def test_a_failure_text_naming_the_credential_is_classified_without_a_code() -> None:
    event = action("e1", code=None, reason="UnableToAccessSecretException: the secret could not be read")
    assert set(cache_action_errors([event], SCOPE, CREDENTIALS)) == {"hub"}


def test_success_and_other_events_mark_nothing() -> None:
    events = [
        action("e1", status="SUCCESS", code=None, reason=None),
        action("e2", detail_type="AWS API Call via CloudTrail"),
    ]
    assert cache_action_errors(events, SCOPE, CREDENTIALS) == {}


def test_without_a_prefix_the_repository_names_the_rule_in_its_region() -> None:
    event = action("e1", prefix=None, repository="ghcr/actions/runner", region="eu-west-1")
    assert set(cache_action_errors([event], SCOPE, CREDENTIALS)) == {"gh"}


def test_a_rule_without_a_credential_or_an_unmanaged_repository_marks_nothing() -> None:
    events = [
        action("e1", prefix=None, repository="quay/prometheus/busybox"),  # falls to ROOT, which has no credential
        action("e2", prefix=None, repository="ghcr/x", region="ap-south-1"),  # no rule there
    ]
    assert cache_action_errors(events, SCOPE, CREDENTIALS) == {}


def test_one_error_per_credential_the_newest() -> None:
    events = [
        action("e1", at=AT),
        action("e3", at=AT + timedelta(minutes=2)),
        action("e2", at=AT + timedelta(minutes=1)),
    ]
    found = cache_action_errors(events, SCOPE, CREDENTIALS)
    assert list(found) == ["hub"]
    assert "e3" in found["hub"].evidence


def test_newest_keeps_one_error_per_credential() -> None:
    older = CredentialError("hub", "m", "old", AT)
    newer = CredentialError("hub", "m", "new", AT + timedelta(seconds=1))
    other = CredentialError("gh", "m", "gh", AT)
    assert newest([newer, older, other]) == {"hub": newer, "gh": other}


def task(upstream: str = "registry-1.docker.io#hub") -> WarmTask:
    return WarmTask(
        run_id="r1",
        warm_set="base",
        region="us-east-1",
        rule="docker-hub",
        upstream=upstream,
        repository="docker-hub/library/node",
        image="library/node:18-alpine",
        tag="18-alpine",
        platforms=("linux/amd64",),
        reserved_requests=2,
        bucket_capacity=200,
        bucket_window_seconds=21600,
    )


def outcome(failure: FailureClass | None) -> ImageOutcome:
    return ImageOutcome(
        image="library/node:18-alpine",
        region="us-east-1",
        repository="docker-hub/library/node",
        tag="18-alpine",
        outcome=Outcome.FAILED if failure else Outcome.WARMED,
        failure_class=failure,
        message="UpstreamAccessDenied: the upstream refused the credential" if failure else None,
        finished_at=AT,
    )


def test_a_warm_failing_on_the_credential_is_an_error_of_its_bucket_credential() -> None:
    error = warm_error(task(), outcome(FailureClass.CREDENTIAL))
    assert error is not None and error.credential == "hub"
    assert "warm run r1 of warm set base" in error.evidence and "UpstreamAccessDenied" in error.evidence


@pytest.mark.parametrize("failure", [None, FailureClass.RATE_LIMIT, FailureClass.NOT_FOUND, FailureClass.UPSTREAM_DOWN])
def test_other_warm_outcomes_are_not_credential_errors(failure: FailureClass | None) -> None:
    assert warm_error(task(), outcome(failure)) is None


def test_an_anonymous_upstream_has_no_credential_to_mark() -> None:
    assert warm_error(task("public.ecr.aws"), outcome(FailureClass.CREDENTIAL)) is None

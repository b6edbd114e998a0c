"""The ``UpstreamHealthy`` condition: what ECR reports about a rule's upstream, classified; newest wins.

Table tests of :func:`classify_upstream_failure` (failure code, else text) and :func:`upstream_health`
(a failure sets the condition with its reason, a later success clears it, an older observation
changes nothing, ``last_transition`` moves only when the status does).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.engine.status import (
    RuleFindings,
    UpstreamObservation,
    UpstreamReason,
    Validation,
    classify_upstream_failure,
    rule_status,
    upstream_health,
    validation_observation,
)
from ecrcache.models.status import ConditionType, RuleStatus, UpstreamCheckSource, UpstreamHealth

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
R = UpstreamReason
PULL = UpstreamCheckSource.PULL


def pull(
    at: datetime = NOW, *, healthy: bool = False, code: str | None = None, reason: str | None = None
) -> UpstreamObservation:
    return UpstreamObservation(
        source=PULL,
        at=at,
        healthy=healthy,
        failure_code=code,
        failure=reason,
        repository="quay/library/alpine",
        image="3.20",
    )


def recorded(status: RuleStatus, seen: UpstreamObservation) -> RuleStatus:
    """The status with ``seen`` recorded (as the store does)."""
    health = upstream_health(status, seen)
    assert health is not None
    return status.with_upstream_health(health)


# -- classification --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "reason"),
    [
        # ECR's codes (BatchGetImage ImageFailureCode, its exceptions, the secret exceptions)
        ("UpstreamAccessDenied", None, R.CREDENTIAL_REJECTED),
        ("UnableToGetUpstreamImageException", None, R.CREDENTIAL_REJECTED),
        ("SecretNotFoundException", None, R.CREDENTIAL_REJECTED),
        ("UnableToDecryptSecretValueException", None, R.CREDENTIAL_REJECTED),
        ("UpstreamTooManyRequests", None, R.RATE_LIMITED),
        ("ImageNotFound", None, R.IMAGE_NOT_FOUND),
        ("UpstreamUnavailable", None, R.UPSTREAM_UNAVAILABLE),
        ("UnableToGetUpstreamLayerException", None, R.UPSTREAM_UNAVAILABLE),
        # the code wins over the text
        ("UpstreamTooManyRequests", "the authentication failed", R.RATE_LIMITED),
        # no (known) code: a code named in the text, then words
        (None, "UpstreamAccessDenied: upstream answered HTTP 401", R.CREDENTIAL_REJECTED),
        ("SomethingNew", "upstream rejected the credential (401)", R.CREDENTIAL_REJECTED),
        (None, "denied: The authentication to the upstream registry failed", R.CREDENTIAL_REJECTED),
        (None, "TOOMANYREQUESTS: You have reached your pull rate limit", R.RATE_LIMITED),
        (None, "HTTP 429", R.RATE_LIMITED),
        (None, "manifest unknown", R.IMAGE_NOT_FOUND),
        (None, "the upstream registry timed out", R.UPSTREAM_UNAVAILABLE),
        (None, "upstream answered HTTP 503", R.UPSTREAM_UNAVAILABLE),
        # digits inside a digest are not a status code
        (None, "sha256:4013f0b4291d401403429503", None),
        (None, "something odd", None),
        (None, None, None),
    ],
)
def test_classify_upstream_failure(code: str | None, text: str | None, reason: UpstreamReason | None) -> None:
    assert classify_upstream_failure(code, text) == reason


# -- the condition ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "advice"),
    [
        ("UpstreamAccessDenied", "CredentialRejected", "renew the token"),
        ("UpstreamTooManyRequests", "RateLimited", "rate limiting"),
        ("ImageNotFound", "ImageNotFound", "check the repository path and tag"),
        ("UpstreamUnavailable", "UpstreamUnavailable", "did not answer"),
        ("Mystery", "PullFailed", "failed upstream"),
    ],
)
def test_a_failed_pull_makes_the_upstream_unhealthy_with_its_reason(code: str, reason: str, advice: str) -> None:
    # GIVEN a converged rule WHEN ECR reports a failed pull through it
    health = upstream_health(RuleStatus(), pull(code=code, reason="upstream said no"))

    # THEN UpstreamHealthy is false, with the classified reason and a message saying what and what to do
    assert health is not None
    condition = health.condition
    assert (condition.type, condition.status, condition.reason) == (ConditionType.UPSTREAM_HEALTHY, False, reason)
    assert condition.message.startswith(f"pull of quay/library/alpine:3.20 failed ({code}: upstream said no); ")
    assert advice in condition.message
    assert condition.last_transition == NOW
    assert (health.check.source, health.check.healthy, health.check.failure_code) == (PULL, False, code)
    assert (health.check.repository, health.check.image, health.check.observed_at) == (
        "quay/library/alpine",
        "3.20",
        NOW,
    )


def test_a_later_success_clears_it_and_moves_the_transition() -> None:
    # GIVEN a rule whose upstream failed at NOW
    failing = recorded(RuleStatus(), pull(code="UpstreamTooManyRequests"))
    # WHEN a later pull succeeds
    later = NOW + timedelta(minutes=5)
    health = upstream_health(failing, pull(later, healthy=True))
    # THEN the condition is healthy again, since then
    assert health is not None
    assert (health.condition.status, health.condition.reason, health.condition.message) == (True, "PullSucceeded", "")
    assert health.condition.last_transition == later
    assert health.check.failure_code is None


def test_another_failure_keeps_the_transition_and_takes_the_new_reason() -> None:
    failing = recorded(RuleStatus(), pull(code="UpstreamTooManyRequests"))
    health = upstream_health(failing, pull(NOW + timedelta(minutes=1), code="UpstreamAccessDenied"))
    assert health is not None
    assert (health.condition.reason, health.condition.last_transition) == ("CredentialRejected", NOW)


def test_an_older_observation_changes_nothing() -> None:
    # GIVEN a failure recorded at NOW WHEN a success from before it arrives late THEN nothing changes
    failing = recorded(RuleStatus(), pull(code="UpstreamUnavailable"))
    assert upstream_health(failing, pull(NOW - timedelta(seconds=1), healthy=True)) is None
    # an observation at the same time is recorded (the same event again gives the same health)
    again = upstream_health(failing, pull(code="UpstreamUnavailable"))
    assert again == failing.upstream_health


def test_a_long_event_field_is_cut_to_what_the_record_keeps() -> None:
    seen = UpstreamObservation(source=PULL, at=NOW, healthy=False, failure_code="X" * 500, repository="r" * 400)
    health = upstream_health(RuleStatus(), seen)
    assert health is not None
    assert len(health.check.failure_code or "") == 128
    assert len(health.check.repository or "") == 256


# -- validations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validation", "expected"),
    [
        (Validation(is_valid=True, failure=None), (True, "Validated")),
        (Validation(is_valid=False, failure="upstream rejected the credential (401)"), (False, "CredentialRejected")),
        (Validation(is_valid=False, failure="who knows"), (False, "ValidationFailed")),
    ],
)
def test_a_validation_is_an_observation_too(validation: Validation, expected: tuple[bool, str]) -> None:
    seen = validation_observation(validation, at=NOW)
    assert seen is not None and seen.source is UpstreamCheckSource.VALIDATION
    health = upstream_health(RuleStatus(), seen)
    assert health is not None
    assert (health.condition.status, health.condition.reason) == expected
    if not expected[0]:
        assert health.condition.message.startswith("validation failed (")


def test_a_validation_ecr_could_not_answer_tells_nothing() -> None:
    assert validation_observation(Validation(is_valid=None, failure="ThrottlingException"), at=NOW) is None


def test_a_successful_validation_clears_a_failed_pull() -> None:
    failing = recorded(RuleStatus(), pull(code="UpstreamAccessDenied"))
    seen = validation_observation(Validation(is_valid=True, failure=None), at=NOW + timedelta(hours=1))
    assert seen is not None
    health = upstream_health(failing, seen)
    assert health is not None and health.condition.status and health.condition.reason == "Validated"


# -- the status around it --------------------------------------------------------------------------


def test_a_reconcile_keeps_the_upstream_condition_and_never_sets_it() -> None:
    # GIVEN a rule whose upstream is failing
    failing = recorded(RuleStatus(), pull(code="UpstreamTooManyRequests"))
    # WHEN a run concludes on it
    after = rule_status(failing, RuleFindings(), now=NOW + timedelta(minutes=1), run_id="r", revision=1)
    # THEN Synced is about ECR, UpstreamHealthy still about the upstream
    assert after.synced
    assert after.upstream_health == failing.upstream_health
    assert [c.type for c in after.conditions] == list(ConditionType)


def test_with_upstream_health_replaces_and_removes_it() -> None:
    health = upstream_health(RuleStatus(), pull(code="ImageNotFound"))
    assert isinstance(health, UpstreamHealth)
    status = RuleStatus().with_upstream_health(health)
    assert status.upstream_health == health
    cleared = status.with_upstream_health(None)
    assert cleared.upstream is None and cleared.condition(ConditionType.UPSTREAM_HEALTHY) is None
    assert RuleStatus.model_validate_json(status.model_dump_json()) == status

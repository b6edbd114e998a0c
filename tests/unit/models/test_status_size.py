"""A rule status and an upstream health fit their byte budgets in the Region's item (messages cut, nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecrcache.models.status import (
    MAX_HEALTH_BYTES,
    MAX_MESSAGE_LENGTH,
    MAX_STATUS_BYTES,
    ConditionType,
    RuleStatus,
    RuleValidation,
    UpstreamCheck,
    UpstreamCheckSource,
    UpstreamHealth,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _status(message: str) -> RuleStatus:
    status = RuleStatus(validation=RuleValidation(is_valid=False, failure=message, checked_at=NOW))
    for kind in (ConditionType.SYNCED, ConditionType.TERMINAL, ConditionType.RECOVERABLE):
        status = status.with_condition(kind, status=False, reason="Reason", message=message, now=NOW)
    return status


def _size(status: RuleStatus | UpstreamHealth) -> int:
    return len(status.model_dump_json().encode())


def test_a_status_that_fits_is_left_as_it_is() -> None:
    status = _status("short")
    assert status.within_bytes() is status


@pytest.mark.parametrize("char", ["x", "\x01", "\N{GRINNING FACE}", '"', "é"])
def test_a_status_too_large_keeps_the_longest_messages_that_fit(char: str) -> None:
    # GIVEN four messages of the longest length, in characters costing 1 to 6 bytes once encoded
    status = _status(char * MAX_MESSAGE_LENGTH)
    # WHEN fitted THEN it is within the budget, only the messages changed, all cut to the same length
    fitted = status.within_bytes()
    assert _size(fitted) <= MAX_STATUS_BYTES
    messages = {c.message for c in fitted.conditions} | {fitted.validation.failure}
    assert len(messages) == 1
    (message,) = messages
    assert message is not None and message.endswith("…") and message.startswith(char)
    assert fitted.cut_messages(0) == status.cut_messages(0)
    # AND one character more would not have fitted
    assert _size(status.cut_messages(len(message) + 1)) > MAX_STATUS_BYTES


def test_a_budget_nothing_fits_in_is_an_error_not_a_silent_cut() -> None:
    with pytest.raises(ValueError, match="a rule status takes more than 100 bytes even without its messages"):
        _status("x").within_bytes(100)


def test_an_upstream_health_is_fitted_to_its_own_budget() -> None:
    status = RuleStatus().with_condition(
        ConditionType.UPSTREAM_HEALTHY, status=False, reason="R" * 128, message="\x01" * MAX_MESSAGE_LENGTH, now=NOW
    )
    condition = status.condition(ConditionType.UPSTREAM_HEALTHY)
    assert condition is not None
    check = UpstreamCheck(
        source=UpstreamCheckSource.PULL,
        observed_at=NOW,
        healthy=False,
        failure_code="F" * 128,
        repository="r" * 256,
        image="i" * 300,
    )
    health = UpstreamHealth(condition=condition, check=check)
    fitted = health.within_bytes()
    assert _size(fitted) <= MAX_HEALTH_BYTES < _size(health)
    assert fitted.check == check
    assert fitted.condition.message.startswith("\x01")

"""The credential health decisions (pure): state, expiry thresholds, once-only alerts, days at UTC boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ecrcache.engine.credential_health import (
    EXPIRING_DETAIL_TYPE,
    HEALTH_CHANGED_DETAIL_TYPE,
    MAX_OWED,
    Findings,
    HealthDecision,
    HealthEvent,
    alert_due,
    days_to_expiry,
    decide,
    marked,
    owe,
    owed_event,
    still_owed,
    view,
)
from ecrcache.models.credential_health import CredentialHealth, HealthState

pytestmark = pytest.mark.unit

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
PASSED = Findings(NOW, passed=("registry-1.docker.io/ratelimitpreview/test:latest: signed in",))
REFUSED = Findings(NOW, refused=("the upstream refused the token: 401",), passed=("validated in ECR: hub",))
UNSURE = Findings(NOW, unsure=("registry-1.docker.io: deferred, the upstream's request budget is empty",))


def _decide(
    previous: CredentialHealth | None, found: Findings, expires_at: date | None = None, now: datetime = NOW
) -> HealthDecision:
    return decide("hub", previous, found, expires_at=expires_at, now=now)


# -- days to expiry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (datetime(2027, 3, 9, 23, 59, 59, tzinfo=UTC), 1),
        (datetime(2027, 3, 10, 0, 0, 0, tzinfo=UTC), 0),  # the UTC day of expiry starts
        (datetime(2027, 3, 10, 23, 59, 59, tzinfo=UTC), 0),
        (datetime(2027, 3, 11, 0, 0, 0, tzinfo=UTC), -1),
        # 2027-03-10 01:00 in UTC+02:00 is still 2027-03-09 in UTC: a day left
        (datetime(2027, 3, 10, 1, 0, tzinfo=timezone(timedelta(hours=2))), 1),
        # 2027-03-09 22:00 in UTC-05:00 is already 2027-03-10 in UTC: expiry day
        (datetime(2027, 3, 9, 22, 0, tzinfo=timezone(timedelta(hours=-5))), 0),
    ],
)
def test_days_to_expiry_counts_utc_days(now: datetime, days: int) -> None:
    assert days_to_expiry(date(2027, 3, 10), now) == days


def test_no_expiry_no_days() -> None:
    assert days_to_expiry(None, NOW) is None


# -- state -------------------------------------------------------------------------------------


def test_a_first_passing_check_is_healthy_and_announced() -> None:
    decision = _decide(None, PASSED)
    assert decision.health.state is HealthState.HEALTHY
    assert decision.health.checked_at == NOW
    assert decision.changed is not None
    assert decision.changed.detail_type == HEALTH_CHANGED_DETAIL_TYPE
    assert decision.changed.detail["previous_state"] == "Unknown"
    assert decision.changed.detail["state"] == "Healthy"


def test_a_refusal_is_invalid_with_the_failure_text_as_message_and_evidence() -> None:
    decision = _decide(
        CredentialHealth(credential="hub", state=HealthState.HEALTHY, announced=HealthState.HEALTHY), REFUSED
    )
    assert decision.health.state is HealthState.INVALID
    assert decision.health.message == "the upstream refused the token: 401"
    assert decision.health.evidence is not None and "401" in decision.health.evidence
    assert decision.changed is not None and decision.changed.detail["previous_state"] == "Healthy"


def test_a_check_that_cannot_tell_is_unknown_never_invalid() -> None:
    decision = _decide(
        CredentialHealth(credential="hub", state=HealthState.HEALTHY, announced=HealthState.HEALTHY), UNSURE
    )
    assert decision.health.state is HealthState.UNKNOWN
    assert decision.health.message is not None and "deferred" in decision.health.message


def test_a_check_that_cannot_tell_keeps_an_invalid_credential_invalid_with_its_evidence() -> None:
    previous = CredentialHealth(
        credential="hub",
        state=HealthState.INVALID,
        evidence="ECR Pull Through Cache Action e1",
        announced=HealthState.INVALID,
    )
    decision = _decide(previous, UNSURE)
    assert decision.health.state is HealthState.INVALID
    assert decision.health.evidence == "ECR Pull Through Cache Action e1"
    assert decision.changed is None


def test_a_passing_check_clears_an_older_mark() -> None:
    previous = marked("hub", message="pull failed", evidence="event e1", at=NOW - timedelta(hours=3))
    decision = _decide(previous, PASSED)
    assert decision.health.state is HealthState.HEALTHY
    assert decision.health.marked_at is None
    assert decision.health.evidence is None


def test_a_mark_newer_than_the_check_start_wins_over_its_pass() -> None:
    previous = marked("hub", message="pull failed", evidence="event e2", at=NOW + timedelta(seconds=5))
    decision = _decide(previous, PASSED, now=NOW + timedelta(seconds=10))
    assert decision.health.state is HealthState.INVALID
    assert decision.health.evidence == "event e2"
    assert decision.health.marked_at == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("days", "state"), [(15, HealthState.HEALTHY), (14, HealthState.EXPIRING), (0, HealthState.EXPIRING)]
)
def test_expiring_within_fourteen_days(days: int, state: HealthState) -> None:
    decision = _decide(None, PASSED, expires_at=NOW.date() + timedelta(days=days))
    assert decision.health.state is state


def test_invalid_wins_over_expiring() -> None:
    decision = _decide(None, REFUSED, expires_at=NOW.date() + timedelta(days=3))
    assert decision.health.state is HealthState.INVALID
    assert decision.alert is not None  # the expiry alert goes all the same


def test_the_same_state_again_is_not_announced_again() -> None:
    previous = CredentialHealth(credential="hub", state=HealthState.HEALTHY, announced=HealthState.HEALTHY)
    assert _decide(previous, PASSED).changed is None


def test_a_state_not_yet_announced_is_announced() -> None:
    # the last event could not be sent: the stored state is Invalid, users last heard Healthy
    previous = CredentialHealth(credential="hub", state=HealthState.INVALID, announced=HealthState.HEALTHY)
    decision = _decide(previous, REFUSED)
    assert decision.changed is not None and decision.changed.detail["previous_state"] == "Healthy"


# -- expiry alerts -----------------------------------------------------------------------------


EXPIRES = date(2027, 3, 15)


@pytest.mark.parametrize(
    ("today", "threshold"),
    [
        (date(2027, 2, 28), None),
        (date(2027, 3, 1), 14),
        (date(2027, 3, 8), 7),
        (date(2027, 3, 14), 1),
        (date(2027, 3, 15), 0),
    ],
)
def test_alert_thresholds(today: date, threshold: int | None) -> None:
    now = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    alert, _ = alert_due("hub", EXPIRES, now, ())
    assert (alert.threshold if alert else None) == threshold
    if alert is not None:
        assert alert.event.detail_type == EXPIRING_DETAIL_TYPE
        assert alert.event.detail == {
            "credential": "hub",
            "expires_at": "2027-03-15",
            "days_to_expiry": (EXPIRES - today).days,
            "threshold": threshold,
        }


def test_each_alert_is_sent_once_per_expiry_date() -> None:
    sent: frozenset[str] = frozenset()
    thresholds = []
    for day in range(28):  # every day from 2027-02-20 to 2027-03-19
        now = datetime(2027, 2, 20, 6, tzinfo=UTC) + timedelta(days=day)
        alert, kept = alert_due("hub", EXPIRES, now, sent)
        sent = kept
        if alert is not None:
            thresholds.append(alert.threshold)
            sent = alert.sent  # delivered
    assert thresholds == [14, 7, 1, 0]


def test_an_alert_not_delivered_is_sent_again_the_next_day() -> None:
    first, kept = alert_due("hub", EXPIRES, datetime(2027, 3, 8, tzinfo=UTC), ())
    assert first is not None and first.threshold == 7
    again, _ = alert_due("hub", EXPIRES, datetime(2027, 3, 9, tzinfo=UTC), kept)  # kept: nothing recorded
    assert again is not None and again.threshold == 7


def test_thresholds_crossed_at_once_send_the_most_urgent_and_count_the_others() -> None:
    alert, _ = alert_due("hub", EXPIRES, datetime(2027, 3, 10, tzinfo=UTC), ())  # 5 days left: 14 and 7 crossed
    assert alert is not None and alert.threshold == 7
    assert alert.sent == {"2027-03-15#14", "2027-03-15#7"}
    later, _ = alert_due("hub", EXPIRES, datetime(2027, 3, 11, tzinfo=UTC), alert.sent)
    assert later is None


def test_a_new_expiry_date_starts_its_alerts_afresh_and_forgets_the_old_ones() -> None:
    sent = frozenset({"2027-03-15#14", "2027-03-15#7"})
    alert, kept = alert_due("hub", date(2027, 3, 20), datetime(2027, 3, 10, tzinfo=UTC), sent)
    assert kept == frozenset()
    assert alert is not None and alert.threshold == 14 and alert.sent == {"2027-03-20#14"}


def test_an_expired_credential_alerts_at_zero() -> None:
    alert, _ = alert_due("hub", EXPIRES, datetime(2027, 3, 20, tzinfo=UTC), ())
    assert alert is not None and alert.threshold == 0 and alert.event.detail["days_to_expiry"] == -5


def test_no_expiry_no_alert() -> None:
    assert alert_due("hub", None, NOW, {"2027-03-15#14"}) == (None, frozenset())


# -- the API's view ----------------------------------------------------------------------------


def test_the_view_before_any_check_is_unknown_with_the_days_left() -> None:
    shown = view(None, expires_at=date(2027, 3, 11), now=NOW)
    assert shown.state is HealthState.UNKNOWN
    assert shown.checked_at is None
    assert shown.days_to_expiry == 10


def test_the_view_shows_the_stored_health() -> None:
    health = _decide(None, REFUSED).health
    shown = view(health, expires_at=None, now=NOW)
    assert (shown.state, shown.checked_at, shown.message) == (HealthState.INVALID, NOW, health.message)
    assert shown.evidence == health.evidence


def test_an_owed_event_comes_back_as_it_was_and_only_the_newest_are_kept() -> None:
    event = HealthEvent("Credential Expiring", {"credential": "hub", "threshold": 7}, "ecrcache: credential hub")
    start = datetime(2027, 3, 1, tzinfo=UTC)
    owed = [owe(event, start + timedelta(days=day)) for day in range(MAX_OWED + 3)]

    assert owed_event(owed[0]) == event
    assert still_owed(owed) == frozenset(owed[3:])

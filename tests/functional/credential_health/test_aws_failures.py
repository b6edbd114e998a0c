"""Every AWS call of the health check and of the marks, failing (throttled, 5xx, access denied) as botocore raises
it after its retries: what cannot tell is ``Unknown`` with the call named, never ``Invalid``; what could not be
recorded or sent is visible (raised, logged) and done again next time, never lost in silence."""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.engine.credential_errors import CredentialError
from ecrcache.errors import RetryableError
from ecrcache.models.credential_health import HealthState
from tests.conftest import REGION
from tests.functional.credential_health.support import HealthWorld
from tests.functional.rotation.support import failing

pytestmark = pytest.mark.functional

FAILURES = [
    pytest.param(("ThrottlingException", 400), id="throttled"),
    pytest.param(("InternalServiceError", 500), id="5xx"),
    pytest.param(("AccessDeniedException", 400), id="denied"),
]


def always(_: dict[str, Any]) -> bool:
    return True


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("operation", ["describe_secret", "get_secret_value"])
def test_a_secret_that_cannot_be_read_is_unknown_naming_the_call(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, operation: str, failure: tuple[str, int]
) -> None:
    world.upstream.accepted.clear()  # a bad token: but nothing may conclude it without reading it
    monkeypatch.setattr(world.sm, operation, failing(getattr(world.sm, operation), always, *failure))

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.UNKNOWN
    assert health.message is not None and "could not be read" in health.message and failure[0] in health.message


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("operation", ["validate_pull_through_cache_rule", "describe_pull_through_cache_rules"])
def test_ecr_failing_is_unknown_naming_the_call(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, operation: str, failure: tuple[str, int]
) -> None:
    client = world.service.ecr(REGION).client  # type: ignore[attr-defined]
    monkeypatch.setattr(client, operation, failing(getattr(client, operation), always, *failure))

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.UNKNOWN
    assert health.message is not None and failure[0] in health.message


@pytest.mark.parametrize("failure", FAILURES)
def test_the_budget_failing_defers_the_probe(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, failure: tuple[str, int]
) -> None:
    budget_reads = failing(world.dynamodb.get_item, lambda kw: kw["Key"]["pk"]["S"].startswith("BUDGET#"), *failure)
    monkeypatch.setattr(world.dynamodb, "get_item", budget_reads)

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.UNKNOWN
    assert health.message is not None and "deferred, the upstream budget could not be read" in health.message
    assert world.upstream.probed == []


@pytest.mark.parametrize("failure", FAILURES)
def test_a_health_that_cannot_be_written_fails_the_run_after_every_credential(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, failure: tuple[str, int]
) -> None:
    def health_item(kw: dict[str, Any]) -> bool:
        return str(kw.get("Item", {}).get("pk", {}).get("S")) == "HEALTH#credential"

    monkeypatch.setattr(world.dynamodb, "put_item", failing(world.dynamodb.put_item, health_item, *failure))

    with pytest.raises(RetryableError, match="the health of hub could not be recorded"):
        world.service.check_all()

    assert world.store.health("hub") is None
    assert world.events() == []  # nothing announced that is not recorded


@pytest.mark.parametrize("failure", FAILURES)
def test_an_event_that_cannot_be_sent_is_sent_again_by_the_next_check(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, failure: tuple[str, int]
) -> None:
    events = world.service.notifier.client  # type: ignore[attr-defined]
    with monkeypatch.context() as patch:
        patch.setattr(events, "put_events", failing(events.put_events, always, *failure))
        world.service.check_all()
    assert world.health().state is HealthState.HEALTHY
    assert world.health().announced is None  # not announced: recorded as such
    assert world.events() == []

    world.clock.days(1)
    world.service.check_all()

    assert [(e["detail"]["previous_state"], e["detail"]["state"]) for e in world.events()] == [("Unknown", "Healthy")]
    assert world.health().announced is HealthState.HEALTHY


def test_an_entry_eventbridge_did_not_take_counts_as_not_sent(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = world.service.notifier.client  # type: ignore[attr-defined]
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}]}
    monkeypatch.setattr(events, "put_events", lambda **_: refused)

    world.service.check_all()

    assert world.health().announced is None


@pytest.mark.parametrize("failure", FAILURES)
def test_an_alert_the_topic_refused_is_sent_again_to_the_topic_alone(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, failure: tuple[str, int]
) -> None:
    world.expire_in(3)
    sns = world.service.notifier.alerts.client  # type: ignore[attr-defined]
    with monkeypatch.context() as patch:
        patch.setattr(sns, "publish", failing(sns.publish, always, *failure))
        world.service.check_all()
    # the bus took both events: they count as sent there; the topic is owed them
    assert world.detail_types() == ["Credential Health Changed", "Credential Expiring"]
    assert world.health().alerts_sent != frozenset()
    assert len(world.health().alerts_owed) == 2
    assert world.alerts() == []

    world.clock.days(1)
    world.service.check_all()

    assert world.detail_types() == ["Credential Health Changed", "Credential Expiring"]  # not again on the bus
    subjects = sorted(alert["Subject"] for alert in world.alerts())
    assert subjects == [
        "ecrcache: credential hub expires in 3 day(s)",
        "ecrcache: credential hub is Expiring (was Unknown)",
    ]
    assert world.health().alerts_owed == frozenset()  # sent once: not owed any more


@pytest.mark.parametrize("failure", FAILURES)
def test_a_mark_that_cannot_be_written_is_logged_never_raised(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch, failure: tuple[str, int]
) -> None:
    monkeypatch.setattr(world.dynamodb, "update_item", failing(world.dynamodb.update_item, always, *failure))

    assert world.marks.mark([CredentialError("hub", "m", "e", world.clock())]) == 0
    assert world.store.health("hub") is None


def test_a_marks_announcement_the_topic_refused_is_owed_to_the_topic(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.service.check_all()
    sns = world.service.notifier.alerts.client  # type: ignore[attr-defined]
    with monkeypatch.context() as patch:
        patch.setattr(sns, "publish", failing(sns.publish, always, "ThrottlingException", 400))
        world.marks.mark([CredentialError("hub", "m", "e", world.clock())])
    assert world.health().announced is HealthState.INVALID  # the bus took it
    assert len(world.health().alerts_owed) == 1
    changed = world.detail_types().count("Credential Health Changed")

    world.clock.days(1)
    world.upstream.accepted.clear()  # still refused: Invalid, nothing new to announce
    world.service.check_all()

    assert world.detail_types().count("Credential Health Changed") == changed
    assert [a["Subject"] for a in world.alerts()][-1] == "ecrcache: credential hub is Invalid (was Healthy)"
    assert world.health().alerts_owed == frozenset()

"""A credential error seen elsewhere marks the credential Invalid at once (the pull statistics' cache actions, the
warm worker's credential failures), announced once; the next passing check returns it to Healthy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.engine.credential_errors import CredentialError
from ecrcache.engine.credential_health import HealthEvent
from ecrcache.models.credential_health import HealthState
from ecrcache.models.rule import RuleSpec
from ecrcache.models.upstream_probe import ProbeResult, ProbeTarget
from ecrcache.services.pull_stats import PullStatsService
from tests.conftest import REGION
from tests.functional.credential_health.support import HealthWorld
from tests.pull_events import action_body, sqs_batch

pytestmark = pytest.mark.functional

ALICE = "arn:aws:iam::123456789012:user/alice"


def _error(world: HealthWorld, evidence: str = "ECR Pull Through Cache Action e1") -> CredentialError:
    return CredentialError(
        "hub", "a pull through rule docker-hub (us-east-1) failed on the credential", evidence, world.clock()
    )


def test_a_mark_makes_a_healthy_credential_invalid_at_once_and_announces_it_once(world: HealthWorld) -> None:
    world.expire_in(92)  # 2027-06-01
    world.service.check_all()
    world.events()

    assert world.marks.mark([_error(world)]) == 1
    assert world.marks.mark([_error(world, "ECR Pull Through Cache Action e2")]) == 1

    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.evidence == "ECR Pull Through Cache Action e2"  # the newest evidence
    assert health.announced is HealthState.INVALID
    changed = [e["detail"] for e in world.events() if e["detail-type"] == "Credential Health Changed"]
    assert [(d["previous_state"], d["state"]) for d in changed] == [("Unknown", "Healthy"), ("Healthy", "Invalid")]
    assert changed[-1]["expires_at"] == "2027-06-01"  # as the last check knew it


def test_an_older_mark_never_replaces_a_newer_one(world: HealthWorld) -> None:
    newer = _error(world, "newer")
    older = CredentialError("hub", "m", "older", newer.at - timedelta(minutes=5))
    world.marks.mark([newer])
    assert world.marks.mark([older]) == 1  # recorded as seen, but the stored mark stays the newer one
    assert world.health().evidence == "newer"


def test_a_mark_landing_while_a_check_runs_wins_over_the_checks_pass(world: HealthWorld) -> None:
    standin = world.upstream

    class MarkedMeanwhile:
        def probe(self, target: ProbeTarget, login: object) -> ProbeResult:
            world.marks.mark([_error(world, "seen during the check")])
            return standin.probe(target, login)  # type: ignore[arg-type]

    world.service.probe = MarkedMeanwhile()
    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.evidence == "seen during the check"
    world.service.probe = standin
    world.clock.days(1)
    world.service.check_all()
    assert world.health().state is HealthState.HEALTHY


def test_a_failed_pull_through_on_the_credential_marks_it_through_the_pull_statistics(world: HealthWorld) -> None:
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    world.desired.put_rule(
        "docker-hub",
        RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"}),
        actor=ALICE,
    )
    failed = action_body("e-denied", status="FAILED")
    failed["detail"] |= {"failure-code": "UpstreamAccessDenied", "failure-reason": "401 from the upstream"}
    rate_limited = action_body("e-429", status="FAILED")
    rate_limited["detail"] |= {"failure-code": "UpstreamTooManyRequests", "failure-reason": "429"}
    store = DynamoDbPullStatsStore(world.table, world.dynamodb)
    pulls = PullStatsService(store, stack_region=REGION, marks=world.marks, clock=world.clock)
    writes: list[str] = []
    original = world.store.client.update_item

    def counting(**kwargs: object) -> object:
        writes.append(str(kwargs.get("UpdateExpression")))
        return original(**kwargs)  # type: ignore[arg-type]

    world.store.client.update_item = counting  # type: ignore[method-assign,assignment]
    batch = SqsModel.model_validate(sqs_batch(failed, rate_limited, failed | {"id": "e-denied-2"}))

    outcome = pulls.record(batch.Records)

    assert outcome.failed == ()
    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.evidence is not None and "UpstreamAccessDenied: 401 from the upstream" in health.evidence
    assert sum("marked_at" in w for w in writes) == 1  # one conditional write for the credential, not per event
    assert [e["detail"]["state"] for e in world.events()] == ["Invalid"]


def test_a_late_failure_from_before_a_passing_check_marks_nothing(world: HealthWorld) -> None:
    """The token was revoked, pulls failed, the operator fixed it and the check passed; a failure from before
    the check (SQS redelivering it, a warm finishing late) must not mark the working credential Invalid."""
    revoked_at = world.clock()
    world.marks.mark([CredentialError("hub", "m", "before the fix", revoked_at)])
    world.clock.now += timedelta(minutes=10)
    world.service.check_all()
    assert world.health().state is HealthState.HEALTHY
    before = len(world.events())

    late = CredentialError("hub", "m", "redelivered, from before the check", revoked_at + timedelta(minutes=5))
    world.marks.mark([late])

    health = world.health()
    assert health.state is HealthState.HEALTHY
    assert health.evidence is None
    assert len(world.events()) == before  # no "Credential Health Changed" to Invalid


def test_a_failure_newer_than_the_passing_check_still_marks(world: HealthWorld) -> None:
    world.service.check_all()
    world.marks.mark([CredentialError("hub", "m", "after the check", world.clock() + timedelta(seconds=1))])
    assert world.health().state is HealthState.INVALID


def test_a_redelivered_pull_through_failure_is_judged_by_its_event_time(world: HealthWorld) -> None:
    """The pull statistics mark with the cache action's own time, not the time the batch is processed."""
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    world.desired.put_rule(
        "docker-hub", RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"}), actor=ALICE
    )
    failed_at = world.clock()
    world.clock.now += timedelta(minutes=10)
    world.service.check_all()  # passes after the failure
    before = len(world.events())
    failed = action_body("e-denied", status="FAILED", at=failed_at)
    failed["detail"] |= {"failure-code": "UpstreamAccessDenied", "failure-reason": "401 from the upstream"}
    pulls = PullStatsService(
        DynamoDbPullStatsStore(world.table, world.dynamodb), stack_region=REGION, marks=world.marks, clock=world.clock
    )

    pulls.record(SqsModel.model_validate(sqs_batch(failed)).Records)

    assert world.health().state is HealthState.HEALTHY
    assert len(world.events()) == before


def test_a_mark_landing_between_the_events_and_their_record_keeps_what_was_sent(world: HealthWorld) -> None:
    """The check writes its health, sends the expiry alert, then records it as sent: a mark in between makes
    that second write conflict; the alert is still recorded as sent (not sent again the next day)."""
    world.expire_in(3)
    notifier = world.service.notifier

    class MarkedWhileSending:
        def publish(self, event: HealthEvent) -> None:
            notifier.publish(event)
            if event.detail_type == "Credential Expiring":
                world.marks.mark([_error(world, "seen while the alert went out")])

        def alert(self, event: HealthEvent) -> None:
            notifier.alert(event)

    world.service.notifier = MarkedWhileSending()
    world.service.check_all()

    health = world.health()
    assert health.evidence == "seen while the alert went out"  # the mark stands
    assert health.alerts_sent != frozenset()  # and the alert is recorded as sent
    world.service.notifier = notifier
    world.clock.days(1)
    world.service.check_all()
    assert world.detail_types().count("Credential Expiring") == 1
    assert sum("expires in" in alert["Subject"] for alert in world.alerts()) == 1

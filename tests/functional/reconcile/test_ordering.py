"""At-least-once, out-of-order and lost deliveries reach the same end state.

Stream records may come twice (a retried batch) or late (an old record after a newer one); EventBridge
events may come twice (same ``id``), in any order, late, or never (the embedded AWS's ``events.faults``).
The reconciler reads the desired state and ECR on every run instead of trusting what a trigger
carries, and the schedule repairs whatever an event missed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from devstack.aws import clock, events
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import Scope
from tests.functional.reconcile.conftest import World
from tests.functional.reconcile.support import Admin, Look, Principal, Reconciler

pytestmark = pytest.mark.functional

REPOSITORY = "quay/library/nginx"
BOBS_LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"},
            }
        ]
    }
)


def _spec(keep: int) -> dict[str, Any]:
    return {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": keep}}}


def _rendered(spec: dict[str, Any]) -> dict[str, Any]:
    lifecycle = RuleSpec.model_validate(spec).lifecycle
    assert lifecycle is not None
    policy: dict[str, Any] = json.loads(lifecycle.render_text())
    return policy


def _ecr_state(look: Look) -> tuple[Any, ...]:
    """What ECR holds for the rule (timestamps dropped)."""
    rule = look.rule("quay")
    template = look.template("quay")
    return (
        None if rule is None else {k: v for k, v in rule.items() if not k.endswith("At")},
        None if template is None else {k: v for k, v in template.items() if not k.endswith("At")},
        look.lifecycle(REPOSITORY),
    )


@pytest.fixture
def converged(controller: Reconciler, alice: Admin, bob: Principal, look: Look) -> tuple[Any, ...]:
    """A rule with a lifecycle over one cached repository, converged; returns what ECR holds."""
    bob.ecr.create_repository(repositoryName=REPOSITORY)
    alice.put_rule("quay", _spec(10))
    controller.converge()
    controller.reset_calls()
    return _ecr_state(look)


def _drift(bob: Principal) -> None:
    """Three changes behind the controller's back: rule deleted, template edited, lifecycle removed."""
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    bob.ecr.update_repository_creation_template(prefix="quay", lifecyclePolicy=BOBS_LIFECYCLE)
    bob.ecr.delete_lifecycle_policy(repositoryName=REPOSITORY)


def test_same_stream_batch_delivered_twice_reaches_the_same_state_without_new_writes(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a rule change on the stream
    bob.ecr.create_repository(repositoryName=REPOSITORY)
    alice.put_rule("quay", _spec(10))
    batch = controller.stream.next_batch().delivered

    # WHEN Lambda delivers the batch, then delivers it again (a retry after a timeout)
    first = controller.invoke_stream(batch)
    after_first = _ecr_state(look)
    controller.reset_calls()
    second = controller.invoke_stream(batch)

    # THEN both succeed, the second writes nothing, and ECR holds the same
    assert first.response == second.response == {"batchItemFailures": []}
    assert controller.writes() == {}
    assert _ecr_state(look) == after_first
    assert after_first[2] == _rendered(_spec(10))
    assert world.reconciler.plan(Scope(deep=True)).is_empty


def test_old_stream_record_delivered_after_a_newer_one_does_not_roll_back(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN two versions of a rule, each on its own stream batch
    bob.ecr.create_repository(repositoryName=REPOSITORY)
    alice.put_rule("quay", _spec(10))
    old = controller.stream.next_batch().delivered
    alice.put_rule("quay", _spec(20))
    new = controller.stream.next_batch().delivered
    assert old[0]["dynamodb"]["NewImage"]["version"] == {"N": "1"}
    assert new[0]["dynamodb"]["NewImage"]["version"] == {"N": "2"}

    # WHEN the newer batch is delivered first and the older one after it
    controller.invoke_stream(new)
    controller.reset_calls()
    controller.invoke_stream(old)

    # THEN ECR holds the newer version: the late record changed nothing
    assert controller.writes() == {}
    template = look.template("quay")
    assert template is not None
    assert json.loads(template["lifecyclePolicy"]) == _rendered(_spec(20))
    assert look.lifecycle(REPOSITORY) == _rendered(_spec(20))


def test_cloudtrail_events_delivered_twice_and_in_reverse_order_reach_the_same_state(
    controller: Reconciler, bob: Principal, look: Look, world: World, converged: tuple[Any, ...]
) -> None:
    # GIVEN three drift events
    _drift(bob)
    routed = controller.pending_events()
    assert [e["detail"]["eventName"] for e in routed] == [
        "DeletePullThroughCacheRule",
        "UpdateRepositoryCreationTemplate",
        "DeleteLifecyclePolicy",
    ]

    # WHEN they are delivered newest first, each twice
    deliveries = controller.deliver([event for event in reversed(routed) for _ in range(2)])

    # THEN ECR is back where it was
    assert _ecr_state(look) == converged
    assert world.reconciler.plan(Scope(deep=True)).is_empty
    # THEN each event ran once: its second delivery is answered from the idempotency record
    runs = [d.run for d in deliveries]
    assert runs[0::2] == runs[1::2]
    assert len({r.run_id for r in runs}) == 3
    assert len([r for r in look.runs() if r.trigger is RunTrigger.CLOUDTRAIL]) == 3
    # THEN the first one (naming the repository) repaired everything; the later ones found nothing to do
    assert runs[0].summary == {
        "create_rule": 1,
        "update_template": 1,
        "put_lifecycle_policy": 1,
        "left_after_verify": 0,
    }
    assert [r.summary for r in runs[2:]] == [{"left_after_verify": 0}] * 4


def test_event_duplicated_by_eventbridge_is_handled_once(
    controller: Reconciler, bob: Principal, look: Look, converged: tuple[Any, ...]
) -> None:
    # GIVEN EventBridge delivering the next event twice (same id: an at-least-once redelivery)
    events.faults.duplicate(count=1, event_name="DeletePullThroughCacheRule")

    # WHEN the rule is deleted behind the controller's back and both copies arrive
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    first, second = controller.deliver_events()

    # THEN one run re-created the rule; the copy got the same answer without running again
    assert first.envelope["id"] == second.envelope["id"]
    assert first.response == second.response
    assert first.run.summary.get("create_rule") == 1
    assert controller.writes() == {"CreatePullThroughCacheRule": 1}
    assert _ecr_state(look) == converged


def test_lost_events_are_repaired_by_the_schedule(
    controller: Reconciler, bob: Principal, look: Look, world: World, converged: tuple[Any, ...]
) -> None:
    # GIVEN every CloudTrail event lost on its way (events are best effort)
    events.faults.drop(count=None, detail_type=events.CLOUDTRAIL_DETAIL_TYPE)

    # WHEN three changes are made behind the controller's back
    _drift(bob)

    # THEN no event reaches the function
    assert controller.pending_events() == []
    assert events.faults.dropped == 3

    # WHEN the fast resync runs THEN the rule and the template are repaired (they are always read)
    assert controller.resync().status is RunStatus.SUCCEEDED
    assert controller.writes() == {"CreatePullThroughCacheRule": 1, "UpdateRepositoryCreationTemplate": 1}
    assert look.lifecycle(REPOSITORY) is None  # the fast path reads no repository

    # WHEN the daily deep resync runs THEN the repository is repaired too
    assert controller.resync("deep").status is RunStatus.SUCCEEDED
    assert _ecr_state(look) == converged
    assert world.reconciler.plan(Scope(deep=True)).is_empty


def test_event_arriving_after_the_schedule_repaired_the_drift_changes_nothing(
    controller: Reconciler, bob: Principal, look: Look, converged: tuple[Any, ...]
) -> None:
    # GIVEN the next CloudTrail event held back for ten minutes
    events.faults.delay(timedelta(minutes=10), count=1, detail_type=events.CLOUDTRAIL_DETAIL_TYPE)

    # WHEN the rule is deleted, and the schedule repairs it before the event arrives
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert events.faults.held == 1
    assert controller.resync().summary.get("create_rule") == 1
    controller.pending_events()  # the re-creation's own event
    controller.reset_calls()

    # WHEN the late event finally arrives
    clock.advance(timedelta(minutes=11))
    assert events.faults.release_due() == 1
    [late] = controller.deliver_events()

    # THEN it is a reconcile with nothing to do
    assert late.envelope["detail"]["eventName"] == "DeletePullThroughCacheRule"
    assert late.run.summary == {"left_after_verify": 0}
    assert controller.writes() == {}
    assert _ecr_state(look) == converged

"""Event storms and the Region lease: ECR's events reach the reconciler through its event queue.

A batch of the queue (``EcrEvents``: up to 100 events gathered for 15 s) is coalesced into one
reconcile per Region. A Region whose lease another run holds (a deep resync holds it for minutes) is
not an error: the batch's messages for it are reported back (``batchItemFailures``) and SQS delivers
them again after the queue's visibility timeout, when they are reconciled. The handler never raises
for either, so nothing reaches Lambda's on-failure destination (the DLQ).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.aws import events
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import LEASE_SECONDS
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile.support import (
    FAULTS,
    Admin,
    Look,
    Principal,
    Reconciler,
    clients,
    failing,
    sqs_record,
)

pytestmark = pytest.mark.functional

QUAY: dict[str, Any] = {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 10}}}
REPOSITORIES = tuple(f"quay/team/app-{n}" for n in range(4))
STORM = 40
"""Events in the storm: more than a Lambda retry budget, fewer than the queue's batch size (100)."""


@pytest.fixture
def quay(controller: Reconciler, alice: Admin, bob: Principal) -> list[str]:
    """A converged quay rule (lifecycle policy) on four repositories cached before it."""
    for name in REPOSITORIES:
        bob.ecr.create_repository(repositoryName=name)
    alice.put_rule("quay", QUAY)
    controller.converge()
    controller.reset_calls()
    return list(REPOSITORIES)


def _storm(bob: Principal, repositories: list[str]) -> None:
    """Bob removes every repository's lifecycle policy and then tags them over and over (a script gone wild):
    ``STORM`` CloudTrail events, as the template's drift rule routes them to the reconciler's queue."""
    for name in repositories:
        bob.ecr.delete_lifecycle_policy(repositoryName=name)
    for n in range(STORM - len(repositories)):
        arn = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{repositories[n % len(repositories)]}"
        bob.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "touch", "Value": str(n)}])


def _lifecycle_policies(look: Look, repositories: list[str]) -> dict[str, bool]:
    found: dict[str, bool] = {}
    for name in repositories:
        try:
            look.ecr.get_lifecycle_policy(repositoryName=name)
            found[name] = True
        except look.ecr.exceptions.LifecyclePolicyNotFoundException:
            found[name] = False
    return found


def _new_runs(look: Look, before: set[str]) -> list[Any]:
    return [r for r in look.runs() if r.run_id not in before]


def test_a_storm_of_events_is_one_reconcile_per_batch(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str]
) -> None:
    # GIVEN a storm of drift events on the controller's queue
    before = {r.run_id for r in look.runs()}
    _storm(bob, quay)
    envelopes = controller.pending_events()
    assert len(envelopes) >= STORM

    # WHEN the event source delivers them as one batch
    response = controller.deliver_queue(envelopes)

    # THEN one reconcile ran (not one per event), every message is done, and the drift is repaired
    assert response == {"batchItemFailures": []}
    runs = _new_runs(look, before)
    assert [(r.trigger, r.status, r.scope) for r in runs] == [
        (RunTrigger.CLOUDTRAIL, RunStatus.SUCCEEDED, f"{REGION}:fast+{len(quay)}")
    ]
    assert controller.writes() == {"PutLifecyclePolicy": len(quay)}
    assert _lifecycle_policies(look, quay) == dict.fromkeys(quay, True)


def test_a_held_lease_loses_no_event_they_are_reconciled_when_delivered_again(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str], state_table: str
) -> None:
    # GIVEN a deep resync holding the Region's lease, and a storm of drift events meanwhile
    leases = DynamoDbStatusStore(state_table, clients().dynamodb)
    assert leases.acquire_lease(REGION, "deep-resync", now=datetime.now(UTC), ttl_seconds=LEASE_SECONDS)
    _storm(bob, quay)
    envelopes = controller.pending_events()
    ids = [f"storm-{n}" for n in range(len(envelopes))]

    # WHEN the batch is delivered while the lease is held
    held = controller.deliver_queue(envelopes, ids=ids)

    # THEN no error (nothing for Lambda to retry into the DLQ): every message is reported back to the queue
    assert sorted(f["itemIdentifier"] for f in held["batchItemFailures"]) == sorted(ids)
    assert controller.writes() == {}
    assert _lifecycle_policies(look, quay) == dict.fromkeys(quay, False)

    # WHEN the deep resync releases the lease and SQS delivers the same messages again (visibility timeout)
    leases.release_lease(REGION, "deep-resync")
    again = controller.deliver_queue(envelopes, ids=ids)

    # THEN they are reconciled: nothing left, the drift repaired
    assert again == {"batchItemFailures": []}
    assert controller.writes() == {"PutLifecyclePolicy": len(quay)}
    assert _lifecycle_policies(look, quay) == dict.fromkeys(quay, True)


def test_a_message_that_cannot_be_read_is_dropped_and_logged(
    controller: Reconciler,
    bob: Principal,
    look: Look,
    quay: list[str],
    *,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a batch with one drift event and two messages that are not ECR events the function reads
    bob.ecr.delete_lifecycle_policy(repositoryName=quay[0])
    (drift,) = controller.pending_events()
    broken = {**drift, "detail": {"eventSource": "ecr.amazonaws.com"}}  # a CloudTrail detail without its fields
    records = [drift, broken]

    # WHEN delivered with a body that is not JSON at all
    batch = [sqs_record(f"m-{n}", json.dumps(e)) for n, e in enumerate(records)]
    batch.append(sqs_record("m-text", "not json"))
    caplog.set_level("INFO", logger="ecrcache-test")
    response = controller.invoke({"Records": batch})

    # THEN none comes back (read again, they would be no better: not 10 deliveries into the DLQ), each unreadable
    # one is logged as dropped with its id (never its body), and the drift is repaired
    assert response == {"batchItemFailures": []}
    dropped = [r for r in caplog.records if "could not be read: dropped" in r.getMessage()]
    assert sorted((r.levelname, r.__dict__["message_id"]) for r in dropped) == [("ERROR", "m-1"), ("ERROR", "m-text")]
    assert not any("not json" in str(r.__dict__) for r in dropped)
    assert _lifecycle_policies(look, [quay[0]]) == {quay[0]: True}
    # AND they are counted (EcrEventsUnreadable, in the invocation's metrics): dropped, not unseen
    out = capsys.readouterr().out
    emitted = [json.loads(line) for line in out.splitlines() if '"EcrEventsUnreadable"' in line]
    assert [m["EcrEventsUnreadable"] for m in emitted] == [[2.0]]  # EMF: a metric's values are a list


def _in_region(envelope: dict[str, Any], region: str) -> dict[str, Any]:
    """The same event, as ECR in another Region sends it."""
    return {
        **envelope,
        "id": f"{envelope['id']}-{region}",
        "region": region,
        "detail": {**envelope["detail"], "awsRegion": region},
    }


def test_a_region_whose_reconcile_fails_unexpectedly_fails_only_its_messages(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN drift events from two Regions in one batch, and a bug that makes one Region's reconcile raise
    bob.ecr.delete_lifecycle_policy(repositoryName=quay[0])
    (drift,) = controller.pending_events()
    envelopes = [_in_region(drift, "eu-west-1"), drift]  # eu-west-1 is reconciled first (Regions in order)
    reconcile = controller.service.reconcile

    def buggy(scope: Any, trigger: RunTrigger, **kwargs: Any) -> Any:
        if scope.regions == frozenset({"eu-west-1"}):
            raise KeyError("a bug")
        return reconcile(scope, trigger, **kwargs)

    monkeypatch.setattr(controller.service, "reconcile", buggy)

    # WHEN the batch is delivered
    response = controller.deliver_queue(envelopes)

    # THEN the handler does not raise (the whole batch would come back): only that Region's message does
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert _lifecycle_policies(look, [quay[0]]) == {quay[0]: True}


def test_regions_not_started_for_lack_of_time_come_back(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str]
) -> None:
    # GIVEN a drift event, delivered when the invocation has less than a minute left
    bob.ecr.delete_lifecycle_policy(repositoryName=quay[0])
    envelopes = controller.pending_events()
    controller.context.remaining_millis = 59_000

    # WHEN the batch is delivered THEN its Region is not started: its message comes back (not cut off by the timeout)
    assert controller.deliver_queue(envelopes) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert controller.writes() == {}

    # WHEN delivered again with time enough THEN it is reconciled
    controller.context.remaining_millis = 300_000
    assert controller.deliver_queue(envelopes) == {"batchItemFailures": []}
    assert _lifecycle_policies(look, [quay[0]]) == {quay[0]: True}


def test_pull_through_events_of_many_repositories_are_one_deep_read_each(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str]
) -> None:
    # GIVEN pull-through imports of every repository (each a successful cache action), twice over
    before = {r.run_id for r in look.runs()}
    for name in quay * 2:
        detail = {
            "sync-status": "SUCCESS",
            "ecr-repository-prefix": "quay",
            "repository-name": name,
            "upstream-registry-url": "quay.io",
            "image-tag": "latest",
        }
        events.emit(ACCOUNT_ID, REGION, source="aws.ecr", detail_type="ECR Pull Through Cache Action", detail=detail)
    envelopes = controller.pending_events()
    assert len(envelopes) == 2 * len(quay)

    # WHEN they arrive as one batch
    response = controller.deliver_queue(envelopes)

    # THEN one cache-event reconcile reads each repository once, deeply
    assert response == {"batchItemFailures": []}
    runs = _new_runs(look, before)
    assert [(r.trigger, r.status, r.scope) for r in runs] == [
        (RunTrigger.CACHE_EVENT, RunStatus.SUCCEEDED, f"{REGION}:fast+{len(quay)}")
    ]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failing_state_table_reports_the_batch_back_and_never_raises(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str], fault: str
) -> None:
    # GIVEN a drift event and a pull-through import of the same repository in one batch
    bob.ecr.delete_lifecycle_policy(repositoryName=quay[0])
    detail = {"sync-status": "SUCCESS", "ecr-repository-prefix": "quay", "repository-name": quay[0]}
    events.emit(ACCOUNT_ID, REGION, source="aws.ecr", detail_type="ECR Pull Through Cache Action", detail=detail)
    envelopes = controller.pending_events()
    assert len(envelopes) == 2

    # WHEN the state table fails every read (the rule's status, the Region's lease) after botocore's retries
    with failing(controller.status_client, "get_item", fault):
        response = controller.deliver_queue(envelopes)

    # THEN both messages go back to the queue (no exception: Lambda's retries and the DLQ are not involved)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}

    # WHEN SQS delivers them again with the table back THEN they are reconciled
    assert controller.deliver_queue(envelopes) == {"batchItemFailures": []}
    assert _lifecycle_policies(look, [quay[0]]) == {quay[0]: True}


def test_a_region_reconciled_is_done_even_if_another_run_takes_the_stack_lease_right_after(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN drift in the stack's Region (a single-Region stack: its Region's lease is the stack's), and another run
    # (the queue's second concurrent batch, a stream batch, a resync) that takes that lease the moment it is free
    bob.ecr.delete_lifecycle_policy(repositoryName=quay[0])
    envelopes = controller.pending_events()
    status = controller.service.status
    assert isinstance(status, DynamoDbStatusStore)
    release = status.release_lease

    def release_then_taken(region: str, run_id: str) -> None:
        release(region, run_id)
        assert status.acquire_lease(region, "other-batch", now=datetime.now(UTC), ttl_seconds=LEASE_SECONDS)

    monkeypatch.setattr(status, "release_lease", release_then_taken)

    # WHEN the batch is delivered
    response = controller.deliver_queue(envelopes)

    # THEN its Region was reconciled, so none of its messages comes back (they would be reconciled again)
    assert response == {"batchItemFailures": []}
    assert _lifecycle_policies(look, [quay[0]]) == {quay[0]: True}

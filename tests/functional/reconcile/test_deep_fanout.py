"""The deep resync fanned out to shard workers (issue 14), on the embedded AWS.

The reconcile service is the coordinator (a shard queue given); the test is SQS: it takes the tasks the
coordinator sent (:class:`~tests.fakes.shard_queue.MemoryShardQueue`) and delivers them to the worker service, in
order, again, late or never, as a test needs. The state table and ECR are moto's, read through the real adapters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS, WRITE_OPERATIONS
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.engine.deadline import Deadline
from ecrcache.engine.shards import REPOSITORIES_FAILED
from ecrcache.engine.status import UNVERIFIED
from ecrcache.errors import RetryableError
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.shards import ShardCounts, ShardResult, ShardState, ShardTask
from ecrcache.models.status import ReconcileRun, RunStatus
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile_shards import ShardFanout
from tests.conftest import REGION
from tests.functional.reconcile.fanout_support import (
    ACTOR,
    OTHER_LIFECYCLE,
    REPOSITORIES,
    RULES,
    SHARD_SIZE,
    Fanout,
    drift,
    fanout_refused,
    fanout_world,
    lifecycle,
    shard_items_refused,
    synced,
)
from tests.functional.reconcile.support import failing

pytestmark = pytest.mark.functional


@pytest.fixture
def fan(state_table: str) -> Iterator[Fanout]:
    with fanout_world(state_table) as found:
        yield found


# --------------------------------------------------------------------------------------------------
# The coordinator, and the run finished once


def test_a_deep_run_fans_out_and_is_finished_once_by_its_last_shard(fan: Fanout) -> None:
    # GIVEN two repositories drifted out of band (their fingerprints still say converged: a fast run cannot see it)
    drifted = ("k8s/pause-2", "quay/library/image-5")
    drift(fan, *drifted)
    fan.reset_calls()
    # WHEN the deep resync runs
    run = fan.deep()
    # THEN the coordinator read the Region on the fast path (no per-repository read) and sent 3 shards, sorted
    assert not any(op in PER_REPOSITORY_READS for op in fan.registry.calls)
    assert run.status is RunStatus.RUNNING
    assert run.shards == ShardCounts(total=3)
    tasks = list(fan.queue.pending)
    assert [t.index for t in tasks] == [0, 1, 2]
    assert [name for t in tasks for name in t.repositories] == sorted(REPOSITORIES)
    assert all(len(t.repositories) <= SHARD_SIZE for t in tasks)
    assert fan.run(run.run_id).status is RunStatus.RUNNING
    assert fan.status.region_status(REGION).fanout is not None
    # WHEN the workers process every shard
    results = fan.drain()
    # THEN only the last one finished the run, with exact counts and the repairs in its summary
    assert [r.outcome for r in results] == ["done", "done", "done"]
    assert [r.finished for r in results] == [False, False, True]
    done = fan.run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED, done.errors
    assert done.shards == ShardCounts(total=3, done=3)
    assert done.summary["put_lifecycle_policy"] == 2
    assert done.finished_at is not None
    assert all(lifecycle(fan, name) != OTHER_LIFECYCLE for name in drifted)
    # AND the Region's marker is gone, and finishing again does nothing
    assert fan.status.region_status(REGION).fanout is None
    assert fan.reconciler.finisher.finish_if_done(run.run_id) is None
    assert fan.run(run.run_id) == done


def test_each_worker_reads_only_its_shards_repositories_by_name(fan: Fanout) -> None:
    # GIVEN a deep run's shards
    fan.deep()
    task = fan.queue.take()
    fan.reset_calls()
    # WHEN one shard is processed
    fan.deliver(task)
    # THEN its repositories were described by name (never the registry's listing) and read one by one
    calls = fan.registry.calls
    assert calls["DescribeRepositories"] == 1
    assert all(calls[op] == len(task.repositories) for op in PER_REPOSITORY_READS)
    assert "DescribePullThroughCacheRules" not in calls
    assert "DescribeRepositoryCreationTemplates" not in calls


def test_a_small_region_is_read_deeply_in_process_even_with_fanout_configured(fan: Fanout) -> None:
    # GIVEN shards larger than the Region's managed repositories
    fan.reconciler.shards = ShardFanout(fan.queue, shard_size=len(REPOSITORIES))
    drift(fan, "quay/library/image-1")
    fan.reset_calls()
    # WHEN the deep resync runs
    run = fan.deep()
    # THEN nothing was sent, the run read every repository itself and repaired the drift, finished at once
    assert fan.queue.sent == []
    assert run.status is RunStatus.SUCCEEDED
    assert run.shards is None
    assert run.summary["put_lifecycle_policy"] == 1
    assert fan.registry.calls["GetLifecyclePolicy"] >= len(REPOSITORIES)
    # AND the listing was read once for the first read (its details without listing again)
    assert fan.registry.calls["DescribeRepositories"] == 2  # the first read and verify


# --------------------------------------------------------------------------------------------------
# Redelivery, retries, last attempts


def test_a_redelivered_shard_is_dropped_and_counted_nothing(fan: Fanout) -> None:
    # GIVEN a shard reported done
    run = fan.deep()
    task = fan.queue.take()
    assert fan.deliver(task).outcome == "done"
    fan.reset_calls()
    # WHEN SQS delivers it again
    again = fan.deliver(task)
    # THEN it is dropped: no ECR call, no DynamoDB write, the counts as they were
    assert again.outcome == "dropped"
    assert fan.registry.calls == Counter()
    assert set(fan.dynamodb) == {"GetItem"}
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)


def test_a_throttled_shard_is_retried_alone_then_succeeds(fan: Fanout) -> None:
    # GIVEN a deep run, one of whose shards meets ECR throttling (after botocore's retries)
    run = fan.deep()
    task = fan.queue.take()
    drift(fan, task.repositories[0])
    with failing(fan.registry.client, "get_lifecycle_policy", "throttling"), pytest.raises(RetryableError):
        # WHEN the worker processes it
        fan.deliver(task)
    # THEN the shard is retrying (counted once), nothing else moved
    assert fan.status.shard(run.run_id, REGION, task.index) is not None
    assert fan.run(run.run_id).shards == ShardCounts(total=3, retrying=1)
    # WHEN SQS delivers it again (still throttled), then once more (ECR answers)
    with failing(fan.registry.client, "get_lifecycle_policy", "throttling"), pytest.raises(RetryableError):
        fan.deliver(task)
    assert fan.run(run.run_id).shards == ShardCounts(total=3, retrying=1)
    assert fan.deliver(task).outcome == "done"
    # THEN it is done, its retry no longer counted, and its drift repaired
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)
    assert lifecycle(fan, task.repositories[0]) != OTHER_LIFECYCLE
    record = fan.status.shard(run.run_id, REGION, task.index)
    assert record is not None and record.retried and record.state is ShardState.DONE


def test_a_shard_failing_on_its_last_attempt_fails_the_run_and_its_rules(fan: Fanout) -> None:
    # GIVEN a deep run whose first shard (k8s repositories) keeps failing
    run = fan.deep()
    first = fan.queue.take()
    assert all(name.startswith("k8s/") for name in first.repositories)
    with failing(fan.registry.client, "describe_repositories", "server-error"):
        with pytest.raises(RetryableError):
            fan.deliver(first)
        # WHEN its last attempt fails too
        last = fan.deliver(first, last_attempt=True)
    # THEN the shard is failed (not raised: SQS would only move it to the DLQ), counted once
    assert last.outcome == "failed"
    assert fan.run(run.run_id).shards == ShardCounts(total=3, failed=1)
    # WHEN the other shards succeed
    fan.drain()
    # THEN the run finished partial/failed with the shard's error, and the rule whose repositories failed is not Synced
    done = fan.run(run.run_id)
    assert done.shards == ShardCounts(total=3, done=2, failed=1)
    assert done.status is RunStatus.FAILED  # nothing applied
    assert any("shard 0 (4 repositories) failed" in e for e in done.errors), done.errors
    assert synced(fan, "k8s") == (False, REPOSITORIES_FAILED)
    assert synced(fan, "quay") == (True, "Converged")
    # AND the next fast run converges the rule's status again (its own findings)
    assert fan.fast().status is RunStatus.SUCCEEDED
    assert synced(fan, "k8s") == (True, "Converged")


def test_a_shard_out_of_time_is_retried_then_failed_on_its_last_attempt_not_killed(fan: Fanout) -> None:
    # GIVEN a shard started in time whose invocation's time runs out during its deep read
    run = fan.deep()
    task = fan.queue.take()

    def running_out() -> Deadline:
        ticks = iter([60.0])  # the check before the shard starts; past it after
        return Deadline(lambda: next(ticks, 0.0))

    # WHEN it is processed THEN it is not reported done from a partial read: it is retried
    with pytest.raises(RetryableError, match="time ran out"):
        fan.worker.process(task, last_attempt=False, deadline=running_out())
    assert fan.run(run.run_id).shards == ShardCounts(total=3, retrying=1)
    # AND on its last attempt it is failed, saying why
    result = fan.worker.process(task, last_attempt=True, deadline=running_out())
    assert result.outcome == "failed"
    assert fan.run(run.run_id).shards == ShardCounts(total=3, failed=1)
    record = fan.status.shard(run.run_id, REGION, task.index)
    assert record is not None and record.error is not None and "time ran out" in record.error


def test_an_access_denied_shard_fails_at_once(fan: Fanout) -> None:
    # GIVEN a shard whose reads are refused (a permission: no retry can help)
    run = fan.deep()
    task = fan.queue.take()
    with failing(fan.registry.client, "list_tags_for_resource", "access-denied"):
        result = fan.deliver(task)
    # THEN it is failed on its first attempt
    assert result.outcome == "failed"
    assert fan.run(run.run_id).shards == ShardCounts(total=3, failed=1)


def test_a_redelivered_shard_finishes_a_run_whose_finish_failed_after_the_last_report(fan: Fanout) -> None:
    # GIVEN a deep run whose last shard reports, then fails to finish the run (DynamoDB, after botocore's retries)
    run = fan.deep()
    *first, last = fan.queue.drain()
    for task in first:
        fan.deliver(task)

    def finish(kwargs: dict[str, Any]) -> str | None:
        return "server-error" if "run_status = :status" in kwargs.get("UpdateExpression", "") else None

    with failing(fan.status.client, "update_item", finish), pytest.raises(RetryableError):
        fan.deliver(last)
    assert fan.run(run.run_id).status is RunStatus.RUNNING
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=3)
    # WHEN SQS delivers the last shard again (it raised)
    again = fan.deliver(last)
    # THEN the shard is dropped (counted nothing) and the run finished by it
    assert again.outcome == "dropped"
    done = fan.run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.shards == ShardCounts(total=3, done=3)
    assert fan.status.region_status(REGION).fanout is None


def test_a_delivery_refused_by_a_concurrent_retry_reports_against_the_new_state(
    fan: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one shard delivered twice at once: while the first delivery works, the second meets throttling and
    # marks the shard retrying (the state the first one read is no longer the shard's)
    run = fan.deep()
    task = fan.queue.take()
    work = fan.worker._work
    concurrent: list[ShardResult | Exception | None] = []

    def work_while_another_delivery_fails(shard: ShardTask, *args: Any) -> Any:
        if not concurrent:
            concurrent.append(None)
            with failing(fan.registry.client, "describe_repositories", "throttling"):
                try:
                    concurrent.append(fan.worker.process(shard, last_attempt=False))
                except RetryableError as exc:
                    concurrent.append(exc)
        return work(shard, *args)

    monkeypatch.setattr(fan.worker, "_work", work_while_another_delivery_fails)
    # WHEN the first delivery reports
    result = fan.deliver(task)
    # THEN its report is not lost: the shard is done (counted once, no longer retrying)
    assert isinstance(concurrent[1], RetryableError)
    assert result.outcome == "done"
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)
    record = fan.status.shard(run.run_id, REGION, task.index)
    assert record is not None and record.state is ShardState.DONE


def test_a_nested_rule_deleted_with_retain_after_the_fanout_keeps_its_repositories_from_the_outer_rule(
    fan: Fanout, state_table: str
) -> None:
    # GIVEN a rule quay/team nested in quay, its repositories converged to its own lifecycle
    desired = DesiredStateService(
        DynamoDbStateStore(state_table, boto3.client("dynamodb", region_name=REGION)),
        SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
        lambda: datetime.now(UTC),
    )
    team = {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 3}}, "deletion_policy": "retain"}
    desired.put_rule("quay/team", RuleSpec.model_validate(team), actor=ACTOR)
    nested = ("quay/team/app-0", "quay/team/app-1")
    for name in nested:
        fan.ecr.create_repository(repositoryName=name)
    assert fan.fast().status is RunStatus.SUCCEEDED
    kept = {name: lifecycle(fan, name) for name in nested}
    # AND a deep run fanned out while both rules were desired
    run = fan.deep()
    assert fan.queue.pending
    # WHEN quay/team is deleted with retain (its ECR rule stays: no longer managed) before the workers run
    desired.delete(ResourceKind.RULE, "quay/team", actor=ACTOR)
    fan.reset_calls()
    fan.drain()
    # THEN the workers chose the owner the in-process deep read chooses (quay/team: retired, not quay), so its
    # repositories were left as they were: quay's lifecycle was not put on them
    assert {name: lifecycle(fan, name) for name in nested} == kept
    assert fan.registry.calls["PutLifecyclePolicy"] == 0
    assert fan.run(run.run_id).status is RunStatus.SUCCEEDED


def test_a_shard_applied_while_the_desired_state_moved_leaves_its_writes_unverified(
    fan: Fanout, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a shard with a drifted repository, and the desired state changed while the worker applies (it holds no
    # lease: it applies the snapshot it read at its start)
    desired = DesiredStateService(
        DynamoDbStateStore(state_table, boto3.client("dynamodb", region_name=REGION)),
        SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
        lambda: datetime.now(UTC),
    )
    run = fan.deep()
    task = fan.queue.take()
    drifted = task.repositories[0]
    drift(fan, drifted)
    apply = fan.worker.applier.apply

    def apply_while_the_rules_change(*args: Any, **kwargs: Any) -> Any:
        for prefix, spec in RULES.items():
            desired.put_rule(
                prefix, RuleSpec.model_validate({**spec, "lifecycle": {"presets": {"keep_last": 2}}}), actor=ACTOR
            )
        return apply(*args, **kwargs)

    monkeypatch.setattr(fan.worker.applier, "apply", apply_while_the_rules_change)
    # WHEN the shard is processed
    assert fan.deliver(task).outcome == "done"
    # THEN what it wrote is not trusted: the repository's record is unverified, so the next fast run re-reads it
    record = fan.status.applied_of(REGION, [drifted])[drifted]
    assert record.lifecycle == UNVERIFIED
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)


# --------------------------------------------------------------------------------------------------
# Deadline, and runs racing


def test_a_shard_that_never_reports_is_settled_by_the_next_run_after_the_deadline(fan: Fanout) -> None:
    # GIVEN a deep run two of whose shards reported; the third's worker was killed (its message in the DLQ)
    run = fan.deep()
    lost = fan.queue.take()
    fan.drain()
    assert fan.run(run.run_id).status is RunStatus.RUNNING
    # WHEN a fast run comes before the deadline
    fan.clock.advance(600)
    fan.fast()
    # THEN the fan-out is left alone
    assert fan.run(run.run_id).status is RunStatus.RUNNING
    # WHEN a fast run comes after the deadline
    fan.clock.advance(3600)
    fan.fast()
    # THEN the run is finished with the lost shard failed, and the marker is gone
    done = fan.run(run.run_id)
    assert done.status is RunStatus.FAILED
    assert done.shards == ShardCounts(total=3, done=2, failed=1)
    assert any("no report by the fan-out's deadline" in e for e in done.errors)
    assert fan.status.region_status(REGION).fanout is None
    # AND the lost shard redriven from the DLQ later is dropped
    assert fan.deliver(lost).outcome == "dropped"
    assert fan.run(run.run_id) == done


def test_a_fanout_whose_lost_shard_cannot_be_failed_is_left_to_the_next_settling(fan: Fanout) -> None:
    # GIVEN a deep run past its deadline, one shard never reported, and DynamoDB refusing to fail it (throttled)
    run = fan.deep()
    lost = fan.queue.take()
    fan.drain()
    fan.clock.advance(3601)
    client = fan.status.client
    original = client.transact_write_items

    def throttle_the_failing(**kwargs: Any) -> Any:
        if any(
            ":error" in item.get("Update", {}).get("ExpressionAttributeValues", {}) for item in kwargs["TransactItems"]
        ):
            raise _cancelled("ThrottlingError")
        return original(**kwargs)

    client.transact_write_items = throttle_the_failing  # type: ignore[method-assign]
    try:
        # WHEN a run settles the fan-out
        fan.fast()
    finally:
        del client.transact_write_items
    # THEN the run is not finished with a shard still open (a late report could move a finished run's counts)
    assert fan.run(run.run_id).status is RunStatus.RUNNING
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=2)
    # WHEN the next run settles it THEN it is finished, the lost shard failed, and a late report is dropped
    fan.fast()
    done = fan.run(run.run_id)
    assert (done.status, done.shards) == (RunStatus.FAILED, ShardCounts(total=3, done=2, failed=1))
    assert fan.deliver(lost).outcome == "dropped"
    assert fan.run(run.run_id) == done


def test_a_second_deep_run_never_races_an_unfinished_fanout(fan: Fanout) -> None:
    # GIVEN a deep run whose shards are still out
    first = fan.deep()
    # WHEN another deep run comes
    second = fan.deep()
    # THEN it sends no shard, says why, and finishes (its fast-path work done)
    assert len(fan.queue.sent) == 3
    assert second.status is not RunStatus.RUNNING
    assert second.shards is None
    assert f"the deep read of {REGION} is still running in run {first.run_id}" in " ".join(second.errors)
    marker = fan.status.region_status(REGION).fanout
    assert marker is not None and marker.run_id == first.run_id
    # WHEN the first one's shards report, a third deep run fans out again
    fan.drain()
    assert fan.run(first.run_id).status is RunStatus.SUCCEEDED
    third = fan.deep()
    assert third.shards == ShardCounts(total=3)
    assert len(fan.queue.sent) == 6


def test_shards_quicker_than_their_coordinator_let_it_finish_the_run(
    fan: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN shards processed while the coordinating run is still at work (before it closes its part)
    original = ShardFanout.close

    def close_after_the_shards(finisher: Any, run: ReconcileRun, stamps: Any) -> ReconcileRun:
        results = fan.drain()
        assert [r.finished for r in results] == [False, False, False]  # the coordinator has not closed yet
        return original(finisher, run, stamps)

    monkeypatch.setattr(ShardFanout, "close", staticmethod(close_after_the_shards))
    # WHEN the deep run closes
    run = fan.deep()
    # THEN it finished the run itself
    assert run.status is RunStatus.SUCCEEDED
    assert run.shards == ShardCounts(total=3, done=3)
    assert fan.run(run.run_id).status is RunStatus.SUCCEEDED


# --------------------------------------------------------------------------------------------------
# What goes wrong on the way: the queue, DynamoDB, repositories gone


def test_shards_the_queue_refuses_are_failed(fan: Fanout) -> None:
    # GIVEN a queue that cannot take the second shard
    fan.queue.refuse = {1}
    # WHEN the deep run fans out
    run = fan.deep()
    # THEN that shard is failed at once and said in the run
    assert run.shards == ShardCounts(total=3, failed=1)
    assert any("1 of 3 shards could not be sent" in e for e in run.errors)
    fan.drain()
    done = fan.run(run.run_id)
    assert done.shards == ShardCounts(total=3, done=2, failed=1)
    assert done.status is RunStatus.FAILED


def test_a_queue_that_cannot_be_used_fails_every_shard_and_the_run_finishes(fan: Fanout) -> None:
    # GIVEN a queue that fails outright
    fan.queue.error = RetryableError("SQS SendMessageBatch failed with AWS.SimpleQueueService.NonExistentQueue")
    # WHEN the deep run fans out
    run = fan.deep()
    # THEN every shard is failed and the coordinator itself finished the run
    assert run.status is RunStatus.FAILED
    assert run.shards == ShardCounts(total=3, failed=3)
    assert fan.status.region_status(REGION).fanout is None


def test_a_repository_deleted_before_its_shard_is_forgotten(fan: Fanout) -> None:
    # GIVEN a deep run's shard, one of whose repositories is deleted before a worker gets to it
    fan.deep()
    task = fan.queue.take()
    gone = task.repositories[1]
    fan.ecr.delete_repository(repositoryName=gone, force=True)
    assert gone in fan.status.applied_of(REGION, [gone])
    # WHEN the shard is processed
    result = fan.deliver(task)
    # THEN the others were read and the gone one's record forgotten
    assert result.outcome == "done"
    assert result.report is not None
    assert (result.report.repositories, result.report.found) == (len(task.repositories), len(task.repositories) - 1)
    assert fan.status.applied_of(REGION, [gone]) == {}


def test_a_report_conflicting_with_another_transaction_is_sent_again(fan: Fanout) -> None:
    # GIVEN DynamoDB cancelling the report's transaction once for a conflict
    run = fan.deep()
    task = fan.queue.take()
    client = fan.status.client
    original = client.transact_write_items
    tokens: list[str] = []

    def conflict_once(**kwargs: Any) -> Any:
        tokens.append(kwargs["ClientRequestToken"])
        if len(tokens) == 1:
            raise _cancelled("TransactionConflict")
        return original(**kwargs)

    client.transact_write_items = conflict_once  # type: ignore[method-assign]
    try:
        # WHEN the shard reports
        result = fan.deliver(task)
    finally:
        del client.transact_write_items
    # THEN it was sent again with the same token, and counted once
    assert result.outcome == "done"
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)


def test_a_throttled_report_is_retried_by_sqs(fan: Fanout) -> None:
    # GIVEN DynamoDB throttling the report's transaction (a cancellation reason botocore does not retry)
    run = fan.deep()
    task = fan.queue.take()
    client = fan.status.client

    def throttled(**_: Any) -> Any:
        raise _cancelled("ThrottlingError")

    client.transact_write_items = throttled  # type: ignore[method-assign]
    try:
        with pytest.raises(RetryableError, match="ThrottlingError"):
            fan.deliver(task)
    finally:
        del client.transact_write_items
    # THEN nothing was counted; the next delivery reports it
    assert fan.run(run.run_id).shards == ShardCounts(total=3)
    assert fan.deliver(task).outcome == "done"
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)


def test_shards_that_cannot_be_recorded_are_never_sent_and_the_run_finishes(fan: Fanout) -> None:
    # GIVEN DynamoDB refusing the shard items (after the marker and the count were written)
    with shard_items_refused(fan):
        # WHEN the deep run fans out
        run = fan.deep()
    # THEN nothing was sent, its shards are failed, and the run finished (no marker left)
    assert fan.queue.sent == []
    assert run.status is RunStatus.FAILED
    assert run.shards == ShardCounts(total=3, failed=3)
    assert any("shards could not be recorded" in e for e in run.errors), run.errors
    assert fan.status.region_status(REGION).fanout is None


def test_a_fanout_whose_count_cannot_be_recorded_is_not_started(fan: Fanout) -> None:
    # GIVEN DynamoDB refusing the fan-out's transaction (marker and count)
    with fanout_refused(fan, _cancelled("ThrottlingError")):
        run = fan.deep()
    # THEN nothing was sent, the run finished with the reason, and the next deep run fans out
    assert fan.queue.sent == []
    assert (run.status, run.shards) == (RunStatus.FAILED, None)
    assert any("ThrottlingError" in e for e in run.errors), run.errors
    assert fan.deep().shards == ShardCounts(total=3)


def _cancelled(reason: str) -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": f"Transaction cancelled [{reason}, None]"},
        "CancellationReasons": [{"Code": reason}, {"Code": "None"}],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "TransactWriteItems")


# --------------------------------------------------------------------------------------------------
# Cost of a no-op shard


def test_a_noop_shard_writes_only_its_report(fan: Fanout) -> None:
    # GIVEN a converged registry's deep run
    run = fan.deep()
    task = fan.queue.take()
    fan.reset_calls()
    # WHEN a shard with nothing to do is processed
    result = fan.deliver(task)
    # THEN ECR was only read, and DynamoDB written once: the report transaction
    assert result.outcome == "done"
    assert not any(op in WRITE_OPERATIONS for op in fan.registry.calls)
    writes = {op: n for op, n in fan.dynamodb.items() if op not in {"GetItem", "Query", "BatchGetItem"}}
    assert writes == {"TransactWriteItems": 1}
    assert fan.run(run.run_id).shards == ShardCounts(total=3, done=1)


def test_a_noop_fanout_over_tagged_repositories_writes_no_applied_record(fan: Fanout) -> None:
    # GIVEN a converged registry whose quay repositories carry the rule's tags (their keys on their records)
    run = fan.deep()
    fan.reset_calls()
    # WHEN every shard (the tagged ones included) is processed
    results = fan.drain()
    # THEN nothing was planned: no ECR write, no applied record rewritten (BatchWriteItem), only the reports
    assert [r.outcome for r in results] == ["done"] * 3
    assert not any(op in WRITE_OPERATIONS for op in fan.registry.calls)
    assert "BatchWriteItem" not in fan.dynamodb
    done = fan.run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED
    assert not any(key in done.summary for key in ("record_applied", "tag_resource")), done.summary


@pytest.mark.slow
def test_a_noop_shard_of_500_repositories_costs_its_reads_and_one_write(fan: Fanout) -> None:
    # GIVEN a converged Region of 501 managed repositories, shards of 500
    for i in range(501 - len(REPOSITORIES)):
        fan.ecr.create_repository(repositoryName=f"quay/bulk/image-{i:03d}")
    fan.reconciler.shards = None  # converged in the run's own invocation
    assert fan.fast().status is RunStatus.SUCCEEDED
    fan.reconciler.shards = ShardFanout(fan.queue, shard_size=500)
    run = fan.deep()
    assert run.shards == ShardCounts(total=2)
    task = fan.queue.take()
    assert len(task.repositories) == 500
    fan.reset_calls()
    # WHEN its first shard (500 repositories, nothing to do) is processed
    result = fan.deliver(task)
    # THEN ECR: the 500 named in 5 DescribeRepositories, the 3 reads each, nothing else (no listing, no write)
    assert result.outcome == "done"
    assert dict(fan.registry.calls) == {"DescribeRepositories": 5} | dict.fromkeys(PER_REPOSITORY_READS, 500)
    # AND DynamoDB: the shard's item, the desired state (its revision, the rules, the credentials), the 500
    # fingerprints by key (5 x 100), the report (one transaction), then the run's counts (is it the last shard?)
    assert dict(fan.dynamodb) == {"GetItem": 3, "Query": 2, "BatchGetItem": 5, "TransactWriteItems": 1}

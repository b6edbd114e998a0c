"""The deep resync fanned out to shard workers (issue 14), on the embedded AWS.

The reconcile service is the coordinator (a shard queue given); the test is SQS: it takes the tasks the
coordinator sent (:class:`~tests.fakes.shard_queue.MemoryShardQueue`) and delivers them to the worker service, in
order, again, late or never, as a test needs. The state table and ECR are moto's, read through the real adapters.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
import pytest

from devstack.aws import ports
from devstack.aws.ports import AcceptingChecker
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS, WRITE_OPERATIONS, Boto3EcrRegistry
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.engine.shards import REPOSITORIES_FAILED
from ecrcache.errors import RetryableError
from ecrcache.models.rule import RuleSpec
from ecrcache.models.shards import ShardCounts, ShardResult, ShardState, ShardTask
from ecrcache.models.status import ConditionType, ReconcileRun, RunStatus, RunTrigger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.reconcile_shards import ShardFanout, ShardWorkerService
from tests.conftest import ACCOUNT_ID, REGION
from tests.fakes.shard_queue import MemoryShardQueue
from tests.functional.reconcile.support import aws_error, failing

pytestmark = pytest.mark.functional

ACTOR: Final = f"arn:aws:iam::{ACCOUNT_ID}:user/alice"
CREATION_ROLE: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache/ecr-ptc-creation"
SHARD_SIZE: Final = 4
RULES: Final[dict[str, dict[str, Any]]] = {
    "quay": {
        "upstream_kind": "quay",
        "lifecycle": {"presets": {"keep_last": 10}},
        "repository": {"tags": {"team": "platform"}, "creation_role_arn": CREATION_ROLE},
    },
    "k8s": {"upstream_kind": "k8s", "lifecycle": {"presets": {"keep_last": 5}}},
}
REPOSITORIES: Final = [
    *(f"quay/library/image-{i}" for i in range(7)),
    *(f"k8s/pause-{i}" for i in range(4)),
]
"""11 managed repositories: 3 shards of at most 4 (sorted: k8s/* first)."""
UNRELATED: Final = ("apps/api",)
OTHER_LIFECYCLE: Final = json.dumps(
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


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Fanout:
    """The coordinator (reconcile service), its queue, the worker, and what they called."""

    reconciler: ReconcileService
    worker: ShardWorkerService
    queue: MemoryShardQueue
    registry: Boto3EcrRegistry
    status: DynamoDbStatusStore
    dynamodb: Counter[str]
    clock: Clock
    ecr: Any
    results: list[ShardResult] = field(default_factory=list)

    def deep(self) -> ReconcileRun:
        return self.reconciler.reconcile(Scope(deep=True), RunTrigger.SCHEDULE)

    def fast(self) -> ReconcileRun:
        return self.reconciler.reconcile(Scope(), RunTrigger.SCHEDULE)

    def deliver(self, task: ShardTask, *, last_attempt: bool = False) -> ShardResult:
        result = self.worker.process(task, last_attempt=last_attempt)
        self.results.append(result)
        return result

    def drain(self) -> list[ShardResult]:
        return [self.deliver(task) for task in self.queue.drain()]

    def run(self, run_id: str) -> ReconcileRun:
        found = self.status.get_run(run_id)
        assert found is not None
        return found

    def reset_calls(self) -> None:
        self.registry.calls.clear()
        self.dynamodb.clear()


@pytest.fixture
def fan(state_table: str) -> Iterator[Fanout]:
    """Two rules, 11 repositories under them (and one under none), converged by a fast run; a shard is 4."""
    ports.set_upstream_auth_checker(AcceptingChecker())
    try:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        operations: Counter[str] = Counter()
        dynamodb.meta.events.register(
            "before-call.dynamodb", lambda model, **_: operations.update([str(model.name)]), unique_id="fanout-ddb"
        )
        desired = DesiredStateService(
            DynamoDbStateStore(state_table, dynamodb),
            SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
            lambda: datetime.now(UTC),
        )
        for prefix, spec in RULES.items():
            desired.put_rule(prefix, RuleSpec.model_validate(spec), actor=ACTOR)
        ecr = boto3.client("ecr", region_name=REGION)
        for name in (*REPOSITORIES, *UNRELATED):
            ecr.create_repository(repositoryName=name)
        registry = Boto3EcrRegistry(REGION, boto3.client("ecr", region_name=REGION), sleep=lambda _: None)
        status = DynamoDbStatusStore(state_table, dynamodb, sleep=lambda _: None)
        clock = Clock()
        queue = MemoryShardQueue()
        common: dict[str, Any] = {
            "desired": DynamoDbStateStore(state_table, dynamodb),
            "status": status,
            "registry": lambda _region: registry,
            "clock": clock,
            "stack_region": REGION,
        }
        reconciler = ReconcileService(**common, shards=ShardFanout(queue, shard_size=SHARD_SIZE, deadline_seconds=3600))
        worker = ShardWorkerService(**common)
        found = Fanout(reconciler, worker, queue, registry, status, operations, clock, ecr)
        converged = found.fast()
        assert converged.status is RunStatus.SUCCEEDED, converged.errors
        yield found
    finally:
        ports.set_upstream_auth_checker(None)


def _drift(fan: Fanout, *names: str) -> None:
    """Someone changes the repositories' lifecycle policy behind the controller's back (no event reaches it)."""
    for name in names:
        fan.ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=OTHER_LIFECYCLE)


def _lifecycle(fan: Fanout, name: str) -> str:
    return str(fan.ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])


def _synced(fan: Fanout, prefix: str) -> tuple[bool, str]:
    status = fan.status.rule_status(REGION, prefix)
    assert status is not None
    condition = status.condition(ConditionType.SYNCED)
    assert condition is not None
    return condition.status, condition.reason


# --------------------------------------------------------------------------------------------------
# The coordinator, and the run finished once


def test_a_deep_run_fans_out_and_is_finished_once_by_its_last_shard(fan: Fanout) -> None:
    # GIVEN two repositories drifted out of band (their fingerprints still say converged: a fast run cannot see it)
    drifted = ("k8s/pause-2", "quay/library/image-5")
    _drift(fan, *drifted)
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
    assert all(_lifecycle(fan, name) != OTHER_LIFECYCLE for name in drifted)
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
    _drift(fan, "quay/library/image-1")
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
    _drift(fan, task.repositories[0])
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
    assert _lifecycle(fan, task.repositories[0]) != OTHER_LIFECYCLE
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
    assert _synced(fan, "k8s") == (False, REPOSITORIES_FAILED)
    assert _synced(fan, "quay") == (True, "Converged")
    # AND the next fast run converges the rule's status again (its own findings)
    assert fan.fast().status is RunStatus.SUCCEEDED
    assert _synced(fan, "k8s") == (True, "Converged")


def test_an_access_denied_shard_fails_at_once(fan: Fanout) -> None:
    # GIVEN a shard whose reads are refused (a permission: no retry can help)
    run = fan.deep()
    task = fan.queue.take()
    with failing(fan.registry.client, "list_tags_for_resource", "access-denied"):
        result = fan.deliver(task)
    # THEN it is failed on its first attempt
    assert result.outcome == "failed"
    assert fan.run(run.run_id).shards == ShardCounts(total=3, failed=1)


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
    client = fan.status.client

    def throttled(**_: Any) -> Any:
        raise aws_error("ProvisionedThroughputExceededException", "BatchWriteItem")

    client.batch_write_item = throttled  # type: ignore[method-assign]
    try:
        # WHEN the deep run fans out
        run = fan.deep()
    finally:
        del client.batch_write_item
    # THEN nothing was sent, its shards are failed, and the run finished (no marker left)
    assert fan.queue.sent == []
    assert run.status is RunStatus.FAILED
    assert run.shards == ShardCounts(total=3, failed=3)
    assert any("shards could not be recorded" in e for e in run.errors), run.errors
    assert fan.status.region_status(REGION).fanout is None


def test_a_fanout_whose_count_cannot_be_recorded_is_not_started(fan: Fanout) -> None:
    # GIVEN DynamoDB refusing the fan-out's transaction (marker and count)
    client = fan.status.client
    original = client.transact_write_items

    def refuse_the_fanout(**kwargs: Any) -> Any:
        if any("Update" in item and "#fan" in item["Update"]["UpdateExpression"] for item in kwargs["TransactItems"]):
            raise _cancelled("ThrottlingError")
        return original(**kwargs)

    client.transact_write_items = refuse_the_fanout  # type: ignore[method-assign]
    try:
        run = fan.deep()
    finally:
        del client.transact_write_items
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


@pytest.mark.slow
def test_a_noop_shard_of_500_repositories_costs_its_reads_and_one_write(fan: Fanout) -> None:
    # GIVEN a converged Region of 501 managed repositories, shards of 500
    for i in range(501 - len(REPOSITORIES)):
        fan.ecr.create_repository(repositoryName=f"quay/bulk/image-{i:03d}")
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

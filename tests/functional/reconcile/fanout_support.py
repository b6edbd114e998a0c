"""The world of the fan-out tests (a deep resync's shards, a fast run's changes fanned out), on the embedded AWS.

The reconcile service is the coordinator (a shard queue given); the test is SQS: it takes the tasks the
coordinator sent (:class:`~tests.fakes.shard_queue.MemoryShardQueue`) and delivers them to the worker service, in
order, again, late or never, as a test needs. The state table and ECR are moto's, read through the real adapters.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3

from devstack.aws import ports
from devstack.aws.ports import AcceptingChecker
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.rule import RuleSpec
from ecrcache.models.shards import ShardResult, ShardTask
from ecrcache.models.status import ConditionType, ReconcileRun, RunStatus, RunTrigger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.reconcile_shards import ShardFanout, ShardWorkerService
from tests.conftest import ACCOUNT_ID, REGION
from tests.fakes.shard_queue import MemoryShardQueue
from tests.functional.reconcile.support import aws_error

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


@contextmanager
def fanout_world(state_table: str) -> Iterator[Fanout]:
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
        reconciler.shards = None  # converged in the run's own invocation: its 11 repositories' changes not fanned out
        converged = found.fast()
        assert converged.status is RunStatus.SUCCEEDED, converged.errors
        reconciler.shards = ShardFanout(queue, shard_size=SHARD_SIZE, deadline_seconds=3600)
        yield found
    finally:
        ports.set_upstream_auth_checker(None)


def drift(fan: Fanout, *names: str) -> None:
    """Someone changes the repositories' lifecycle policy behind the controller's back (no event reaches it)."""
    for name in names:
        fan.ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=OTHER_LIFECYCLE)


def lifecycle(fan: Fanout, name: str) -> str:
    return str(fan.ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])


def synced(fan: Fanout, prefix: str) -> tuple[bool, str]:
    status = fan.status.rule_status(REGION, prefix)
    assert status is not None
    condition = status.condition(ConditionType.SYNCED)
    assert condition is not None
    return condition.status, condition.reason


@contextmanager
def shard_items_refused(fan: Fanout) -> Iterator[None]:
    """DynamoDB refuses the shard items (``BatchWriteItem``, after botocore's retries): the marker and the count of
    a fan-out are written, its shards are not."""
    client = fan.status.client

    def throttled(**_: Any) -> Any:
        raise aws_error("ProvisionedThroughputExceededException", "BatchWriteItem")

    client.batch_write_item = throttled  # type: ignore[method-assign]
    try:
        yield
    finally:
        del client.batch_write_item


@contextmanager
def fanout_refused(fan: Fanout, error: Exception) -> Iterator[None]:
    """DynamoDB refuses a fan-out's transaction (the Region's marker and the run's count) with ``error``; every other
    transaction goes through."""
    client = fan.status.client
    original = client.transact_write_items

    def refuse_the_fanout(**kwargs: Any) -> Any:
        if any("Update" in item and "#fan" in item["Update"]["UpdateExpression"] for item in kwargs["TransactItems"]):
            raise error
        return original(**kwargs)

    client.transact_write_items = refuse_the_fanout  # type: ignore[method-assign]
    try:
        yield
    finally:
        del client.transact_write_items

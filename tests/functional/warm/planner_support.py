"""The warm planner wired on moto: desired state, run store, budget and queue are the real adapters;
pull statistics and upstream tag lists are in-memory (their own tests cover them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.adapters.warm_queue import SqsWarmQueue
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.engine.upstream_buckets import BucketLimit
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.warm_run import WarmRun, WarmTask
from ecrcache.services.warm_planner import WarmPlannerService
from tests.conftest import REGION
from tests.fakes.warm import FakeTags, MemoryPullStats

QUEUE_NAME = "ecrcache-warm-test"
CREATED = datetime(2026, 11, 1, tzinfo=UTC)
HUB = "registry-1.docker.io"
HUB_BUCKET = f"{HUB}#hub"
"""The bucket of ``hub_rule()``'s upstream: the registry and credential (``engine.upstream_buckets.bucket_key``)."""


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Planner:
    table: str
    queue_url: str
    clock: Clock = field(default_factory=Clock)
    tags: FakeTags = field(default_factory=FakeTags)
    pulls: MemoryPullStats = field(default_factory=MemoryPullStats)

    def __post_init__(self) -> None:
        self.desired = DynamoDbStateStore(self.table)
        self.runs = DynamoDbWarmRunStore(self.table)
        self.budget = DynamoDbUpstreamBudget(self.table)
        self.queue = SqsWarmQueue(self.queue_url, sleep=lambda _: None)
        self.service = WarmPlannerService(
            desired=self.desired,
            runs=self.runs,
            budget=self.budget,
            queue=self.queue,
            tags=self.tags,
            pulls=self.pulls,
            clock=self.clock,
            stack_region=REGION,
        )

    # -- desired state ---------------------------------------------------------------------------

    def put(self, kind: ResourceKind, name: str, spec: dict[str, Any], *, at: datetime = CREATED) -> None:
        current = self.desired.get(kind, name)
        write = Write(
            kind=kind,
            name=name,
            action=WriteAction.UPDATE if current else WriteAction.CREATE,
            expected_version=current.version if current else None,
            spec=spec,
        )
        self.desired.commit([write], revision=self.desired.snapshot().revision, actor="test", now=at)

    def hub_rule(self, *, regions: tuple[str, ...] = (), credential: str = "hub") -> None:
        self.put(ResourceKind.CREDENTIAL, credential, {"upstream_kind": "docker-hub", "username": "ci-bot"})
        self.put(
            ResourceKind.RULE,
            "docker-hub",
            {"upstream_kind": "docker-hub", "credential": credential, "regions": list(regions)},
        )

    def warm_set(self, name: str = "ci", *, at: datetime = CREATED, **spec: Any) -> None:
        self.put(ResourceKind.WARM_SET, name, {"rule": "docker-hub", "schedule": "cron(0 5 * * ? *)", **spec}, at=at)

    # -- what happened ---------------------------------------------------------------------------

    def sent(self) -> list[WarmTask]:
        """Tasks on the warm queue since the last call (received and deleted)."""
        client = boto3.client("sqs", region_name=REGION)
        found: list[WarmTask] = []
        while messages := client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            found += [WarmTask.model_validate_json(m["Body"]) for m in messages]
            client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return found

    def latest(self, name: str = "ci") -> WarmRun:
        run = self.runs.latest_run(name)
        assert run is not None, f"no run of {name}"
        return run

    def tokens_left(self, limit: BucketLimit, bucket: str = HUB_BUCKET) -> int:
        """Whole tokens in an upstream's bucket now (takes them, then gives them back)."""
        taken = self.budget.take(bucket, 1_000_000, limit=limit, now=self.clock())
        self.budget.refund(bucket, taken, limit=limit, now=self.clock())
        return taken


def make_queue() -> str:
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName=QUEUE_NAME)["QueueUrl"]

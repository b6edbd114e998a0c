"""The deep resync's fan-out through the local stack: ``template.yaml`` provisioned into a real embedded AWS server
as ``make local`` provisions it, the reconciler's ``SHARD_QUEUE_URL`` as the template resolves it, and the event
runner delivering the shard queue to ``ReconcileWorkerFunction`` through the template's mapping
(``ReconcileWorkerFunctionShardTasks``: one shard a batch, partial batch failures, the queue's redrive).

The worker is a fake ``invoke`` recording what it gets (the handler's own tests run the real one); the shard tasks
are sent by the adapter the reconciler sends them with. Nothing is timed: the test waits for what it expects.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests

from devstack.local.provision import LocalStack, provision
from devstack.local.runner import EventRunner
from devstack.local.template import load_template
from ecrcache.adapters.shard_queue import SqsShardQueue
from ecrcache.models.shards import ShardTask
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.local.conftest import reset_process_knobs
from tests.template import ROOT, TEMPLATE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.functional

STACK = "fan"
WORKER = "ReconcileWorkerFunction"
WAIT = 8.0  # seconds a test waits for something that normally happens within a second


@dataclass
class Worker:
    """The worker as the runner invokes it: records each event, reports no failure."""

    events: list[dict[str, Any]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        assert function == WORKER
        with self._changed:
            self.events.append(copy.deepcopy(event))
            self._changed.notify_all()
        return {"batchItemFailures": []}

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.events) >= count, WAIT), self.events
            return list(self.events)


@pytest.fixture
def stack(server: str) -> Iterator[LocalStack]:
    try:
        yield provision(
            load_template(TEMPLATE),
            root=ROOT,
            endpoint_url=server,
            stack_name=STACK,
            region=REGION,
            account_id=ACCOUNT_ID,
            api_url="http://127.0.0.1:9/v1",
        )
    finally:
        requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()
        reset_process_knobs()


def run_worker(stack: LocalStack, worker: Worker) -> EventRunner:
    """The event runner of the worker's template events only (its shard queue's mapping)."""
    runner = EventRunner(
        {WORKER: stack.functions[WORKER]},
        endpoint_url=stack.endpoint_url,
        region=REGION,
        stack_name=STACK,
        invoke=worker,
        poll_interval=0.05,
        retry_backoff=0.01,
        max_backoff=0.05,
    )
    runner.start()
    return runner


def shard(index: int) -> ShardTask:
    return ShardTask(
        run_id="run-1", region=REGION, index=index, repositories=(f"docker-hub/library/r{index:03d}",), revision=3
    )


def test_the_reconcilers_shard_queue_is_the_one_the_worker_is_delivered_from(stack: LocalStack) -> None:
    # GIVEN the template resolved as make local resolves it
    reconciler = stack.functions["ReconcilerFunction"].environment
    queue = stack.resources["ReconcileShardQueue"]
    (event,) = [e for e in stack.functions[WORKER].events if e.type == "SQS"]
    # THEN the reconciler sends to the queue the worker's mapping polls, one shard at a time, at the default width
    assert reconciler["SHARD_QUEUE_URL"] == queue.ref
    assert event.name == "ShardTasks"
    assert event.properties["Queue"] == queue.attributes["Arn"]
    assert event.properties["BatchSize"] == 1
    assert str(event.properties["ScalingConfig"]["MaximumConcurrency"]) == "5"


def test_shard_tasks_sent_by_the_reconcilers_adapter_reach_the_worker_one_a_batch(
    stack: LocalStack, server: str
) -> None:
    # GIVEN the worker's event runner, and three shards sent as the reconciler sends them
    worker = Worker()
    sqs: SQSClient = boto3.client("sqs", endpoint_url=server, region_name=REGION)
    url = stack.functions["ReconcilerFunction"].environment["SHARD_QUEUE_URL"]
    runner = run_worker(stack, worker)
    try:
        assert SqsShardQueue(url, sqs).send([shard(0), shard(1), shard(2)]) == []
        # WHEN the runner delivers them THEN each invocation is one record: an SQS event of the shard queue whose
        # body is the task, first received (the attribute the worker reads for its last attempt)
        events = worker.wait_for(3)
    finally:
        runner.stop()
    arn = stack.resources["ReconcileShardQueue"].attributes["Arn"]
    assert [len(e["Records"]) for e in events] == [1, 1, 1]
    records = [e["Records"][0] for e in events]
    assert {r["eventSource"] for r in records} == {"aws:sqs"}
    assert {r["eventSourceARN"] for r in records} == {arn}
    assert sorted(ShardTask.model_validate_json(r["body"]).index for r in records) == [0, 1, 2]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in records} == {"1"}


def test_the_shard_queue_redrives_to_its_dlq_after_three_receives(stack: LocalStack, server: str) -> None:
    # GIVEN the queue as provisioned from the template
    sqs: SQSClient = boto3.client("sqs", endpoint_url=server, region_name=REGION)
    url = stack.resources["ReconcileShardQueue"].ref
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # THEN its redrive is the template's: the worker's last attempt is the third receive
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.resources["ReconcileShardDlq"].attributes["Arn"],
        "maxReceiveCount": 3,
    }
    assert attributes["VisibilityTimeout"] == "1800"

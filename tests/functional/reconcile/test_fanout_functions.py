"""The deep resync's fan-out through the two functions as deployed, on the embedded AWS: the reconciler's
``lambda_handler`` (its fan-out built by its app from the shard settings) sends the shards to an SQS queue made
with the template's properties; the test is Lambda's SQS event source mapping: it receives each message
(``ApproximateReceiveCount`` as SQS counts it), hands it to ``functions.reconcile_worker.app.lambda_handler`` as
one-record batches (the mapping's ``BatchSize``), and deletes what the answer does not report failed.

The worker's app builds its own service (the state table, ECR and the bus through its adapters); only what a test
makes fail is changed (its ECR client's calls, the time left in the invocation). Every sample event of
``events/reconcile_worker/`` runs through the worker's handler here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pytest

from ecrcache.config import ReconcilerSettings
from ecrcache.engine.shards import REPOSITORIES_FAILED
from ecrcache.models.rule import RuleSpec
from ecrcache.models.shards import ShardCounts, ShardState, ShardTask
from ecrcache.models.status import ConditionType, ReconcileRun, RunStatus, RunTrigger
from ecrcache.services.reconcile import Scope
from ecrcache.services.reconcile_shards import ShardFanout
from tests.conftest import REGION, FakeLambdaContext, load_event, sample_events
from tests.functional.reconcile.support import Look, Reconciler, clients, failing
from tests.template import functions, resources

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from tests.functional.reconcile.conftest import World

pytestmark = pytest.mark.functional

ALICE: Final = "arn:aws:iam::123456789012:user/alice"
SHARD_SIZE: Final = 3
REPOSITORIES: Final = (
    "quay/coreos/etcd",
    "quay/jetstack/cert-manager-controller",
    "quay/prometheus/alertmanager",
    "quay/prometheus/node-exporter",
    "quay/prometheus/prometheus",
    "quay/prometheus/pushgateway",
    "quay/thanos/thanos",
)
"""Seven repositories under the rule: three shards of at most three."""
SAMPLE_RUN: Final = "01JGZ8W5N3Q0R6ZK9V1S2T3U4W"
"""The run the samples' shard tasks belong to (``events/reconcile_worker/``): its first five repositories."""
KEEP_LAST: Final = 10
DRIFTED: Final = 1
OTHER_LIFECYCLE: Final = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": DRIFTED},
                "action": {"type": "expire"},
            }
        ]
    }
)


@dataclass
class ShardMapping:
    """Lambda's SQS event source mapping of the worker (the template's ``ReconcileWorkerFunctionShardTasks``)."""

    sqs: SQSClient
    url: str
    arn: str
    handler: Any
    context: FakeLambdaContext

    def deliver(self, *, context: FakeLambdaContext | None = None) -> list[tuple[ShardTask, dict[str, Any]]]:
        """Receive every visible message, one invocation each; delete those not reported failed (what Lambda does).
        Each message's task and the handler's answer."""
        done: list[tuple[ShardTask, dict[str, Any]]] = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", []):
            [message] = messages
            answer = self.handler(self.event(dict(message)), context or self.context)
            if not answer["batchItemFailures"]:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            else:  # back on the queue at once (the test is the visibility timeout)
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            done.append((ShardTask.model_validate_json(message["Body"]), answer))
            if answer["batchItemFailures"]:
                break  # a failed one comes back: the test delivers it again when it wants
        return done

    def event(self, message: dict[str, Any]) -> dict[str, Any]:
        """The SQS event Lambda hands the function for one message."""
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324 -- SQS's checksum
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": REGION,
                }
            ]
        }


@pytest.fixture
def worker(controller: Reconciler, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The worker function's module, as at a cold start (no service, no ECR client yet)."""
    from functions.reconcile_worker import app

    monkeypatch.setattr(app, "_registries", {})
    app.service.cache_clear()
    try:
        yield app
    finally:
        app.service.cache_clear()


@pytest.fixture
def shards(controller: Reconciler, worker: Any, monkeypatch: pytest.MonkeyPatch) -> ShardMapping:
    """The shard queue with the template's properties, the reconciler's fan-out built by its app from the shard
    settings (a shard of 3 here), and the worker's mapping."""
    from functions.reconciler import app

    sqs = clients().sqs
    template = resources("AWS::SQS::Queue")["ReconcileShardQueue"]["Properties"]
    url = sqs.create_queue(
        QueueName="ecrcache-ReconcileShardQueue",
        Attributes={"VisibilityTimeout": str(template["VisibilityTimeout"])},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    settings = ReconcilerSettings.model_validate(
        {"table_name": "ecrcache-state-test", "shard_queue_url": url, "shard_size": SHARD_SIZE}
    )
    fanout = app.shard_fanout(settings)
    assert isinstance(fanout, ShardFanout)
    monkeypatch.setattr(controller.service, "shards", fanout)
    context = dataclasses.replace(controller.context, remaining_millis=300_000)  # the worker's Timeout
    return ShardMapping(sqs, url, arn, worker.lambda_handler, context)


def _converged(controller: Reconciler, world: World, names: tuple[str, ...]) -> tuple[str, ...]:
    """A rule (lifecycle: keep the last 10) and its repositories, converged by a fast run in its own invocation (its
    changes not fanned out)."""
    world.desired.put_rule("quay", _keeping(KEEP_LAST), actor=ALICE)
    for name in names:
        world.ecr.create_repository(repositoryName=name)
    fanout, controller.service.shards = controller.service.shards, None
    try:
        assert controller.resync("fast").status is RunStatus.SUCCEEDED
    finally:
        controller.service.shards = fanout
    return names


def _keeping(count: int) -> RuleSpec:
    return RuleSpec.model_validate({"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": count}}})


def _converged_then_drifted(controller: Reconciler, world: World, names: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`_converged`, then their lifecycle policies changed behind the controller's back (no event delivered:
    only a deep read can see it)."""
    _converged(controller, world, names)
    for name in names:
        world.ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=OTHER_LIFECYCLE)
    return names


@pytest.fixture
def repositories(controller: Reconciler, world: World) -> tuple[str, ...]:
    return _converged_then_drifted(controller, world, REPOSITORIES)


def _granted_ecr(function: str) -> set[str]:
    """The ECR actions the function's role allows (template.yaml)."""
    statements = [s for p in functions()[function]["Policies"] if isinstance(p, dict) for s in p["Statement"]]
    return {str(a).removeprefix("ecr:") for s in statements for a in s["Action"] if str(a).startswith("ecr:")}


def _kept(look: Look, repository: str) -> int | None:
    policy = look.lifecycle(repository)
    return None if policy is None else int(policy["rules"][0]["selection"]["countNumber"])


def _synced(look: Look) -> tuple[bool, str]:
    status = look.rule_status("quay")
    assert status is not None
    condition = status.condition(ConditionType.SYNCED)
    assert condition is not None
    return condition.status, condition.reason


def _run(look: Look, run_id: str) -> ReconcileRun:
    found = look.run(run_id)
    assert found is not None
    return found


def test_a_deep_resync_fans_out_through_the_shard_queue_and_the_worker_finishes_it(
    controller: Reconciler, shards: ShardMapping, repositories: tuple[str, ...], look: Look, worker: Any
) -> None:
    # WHEN the deep resync's schedule reaches the reconciler
    run = controller.resync("deep")
    # THEN its Region's deep read went to the shard queue: the run is running with three shards
    assert run.status is RunStatus.RUNNING, run.errors
    assert run.shards == ShardCounts(total=3)
    assert [_kept(look, name) for name in repositories] == [DRIFTED] * len(repositories)
    # WHEN the mapping delivers them to the worker, one a batch
    delivered = shards.deliver()
    # THEN each was worked (no record failed), every repository has the rule's lifecycle, and the last shard
    # finished the run
    assert [answer for _, answer in delivered] == [{"batchItemFailures": []}] * 3
    assert sorted(name for task, _ in delivered for name in task.repositories) == sorted(repositories)
    assert [_kept(look, name) for name in repositories] == [KEEP_LAST] * len(repositories)
    finished = _run(look, run.run_id)
    assert finished.status is RunStatus.SUCCEEDED, finished.errors
    assert finished.shards == ShardCounts(total=3, done=3)
    assert finished.summary.get("put_lifecycle_policy") == len(repositories)
    assert _synced(look) == (True, "Converged")
    # AND the worker made only ECR calls its role grants (moto enforces no IAM: this does)
    assert set(worker.registry(REGION).calls) <= _granted_ecr("ReconcileWorkerFunction")
    assert {"DescribeRepositories", "GetLifecyclePolicy", "PutLifecyclePolicy"} <= set(worker.registry(REGION).calls)


def test_a_redelivered_shard_of_a_finished_run_is_dropped(
    controller: Reconciler, shards: ShardMapping, repositories: tuple[str, ...], look: Look, worker: Any
) -> None:
    # GIVEN a fanned-out run its workers finished
    run = controller.resync("deep")
    [(first, _), *_] = shards.deliver()
    finished = _run(look, run.run_id)
    # WHEN a shard's message comes again (SQS delivers at least once; a redrive from the DLQ)
    shards.sqs.send_message(QueueUrl=shards.url, MessageBody=first.model_dump_json())
    [(again, answer)] = shards.deliver()
    # THEN it is answered without a failure, and the run is as it was
    assert (again, answer) == (first, {"batchItemFailures": []})
    assert _run(look, run.run_id) == finished


def test_a_throttled_shard_is_retried_alone_then_failed_on_its_last_attempt(
    controller: Reconciler, shards: ShardMapping, repositories: tuple[str, ...], look: Look, worker: Any
) -> None:
    # GIVEN a fanned-out run, and ECR throttling the worker's reads of the last shard's repositories (after
    # botocore's retries)
    run = controller.resync("deep")
    last = set(repositories[2 * SHARD_SIZE :])
    ecr = worker.registry(REGION).client
    with failing(ecr, "get_lifecycle_policy", lambda call: "throttling" if call["repositoryName"] in last else None):
        # WHEN the mapping delivers the shards
        delivered = shards.deliver()
        # THEN the two others are done; the throttled one is reported failed to SQS (delivered again alone), and
        # recorded retrying
        assert [answer["batchItemFailures"] != [] for _, answer in delivered] == [False, False, True]
        assert _run(look, run.run_id).shards == ShardCounts(total=3, done=2, retrying=1)
        # WHEN it comes a second time, and a third (its last attempt: maxReceiveCount 3), still throttled
        again = shards.deliver()
        final = shards.deliver()
    # THEN the second is reported failed again; the third is not (SQS would dead-letter it): the shard is failed,
    # which finishes the run as partial, and the rule says its repositories failed
    assert [answer["batchItemFailures"] != [] for _, answer in again] == [True]
    assert [answer for _, answer in final] == [{"batchItemFailures": []}]
    finished = _run(look, run.run_id)
    assert finished.status is RunStatus.PARTIAL, finished.errors
    assert finished.shards == ShardCounts(total=3, done=2, failed=1)
    assert any("shard 2" in error for error in finished.errors)
    assert _synced(look) == (False, REPOSITORIES_FAILED)
    assert shards.sqs.receive_message(QueueUrl=shards.url).get("Messages", []) == []


def test_a_shard_is_not_started_without_enough_time_left(
    controller: Reconciler, shards: ShardMapping, repositories: tuple[str, ...], look: Look, worker: Any
) -> None:
    # GIVEN a fanned-out run, and an invocation with a minute left (less than a shard may take)
    run = controller.resync("deep")
    short = dataclasses.replace(shards.context, remaining_millis=60_000)
    calls = worker.registry(REGION).calls.copy()
    # WHEN a shard is delivered THEN it is reported failed to SQS without an ECR call, and recorded retrying
    [(_, answer)] = shards.deliver(context=short)
    assert answer["batchItemFailures"] != []
    assert worker.registry(REGION).calls == calls
    assert _run(look, run.run_id).shards == ShardCounts(total=3, retrying=1)
    # WHEN the shards come to invocations with their full time THEN the run finishes
    shards.deliver()
    assert _run(look, run.run_id).shards == ShardCounts(total=3, done=3)


def test_the_app_fans_out_only_with_a_shard_queue() -> None:
    from functions.reconciler import app

    # no SHARD_QUEUE_URL: every deep read stays in the reconciler's invocation
    assert app.shard_fanout(ReconcilerSettings.model_validate({"table_name": "ecrcache-state-test"})) is None
    # with one: the settings' size and deadline
    given = ReconcilerSettings.model_validate(
        {
            "table_name": "ecrcache-state-test",
            "shard_queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/shards",
            "shard_size": "250",
            "shard_deadline_seconds": "7200",
        }
    )
    fanout = app.shard_fanout(given)
    assert fanout is not None
    assert (fanout.shard_size, fanout.deadline.total_seconds()) == (250, 7200)
    assert fanout.queue.queue_url == given.shard_queue_url  # type: ignore[attr-defined]
    # AND shards as large as their reads fit a worker's time at the ECR request-rate ceiling
    slow = app.shard_fanout(given.model_copy(update={"shard_size": 500, "ecr_request_rate": 8.0}))
    assert slow is not None and slow.shard_size == 398


def test_the_function_keeps_one_registry_per_region(worker: Any) -> None:
    registry = worker.registry("eu-west-1")
    assert (registry.region, registry.client.meta.region_name) == ("eu-west-1", "eu-west-1")
    assert worker.registry("eu-west-1") is registry


# --------------------------------------------------------------------------------------------------
# The sample events


@pytest.fixture
def sample_run(controller: Reconciler, shards: ShardMapping, world: World, look: Look) -> ReconcileRun:
    """The run the samples belong to: a deep run of five drifted repositories in shards of three (the samples')."""
    _converged_then_drifted(controller, world, REPOSITORIES[:5])
    run = controller.service.reconcile(Scope(deep=True), RunTrigger.SCHEDULE, run_id=SAMPLE_RUN)
    assert run.shards == ShardCounts(total=2), run.errors
    return run


def _tasks(event: dict[str, Any]) -> list[ShardTask]:
    return [ShardTask.model_validate_json(record["body"]) for record in event["Records"]]


@pytest.mark.parametrize("sample", sample_events("reconcile_worker"))
def test_reconcile_worker_sample_event(
    sample: str, sample_run: ReconcileRun, shards: ShardMapping, look: Look, worker: Any
) -> None:
    event = load_event(sample)
    if sample.endswith("malformed_body.json"):
        # WHEN a body that is not a shard task arrives THEN it is dropped (no item failure), the run untouched
        assert worker.lambda_handler(event, shards.context) == {"batchItemFailures": []}
        assert _run(look, SAMPLE_RUN) == sample_run
        return
    # GIVEN the sample is a task the coordinator sent (the same shard, as SQS carries it)
    [task] = _tasks(event)
    sent = {t.index: t for t, _ in _queued(shards)}
    assert sent[task.index] == task
    assert [_kept(look, name) for name in task.repositories] == [DRIFTED] * len(task.repositories)
    # WHEN the function is invoked with it THEN the shard is worked and reported done (also on its last attempt)
    assert worker.lambda_handler(json.loads(json.dumps(event)), shards.context) == {"batchItemFailures": []}
    shard = look.status.shard(SAMPLE_RUN, REGION, task.index)
    assert shard is not None and shard.state is ShardState.DONE
    assert [_kept(look, name) for name in task.repositories] == [KEEP_LAST] * len(task.repositories)


def _queued(shards: ShardMapping) -> list[tuple[ShardTask, str]]:
    """The tasks on the queue (received and put back: the test only looks)."""
    found = []
    for message in shards.sqs.receive_message(QueueUrl=shards.url, MaxNumberOfMessages=10).get("Messages", []):
        found.append((ShardTask.model_validate_json(message["Body"]), message["ReceiptHandle"]))
        shards.sqs.change_message_visibility(
            QueueUrl=shards.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return found


def test_a_fast_resync_changing_more_repositories_than_a_shard_fans_them_out_to_the_worker(
    controller: Reconciler, shards: ShardMapping, world: World, look: Look, worker: Any
) -> None:
    # GIVEN the rule's repositories converged, then its keep_last changed (more repositories than one shard)
    names = _converged(controller, world, REPOSITORIES)
    world.desired.put_rule("quay", _keeping(KEEP_LAST + 5), actor=ALICE)
    # WHEN the fast resync's schedule reaches the reconciler
    run = controller.resync("fast")
    # THEN it wrote no repository: their changes went to the shard queue as fast shards; the rule is Applying
    assert run.status is RunStatus.RUNNING, run.errors
    assert [_kept(look, name) for name in names] == [KEEP_LAST] * len(names)
    assert _synced(look) == (False, "Applying")
    # WHEN the mapping delivers them to the worker
    delivered = shards.deliver()
    # THEN every repository has the new keep_last, the run succeeded, the rule is Synced, and the worker made only
    # calls its role grants
    assert all(not task.deep for task, _ in delivered)
    assert [answer for _, answer in delivered] == [{"batchItemFailures": []}] * len(delivered)
    assert [_kept(look, name) for name in names] == [KEEP_LAST + 5] * len(names)
    assert _run(look, run.run_id).status is RunStatus.SUCCEEDED
    assert _synced(look) == (True, "Converged")
    assert set(worker.registry(REGION).calls) <= _granted_ecr("ReconcileWorkerFunction")

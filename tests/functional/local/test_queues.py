"""The local stack's SQS path against a real embedded AWS server: provisioning, rules, SQS event sources.

``queue_stack.yaml`` (next to this file) is provisioned into the embedded AWS exactly as ``make
local`` provisions ``template.yaml``: queues with a redrive policy, a raw ``AWS::Events::Rule``
with an SQS target (issue 11's pull events rule), functions with ``SQS`` events and env vars that
name SAM's implicit function roles. The functions are a fake ``invoke`` that records what it gets.
Batches are counted, never timed; a window or visibility that only makes a test slow is overridden
per test.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests

from devstack.aws import events
from devstack.local.invoke import FunctionError, InvokeError
from devstack.local.provision import LocalStack, provision
from devstack.local.runner import EventRunner
from devstack.local.template import FunctionSpec, TemplateError, load_template
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.local.conftest import reset_process_knobs
from tests.functional.local.logs import logged

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.functional

TEMPLATE = Path(__file__).with_name("queue_stack.yaml")
STACK = "qs"
WAIT = 8.0  # seconds a test waits for something that normally happens within a second or two
CLOUDTRAIL = "AWS API Call via CloudTrail"


@dataclass
class QueueStack:
    endpoint_url: str
    local: LocalStack
    sqs: SQSClient
    events: EventBridgeClient

    def url(self, logical_id: str) -> str:
        return self.local.resources[logical_id].ref

    def functions(self, **overrides: dict[str, Any]) -> dict[str, FunctionSpec]:
        """The provisioned functions; ``Event={prop: value}`` overrides an event's properties."""
        specs = dict(self.local.functions)
        for logical_id, spec in specs.items():
            events_ = tuple(
                replace(e, properties={**copy.deepcopy(dict(e.properties)), **overrides[e.name]})
                if e.name in overrides
                else e
                for e in spec.events
            )
            specs[logical_id] = replace(spec, events=events_)
        return specs

    def send(self, logical_id: str, *bodies: dict[str, Any]) -> list[str]:
        return [
            self.sqs.send_message(QueueUrl=self.url(logical_id), MessageBody=json.dumps(body))["MessageId"]
            for body in bodies
        ]

    def pull(self, caller: str, **extra: Any) -> None:
        detail = {
            "eventSource": "ecr.amazonaws.com",
            "eventName": "BatchGetImage",
            "userIdentity": {"arn": caller},
            "requestParameters": {"repositoryName": "docker-hub/library/node", **extra},
        }
        entry: Any = {"Source": "aws.ecr", "DetailType": CLOUDTRAIL, "Detail": json.dumps(detail)}
        assert self.events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    def counts(self, logical_id: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait_counts(self, logical_id: str, expected: tuple[int, int], timeout: float = WAIT) -> tuple[int, int]:
        """The queue's counts once they are ``expected`` (or whatever they are after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while (counts := self.counts(logical_id)) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return counts

    def drain(self, logical_id: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """Receive (and delete) ``count`` messages of a queue, waiting up to ``timeout``."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for message in self.sqs.receive_message(
                QueueUrl=self.url(logical_id), MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
            ).get("Messages", []):
                found.append(dict(message))
                self.sqs.delete_message(QueueUrl=self.url(logical_id), ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.05)
        return found


def _provision(endpoint_url: str, **parameters: str) -> LocalStack:
    return provision(
        load_template(TEMPLATE),
        root=TEMPLATE.parent,
        endpoint_url=endpoint_url,
        stack_name=STACK,
        region=REGION,
        account_id=ACCOUNT_ID,
        api_url="http://127.0.0.1:9/v1",
        parameters=parameters,
    )


@pytest.fixture
def stack(server: str) -> Iterator[QueueStack]:
    try:
        yield QueueStack(
            endpoint_url=server,
            local=_provision(server),
            sqs=boto3.client("sqs", endpoint_url=server, region_name=REGION),
            events=boto3.client("events", endpoint_url=server, region_name=REGION),
        )
    finally:
        requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()
        reset_process_knobs()


Behaviour = Callable[[str, int, dict[str, Any]], Any]


@dataclass
class FakeFunctions:
    """Records every invocation per function; ``behaviour(function, call_number, event)`` answers or raises."""

    behaviour: Behaviour | None = None
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        with self._changed:
            self.calls.setdefault(function, []).append(copy.deepcopy(event))
            number = len(self.calls[function])
            self._changed.notify_all()
        if self.behaviour is not None:
            return self.behaviour(function, number, event)
        return {"batchItemFailures": []}

    def wait_for(self, function: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.calls.get(function, [])) >= count, timeout), self.calls
            return list(self.calls[function])

    def bodies(self, function: str) -> list[list[Any]]:
        """Each invocation's message bodies (parsed)."""
        with self._changed:
            return [[json.loads(r["body"]) for r in call["Records"]] for call in self.calls.get(function, [])]


@dataclass
class Runners:
    stack: QueueStack
    logs: list[str] = field(default_factory=list)
    started: list[EventRunner] = field(default_factory=list)

    def start(self, functions: FakeFunctions, **overrides: dict[str, Any]) -> EventRunner:
        runner = EventRunner(
            self.stack.functions(**overrides),
            endpoint_url=self.stack.endpoint_url,
            region=REGION,
            stack_name=STACK,
            invoke=functions,
            log=self.logs.append,
            poll_interval=0.05,
            retry_backoff=0.01,
            max_backoff=0.05,
        )
        self.started.append(runner)
        runner.start()
        return runner


@pytest.fixture
def runners(stack: QueueStack) -> Iterator[Runners]:
    made = Runners(stack)
    yield made
    for runner in made.started:
        started = time.monotonic()
        runner.stop()
        assert time.monotonic() - started < 2.0
        assert list(runner.threads()) == []


# Fast pull events: the template's 1000/30 s would hold a single event for 30 s.
FAST_PULLS: dict[str, Any] = {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0}
OTHER = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ci-runner/i-0123"


# --------------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------------


def test_queues_rules_and_roles_are_provisioned_from_the_template(stack: QueueStack) -> None:
    local = stack.local
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.url("PullsQueue"), AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "1"  # !Ref PullsVisibility
    assert attributes["MessageRetentionPeriod"] == "86400"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": local.resources["PullsDlq"].attributes["Arn"],
        "maxReceiveCount": 2,
    }
    assert local.resources["WorkQueue"].attributes["QueueName"] == f"{STACK}-work"  # QueueName: !Sub
    assert "ExtraQueue" not in local.resources  # its Condition is false
    assert local.resources["PullsQueuePolicy"].attributes == {}  # accepted, not enforced

    rule = stack.events.describe_rule(Name=f"{STACK}-PullEventsRule")
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    assert rule["Arn"] == local.resources["PullEventsRule"].attributes["Arn"]
    worker_role = local.resources["WorkerFunctionRole"]
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"]["userIdentity"]["arn"] == [
        {"anything-but": {"prefix": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{worker_role.ref}/"}}
    ]
    targets = stack.events.list_targets_by_rule(Rule=f"{STACK}-PullEventsRule")["Targets"]
    assert [(t["Id"], t["Arn"]) for t in targets] == [("pulls", local.resources["PullsQueue"].attributes["Arn"])]

    environment = local.functions["StatsFunction"].environment
    assert environment == {
        "WORKER_ROLE_ARN": worker_role.attributes["Arn"],
        "WORKER_ROLE_NAME": worker_role.ref,
        "PULLS_QUEUE_URL": stack.url("PullsQueue"),
        "PULLS_QUEUE_NAME": f"{STACK}-PullsQueue",
    }


def test_the_implicit_function_role_is_the_role_the_function_runs_as(stack: QueueStack) -> None:
    """``!GetAtt WorkerFunctionRole.Arn`` names the role whose session the worker's host uses."""
    credentials = stack.local.credentials["WorkerFunction"]
    sts = boto3.client(
        "sts",
        endpoint_url=stack.endpoint_url,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    )
    caller = sts.get_caller_identity()["Arn"]
    role = stack.local.resources["WorkerFunctionRole"]
    assert caller == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role.ref}/{STACK}-WorkerFunction"
    assert role.attributes["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.ref}"


def test_a_condition_that_holds_creates_the_resource(server: str) -> None:
    try:
        local = _provision(server, CreateExtras="true")
        assert local.resources["ExtraQueue"].attributes["QueueName"] == f"{STACK}-ExtraQueue"
    finally:
        requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"Type": "AWS::Kinesis::Stream"}, "New: resource type AWS::Kinesis::Stream is not reproduced"),
        (
            {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(1 hour)", "Targets": []}},
            "New: a scheduled rule never fires locally",
        ),
        (
            {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": {"source": ["aws.ecr"]},
                    "Targets": [{"Id": "fn", "Arn": {"Fn::GetAtt": ["StatsFunction", "Arn"]}}],
                },
            },
            "target fn .*: locally only SQS targets are delivered",
        ),
        (
            {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": {"source": ["aws.ecr"]},
                    "Targets": [{"Id": "q", "Arn": {"Fn::GetAtt": ["PullsQueue", "Arn"]}, "InputPath": "$.detail"}],
                },
            },
            "target q: InputPath not reproduced locally",
        ),
        (
            {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": {"source": ["x"]}, "State": "PAUSED"}},
            "New: State must be one of ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
        ),
        (
            {"Type": "AWS::SQS::Queue", "Properties": {"RedrivePolicy": {"maxReceiveCount": 3}}},
            "New: RedrivePolicy needs deadLetterTargetArn and maxReceiveCount",
        ),
    ],
)
def test_what_the_local_stack_cannot_reproduce_is_refused_by_name(
    server: str, tmp_path: Path, resource: dict[str, Any], message: str
) -> None:
    template = load_template(TEMPLATE)
    template["Resources"]["New"] = resource
    try:
        with pytest.raises(TemplateError, match=message):
            provision(
                template,
                root=tmp_path,
                endpoint_url=server,
                stack_name=STACK,
                region=REGION,
                account_id=ACCOUNT_ID,
                api_url="http://127.0.0.1:9/v1",
            )
    finally:
        requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()


# --------------------------------------------------------------------------------------------------
# EventBridge rule -> queue -> SQS event source
# --------------------------------------------------------------------------------------------------


def test_a_put_event_reaches_the_sqs_function_in_lambdas_record_shape(stack: QueueStack, runners: Runners) -> None:
    functions = FakeFunctions()
    runners.start(functions, PullEvents=FAST_PULLS)
    worker = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{stack.local.resources['WorkerFunctionRole'].ref}/w"
    stack.pull(f"{worker}-session", imageTag="excluded")  # the warmer's own pull: the rule drops it
    stack.pull(OTHER, imageTag="18-alpine")

    (call,) = functions.wait_for("StatsFunction", 1)
    (record,) = call["Records"]
    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == stack.local.resources["PullsQueue"].attributes["Arn"]
    assert record["awsRegion"] == REGION
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 - SQS's checksum
    assert record["messageAttributes"] == {}
    assert set(record["attributes"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert all(isinstance(v, str) for v in record["attributes"].values())
    envelope = json.loads(record["body"])  # the EventBridge envelope, as an SQS target receives it
    assert envelope["detail-type"] == CLOUDTRAIL
    assert envelope["account"] == ACCOUNT_ID
    assert envelope["detail"]["requestParameters"]["imageTag"] == "18-alpine"
    assert stack.wait_counts("PullsQueue", (0, 0)) == (0, 0)  # deleted after success; the excluded pull never queued
    assert functions.bodies("StatsFunction") == [[envelope]]
    assert logged(runners.logs, lambda line: line.startswith("StatsFunction ← PullEvents (SQS, 1 record) ok"))


def test_an_embedded_ecr_read_event_reaches_a_rule_enabled_for_management_events(
    stack: QueueStack, runners: Runners
) -> None:
    functions = FakeFunctions()
    runners.start(functions, PullEvents=FAST_PULLS)
    detail = events.cloudtrail_event(
        ACCOUNT_ID, REGION, "BatchGetImage", {"repositoryName": "docker-hub/library/node"}, None, OTHER, read_only=True
    )
    events.emit(ACCOUNT_ID, REGION, source="aws.ecr", detail_type=CLOUDTRAIL, detail=detail)

    (call,) = functions.wait_for("StatsFunction", 1, timeout=3.0)
    assert json.loads(call["Records"][0]["body"])["detail"]["eventName"] == "BatchGetImage"


# --------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------


def test_the_window_fills_batches_up_to_the_batch_size(stack: QueueStack, runners: Runners) -> None:
    """12 queued messages, BatchSize 10, a 1 s window: one full batch at once, then the rest."""
    sent = stack.send("WorkQueue", *({"kind": "warm", "n": n} for n in range(12)))
    functions = FakeFunctions()
    runners.start(functions)

    calls = functions.wait_for("WorkerFunction", 2)
    assert [len(c["Records"]) for c in calls] == [10, 2]
    assert sorted(r["messageId"] for c in calls for r in c["Records"]) == sorted(sent)
    assert stack.wait_counts("WorkQueue", (0, 0)) == (0, 0)


def test_a_partial_batch_waits_for_the_window_and_is_released_at_stop(stack: QueueStack, runners: Runners) -> None:
    """A full batch is invoked at once; a partial one waits for the window, and a stop puts it back untouched."""
    functions = FakeFunctions()
    runner = runners.start(functions, Work={"BatchSize": 5, "MaximumBatchingWindowInSeconds": 300})
    stack.send("WorkQueue", *({"kind": "warm", "n": n} for n in range(10)))
    calls = functions.wait_for("WorkerFunction", 2)
    assert [len(c["Records"]) for c in calls] == [5, 5]

    held = stack.send("WorkQueue", {"kind": "warm", "n": 10}, {"kind": "warm", "n": 11})
    assert stack.wait_counts("WorkQueue", (0, 2)) == (0, 2)  # received, held in the window
    runner.stop()

    assert list(runner.threads()) == []
    assert len(functions.calls["WorkerFunction"]) == 2  # never invoked with the partial batch
    assert stack.counts("WorkQueue") == (2, 0)  # visible again at once, for the next runner
    again = stack.drain("WorkQueue", 2)
    assert sorted(m["MessageId"] for m in again) == sorted(held)


def test_messages_that_match_no_filter_are_deleted_without_an_invocation(stack: QueueStack, runners: Runners) -> None:
    functions = FakeFunctions()
    runners.start(functions, Work={"MaximumBatchingWindowInSeconds": 0})
    stack.send("WorkQueue", {"kind": "other"}, {"kind": "warm", "n": 1})

    functions.wait_for("WorkerFunction", 1)
    assert stack.wait_counts("WorkQueue", (0, 0)) == (0, 0)
    assert [b for call in functions.bodies("WorkerFunction") for b in call] == [{"kind": "warm", "n": 1}]
    assert logged(runners.logs, lambda line: "1 record matched no filter: deleted" in line)


# --------------------------------------------------------------------------------------------------
# Failures: partial batch responses, whole-batch failures, redrive
# --------------------------------------------------------------------------------------------------


def test_reported_item_failures_reappear_alone_after_the_visibility_timeout(
    stack: QueueStack, runners: Runners
) -> None:
    def behaviour(function: str, number: int, event: dict[str, Any]) -> Any:
        if number == 1:  # the second message failed
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
        return {"batchItemFailures": []}

    sent = stack.send("WorkQueue", *({"kind": "warm", "n": n} for n in range(3)))
    functions = FakeFunctions(behaviour)
    # No window: a window as long as the 1 s visibility timeout would receive the batch twice.
    runners.start(functions, Work={"MaximumBatchingWindowInSeconds": 0})

    first, second = functions.wait_for("WorkerFunction", 2)
    failed = first["Records"][1]["messageId"]
    assert sorted(r["messageId"] for r in first["Records"]) == sorted(sent)
    assert [r["messageId"] for r in second["Records"]] == [failed]
    assert second["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert logged(runners.logs, lambda line: "1 of 3 records reported failed" in line)


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "wrong key"}]},
        {"batchItemFailures": "not a list"},
    ],
)
def test_an_invalid_partial_batch_response_fails_the_whole_batch(
    stack: QueueStack, runners: Runners, response: dict[str, Any]
) -> None:
    functions = FakeFunctions(lambda _f, number, _e: response if number == 1 else None)
    sent = stack.send("WorkQueue", {"kind": "warm", "n": 1}, {"kind": "warm", "n": 2})
    runners.start(functions, Work={"MaximumBatchingWindowInSeconds": 0})

    first = functions.wait_for("WorkerFunction", 1)[0]
    assert sorted(r["messageId"] for r in first["Records"]) == sorted(sent)
    # Both reappear (together, or one just before the other) after the visibility timeout.
    deadline = time.monotonic() + WAIT
    while len(again := [r for c in functions.calls["WorkerFunction"][1:] for r in c["Records"]]) < 2:
        assert time.monotonic() < deadline, functions.calls
        time.sleep(0.05)
    assert sorted(r["messageId"] for r in again) == sorted(sent)
    assert {r["attributes"]["ApproximateReceiveCount"] for r in again} == {"2"}


def test_a_message_failing_max_receive_count_times_moves_to_the_dead_letter_queue(
    stack: QueueStack, runners: Runners
) -> None:
    """The queue's RedrivePolicy (maxReceiveCount 2): two failed invocations, then the DLQ; nothing more."""

    def behaviour(function: str, number: int, event: dict[str, Any]) -> Any:
        raise FunctionError(function, "RuntimeError", "cannot count")

    functions = FakeFunctions(behaviour)
    runners.start(functions, PullEvents=FAST_PULLS)
    stack.pull(OTHER, imageTag="poison")

    (dead,) = stack.drain("PullsDlq", 1)
    assert json.loads(dead["Body"])["detail"]["requestParameters"]["imageTag"] == "poison"
    calls = functions.calls["StatsFunction"]
    assert [c["Records"][0]["attributes"]["ApproximateReceiveCount"] for c in calls] == ["1", "2"]
    assert stack.wait_counts("PullsQueue", (0, 0)) == (0, 0)  # nothing left to invoke with
    assert logged(runners.logs, lambda line: "failed: RuntimeError: cannot count; the batch reappears after 1s" in line)


def test_an_unreachable_function_is_retried_with_the_same_receive(stack: QueueStack, runners: Runners) -> None:
    def behaviour(function: str, number: int, event: dict[str, Any]) -> Any:
        if number == 1:
            raise InvokeError("host not running")
        return None

    functions = FakeFunctions(behaviour)
    stack.send("WorkQueue", {"kind": "warm"})
    runners.start(functions, Work={"MaximumBatchingWindowInSeconds": 0})

    first, second = functions.wait_for("WorkerFunction", 2)
    assert first["Records"] == second["Records"]  # same receipt handle, ApproximateReceiveCount 1
    assert second["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1"
    assert logged(runners.logs, lambda line: "not invoked: InvokeError: host not running; retrying" in line)


# --------------------------------------------------------------------------------------------------
# Stopping
# --------------------------------------------------------------------------------------------------


def test_stop_during_an_invocation_lets_it_finish_and_settle(stack: QueueStack, runners: Runners) -> None:
    entered, release = threading.Event(), threading.Event()

    def behaviour(function: str, number: int, event: dict[str, Any]) -> Any:
        entered.set()
        release.wait(WAIT)
        return {"batchItemFailures": []}

    functions = FakeFunctions(behaviour)
    stack.send("WorkQueue", {"kind": "warm", "n": 1})
    runner = runners.start(functions, Work={"MaximumBatchingWindowInSeconds": 0})
    assert entered.wait(WAIT)
    stack.send("WorkQueue", {"kind": "warm", "n": 2})
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 2.0
    release.set()

    deadline = time.monotonic() + WAIT
    while list(runner.threads()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(runner.threads()) == []
    assert functions.bodies("WorkerFunction") == [[{"kind": "warm", "n": 1}]]  # no further invocation
    assert stack.counts("WorkQueue") == (1, 0)  # the finished one deleted, the next one untouched

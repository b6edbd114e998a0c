"""The local event runner against a real embedded AWS server (HTTP, in this process).

The functions are ``template.yaml``'s, resolved against resources created in the server; the
function itself is a fake ``invoke`` that records what it receives and fails on demand. Template
values that only make a test slow (the 2 s batching window, 10 stream retries) are overridden per
test; everything else (filters, patterns, retry policies, destinations) is the template's.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack.local.control import Controls, fire_main
from devstack.local.gateway import ApiGateway
from devstack.local.invoke import FunctionError, FunctionTimeout, InvokeError
from devstack.local.runner import EventRunner
from devstack.local.runner import aws as runner_module
from devstack.local.template import (
    FunctionEvent,
    FunctionSpec,
    PhysicalResource,
    Resolver,
    implicit_roles,
    load_template,
    resolve_functions,
)
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.local.conftest import reset_process_knobs
from tests.functional.local.logs import logged
from tests.template import ROOT, TEMPLATE, table_definition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.functional

FUNCTION = "ReconcilerFunction"
STACK = "ecrcache-test"
TABLE = "ecrcache-test-StateTable"
DLQ = "ecrcache-test-ReconcilerDlq"
DELETE = object()  # an override that removes a property
WAIT = 5.0  # seconds a test waits for something that normally happens within a few hundred ms


# --------------------------------------------------------------------------------------------------
# The embedded AWS and the stack's resources
# --------------------------------------------------------------------------------------------------


ECR_RULES = {"EcrDrift": "ReconcilerEcrDriftRule", "PullThroughCacheAction": "ReconcilerPullThroughCacheActionRule"}
"""The template routes ECR's events to the reconciler through its queue (``EcrEvents``); the runner's own
``EventBridgeRule`` delivery is exercised with the same patterns as direct events of the function, each with
its rule's retry policy and the function's DLQ."""


def _ecr_rule_events(template: dict[str, Any], resolver: Resolver) -> list[FunctionEvent]:
    made = []
    for name, logical_id in ECR_RULES.items():
        rule = template["Resources"][logical_id]["Properties"]
        (target,) = rule["Targets"]
        properties = {
            "Pattern": resolver.resolve(rule["EventPattern"]),
            "RetryPolicy": {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": resolver.resolve({"Fn::GetAtt": ["ReconcilerDlq", "Arn"]})},
        }
        assert target["Arn"] == {"Fn::GetAtt": ["ReconcilerEventsQueue", "Arn"]}
        made.append(FunctionEvent(name=name, type="EventBridgeRule", properties=properties))
    return made


@dataclass
class Stack:
    endpoint_url: str
    dynamodb: DynamoDBClient
    sqs: SQSClient
    events: EventBridgeClient
    ecr: ECRClient
    stream_arn: str
    dlq_url: str
    dlq_arn: str

    def functions(self, **overrides: dict[str, Any]) -> dict[str, FunctionSpec]:
        """The template's functions resolved against this stack; ``Event={prop: value}`` overrides."""
        template = load_template(TEMPLATE)
        resources = {
            "StateTable": PhysicalResource(
                ref=TABLE,
                attributes={"Arn": self.stream_arn.split("/stream/")[0], "StreamArn": self.stream_arn},
            ),
            "ReconcilerDlq": PhysicalResource(ref=self.dlq_url, attributes={"Arn": self.dlq_arn, "QueueName": DLQ}),
            "RestApi": PhysicalResource(ref="localapi"),
        }
        # SAM's implicit function roles (the warm worker's is named in other functions' environments).
        for role in implicit_roles(template):
            resources[role] = PhysicalResource(ref=role, attributes={"Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"})
        # The template's own roles (the reconciler's and the API's EVENT_FORWARD_ROLE_ARN names EventForwardRole).
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role":
                arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{STACK}-{logical_id}"
                resources[logical_id] = PhysicalResource(ref=f"{STACK}-{logical_id}", attributes={"Arn": arn})
        # The template's other queues (pull events, warm tasks, their DLQs): other functions' sources poll them.
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::SQS::Queue" and logical_id not in resources:
                name = f"{STACK}-{logical_id}"
                url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
                arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                resources[logical_id] = PhysicalResource(ref=url, attributes={"Arn": arn, "QueueName": name})
        # SAM's implicit role of every function (the reconciler's WARMER_ROLE_ARN names the warm worker's).
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                role = f"{STACK}-{logical_id}-role"
                resources[f"{logical_id}Role"] = PhysicalResource(
                    ref=role, attributes={"Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"}
                )
                # Every function's ARN (the API's and the reconciler's ROTATOR_FUNCTION_ARN names the rotator's).
                physical = f"{STACK}-{logical_id}"
                resources.setdefault(
                    logical_id,
                    PhysicalResource(
                        ref=physical, attributes={"Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{physical}"}
                    ),
                )
        resolver = Resolver(
            template,
            resources,
            pseudo={
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::StackName": STACK,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
        )
        specs = {FUNCTION: resolve_functions(template, resolver, ROOT)[FUNCTION]}  # the reconciler's events only
        specs[FUNCTION] = replace(
            specs[FUNCTION], events=(*specs[FUNCTION].events, *_ecr_rule_events(template, resolver))
        )
        for event_name, changes in overrides.items():
            spec = specs[FUNCTION]
            specs[FUNCTION] = replace(
                spec,
                events=tuple(
                    replace(e, properties=_override(e.properties, changes)) if e.name == event_name else e
                    for e in spec.events
                ),
            )
        return specs

    def put(self, pk: str, sk: str = "v", **attributes: Any) -> None:
        item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, **attributes}
        self.dynamodb.put_item(TableName=TABLE, Item=item)

    def dead_letters(self, count: int = 1, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The next ``count`` messages of the DLQ (body parsed, attributes kept under ``_attributes``)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for message in self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", []):
                body = json.loads(message["Body"])
                body["_attributes"] = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
                found.append(body)
                self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.05)
        return found

    def put_event(self, detail_type: str, detail: dict[str, Any], *, at: datetime | None = None) -> None:
        entry: PutEventsRequestEntryTypeDef = {
            "Source": "aws.ecr",
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
        }
        if at is not None:
            entry["Time"] = at
        assert self.events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def _override(properties: Any, changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(properties))
    for key, value in changes.items():
        if value is DELETE:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def stack(server: str) -> Iterator[Stack]:
    dynamodb = boto3.client("dynamodb", endpoint_url=server, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=server, region_name=REGION)
    table = dynamodb.create_table(TableName=TABLE, **table_definition())["TableDescription"]
    dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    try:
        yield Stack(
            endpoint_url=server,
            dynamodb=dynamodb,
            sqs=sqs,
            events=boto3.client("events", endpoint_url=server, region_name=REGION),
            ecr=boto3.client("ecr", endpoint_url=server, region_name=REGION),
            stream_arn=table["LatestStreamArn"],
            dlq_url=dlq_url,
            dlq_arn=dlq_arn,
        )
    finally:
        requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()
        reset_process_knobs()


# --------------------------------------------------------------------------------------------------
# The fake function and the runner
# --------------------------------------------------------------------------------------------------


Behaviour = Callable[[int, dict[str, Any]], Any]


@dataclass
class FakeFunction:
    """Records every invocation; ``behaviour(call_number, event)`` answers (or raises)."""

    behaviour: Behaviour | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        assert function == FUNCTION
        with self._changed:
            self.calls.append(copy.deepcopy(event))
            number = len(self.calls)
            self._changed.notify_all()
        if self.behaviour is not None:
            return self.behaviour(number, event)
        return {"batchItemFailures": []} if "Records" in event else {"ok": True}

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self.calls), timeout), f"calls so far: {self.calls}"
            return list(self.calls)

    def records(self) -> list[dict[str, Any]]:
        with self._changed:
            return [r for call in self.calls for r in call.get("Records", [])]


@dataclass
class Runners:
    stack: Stack
    logs: list[str] = field(default_factory=list)
    started: list[EventRunner] = field(default_factory=list)

    def make(self, function: FakeFunction, *, speed: float = 1.0, **overrides: dict[str, Any]) -> EventRunner:
        runner = EventRunner(
            self.stack.functions(**overrides),
            endpoint_url=self.stack.endpoint_url,
            region=REGION,
            stack_name=STACK,
            invoke=function,
            schedule_speed=speed,
            log=self.logs.append,
            poll_interval=0.05,
            retry_backoff=0.01,
            max_backoff=0.05,
        )
        self.started.append(runner)
        return runner


@pytest.fixture
def runners(stack: Stack) -> Iterator[Runners]:
    made = Runners(stack)
    yield made
    for runner in made.started:
        started = time.monotonic()
        runner.stop()
        assert time.monotonic() - started < 2.0


FAST_STREAM: dict[str, Any] = {"MaximumBatchingWindowInSeconds": 0.2}
# Schedules never fire on their own in these tests unless a test asks for it.
NO_SCHEDULES: dict[str, Any] = {"Resync": {"Enabled": False}, "DeepResync": {"Enabled": False}}


def sequence_numbers(call: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in call["Records"]]


def pks(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]


# --------------------------------------------------------------------------------------------------
# DynamoDB stream
# --------------------------------------------------------------------------------------------------


def test_stream_records_reach_the_function_in_the_lambda_shape(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.start()
    stack.put("DESIRED#rule#docker-hub", "v1", blob={"B": b"\x00\x01"}, count={"N": "3"})

    (call,) = function.wait_for(lambda calls: len(calls) == 1)
    (record,) = call["Records"]
    assert list(record) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]
    assert record["eventName"] == "INSERT"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == REGION
    assert record["eventSourceARN"] == stack.stream_arn
    change = record["dynamodb"]
    assert change["Keys"] == {"pk": {"S": "DESIRED#rule#docker-hub"}, "sk": {"S": "v1"}}
    assert change["NewImage"]["count"] == {"N": "3"}  # DynamoDB JSON, not deserialized
    assert change["NewImage"]["blob"] == {"B": base64.b64encode(b"\x00\x01").decode()}  # base64, as Lambda sends
    assert "OldImage" not in change
    assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert isinstance(change["SequenceNumber"], str)
    assert isinstance(change["SizeBytes"], int)
    assert isinstance(change["ApproximateCreationDateTime"], int)
    assert abs(change["ApproximateCreationDateTime"] - time.time()) < 60
    json.dumps(call)  # what a function host receives over the wire
    assert logged(
        runners.logs, lambda line: line.startswith(f"{FUNCTION} ← DesiredStateChanged (DynamoDB, 1 record) ok")
    )


def test_stream_filters_deliver_desired_items_and_new_reconcile_requests_only(stack: Stack, runners: Runners) -> None:
    """The template's FilterCriteria: status/history writes and modified requests never reach the function."""
    function = FakeFunction()
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.setup()
    stack.put("STATUS#rule#docker-hub", "current")
    stack.put("HISTORY#2026-01-01", "run-1")
    stack.put("REQUEST#reconcile", "r1")  # INSERT: delivered
    stack.put("REQUEST#reconcile", "r1", note={"S": "again"})  # MODIFY: dropped
    stack.put("DESIRED#rule#ghcr", "v1")  # delivered
    stack.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "DESIRED#rule#ghcr"}, "sk": {"S": "v1"}})  # delivered
    runner.start()

    function.wait_for(lambda calls: len([r for c in calls for r in c["Records"]]) >= 3)
    time.sleep(0.3)  # nothing else arrives
    records = function.records()
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "REQUEST#reconcile"),
        ("INSERT", "DESIRED#rule#ghcr"),
        ("REMOVE", "DESIRED#rule#ghcr"),
    ]
    assert records[2]["dynamodb"]["OldImage"]["pk"] == {"S": "DESIRED#rule#ghcr"}


def test_stream_batches_follow_batch_size_and_order(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, DesiredStateChanged={**FAST_STREAM, "BatchSize": 2}, **NO_SCHEDULES)
    runner.setup()  # LATEST = after this point
    for n in range(5):
        stack.put(f"DESIRED#rule#r{n}")
    runner.start()

    calls = function.wait_for(lambda calls: len(calls) == 3)
    assert [pks(c["Records"]) for c in calls] == [
        ["DESIRED#rule#r0", "DESIRED#rule#r1"],
        ["DESIRED#rule#r2", "DESIRED#rule#r3"],
        ["DESIRED#rule#r4"],
    ]


def test_stream_batching_window_collects_records_into_one_invocation(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, DesiredStateChanged={"MaximumBatchingWindowInSeconds": 0.6}, **NO_SCHEDULES)
    runner.start()
    for n in range(4):
        stack.put(f"DESIRED#rule#r{n}")
        time.sleep(0.05)  # records arrive over 0.2 s, inside the window

    (call,) = function.wait_for(lambda calls: len(calls) == 1)
    assert pks(call["Records"]) == [f"DESIRED#rule#r{n}" for n in range(4)]


def test_partial_batch_failure_retries_from_the_failed_record(stack: Stack, runners: Runners) -> None:
    def behaviour(number: int, event: dict[str, Any]) -> Any:
        if number == 1:  # the third record failed
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    function = FakeFunction(behaviour)
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.setup()
    for n in range(4):
        stack.put(f"DESIRED#rule#r{n}")
    runner.start()

    first, second = function.wait_for(lambda calls: len(calls) == 2)
    assert sequence_numbers(second) == sequence_numbers(first)[2:]
    time.sleep(0.2)
    assert len(function.calls) == 2
    assert logged(runners.logs, lambda line: "2 of 4 records reported failed" in line and "retry 1/10" in line)


def test_an_unknown_item_identifier_fails_the_whole_batch(stack: Stack, runners: Runners) -> None:
    function = FakeFunction(lambda n, _: {"batchItemFailures": [{"itemIdentifier": ""}]} if n == 1 else None)
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.setup()
    stack.put("DESIRED#rule#a")
    stack.put("DESIRED#rule#b")
    runner.start()

    first, second = function.wait_for(lambda calls: len(calls) == 2)
    assert sequence_numbers(second) == sequence_numbers(first)


def test_exhausted_stream_retries_go_to_the_on_failure_queue_and_the_shard_moves_on(
    stack: Stack, runners: Runners
) -> None:
    def behaviour(number: int, event: dict[str, Any]) -> Any:
        if pks(event["Records"]) == ["DESIRED#rule#poison"]:
            raise FunctionError(FUNCTION, "RuntimeError", "cannot reconcile")
        return {"batchItemFailures": []}

    function = FakeFunction(behaviour)
    runner = runners.make(function, DesiredStateChanged={**FAST_STREAM, "MaximumRetryAttempts": 2}, **NO_SCHEDULES)
    runner.start()
    stack.put("DESIRED#rule#poison")

    (dead,) = stack.dead_letters()
    calls = function.wait_for(lambda calls: len(calls) == 3)
    sequence = calls[0]["Records"][0]["dynamodb"]["SequenceNumber"]
    assert dead["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert dead["requestContext"]["functionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{STACK}-{FUNCTION}"
    assert dead["responseContext"]["functionError"] == "Unhandled"
    assert dead["version"] == "1.0"
    info = dead["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequence
    assert info["batchSize"] == 1
    assert info["streamArn"] == stack.stream_arn
    assert info["shardId"].startswith("shardId-")
    assert set(info) == {
        "shardId",
        "startSequenceNumber",
        "endSequenceNumber",
        "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord",
        "batchSize",
        "streamArn",
    }
    assert logged(runners.logs, lambda line: "failed: RuntimeError: cannot reconcile; retry 2/2" in line)
    assert logged(runners.logs, lambda line: line.endswith(f"dead-lettered to {DLQ}"))

    stack.put("DESIRED#rule#next")  # the shard is not stuck behind the poison record
    calls = function.wait_for(lambda calls: len(calls) == 4)
    assert pks(calls[3]["Records"]) == ["DESIRED#rule#next"]


def test_bisect_on_function_error_isolates_the_failing_record(stack: Stack, runners: Runners) -> None:
    def behaviour(number: int, event: dict[str, Any]) -> Any:
        if "DESIRED#rule#r2" in pks(event["Records"]):
            raise FunctionError(FUNCTION, "RuntimeError", "r2 is poison")
        return None

    function = FakeFunction(behaviour)
    overrides = {**FAST_STREAM, "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 1}
    runner = runners.make(function, DesiredStateChanged=overrides, **NO_SCHEDULES)
    runner.setup()
    for n in range(4):
        stack.put(f"DESIRED#rule#r{n}")
    runner.start()

    (dead,) = stack.dead_letters()
    calls = function.wait_for(lambda calls: len(calls) == 6)
    assert [[pk[-2:] for pk in pks(c["Records"])] for c in calls] == [
        ["r0", "r1", "r2", "r3"],  # fails: split
        ["r0", "r1"],  # ok
        ["r2", "r3"],  # fails: split
        ["r2"],  # fails, 1 retry
        ["r2"],  # fails: retries exhausted -> on-failure destination
        ["r3"],  # ok: the shard moves on
    ]
    assert dead["DDBStreamBatchInfo"]["batchSize"] == 1
    assert dead["requestContext"]["approximateInvokeCount"] == 2


def test_an_unreachable_function_is_retried_until_it_answers(stack: Stack, runners: Runners) -> None:
    def behaviour(number: int, _: dict[str, Any]) -> Any:
        if number < 3:
            raise InvokeError("the function host is unreachable")
        return None

    function = FakeFunction(behaviour)
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.start()
    stack.put("DESIRED#rule#a")

    calls = function.wait_for(lambda calls: len(calls) == 3)
    assert sequence_numbers(calls[0]) == sequence_numbers(calls[2])
    assert stack.dead_letters(timeout=0.2) == []


def test_a_stream_function_timeout_is_a_function_error(stack: Stack, runners: Runners) -> None:
    """Lambda reports a timeout as a function error: ``Sandbox.Timedout``, "Task timed out after N seconds"."""

    def behaviour(number: int, _: dict[str, Any]) -> Any:
        raise FunctionTimeout(FUNCTION, 300)

    function = FakeFunction(behaviour)
    runner = runners.make(function, DesiredStateChanged={**FAST_STREAM, "MaximumRetryAttempts": 1}, **NO_SCHEDULES)
    runner.start()
    stack.put("DESIRED#rule#slow")

    (dead,) = stack.dead_letters()
    assert len(function.calls) == 2
    assert dead["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert dead["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert any(
        "failed: Sandbox.Timedout: Task timed out after 300.00 seconds; retry 1/1" in line for line in runners.logs
    )


class FlakyStreams:
    """A DynamoDB Streams client whose ``GetRecords`` fails on demand (the rest is the real client)."""

    def __init__(self) -> None:
        self._client: Any = None  # the runner's real client, once it made one
        self.failing = threading.Event()  # every GetRecords fails (a generic server error) while set
        self.expire = 0  # so many next GetRecords answer ExpiredIteratorException
        self.failures = 0
        self.iterator_types: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        self.iterator_types.append(str(kwargs["ShardIteratorType"]))
        return self._client.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        code = ""
        if self.expire > 0:
            self.expire -= 1
            code = "ExpiredIteratorException"
        elif self.failing.is_set():
            code = "InternalServerError"
        if code:
            self.failures += 1
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, "GetRecords")
        return self._client.get_records(**kwargs)


@pytest.fixture
def flaky_streams(monkeypatch: pytest.MonkeyPatch) -> FlakyStreams:
    """The runners' DynamoDB Streams client, wrapped (one per test: the runner makes one client per service)."""
    flaky = FlakyStreams()
    original = runner_module._make_client

    def make(service: str, endpoint_url: str, region: str) -> Any:
        client = original(service, endpoint_url, region)
        if service != "dynamodbstreams":
            return client
        assert flaky._client is None, "one runner per test"
        flaky._client = client
        return flaky

    monkeypatch.setattr(runner_module, "_make_client", make)
    return flaky


def test_failed_get_records_are_retried_with_the_same_iterator_and_skip_nothing(
    stack: Stack, runners: Runners, flaky_streams: FlakyStreams
) -> None:
    """A LATEST shard that has read nothing yet keeps its iterator: records written meanwhile arrive."""
    function = FakeFunction()
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.setup()
    flaky_streams.failing.set()
    runner.start()
    stack.put("DESIRED#rule#during-1")
    deadline = time.monotonic() + WAIT
    while flaky_streams.failures < 5:  # more than the three after which LATEST used to be taken again
        assert time.monotonic() < deadline, runners.logs
        time.sleep(0.02)
    stack.put("DESIRED#rule#during-2")
    time.sleep(0.1)
    flaky_streams.failing.clear()

    function.wait_for(lambda calls: len(pks([r for c in calls for r in c["Records"]])) >= 2)
    time.sleep(0.3)
    assert pks(function.records()) == ["DESIRED#rule#during-1", "DESIRED#rule#during-2"]
    assert flaky_streams.iterator_types == ["LATEST"]  # setup()'s, never replaced
    assert logged(runners.logs, lambda line: "InternalServerError" in line and "retrying" in line)


def test_an_expired_iterator_resumes_where_the_shard_was(
    stack: Stack, runners: Runners, flaky_streams: FlakyStreams
) -> None:
    """Expired before any read: from setup()'s moment (not LATEST again); after a read: after the last record."""
    function = FakeFunction()
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    stack.put("DESIRED#rule#before-setup")
    time.sleep(1.02 - time.time() % 1)  # the next second: creation times are whole seconds
    runner.setup()
    stack.put("DESIRED#rule#after-setup")
    flaky_streams.expire = 1
    runner.start()

    function.wait_for(lambda calls: len(calls) >= 1)
    assert flaky_streams.iterator_types == ["LATEST", "TRIM_HORIZON"]
    flaky_streams.expire = 1
    stack.put("DESIRED#rule#after-expiry")
    function.wait_for(lambda calls: len([r for c in calls for r in c["Records"]]) >= 2)
    time.sleep(0.3)
    assert pks(function.records()) == ["DESIRED#rule#after-setup", "DESIRED#rule#after-expiry"]
    assert flaky_streams.iterator_types == ["LATEST", "TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER"]
    assert sum("ExpiredIteratorException; getting a new iterator" in line for line in runners.logs) == 2


# --------------------------------------------------------------------------------------------------
# EventBridge rules
# --------------------------------------------------------------------------------------------------


def test_setup_creates_a_rule_and_queue_per_eventbridge_event(stack: Stack, runners: Runners) -> None:
    runner = runners.make(FakeFunction())
    runner.setup()
    runner.setup()  # idempotent
    names = {r["Name"]: r for r in stack.events.list_rules()["Rules"]}
    drift = names[f"{STACK}-{FUNCTION}-EcrDrift"]
    assert json.loads(drift["EventPattern"])["detail"]["errorCode"] == [{"exists": False}]
    assert names[f"{STACK}-{FUNCTION}-Resync"]["ScheduleExpression"] == "rate(15 minutes)"
    targets = stack.events.list_targets_by_rule(Rule=f"{STACK}-{FUNCTION}-PullThroughCacheAction")["Targets"]
    assert [t["Arn"].rsplit(":", 1)[1] for t in targets] == [f"{STACK}-{FUNCTION}-PullThroughCacheAction"]


def test_an_ecr_api_call_reaches_the_function_as_an_eventbridge_envelope(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    stack.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")

    calls = function.wait_for(
        lambda calls: any(c.get("detail", {}).get("eventName") == "CreatePullThroughCacheRule" for c in calls)
    )
    (event,) = [c for c in calls if c.get("detail", {}).get("eventName") == "CreatePullThroughCacheRule"]
    assert event["detail-type"] == "AWS API Call via CloudTrail"
    assert event["source"] == "aws.ecr"
    assert event["account"] == ACCOUNT_ID
    assert event["region"] == REGION
    assert event["detail"]["requestParameters"]["ecrRepositoryPrefix"] == "quay"
    assert "errorCode" not in event["detail"]
    assert logged(runners.logs, lambda line: line.startswith(f"{FUNCTION} ← EcrDrift (EventBridgeRule) ok"))


def test_failed_api_calls_and_other_events_are_not_delivered(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    base = {"eventSource": "ecr.amazonaws.com", "eventName": "CreatePullThroughCacheRule"}
    stack.put_event("AWS API Call via CloudTrail", {**base, "errorCode": "ValidationException"})
    stack.put_event("AWS API Call via CloudTrail", {**base, "eventName": "DescribeRepositories"})
    stack.put_event("ECR Pull Through Cache Action", {"repository-name": "no/sync-status"})
    stack.put_event("ECR Pull Through Cache Action", {"sync-status": "SUCCESS", "marker": "last"})

    calls = function.wait_for(lambda calls: len(calls) >= 1)
    time.sleep(0.3)
    assert [c["detail"] for c in function.calls] == [{"sync-status": "SUCCESS", "marker": "last"}]
    assert calls[0]["detail-type"] == "ECR Pull Through Cache Action"


def _assumed(role: str, session: str) -> dict[str, Any]:
    """A role session's ``userIdentity`` as CloudTrail records it (the session issuer names the role)."""
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"}},
    }


def test_the_controllers_own_writes_are_not_delivered_and_everyone_elses_are(stack: Stack, runners: Runners) -> None:
    """The drift rule's pattern keeps out every session of the reconciler's role and of the reconcile worker's
    (template.yaml, EcrDrift: anything-but their role ARNs, by the session issuer)."""
    function = FakeFunction()
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    # the implicit roles this stack resolves !GetAtt ReconcilerFunctionRole.Arn / ReconcileWorkerFunctionRole.Arn to
    role, worker = f"{STACK}-{FUNCTION}-role", f"{STACK}-ReconcileWorkerFunction-role"
    base = {"eventSource": "ecr.amazonaws.com", "eventName": "PutLifecyclePolicy"}
    callers = {
        "own": _assumed(role, f"{STACK}-{FUNCTION}"),
        "own-other-session": _assumed(role, "x"),
        "worker": _assumed(worker, f"{STACK}-ReconcileWorkerFunction"),
        "worker-other-session": _assumed(worker, "y"),
        "like-own": _assumed(f"{role}-2", "x"),
        "like-worker": _assumed(f"{worker}-2", "y"),
        "user": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/alice"},
        "service": {"type": "AWSService", "invokedBy": "pullthroughcache.ecr.amazonaws.com"},
    }
    for marker, identity in callers.items():
        stack.put_event("AWS API Call via CloudTrail", {**base, "userIdentity": identity, "marker": marker})

    function.wait_for(lambda calls: len(calls) >= 4)
    time.sleep(0.3)
    assert sorted(c["detail"]["marker"] for c in function.calls) == ["like-own", "like-worker", "service", "user"]


def test_every_pull_through_cache_action_is_delivered_failed_ones_included(stack: Stack, runners: Runners) -> None:
    """The template takes any sync-status (only SUCCESS is documented): a failure is the rule's upstream health."""
    function = FakeFunction()
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    for status in ("FAILED", "SUCCESS"):
        stack.put_event("ECR Pull Through Cache Action", {"sync-status": status})

    function.wait_for(lambda calls: len(calls) >= 2)
    assert sorted(c["detail"]["sync-status"] for c in function.calls) == ["FAILED", "SUCCESS"]


def test_function_errors_are_retried_then_sent_to_the_on_failure_destination(stack: Stack, runners: Runners) -> None:
    """EventInvokeConfig: 1 + MaximumRetryAttempts (2) attempts, then Lambda's invocation record."""

    def behaviour(number: int, _: dict[str, Any]) -> Any:
        raise FunctionError(FUNCTION, "EcrcacheError", f"attempt {number} failed")

    function = FakeFunction(behaviour)
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    stack.put_event("ECR Pull Through Cache Action", {"sync-status": "SUCCESS"})

    (dead,) = stack.dead_letters()
    assert len(function.calls) == 3
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert dead["requestPayload"]["detail"] == {"sync-status": "SUCCESS"}
    assert dead["responseContext"]["functionError"] == "Unhandled"
    assert dead["responsePayload"] == {"errorType": "EcrcacheError", "errorMessage": "attempt 3 failed"}
    assert logged(runners.logs, lambda line: "failed: EcrcacheError: attempt 1 failed; retry 1/2" in line)
    # the event left the rule's queue: nothing is redelivered
    time.sleep(0.3)
    assert len(function.calls) == 3


def test_an_unreachable_function_follows_the_rules_retry_policy_then_its_dead_letter_queue(
    stack: Stack, runners: Runners
) -> None:
    """RetryPolicy.MaximumRetryAttempts 4: 5 delivery attempts, then EventBridge's DLQ message."""

    def behaviour(number: int, _: dict[str, Any]) -> Any:
        raise InvokeError("connection refused")

    function = FakeFunction(behaviour)
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    stack.put_event("ECR Pull Through Cache Action", {"sync-status": "SUCCESS"})

    (dead,) = stack.dead_letters()
    assert len(function.calls) == 5
    assert dead["detail-type"] == "ECR Pull Through Cache Action"  # the event itself
    attributes = dead["_attributes"]
    assert (
        attributes["RULE_ARN"] == f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{STACK}-{FUNCTION}-PullThroughCacheAction"
    )
    assert attributes["TARGET_ARN"].endswith(f":function:{STACK}-{FUNCTION}")
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["RETRY_ATTEMPTS"] == "4"
    assert "connection refused" in attributes["ERROR_MESSAGE"]


def test_an_async_function_timeout_is_a_function_error_not_a_refused_delivery(stack: Stack, runners: Runners) -> None:
    """A timeout on the first attempt: Lambda's retries (EventInvokeConfig) and its on-failure record."""

    def behaviour(number: int, _: dict[str, Any]) -> Any:
        raise FunctionTimeout(FUNCTION, 300)

    function = FakeFunction(behaviour)
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    stack.put_event("ECR Pull Through Cache Action", {"sync-status": "SUCCESS"})

    (dead,) = stack.dead_letters()
    assert len(function.calls) == 3  # 1 + EventInvokeConfig.MaximumRetryAttempts, not RetryPolicy's 1 + 4
    assert dead["_attributes"] == {}  # not EventBridge's dead-letter message
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    assert dead["responseContext"]["functionError"] == "Unhandled"
    assert dead["responsePayload"] == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "Task timed out after 300.00 seconds",
    }
    assert any(
        "failed: Sandbox.Timedout: Task timed out after 300.00 seconds; retry 1/2" in line for line in runners.logs
    )
    assert not any("not delivered" in line for line in runners.logs)


def test_an_event_older_than_its_maximum_age_is_dead_lettered_without_an_invocation(
    stack: Stack, runners: Runners
) -> None:
    function = FakeFunction()
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    stack.put_event(
        "ECR Pull Through Cache Action", {"sync-status": "SUCCESS"}, at=datetime.now(UTC) - timedelta(hours=2)
    )

    (dead,) = stack.dead_letters()
    assert function.calls == []
    assert dead["_attributes"]["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"


def test_input_path_selects_what_the_function_receives(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, PullThroughCacheAction={"InputPath": "$.detail"}, **NO_SCHEDULES)
    runner.start()
    stack.put_event("ECR Pull Through Cache Action", {"sync-status": "SUCCESS", "repository-name": "ghcr/a"})
    (event,) = function.wait_for(lambda calls: len(calls) == 1)
    assert event == {"sync-status": "SUCCESS", "repository-name": "ghcr/a"}


def test_a_rule_poller_survives_its_queue_disappearing(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, **NO_SCHEDULES)
    runner.start()
    name = f"{STACK}-{FUNCTION}-PullThroughCacheAction"
    url = stack.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    stack.sqs.delete_queue(QueueUrl=url)
    deadline = time.monotonic() + WAIT
    while not any("PullThroughCacheAction (EventBridgeRule): receive failed" in line for line in runners.logs):
        assert time.monotonic() < deadline, runners.logs
        time.sleep(0.05)
    stack.sqs.create_queue(QueueName=name)  # back (same URL and ARN): the rule's target works again
    stack.put_event("ECR Pull Through Cache Action", {"sync-status": "SUCCESS"})
    function.wait_for(lambda calls: len(calls) == 1)


def test_an_invoke_callable_that_breaks_is_treated_like_an_unreachable_host(stack: Stack, runners: Runners) -> None:
    def behaviour(number: int, _: dict[str, Any]) -> Any:
        if number == 1:
            raise ConnectionResetError("host went away")
        return None

    function = FakeFunction(behaviour)
    runner = runners.make(function, DesiredStateChanged=FAST_STREAM, **NO_SCHEDULES)
    runner.start()
    stack.put("DESIRED#rule#a")
    function.wait_for(lambda calls: len(calls) == 2)
    assert any(
        "InvokeError: invoking ReconcilerFunction: ConnectionResetError: host went away" in line
        for line in runners.logs
    )


# --------------------------------------------------------------------------------------------------
# The reconciler's event queue (EcrEvents)
# --------------------------------------------------------------------------------------------------


def test_the_event_queue_is_delivered_in_batches_and_reported_messages_come_back(
    stack: Stack, runners: Runners
) -> None:
    """The template's SQS source as Lambda runs it: events gathered into one batch (window), the messages the
    function reports (a Region's lease held) delivered again after the visibility timeout, none dead-lettered."""

    def behaviour(number: int, event: dict[str, Any]) -> Any:
        if number == 1:  # the Region's lease is held: every message back to the queue
            return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
        return {"batchItemFailures": []}

    function = FakeFunction(behaviour)
    runner = runners.make(function, EcrEvents={"MaximumBatchingWindowInSeconds": 1}, **NO_SCHEDULES)
    queue = stack.sqs.get_queue_url(QueueName=f"{STACK}-ReconcilerEventsQueue")["QueueUrl"]
    dlq = stack.sqs.get_queue_url(QueueName=f"{STACK}-ReconcilerEventsDlq")["QueueUrl"]
    dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = load_template(TEMPLATE)["Resources"]["ReconcilerEventsQueue"]["Properties"]["RedrivePolicy"]
    # the template's redrive (maxReceiveCount); a visibility timeout of 3 s (longer than the window) for its 1,800 s
    stack.sqs.set_queue_attributes(
        QueueUrl=queue,
        Attributes={
            "VisibilityTimeout": "3",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": redrive["maxReceiveCount"]}
            ),
        },
    )

    for n in range(5):
        stack.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"detail-type": "storm", "n": n}))
    runner.start()

    calls = function.wait_for(lambda calls: sum(len(c["Records"]) for c in calls) >= 10, timeout=3 * WAIT)
    first, again = calls[0]["Records"], [r for c in calls[1:] for r in c["Records"]]
    assert len(first) == 5  # one batch, not five invocations
    assert sorted(r["messageId"] for r in again) == sorted(r["messageId"] for r in first)
    first_count = {r["messageId"]: int(r["attributes"]["ApproximateReceiveCount"]) for r in first}
    assert all(int(r["attributes"]["ApproximateReceiveCount"]) > first_count[r["messageId"]] for r in again)
    assert {r["eventSourceARN"] for r in first} == {
        stack.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    }
    time.sleep(3.5)  # past another visibility timeout: nothing is left, nothing was dead-lettered
    assert len(function.records()) == 10
    assert stack.sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", []) == []
    assert logged(runners.logs, lambda line: line.startswith(f"{FUNCTION} ← EcrEvents (SQS, 5 records) ok"))


# --------------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------------


def test_fire_delivers_the_schedule_input(stack: Stack, runners: Runners) -> None:
    function = FakeFunction(lambda _n, event: {"scope": event})
    runner = runners.make(function)
    assert runner.fire(FUNCTION, "Resync") == {"scope": {"resync": "fast"}}
    assert runner.fire(FUNCTION, "DeepResync") == {"scope": {"resync": "deep"}}
    assert function.calls == [{"resync": "fast"}, {"resync": "deep"}]
    with pytest.raises(ValueError, match="not a Schedule"):
        runner.fire(FUNCTION, "EcrDrift")
    with pytest.raises(KeyError):
        runner.fire(FUNCTION, "Nope")


def test_a_schedule_without_input_sends_the_scheduled_event_envelope(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, Resync={"Input": DELETE})
    runner.fire(FUNCTION, "Resync")
    (event,) = function.calls
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["detail"] == {}
    assert event["resources"] == [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{STACK}-{FUNCTION}-Resync"]
    assert event["account"] == ACCOUNT_ID


def test_a_failing_schedule_is_retried_then_dead_lettered_and_fire_raises(stack: Stack, runners: Runners) -> None:
    def behaviour(number: int, _: dict[str, Any]) -> Any:
        raise FunctionError(FUNCTION, "EcrcacheError", "boom")

    function = FakeFunction(behaviour)
    runner = runners.make(function)
    with pytest.raises(FunctionError, match="boom"):
        runner.fire(FUNCTION, "Resync")
    assert function.calls == [{"resync": "fast"}] * 3
    (dead,) = stack.dead_letters()
    assert dead["requestPayload"] == {"resync": "fast"}


def test_schedule_speed_fires_a_rate_schedule_on_virtual_time(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    # rate(15 minutes) at 4500x: every 0.2 real seconds
    runner = runners.make(function, speed=4500, DeepResync={"Enabled": False})
    runner.start()
    function.wait_for(lambda calls: calls.count({"resync": "fast"}) >= 2, timeout=3)
    assert runner.virtual_now() > datetime.now(UTC) + timedelta(minutes=15)


def test_disabled_schedules_do_not_fire(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, speed=9000, Resync={"State": "DISABLED"}, DeepResync={"Enabled": False})
    runner.start()
    time.sleep(0.4)  # 1 virtual hour: four 15-minute periods
    assert function.calls == []
    assert logged(runners.logs, lambda line: "Resync (Schedule) is disabled in the template" in line)


def test_a_schedule_whose_rule_is_disabled_in_the_embedded_aws_is_skipped(stack: Stack, runners: Runners) -> None:
    function = FakeFunction()
    runner = runners.make(function, speed=9000, DeepResync={"Enabled": False})
    runner.setup()
    stack.events.disable_rule(Name=f"{STACK}-{FUNCTION}-Resync")
    runner.start()
    time.sleep(0.4)
    assert function.calls == []
    assert logged(runners.logs, lambda line: "skipped: rule" in line)
    stack.events.enable_rule(Name=f"{STACK}-{FUNCTION}-Resync")
    function.wait_for(lambda calls: len(calls) >= 1)


RUNNER_THREADS = ("stream ", "rule ", "schedule ")


def runner_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Delivery threads (by their names) started since ``before`` was taken, ended or not."""
    return [t for t in threading.enumerate() if t not in before and t.name.startswith(RUNNER_THREADS)]


def test_stop_ends_every_thread_quickly_even_while_polling(stack: Stack, runners: Runners) -> None:
    before = set(threading.enumerate())
    runner = runners.make(FakeFunction())
    runner.start()
    stack.put("DESIRED#rule#a")  # a shard thread exists once the stream has been discovered
    deadline = time.monotonic() + WAIT
    while not any(name.startswith("stream ") and "shardId-" in name for name in runner.threads()):
        assert time.monotonic() < deadline, list(runner.threads())
        time.sleep(0.02)
    started_threads = runner_threads(before)
    assert len(started_threads) >= 6  # stream + shard, two rule queues, two schedules
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 2.0  # the documented ~1.2 s
    assert [t.name for t in started_threads if t.is_alive()] == []
    assert runner_threads(before) == []  # nothing was started that the runner did not account for
    assert list(runner.threads()) == []
    with pytest.raises(RuntimeError, match="stopped"):
        runner.start()


def test_stop_during_an_invocation_lets_it_finish_and_invokes_nothing_more(stack: Stack, runners: Runners) -> None:
    """The in-flight batch fails after stop(): no retry, no bisected half; the shard thread then ends."""
    release = threading.Event()
    invoking = threading.Event()

    def behaviour(number: int, _: dict[str, Any]) -> Any:
        invoking.set()
        release.wait(WAIT)
        raise FunctionError(FUNCTION, "RuntimeError", "failed while stopping")

    function = FakeFunction(behaviour)
    runner = runners.make(
        function, DesiredStateChanged={**FAST_STREAM, "BisectBatchOnFunctionError": True}, **NO_SCHEDULES
    )
    runner.start()
    stack.put("DESIRED#rule#a")
    stack.put("DESIRED#rule#b")
    assert invoking.wait(WAIT)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 2.0
    (busy,) = runner.threads()  # only the shard thread, still in its invocation
    assert "shardId-" in busy
    release.set()
    deadline = time.monotonic() + WAIT
    while list(runner.threads()):
        assert time.monotonic() < deadline, list(runner.threads())
        time.sleep(0.02)
    time.sleep(0.2)
    (call,) = function.calls  # neither a retry nor a bisected half
    assert pks(call["Records"]) == ["DESIRED#rule#a", "DESIRED#rule#b"]
    assert logged(runners.logs, lambda line: "failed: RuntimeError: failed while stopping" in line)


# --------------------------------------------------------------------------------------------------
# A schedule fired now through the local stack's control endpoint (devstack.local.control)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def controlled(runners: Runners) -> Iterator[tuple[str, FakeFunction, list[dict[str, Any]]]]:
    """A gateway with the controls of a runner over a recording function: (its URL, the function, API events)."""
    function = FakeFunction(lambda _n, event: {"scope": event})
    controls = Controls()
    api_events: list[dict[str, Any]] = []
    with ApiGateway(api_events.append, port=0, control=controls.handle) as gateway:
        controls.runner = runners.make(function, Resync={"Input": DELETE})
        yield gateway.endpoint_url, function, api_events


def test_fire_through_the_control_endpoint_delivers_the_event_the_schedule_would(
    controlled: tuple[str, FakeFunction, list[dict[str, Any]]],
) -> None:
    url, function, api_events = controlled

    answer = requests.post(f"{url}/_ecrcache/schedules/{FUNCTION}/Resync/fire", timeout=WAIT)

    # THEN the function got EventBridge's Scheduled Event for the schedule's rule (it has no Input now)
    assert answer.status_code == 200, answer.text
    (event,) = function.calls
    assert answer.json() == {"function": FUNCTION, "event": "Resync", "status": "ok", "result": {"scope": event}}
    rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{STACK}-{FUNCTION}-Resync"
    assert {k: event[k] for k in ("detail-type", "source", "account", "region", "resources", "detail")} == {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }
    # AND an event with an Input gets exactly its Input, as the schedule delivers it
    assert requests.post(f"{url}/_ecrcache/schedules/{FUNCTION}/DeepResync/fire", timeout=WAIT).status_code == 200
    assert function.calls[1] == {"resync": "deep"}
    # AND the API function never saw a control request
    assert api_events == []


def test_the_control_endpoint_lists_schedules_and_names_what_it_cannot_fire(
    controlled: tuple[str, FakeFunction, list[dict[str, Any]]],
) -> None:
    url, function, _ = controlled

    listed = requests.get(f"{url}/_ecrcache/schedules", timeout=WAIT).json()["schedules"]
    unknown = requests.post(f"{url}/_ecrcache/schedules/{FUNCTION}/Nope/fire", timeout=WAIT)
    not_schedule = requests.post(f"{url}/_ecrcache/schedules/{FUNCTION}/EcrDrift/fire", timeout=WAIT)
    wrong_method = requests.get(f"{url}/_ecrcache/schedules/{FUNCTION}/Resync/fire", timeout=WAIT)

    assert [(s["event"], s["expression"], s["enabled"]) for s in listed] == [
        ("Resync", "rate(15 minutes)", True),
        ("DeepResync", "cron(17 3 * * ? *)", True),
    ]
    assert (unknown.status_code, unknown.json()["message"]) == (404, f"{FUNCTION} has no Schedule event 'Nope'")
    assert (not_schedule.status_code, "not a Schedule" in not_schedule.json()["message"]) == (400, True)
    assert wrong_method.status_code == 404
    assert function.calls == []


def test_a_fire_whose_every_attempt_failed_answers_502_with_the_error(
    controlled: tuple[str, FakeFunction, list[dict[str, Any]]],
) -> None:
    url, function, _ = controlled

    def behaviour(number: int, _: dict[str, Any]) -> Any:
        raise FunctionError(FUNCTION, "EcrcacheError", "boom")

    function.behaviour = behaviour
    answer = requests.post(f"{url}/_ecrcache/schedules/{FUNCTION}/DeepResync/fire", timeout=WAIT)

    assert answer.status_code == 502
    assert answer.json()["error"] == {"type": "EcrcacheError", "message": "boom"}
    assert len(function.calls) == 3  # Lambda's asynchronous retries, as when the schedule fires


def test_controls_before_the_runner_runs_answer_503() -> None:
    assert Controls().handle("GET", "/_ecrcache/schedules")[0] == 503


def test_ecrcache_local_fire_picks_the_schedule_by_short_name_and_prints_the_result(
    controlled: tuple[str, FakeFunction, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, function, _ = controlled
    environ = {"ECRCACHE_ENDPOINT": f"{url}/v1"}

    assert fire_main(["reconciler", "deepresync"], environ) == 0
    assert json.loads(capsys.readouterr().out) == {"scope": {"resync": "deep"}}
    assert fire_main(["reconciler"], environ) == 2  # two schedules: one must be named
    assert "more than one Schedule event" in capsys.readouterr().err
    assert fire_main(["NoSuchFunction"], environ) == 2
    assert f"functions with one: {FUNCTION}" in capsys.readouterr().err
    assert function.calls == [{"resync": "deep"}]

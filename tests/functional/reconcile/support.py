"""The cloud's plumbing around the reconciler's ``lambda_handler``, for functional tests.

Everything here derives from ``template.yaml`` so a test proves the wiring, not a copy of it:

* :class:`StateStream` reads the state table's real DynamoDB stream from moto (``dynamodbstreams``
  ``GetRecords``), shapes the records as Lambda delivers them, and applies the ``FilterCriteria`` of
  the ``ReconcilerFunction`` ``DesiredStateChanged`` event source (parsed from the template and
  matched with :func:`matches`: moto's EventBridge matcher, the local runner's).
* :class:`EventInbox` is an EventBridge rule per ``EventBridgeRule`` event of the function, with the
  template's own pattern (its ``!Sub`` resolved for the function's role), on the default bus the embedded
  AWS emits to, targeting one SQS queue.
* :class:`Reconciler` is the Lambda service: it delivers stream batches, EventBridge events and the
  schedules' inputs to ``functions.reconciler.app.lambda_handler`` and reports what Lambda would do
  with the answer (which stream records it would deliver again).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
from botocore.exceptions import ClientError

from devstack.local.filters import compile_pattern
from ecrcache.adapters.ecr_registry import WRITE_OPERATIONS, Boto3EcrRegistry
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.observed import Ownership
from ecrcache.models.status import ConditionType, ReconcileRun, RuleStatus
from ecrcache.services.reconcile import ReconcileService
from tests.conftest import ACCOUNT_ID, REGION, FakeLambdaContext, shared_loader
from tests.functional.api.client import ApiClient, enc
from tests.template import functions, resources

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

__all__ = [
    "CREATION_ROLE",
    "GOOD_TOKEN",
    "RECONCILER",
    "RECONCILER_ROLE",
    "RECONCILER_SESSION",
    "RECONCILE_WORKER_ROLE",
    "RECONCILE_WORKER_SESSION",
    "Admin",
    "Clients",
    "Delivery",
    "EventInbox",
    "Look",
    "Principal",
    "Reconciler",
    "StateStream",
    "StreamBatch",
    "StreamOutcome",
    "aws_error",
    "clients",
    "condition",
    "eventbridge_pattern",
    "failing",
    "matches",
    "reconciler_test_session",
    "recording",
    "schedule_input",
    "share_loader",
    "stream_filter_patterns",
    "target_of",
]

RECONCILER: Final = "ReconcilerFunction"
RECONCILER_ROLE: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-ReconcilerFunctionRole-7QX2K9"
RECONCILER_SESSION: Final = "ecrcache-ReconcilerFunction-Ab3dE"
RECONCILE_WORKER_ROLE: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-ReconcileWorkerFunctionRole-5HJ8L2"
RECONCILE_WORKER_SESSION: Final = "ecrcache-ReconcileWorkerFunction-Kq7Zt"
#: The only upstream token the fake upstream accepts (``ValidatePullThroughCacheRule``).
GOOD_TOKEN: Final = "dckr_pat_good"
CREATION_ROLE: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache/ecr-ptc-creation"
STREAM_EVENT: Final = "DesiredStateChanged"
EVENT_RULES: Final = ("EcrDrift", "PullThroughCacheAction")
"""The ECR events the reconciler reads; each is the template's ``Reconciler<name>Rule`` into its event queue."""
EVENT_QUEUE_SOURCE: Final = "EcrEvents"

Record = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Clients for setting up and looking (not the function's: it makes its own, with its own credentials)


def share_loader(session: boto3.Session) -> boto3.Session:
    session._session.register_component("data_loader", shared_loader())
    return session


@dataclass(frozen=True)
class Clients:
    """boto3 clients made once for the whole run (a client made after ``import moto`` is mocked in
    every ``mock_aws()``), with moto's default identity ``arn:aws:sts::<account>:user/moto``."""

    dynamodb: DynamoDBClient
    streams: DynamoDBStreamsClient
    ecr: ECRClient
    events: EventBridgeClient
    iam: Any  # no boto3-stubs[iam] in the project
    secretsmanager: SecretsManagerClient
    sqs: SQSClient
    sts: STSClient


@cache
def reconciler_test_session() -> boto3.Session:
    """A session with moto's fake credentials (not the environment's: the function's run changes those)."""
    return share_loader(
        boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name=REGION,
        )
    )


@cache
def clients() -> Clients:
    session = reconciler_test_session()
    return Clients(
        dynamodb=session.client("dynamodb"),
        streams=session.client("dynamodbstreams"),
        ecr=session.client("ecr"),
        events=session.client("events"),
        iam=session.client("iam"),
        secretsmanager=session.client("secretsmanager"),
        sqs=session.client("sqs"),
        sts=session.client("sts"),
    )


# --------------------------------------------------------------------------------------------------
# The template's wiring


def _events() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = functions()[RECONCILER]["Events"]
    return found


def stream_filter_patterns() -> list[dict[str, Any]]:
    """The ``FilterCriteria`` patterns of the function's DynamoDB event source (JSON strings in the template)."""
    source = _events()[STREAM_EVENT]
    assert source["Type"] == "DynamoDB"
    return [json.loads(f["Pattern"]) for f in source["Properties"]["FilterCriteria"]["Filters"]]


def _resolve(value: Any) -> Any:
    """A pattern's ``!Sub`` strings and ``!GetAtt <Role>.Arn`` for this test account and the functions' roles (any
    other is an error)."""
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::GetAtt"}:
        roles = {"ReconcilerFunctionRole": RECONCILER_ROLE, "ReconcileWorkerFunctionRole": RECONCILE_WORKER_ROLE}
        name, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn" and name in roles, f"a pattern reference this harness does not know: {value}"
        return roles[name]
    if set(value) == {"Fn::Sub"}:
        variables = {
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT_ID,
            "ReconcilerFunctionRole": RECONCILER_ROLE.rsplit("/", 1)[1],
        }
        text = str(value["Fn::Sub"])
        for name, replacement in variables.items():
            text = text.replace("${" + name + "}", replacement)
        assert "${" not in text, f"a pattern variable this harness does not know: {text}"
        return text
    return {key: _resolve(item) for key, item in value.items()}


def eventbridge_pattern(name: str, *, own_calls_filtered: bool = True) -> dict[str, Any]:
    """The pattern of one of the rules sending ECR events to the reconciler's queue (``Reconciler<name>Rule``),
    checked to target the queue the function's ``EcrEvents`` source reads, resolved.

    ``own_calls_filtered=False`` drops the ``$or`` that keeps the function's own calls out: what an event the
    pattern did not stop would look like (the code ignores those too).
    """
    rule = resources("AWS::Events::Rule")[f"Reconciler{name}Rule"]["Properties"]
    source = _events()[EVENT_QUEUE_SOURCE]
    assert source["Type"] == "SQS"
    queue = source["Properties"]["Queue"]
    assert [t["Arn"] for t in rule["Targets"]] == [queue]
    pattern: dict[str, Any] = _resolve(rule["EventPattern"])
    if not own_calls_filtered:
        pattern["detail"].pop("$or", None)
    return pattern


def schedule_input(name: Literal["Resync", "DeepResync"]) -> dict[str, Any]:
    """What EventBridge Scheduler delivers for one of the function's schedules (its ``Input``)."""
    source = _events()[name]
    assert source["Type"] == "Schedule"
    payload: dict[str, Any] = json.loads(source["Properties"]["Input"])
    return payload


# --------------------------------------------------------------------------------------------------
# Content filtering (Lambda event filtering and EventBridge patterns share the grammar)


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches ``pattern``, by moto's EventBridge matcher (the one the local runner and the
    embedded EventBridge use): the whole documented grammar, ``$or`` and ``anything-but`` included."""
    return bool(compile_pattern(pattern).matches_event(dict(event)))


# --------------------------------------------------------------------------------------------------
# The state table's stream


@dataclass(frozen=True)
class StreamBatch:
    """New stream records: those the event source mapping's filter lets through, and the rest."""

    delivered: tuple[Record, ...]
    dropped: tuple[Record, ...]

    @property
    def event(self) -> dict[str, Any]:
        return {"Records": [dict(r) for r in self.delivered]}

    @staticmethod
    def keys(records: Sequence[Record]) -> list[tuple[str, str]]:
        return [(r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in records]


class StateStream:
    """The state table's stream, read from moto like Lambda's event source mapping reads it."""

    def __init__(self, table_name: str) -> None:
        self.region = REGION
        self.streams = clients().streams
        table = clients().dynamodb.describe_table(TableName=table_name)["Table"]
        self.arn = table["LatestStreamArn"]
        self.filters = stream_filter_patterns()
        self._after: dict[str, str] = {}

    def passes(self, record: Mapping[str, Any]) -> bool:
        """The template's ``FilterCriteria``: a record passes when any filter matches it."""
        return any(matches(pattern, record) for pattern in self.filters)

    def read(self) -> list[Record]:
        """Records written since the last read, in order, shaped as Lambda delivers them."""
        out: list[Record] = []
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            shard_id = shard["ShardId"]
            after = self._after.get(shard_id)
            if after is None:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            else:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=self.arn,
                    ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    SequenceNumber=after,
                )["ShardIterator"]
            records = self.streams.get_records(ShardIterator=iterator)["Records"]
            for raw in records:
                out.append(self._lambda_record(dict(raw)))
            if records:
                self._after[shard_id] = str(records[-1]["dynamodb"]["SequenceNumber"])
        return out

    def next_batch(self) -> StreamBatch:
        records = self.read()
        return StreamBatch(
            delivered=tuple(r for r in records if self.passes(r)),
            dropped=tuple(r for r in records if not self.passes(r)),
        )

    def skip(self) -> None:
        """Forget what was written so far (set-up writes no test wants delivered)."""
        self.read()

    def _lambda_record(self, raw: dict[str, Any]) -> Record:
        body = dict(raw["dynamodb"])
        created = body.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            body["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": raw.get("awsRegion", self.region),
            "dynamodb": body,
            "eventSourceARN": self.arn,
        }


@dataclass(frozen=True)
class StreamOutcome:
    """One invocation with a stream batch, and what Lambda does next."""

    records: tuple[Record, ...]
    response: dict[str, Any] | None
    error: Exception | None = None

    @property
    def reported_failures(self) -> list[str]:
        """``batchItemFailures`` item identifiers (sequence numbers) of a successful invocation."""
        if self.response is None:
            return []
        return [str(f["itemIdentifier"]) for f in self.response.get("batchItemFailures", [])]

    @property
    def retried(self) -> list[str]:
        """Sequence numbers Lambda delivers again: all after a function error; with
        ``ReportBatchItemFailures``, every record from the first reported one on."""
        sequence = [str(r["dynamodb"]["SequenceNumber"]) for r in self.records]
        if self.error is not None:
            return sequence
        failed = set(self.reported_failures)
        first = next((i for i, s in enumerate(sequence) if s in failed), len(sequence))
        return sequence[first:]


# --------------------------------------------------------------------------------------------------
# EventBridge


class EventInbox:
    """EventBridge rules with the function's own patterns, delivering to one SQS queue."""

    def __init__(self, name: str = "reconciler-inbox", *, own_calls_filtered: bool = True) -> None:
        self.sqs = clients().sqs
        events = clients().events
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for rule in EVENT_RULES:
            pattern = eventbridge_pattern(rule, own_calls_filtered=own_calls_filtered)
            events.put_rule(Name=f"{name}-{rule}", EventPattern=json.dumps(pattern))
            events.put_targets(Rule=f"{name}-{rule}", Targets=[{"Id": "reconciler", "Arn": queue_arn}])

    def drain(self) -> list[dict[str, Any]]:
        """Events delivered since the last drain, oldest first."""
        out: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


# --------------------------------------------------------------------------------------------------
# Lambda


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Delivery:
    """One EventBridge event delivered to the handler, and its answer."""

    envelope: dict[str, Any]
    response: dict[str, Any]

    @property
    def ignored(self) -> bool:
        return self.response == {"ignored": True}

    @property
    def caller(self) -> str:
        """``userIdentity.arn`` of a CloudTrail event ("" for other events and AWS services)."""
        identity: dict[str, Any] = self.envelope["detail"].get("userIdentity") or {}
        return str(identity.get("arn") or "")

    @property
    def run(self) -> ReconcileRun:
        return ReconcileRun.model_validate(self.response)


def sqs_record(message_id: str, body: str, *, receive_count: int = 1) -> Record:
    """A message of the reconciler's event queue as Lambda's SQS event source delivers it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1764892800000",
            "SenderId": "AIDAEVENTBRIDGE",
            "ApproximateFirstReceiveTimestamp": "1764892800000",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:ecrcache-ReconcilerEventsQueue",
        "awsRegion": REGION,
    }


@dataclass
class Reconciler:
    """The Lambda service around ``functions.reconciler.app.lambda_handler``."""

    context: FakeLambdaContext
    stream: StateStream
    inbox: EventInbox
    handler: Handler
    registry: Callable[[str], Boto3EcrRegistry]
    service: ReconcileService
    invocations: int = 0
    #: The same rules without the pattern's own-call filter: the events the template keeps from the function
    #: (its own calls) are held back here, so a test can show the code ignores them too.
    unfiltered: EventInbox | None = None
    held_back: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status_client(self) -> DynamoDBClient:
        """The DynamoDB client the function's status store uses (to make its calls fail)."""
        store = self.service.status
        assert isinstance(store, DynamoDbStatusStore)
        return store.client

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation with a copy of ``event`` as JSON would carry it."""
        self.invocations += 1
        return self.handler(json.loads(json.dumps(event)), self.context)

    @property
    def calls(self) -> Counter[str]:
        """ECR operations the function made so far (its registry counts them; pages one by one)."""
        return self.registry(REGION).calls

    def writes(self) -> Counter[str]:
        return Counter({op: n for op, n in self.calls.items() if op in WRITE_OPERATIONS})

    def reset_calls(self) -> None:
        self.registry(REGION).calls.clear()

    # -- stream

    def deliver_stream(self) -> StreamOutcome:
        """Read the stream, filter it like the event source mapping, invoke with the batch (if any)."""
        return self.invoke_stream(self.stream.next_batch().delivered)

    def invoke_stream(self, records: Sequence[Record]) -> StreamOutcome:
        if not records:
            return StreamOutcome((), None)
        try:
            response = self.invoke({"Records": [dict(r) for r in records]})
        except Exception as exc:  # a function error: Lambda delivers the batch again
            return StreamOutcome(tuple(records), None, exc)
        return StreamOutcome(tuple(records), response)

    # -- schedules and EventBridge

    def resync(self, depth: Literal["fast", "deep"] = "fast") -> ReconcileRun:
        """One schedule, with the template's ``Input``."""
        payload = schedule_input("Resync" if depth == "fast" else "DeepResync")
        assert payload == {"resync": depth}
        return ReconcileRun.model_validate(self.invoke(payload))

    def pending_events(self) -> list[dict[str, Any]]:
        """Events EventBridge routed to the function since the last look (taken off the queue); the ones the
        pattern kept out since the last look are :attr:`held_back`."""
        routed = self.inbox.drain()
        if self.unfiltered is not None:
            ids = {event["id"] for event in routed}
            self.held_back = [event for event in self.unfiltered.drain() if event["id"] not in ids]
        return routed

    def deliver_held_back(self) -> list[Delivery]:
        """Deliver the events the pattern kept from the function at the last look (as if they got past it)."""
        held, self.held_back = self.held_back, []
        return self.deliver(held)

    def deliver(self, envelopes: Sequence[dict[str, Any]]) -> list[Delivery]:
        return [Delivery(envelope, self.invoke(envelope)) for envelope in envelopes]

    def deliver_queue(self, envelopes: Sequence[dict[str, Any]], *, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """One batch of the event queue, as Lambda's SQS event source delivers it (each body an EventBridge
        event); ``ids`` are the messages' ids (the same ids again: SQS delivering a batch again)."""
        message_ids = list(ids) if ids is not None else [f"m-{i}" for i in range(len(envelopes))]
        records = [
            sqs_record(message_id, json.dumps(envelope))
            for message_id, envelope in zip(message_ids, envelopes, strict=True)
        ]
        return self.invoke({"Records": records})

    def deliver_events(self) -> list[Delivery]:
        """Every pending event, oldest first."""
        return self.deliver(self.pending_events())

    def converge(self, *, deliver_events: bool = False) -> StreamOutcome:
        """Deliver the stream batch; then take the events that came back off the queue - or, with
        ``deliver_events``, deliver them (the controller's own are then checked to be ignored)."""
        outcome = self.deliver_stream()
        assert outcome.error is None, outcome.error
        assert outcome.reported_failures == [], outcome.response
        if not deliver_events:
            self.pending_events()
            return outcome
        own = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{RECONCILER_ROLE.rsplit('/', 1)[1]}/"
        for delivery in self.deliver_events():
            assert not delivery.caller.startswith(own), f"the pattern let its own call in: {delivery.envelope}"
        for delivery in self.deliver_held_back():
            assert delivery.caller.startswith(own), delivery.envelope["detail"]
            assert delivery.ignored, delivery.envelope["detail"]
        return outcome


@dataclass(frozen=True)
class Principal:
    """Someone other than the controller, with their own credentials."""

    arn: str
    ecr: ECRClient


# --------------------------------------------------------------------------------------------------
# Changing the desired state (through the REST API, as people do)


class Admin:
    """Alice, writing the desired state through the API handler (each write lands on the stream)."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def put_rule(self, prefix: str, spec: dict[str, Any]) -> int:
        response = self.api.put(f"/v1/rules/{enc(prefix)}", spec)
        assert response.status in {200, 201}, response.text
        version: int = response.json["version"]
        return version

    def delete_rule(self, prefix: str) -> None:
        response = self.api.delete(f"/v1/rules/{enc(prefix)}")
        assert response.status == 204, response.text

    def put_credential(self, name: str, *, kind: str = "docker-hub", token: str = GOOD_TOKEN) -> str:
        """A credential and its secret ``ecr-pullthroughcache/<name>``; returns the secret's ARN."""
        body = {"upstream_kind": kind, "username": "ecrcache-puller", "token": token}
        response = self.api.put(f"/v1/credentials/{enc(name)}", body)
        assert response.status in {200, 201}, response.text
        arn: str = clients().secretsmanager.describe_secret(SecretId=f"ecr-pullthroughcache/{name}")["ARN"]
        return arn


# --------------------------------------------------------------------------------------------------
# Looking at the outcome


class Look:
    """Read-only views of ECR and of what the reconciler recorded (never counted, never drift)."""

    def __init__(self, table_name: str) -> None:
        self.region = REGION
        self.ecr = clients().ecr
        self.status = DynamoDbStatusStore(table_name, clients().dynamodb)

    def rule(self, prefix: str) -> dict[str, Any] | None:
        rules = self.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
        found = next((r for r in rules if r["ecrRepositoryPrefix"] == prefix), None)
        return dict(found) if found is not None else None

    def rules(self) -> set[str]:
        return {r["ecrRepositoryPrefix"] for r in self.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]}

    def template(self, prefix: str) -> dict[str, Any] | None:
        found = self.ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]
        template = next((t for t in found if t["prefix"] == prefix), None)
        return dict(template) if template is not None else None

    def lifecycle(self, repository: str) -> dict[str, Any] | None:
        try:
            text = self.ecr.get_lifecycle_policy(repositoryName=repository)["lifecyclePolicyText"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "LifecyclePolicyNotFoundException":
                return None
            raise
        policy: dict[str, Any] = json.loads(text)
        return policy

    def policy(self, repository: str) -> dict[str, Any] | None:
        try:
            text = self.ecr.get_repository_policy(repositoryName=repository)["policyText"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "RepositoryPolicyNotFoundException":
                return None
            raise
        policy: dict[str, Any] = json.loads(text)
        return policy

    def tags(self, repository: str) -> dict[str, str]:
        [repo] = self.ecr.describe_repositories(repositoryNames=[repository])["repositories"]
        tags = self.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
        return {t["Key"]: t["Value"] for t in tags}

    def mutability(self, repository: str) -> tuple[str, list[str]]:
        [repo] = self.ecr.describe_repositories(repositoryNames=[repository])["repositories"]
        filters = [f["filter"] for f in repo.get("imageTagMutabilityExclusionFilters") or []]
        return repo.get("imageTagMutability", "MUTABLE"), filters

    def rule_status(self, prefix: str) -> RuleStatus | None:
        return self.status.rule_status(self.region, prefix)

    def owned(self) -> Ownership:
        return self.status.ownership(self.region)

    def run(self, run_id: str) -> ReconcileRun | None:
        return self.status.get_run(run_id)

    def runs(self) -> list[ReconcileRun]:
        """Every run recorded, newest first."""
        return self.status.latest_runs(1000)


# --------------------------------------------------------------------------------------------------
# Faults and conditions


def aws_error(code: str, operation: str, *, status: int = 400, message: str = "injected") -> ClientError:
    """A botocore ``ClientError`` as a service returns it."""
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


FAULTS: Final[dict[str, tuple[str, int, bool]]] = {
    # name: (error code, HTTP status, retryable)
    "throttling": ("ThrottlingException", 400, True),
    "server-error": ("ServerException", 500, True),
    "access-denied": ("AccessDeniedException", 400, False),
}


@contextmanager
def recording(client: Any, method: str) -> Iterator[list[dict[str, Any]]]:
    """Record the keyword arguments of every ``client.<method>`` call (the call still goes through)."""
    original = getattr(client, method)
    calls: list[dict[str, Any]] = []

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(**kwargs)

    setattr(client, method, spy)
    try:
        yield calls
    finally:
        delattr(client, method)


@contextmanager
def failing(
    client: Any, method: str, fault: str | Callable[[dict[str, Any]], str | None]
) -> Iterator[list[dict[str, Any]]]:
    """Make ``client.<method>`` fail: with ``fault`` (a :data:`FAULTS` key) on every call, or with
    whatever ``fault(kwargs)`` picks for each call (``None``: the call goes through).

    Botocore's own retries are bypassed: this is the call failing after them. Yields the keyword
    arguments of the calls that failed; the original method is back on exit.
    """
    choose: Callable[[dict[str, Any]], str | None] = (lambda _: fault) if isinstance(fault, str) else fault
    original = getattr(client, method)
    operation = "".join(part.title() for part in method.split("_"))
    failed: list[dict[str, Any]] = []

    def fake(**kwargs: Any) -> Any:
        picked = choose(kwargs)
        if picked is None:
            return original(**kwargs)
        code, status, _ = FAULTS[picked]
        failed.append(kwargs)
        raise aws_error(code, operation, status=status, message=f"injected {picked}")

    setattr(client, method, fake)
    try:
        yield failed
    finally:
        delattr(client, method)


def target_of(request: Mapping[str, Any]) -> str:
    """The rule prefix an ECR request is about (first segment of a repository name or ARN)."""
    for key in ("ecrRepositoryPrefix", "prefix"):
        if key in request:
            return str(request[key])
    if "repositoryName" in request:
        return str(request["repositoryName"]).split("/", 1)[0]
    if "resourceArn" in request:
        return str(request["resourceArn"]).split(":repository/", 1)[1].split("/", 1)[0]
    raise ValueError(f"no target in {sorted(request)}")


def condition(status: RuleStatus | None, kind: ConditionType) -> tuple[bool, str, str]:
    """``(status, reason, message)`` of one condition (``Synced`` ...); fails when it is not set."""
    assert status is not None, "no status recorded"
    found = status.condition(kind)
    assert found is not None, f"no {kind} condition in {status}"
    return found.status, found.reason, found.message

"""Pull-statistics load for the warming benchmark: DynamoDB writes per 10,000 ECR pull events.

What is modelled, and how:

* **Traffic.** ``docker pull`` runs of the warm set's :data:`~bench.warm_world.IMAGE_COUNT` images arrive as a
  Poisson process at the rate of an account making ``pulls_per_day`` of them, for ``minutes`` of traffic
  (:class:`Load`), the image drawn from a Zipf law (rank ``r`` weighs ``1 / r**s``), the platform amd64 or
  arm64 (:data:`ARM_SHARE`), the caller one of :data:`PRINCIPALS` CI/ECS/EKS roles. A pull of a
  multi-platform tag is the CloudTrail events ECR emits for it: ``BatchGetImage`` by tag (the index),
  ``BatchGetImage`` by digest (the platform's image), then ``GetDownloadUrlForLayer`` for its config and each
  layer (a runner without a layer cache), 100 ms apart. The events are generated lazily, in the order of
  their times (the calls of overlapping pulls interleave), and never all held: an hour at 1,000,000 pulls a
  day is about 208,000 of them.
* **Records.** Each event is the project's sample CloudTrail pull event (``events/pull_stats/``, shaped on
  the ECR User Guide's example) with its ids, times, caller, user agent and request parameters replaced,
  wrapped in the SQS record Lambda's event source passes (``messageId``, ``receiptHandle``, ``md5OfBody``,
  ``attributes`` ...) -- so the payload sizes are those of real records.
* **Batches.** Lambda's SQS poller (Lambda developer guide, "Lambda parameters for Amazon SQS event source
  mappings" and "batching behavior"): a batch is invoked when it holds ``BatchSize`` records, when
  ``MaximumBatchingWindowInSeconds`` has passed since its first record, or when one more record would take
  the invocation payload over 6 MB (the synchronous invocation limit). Arrival at the queue is taken to be
  the event's time (CloudTrail's delivery delay shifts all events alike). Lambda gathers several batches at
  once ("When messages are available, Lambda starts processing five batches at a time", guide "Configuring
  scaling behavior for SQS event source mappings"): ``gatherers`` batches fill in parallel, each message
  dealt to one of them. Batches are formed as the records stream past (:func:`batches`), each with its
  invocation time: when the poller closes it.
* **Writes.** Every batch goes through the production path as ``functions/pull_stats/app.py`` wires it --
  Powertools' ``SqsModel``, :class:`~ecrcache.services.pull_stats.PullStatsService` over
  :class:`~ecrcache.adapters.pull_stats_store.DynamoDbPullStatsStore` with a
  :class:`~ecrcache.services.pull_compaction.PullCompaction` over
  :class:`~ecrcache.adapters.pull_compaction_store.DynamoDbPullCompactionStore`, on moto -- its clock the
  batch's invocation time, so the compaction runs when due (the first batch, then every
  :data:`~ecrcache.services.pull_compaction.DEFAULT_INTERVAL` of traffic). Items written are the two stores'
  own counters (``write_items``); :class:`WriteLog` sorts the same writes by kind (delta puts, counter
  writes, seen-id items, delta deletes, lease writes) from botocore's hooks on the stores' client, and
  estimates their write request units from the items' sizes (:func:`write_units`). At the end, the deltas
  still pending are counted, then folded by one more compaction (as the next batch would), and the counters
  must hold exactly the pulls and layer requests of the traffic (:func:`check_exact`).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import boto3
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel
from pydantic import SecretStr

from bench.support import Traffic
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.pull_compaction_store import DynamoDbPullCompactionStore
from ecrcache.adapters.pull_stats_store import DELTA_PARTITION, DynamoDbPullStatsStore
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.pull_stats import CounterKey
from ecrcache.models.rule import RuleSpec
from ecrcache.observability import metrics
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.pull_compaction import PullCompaction
from ecrcache.services.pull_stats import PullStatsService
from tests.template import functions, table_definition

ROOT: Final = Path(__file__).resolve().parents[1]
SAMPLE_EVENT: Final = ROOT / "events" / "pull_stats" / "sqs_pull_events.json"
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"
PREFIX: Final = "docker-hub"
ARM_SHARE: Final = 0.3
PRINCIPALS: Final = 40
WARMER_ROLE_ARN: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-WarmWorkerFunctionRole-BENCH"
PAYLOAD_LIMIT: Final = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload limit (6 MB), which also caps an SQS batch."""
RECEIPT_HANDLE_LENGTH: Final = 392
"""Characters of a receipt handle (AWS's are opaque base64 strings of a few hundred characters)."""
START: Final = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)
ROLES: Final = ("ci-runner", "ecs-task-api", "ecs-task-worker", "eks-node", "batch-job")
BLOBS_PER_PULL: Final = 3
"""Config + 2 layers: the benchmark images' shape (:mod:`bench.warm_world`)."""
EVENTS_PER_PULL: Final = 2 + BLOBS_PER_PULL
PER_EVENTS: Final = 10_000

DELTA_PUTS: Final = "delta puts"
COUNTER_WRITES: Final = "counter writes"
SEEN_ITEMS: Final = "seen-id items"
DELTA_DELETES: Final = "delta deletes"
LEASE_WRITES: Final = "lease writes"
WRITE_KINDS: Final = (DELTA_PUTS, COUNTER_WRITES, SEEN_ITEMS, DELTA_DELETES, LEASE_WRITES)


def per_events(value: float, events: int, per: int = PER_EVENTS) -> float:
    """``value`` per ``per`` events of a load of ``events`` (the report's "per 10,000 pull events")."""
    if events <= 0:
        raise ValueError("a load of no events has no rate")
    return value * per / events


@dataclass(frozen=True, slots=True)
class EventSource:
    """An SQS event source mapping's batching settings."""

    batch_size: int
    window_seconds: int
    gatherers: int = 1
    """Batches filled at once (each message dealt to one of them)."""

    def describe(self) -> str:
        return (
            f"BatchSize {self.batch_size:,}, window {self.window_seconds} s, "
            f"{self.gatherers} batch{'es' if self.gatherers > 1 else ''} gathering at once"
        )


def template_event_source() -> EventSource:
    """``PullStatsFunction``'s SQS event as ``template.yaml`` declares it."""
    events = functions()["PullStatsFunction"]["Events"]
    properties = next(e["Properties"] for e in events.values() if e.get("Type") == "SQS")
    return EventSource(int(properties["BatchSize"]), int(properties["MaximumBatchingWindowInSeconds"]))


@dataclass(frozen=True, slots=True)
class Load:
    """The traffic: how busy an account, for how long, over which images."""

    minutes: float = 60
    pulls_per_day: int = 1_000_000
    images: int = 50
    zipf: float = 1.0
    seed: int = 20261129
    events: int | None = None
    """At most this many events (a quick run); ``None``: every event of the ``minutes``."""

    @property
    def pull_rate(self) -> float:
        return self.pulls_per_day / 86_400

    @property
    def end(self) -> datetime:
        """No pull starts at or after this time."""
        return START + timedelta(minutes=self.minutes)


@dataclass(frozen=True, slots=True)
class Record:
    """One SQS record (the dict Lambda passes), when it reached the queue, and the counter it adds to."""

    at: datetime
    body: dict[str, Any]
    size: int
    counter: tuple[str, str]
    """``(kind, key)``: ``tag``/``digest`` with ``repository:tag``/``repository@digest``, or ``layer`` with the
    repository (a GetDownloadUrlForLayer counts per repository)."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One API call of a pull, by whom."""

    at: datetime
    name: str
    repository: str
    params: dict[str, Any]
    arch: str
    principal: int

    @property
    def counter(self) -> tuple[str, str]:
        if self.name != "BatchGetImage":
            return ("layer", self.repository)
        image_id = self.params["imageIds"][0]
        if "imageTag" in image_id:
            return ("tag", f"{self.repository}:{image_id['imageTag']}")
        return ("digest", f"{self.repository}@{image_id['imageDigest']}")


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _templates() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(record envelope, BatchGetImage body, GetDownloadUrlForLayer body) of the sample event."""
    records = json.loads(SAMPLE_EVENT.read_text())["Records"]
    bodies = [json.loads(r["body"]) for r in records]
    by_name = {b["detail"].get("eventName"): b for b in bodies}
    envelope = {k: v for k, v in records[0].items() if k != "body"}
    return envelope, by_name["BatchGetImage"], by_name["GetDownloadUrlForLayer"]


class EventFactory:
    """CloudTrail pull events of ``docker pull`` runs, as SQS records (see the module docstring)."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.rng = random.Random(load.seed)
        self.envelope, get_image, layer_url = _templates()
        self.texts = {"BatchGetImage": json.dumps(get_image), "GetDownloadUrlForLayer": json.dumps(layer_url)}
        weights = [1 / (rank**load.zipf) for rank in range(1, load.images + 1)]
        total = sum(weights)
        self.weights = [w / total for w in weights]

    def stream(self) -> Iterator[Record]:
        """The records in the order they reach the queue, each made when it is asked for."""
        return (self._record(call) for call in itertools.islice(self._calls(), self.load.events))

    def _calls(self) -> Iterator[_Call]:
        """The calls of the pulls starting before :attr:`Load.end`, in time order: a call is let out once the
        next pull starts after it (no later pull can have an earlier call); at most a few pulls are held."""
        held: list[tuple[datetime, int, _Call]] = []
        order = itertools.count()
        at = START
        while True:
            at += timedelta(seconds=self.rng.expovariate(self.load.pull_rate))
            while held and (held[0][0] < at or at >= self.load.end):
                yield heapq.heappop(held)[2]
            if at >= self.load.end:
                return
            for call in self._pull(at):
                heapq.heappush(held, (call.at, next(order), call))

    def _pull(self, at: datetime) -> list[_Call]:
        """The calls of one ``docker pull`` of a multi-platform tag, 100 ms apart."""
        image = self.rng.choices(range(self.load.images), weights=self.weights)[0]
        repository = f"{PREFIX}/library/bench-{image:02d}"
        arch = "arm64" if self.rng.random() < ARM_SHARE else "amd64"
        principal = self.rng.randrange(PRINCIPALS)
        child = _digest(repository, "1.0", arch)
        calls: list[tuple[str, dict[str, Any]]] = [
            ("BatchGetImage", {"imageIds": [{"imageTag": "1.0"}]}),
            ("BatchGetImage", {"imageIds": [{"imageDigest": child}]}),
            *(("GetDownloadUrlForLayer", {"layerDigest": _digest(child, blob)}) for blob in range(BLOBS_PER_PULL)),
        ]
        return [
            _Call(at + timedelta(milliseconds=100 * i), name, repository, params, arch, principal)
            for i, (name, params) in enumerate(calls)
        ]

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _body(self, call: _Call) -> dict[str, Any]:
        """The sample event with this call's ids, times, caller, user agent and parameters."""
        body: dict[str, Any] = json.loads(self.texts[call.name])
        stamp = call.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        role = f"{ROLES[call.principal % len(ROLES)]}-{call.principal:02d}"
        session = f"i-{self.rng.getrandbits(68):017x}"
        detail = body["detail"]
        body["id"], body["time"] = self._uuid(), stamp
        detail.update(eventTime=stamp, eventID=self._uuid(), requestID=self._uuid())
        identity = detail["userIdentity"]
        identity["arn"] = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}"
        identity["principalId"] = f"AROA{call.principal:016d}:{session}"
        identity["sessionContext"]["sessionIssuer"].update(arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{role}", userName=role)
        detail["userAgent"] = detail["userAgent"].replace("arch/arm64", f"arch/{call.arch}")
        accepted = detail["requestParameters"].get("acceptedMediaTypes")
        detail["requestParameters"] = {"registryId": ACCOUNT_ID, "repositoryName": call.repository, **call.params}
        if accepted is not None:
            detail["requestParameters"]["acceptedMediaTypes"] = accepted
        arn = f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{call.repository}"
        detail["resources"] = [{"accountId": ACCOUNT_ID, "ARN": arn}]
        return body

    def _record(self, call: _Call) -> Record:
        text = json.dumps(self._body(call))
        sent = str(int(call.at.timestamp() * 1000))
        handle = base64.b64encode(self.rng.randbytes(RECEIPT_HANDLE_LENGTH)).decode()[: RECEIPT_HANDLE_LENGTH - 4]
        record = {
            **self.envelope,
            "messageId": self._uuid(),
            "receiptHandle": "AQEB" + handle,
            "body": text,
            "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
            "attributes": {
                **self.envelope["attributes"],
                "SentTimestamp": sent,
                "ApproximateFirstReceiveTimestamp": sent,
            },
        }
        return Record(call.at, record, record_size(record), call.counter)


def record_size(record: Mapping[str, Any]) -> int:
    """Bytes of ``record`` in the invocation payload (``json.dumps``, the body a JSON string in it), plus the
    comma between records. The body is ASCII JSON (``json.dumps`` escapes the rest), so quoting it adds
    only its quotes and backslashes."""
    body: str = record["body"]
    quoted = len(body) + body.count('"') + body.count("\\") + 2
    return len(json.dumps({**record, "body": ""})) - 2 + quoted + 1


# --------------------------------------------------------------------------------------------------
# Batching


_EMPTY_PAYLOAD: Final = len('{"Records": []}')


@dataclass(frozen=True, slots=True)
class Batch:
    """One invocation: when the poller sent it, its records, and its payload's bytes."""

    at: datetime
    records: list[Record]
    payload: int


@dataclass
class _Open:
    records: list[Record] = field(default_factory=list)
    size: int = _EMPTY_PAYLOAD

    def close(self, at: datetime) -> Batch:
        return Batch(at, self.records, self.size)


def _expired(gathering: list[_Open], now: datetime, window: timedelta) -> list[Batch]:
    """The batches whose window has passed before ``now``, closed when it passed (earliest first); their
    gatherers start afresh."""
    closed: list[Batch] = []
    for slot, current in enumerate(gathering):
        if current.records and now - current.records[0].at > window:
            closed.append(current.close(current.records[0].at + window))
            gathering[slot] = _Open()
    return sorted(closed, key=lambda batch: batch.at)


def batches(records: Iterable[Record], source: EventSource) -> Iterator[Batch]:
    """The batches Lambda would invoke the function with (see the module docstring), in invocation order,
    formed as ``records`` (in arrival order) stream past: at most ``source.gatherers`` batches are held.

    With several batches gathering, each message goes to one of them at random (seeded): SQS hands a
    message to whichever poller's receive comes first. (Dealing in turn would line up with the five
    events of a pull and give each batch one kind of event.)
    """
    dealer = random.Random(f"batches|{source.describe()}")
    gathering = [_Open() for _ in range(source.gatherers)]
    window = timedelta(seconds=source.window_seconds)
    for record in records:
        yield from _expired(gathering, record.at, window)
        slot = dealer.randrange(source.gatherers)
        current = gathering[slot]
        if current.records and current.size + record.size > PAYLOAD_LIMIT:
            yield current.close(record.at)
            current = gathering[slot] = _Open()
        current.records.append(record)
        current.size += record.size
        if len(current.records) == source.batch_size:
            yield current.close(record.at)
            gathering[slot] = _Open()
    rest = [b.close(b.records[0].at + window) for b in gathering if b.records]
    yield from sorted(rest, key=lambda batch: batch.at)


# --------------------------------------------------------------------------------------------------
# Item sizes and write request units


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return 1 + math.ceil(len(digits) / 2)


def _scalar_size(kind: str, value: Any) -> int:
    if kind == "N":
        return _number_size(value)
    if kind in {"S", "B"}:
        return len(value.encode()) if isinstance(value, str) else len(value)
    return 1  # BOOL, NULL


def attribute_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value as DynamoDB sizes it (developer guide, "Item sizes and formats")."""
    ((kind, inner),) = value.items()
    if kind in {"SS", "BS", "NS"}:
        return sum(_scalar_size(kind[0], v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    return _scalar_size(kind, inner)


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(before: int, after: int) -> int:
    """Write request units of one standard (non-transactional) write of an item of ``before`` bytes into one
    of ``after`` bytes (0: none; a delete's ``after`` is 0): 1 per KB, rounded up, of the larger (DynamoDB
    developer guide, "DynamoDB read and write operations"), at least 1."""
    return max(1, math.ceil(max(before, after) / 1024))


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["pk"]["S"], item["sk"]["S"])


@dataclass(frozen=True, slots=True)
class Writes:
    """The items written so far, by kind, their estimated write request units, requests and compaction runs."""

    items: Counter[str]
    units: Counter[str]
    """Estimated write request units, by kind."""
    requests: int
    runs: int

    @property
    def total(self) -> int:
        return sum(self.items.values())

    @property
    def total_units(self) -> int:
        return sum(self.units.values())


class WriteLog:
    """The pull-statistics writes a client makes, by kind, with their write request units (estimated from the
    items' sizes: the size of a put item from its parameters, of an updated item read back after the update
    with ``reader``, of a deleted one as last written). botocore's hooks see each call the stores make as it
    is, and only those that succeeded are counted."""

    def __init__(self, client: Any, reader: Any) -> None:
        self.reader = reader
        self.items: Counter[str] = Counter()
        self.units: Counter[str] = Counter()
        self.runs = 0
        self.sizes: dict[tuple[str, str], int] = {}
        hooks = client.meta.events
        hooks.register("before-parameter-build.dynamodb", self._params, unique_id=f"pull-load-params-{id(self)}")
        hooks.register("after-call.dynamodb", self._done, unique_id=f"pull-load-done-{id(self)}")

    def snapshot(self, requests: int) -> Writes:
        return Writes(Counter(self.items), Counter(self.units), requests, self.runs)

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["pull_load_params"] = params

    def _done(self, http_response: Any, parsed: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("pull_load_params")
        if params is None or http_response is None or http_response.status_code >= 300:
            return
        if model.name == "PutItem":
            self._put(params["Item"])
        elif model.name == "UpdateItem":
            self._update(params)
        elif model.name == "BatchWriteItem":
            unprocessed = parsed.get("UnprocessedItems", {}) if isinstance(parsed, dict) else {}
            for table, requests in params["RequestItems"].items():
                left = unprocessed.get(table, [])
                for request in requests:
                    if request not in left:
                        self._batch_request(request)

    def _put(self, item: Mapping[str, Any]) -> None:
        key, size = _key(item), item_size(item)
        if key[0] == DELTA_PARTITION:
            kind = DELTA_PUTS
        else:
            kind = SEEN_ITEMS if key[0].startswith("PULLSEEN#") else "other puts"
        self.items[kind] += 1
        self.units[kind] += write_units(self.sizes.get(key, 0), size)
        self.sizes[key] = size

    def _update(self, params: Mapping[str, Any]) -> None:
        key = _key(params["Key"])
        after = self.reader.get_item(TableName=params["TableName"], Key=params["Key"], ConsistentRead=True)
        size = item_size(after.get("Item", {}))
        kind = COUNTER_WRITES if key[0].startswith("PULLS#") else LEASE_WRITES
        self.items[kind] += 1
        self.units[kind] += write_units(self.sizes.get(key, 0), size)
        self.sizes[key] = size
        if kind == LEASE_WRITES:
            self.runs += "compacted_at" in params["UpdateExpression"]  # a run's finish

    def _batch_request(self, request: Mapping[str, Any]) -> None:
        if "PutRequest" in request:
            self._put(request["PutRequest"]["Item"])
            return
        key = _key(request["DeleteRequest"]["Key"])
        kind = DELTA_DELETES if key[0] == DELTA_PARTITION else "other deletes"
        self.items[kind] += 1
        self.units[kind] += write_units(self.sizes.pop(key, 0), 0)


# --------------------------------------------------------------------------------------------------
# Exactness


class LoadError(Exception):
    """A load did not run as it should (a batch failed or dropped events, the counts disagree): its figures
    would mean nothing."""


class CountMismatchError(LoadError):
    """The counters do not hold the traffic's pulls and layer requests: the figures would mean nothing."""


def check_exact(
    expected: Mapping[tuple[str, str], int],
    pulls: Mapping[str, int],
    layers: Mapping[str, int] | None = None,
    *,
    when: str,
) -> None:
    """The pulls of each reference (``repository:tag`` / ``repository@digest``) and (unless ``None``) the layer
    requests of each repository read back must be those of the traffic (``expected``: :attr:`Record.counter`
    -> events), none missing and none extra; else :class:`CountMismatchError` names the first differences."""
    wanted_pulls = {key: n for (kind, key), n in expected.items() if kind != "layer"}
    compared: list[tuple[str, Mapping[str, int], Mapping[str, int]]] = [("pulls of", pulls, wanted_pulls)]
    if layers is not None:
        compared.append(
            ("layer requests of", layers, {key: n for (kind, key), n in expected.items() if kind == "layer"})
        )
    wrong = [
        f"{what} {key}: {got.get(key, 0):,} counted, {wanted.get(key, 0):,} in the traffic"
        for what, got, wanted in compared
        for key in sorted(set(got) | set(wanted))
        if got.get(key, 0) != wanted.get(key, 0)
    ]
    if wrong:
        total = sum(wanted_pulls.values())
        raise CountMismatchError(
            f"{when}: {len(wrong)} counter(s) differ from the traffic ({sum(pulls.values()):,} pulls counted, "
            f"{total:,} in the traffic): " + "; ".join(wrong[:5])
        )


def _read_back(
    service: PullStatsService, reader: Any, table: str, now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """(pulls per reference as ``GET /v1/pulls`` answers them -- the stored counters plus the pending deltas --,
    layer requests per repository as stored), over the days from :data:`START` to ``now``."""
    days = [START.date() + timedelta(days=i) for i in range((now.date() - START.date()).days + 1)]
    page = service.pulls(None, top=100_000, window_days=len(days), now=now)
    pulls = {
        f"{image.repository}:{image.tag}"
        if image.tag is not None
        else f"{image.repository}@{image.digest}": image.pulls
        for image in page.items
    }
    layers: Counter[str] = Counter()
    for day in days:
        for found in reader.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"PULLS#{day.isoformat()}"}},
            ConsistentRead=True,
        ):
            for item in found["Items"]:
                key = CounterKey.parse(item["pk"]["S"], item["sk"]["S"])
                if not key.is_image:
                    layers[key.repository] += int(item.get("layer_requests", {}).get("N", "0"))
    return pulls, dict(layers)


# --------------------------------------------------------------------------------------------------
# Running a load


@dataclass(frozen=True)
class LoadResult:
    """What one traffic level under one event-source setting cost."""

    load: Load
    source: EventSource
    events: int
    pulls: int
    """Pulls counted (a tag and a digest per ``docker pull``)."""
    traffic_seconds: float
    """From the start to the last event."""
    batches: int
    smallest_batch: int
    largest_batch: int
    largest_payload: int
    record_bytes: float
    """Mean bytes of a record in the invocation payload."""
    during: Writes
    """Everything written while the traffic ran (its compactions included)."""
    final: Writes
    """Plus the compaction that folds the deltas left pending (as the next batch would)."""
    pending_deltas: int
    pending_events: int
    dynamodb: Counter[str]
    """Calls by operation while the traffic ran (reads included)."""
    counters: int
    """Counter items (tag, digest and layer counters) at the end."""
    seconds: float

    def per(self, value: float) -> float:
        """``value`` per 10,000 events of this load."""
        return per_events(value, self.events)


@dataclass
class SimulatedClock:
    """The service's clock: the invocation time of the batch being handled."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Tally:
    """What the batches carried, as they went by."""

    expected: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: int = 0
    pulls: int = 0
    batches: int = 0
    smallest: int = 0
    largest: int = 0
    largest_payload: int = 0
    record_bytes: int = 0
    last: datetime = START
    last_event: datetime = START

    def add(self, batch: Batch, pulls: int) -> None:
        size = len(batch.records)
        self.expected.update(record.counter for record in batch.records)
        self.smallest = size if not self.batches else min(self.smallest, size)
        self.largest = max(self.largest, size)
        self.events += size
        self.pulls += pulls
        self.batches += 1
        self.largest_payload = max(self.largest_payload, batch.payload)
        self.record_bytes += batch.payload - _EMPTY_PAYLOAD
        self.last = batch.at
        self.last_event = max(self.last_event, batch.records[-1].at)


def _desired_rule(table: str, client: Any, index: int) -> None:
    """The Docker Hub rule the pulls go through, in ``table``'s desired state (only managed prefixes count)."""
    desired = DesiredStateService(
        DynamoDbStateStore(table, client),
        SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
        lambda: START,
    )
    name = f"hub-{index}"
    credential = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ecrcache-puller"})
    desired.put_credential(name, credential, SecretStr("dckr_pat_bench"), actor="bench")
    desired.put_rule(
        PREFIX, RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": name}), actor="bench"
    )


@dataclass
class _Wiring:
    """The production objects of ``functions/pull_stats/app.py`` on one table, with the benchmark's counters."""

    table: str
    reader: Any
    store: DynamoDbPullStatsStore
    compaction_store: DynamoDbPullCompactionStore
    compaction: PullCompaction
    service: PullStatsService
    clock: SimulatedClock
    traffic: Traffic
    log: WriteLog

    @classmethod
    def of(cls, index: int, warmer_role_arn: str) -> _Wiring:
        table = f"ecrcache-pulls-{index}"
        reader = boto3.client("dynamodb", region_name=REGION)  # setup and read-backs: not counted
        reader.create_table(TableName=table, **table_definition())
        _desired_rule(table, reader, index)
        client = boto3.client("dynamodb", region_name=REGION)
        store = DynamoDbPullStatsStore(table, client)
        compaction_store = DynamoDbPullCompactionStore(table, store.client)
        compaction = PullCompaction(store, compaction_store)
        clock = SimulatedClock()
        service = PullStatsService(
            store, stack_region=REGION, warmer_role_arn=warmer_role_arn, compaction=compaction, clock=clock
        )
        traffic, log = Traffic(client, "dynamodb"), WriteLog(client, reader)
        return cls(table, reader, store, compaction_store, compaction, service, clock, traffic, log)

    def writes(self) -> Writes:
        """The writes so far; the kinds must add up to the stores' own ``write_items``."""
        items = self.store.write_items + self.compaction_store.write_items
        found = self.log.snapshot(self.store.write_requests + self.compaction_store.write_requests)
        if found.total != items:
            raise LoadError(f"the writes seen by kind ({dict(found.items)}) are not the stores' {items:,} items")
        return found

    def compact_rest(self, after: datetime) -> None:
        """Fold every delta still pending, as the next batch (an interval on) would."""
        now = after
        while self.store.pending():
            now += self.compaction.interval
            if self.compaction.run_if_due(now) is None:
                raise LoadError(f"the compaction did not run at {now:%H:%M:%S} with deltas pending")


def run_load(load: Load, source: EventSource, *, index: int, warmer_role_arn: str = WARMER_ROLE_ARN) -> LoadResult:
    """Every batch of ``load`` under ``source`` through the production service, its stores and compaction, in a
    fresh table; then what is left pending compacted, and the counters checked against the traffic."""
    wiring = _Wiring.of(index, warmer_role_arn)
    tally = _Tally()
    start = time.perf_counter()
    for batch in batches(EventFactory(load).stream(), source):
        wiring.clock.now = batch.at
        outcome = wiring.service.record(
            parse(event={"Records": [r.body for r in batch.records]}, model=SqsModel).Records
        )
        if outcome.failed or outcome.dropped:
            raise LoadError(
                f"a batch at {batch.at:%H:%M:%S}: {len(outcome.failed)} failed, {dict(outcome.dropped)} dropped"
            )
        tally.add(batch, outcome.pulls)
        metrics.clear_metrics()  # the function's handler flushes them after each invocation
    during, calls = wiring.writes(), Counter(wiring.traffic.calls)
    pending = wiring.store.pending()
    # what the API answers with deltas pending (the stored counters plus the pending deltas)
    check_exact(tally.expected, _read_back(wiring.service, wiring.reader, wiring.table, tally.last)[0], when="pending")
    wiring.compact_rest(tally.last)
    final = wiring.writes()
    pulls, layers = _read_back(wiring.service, wiring.reader, wiring.table, tally.last)
    check_exact(tally.expected, pulls, layers, when="compacted")
    metrics.clear_metrics()
    return LoadResult(
        load=load,
        source=source,
        events=tally.events,
        pulls=tally.pulls,
        traffic_seconds=(tally.last_event - START).total_seconds(),
        batches=tally.batches,
        smallest_batch=tally.smallest,
        largest_batch=tally.largest,
        largest_payload=tally.largest_payload,
        record_bytes=tally.record_bytes / max(1, tally.events),
        during=during,
        final=final,
        pending_deltas=len(pending),
        pending_events=sum(len(delta.events) for _, delta in pending),
        dynamodb=calls,
        counters=len(pulls) + len(layers),
        seconds=time.perf_counter() - start,
    )

"""Pull-statistics load for the warming benchmark: DynamoDB writes per 10,000 ECR pull events.

What is modelled, and how:

* **Traffic.** ``docker pull`` runs of the warm set's :data:`~bench.warm_world.IMAGE_COUNT` images arrive as a
  Poisson process at the rate of an account making ``pulls_per_day`` of them, the image drawn from a Zipf
  law (rank ``r`` weighs ``1 / r**s``), the platform amd64 or arm64 (:data:`ARM_SHARE`), the caller one of
  :data:`PRINCIPALS` CI/ECS/EKS roles. A pull of a multi-platform tag is the CloudTrail events ECR emits for
  it: ``BatchGetImage`` by tag (the index), ``BatchGetImage`` by digest (the platform's image), then
  ``GetDownloadUrlForLayer`` for its config and each layer (a runner without a layer cache), 100 ms apart.
  The first ``events`` events are kept.
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
  scaling behavior for SQS event source mappings"; with ``MaximumConcurrency`` set it does not go below
  five): ``gatherers`` batches fill in parallel, messages dealt to them in turn.
* **Writes.** Every batch goes through the production path -- Powertools' ``SqsModel`` (as
  ``functions/pull_stats`` parses its event), :class:`~ecrcache.services.pull_stats.PullStatsService` and
  :class:`~ecrcache.adapters.pull_stats_store.DynamoDbPullStatsStore` on moto -- and the store's own
  counters give the items written (one transaction action per distinct counter and per event minute) and
  the ``TransactWriteItems`` requests. Write request units are estimated from the items' sizes before and
  after each batch (DynamoDB bills an update by the larger of the two; a transactional write costs 2 units
  per KB), read with a scan the store does not count.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
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
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.rule import RuleSpec
from ecrcache.observability import metrics
from ecrcache.services.desired_state import DesiredStateService
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
MAX_BATCH_SIZE: Final = 10_000
MAX_WINDOW_SECONDS: Final = 300
RECEIPT_HANDLE_LENGTH: Final = 392
"""Characters of a receipt handle (AWS's are opaque base64 strings of a few hundred characters)."""
START: Final = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)
ROLES: Final = ("ci-runner", "ecs-task-api", "ecs-task-worker", "eks-node", "batch-job")
_BASE64: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
BLOBS_PER_PULL: Final = 3
"""Config + 2 layers: the benchmark images' shape (:mod:`bench.warm_world`)."""


@dataclass(frozen=True, slots=True)
class EventSource:
    """An SQS event source mapping's batching settings."""

    batch_size: int
    window_seconds: int
    gatherers: int = 1
    """Batches filled at once (messages dealt to them in turn)."""

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
    """The traffic: how many events, from how busy an account, over which images."""

    events: int = 10_000
    pulls_per_day: int = 1_000_000
    images: int = 50
    zipf: float = 1.0
    seed: int = 20261129

    @property
    def pull_rate(self) -> float:
        return self.pulls_per_day / 86_400


@dataclass(frozen=True, slots=True)
class Record:
    """One SQS record (the dict Lambda passes), when it reached the queue, and the counter it adds to."""

    at: datetime
    body: dict[str, Any]
    size: int
    counter: tuple[str, str]
    """``(kind, key)``: ``tag``/``digest`` with ``repository:tag``/``repository@digest``, or ``layer`` with the
    repository (a GetDownloadUrlForLayer counts per repository)."""

    @property
    def minute(self) -> str:
        return self.at.strftime("%Y-%m-%dT%H:%M")


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
        self.envelope, self.get_image, self.layer_url = _templates()
        weights = [1 / (rank**load.zipf) for rank in range(1, load.images + 1)]
        total = sum(weights)
        self.weights = [w / total for w in weights]

    def records(self) -> list[Record]:
        out: list[Record] = []
        at = START
        while len(out) < self.load.events:
            at += timedelta(seconds=self.rng.expovariate(self.load.pull_rate))
            out += [self._record(call) for call in self._pull(at)]
        return out[: self.load.events]

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
        body: dict[str, Any] = json.loads(
            json.dumps(self.get_image if call.name == "BatchGetImage" else self.layer_url)
        )
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
        record = {
            **self.envelope,
            "messageId": self._uuid(),
            "receiptHandle": "AQEB" + "".join(self.rng.choices(_BASE64, k=RECEIPT_HANDLE_LENGTH - 4)),
            "body": text,
            "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
            "attributes": {
                **self.envelope["attributes"],
                "SentTimestamp": sent,
                "ApproximateFirstReceiveTimestamp": sent,
            },
        }
        return Record(call.at, record, len(json.dumps(record)) + 1, call.counter)  # + the comma between records


# --------------------------------------------------------------------------------------------------
# Batching


@dataclass
class _Open:
    records: list[Record] = field(default_factory=list)
    size: int = len('{"Records": []}')


def batches(records: Sequence[Record], source: EventSource) -> list[list[Record]]:
    """The batches Lambda would invoke the function with (see the module docstring), in invocation order.

    With several batches gathering, each message goes to one of them at random (seeded): SQS hands a
    message to whichever poller's receive comes first. (Dealing in turn would line up with the five
    events of a pull and give each batch one kind of event.)
    """
    dealer = random.Random(f"batches|{source.describe()}")
    done: list[tuple[datetime, list[Record]]] = []
    gathering = [_Open() for _ in range(source.gatherers)]
    window = timedelta(seconds=source.window_seconds)
    for record in records:
        slot = dealer.randrange(source.gatherers)
        current = gathering[slot]
        if current.records and record.at - current.records[0].at > window:
            done.append((current.records[0].at + window, current.records))
            current = gathering[slot] = _Open()
        elif current.records and current.size + record.size > PAYLOAD_LIMIT:
            done.append((record.at, current.records))
            current = gathering[slot] = _Open()
        current.records.append(record)
        current.size += record.size
        if len(current.records) == source.batch_size:
            done.append((record.at, current.records))
            gathering[slot] = _Open()
    done += [(b.records[0].at + window, b.records) for b in gathering if b.records]
    return [batch for _, batch in sorted(done, key=lambda item: item[0])]


# --------------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class LoadResult:
    """What one event-source setting cost for the load."""

    source: EventSource
    events: int
    pulls: int
    batches: int
    batch_sizes: tuple[int, ...]
    largest_payload: int
    write_items: int
    write_requests: int
    write_units: int
    dynamodb: Counter[str]
    distinct_counters: int
    distinct_minutes: int
    largest_seen_item: int
    failed: int
    dropped: int
    seconds: float
    touched: Counter[str] = field(default_factory=Counter)
    """Sum over batches of the distinct counters (by kind: tag, digest, layer) and minutes each batch touched:
    what the items written come to (a counter split over two transactions of one batch is written twice)."""

    def per(self, value: int, events: int = 10_000) -> float:
        return value * events / self.events


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


def _items(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            found[(item["pk"]["S"], item["sk"]["S"])] = item
    return found


def _write_units(before: Mapping[tuple[str, str], Any], after: Mapping[tuple[str, str], Any]) -> int:
    """Transactional write units of the items that changed: 2 per KB of the larger of their two sizes."""
    units = 0
    for key, item in after.items():
        previous = before.get(key)
        if previous != item:
            size = max(item_size(item), item_size(previous) if previous is not None else 0)
            units += 2 * max(1, math.ceil(size / 1024))
    return units


def run_load(
    records: Sequence[Record], source: EventSource, *, index: int, warmer_role_arn: str = WARMER_ROLE_ARN
) -> LoadResult:
    """Every batch of ``records`` under ``source`` through the production service and store, in a fresh table."""
    table = f"ecrcache-pulls-{index}"
    setup = boto3.client("dynamodb", region_name=REGION)  # setup, scans: not counted
    setup.create_table(TableName=table, **table_definition())
    _desired_rule(table, setup, index)
    client = boto3.client("dynamodb", region_name=REGION)
    traffic = Traffic(client, "dynamodb")
    store = DynamoDbPullStatsStore(table, client)
    service = PullStatsService(store, stack_region=REGION, warmer_role_arn=warmer_role_arn)
    formed = batches(records, source)
    units = failed = dropped = pulls = 0
    largest = 0
    start = time.perf_counter()
    before = _items(setup, table)
    touched: Counter[str] = Counter()
    for batch in formed:
        touched.update(kind for kind, _ in {r.counter for r in batch})
        touched["minute"] += len({r.minute for r in batch})
        event = {"Records": [r.body for r in batch]}
        largest = max(largest, len(json.dumps(event)))
        outcome = service.record(parse(event=event, model=SqsModel).Records)
        failed += len(outcome.failed)
        dropped += sum(outcome.dropped.values())
        pulls += outcome.pulls
        after = _items(setup, table)
        units += _write_units(before, after)
        before = after
    seconds = time.perf_counter() - start
    metrics.clear_metrics()
    return LoadResult(
        source=source,
        events=len(records),
        pulls=pulls,
        batches=len(formed),
        batch_sizes=tuple(len(b) for b in formed),
        largest_payload=largest,
        write_items=store.write_items,
        write_requests=store.write_requests,
        write_units=units,
        dynamodb=Counter(traffic.calls),
        distinct_counters=sum(1 for pk, _ in before if pk.startswith("PULLS#")),
        distinct_minutes=sum(1 for pk, _ in before if pk.startswith("PULLSEEN#")),
        largest_seen_item=max((item_size(i) for (pk, _), i in before.items() if pk.startswith("PULLSEEN#")), default=0),
        failed=failed,
        dropped=dropped,
        seconds=seconds,
        touched=touched,
    )

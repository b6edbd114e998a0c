"""The two-stage pull statistics on moto's DynamoDB: deltas, the lease-held compaction, the readers.

Real stores (:class:`DynamoDbPullStatsStore`, :class:`DynamoDbPullCompactionStore`) and
:class:`PullCompaction` (with :class:`PullStatsService` where the whole batch path matters), on fixed
clocks. What is checked against a reference (each distinct event counted once, in one batch): the
counters after duplicated, redelivered and reordered batches; what readers answer before and after a
compaction; when a compaction runs; a run cut short at each step and resumed; a run whose lease ran out.
"""

from __future__ import annotations

import itertools
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel

from ecrcache.adapters.aws import RETRY_CONFIG
from ecrcache.adapters.dynamodb_codec import iso, parse_iso
from ecrcache.adapters.pull_compaction_store import SEEN_CHUNK, DynamoDbPullCompactionStore, LeaseLostError
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.engine.pull_stats import coalesce, plus, rank, seen_id, window
from ecrcache.errors import RetryableError
from ecrcache.models.pull_stats import CounterKey, CounterMark, DropReason, Increment, PulledImage, PullEvent
from ecrcache.services.pull_compaction import DEFAULT_INTERVAL, DEFAULT_LEASE, CompactionOutcome, PullCompaction
from ecrcache.services.pull_stats import PullStatsService
from tests.pull_events import ACCOUNT, AT, NODE, REGION, WARMER_ROLE, action_body, counted, pull_body, sqs_batch

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("metrics_sent")]

T0: Final = AT + timedelta(minutes=5)
"""When the first batches are recorded (their events happened a few minutes before)."""
INTERVAL: Final = DEFAULT_INTERVAL
LEASE: Final = DEFAULT_LEASE
EXPIRED: Final = LEASE + timedelta(seconds=1)
"""After this long a run's lease has run out."""
DIGEST: Final = "sha256:" + "ef" * 32
OTHER_ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/build-farm"
ARM_UA: Final = "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/arm64"
LEASE_KEY: Final = {"pk": {"S": "PULLCOMPACT"}, "sk": {"S": "LEASE"}}

Body = dict[str, Any]
Table = dict[tuple[str, str], Increment]
"""Counters by (pk, sk): what they hold, as an :class:`Increment` (the reference's shape)."""

# --------------------------------------------------------------------------------------------------
# Events: tags, a digest, two days, two principals, two platforms, a layer request, imports


E2_AT: Final = AT - timedelta(minutes=3)
E6_AT: Final = AT + timedelta(minutes=2)


def b_pull(event_id: str, at: datetime, **extra: Any) -> Body:
    return pull_body(event_id, at=at, **extra)


E1: Final = b_pull("e1", AT)
E2: Final = b_pull("e2", E2_AT, role=OTHER_ROLE, user_agent=ARM_UA)  # earlier than E1
E3: Final = b_pull(
    "e3",
    AT + timedelta(seconds=40),
    tag="20",
    responseElements={"images": [{"imageId": {"imageTag": "20", "imageDigest": DIGEST}}]},
)
E4: Final = pull_body("e4", name="GetDownloadUrlForLayer", at=AT + timedelta(seconds=3))
E5: Final = action_body("e5", at=AT + timedelta(seconds=1))
E6: Final = b_pull("e6", E6_AT)  # the latest pull of 18-alpine
E7: Final = b_pull(
    "e7",
    AT - timedelta(seconds=10),
    requestParameters={"registryId": ACCOUNT, "repositoryName": NODE, "imageIds": [{"imageDigest": DIGEST}]},
)
E8: Final = b_pull("e8", AT - timedelta(days=1), tag="20")  # the day before
E9: Final = action_body("e9", status="FAILED", at=AT + timedelta(seconds=2))


def events(*bodies: Body) -> list[PullEvent]:
    return [counted(body) for body in bodies]


def reference(*bodies: Body) -> Table:
    """What the counters hold when each distinct event is counted once."""
    distinct = {body["id"]: body for body in bodies}
    return {key.sort_key: increment for key, increment in coalesce(events(*distinct.values())).items()}


def stored(client: Any, table: str) -> Table:
    """Every counter item of the table, as the reference's shape (absent attributes are zero / empty)."""
    out: Table = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if not item["pk"]["S"].startswith("PULLS#"):
                continue

            def number(name: str, item: dict[str, Any] = item) -> int:
                return int(item[name]["N"]) if name in item else 0

            def members(name: str, item: dict[str, Any] = item) -> frozenset[str]:
                return frozenset(item[name]["SS"]) if name in item else frozenset()

            def time(name: str, item: dict[str, Any] = item) -> datetime | None:
                return parse_iso(item[name]["S"]) if name in item else None

            out[(item["pk"]["S"], item["sk"]["S"])] = Increment(
                pulls=number("pulls"),
                layer_requests=number("layer_requests"),
                imports=number("imports"),
                import_failures=number("import_failures"),
                first_pulled_at=time("first_pulled_at"),
                last_pulled_at=time("last_pulled_at"),
                digests=members("digests"),
                platforms=members("platforms"),
                principals=members("principals"),
                last_sync_at=time("last_sync_at"),
                last_sync_status=item["last_sync_status"]["S"] if "last_sync_status" in item else None,
            )
    return out


def partition(client: Any, table: str, pk: str) -> list[dict[str, Any]]:
    pages = client.get_paginator("query").paginate(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
    )
    return [item for page in pages for item in page["Items"]]


def lease_item(client: Any, table: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(TableName=table, Key=LEASE_KEY, ConsistentRead=True).get("Item")
    return found


def sequence(prefix: str) -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers):04}"


# --------------------------------------------------------------------------------------------------
# Fixtures: the two stores on one client, a compaction over them


@dataclass
class Stack:
    client: Any
    table: str
    pulls: DynamoDbPullStatsStore

    def compactions(self) -> DynamoDbPullCompactionStore:
        return DynamoDbPullCompactionStore(self.table, self.client, sleep=lambda _: None)

    def compaction(
        self, store: DynamoDbPullCompactionStore | None = None, *, owner: str = "owner", **options: Any
    ) -> PullCompaction:
        """A compaction whose invocations are ``<owner>0001``, ``<owner>0002``... (a run id is its start
        time and owner: two compactions started at one time need two owners)."""
        return PullCompaction(self.pulls, store or self.compactions(), new_id=sequence(owner), **options)

    def add(self, bodies: Iterable[Body], now: datetime = T0) -> str:
        """One batch written as its delta; the delta's sort key."""
        before = {sk for sk, _ in self.pulls.pending()}
        self.pulls.add(events(*bodies), now)
        (added,) = {sk for sk, _ in self.pulls.pending()} - before
        return added

    def pending(self) -> list[str]:
        return [sk for sk, _ in self.pulls.pending()]

    def counters(self) -> Table:
        return stored(self.client, self.table)


@pytest.fixture
def stack(state_table: str) -> Stack:
    client = boto3.client("dynamodb", config=RETRY_CONFIG)
    pulls = DynamoDbPullStatsStore(state_table, client, sleep=lambda _: None, new_id=sequence("delta"))
    return Stack(client, state_table, pulls)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def records(*bodies: Body | str) -> list[SqsRecordModel]:
    return list(SqsModel.model_validate(sqs_batch(*bodies)).Records)


def with_rule(stack: Stack) -> None:
    """The desired rule ``docker-hub`` (the stack's Region), as the desired-state store keeps it."""
    stack.client.put_item(
        TableName=stack.table,
        Item={
            "pk": {"S": "DESIRED#rule"},
            "sk": {"S": "docker-hub"},
            "spec": {"S": '{"upstream_kind":"docker-hub"}'},
            "name": {"S": "docker-hub"},
        },
    )


def service_of(stack: Stack, clock: Clock, compaction: PullCompaction | None = None) -> PullStatsService:
    with_rule(stack)
    return PullStatsService(
        stack.pulls,
        stack_region=REGION,
        warmer_role_arn=WARMER_ROLE,
        compaction=compaction or stack.compaction(),
        clock=clock,
    )


def ranking(table: Table, now: datetime, days: int = 7) -> list[PulledImage]:
    """The reference ranking: the reference counters ranked as the API ranks."""
    counters = [plus(None, CounterKey.parse(pk, sk), increment) for (pk, sk), increment in table.items()]
    return rank(counters, days=window(now, days), top=50)


# --------------------------------------------------------------------------------------------------
# Exactness


def test_duplicated_redelivered_and_reordered_batches_compact_to_the_exact_counters(stack: Stack) -> None:
    # GIVEN four batches: E3 in two of them, the first delivered twice, E2 again, times out of order
    stack.add([E1, E2, E3])
    stack.add([E6, E3, E4, E5])
    stack.add([E1, E2, E3])
    stack.add([E9, E7, E2, E8])

    # WHEN compacted
    outcome = stack.compaction().run_if_due(T0)

    # THEN every counter holds exactly what one delivery of each event adds, and 5 copies were dropped
    assert outcome is not None and (outcome.deltas, outcome.events, outcome.duplicates) == (4, 9, 5)
    assert outcome.finished and not outcome.resumed
    assert stack.counters() == reference(E1, E2, E3, E4, E5, E6, E7, E8, E9)
    tag = stack.counters()[("PULLS#2026-11-29", f"{REGION}#{NODE}:18-alpine")]
    assert tag.pulls == 3  # E1, E2, E6 (E2 sent three times)
    assert (tag.first_pulled_at, tag.last_pulled_at) == (E2_AT, E6_AT)
    assert tag.platforms == {"linux/amd64", "linux/arm64"} and len(tag.principals) == 2
    assert (tag.imports, tag.import_failures) == (1, 1)
    assert (tag.last_sync_at, tag.last_sync_status) == (AT + timedelta(seconds=2), "FAILED")  # E9, after E5
    # AND the deltas are gone and the lease free
    assert stack.pending() == []
    lease = lease_item(stack.client, stack.table)
    assert lease is not None and "run" not in lease and lease["until"] == {"N": "0"}


def test_a_duplicate_arriving_after_its_original_was_compacted_counts_nothing(stack: Stack) -> None:
    # GIVEN E1, E2 and E3 compacted
    stack.add([E1, E2, E3])
    assert stack.compaction().run_if_due(T0) is not None
    before = stack.counters()

    # WHEN E1 and E3 come again (one with a new event E6), later, and the next run compacts them
    stack.add([E3, E1, E6], T0 + timedelta(minutes=1))
    stack.add([E1], T0 + timedelta(minutes=2))
    outcome = stack.compaction().run_if_due(T0 + INTERVAL)

    # THEN only E6 counted: the copies were dropped against the ids the first run kept
    assert outcome is not None and (outcome.events, outcome.duplicates, outcome.counters) == (1, 3, 1)
    assert stack.counters() == reference(E1, E2, E3, E6)
    assert (
        stack.counters()[("PULLS#2026-11-29", f"{REGION}#{NODE}:20")]
        == before[("PULLS#2026-11-29", f"{REGION}#{NODE}:20")]
    )


def test_a_batch_of_nothing_but_copies_writes_no_counter(stack: Stack) -> None:
    # GIVEN E1 compacted, then its batch delivered again
    stack.add([E1])
    stack.compaction().run_if_due(T0)
    stack.add([E1], T0 + timedelta(minutes=1))
    store = stack.compactions()

    # WHEN the next run compacts
    outcome = stack.compaction(store).run_if_due(T0 + INTERVAL)

    # THEN the copy was dropped: the run wrote its lease, deleted the delta, and touched no counter
    assert outcome is not None and (outcome.events, outcome.duplicates, outcome.counters) == (0, 1, 0)
    assert store.write_items == 3  # claim, the delta's delete, finish
    assert stack.counters() == reference(E1)


# --------------------------------------------------------------------------------------------------
# Readers add the pending deltas


def test_readers_answer_the_same_before_and_after_the_compaction(stack: Stack) -> None:
    # GIVEN a service whose first batch was compacted at once, then batches within the interval (pending)
    clock = Clock(T0)
    service = service_of(stack, clock)
    first = service.record(records(E1, E2, E3))
    clock.now = T0 + timedelta(minutes=1)
    second = service.record(records(E6, E3, E4, E5, E1))
    clock.now = T0 + timedelta(minutes=2)
    service.record(records(E7, E8))
    assert (first.failed, second.failed, len(stack.pending())) == ((), (), 2)
    now = AT + timedelta(hours=1)

    # WHEN the pulls are read, then the pending deltas compacted, and read again
    before = service.pulls(None, top=50, window_days=7, now=now)
    tags_before = service.top_tags("docker-hub", 10, 7, now)
    synced_before = service.last_synced(REGION, [f"{NODE}:18-alpine"], now)
    assert service.compaction is not None
    outcome = service.compaction.run_if_due(T0 + INTERVAL)
    after = service.pulls(None, top=50, window_days=7, now=now)

    # THEN the answers are the same, and the reference's: each event counted once
    assert outcome is not None and (outcome.deltas, outcome.duplicates) == (2, 2)
    assert stack.pending() == []
    assert before == after
    assert before.items == ranking(reference(E1, E2, E3, E4, E5, E6, E7, E8), now)
    assert [(item.tag, item.digest, item.pulls) for item in before.items] == [
        ("18-alpine", None, 3),
        ("20", None, 2),
        (None, DIGEST, 1),
    ]
    assert before.items[1].daily[-2:] == [1, 1]  # E8 the day before, E3 today
    assert tags_before == service.top_tags("docker-hub", 10, 7, now) == [(NODE, "18-alpine", 3), (NODE, "20", 2)]
    assert (
        synced_before
        == service.last_synced(REGION, [f"{NODE}:18-alpine"], now)
        == {f"{NODE}:18-alpine": AT + timedelta(seconds=1)}
    )


def test_a_batchs_outcome_counts_the_copies_its_compaction_dropped(stack: Stack) -> None:
    # GIVEN a service whose last compaction was an interval ago, and E1 pending twice
    clock = Clock(T0)
    service = service_of(stack, clock)
    service.record(records(E2))
    clock.now = T0 + timedelta(minutes=1)
    service.record(records(E1))
    clock.now = T0 + timedelta(minutes=2)
    service.record(records(E1))

    # WHEN a batch comes after the interval
    clock.now = T0 + INTERVAL
    outcome = service.record(records(E3, E3))

    # THEN its compaction dropped the pending copy of E1 (and the batch its own copy of E3)
    assert outcome.dropped[DropReason.DUPLICATE] == 2
    assert (outcome.counted, outcome.pulls, outcome.failed) == (1, 1, ())
    assert stack.counters() == reference(E1, E2, E3)


# --------------------------------------------------------------------------------------------------
# When a compaction runs


def test_no_compaction_runs_before_the_interval_since_the_last_one(stack: Stack) -> None:
    # GIVEN a run finished at T0, then a new delta
    stack.add([E1])
    assert stack.compaction().run_if_due(T0) is not None
    stack.add([E2], T0 + timedelta(minutes=1))
    store = stack.compactions()
    compaction = stack.compaction(store)

    # WHEN asked just before the interval is over, then when it is
    early = compaction.run_if_due(T0 + INTERVAL - timedelta(seconds=1))
    early_writes, early_pending = store.write_items, len(stack.pending())
    due = compaction.run_if_due(T0 + INTERVAL)

    # THEN nothing ran (nor wrote) early; then the delta was folded
    assert (early, early_writes, early_pending) == (None, 0, 1)
    assert due is not None and due.events == 1 and stack.pending() == []
    assert stack.counters() == reference(E1, E2)


def test_no_compaction_runs_and_nothing_is_written_without_pending_deltas(stack: Stack) -> None:
    store = stack.compactions()
    # WHEN a never compacted table without deltas is asked to compact
    outcome = stack.compaction(store).run_if_due(T0)
    # THEN nothing ran, nothing was written, no lease item was made
    assert outcome is None
    assert (store.write_items, store.write_requests, stack.pulls.write_items) == (0, 0, 0)
    assert lease_item(stack.client, stack.table) is None


def test_no_compaction_runs_when_every_delta_was_compacted(stack: Stack) -> None:
    # GIVEN a finished run, long ago
    stack.add([E1])
    stack.compaction().run_if_due(T0)
    lease = lease_item(stack.client, stack.table)
    store = stack.compactions()
    # WHEN asked again a day later THEN nothing is written, the lease item is as it was
    assert stack.compaction(store).run_if_due(T0 + timedelta(days=1)) is None
    assert (store.write_items, store.write_requests) == (0, 0)
    assert lease_item(stack.client, stack.table) == lease


@pytest.mark.parametrize("under_way", [False, True], ids=["between-runs", "run-under-way"])
def test_a_lease_another_invocation_holds_blocks_the_compaction(stack: Stack, under_way: bool) -> None:
    # GIVEN a pending delta, and the lease held by another invocation for another minute
    stack.add([E1])
    lease: dict[str, Any] = {
        **LEASE_KEY,
        "owner": {"S": "other"},
        "until": {"N": str(int(T0.timestamp()) + 60)},
        "compacted_at": {"S": iso(T0 - timedelta(hours=1))},
    }
    if under_way:
        lease |= {"run": {"S": "2026-11-29T12:00:00.000000Z#other"}, "deltas": {"L": []}}
    stack.client.put_item(TableName=stack.table, Item=lease)
    store = stack.compactions()

    # WHEN asked to compact
    outcome = stack.compaction(store).run_if_due(T0)

    # THEN nothing ran (no write was even tried): the lease is untouched, the delta pending, no counter written
    assert outcome is None and (store.write_requests, store.write_items) == (0, 0)
    assert lease_item(stack.client, stack.table) == lease
    assert len(stack.pending()) == 1 and stack.counters() == {}


def test_a_lease_that_ran_out_is_taken(stack: Stack) -> None:
    # GIVEN a pending delta and a lease another invocation held until a second ago
    stack.add([E1, E2])
    stack.client.put_item(
        TableName=stack.table,
        Item={
            **LEASE_KEY,
            "owner": {"S": "other"},
            "until": {"N": str(int(T0.timestamp()) - 1)},
            "compacted_at": {"S": iso(T0 - timedelta(hours=1))},
        },
    )
    # WHEN asked to compact
    outcome = stack.compaction().run_if_due(T0)
    # THEN this invocation took it, compacted, and freed it
    assert outcome is not None and outcome.finished and outcome.run.endswith("#owner0001")
    lease = lease_item(stack.client, stack.table)
    assert lease is not None and (lease["owner"], lease["until"]) == ({"S": "owner0001"}, {"N": "0"})
    assert lease["compacted_at"] == {"S": iso(T0)}
    assert stack.counters() == reference(E1, E2)


def test_a_lease_taken_between_the_read_and_the_claim_blocks_the_claim(stack: Stack) -> None:
    # GIVEN a pending delta, and another invocation that takes the lease (and starts its run) just after
    # this one read the lease item
    stack.add([E1])

    class Overtaken(DynamoDbPullCompactionStore):
        def claim(self, owner: str, now: datetime, lease: timedelta, **kwargs: Any) -> bool:
            assert stack.compactions().claim("rival", now, lease, run="rival-run", deltas=stack.pending())
            return super().claim(owner, now, lease, **kwargs)

    # WHEN this one claims
    outcome = stack.compaction(Overtaken(stack.table, stack.client, sleep=lambda _: None)).run_if_due(T0)

    # THEN its claim was refused: the rival's lease and run stand, nothing was folded
    assert outcome is None
    lease = lease_item(stack.client, stack.table)
    assert lease is not None and (lease["owner"], lease["run"]) == ({"S": "rival"}, {"S": "rival-run"})
    assert stack.counters() == {} and len(stack.pending()) == 1


def test_a_run_finished_between_the_read_and_the_claim_is_not_followed_by_another_at_once(stack: Stack) -> None:
    # GIVEN two pending deltas, and another invocation that runs a whole compaction just after this one
    # read the lease item and listed the pending deltas
    stack.add([E1, E2])
    stack.add([E3])
    rivals: list[CompactionOutcome | None] = []

    class Overtaken(DynamoDbPullCompactionStore):
        def claim(self, owner: str, now: datetime, lease: timedelta, **kwargs: Any) -> bool:
            rivals.append(stack.compaction(owner="rival").run_if_due(now))
            return super().claim(owner, now, lease, **kwargs)

    store = Overtaken(stack.table, stack.client, sleep=lambda _: None)

    # WHEN this one goes on
    outcome = stack.compaction(store).run_if_due(T0)

    # THEN the rival compacted everything, exactly
    (rival,) = rivals
    assert rival is not None and (rival.deltas, rival.events) == (2, 3)
    assert stack.counters() == reference(E1, E2, E3) and stack.pending() == []
    # AND this one did not run again on the deltas the rival folded and deleted (the last run finished
    # less than an interval ago): it neither wrote nor reported the rival's 3 events as 3 duplicates
    # (which PullStatsService.record adds to PullEventsDropped{reason=duplicate})
    assert (outcome, store.write_items) == (None, 0)


def test_a_delta_written_while_a_run_claims_is_left_to_the_next_run(stack: Stack) -> None:
    # GIVEN a batch that writes its delta after the run listed the pending ones, before it claims them
    stack.add([E1, E2])

    class Racing(DynamoDbPullCompactionStore):
        late: str | None = None

        def claim(self, owner: str, now: datetime, lease: timedelta, **kwargs: Any) -> bool:
            self.late = stack.add([E3, E1], T0 + timedelta(seconds=1))
            return super().claim(owner, now, lease, **kwargs)

    store = Racing(stack.table, stack.client, sleep=lambda _: None)

    # WHEN the run compacts, and the next one an interval later
    first = stack.compaction(store).run_if_due(T0)
    left = stack.pending()
    second = stack.compaction().run_if_due(T0 + INTERVAL)

    # THEN the first folded only the delta it named; the next one the late delta, its copy of E1 dropped
    assert first is not None and (first.deltas, first.events) == (1, 2)
    assert left == [store.late]
    assert second is not None and (second.deltas, second.events, second.duplicates) == (1, 1, 1)
    assert stack.counters() == reference(E1, E2, E3)


def test_a_run_folds_at_most_max_deltas_and_leaves_the_rest_due_at_once(stack: Stack) -> None:
    # GIVEN five deltas (E1 in the first and the fourth)
    sks = [
        stack.add(batch, T0 - timedelta(seconds=5 - i)) for i, batch in enumerate(([E1], [E2], [E3], [E1, E4], [E5]))
    ]
    compaction = stack.compaction(max_deltas=2)

    # WHEN runs fold two deltas at most, one batch after the other, then a new delta comes
    one = compaction.run_if_due(T0)
    after_one = stack.pending()
    two = compaction.run_if_due(T0 + timedelta(seconds=1))
    three = compaction.run_if_due(T0 + timedelta(seconds=2))
    stack.add([E6], T0 + timedelta(seconds=3))
    four = compaction.run_if_due(T0 + timedelta(seconds=3))

    # THEN the oldest two first, and the next runs at once while a backlog waited; E1 counted once
    assert one is not None and one.deltas == 2 and after_one == sks[2:]
    assert two is not None and (two.deltas, two.events, two.duplicates) == (2, 2, 1)
    assert three is not None and three.deltas == 1
    # AND once no backlog is left, the interval holds again
    assert four is None and len(stack.pending()) == 1
    assert stack.counters() == reference(E1, E2, E3, E4, E5)


def test_a_resumed_run_leaves_a_backlog_due_at_once_too(stack: Stack) -> None:
    # GIVEN three deltas, a run of two at most cut short at its first counter, and resumed
    for i, batch in enumerate(([E1], [E2], [E3])):
        stack.add(batch, T0 - timedelta(seconds=3 - i))
    with pytest.raises(RetryableError):
        stack.compaction(CutShort(stack, "fold"), max_deltas=2).run_if_due(T0)
    resumed = stack.compaction(max_deltas=2).run_if_due(T0 + EXPIRED)
    assert resumed is not None and resumed.resumed and resumed.deltas == 2

    # WHEN the next batch comes, a second later
    backlog = stack.compaction(max_deltas=2).run_if_due(T0 + EXPIRED + timedelta(seconds=1))

    # THEN it folds the delta left over, as after a run that was not cut short
    assert backlog is not None and backlog.deltas == 1
    assert stack.counters() == reference(E1, E2, E3)


# --------------------------------------------------------------------------------------------------
# A run cut short, resumed


class CutShort(DynamoDbPullCompactionStore):
    """The compaction store, failing once at the ``nth`` call of ``step`` (before it writes anything)."""

    def __init__(self, stack: Stack, step: str, nth: int = 1) -> None:
        super().__init__(stack.table, stack.client, sleep=lambda _: None)
        self.step, self.nth = step, nth
        self.calls: Counter[str] = Counter()

    def _cut(self, step: str) -> None:
        self.calls[step] += 1
        if step == self.step and self.calls[step] == self.nth:
            raise RetryableError(f"cut short at {step} #{self.nth}")

    def put_seen(self, run: str, counted: Mapping[str, Collection[str]]) -> None:
        self._cut("put_seen")
        super().put_seen(run, counted)

    def fold(self, key: CounterKey, increment: Increment, mark: CounterMark, run: str) -> None:
        self._cut("fold")
        super().fold(key, increment, mark, run)

    def delete_deltas(self, sort_keys: Collection[str]) -> None:
        self._cut("delete_deltas")
        super().delete_deltas(sort_keys)

    def finish(self, owner: str, now: datetime, *, backlog: bool = False) -> bool:
        self._cut("finish")
        return super().finish(owner, now, backlog=backlog)


CUTS: Final = [("put_seen", 1), ("fold", 1), ("fold", 3), ("fold", 5), ("delete_deltas", 1), ("finish", 1)]
"""Where a run of the deltas below is cut short: it writes 5 counters (``fold`` 5 is the last)."""


@pytest.mark.parametrize(("step", "nth"), CUTS, ids=[f"{step}-{nth}" for step, nth in CUTS])
def test_a_run_cut_short_is_resumed_with_the_same_deltas_and_counts_exactly(stack: Stack, step: str, nth: int) -> None:
    # GIVEN three deltas (with copies) touching 5 counters, and a run cut short at a step
    named = {stack.add([E1, E2, E3]), stack.add([E3, E4, E5, E6]), stack.add([E7, E8, E9, E1])}
    with pytest.raises(RetryableError, match="cut short"):
        stack.compaction(CutShort(stack, step, nth)).run_if_due(T0)
    lease = lease_item(stack.client, stack.table)
    assert lease is not None and {sk["S"] for sk in lease["deltas"]["L"]} == named
    # AND a batch written meanwhile (a copy of E2 and a new event)
    late = stack.add([E2, b_pull("e10", AT + timedelta(minutes=4))], T0 + timedelta(seconds=30))

    # WHEN asked again while the lease holds, then once it ran out, then an interval later
    held = stack.compaction().run_if_due(T0 + LEASE - timedelta(seconds=1))
    resumed = stack.compaction().run_if_due(T0 + EXPIRED)
    left = stack.pending()
    later = stack.compaction().run_if_due(T0 + EXPIRED + INTERVAL)

    # THEN the run was resumed (same run, same deltas), the late batch left to the next run
    assert held is None
    assert resumed is not None and resumed.resumed and resumed.finished
    assert resumed.run == lease["run"]["S"] and resumed.deltas == 3
    assert left == [late]
    assert later is not None and (later.events, later.duplicates) == (1, 1)
    # AND every counter is exact: nothing counted twice, nothing lost
    assert stack.counters() == reference(E1, E2, E3, E4, E5, E6, E7, E8, E9, b_pull("e10", AT + timedelta(minutes=4)))
    assert stack.pending() == []


@pytest.mark.parametrize(("step", "nth"), CUTS, ids=[f"{step}-{nth}" for step, nth in CUTS])
def test_while_a_run_is_cut_short_readers_answer_fewer_pulls_never_more(stack: Stack, step: str, nth: int) -> None:
    # GIVEN a service, three batches (with copies) pending, and a run cut short at a step
    clock = Clock(T0)
    service = service_of(stack, clock, compaction=stack.compaction(CutShort(stack, step, nth)))
    stack.client.put_item(
        TableName=stack.table, Item={**LEASE_KEY, "until": {"N": "0"}, "compacted_at": {"S": iso(T0)}}
    )
    for offset, batch in enumerate(([E1, E2, E3], [E3, E4, E5, E6], [E7, E8, E9, E1])):
        clock.now = T0 + timedelta(seconds=offset)
        service.record(records(*batch))
    assert len(stack.pending()) == 3
    clock.now = T0 + INTERVAL
    assert service.record(records()).failed == ()  # its compaction is cut short
    now = AT + timedelta(hours=1)

    # WHEN the pulls are read while the run is cut short
    answer = {(i.tag, i.digest): i.pulls for i in service.pulls(None, top=50, window_days=7, now=now).items}

    # THEN no image has more pulls than the reference, and after the resume every image has them all
    full = {(i.tag, i.digest): i.pulls for i in ranking(reference(E1, E2, E3, E4, E5, E6, E7, E8, E9), now)}
    assert all(pulls <= full[image] for image, pulls in answer.items())
    assert stack.compaction().run_if_due(clock.now + EXPIRED) is not None
    resumed = {(i.tag, i.digest): i.pulls for i in service.pulls(None, top=50, window_days=7, now=now).items}
    assert resumed == full


def test_a_run_cut_short_after_the_deltas_were_deleted_only_finishes(stack: Stack) -> None:
    # GIVEN a run that deleted its deltas but could not free the lease
    stack.add([E1, E2])
    with pytest.raises(RetryableError):
        stack.compaction(CutShort(stack, "finish")).run_if_due(T0)
    counted_before = stack.counters()
    store = stack.compactions()

    # WHEN resumed
    outcome = stack.compaction(store).run_if_due(T0 + EXPIRED)

    # THEN it folded nothing again: it deleted (nothing left) and freed the lease
    assert outcome is not None
    assert (outcome.resumed, outcome.deltas, outcome.events, outcome.counters) == (True, 1, 0, 0)
    assert outcome.finished
    assert store.write_items == 3  # the resume's claim, the delete, the finish
    assert stack.counters() == counted_before == reference(E1, E2)


# --------------------------------------------------------------------------------------------------
# A run whose lease ran out


class Stalled(DynamoDbPullCompactionStore):
    """The compaction store of an invocation that stalls before its ``at``-th counter write, while
    ``rival`` runs."""

    def __init__(self, stack: Stack, at: int, rival: Callable[[], None]) -> None:
        super().__init__(stack.table, stack.client, sleep=lambda _: None)
        self.at, self.rival, self.folds = at, rival, 0

    def fold(self, key: CounterKey, increment: Increment, mark: CounterMark, run: str) -> None:
        self.folds += 1
        if self.folds == self.at:
            self.rival()
        super().fold(key, increment, mark, run)


@pytest.mark.parametrize("at", [1, 2, 5])
def test_a_run_whose_lease_ran_out_and_was_resumed_by_another_counts_nothing_twice(stack: Stack, at: int) -> None:
    # GIVEN pending deltas, and an invocation that stalls (after reading the counters' marks) until its
    # lease runs out, while another invocation resumes its run and finishes it
    stack.add([E1, E2, E3, E4])
    stack.add([E5, E6, E7, E8, E1])
    rivals: list[CompactionOutcome | None] = []

    def rival() -> None:
        rivals.append(stack.compaction(owner="rival").run_if_due(T0 + EXPIRED))

    # WHEN the stalled invocation goes on
    stalled = stack.compaction(Stalled(stack, at, rival)).run_if_due(T0)

    # THEN its counter writes found the run's own marks (the rival's) and wrote nothing; it did not
    # finish (the lease is the rival's); the rival had resumed the same run and finished it
    assert stalled is not None and not stalled.finished
    (outcome,) = rivals
    assert outcome is not None and outcome.resumed and outcome.finished
    assert stack.counters() == reference(E1, E2, E3, E4, E5, E6, E7, E8)
    assert stack.pending() == []
    # AND a later run has nothing to do
    assert stack.compaction().run_if_due(T0 + EXPIRED + INTERVAL) is None
    assert stack.counters() == reference(E1, E2, E3, E4, E5, E6, E7, E8)


def test_a_stalled_run_whose_counter_a_later_run_marked_loses_its_lease(stack: Stack) -> None:
    # GIVEN a run that stalls before its first counter write while its lease runs out, another invocation
    # resumes and finishes it, and a later run (of a new batch) marks the same counter
    late = b_pull("late", AT + timedelta(seconds=9))  # node:18-alpine, as E1
    stack.add([E1])
    rivals: list[CompactionOutcome | None] = []

    def rival() -> None:
        rivals.append(stack.compaction(owner="rival").run_if_due(T0 + EXPIRED))
        stack.add([late], T0 + EXPIRED + INTERVAL)
        rivals.append(stack.compaction(owner="later").run_if_due(T0 + EXPIRED + INTERVAL))

    # WHEN the stalled invocation goes on THEN its write is refused: the counter is another run's now
    with pytest.raises(LeaseLostError):
        stack.compaction(Stalled(stack, 1, rival)).run_if_due(T0)
    assert all(outcome is not None and outcome.finished for outcome in rivals)
    assert stack.counters() == reference(E1, late)


# --------------------------------------------------------------------------------------------------
# Seen items


def many(count: int, at: datetime = AT) -> list[PullEvent]:
    """``count`` pulls of one image in one minute, each its own event."""
    base = counted(E1)
    return [
        replace(base, message_id=f"m{i}", event_id=f"many-{i}", seen_id=seen_id(f"many-{i}"), at=at)
        for i in range(count)
    ]


def test_more_ids_than_a_seen_item_holds_in_one_minute_are_split_over_items(stack: Stack) -> None:
    # GIVEN more events in one minute than one seen item holds
    batch = many(SEEN_CHUNK + 1)
    stack.pulls.add(batch, T0)
    # WHEN compacted
    outcome = stack.compaction().run_if_due(T0)
    # THEN the run's ids are two items of that minute, every event counted once
    assert outcome is not None and outcome.events == SEEN_CHUNK + 1
    items = partition(stack.client, stack.table, "PULLSEEN#2026-11-29T12:31")
    assert sorted(item["sk"]["S"] for item in items) == [f"{outcome.run}#0", f"{outcome.run}#1"]
    assert sorted(len(item["ids"]["SS"]) for item in items) == [1, SEEN_CHUNK]
    assert stack.pulls.seen(["2026-11-29T12:31"]) == {"2026-11-29T12:31": frozenset(e.seen_id for e in batch)}
    assert stack.counters()[("PULLS#2026-11-29", f"{REGION}#{NODE}:18-alpine")].pulls == SEEN_CHUNK + 1


def test_a_resumed_run_rewrites_its_own_seen_items_instead_of_counting_its_events_as_copies(stack: Stack) -> None:
    # GIVEN a run that wrote its seen items (two chunks) and was cut short before any counter
    batch = many(SEEN_CHUNK + 1)
    stack.pulls.add(batch, T0)
    with pytest.raises(RetryableError):
        stack.compaction(CutShort(stack, "fold")).run_if_due(T0)
    run = (lease_item(stack.client, stack.table) or {})["run"]["S"]
    minute = "2026-11-29T12:31"

    # WHEN its seen ids are read without the run's, and the run resumed
    without_run = stack.pulls.seen([minute], except_run=run)
    resumed = stack.compaction().run_if_due(T0 + EXPIRED)

    # THEN the run's items were left out (so the resume counts its events), and rewritten in place
    assert without_run == {} and len(stack.pulls.seen([minute])[minute]) == SEEN_CHUNK + 1
    assert resumed is not None and (resumed.events, resumed.duplicates) == (SEEN_CHUNK + 1, 0)
    items = partition(stack.client, stack.table, f"PULLSEEN#{minute}")
    assert sorted(item["sk"]["S"] for item in items) == [f"{run}#0", f"{run}#1"]
    assert stack.counters()[("PULLS#2026-11-29", f"{REGION}#{NODE}:18-alpine")].pulls == SEEN_CHUNK + 1


def test_seen_items_expire_fifteen_days_after_their_minute_longer_than_the_dlq_keeps_a_message(stack: Stack) -> None:
    stack.add([E1])
    stack.compaction().run_if_due(T0)
    (item,) = partition(stack.client, stack.table, "PULLSEEN#2026-11-29T12:31")
    assert int(item["expires_at"]["N"]) == int((AT.replace(second=0) + timedelta(days=15)).timestamp())


# --------------------------------------------------------------------------------------------------
# A delta that cannot be read


GARBAGE: Final[dict[str, dict[str, Any]]] = {
    "not-zlib": {"delta": {"B": b"\x00garbage\xff"}},
    "not-json": {"delta": {"B": zlib.compress(b"{not json")}},
    "another-version": {"delta": {"B": zlib.compress(b'{"v": 2, "keys": [], "inc": [], "ev": []}')}},
    "bad-shape": {"delta": {"B": zlib.compress(b'{"v": 1, "keys": [[1]], "inc": [], "ev": []}')}},
    "null": {"delta": {"B": zlib.compress(b"null")}},
    "text": {"delta": {"S": "not bytes"}},
    "missing": {},
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_delta_that_cannot_be_read_is_left_pending_and_the_rest_still_count(
    stack: Stack, garbage: dict[str, Any]
) -> None:
    # GIVEN a service, a delta item it cannot read (between two it can)
    clock = Clock(T0)
    service = service_of(stack, clock)
    stack.client.put_item(
        TableName=stack.table,
        Item={**LEASE_KEY, "until": {"N": "0"}, "compacted_at": {"S": iso(T0)}},
    )
    service.record(records(E1, E2))
    bad_sk = f"{iso(T0 + timedelta(seconds=1))}#garbage"
    stack.client.put_item(TableName=stack.table, Item={"pk": {"S": "PULLDELTA"}, "sk": {"S": bad_sk}, **garbage})
    clock.now = T0 + timedelta(seconds=2)
    service.record(records(E3, E1))
    now = AT + timedelta(hours=1)

    # WHEN read, compacted, read again, and asked to compact once more
    before = service.pulls(None, top=50, window_days=7, now=now)
    outcome = stack.compaction().run_if_due(T0 + INTERVAL)
    after = service.pulls(None, top=50, window_days=7, now=now)
    again = stack.compaction().run_if_due(T0 + 2 * INTERVAL)

    # THEN readers and the compaction skipped it; it is still there; the rest counted exactly
    assert before.items == after.items == ranking(reference(E1, E2, E3), now)
    assert outcome is not None and (outcome.deltas, outcome.events, outcome.duplicates) == (2, 3, 1)
    assert again is None
    remaining = partition(stack.client, stack.table, "PULLDELTA")
    assert [item["sk"]["S"] for item in remaining] == [bad_sk]
    assert stack.counters() == reference(E1, E2, E3)

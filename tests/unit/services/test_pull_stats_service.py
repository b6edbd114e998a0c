"""The pull-statistics service on in-memory stores: a batch's outcome and response, the compaction, the rankings."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel

from ecrcache.errors import NotFoundError, RetryableError
from ecrcache.models.pull_stats import DropReason
from ecrcache.services.pull_compaction import PullCompaction
from ecrcache.services.pull_stats import PullStatsService
from tests.fakes.pull_stats import MemoryPullCompactionStore, MemoryPullStatsStore
from tests.pull_events import AT, REGION, WARMER_ROLE, action_body, pull_body, sqs_batch

pytestmark = pytest.mark.unit

RULES = {"docker-hub": (), "quay": ("eu-west-1",)}


@pytest.fixture
def store() -> MemoryPullStatsStore:
    return MemoryPullStatsStore(RULES)


class Clock:
    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def compactions(store: MemoryPullStatsStore) -> MemoryPullCompactionStore:
    return MemoryPullCompactionStore(store)


@pytest.fixture
def service(store: MemoryPullStatsStore, compactions: MemoryPullCompactionStore, clock: Clock) -> PullStatsService:
    compaction = PullCompaction(store, compactions)
    return PullStatsService(store, stack_region=REGION, warmer_role_arn=WARMER_ROLE, compaction=compaction, clock=clock)


def records(*bodies: dict[str, Any] | str) -> list[SqsRecordModel]:
    return list(SqsModel.model_validate(sqs_batch(*bodies)).Records)


def test_a_batch_counts_its_pulls_and_drops_what_cannot_count(service: PullStatsService) -> None:
    # GIVEN a batch: two pulls, an import, the warmer's pull, a failed call, an unmanaged repository,
    # a repeated event, a body that is not JSON and another event type
    batch = records(
        pull_body("e1"),
        pull_body("e2", tag="20"),
        action_body("e3"),
        pull_body("e4", role=WARMER_ROLE),
        pull_body("e5", errorCode="ImageNotFoundException"),
        pull_body("e6", repository="ghcr/org/app"),
        pull_body("e1"),
        "not json",
        {**pull_body("e7"), "detail-type": "ECR Image Action"},
    )

    # WHEN recorded
    outcome = service.record(batch)

    # THEN the pulls and the import are counted, the rest dropped by reason; nothing failed
    assert (outcome.pulls, outcome.counted, outcome.failed) == (2, 3, ())
    assert outcome.dropped == Counter(
        {
            DropReason.WARMER: 1,
            DropReason.FAILED_CALL: 1,
            DropReason.UNMANAGED: 1,
            DropReason.DUPLICATE: 1,
            DropReason.MALFORMED: 1,
            DropReason.IRRELEVANT: 1,
        }
    )
    assert outcome.response() == {"batchItemFailures": []}
    # AND the first batch wrote its delta and compacted it: the lease twice, two tag counters, one minute
    assert outcome.writes == 1 + 2 + 2 + 1 + 1  # delta, lease, counters, seen, delta deleted


def test_a_batch_is_one_delta_until_the_compaction_is_due(
    service: PullStatsService, store: MemoryPullStatsStore, clock: Clock
) -> None:
    # GIVEN a first batch (compacted at once: nothing was ever compacted)
    service.record(records(pull_body("e1")))
    # WHEN more batches come within the interval
    clock.now = AT + timedelta(minutes=5)
    outcomes = [service.record(records(pull_body(f"t{i}", tag="20"), pull_body(f"f{i}"))) for i in range(3)]
    # THEN each writes one item, its delta, and the counters wait
    assert [o.writes for o in outcomes] == [1, 1, 1]
    assert len(store.pending()) == 3
    assert sum(c.pulls for c in store.stored.values()) == 1
    # AND the readers already count them
    assert sum(i.pulls for i in service.pulls(None, top=10, window_days=1, now=AT).items) == 7
    # WHEN the interval has passed THEN the next batch folds all four deltas into the counters
    clock.now = AT + timedelta(minutes=15)
    last = service.record(records(pull_body("g1")))
    assert last.writes == 1 + 1 + 2 + 1 + 4 + 1  # delta, lease, 2 counters, 1 minute, 4 deltas deleted, lease
    assert store.pending() == []
    assert sum(c.pulls for c in store.stored.values()) == 8


def test_a_redelivered_batch_counts_nothing_again(
    service: PullStatsService, store: MemoryPullStatsStore, clock: Clock
) -> None:
    batch = records(pull_body("e1"), pull_body("e2"))
    service.record(batch)
    clock.now = AT + timedelta(minutes=20)
    again = service.record(batch)
    assert (again.counted, again.dropped[DropReason.DUPLICATE]) == (2, 2)  # written, then dropped by the fold
    assert sum(c.pulls for c in store.stored.values()) == 2
    assert sum(i.pulls for i in service.pulls(None, top=10, window_days=1, now=AT).items) == 2


def test_readers_drop_the_pending_copies_of_events_already_counted(
    service: PullStatsService, store: MemoryPullStatsStore, clock: Clock
) -> None:
    # GIVEN a batch counted, then delivered again within the interval (pending, not compacted)
    batch = records(pull_body("e1"), pull_body("e2"))
    service.record(batch)
    clock.now = AT + timedelta(minutes=1)
    service.record(batch)
    assert len(store.pending()) == 1
    # THEN the readers count each pull once
    assert [i.pulls for i in service.pulls(None, top=10, window_days=1, now=AT).items] == [2]


def test_a_failed_compaction_fails_no_record_and_the_next_batch_resumes_it(
    service: PullStatsService, store: MemoryPullStatsStore, compactions: MemoryPullCompactionStore, clock: Clock
) -> None:
    # GIVEN a compaction that fails once, after it took the lease and wrote the seen ids
    original = compactions.delete_deltas
    failures = [RetryableError("DynamoDB BatchWriteItem failed with ThrottlingException; try again")]

    def failing(sort_keys: Any) -> None:
        if failures:
            raise failures.pop()
        original(sort_keys)

    compactions.delete_deltas = failing  # type: ignore[method-assign]
    # WHEN a batch is recorded THEN it succeeds (its delta is written); the compaction is left under way
    outcome = service.record(records(pull_body("e1"), pull_body("e2")))
    assert outcome.failed == ()
    assert compactions.state().run is not None
    # WHEN a later batch comes after the lease ran out THEN it resumes the run: counted once, exactly
    clock.now = AT + timedelta(minutes=4)
    service.record(records(pull_body("e3")))
    assert compactions.state().run is None
    assert sum(c.pulls for c in store.stored.values()) == 2
    assert len(store.pending()) == 1  # e3's delta, for the next run
    assert sum(i.pulls for i in service.pulls(None, top=10, window_days=1, now=AT).items) == 3


def test_events_the_store_could_not_count_are_batch_item_failures(
    service: PullStatsService, store: MemoryPullStatsStore
) -> None:
    # GIVEN a store failing every write
    store.fail_add = RetryableError("DynamoDB PutItem failed with ThrottlingException; try again")
    # WHEN a batch with a countable event and a dropped one is recorded
    outcome = service.record(records(pull_body("e1"), "not json"))
    # THEN the countable one is reported for redelivery (its message id), the malformed one is not
    assert outcome.response() == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert outcome.error is not None and "ThrottlingException" in outcome.error


def test_when_the_rules_cannot_be_read_every_record_fails(
    service: PullStatsService, store: MemoryPullStatsStore
) -> None:
    store.fail_rules = RetryableError("DynamoDB Query failed with ThrottlingException; try again")
    outcome = service.record(records(pull_body("e1"), "not json"))
    assert [f["itemIdentifier"] for f in outcome.response()["batchItemFailures"]] == ["msg-0", "msg-1"]
    assert store.stored == {}


def test_pulls_rank_a_rules_images_over_the_window(service: PullStatsService, store: MemoryPullStatsStore) -> None:
    # GIVEN pulls on two days and a pull of another rule's repository
    service.record(
        records(
            pull_body("e1", at=AT - timedelta(days=1)),
            pull_body("e2"),
            pull_body("e3"),
            pull_body("e4", tag="20"),
        )
    )
    # WHEN the docker-hub rule's pulls of the last 3 days are asked
    page = service.pulls("docker-hub", top=10, window_days=3, now=AT)
    # THEN they are ranked, per day, and only the rule's prefix in its Region was read
    assert [(i.tag, i.pulls, i.daily) for i in page.items] == [("18-alpine", 3, [0, 1, 2]), ("20", 1, [0, 0, 1])]
    assert (page.rule, page.window_days) == ("docker-hub", 3)
    assert store.queries[-1][1] == (f"{REGION}#docker-hub/",)
    # AND top_tags is the same ranking, cut at count
    assert service.top_tags("docker-hub", 1, 3, AT) == [("docker-hub/library/node", "18-alpine", 3)]


def test_last_synced_is_the_latest_day_whose_last_refresh_succeeded(service: PullStatsService) -> None:
    # GIVEN ECR refreshed node:18-alpine yesterday and today (the later one failed), and node:20 three days ago
    service.record(
        records(
            action_body("a1", at=AT - timedelta(days=1)),
            action_body("a2", at=AT - timedelta(hours=1)),
            action_body("a3", at=AT - timedelta(minutes=5), status="FAILED"),
            action_body("a4", tag="20", at=AT - timedelta(days=3)),
        )
    )
    node = "docker-hub/library/node"
    # WHEN the planner asks for them (and a tag never seen)
    synced = service.last_synced(REGION, [f"{node}:18-alpine", f"{node}:20", f"{node}:22"], AT)
    # THEN each day's last refresh counts if it succeeded: today's ended in a failure (ECR will ask the
    # upstream again), so yesterday's success is the answer; node:20 is too old; the other Region knows nothing
    assert synced == {f"{node}:18-alpine": AT - timedelta(days=1)}
    assert service.last_synced("eu-west-1", [f"{node}:18-alpine"], AT) == {}


def test_pulls_of_every_rule_read_everything_and_a_root_rule_reads_its_regions(
    service: PullStatsService, store: MemoryPullStatsStore
) -> None:
    def prefixes_read(rule: str | None) -> tuple[str, ...]:
        service.pulls(rule, top=5, window_days=1, now=AT)
        days, prefixes = store.queries[-1]
        assert days == (AT.date(),)
        return prefixes

    assert prefixes_read(None) == ("",)
    store.rules["ROOT"] = ("eu-west-1", "us-west-2")
    assert prefixes_read("ROOT") == ("eu-west-1#", "us-west-2#")
    assert prefixes_read("quay") == ("eu-west-1#quay/",)
    assert service.pulls(None, top=5, window_days=1, now=AT).rule is None


def test_pulls_of_an_unknown_rule_is_not_found(service: PullStatsService) -> None:
    with pytest.raises(NotFoundError, match="no rule 'ghcr'"):
        service.pulls("ghcr", top=5, window_days=1, now=AT)


def test_a_backlog_larger_than_one_run_is_folded_by_the_next_batches_at_once(
    store: MemoryPullStatsStore, compactions: MemoryPullCompactionStore, clock: Clock
) -> None:
    # GIVEN a compaction that folds at most two deltas a run, and three batches written before any ran
    service = PullStatsService(store, stack_region=REGION, compaction=None, clock=clock)
    for i in range(3):
        service.record(records(pull_body(f"b{i}")))
    compaction = PullCompaction(store, compactions, max_deltas=2)
    # WHEN a run folds the oldest two
    first = compaction.run_if_due(AT)
    # THEN the table is left due: the next run, a second later, folds the last one without waiting
    assert first is not None and first.deltas == 2
    assert compactions.state().compacted_at is None
    second = compaction.run_if_due(AT + timedelta(seconds=1))
    assert second is not None and second.deltas == 1
    assert compactions.state().compacted_at == AT + timedelta(seconds=1)
    assert compaction.run_if_due(AT + timedelta(seconds=2)) is None
    assert sum(c.pulls for c in store.stored.values()) == 3


def test_a_run_that_runs_out_of_time_pauses_and_the_next_batch_resumes_it_at_once(
    store: MemoryPullStatsStore, compactions: MemoryPullCompactionStore, clock: Clock
) -> None:
    # GIVEN three pending pulls of three tags, and an invocation with time for one counter write
    service = PullStatsService(store, stack_region=REGION, compaction=None, clock=clock)
    service.record(records(*(pull_body(f"p{i}", tag=f"t{i}") for i in range(3))))
    compaction = PullCompaction(store, compactions)
    left = iter([60.0, 5.0])
    # WHEN it compacts
    paused = compaction.run_if_due(AT, lambda: next(left))
    # THEN it wrote one counter, freed the lease and left the run under way
    assert paused is not None and paused.paused and not paused.finished
    assert len(store.stored) == 1
    assert compactions.state().run == paused.run and not compactions.state().held(AT)
    # AND the next invocation, a second later, resumes the same run and finishes it: each pull once
    resumed = compaction.run_if_due(AT + timedelta(seconds=1), lambda: 60.0)
    assert resumed is not None and resumed.resumed and resumed.finished and resumed.run == paused.run
    assert sorted(c.pulls for c in store.stored.values()) == [1, 1, 1]
    assert store.pending() == []

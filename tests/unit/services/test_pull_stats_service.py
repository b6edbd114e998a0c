"""The pull-statistics service on an in-memory store: a batch's outcome and response, and the rankings."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel

from ecrcache.errors import NotFoundError, RetryableError
from ecrcache.models.pull_stats import DropReason
from ecrcache.services.pull_stats import PullStatsService
from tests.fakes.pull_stats import MemoryPullStatsStore
from tests.pull_events import AT, REGION, WARMER_ROLE, action_body, pull_body, sqs_batch

pytestmark = pytest.mark.unit

RULES = {"docker-hub": (), "quay": ("eu-west-1",)}


@pytest.fixture
def store() -> MemoryPullStatsStore:
    return MemoryPullStatsStore(RULES)


@pytest.fixture
def service(store: MemoryPullStatsStore) -> PullStatsService:
    return PullStatsService(store, stack_region=REGION, warmer_role_arn=WARMER_ROLE)


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
    assert outcome.writes == 3  # two tag counters and one minute


def test_a_redelivered_batch_counts_nothing_again(service: PullStatsService, store: MemoryPullStatsStore) -> None:
    batch = records(pull_body("e1"), pull_body("e2"))
    service.record(batch)
    again = service.record(batch)
    assert (again.pulls, again.dropped[DropReason.DUPLICATE], again.writes) == (0, 2, 0)
    assert sum(c.pulls for c in store.stored.values()) == 2


def test_events_the_store_could_not_count_are_batch_item_failures(
    service: PullStatsService, store: MemoryPullStatsStore
) -> None:
    # GIVEN a store failing every write
    store.fail_record = RetryableError("DynamoDB TransactWriteItems failed with ThrottlingException; try again")
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

"""The status store on moto DynamoDB, with the state table built from ``template.yaml``."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints, Ownership
from ecrcache.models.status import (
    MAX_MESSAGE_LENGTH,
    MAX_RUN_ERRORS,
    ConditionType,
    ReconcileRun,
    RuleStatus,
    RuleStatusRecord,
    RuleValidation,
    RunStatus,
    RunTrigger,
    UpstreamCheck,
    UpstreamCheckSource,
    UpstreamHealth,
)
from ecrcache.ports import StatusStore
from tests.conftest import REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OTHER_REGION = "eu-west-1"


class Counted:
    """A DynamoDB client that counts its calls (pages one by one) and a recording ``sleep``."""

    def __init__(self) -> None:
        self.client: DynamoDBClient = boto3.client("dynamodb", region_name=REGION)
        self.calls: Counter[str] = Counter()
        self.delays: list[float] = []
        self.client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def counted(state_table: str) -> Counted:
    return Counted()


@pytest.fixture
def store(state_table: str, counted: Counted) -> DynamoDbStatusStore:
    return DynamoDbStatusStore(state_table, counted.client, sleep=counted.sleep)


def raw_item(table: str, pk: str, sk: str) -> dict[str, Any]:
    key: Any = {"pk": {"S": pk}, "sk": {"S": sk}}
    item: dict[str, Any] = boto3.client("dynamodb").get_item(TableName=table, Key=key)["Item"]
    return item


# --------------------------------------------------------------------------------------------------
# ownership


def test_ownership_round_trip_per_region(store: DynamoDbStatusStore) -> None:
    # GIVEN rules and templates recorded as owned in two Regions (one recorded twice)
    store.record_owned(REGION, "rule", "docker-hub")
    store.record_owned(REGION, "rule", "docker-hub")
    store.record_owned(REGION, "rule", "ghcr")
    store.record_owned(REGION, "template", "docker-hub")
    store.record_owned(OTHER_REGION, "rule", "quay")
    # WHEN ownership is read THEN each Region sees its own
    assert store.ownership(REGION) == Ownership(
        rules=frozenset({"docker-hub", "ghcr"}), templates=frozenset({"docker-hub"})
    )
    assert store.ownership(OTHER_REGION) == Ownership(rules=frozenset({"quay"}))
    # WHEN one is forgotten (twice: idempotent) THEN only it is gone
    store.forget_owned(REGION, "rule", "ghcr")
    store.forget_owned(REGION, "rule", "ghcr")
    assert store.ownership(REGION) == Ownership(rules=frozenset({"docker-hub"}), templates=frozenset({"docker-hub"}))
    assert store.ownership("ap-south-1") == Ownership()


def test_owned_exclusions_are_kept_apart_per_region_under_their_principal_arn(
    store: DynamoDbStatusStore, state_table: str
) -> None:
    # GIVEN the warmer's exclusion recorded as ecrcache's next to a rule of the same Region
    warmer = "arn:aws:iam::123456789012:role/ecrcache/ecrcache-WarmWorkerFunctionRole-AB12"
    store.record_owned(REGION, "rule", "docker-hub")
    store.record_owned(REGION, "exclusion", warmer)
    # THEN it is read back as an exclusion, in the Region's item's set of owned exclusions
    assert store.ownership(REGION) == Ownership(rules=frozenset({"docker-hub"}), exclusions=frozenset({warmer}))
    assert store.ownership(OTHER_REGION) == Ownership()
    item = raw_item(state_table, f"APPLIED#{REGION}", f"#STATUS#{REGION}")
    assert (item["owned_exclusion"], item["owned_rule"]) == ({"SS": [warmer]}, {"SS": ["docker-hub"]})
    # AND forgetting it leaves the rule
    store.forget_owned(REGION, "exclusion", warmer)
    assert store.ownership(REGION) == Ownership(rules=frozenset({"docker-hub"}))


def test_ownership_rejects_an_unknown_kind(store: DynamoDbStatusStore) -> None:
    with pytest.raises(ValueError, match="'rule', 'template' or 'exclusion'"):
        store.record_owned(REGION, "repository", "x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# applied fingerprints


def test_applied_fingerprints_for_2500_repositories_round_trip(store: DynamoDbStatusStore, counted: Counted) -> None:
    # GIVEN 2,500 repositories (long names, so the Region's records exceed one 1 MB Query page)
    items = {
        f"docker-hub/{'team-' * 45}/image-{i:04d}": AppliedFingerprints(
            lifecycle=f"{i:064x}",
            policy=None if i % 5 == 0 else "p" * 64,
            tags=None if i % 3 else "t" * 64,
            tag_keys=None if i % 3 else frozenset({"team", f"key-{i % 7}"}),
        )
        for i in range(2500)
    }
    store.record_applied(OTHER_REGION, {"docker-hub/other-region": AppliedFingerprints(lifecycle="x")})
    counted.calls.clear()
    # WHEN they are recorded and read back
    store.record_applied(REGION, items)
    read = store.applied(REGION)
    # THEN every record came back exactly (the tag keys ecrcache applied too), absent aspects as None
    assert read == items
    # AND the writes went in batches of 25 and the read took more than one page
    assert counted.calls["BatchWriteItem"] == 100
    assert counted.calls["Query"] >= 2
    # AND forgetting some leaves the rest (and the other Region alone)
    forget = list(items)[:30]
    store.forget_applied(REGION, [*forget, forget[0]])
    assert len(store.applied(REGION)) == 2470
    assert store.applied(OTHER_REGION) == {"docker-hub/other-region": AppliedFingerprints(lifecycle="x")}


def test_record_applied_retries_unprocessed_items_with_backoff(
    store: DynamoDbStatusStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB leaves part of each of the first two batches unprocessed
    real = counted.client.batch_write_item
    calls: list[int] = []

    def partly(**kwargs: Any) -> Any:
        requests = kwargs["RequestItems"][store.table_name]
        calls.append(len(requests))
        if len(calls) <= 2 and len(requests) > 1:
            real(RequestItems={store.table_name: requests[:1]})
            return {"UnprocessedItems": {store.table_name: requests[1:]}}
        return real(**kwargs)

    monkeypatch.setattr(counted.client, "batch_write_item", partly)
    items = {f"quay/repo-{i}": AppliedFingerprints(tags="t") for i in range(10)}
    # WHEN they are recorded
    store.record_applied(REGION, items)
    # THEN the unprocessed rest was resent after growing waits, and everything arrived
    assert calls == [10, 9, 8]
    assert counted.delays == [0.05, 0.1]
    assert store.applied(REGION) == items


def test_record_applied_gives_up_when_items_stay_unprocessed(
    store: DynamoDbStatusStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(**kwargs: Any) -> Any:
        return {"UnprocessedItems": kwargs["RequestItems"]}

    monkeypatch.setattr(counted.client, "batch_write_item", never)
    with pytest.raises(RetryableError, match="unprocessed"):
        store.record_applied(REGION, {"quay/a": AppliedFingerprints()})
    assert len(counted.delays) == 7


# --------------------------------------------------------------------------------------------------
# rule status (conditions)


def test_rule_status_round_trip(store: DynamoDbStatusStore, state_table: str) -> None:
    # GIVEN a status with conditions and a validation result
    status = (
        RuleStatus(
            last_reconciled_at=NOW,
            drift_corrected=3,
            cached_repositories=42,
            last_run_id="run-1",
            validation=RuleValidation(is_valid=False, failure="upstream rejected the credential", checked_at=NOW),
        )
        .with_condition(ConditionType.SYNCED, status=False, reason="ApplyFailed", message="see Recoverable", now=NOW)
        .with_condition(ConditionType.RECOVERABLE, status=True, reason="Throttled", message="try again", now=NOW)
    )
    # WHEN it is stored for two Regions and read back
    store.put_rule_status(REGION, "docker-hub", status)
    store.put_rule_status(OTHER_REGION, "docker-hub", RuleStatus())
    # THEN it is the same value
    assert store.rule_status(REGION, "docker-hub") == status
    assert store.rule_status(REGION, "ghcr") is None
    assert store.all_status() == [
        RuleStatusRecord(region=OTHER_REGION, prefix="docker-hub", status=RuleStatus()),
        RuleStatusRecord(region=REGION, prefix="docker-hub", status=status),
    ]
    # AND each Region's item, in the stack Region's partition, holds its rules' statuses as JSON attributes
    item = raw_item(state_table, f"APPLIED#{REGION}", f"#STATUS#{REGION}")
    assert RuleStatus.model_validate_json(item["r#docker-hub"]["S"]) == status
    assert "r#docker-hub" in raw_item(state_table, f"APPLIED#{REGION}", f"#STATUS#{OTHER_REGION}")


def test_condition_transition_time_moves_only_when_the_status_changes() -> None:
    later, latest = NOW + timedelta(minutes=5), NOW + timedelta(minutes=10)
    # GIVEN a Synced=false condition
    status = RuleStatus().with_condition(ConditionType.SYNCED, status=False, reason="A", message="a", now=NOW)
    # WHEN only the reason changes THEN the transition time stays
    status = status.with_condition(ConditionType.SYNCED, status=False, reason="B", message="b", now=later)
    synced = status.condition(ConditionType.SYNCED)
    assert synced is not None
    assert (synced.reason, synced.last_transition) == ("B", NOW)
    # WHEN the status flips THEN it moves
    status = status.with_condition(ConditionType.SYNCED, status=True, reason="Applied", message="", now=latest)
    synced = status.condition(ConditionType.SYNCED)
    assert synced is not None
    assert synced.last_transition == latest
    assert status.synced
    assert len(status.conditions) == 1


def test_status_messages_are_cut_to_a_fixed_length() -> None:
    status = RuleStatus(validation=RuleValidation(failure="x" * 5000)).with_condition(
        ConditionType.TERMINAL, status=True, reason="Failed", message="y" * 5000, now=NOW
    )
    condition = status.condition(ConditionType.TERMINAL)
    assert condition is not None
    assert len(condition.message) == MAX_MESSAGE_LENGTH
    assert status.validation.failure is not None
    assert len(status.validation.failure) == MAX_MESSAGE_LENGTH


# --------------------------------------------------------------------------------------------------
# lease


def test_lease_is_exclusive_until_it_expires(store: DynamoDbStatusStore) -> None:
    # GIVEN reconciler A holds the Region's lease for 60 s
    assert store.acquire_lease(REGION, "A", now=NOW, ttl_seconds=60)
    # WHEN B tries within the minute THEN it is refused; A may take it again; other Regions are free
    assert not store.acquire_lease(REGION, "B", now=NOW + timedelta(seconds=30), ttl_seconds=60)
    assert store.acquire_lease(REGION, "A", now=NOW + timedelta(seconds=30), ttl_seconds=60)
    assert store.acquire_lease(OTHER_REGION, "B", now=NOW, ttl_seconds=60)
    # AND A's renewal pushes the expiry out
    assert store.renew_lease(REGION, "A", now=NOW + timedelta(seconds=80), ttl_seconds=60)
    assert not store.acquire_lease(REGION, "B", now=NOW + timedelta(seconds=120), ttl_seconds=60)
    # WHEN the lease has expired THEN B takes it over, and A can neither renew nor release it
    assert store.acquire_lease(REGION, "B", now=NOW + timedelta(seconds=141), ttl_seconds=60)
    assert not store.renew_lease(REGION, "A", now=NOW + timedelta(seconds=142), ttl_seconds=60)
    store.release_lease(REGION, "A")
    assert not store.acquire_lease(REGION, "A", now=NOW + timedelta(seconds=143), ttl_seconds=60)
    # WHEN B releases it THEN A gets it at once, and B cannot renew it any more
    store.release_lease(REGION, "B")
    assert not store.renew_lease(REGION, "B", now=NOW + timedelta(seconds=144), ttl_seconds=60)
    assert store.acquire_lease(REGION, "A", now=NOW + timedelta(seconds=144), ttl_seconds=60)


# --------------------------------------------------------------------------------------------------
# runs


def test_runs_round_trip_newest_first_with_a_ttl(store: DynamoDbStatusStore, state_table: str) -> None:
    # GIVEN three runs, the first one updated when it finishes
    runs = [
        ReconcileRun(run_id=f"run-{i}", trigger=RunTrigger.SCHEDULE, started_at=NOW + timedelta(minutes=i))
        for i in range(3)
    ]
    for run in runs:
        store.put_run(run)
    finished = runs[0].model_copy(
        update={
            "finished_at": NOW + timedelta(seconds=40),
            "status": RunStatus.PARTIAL,
            "summary": {"create_rule": 1, "failed": 1},
            "errors": ("docker-hub: PutLifecyclePolicy failed with ThrottlingException",),
        }
    )
    store.put_run(finished)
    # WHEN they are read back THEN get returns the latest write, and the list is newest first
    assert store.get_run("run-0") == finished
    assert store.get_run("run-9") is None
    assert [r.run_id for r in store.latest_runs(2)] == ["run-2", "run-1"]
    assert [r.run_id for r in store.latest_runs(10)] == ["run-2", "run-1", "run-0"]
    assert store.latest_runs(0) == []
    # AND the item carries the table's TTL attribute: 30 days after the run started
    item = raw_item(state_table, "RUN#run-0", "RUN")
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(days=30)).timestamp())
    assert item["run_status"]["S"] == "partial"


def test_run_errors_are_capped() -> None:
    run = ReconcileRun(run_id="r", trigger=RunTrigger.API, started_at=NOW, errors=tuple(f"e{i}" for i in range(120)))
    assert len(run.errors) == MAX_RUN_ERRORS
    assert run.errors[-1] == "... and 71 more errors"


# --------------------------------------------------------------------------------------------------
# failures of every call


def _raiser(code: str, status: int) -> Any:
    response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}

    def fail(**_: Any) -> Any:
        raise ClientError(response, "op")

    return fail


CALLS: list[tuple[str, Any]] = [
    ("update_item", lambda s: s.record_owned(REGION, "rule", "p")),
    ("update_item", lambda s: s.forget_owned(REGION, "rule", "p")),
    ("get_item", lambda s: s.ownership(REGION)),
    ("get_item", lambda s: s.region_status(OTHER_REGION)),
    ("query", lambda s: s.read_region(REGION)),
    ("update_item", lambda s: s.write_statuses(REGION, {"p": RuleStatus()}, ["q"], version=3)),
    ("update_item", lambda s: s.delete_rule_status(REGION, "p")),
    ("query", lambda s: s.migrate_legacy([REGION])),
    ("query", lambda s: s.applied(REGION)),
    ("batch_write_item", lambda s: s.record_applied(REGION, {"a/b": AppliedFingerprints()})),
    ("batch_write_item", lambda s: s.forget_applied(REGION, ["a/b"])),
    ("update_item", lambda s: s.put_rule_status(REGION, "p", RuleStatus())),
    ("get_item", lambda s: s.rule_status(REGION, "p")),
    ("update_item", lambda s: s.record_upstream(REGION, "p", _health(NOW, healthy=False))),
    ("query", lambda s: s.all_status()),
    ("put_item", lambda s: s.acquire_lease(REGION, "A", now=NOW, ttl_seconds=60)),
    ("update_item", lambda s: s.renew_lease(REGION, "A", now=NOW, ttl_seconds=60)),
    ("delete_item", lambda s: s.release_lease(REGION, "A")),
    ("put_item", lambda s: s.put_run(ReconcileRun(run_id="r", trigger=RunTrigger.API, started_at=NOW))),
    ("get_item", lambda s: s.get_run("r")),
    ("query", lambda s: s.latest_runs(5)),
]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("InternalServerError", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
@pytest.mark.parametrize(("method", "call"), CALLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(CALLS)])
def test_status_store_classifies_failing_calls(
    *,
    store: DynamoDbStatusStore,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    call: Any,
    code: str,
    status: int,
    expected: type[Exception],
) -> None:
    # GIVEN the DynamoDB call fails (after botocore's retries) WHEN the store uses it
    # THEN the failure surfaces as a classified domain error naming the call
    monkeypatch.setattr(counted.client, method, _raiser(code, status))
    if method == "query":
        monkeypatch.setattr(counted.client, "get_paginator", _failing_paginator(code, status))
    with pytest.raises(expected, match="DynamoDB"):
        call(store)


def _failing_paginator(code: str, status: int) -> Any:
    class Failing:
        def paginate(self, **_: Any) -> Any:
            _raiser(code, status)()

    return lambda _name: Failing()


def test_the_adapter_implements_the_port(store: DynamoDbStatusStore) -> None:
    port: StatusStore = store  # checked by mypy
    assert port.ownership(REGION) == Ownership()


# --------------------------------------------------------------------------------------------------
# upstream health: written beside the status, by the pull-through events, without a lease


def _health(at: datetime, *, healthy: bool, reason: str = "RateLimited") -> UpstreamHealth:
    status = RuleStatus().with_condition(
        ConditionType.UPSTREAM_HEALTHY, status=healthy, reason=reason, message="m", now=at
    )
    condition = status.condition(ConditionType.UPSTREAM_HEALTHY)
    assert condition is not None
    check = UpstreamCheck(source=UpstreamCheckSource.PULL, observed_at=at, healthy=healthy, repository="quay/a")
    return UpstreamHealth(condition=condition, check=check)


def test_upstream_health_is_recorded_only_on_a_rule_with_status(store: DynamoDbStatusStore, state_table: str) -> None:
    # GIVEN no status for the rule WHEN its upstream health is recorded THEN nothing is (no item made)
    assert store.record_upstream(REGION, "quay", _health(NOW, healthy=False)) is False
    assert store.rule_status(REGION, "quay") is None
    assert store.all_status() == []
    # GIVEN a status WHEN recorded THEN it reads back with the status, in conditions and upstream
    store.put_rule_status(REGION, "quay", RuleStatus(cached_repositories=2))
    assert store.record_upstream(REGION, "quay", _health(NOW, healthy=False)) is True
    status = store.rule_status(REGION, "quay")
    assert status is not None
    assert status.upstream_health == _health(NOW, healthy=False)
    assert status.cached_repositories == 2
    [record] = store.all_status()
    assert record.status == status
    # THEN the stored status JSON holds no upstream part: it lives in attributes of its own
    item = raw_item(state_table, f"APPLIED#{REGION}", f"#STATUS#{REGION}")
    assert "UpstreamHealthy" not in item["r#quay"]["S"]
    assert set(item) >= {"u#quay", "ua#quay"}


def test_newest_upstream_observation_wins(store: DynamoDbStatusStore) -> None:
    store.put_rule_status(REGION, "quay", RuleStatus())
    assert store.record_upstream(REGION, "quay", _health(NOW, healthy=False))
    # an older one is refused; the same time again is accepted (the same event redelivered)
    assert not store.record_upstream(REGION, "quay", _health(NOW - timedelta(seconds=1), healthy=True, reason="Ok"))
    assert store.record_upstream(REGION, "quay", _health(NOW, healthy=False))
    assert store.record_upstream(REGION, "quay", _health(NOW + timedelta(seconds=1), healthy=True, reason="Ok"))
    status = store.rule_status(REGION, "quay")
    assert status is not None and status.upstream_health == _health(
        NOW + timedelta(seconds=1), healthy=True, reason="Ok"
    )


def test_a_status_write_keeps_the_upstream_health_written_meanwhile(store: DynamoDbStatusStore) -> None:
    # GIVEN the reconciler read a status, then an event recorded the upstream failing
    store.put_rule_status(REGION, "quay", RuleStatus())
    read = store.rule_status(REGION, "quay")
    assert read is not None
    store.record_upstream(REGION, "quay", _health(NOW, healthy=False))
    # WHEN the reconciler writes what it concluded from its read
    store.put_rule_status(REGION, "quay", read.model_copy(update={"drift_corrected": 3}))
    # THEN both writes hold
    status = store.rule_status(REGION, "quay")
    assert status is not None and status.drift_corrected == 3
    assert status.upstream_health == _health(NOW, healthy=False)
    # WHEN the status is deleted THEN the upstream health goes with it, and is not recorded again
    store.delete_rule_status(REGION, "quay")
    assert store.rule_status(REGION, "quay") is None
    assert store.record_upstream(REGION, "quay", _health(NOW + timedelta(hours=1), healthy=True)) is False

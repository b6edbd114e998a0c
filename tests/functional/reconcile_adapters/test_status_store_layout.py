"""The status store's layout on moto DynamoDB: one item per Region in the stack Region's partition (its rules'
statuses, upstream health and ownership as attributes, the Region's stamp), its size bound, the finished run
written with the stamps in one transaction (and each way that transaction fails), and the migration of the
former layout (one status item per rule, ownership items per Region, forwarder records); the Regions'
event forwarder records on their items."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.engine.forwarders import forwarder_status
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints, Ownership
from ecrcache.models.status import (
    MAX_MESSAGE_LENGTH,
    ConditionType,
    ForwarderStatus,
    ReconcileRun,
    RegionStamp,
    RuleStatus,
    RuleValidation,
    RunStatus,
    RunTrigger,
    UpstreamCheck,
    UpstreamCheckSource,
    UpstreamHealth,
)
from tests.conftest import REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OTHER = "eu-west-1"
ITEM_LIMIT = 400 * 1024  # DynamoDB's item size limit, attribute names included


class Counted:
    def __init__(self) -> None:
        self.client: DynamoDBClient = boto3.client("dynamodb", region_name=REGION)
        self.calls: Counter[str] = Counter()
        self.client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1


@pytest.fixture
def counted(state_table: str) -> Counted:
    return Counted()


@pytest.fixture
def store(state_table: str, counted: Counted) -> DynamoDbStatusStore:
    return DynamoDbStatusStore(state_table, counted.client, sleep=lambda _s: None)


def _raw(table: str, pk: str, sk: str) -> dict[str, Any] | None:
    key: Any = {"pk": {"S": pk}, "sk": {"S": sk}}
    item: dict[str, Any] | None = boto3.client("dynamodb").get_item(TableName=table, Key=key).get("Item")
    return item


def _region_item(table: str, region: str) -> dict[str, Any] | None:
    return _raw(table, f"APPLIED#{REGION}", f"#STATUS#{region}")


def _size(value: dict[str, Any]) -> int:
    """An attribute value's size as DynamoDB counts it (UTF-8 strings; numbers at most 21 bytes)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return 21
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    return 1


def _item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


def _status(message: str = "m", *, reason: str = "Applied", run: str = "run-1") -> RuleStatus:
    status = RuleStatus(
        last_reconciled_at=NOW,
        last_run_id=run,
        observed_revision=7,
        cached_repositories=3,
        validation=RuleValidation(is_valid=False, failure=message, checked_at=NOW),
    )
    for kind in (ConditionType.SYNCED, ConditionType.TERMINAL, ConditionType.RECOVERABLE):
        status = status.with_condition(kind, status=False, reason=reason, message=message, now=NOW)
    return status


def _health(message: str = "m", *, at: datetime = NOW) -> UpstreamHealth:
    condition = (
        RuleStatus()
        .with_condition(ConditionType.UPSTREAM_HEALTHY, status=False, reason="R" * 128, message=message, now=at)
        .condition(ConditionType.UPSTREAM_HEALTHY)
    )
    assert condition is not None
    check = UpstreamCheck(
        source=UpstreamCheckSource.PULL,
        observed_at=at,
        healthy=False,
        failure_code="F" * 128,
        repository="r" * 256,
        image="i" * 300,
    )
    return UpstreamHealth(condition=condition, check=check)


def _run(run_id: str = "run-2") -> ReconcileRun:
    return ReconcileRun(
        run_id=run_id, trigger=RunTrigger.SCHEDULE, started_at=NOW, finished_at=NOW, status=RunStatus.SUCCEEDED
    )


# --------------------------------------------------------------------------------------------------
# one read, one item


def test_one_query_reads_every_regions_statuses_ownership_and_the_applied_fingerprints(
    store: DynamoDbStatusStore, counted: Counted
) -> None:
    # GIVEN statuses, ownership and fingerprints in the stack's Region, and a status in another Region
    store.write_statuses(REGION, {"quay": _status(), "ghcr": RuleStatus()}, version=0)
    store.write_statuses(OTHER, {"quay": RuleStatus()}, version=0)
    store.record_owned(REGION, "rule", "quay")
    store.record_applied(REGION, {"quay/a": AppliedFingerprints(lifecycle="x")})
    store.migrate_legacy()  # nothing of the former layout: only marks the Regions migrated
    counted.calls.clear()
    # WHEN the stack Region's records are read
    state = store.read_region(REGION)
    # THEN one Query returned them all
    assert counted.calls == {"Query": 1}
    assert state.status.statuses == {"ghcr": RuleStatus(), "quay": _status()}
    assert state.status.ownership == Ownership(rules=frozenset({"quay"}))
    assert state.status.version == 1
    assert dict(state.applied) == {"quay/a": AppliedFingerprints(lifecycle="x")}
    assert set(state.others) == {OTHER}
    assert state.others[OTHER].statuses == {"quay": RuleStatus()}


def test_a_status_write_is_conditioned_on_the_version_read(store: DynamoDbStatusStore) -> None:
    # GIVEN a Region's statuses read (version 1), then written by another run (version 2)
    assert store.write_statuses(REGION, {"quay": RuleStatus()}, version=0)
    read = store.region_status(REGION)
    assert store.write_statuses(REGION, {"quay": _status()}, version=read.version)
    # WHEN the first reader writes what it concluded THEN it is refused, and nothing it wrote is there
    assert not store.write_statuses(REGION, {"quay": RuleStatus(drift_corrected=1)}, ["ghcr"], version=read.version)
    assert store.region_status(REGION).statuses == {"quay": _status()}
    # AND a first write (version 0) is refused once the item exists
    assert not store.write_statuses(REGION, {"quay": RuleStatus()}, version=0)
    # AND a dropped status takes its upstream health with it
    store.record_upstream(REGION, "quay", _health())
    assert store.write_statuses(REGION, {}, ["quay"], version=2)
    assert store.region_status(REGION).statuses == {}
    assert store.record_upstream(REGION, "quay", _health(at=NOW + timedelta(1))) is False


# --------------------------------------------------------------------------------------------------
# the item's size


def test_the_worst_case_region_item_fits_in_one_dynamodb_item(store: DynamoDbStatusStore, state_table: str) -> None:
    # GIVEN the most a Region can hold: 50 desired rules and 50 former ones still deleting, every message of
    # the longest length in the costliest encoding (control characters: 6 bytes a character once JSON-escaped;
    # and 4-byte UTF-8), the longest reasons, ownership of 100 rules and templates and 5 exclusions
    prefixes = [f"{i:02d}" + "p" * 28 for i in range(100)]
    escaped, wide = "\x01" * MAX_MESSAGE_LENGTH, "\N{GRINNING FACE}" * MAX_MESSAGE_LENGTH
    statuses = {p: _status(escaped if i % 2 else wide, reason="R" * 128, run="0" * 36) for i, p in enumerate(prefixes)}
    for chunk in (prefixes[:50], prefixes[50:]):
        assert store.write_statuses(REGION, {p: statuses[p] for p in chunk}, version=None)
    for i, prefix in enumerate(prefixes):
        assert store.record_upstream(REGION, prefix, _health(escaped if i % 2 else wide))
        store.record_owned(REGION, "rule", prefix)
        store.record_owned(REGION, "template", prefix)
    for i in range(5):
        store.record_owned(REGION, "exclusion", f"arn:aws:iam::123456789012:role/{'x' * 50}/warmer-{i}")
    store.finish_run(_run(), {REGION: RegionStamp(run_id="0" * 36, at=NOW, revision=10**12)})
    # THEN DynamoDB took every write, and the item is under 400 KB
    item = _region_item(state_table, REGION)
    assert item is not None
    assert _item_size(item) < ITEM_LIMIT
    # AND each status was cut to fit, by its messages only (still read, still saying what it said)
    status = store.region_status(REGION).statuses[prefixes[1]]
    synced = status.condition(ConditionType.SYNCED)
    assert synced is not None and synced.reason == "R" * 128 and synced.message.startswith("\x01")
    assert synced.message.endswith("…") and len(synced.message) < MAX_MESSAGE_LENGTH
    assert status.upstream_health is not None and status.upstream_health.check.repository == "r" * 256


def test_a_short_status_is_stored_as_it_is(store: DynamoDbStatusStore) -> None:
    # GIVEN a status with one ASCII message of the longest length (and short others)
    status = _status().with_condition(
        ConditionType.SYNCED, status=False, reason="ApplyFailed", message="x" * MAX_MESSAGE_LENGTH, now=NOW
    )
    store.write_statuses(REGION, {"quay": status}, version=None)
    assert store.rule_status(REGION, "quay") == status


# --------------------------------------------------------------------------------------------------
# the finished run and the Regions' stamps


def test_the_finished_run_and_the_stamps_are_one_transaction(
    store: DynamoDbStatusStore, counted: Counted, state_table: str
) -> None:
    # GIVEN two Regions with statuses written by an earlier run
    store.write_statuses(REGION, {"quay": _status()}, version=None)
    store.write_statuses(OTHER, {"quay": RuleStatus()}, version=None)
    counted.calls.clear()
    # WHEN a run that changed nothing finishes, having reconciled both
    later = NOW + timedelta(minutes=15)
    store.finish_run(_run(), {r: RegionStamp(run_id="run-2", at=later, revision=8) for r in (REGION, OTHER)})
    # THEN one transaction wrote the run record and both stamps
    assert counted.calls == {"TransactWriteItems": 1}
    assert store.get_run("run-2") == _run()
    # AND every status reads as of that run (its stamp put back), the stored JSON untouched
    status = store.rule_status(REGION, "quay")
    assert status is not None
    assert (status.last_run_id, status.last_reconciled_at, status.observed_revision) == ("run-2", later, 8)
    assert status.model_copy(update={"last_run_id": "run-1", "last_reconciled_at": NOW, "observed_revision": 7}) == (
        _status()
    )


def test_an_older_stamp_never_replaces_a_newer_one(
    store: DynamoDbStatusStore, counted: Counted, state_table: str
) -> None:
    # GIVEN a Region stamped by a run of revision 8 (it held the lease, reconciled)
    store.write_statuses(REGION, {"quay": RuleStatus()}, version=None)
    store.finish_run(_run("new"), {REGION: RegionStamp(run_id="new", at=NOW, revision=8)})
    counted.calls.clear()
    # WHEN a run that read the Region without its lease at revision 7 finishes later
    store.finish_run(_run("old"), {REGION: RegionStamp(run_id="old", at=NOW + timedelta(1), revision=7)})
    # THEN its run is recorded, but the Region keeps the newer stamp (the transaction was cancelled by the
    # stamp's condition: the run record and the stamp were then written one by one, the stamp refused)
    assert store.get_run("old") == _run("old")
    stamp = store.region_status(REGION).stamp
    assert stamp is not None and stamp.run_id == "new"
    writes = {k: v for k, v in counted.calls.items() if k not in {"GetItem", "Query"}}
    assert writes == {"TransactWriteItems": 1, "PutItem": 1, "UpdateItem": 1}
    # AND at the same revision, an earlier time is refused, a later one taken
    store.finish_run(_run("early"), {REGION: RegionStamp(run_id="early", at=NOW - timedelta(1), revision=8)})
    store.finish_run(_run("late"), {REGION: RegionStamp(run_id="late", at=NOW + timedelta(1), revision=8)})
    stamp = store.region_status(REGION).stamp
    assert stamp is not None and stamp.run_id == "late"
    # AND a stamp never makes an item (a Region with no status has nothing to stamp)
    store.finish_run(_run("none"), {"ap-south-1": RegionStamp(run_id="none", at=NOW, revision=9)})
    assert store.get_run("none") == _run("none")
    assert _region_item(state_table, "ap-south-1") is None


def _cancelled(*reasons: str) -> ClientError:
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": [{"Code": r} for r in reasons],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "TransactWriteItems")


def _error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "op")


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError"])
def test_a_cancelled_transaction_is_written_one_by_one(
    store: DynamoDbStatusStore, counted: Counted, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    # GIVEN the transaction is cancelled (a concurrent write to the Region's item; a throttled item)
    store.write_statuses(REGION, {"quay": RuleStatus()}, version=None)

    def cancel(**_: Any) -> Any:
        raise _cancelled("None", reason)

    monkeypatch.setattr(counted.client, "transact_write_items", cancel)
    # WHEN the run finishes THEN the run record and the stamp are still written
    store.finish_run(_run(), {REGION: RegionStamp(run_id="run-2", at=NOW, revision=8)})
    assert store.get_run("run-2") == _run()
    stamp = store.region_status(REGION).stamp
    assert stamp is not None and stamp.run_id == "run-2"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("InternalServerError", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
def test_a_failing_transaction_or_its_fallback_raises_classified(
    *,
    store: DynamoDbStatusStore,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    status: int,
    expected: type[Exception],
) -> None:
    stamps = {REGION: RegionStamp(run_id="run-2", at=NOW, revision=8)}
    store.write_statuses(REGION, {"quay": RuleStatus()}, version=None)

    def fail(**_: Any) -> Any:
        raise _error(code, status)

    def cancel(**_: Any) -> Any:
        raise _cancelled("None", "TransactionConflict")

    # the transaction itself fails (after botocore's retries)
    monkeypatch.setattr(counted.client, "transact_write_items", fail)
    with pytest.raises(expected, match="DynamoDB TransactWriteItems"):
        store.finish_run(_run(), stamps)
    # the transaction is cancelled, then a stamp's own write fails
    monkeypatch.setattr(counted.client, "transact_write_items", cancel)
    monkeypatch.setattr(counted.client, "update_item", fail)
    with pytest.raises(expected, match="DynamoDB UpdateItem"):
        store.finish_run(_run(), stamps)
    # the transaction is cancelled, then the run record's own write fails
    monkeypatch.setattr(counted.client, "put_item", fail)
    with pytest.raises(expected, match="DynamoDB PutItem"):
        store.finish_run(_run(), stamps)


# --------------------------------------------------------------------------------------------------
# the former layout


def _legacy(table: str, region: str, prefix: str, status: RuleStatus, health: UpstreamHealth | None = None) -> None:
    item: dict[str, Any] = {
        "pk": {"S": "STATUS"},
        "sk": {"S": f"{region}#{prefix}"},
        "region": {"S": region},
        "prefix": {"S": prefix},
        "status": {"S": status.model_dump_json()},
    }
    if health is not None:
        item["upstream"] = {"S": health.model_dump_json()}
        item["upstream_at"] = {"N": str(int(health.check.observed_at.timestamp() * 1_000_000))}
    boto3.client("dynamodb").put_item(TableName=table, Item=item)


def _legacy_owned(table: str, region: str, kind: str, prefix: str) -> None:
    item: Any = {
        "pk": {"S": f"OWNED#{region}"},
        "sk": {"S": f"{kind}#{prefix}"},
        "kind": {"S": kind},
        "prefix": {"S": prefix},
    }
    boto3.client("dynamodb").put_item(TableName=table, Item=item)


def test_the_former_layout_is_read_until_migrated_then_moved_and_deleted(
    store: DynamoDbStatusStore, state_table: str
) -> None:
    # GIVEN the former layout: 45 statuses in the stack's Region (more than one migration update takes),
    # one in another Region with its upstream health, and ownership items in both
    prefixes = [f"rule-{i:02d}" for i in range(45)]
    for prefix in prefixes:
        _legacy(state_table, REGION, prefix, _status(prefix))
    _legacy(state_table, OTHER, "quay", RuleStatus(), _health())
    _legacy_owned(state_table, REGION, "rule", "rule-00")
    _legacy_owned(state_table, REGION, "template", "rule-01")
    _legacy_owned(state_table, OTHER, "exclusion", "arn:aws:iam::123456789012:role/warmer")
    # AND one status the current layout already has (written since, by a pull-through event's Region write)
    store.write_statuses(REGION, {"rule-00": RuleStatus(drift_corrected=9)}, version=None)
    store.record_upstream(OTHER, "quay", _health())  # no status in the current layout yet: refused there,
    # WHEN read before the migration THEN the former items are read as well (not marked migrated)
    state = store.read_region(REGION)
    assert not state.status.migrated
    assert len(state.status.statuses) == 45
    assert state.status.ownership == Ownership(rules=frozenset({"rule-00"}), templates=frozenset({"rule-01"}))
    assert store.ownership(OTHER) == Ownership(exclusions=frozenset({"arn:aws:iam::123456789012:role/warmer"}))
    assert {(r.region, r.prefix) for r in store.all_status()} == {(REGION, p) for p in prefixes} | {(OTHER, "quay")}
    # WHEN migrated
    before = {(r.region, r.prefix): r.status for r in store.all_status()}
    moved = store.migrate_legacy([REGION, OTHER])
    # THEN every former item was moved, and deleted
    assert moved == 45 + 1 + 3
    for region, prefix in [(REGION, "rule-00"), (OTHER, "quay")]:
        assert _raw(state_table, "STATUS", f"{region}#{prefix}") is None
    assert _raw(state_table, f"OWNED#{REGION}", "rule#rule-00") is None
    # AND reads give what they gave before, from the Regions' items alone
    state = store.read_region(REGION)
    assert state.status.migrated and state.others[OTHER].migrated
    assert {(r.region, r.prefix): r.status for r in store.all_status()} == before
    assert store.rule_status(REGION, "rule-00") == RuleStatus(drift_corrected=9)  # the newer one was kept
    health = store.rule_status(OTHER, "quay")
    assert health is not None and health.upstream_health == _health()
    assert store.ownership(REGION) == Ownership(rules=frozenset({"rule-00"}), templates=frozenset({"rule-01"}))
    # AND a second migration moves nothing, changes nothing
    assert store.migrate_legacy([REGION, OTHER]) == 0
    assert {(r.region, r.prefix): r.status for r in store.all_status()} == before


def test_the_upstream_health_of_a_rule_not_migrated_is_recorded_in_the_former_item(
    store: DynamoDbStatusStore, state_table: str
) -> None:
    _legacy(state_table, REGION, "quay", RuleStatus())
    assert store.record_upstream(REGION, "quay", _health())
    status = store.rule_status(REGION, "quay")
    assert status is not None and status.upstream_health == _health()


def _forwarder(reason: str = "Forwarding", *, synced: bool = True) -> ForwarderStatus:
    return forwarder_status(None, "ecrcache-fwd", synced=synced, reason=reason, message="m", now=NOW, run_id="run-1")


def test_a_forwarder_record_is_an_attribute_of_its_regions_item_read_with_every_regions_statuses(
    store: DynamoDbStatusStore, state_table: str, counted: Counted
) -> None:
    store.migrate_legacy()
    # GIVEN a Region with a rule status, and its forwarder record written
    assert store.write_statuses(OTHER, {"quay": _status("quay")}, version=0)
    store.put_forwarder_status(OTHER, _forwarder("Creating", synced=False))
    store.put_forwarder_status(OTHER, _forwarder())
    # THEN it is the item's fwd attribute; the item's version did not move (a status write conditioned on the
    # version read before still succeeds) and its rule status is kept
    item = _region_item(state_table, OTHER)
    assert item is not None and "fwd" in item and item["version"] == {"N": "1"}
    assert store.write_statuses(OTHER, {"quay": _status("again")}, version=1)
    # AND a Region with no item yet gets one holding only the record (written before its rule is created)
    store.put_forwarder_status("ap-south-1", _forwarder())
    # WHEN every Region's records are read with the stack Region's THEN the forwarder records come with them:
    # one Query, no call of their own
    counted.calls.clear()
    state = store.read_region(REGION)
    assert counted.calls == Counter({"Query": 1})
    assert state.others[OTHER].forwarder == _forwarder() and set(state.others[OTHER].statuses) == {"quay"}
    assert state.others["ap-south-1"].forwarder == _forwarder() and not state.others["ap-south-1"].statuses
    assert [(r.region, r.status) for r in store.forwarder_statuses()] == [
        ("ap-south-1", _forwarder()),
        (OTHER, _forwarder()),
    ]
    assert store.region_status(OTHER).forwarder == _forwarder()
    # WHEN deleted THEN only the record goes (the rule status stays); deleting none makes no item
    store.delete_forwarder_status(OTHER)
    store.delete_forwarder_status("us-west-2")
    assert store.region_status(OTHER).forwarder is None
    assert set(store.region_status(OTHER).statuses) == {"quay"}
    assert _region_item(state_table, "us-west-2") is None
    assert [r.region for r in store.forwarder_statuses()] == ["ap-south-1"]


def _legacy_forwarder(table: str, region: str, status: ForwarderStatus) -> None:
    item: Any = {
        "pk": {"S": "FORWARDER"},
        "sk": {"S": region},
        "region": {"S": region},
        "status": {"S": status.model_dump_json()},
    }
    boto3.client("dynamodb").put_item(TableName=table, Item=item)


def test_former_forwarder_records_are_read_until_migrated_then_moved_and_deleted(
    store: DynamoDbStatusStore, state_table: str
) -> None:
    # GIVEN the former layout's forwarder records (FORWARDER partition) of two Regions, one with a rule status,
    # and a record the current layout already has for one of them (written since: it wins)
    _legacy(state_table, OTHER, "quay", _status("quay"))
    _legacy_forwarder(state_table, OTHER, _forwarder())
    _legacy_forwarder(state_table, "ap-south-1", _forwarder("Creating", synced=False))
    store.put_forwarder_status("ap-south-1", _forwarder("Newer"))
    # WHEN read before the migration THEN the former records are read as well
    assert [(r.region, r.status) for r in store.forwarder_statuses()] == [
        ("ap-south-1", _forwarder("Newer")),
        (OTHER, _forwarder()),
    ]
    assert store.region_status(OTHER).forwarder == _forwarder()
    # WHEN migrated THEN each moved onto its Region's item (the newer one kept) and the former items deleted
    moved = store.migrate_legacy([REGION])
    assert moved == 1 + 2
    assert _raw(state_table, "FORWARDER", OTHER) is None and _raw(state_table, "FORWARDER", "ap-south-1") is None
    state = store.read_region(REGION)
    assert state.status.migrated
    assert state.others[OTHER].forwarder == _forwarder() and set(state.others[OTHER].statuses) == {"quay"}
    assert state.others["ap-south-1"].forwarder == _forwarder("Newer")
    assert store.migrate_legacy([REGION]) == 0

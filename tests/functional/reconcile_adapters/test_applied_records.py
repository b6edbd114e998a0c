"""The applied fingerprints and the quiet digest in the state table (moto DynamoDB, the table from ``template.yaml``):
the digest is recorded only on a Region's status item, with no fan-out there and while its applied generation is still
the one the caller read (nothing is tracked by the store); every write of the fingerprints drops it and moves the
generation on, before and after, making an item with the generation alone when the Region has no status yet."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.shards import ShardRecord, ShardState
from ecrcache.models.status import ReconcileRun, RegionStamp, RuleStatus, RunTrigger
from tests.conftest import REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OTHER = "eu-west-1"
RECORD = AppliedFingerprints(lifecycle="l" * 64, tags="t" * 64, tag_keys=frozenset({"team"}), created_at=NOW)


class Counted:
    """A DynamoDB client that counts its calls (pages one by one) and the items each Query page returned."""

    def __init__(self) -> None:
        self.client: DynamoDBClient = boto3.client("dynamodb", region_name=REGION)
        self.calls: Counter[str] = Counter()
        self.queried: list[int] = []
        self.client.meta.events.register("before-call.dynamodb", self._count)
        self.client.meta.events.register("after-call.dynamodb.Query", self._items)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1

    def _items(self, parsed: dict[str, Any], **_: Any) -> None:
        self.queried.append(len(parsed.get("Items", [])))

    def store(self, table: str) -> DynamoDbStatusStore:
        return DynamoDbStatusStore(table, self.client, sleep=lambda _s: None)


@pytest.fixture
def counted(state_table: str) -> Counted:
    return Counted()


@pytest.fixture
def store(state_table: str, counted: Counted) -> DynamoDbStatusStore:
    return counted.store(state_table)


def _status_item(table: str, region: str) -> dict[str, Any] | None:
    """The Region's status item as DynamoDB holds it (read with a client of its own: not counted)."""
    key: Any = {"pk": {"S": f"APPLIED#{REGION}"}, "sk": {"S": f"#STATUS#{region}"}}
    item: dict[str, Any] | None = boto3.client("dynamodb").get_item(TableName=table, Key=key).get("Item")
    return item


def _digest_and_generation(table: str, region: str) -> tuple[str | None, str | None]:
    item = _status_item(table, region)
    assert item is not None
    return item.get("qd", {}).get("S"), item.get("ag", {}).get("N")


def _with_status(store: DynamoDbStatusStore, region: str) -> None:
    """The Region has a status item (with its ``version``), as a reconcile's status write leaves it."""
    assert store.write_statuses(region, {"quay": RuleStatus(last_run_id="run-0")}, version=None)


def _raiser(error: Exception) -> Any:
    def fail(**_: Any) -> Any:
        raise error

    return fail


def _client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "UpdateItem")


def _generation(store: DynamoDbStatusStore, region: str) -> int:
    """The Region's applied generation as a plan's read sees it (its status only)."""
    return store.read_region(region, applied=False).status.generation


def _bare(region: str, generation: int) -> dict[str, Any]:
    """A Region's item holding its applied generation alone (fingerprints written before its first status)."""
    return {
        "pk": {"S": f"APPLIED#{REGION}"},
        "sk": {"S": f"#STATUS#{region}"},
        "ag": {"N": str(generation)},
    }


def _writer(table: str) -> DynamoDbStatusStore:
    """Another store (another run, another Lambda), with a client of its own."""
    return DynamoDbStatusStore(table, boto3.client("dynamodb", region_name=REGION), sleep=lambda _s: None)


REGIONS = pytest.mark.parametrize("region", [REGION, OTHER], ids=["stack region", "other region"])


# --------------------------------------------------------------------------------------------------
# recording the digest


@REGIONS
def test_a_digest_is_recorded_only_on_a_region_with_a_status_item(
    store: DynamoDbStatusStore, state_table: str, region: str
) -> None:
    # GIVEN a Region read while it has no item at all
    read = store.read_region(region, applied=False).status
    assert (read.version, read.generation, read.digest) == (0, 0, None)
    # WHEN a digest is recorded with the generation read THEN it is refused, and no item is made
    assert not store.record_digest(region, "d1", generation=read.generation)
    assert _status_item(state_table, region) is None
    # GIVEN an item with ownership only (no status write: no version) THEN refused too, nothing recorded
    store.record_owned(region, "rule", "quay")
    assert not store.record_digest(region, "d1", generation=_generation(store, region))
    assert _digest_and_generation(state_table, region) == (None, None)
    # GIVEN a status written, and the Region read again WHEN a digest is recorded with its generation THEN it is
    _with_status(store, region)
    assert store.record_digest(region, "d1", generation=_generation(store, region))
    assert _digest_and_generation(state_table, region) == ("d1", None)
    # AND another store reads it back, both ways
    fresh = DynamoDbStatusStore(state_table, boto3.client("dynamodb", region_name=REGION))
    state = fresh.read_region(region, applied=False)
    assert (state.status.digest, state.status.generation, state.status.version) == ("d1", 0, 1)
    assert fresh.region_status(region).digest == "d1"
    # AND the other Region's item (if any) has none
    assert fresh.region_status(OTHER if region == REGION else REGION).digest is None


@REGIONS
def test_a_digest_is_refused_on_an_item_holding_the_generation_alone(
    store: DynamoDbStatusStore, state_table: str, region: str
) -> None:
    # GIVEN fingerprints written in a Region with no item: its item holds the generation alone
    store.record_applied(region, {"quay/a": RECORD})
    assert _status_item(state_table, region) == _bare(region, 2)
    read = store.read_region(region, applied=False).status
    assert (read.version, read.generation, dict(read.statuses)) == (0, 2, {})
    # WHEN a digest is recorded, with the generation read or with none THEN it is refused, the item unchanged
    assert not store.record_digest(region, "d1", generation=read.generation)
    assert not store.record_digest(region, "d1", generation=0)
    assert _status_item(state_table, region) == _bare(region, 2)


def test_writing_fingerprints_drops_the_digest_and_moves_the_generation_by_two(
    store: DynamoDbStatusStore, counted: Counted, state_table: str
) -> None:
    # GIVEN a Region with a status and its digest recorded
    _with_status(store, REGION)
    assert store.record_digest(REGION, "d1", generation=0)
    # WHEN fingerprints are recorded THEN the digest is gone, the generation moved on twice
    store.record_applied(REGION, {"quay/a": RECORD, "quay/b": RECORD})
    assert _digest_and_generation(state_table, REGION) == (None, "2")
    assert store.applied(REGION) == {"quay/a": RECORD, "quay/b": RECORD}
    # AND a digest of a plan made before the write is refused, even from the store that wrote (nothing tracked)
    assert not store.record_digest(REGION, "d2", generation=0)
    # AND one with the generation read since is recorded
    assert _generation(store, REGION) == 2
    assert store.record_digest(REGION, "d2", generation=2)
    assert _digest_and_generation(state_table, REGION) == ("d2", "2")
    # WHEN some are forgotten (one named twice) THEN the same
    store.forget_applied(REGION, ["quay/a", "quay/a"])
    assert _digest_and_generation(state_table, REGION) == (None, "4")
    assert store.applied(REGION) == {"quay/b": RECORD}
    assert not store.record_digest(REGION, "d3", generation=2)
    assert store.record_digest(REGION, "d3", generation=4)
    # AND nothing to write or forget is no call at all (the digest and the generation stay)
    counted.calls.clear()
    store.record_applied(REGION, {})
    store.forget_applied(REGION, [])
    assert counted.calls == Counter()
    assert _digest_and_generation(state_table, REGION) == ("d3", "4")
    # AND another store reads the generation back
    assert DynamoDbStatusStore(state_table).read_region(REGION, applied=False).status.generation == 4


@REGIONS
def test_a_digest_from_a_read_older_than_another_writers_fingerprints_is_refused(
    store: DynamoDbStatusStore, state_table: str, region: str
) -> None:
    # GIVEN a Region with a status and fingerprints, read (generation 2)
    _with_status(store, region)
    store.record_applied(region, {"quay/a": RECORD})
    read = store.read_region(region).status.generation
    assert read == 2
    # WHEN another store writes fingerprints, then a digest is recorded with the generation read
    _writer(state_table).record_applied(region, {"quay/b": RECORD})
    # THEN it is refused, no digest on the item
    assert not store.record_digest(region, "d1", generation=read)
    assert _digest_and_generation(state_table, region) == (None, "4")
    # AND with the generation read afterwards, it is recorded
    again = _generation(store, region)
    assert again == 4
    assert store.record_digest(region, "d1", generation=again)
    assert _digest_and_generation(state_table, region) == ("d1", "4")


@REGIONS
def test_a_read_before_the_regions_first_item_is_refused_after_fingerprints_and_a_first_status(
    store: DynamoDbStatusStore, state_table: str, region: str
) -> None:
    # GIVEN a Region read while it has no item (generation 0)
    read = store.read_region(region, applied=False).status
    assert (read.generation, read.version) == (0, 0)
    # WHEN another writer writes fingerprints (an item holding the generation alone appears), then the first status
    writer = _writer(state_table)
    writer.record_applied(region, {"quay/a": RECORD})
    assert _status_item(state_table, region) == _bare(region, 2)
    assert writer.write_statuses(region, {"quay": RuleStatus(last_run_id="run-1")}, version=0)
    # THEN a digest recorded with the generation read first is refused
    assert not store.record_digest(region, "d1", generation=read.generation)
    assert _digest_and_generation(state_table, region) == (None, "2")
    # AND one with the generation read since is recorded
    assert store.record_digest(region, "d1", generation=_generation(store, region))
    assert _digest_and_generation(state_table, region) == ("d1", "2")


_REREADS: dict[str, Any] = {
    "ownership": lambda store, region: store.ownership(region),
    "region_status": lambda store, region: store.region_status(region),
    "stack region statuses": lambda store, _region: store.read_region(REGION, applied=False),
}


@REGIONS
@pytest.mark.parametrize("reread", list(_REREADS))
def test_a_later_read_does_not_make_an_older_plans_generation_current(
    store: DynamoDbStatusStore, state_table: str, region: str, reread: str
) -> None:
    # GIVEN a Region with a status and fingerprints, read by a store (generation 2)
    _with_status(store, region)
    store.record_applied(region, {"quay/a": RECORD})
    read = _generation(store, region)
    assert read == 2
    # AND another store writes fingerprints
    _writer(state_table).record_applied(region, {"quay/b": RECORD})
    # WHEN the first store reads the Region's status again, then records the digest of its plan (made from the
    # first read) with the generation of that read
    _REREADS[reread](store, region)
    # THEN it is refused: no digest on the item
    assert not store.record_digest(region, "d1", generation=read)
    assert _digest_and_generation(state_table, region) == (None, "4")


def test_an_item_holding_the_generation_alone_does_not_disturb_status_writes_and_reads(
    store: DynamoDbStatusStore, state_table: str
) -> None:
    # GIVEN a Region with a status, and fingerprints written in another Region with none
    _with_status(store, REGION)
    store.record_applied(OTHER, {"quay/a": RECORD})
    assert _status_item(state_table, OTHER) == _bare(OTHER, 2)
    # THEN it reads as no status: none listed, no statuses, version 0
    assert [(r.region, r.prefix) for r in store.all_status()] == [(REGION, "quay")]
    records, forwarders = store.status_overview()
    assert ([(r.region, r.prefix) for r in records], forwarders) == ([(REGION, "quay")], [])
    home = store.read_region(REGION, applied=False)
    assert (dict(home.others[OTHER].statuses), home.others[OTHER].version) == ({}, 0)
    read = store.read_region(OTHER, applied=False).status
    assert (dict(read.statuses), read.version, read.stamp, read.generation) == ({}, 0, None, 2)
    # WHEN a run finishes with both Regions' stamps
    run = ReconcileRun(run_id="run-1", trigger=RunTrigger.SCHEDULE, started_at=NOW)
    stamp = RegionStamp(run_id="run-1", at=NOW, revision=3)
    store.finish_run(run, {REGION: stamp, OTHER: stamp})
    # THEN the run is recorded and the Region with a status stamped, the item holding the generation alone is not
    assert store.get_run("run-1") == run
    assert store.region_status(REGION).stamp == stamp
    assert _status_item(state_table, OTHER) == _bare(OTHER, 2)
    # WHEN the Region's first status is written, conditioned on the version read (0) THEN it is written
    assert store.write_statuses(OTHER, {"quay": RuleStatus(last_run_id="run-1")}, version=read.version)
    written = store.read_region(OTHER, applied=False).status
    assert (list(written.statuses), written.version, written.generation) == (["quay"], 1, 2)
    assert [(r.region, r.prefix) for r in store.all_status()] == sorted([(REGION, "quay"), (OTHER, "quay")])
    # AND a second write conditioned on version 0 is refused (the condition still holds with the generation there)
    assert not store.write_statuses(OTHER, {"quay": RuleStatus(last_run_id="run-2")}, version=0)
    # AND the fingerprints are still there, a digest with the generation read is recorded
    assert store.applied(OTHER) == {"quay/a": RECORD}
    assert store.record_digest(OTHER, "d1", generation=written.generation)
    assert _digest_and_generation(state_table, OTHER) == ("d1", "2")


def test_fingerprints_of_a_region_with_no_item_move_the_generation_on_an_item_of_their_own(
    store: DynamoDbStatusStore, counted: Counted, state_table: str
) -> None:
    # GIVEN a Region with no item
    # WHEN fingerprints are recorded, then some forgotten THEN both are written
    store.record_applied(OTHER, {"quay/a": RECORD, "quay/b": RECORD})
    store.forget_applied(OTHER, ["quay/b"])
    assert store.applied(OTHER) == {"quay/a": RECORD}
    # AND each dropped the (absent) digest before and after: the Region's item holds the generation alone, moved 4 times
    assert counted.calls["UpdateItem"] == 4
    assert _status_item(state_table, OTHER) == _bare(OTHER, 4)


def test_no_digest_is_recorded_while_a_fanout_is_unfinished(store: DynamoDbStatusStore, state_table: str) -> None:
    # GIVEN a Region with a status and a deep resync's fan-out marker, read
    _with_status(store, REGION)
    run = ReconcileRun(run_id="run-1", trigger=RunTrigger.SCHEDULE, scope="all:deep", started_at=NOW)
    store.put_run(run)
    shards = [ShardRecord(run_id="run-1", region=REGION, index=0, state=ShardState.QUEUED, rules={"quay": 1})]
    assert store.start_fanout(run, REGION, shards, deadline=NOW + timedelta(hours=1)) is None
    read = store.read_region(REGION, applied=False).status
    assert read.fanout is not None
    # WHEN a digest is recorded with the generation read THEN it is refused
    assert not store.record_digest(REGION, "d1", generation=read.generation)
    item = _status_item(state_table, REGION)
    assert item is not None
    assert "fan" in item
    assert "qd" not in item
    # AND once the fan-out is cleared, it is recorded (the marker moved no generation)
    store.clear_fanout(REGION, "run-1")
    assert store.region_status(REGION).fanout is None
    assert store.record_digest(REGION, "d1", generation=read.generation)
    assert _digest_and_generation(state_table, REGION) == ("d1", None)


# --------------------------------------------------------------------------------------------------
# reading the fingerprints and the statuses apart


def test_applied_reads_every_page_of_the_repositories_and_no_status_item(
    store: DynamoDbStatusStore, counted: Counted
) -> None:
    # GIVEN the stack Region's partition with two Regions' status items (one with a digest) and 300 records of
    # 4 KB each (more than one 1 MB Query page), one of a repository named from "0" on
    _with_status(store, REGION)
    _with_status(store, OTHER)
    items = {
        f"{'0day' if i == 0 else 'quay'}/image-{i:03d}": AppliedFingerprints(lifecycle=f"{i:03d}" + "x" * 4000)
        for i in range(300)
    }
    items["quay/tagged"] = RECORD
    store.record_applied(REGION, items)
    assert store.record_digest(REGION, "d1", generation=_generation(store, REGION))
    counted.calls.clear()
    counted.queried.clear()
    # WHEN the Region's fingerprints are read
    found = store.applied(REGION)
    # THEN every record came back exactly, read in more than one page, and no status item was read
    assert found == items
    assert counted.calls == Counter({"Query": len(counted.queried)})
    assert len(counted.queried) >= 2
    assert sum(counted.queried) == len(items)
    # AND another Region's partition holds none of them
    assert store.applied(OTHER) == {}


def _migrated(table: str) -> None:
    """The stack Region's item says the former layout was migrated (so reads no longer look at it)."""
    key: Any = {"pk": {"S": f"APPLIED#{REGION}"}, "sk": {"S": f"#STATUS#{REGION}"}}
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET migrated = :yes",
        ExpressionAttributeValues={":yes": {"BOOL": True}},
    )


def test_a_status_only_read_reads_the_status_items_alone(store: DynamoDbStatusStore, state_table: str) -> None:
    # GIVEN two Regions with statuses and fingerprints, the former layout migrated
    for region in (REGION, OTHER):
        _with_status(store, region)
        store.record_applied(region, {"quay/a": RECORD})
    _migrated(state_table)
    reader = Counted()
    fresh = reader.store(state_table)
    # WHEN the stack Region is read without its fingerprints THEN one Query, of the status items only
    state = fresh.read_region(REGION, applied=False)
    assert reader.calls == Counter({"Query": 1})
    assert reader.queried == [2]
    assert (dict(state.applied), state.applied_read) == ({}, False)
    assert list(state.status.statuses) == ["quay"]
    assert list(state.others) == [OTHER]
    assert state.status.generation == state.others[OTHER].generation == 2
    # WHEN another Region is read without its fingerprints THEN one GetItem, no Query
    reader.calls.clear()
    state = fresh.read_region(OTHER, applied=False)
    assert reader.calls == Counter({"GetItem": 1})
    assert (dict(state.applied), state.applied_read, list(state.status.statuses)) == ({}, False, ["quay"])
    # AND with them: the status item then the fingerprints
    reader.calls.clear()
    state = fresh.read_region(OTHER)
    assert reader.calls == Counter({"GetItem": 1, "Query": 1})
    assert (dict(state.applied), state.applied_read) == ({"quay/a": RECORD}, True)


# --------------------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_client_error("ProvisionedThroughputExceededException"), RetryableError),
        (_client_error("InternalServerError", 500), RetryableError),
        (_client_error("AccessDeniedException"), TerminalError),
        (EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), RetryableError),
    ],
    ids=["throttled", "server error", "access denied", "no connection"],
)
def test_a_failing_digest_record_raises_classified(
    *,
    store: DynamoDbStatusStore,
    counted: Counted,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    error: ClientError | BotoCoreError,
    expected: type[Exception],
) -> None:
    # GIVEN a Region with a status, whose digest's UpdateItem fails
    _with_status(store, REGION)
    generation = _generation(store, REGION)
    monkeypatch.setattr(counted.client, "update_item", _raiser(error))
    # WHEN a digest is recorded THEN the failure surfaces, classified (not as a refusal), and nothing is recorded
    with pytest.raises(expected, match="DynamoDB UpdateItem"):
        store.record_digest(REGION, "d1", generation=generation)
    assert _digest_and_generation(state_table, REGION) == (None, None)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_client_error("ProvisionedThroughputExceededException"), RetryableError),
        (_client_error("AccessDeniedException"), TerminalError),
        (EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), RetryableError),
    ],
    ids=["throttled", "access denied", "no connection"],
)
def test_fingerprints_are_not_written_when_the_digest_cannot_be_dropped_first(
    *,
    store: DynamoDbStatusStore,
    counted: Counted,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    error: ClientError | BotoCoreError,
    expected: type[Exception],
) -> None:
    # GIVEN a Region with a record and a digest, whose UpdateItems fail
    _with_status(store, REGION)
    store.record_applied(REGION, {"quay/a": RECORD})
    assert store.record_digest(REGION, "d1", generation=2)
    monkeypatch.setattr(counted.client, "update_item", _raiser(error))
    counted.calls.clear()
    # WHEN fingerprints are recorded, or forgotten THEN each raises, classified, having written nothing
    with pytest.raises(expected, match="DynamoDB UpdateItem"):
        store.record_applied(REGION, {"quay/b": RECORD})
    with pytest.raises(expected, match="DynamoDB UpdateItem"):
        store.forget_applied(REGION, ["quay/a"])
    assert counted.calls["BatchWriteItem"] == 0
    assert store.applied(REGION) == {"quay/a": RECORD}
    # AND the digest stays, the generation unmoved
    assert _digest_and_generation(state_table, REGION) == ("d1", "2")


def test_a_write_that_fails_after_its_batch_leaves_no_digest(
    store: DynamoDbStatusStore, counted: Counted, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a Region with a digest, whose second UpdateItem (the drop after the write) fails
    _with_status(store, REGION)
    assert store.record_digest(REGION, "d1", generation=0)
    real = counted.client.update_item
    updates: list[str] = []

    def second_fails(**kwargs: Any) -> Any:
        updates.append(kwargs["UpdateExpression"])
        if len(updates) == 2:
            raise _client_error("ProvisionedThroughputExceededException")
        return real(**kwargs)

    monkeypatch.setattr(counted.client, "update_item", second_fails)
    # WHEN fingerprints are recorded THEN it raises, the records written and the digest gone (dropped before)
    with pytest.raises(RetryableError, match="DynamoDB UpdateItem"):
        store.record_applied(REGION, {"quay/a": RECORD})
    assert updates == ["REMOVE #qd ADD #ag :one"] * 2
    assert counted.calls["BatchWriteItem"] >= 1
    assert store.applied(REGION) == {"quay/a": RECORD}
    assert _digest_and_generation(state_table, REGION) == (None, "1")
    # AND a digest of a plan read before the write is refused (the first drop moved the generation)
    assert not store.record_digest(REGION, "d1", generation=0)

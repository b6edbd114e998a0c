"""What the reconciler records about ECR, in the state table next to the desired state.

The table and its desired-state items are described in :mod:`ecrcache.adapters.dynamodb_store`;
this module adds these items (``<region>`` is an AWS Region name, ``<prefix>`` a rule prefix, ``<home>`` the
stack's Region)::

    pk = "APPLIED#<home>"    sk = "#STATUS#<region>"                      one per Region: r#<prefix> (status JSON),
                                                                          u#<prefix> (upstream health JSON)?,
                                                                          ua#<prefix> (its time)?, owned_rule,
                                                                          owned_template, owned_exclusion (string
                                                                          sets), version, run_id, run_at, revision
                                                                          (the Region's stamp), fwd (the Region's event
                                                                          forwarder status JSON)?, fan (its unfinished
                                                                          deep-resync fan-out)?, migrated (<home>'s),
                                                                          qd (quiet digest)?, ag (applied generation)?
    pk = "APPLIED#<region>"  sk = <repository name>                       lifecycle?, policy?, tags?, tag_keys
                                                                          (string set)?, created_at?
    pk = "LEASE#<region>"    sk = "RECONCILE"                             lease_owner, lease_expires
    pk = "RUN#<run_id>"      sk = "RUN"                                   run (JSON), run_status, expires_at; fanned out
                                                                          sh_total, sh_done, sh_failed, sh_retrying,
                                                                          sh_coord, sh_deadline, shr#<region>
    pk = "RUN#<run_id>"      sk = "SHARD#<region>#<index:05d>"            state, region, index, rules, retried?,
                                                                          report?, error?, expires_at (a shard)
    pk = "REQUEST#reconcile" sk = <run_id>                                deep, requested_by, expires_at (the stream
                                                                          delivers it to the reconciler)
                             gsi1pk = "RUN", gsi1sk = "<started_at>#<run_id>"

* Region items (statuses and ownership): every Region's item sits in the stack Region's partition, sorted
  ahead of its applied fingerprints (no repository name starts with ``#``). So one paginated Query
  (:meth:`DynamoDbStatusStore.read_region` of the stack's Region) reads every Region's statuses and
  ownership and the stack Region's fingerprints. A fast resync reads the status items only (one page); when it finds
  nothing to do in a Region whose quiet digest is unchanged, it reads no fingerprint and writes only its run record
  with the Regions' stamps (one ``TransactWriteItems``, :meth:`~DynamoDbStatusStore.finish_run`), however many rules
  and repositories there are (issue 14: at most 5 DynamoDB calls).
* Each writer sets only its own attributes, so none undoes another's: the reconciler a rule's ``r#`` (a
  status write is conditioned on the item's ``version`` read under the lease, and moves it on), the
  pull-through events ``u#``/``ua#`` (conditioned on the rule's status existing and on no newer observation;
  no lease), ownership with atomic ``ADD``/``DELETE`` on the sets, the finished run the stamp.
* Stamp: the fields every run moves (``last_reconciled_at``, ``last_run_id``, ``observed_revision``) are kept
  once per Region, not per rule, and put back into each status on read (a status written later keeps its
  own). A stamp only moves forward (a newer revision, or the same one later) and never makes an item: a run
  that read a Region without its lease cannot put an older stamp over the one of a run that reconciled it.
* Size: a Region's item holds at most 50 desired rules and as many former ones being deleted; each status is
  fitted to :data:`~ecrcache.models.status.MAX_STATUS_BYTES` and each health to
  :data:`~ecrcache.models.status.MAX_HEALTH_BYTES` (messages cut by their encoded size), so the item stays
  under DynamoDB's 400 KB whatever the text (tested with the worst case).
* Event forwarders: a Region's forwarder record is its item's ``fwd`` attribute, so the Query that reads every
  Region's statuses reads every forwarder record too (no call of its own). It is written (an UpdateItem of that
  attribute only) before the forwarding rule is created, and removed once no forwarder is left there.
* Deep-resync fan-out (issue 14, :mod:`ecrcache.adapters.shard_records`): a deep run of a Region with more
  repositories than one shard marks the Region (``fan``, written with the run's shard total in one transaction and
  refused while another run's marker is there), records one item per shard, then sends them; each shard's report
  moves its state and the run's counts (numbers of their own on the run item, put back into the run's ``shards``
  on read) in one transaction; the run finishes with a write conditioned on ``run_status = running``. A shard's
  repositories' fingerprints are read by key (``BatchGetItem``), never by reading the Region's partition.
* Former layout (before issue 14): ``pk = "STATUS"``, ``sk = "<region>#<prefix>"`` (one status item per rule),
  ``pk = "OWNED#<region>"``, ``sk = "<kind>#<prefix>"`` and ``pk = "FORWARDER"``, ``sk = "<region>"`` (the
  forwarder records). Read as well until the stack Region's item says
  ``migrated``; the first reconcile moves them (:meth:`~DynamoDbStatusStore.migrate_legacy`) and deletes them.
* Applied fingerprints: one partition per Region, one item per repository, so a fast resync reads
  a Region's records with one paginated Query and writes them with ``BatchWriteItem`` (25 a batch,
  unprocessed items retried with backoff). An absent attribute is an aspect with nothing applied. A fast resync
  of a Region whose quiet digest is unchanged reads none of them (:mod:`ecrcache.adapters.applied_records`).
* Lease: one item per Region; taken with a conditional PutItem when it is free, expired, or
  already held by the caller, so two reconciles never interleave on one Region.
* Runs: one item per run, listed newest first through ``gsi1`` (shared with the history, told
  apart by ``gsi1pk``). ``expires_at`` is the table's TTL attribute: DynamoDB deletes run records
  a retention period (30 days by default) after they started.
* Reconcile requests: written here with the run record they queue; their partition
  (:data:`~ecrcache.models.status.REQUEST_PARTITION`) and how the reconciler reads one back from the
  stream (:meth:`~ecrcache.models.status.ReconcileRequest.from_stream_image`) are defined with the
  models, so that the reconciler's trigger parser (a service: it may not import boto3) shares them.

None of these items is a desired item (``pk`` never starts with ``DESIRED#``): the stream consumer
must filter on that prefix, or these writes would trigger reconciles of their own. No item holds a
secret value. Every time is passed in; the store reads no clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.applied_records import (
    DIGEST_ATTRIBUTE,
    GENERATION_ATTRIBUTE,
    STATUS_SORT_PREFIX,
    AppliedRecords,
    applied_of_items,
)
from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import batch_write, conditional_update, parse_iso, query_partition
from ecrcache.adapters.dynamodb_codec import iso as _iso
from ecrcache.adapters.dynamodb_codec import n as _n
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.adapters.dynamodb_store import HISTORY_INDEX
from ecrcache.adapters.shard_records import ShardRecords, fanout_marker, with_shard_counts
from ecrcache.models.observed import Ownership
from ecrcache.models.region_records import RegionState, RegionStatus
from ecrcache.models.status import (
    REQUEST_PARTITION,
    ForwarderStatus,
    ForwarderStatusRecord,
    RegionStamp,
    RuleStatus,
    RuleStatusRecord,
    UpstreamHealth,
)
from ecrcache.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, WriteRequestTypeDef

    from ecrcache.engine.plan import OwnedKind
    from ecrcache.models.status import ReconcileRun

RUN_RETENTION: Final = timedelta(days=30)
RUNS_PARTITION: Final = "RUN"
REQUEST_RETENTION: Final = timedelta(days=1)
MIGRATED_ATTRIBUTE: Final = "migrated"
"""Set on the stack Region's item once every item of the former layout has been moved (and deleted)."""
LEGACY_STATUS_PARTITION: Final = "STATUS"
"""The former layout's partition: one status item per (Region, rule); read until migrated, then deleted."""
LEGACY_FORWARDER_PARTITION: Final = "FORWARDER"
"""The former place of the forwarder records (one item per Region); read until migrated, then deleted."""
FORWARDER_ATTRIBUTE: Final = "fwd"
"""Of a Region's status item: its event forwarder's :class:`~ecrcache.models.status.ForwarderStatus` (JSON)."""
RULE_ATTRIBUTE: Final = "r#"
UPSTREAM_ATTRIBUTE: Final = "u#"
UPSTREAM_AT_ATTRIBUTE: Final = "ua#"
LEASE_SORT_KEY: Final = "RECONCILE"
_MIGRATION_CHUNK: Final = 20
"""Former status items moved per UpdateItem (3 attributes each: its expression stays well under DynamoDB's
4 KB limit on an expression)."""
_STAMP_CONDITION: Final = (
    "attribute_exists(#version) AND (attribute_not_exists(#revision) OR #revision < :revision"
    " OR (#revision = :revision AND #run_at <= :run_at))"
)
"""A Region's stamp moves onto its status item (never makes one: a Region with no status has nothing to stamp)
only forward: to a newer desired revision, or the same one at a later time (ISO-8601 UTC times, which sort
as strings)."""

Item = dict[str, "AttributeValueTypeDef"]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp can be 1 µs off, and order two observations wrong)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _legacy_status_of(item: Mapping[str, Any]) -> RuleStatus:
    """A former status item's :class:`RuleStatus`, with its upstream health put back (when recorded)."""
    status = RuleStatus.model_validate_json(item["status"]["S"])
    if "upstream" not in item:
        return status
    return status.with_upstream_health(UpstreamHealth.model_validate_json(item["upstream"]["S"]))


def _is_status(item: Mapping[str, Any]) -> bool:
    return str(item["sk"]["S"]).startswith(STATUS_SORT_PREFIX)


def _rule_statuses(items: Iterable[Mapping[str, Any]], legacy: Iterable[Mapping[str, Any]]) -> list[RuleStatusRecord]:
    """Every rule status on the Regions' ``items``, and on the former layout's status items (``legacy``; the
    current layout wins)."""
    statuses: dict[tuple[str, str], RuleStatus] = {}
    for item in legacy:
        if "status" in item:
            statuses[item["region"]["S"], item["prefix"]["S"]] = _legacy_status_of(item)
    for item in items:
        region = item["sk"]["S"].removeprefix(STATUS_SORT_PREFIX)
        statuses.update({(region, p): s for p, s in _region_of(region, item).statuses.items()})
    return [RuleStatusRecord(region=r, prefix=p, status=s) for (r, p), s in sorted(statuses.items())]


def _forwarder_records(
    items: Iterable[Mapping[str, Any]], legacy: Iterable[Mapping[str, Any]]
) -> list[ForwarderStatusRecord]:
    """Every forwarder record on the Regions' ``items``, and the former layout's forwarder items (``legacy``; the
    current layout wins)."""
    found = {item["sk"]["S"]: ForwarderStatus.model_validate_json(item["status"]["S"]) for item in legacy}
    for item in items:
        if (status := _forwarder_of(item.get(FORWARDER_ATTRIBUTE))) is not None:
            found[item["sk"]["S"].removeprefix(STATUS_SORT_PREFIX)] = status
    return [ForwarderStatusRecord(region=r, status=s) for r, s in sorted(found.items())]


def _stamp_of(item: Mapping[str, Any]) -> RegionStamp | None:
    if "run_id" not in item or "run_at" not in item:
        return None
    return RegionStamp(
        run_id=item["run_id"]["S"], at=parse_iso(item["run_at"]["S"]), revision=int(item["revision"]["N"])
    )


def _stamp_sets(stamp: RegionStamp, names: dict[str, str], values: Item) -> list[str]:
    names |= {"#run_id": "run_id", "#run_at": "run_at", "#revision": "revision"}
    values |= {":run_id": _s(stamp.run_id), ":run_at": _s(_iso(stamp.at)), ":revision": _n(stamp.revision)}
    return ["#run_id = :run_id", "#run_at = :run_at", "#revision = :revision"]


def _region_of(region: str, item: Mapping[str, Any]) -> RegionStatus:
    """A Region item's :class:`RegionStatus`: each rule's status with its upstream health and the Region's
    stamp put back."""
    stamp = _stamp_of(item)
    statuses: dict[str, RuleStatus] = {}
    for name, value in item.items():
        if not name.startswith(RULE_ATTRIBUTE):
            continue
        prefix = name.removeprefix(RULE_ATTRIBUTE)
        status = RuleStatus.model_validate_json(value["S"])
        if (health := item.get(f"{UPSTREAM_ATTRIBUTE}{prefix}")) is not None:
            status = status.with_upstream_health(UpstreamHealth.model_validate_json(health["S"]))
        statuses[prefix] = stamp.stamp(status) if stamp is not None else status
    owned = {kind: frozenset(item.get(f"owned_{kind}", {}).get("SS", ())) for kind in ("rule", "template", "exclusion")}
    return RegionStatus(
        region=region,
        statuses=dict(sorted(statuses.items())),
        ownership=Ownership(rules=owned["rule"], templates=owned["template"], exclusions=owned["exclusion"]),
        version=int(item["version"]["N"]) if "version" in item else 0,
        stamp=stamp,
        forwarder=_forwarder_of(item.get(FORWARDER_ATTRIBUTE)),
        fanout=fanout_marker(item),
        digest=item[DIGEST_ATTRIBUTE]["S"] if DIGEST_ATTRIBUTE in item else None,
        generation=int(item[GENERATION_ATTRIBUTE]["N"]) if GENERATION_ATTRIBUTE in item else 0,
    )


def _forwarder_of(value: Mapping[str, Any] | None) -> ForwarderStatus | None:
    return ForwarderStatus.model_validate_json(value["S"]) if value is not None else None


def _migration(
    table: str, key: Item, items: Sequence[Mapping[str, Any]], owned: Sequence[Mapping[str, Any]], *, mark: bool
) -> list[dict[str, Any]]:
    """The UpdateItems that move a Region's former items into its item: the statuses re-serialised within
    their byte budgets, kept where the current layout already has one (``if_not_exists``), the ownership
    added to the sets, the former forwarder record (an item with ``forwarder``) as ``fwd`` unless one is there;
    :data:`_MIGRATION_CHUNK` rules an update (an expression may take 4 KB)."""
    statuses = [item for item in items if "status" in item and "forwarder" not in item]
    chunks = [statuses[i : i + _MIGRATION_CHUNK] for i in range(0, len(statuses), _MIGRATION_CHUNK)] or [[]]
    updates = [_migration_chunk(table, key, chunk) for chunk in chunks]
    for item in items:
        if "forwarder" in item:
            updates[-1]["ExpressionAttributeNames"]["#fwd"] = FORWARDER_ATTRIBUTE
            updates[-1]["ExpressionAttributeValues"][":fwd"] = item["forwarder"]
            updates[-1]["UpdateExpression"] += ", #fwd = if_not_exists(#fwd, :fwd)"
    if mark:  # the last update of the stack Region's item says the whole migration is done
        updates[-1]["ExpressionAttributeNames"]["#migrated"] = MIGRATED_ATTRIBUTE
        updates[-1]["ExpressionAttributeValues"][":yes"] = {"BOOL": True}
        updates[-1]["UpdateExpression"] += ", #migrated = :yes"
    kinds: dict[str, set[str]] = {}
    for item in owned:
        kinds.setdefault(item["kind"]["S"], set()).add(item["prefix"]["S"])
    adds = []
    for kind, prefixes in sorted(kinds.items()):
        updates[-1]["ExpressionAttributeNames"][f"#o_{kind}"] = f"owned_{kind}"
        updates[-1]["ExpressionAttributeValues"][f":o_{kind}"] = {"SS": sorted(prefixes)}
        adds.append(f"#o_{kind} :o_{kind}")
    if adds:
        updates[-1]["UpdateExpression"] += f" ADD {', '.join(adds)}"
    return updates


def _migration_chunk(table: str, key: Item, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    names: dict[str, str] = {"#version": "version"}
    values: Item = {":zero": _n(0)}
    sets = ["#version = if_not_exists(#version, :zero)"]
    for i, item in enumerate(items):
        status = RuleStatus.model_validate_json(item["status"]["S"]).with_upstream_health(None)
        moved: dict[str, tuple[str, AttributeValueTypeDef]] = {
            "r": (RULE_ATTRIBUTE, _s(status.within_bytes().model_dump_json()))
        }
        if "upstream" in item and "upstream_at" in item:
            health = UpstreamHealth.model_validate_json(item["upstream"]["S"]).within_bytes()
            moved["u"] = (UPSTREAM_ATTRIBUTE, _s(health.model_dump_json()))
            moved["a"] = (UPSTREAM_AT_ATTRIBUTE, item["upstream_at"])
        for tag, (attribute, value) in moved.items():
            names[f"#{tag}{i}"] = f"{attribute}{item['prefix']['S']}"
            values[f":{tag}{i}"] = value
            sets.append(f"#{tag}{i} = if_not_exists(#{tag}{i}, :{tag}{i})")
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": f"SET {', '.join(sets)}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _legacy(client: DynamoDBClient, table: str, region: str) -> tuple[dict[str, RuleStatus], Ownership]:
    """A Region's statuses and ownership as the former layout holds them (until migrated)."""
    try:
        pages = client.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :region)",
            ExpressionAttributeValues={":pk": _s(LEGACY_STATUS_PARTITION), ":region": _s(f"{region}#")},
            ConsistentRead=True,
        )
        items = [item for page in pages for item in page.get("Items", [])]
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, "DynamoDB Query") from exc
    statuses = {item["prefix"]["S"]: _legacy_status_of(item) for item in items if "status" in item}
    owned: dict[str, set[str]] = {"rule": set(), "template": set(), "exclusion": set()}
    for item in query_partition(client, table, f"OWNED#{region}"):
        owned.get(item["kind"]["S"], owned["template"]).add(item["prefix"]["S"])
    ownership = Ownership(
        rules=frozenset(owned["rule"]),
        templates=frozenset(owned["template"]),
        exclusions=frozenset(owned["exclusion"]),
    )
    return statuses, ownership


def _record_upstream_legacy(
    client: DynamoDBClient, table: str, region: str, prefix: str, health: UpstreamHealth
) -> bool:
    """``record_upstream`` on a rule whose status is still in the former layout (a Region not migrated)."""
    return conditional_update(
        client,
        {
            "TableName": table,
            "Key": {"pk": _s(LEGACY_STATUS_PARTITION), "sk": _s(f"{region}#{prefix}")},
            "UpdateExpression": "SET upstream = :health, upstream_at = :at",
            "ConditionExpression": (
                "attribute_exists(#status) AND (attribute_not_exists(upstream_at) OR upstream_at <= :at)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":health": _s(health.within_bytes().model_dump_json()),
                ":at": _n(_micros(health.check.observed_at)),
            },
        },
    )


class _LeasesAndRuns:
    """The Regions' reconcile leases and the run records (the part of the status store no Region item holds)."""

    table_name: str
    client: DynamoDBClient
    run_retention: timedelta

    # -- reconcile lease (one per Region) ------------------------------------------------------

    def acquire_lease(self, region: str, owner: str, *, now: datetime, ttl_seconds: int) -> bool:
        """Take the Region's lease if it is free, expired, or already ``owner``'s; ``False`` otherwise."""
        item: Item = {
            **self._lease_key(region),
            "lease_owner": _s(owner),
            "lease_expires": _n(_epoch(now) + ttl_seconds),
        }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR lease_owner = :me OR lease_expires < :now",
                ExpressionAttributeValues={":me": _s(owner), ":now": _n(_epoch(now))},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "DynamoDB PutItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB PutItem") from exc
        return True

    def renew_lease(self, region: str, owner: str, *, now: datetime, ttl_seconds: int) -> bool:
        """Extend ``owner``'s lease; ``False`` when it is no longer ``owner``'s (released or taken over)."""
        return conditional_update(
            self.client,
            {
                "TableName": self.table_name,
                "Key": self._lease_key(region),
                "UpdateExpression": "SET lease_expires = :exp",
                "ConditionExpression": "lease_owner = :me",
                "ExpressionAttributeValues": {":me": _s(owner), ":exp": _n(_epoch(now) + ttl_seconds)},
            },
        )

    def release_lease(self, region: str, owner: str) -> None:
        """Give the lease up; a no-op when ``owner`` does not hold it (it expired and was taken over)."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=self._lease_key(region),
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues={":me": _s(owner)},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise classify(exc, "DynamoDB DeleteItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB DeleteItem") from exc

    @staticmethod
    def _lease_key(region: str) -> Item:
        return {"pk": _s(f"LEASE#{region}"), "sk": _s(LEASE_SORT_KEY)}

    # -- reconcile runs ------------------------------------------------------------------------

    def _run_item(self, run: ReconcileRun) -> Item:
        return {
            **self._run_key(run.run_id),
            "gsi1pk": _s(RUNS_PARTITION),
            "gsi1sk": _s(f"{_iso(run.started_at)}#{run.run_id}"),
            "run": _s(run.model_dump_json()),
            "run_status": _s(run.status.value),
            "expires_at": _n(_epoch(run.started_at + self.run_retention)),
        }

    def put_run(self, run: ReconcileRun) -> None:
        """Write (or overwrite, e.g. when it finishes) a run record; it expires after the retention."""
        item = self._run_item(run)
        try:
            self.client.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB PutItem") from exc

    def request_reconcile(self, run: ReconcileRun, *, deep: bool, requested_by: str) -> None:
        """Queue a reconcile: the run record (``queued``) and the request item the reconciler's
        stream picks up, in one transaction. The request expires after a day."""
        request: Item = {
            "pk": _s(REQUEST_PARTITION),
            "sk": _s(run.run_id),
            "deep": {"BOOL": deep},
            "requested_by": _s(requested_by),
            "expires_at": _n(_epoch(run.started_at + REQUEST_RETENTION)),
        }
        record: Item = {
            **self._run_key(run.run_id),
            "gsi1pk": _s(RUNS_PARTITION),
            "gsi1sk": _s(f"{_iso(run.started_at)}#{run.run_id}"),
            "run": _s(run.model_dump_json()),
            "run_status": _s(run.status.value),
            "expires_at": _n(_epoch(run.started_at + self.run_retention)),
        }
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.table_name, "Item": record}},
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": request,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB TransactWriteItems") from exc

    def get_run(self, run_id: str) -> ReconcileRun | None:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=self._run_key(run_id), ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return with_shard_counts(item) if item else None

    def latest_runs(self, limit: int) -> list[ReconcileRun]:
        """The ``limit`` most recently started runs, newest first (the index is eventually consistent)."""
        if limit < 1:
            return []
        try:
            out = self.client.query(
                TableName=self.table_name,
                IndexName=HISTORY_INDEX,
                KeyConditionExpression="gsi1pk = :p",
                ExpressionAttributeValues={":p": _s(RUNS_PARTITION)},
                ScanIndexForward=False,
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        return [with_shard_counts(item) for item in out.get("Items", [])]

    @staticmethod
    def _run_key(run_id: str) -> Item:
        return {"pk": _s(f"RUN#{run_id}"), "sk": _s("RUN")}

    def _query_partition(self, pk: str) -> Iterator[dict[str, Any]]:
        return query_partition(self.client, self.table_name, pk)


class DynamoDbStatusStore(AppliedRecords, ShardRecords, _LeasesAndRuns):
    """Implements :class:`ecrcache.ports.StatusStore` on the stack's state table."""

    _applied_items = staticmethod(applied_of_items)  # the shard records' (a shard's by key) parse as the Region's read

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        run_retention: timedelta = RUN_RETENTION,
        home_region: str | None = None,
    ) -> None:
        """``home_region``: the stack's Region, whose partition holds every Region's status item (default:
        the DynamoDB client's Region, which is where the state table is)."""
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.home = home_region or self.client.meta.region_name
        self.sleep = sleep
        self.run_retention = run_retention
        self.migrated = False
        """Known to have migrated the former layout (read on the stack Region's item; it never goes back)."""

    # -- ownership -----------------------------------------------------------------------------

    def ownership(self, region: str) -> Ownership:
        return self.region_status(region).ownership

    def record_owned(self, region: str, kind: OwnedKind, prefix: str) -> None:
        self._update_owned(region, kind, prefix, "ADD")

    def forget_owned(self, region: str, kind: OwnedKind, prefix: str) -> None:
        self._update_owned(region, kind, prefix, "DELETE")

    def _update_owned(self, region: str, kind: OwnedKind, prefix: str, verb: str) -> None:
        """One set of the Region's item (``ADD`` / ``DELETE`` are atomic: no other attribute is touched)."""
        if kind not in ("rule", "template", "exclusion"):
            msg = f"ownership kind must be 'rule', 'template' or 'exclusion', got {kind!r}"
            raise ValueError(msg)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._status_key(region),
                UpdateExpression=f"{verb} #owned :one",
                ExpressionAttributeNames={"#owned": f"owned_{kind}"},
                ExpressionAttributeValues={":one": {"SS": [prefix]}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc

    # -- a Region's records in one read --------------------------------------------------------

    def read_region(self, region: str, *, applied: bool = True) -> RegionState:
        """The Region's status, ownership and applied fingerprints: one paginated Query of its partition (for
        the stack's Region, whose partition also holds every Region's status item, ahead of the fingerprints);
        another Region's is its status item (one GetItem) then its fingerprints (one paginated Query). Without
        ``applied``: the status items only (for the stack's Region, every Region's: one Query). The status is always
        read before the fingerprints (:mod:`ecrcache.adapters.applied_records`: the generation read with them)."""
        if region != self.home:
            status = self.region_status(region)
            return RegionState(status=status, applied=self.applied(region) if applied else {}, applied_read=applied)
        items = list(self._query_partition(f"APPLIED#{region}")) if applied else self._query_status_items()
        found = {item["sk"]["S"].removeprefix(STATUS_SORT_PREFIX): item for item in items if _is_status(item)}
        home = found.pop(region, None)
        self.migrated |= home is not None and MIGRATED_ATTRIBUTE in home
        status = self._region_status(region, home)
        others = {name: self._region_status(name, item) for name, item in sorted(found.items())}
        return RegionState(status=status, applied=applied_of_items(items), others=others, applied_read=applied)

    def region_status(self, region: str) -> RegionStatus:
        """The Region's rule statuses and ownership (one GetItem; until the former layout is known to have been
        migrated, one more of the stack Region's item, which says so, and the former items when it has not)."""
        item = self._get_status_item(region)
        if not self.migrated:
            home = item if region == self.home else self._get_status_item(self.home)
            self.migrated = home is not None and MIGRATED_ATTRIBUTE in home
        return self._region_status(region, item)

    def _get_status_item(self, region: str) -> dict[str, Any] | None:
        try:
            item: dict[str, Any] | None = self.client.get_item(
                TableName=self.table_name, Key=self._status_key(region), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return item

    def _region_status(self, region: str, item: Mapping[str, Any] | None) -> RegionStatus:
        found = _region_of(region, item or {})
        if self.migrated:
            return found
        statuses, owned = _legacy(self.client, self.table_name, region)
        return found.model_copy(
            update={
                "migrated": False,
                "statuses": {**statuses, **found.statuses},
                "forwarder": found.forwarder or self._legacy_forwarder(region),
                "ownership": Ownership(
                    rules=found.ownership.rules | owned.rules,
                    templates=found.ownership.templates | owned.templates,
                    exclusions=found.ownership.exclusions | owned.exclusions,
                ),
            }
        )

    # -- rule status (conditions) --------------------------------------------------------------

    def write_statuses(
        self,
        region: str,
        put: Mapping[str, RuleStatus],
        drop: Collection[str] = (),
        *,
        version: int | None,
        stamp: RegionStamp | None = None,
    ) -> bool:
        """One UpdateItem of the Region's item: the rules' statuses in ``put`` (all but their upstream health,
        ``record_upstream``'s), the rules in ``drop`` removed (their health too), the stamp, and the version
        moved on. Conditioned on ``version`` (the one read; ``None``: not conditioned): ``False`` when another
        reconcile wrote the Region's statuses since. Each rule is an attribute of its own, so this write never
        undoes ``record_upstream``'s nor the ownership sets'."""
        names: dict[str, str] = {"#version": "version"}
        values: Item = {":one": _n(1)}
        sets: list[str] = []
        for i, (prefix, status) in enumerate(sorted(put.items())):
            names[f"#r{i}"] = f"{RULE_ATTRIBUTE}{prefix}"
            values[f":r{i}"] = _s(status.with_upstream_health(None).within_bytes().model_dump_json())
            sets.append(f"#r{i} = :r{i}")
        removes: list[str] = []
        for i, prefix in enumerate(sorted(set(drop) - set(put))):
            names |= {f"#d{i}": f"{RULE_ATTRIBUTE}{prefix}", f"#du{i}": f"{UPSTREAM_ATTRIBUTE}{prefix}"}
            names[f"#da{i}"] = f"{UPSTREAM_AT_ATTRIBUTE}{prefix}"
            removes += [f"#d{i}", f"#du{i}", f"#da{i}"]
        if stamp is not None:
            sets += _stamp_sets(stamp, names, values)
        expression = (f"SET {', '.join(sets)} " if sets else "") + "ADD #version :one"
        expression += f" REMOVE {', '.join(removes)}" if removes else ""
        extra: dict[str, Any] = {}
        if version is not None:  # 0: no item (or one with no status write yet: made by the migration)
            values[":read"] = _n(version)
            extra["ConditionExpression"] = "#version = :read" + (" OR attribute_not_exists(#version)" * (not version))
        request = {
            "TableName": self.table_name,
            "Key": self._status_key(region),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            **extra,
        }
        return conditional_update(self.client, request)

    def put_rule_status(self, region: str, prefix: str, status: RuleStatus) -> None:
        """Everything but the upstream health, which stays as ``record_upstream`` last wrote it."""
        self.write_statuses(region, {prefix: status}, version=None)

    def rule_status(self, region: str, prefix: str) -> RuleStatus | None:
        return self.region_status(region).statuses.get(prefix)

    def all_status(self) -> list[RuleStatusRecord]:
        """Every Region's item (one Query of the stack Region's partition) and, until the former layout is
        migrated, its status items (one more Query)."""
        items = self._query_status_items()
        return _rule_statuses(items, self._until_migrated(LEGACY_STATUS_PARTITION))

    def status_overview(self) -> tuple[list[RuleStatusRecord], list[ForwarderStatusRecord]]:
        """:meth:`all_status` and :meth:`forwarder_statuses` from one Query of the Regions' items (plus, until the
        former layout is migrated, one Query of each of its partitions): ``GET /v1/status``."""
        items = self._query_status_items()
        return (
            _rule_statuses(items, self._until_migrated(LEGACY_STATUS_PARTITION)),
            _forwarder_records(items, self._until_migrated(LEGACY_FORWARDER_PARTITION)),
        )

    def _until_migrated(self, partition: str) -> Iterable[dict[str, Any]]:
        """A partition of the former layout: read only while the store is not known to be migrated."""
        return () if self.migrated else self._query_partition(partition)

    def _query_status_items(self) -> list[dict[str, Any]]:
        """Every Region's item (one paginated Query of the stack Region's partition, status items only)."""
        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :status)",
                ExpressionAttributeValues={":pk": _s(f"APPLIED#{self.home}"), ":status": _s(STATUS_SORT_PREFIX)},
                ConsistentRead=True,
            )
            items = [item for page in pages for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        self.migrated |= any(
            MIGRATED_ATTRIBUTE in item for item in items if item["sk"]["S"] == f"{STATUS_SORT_PREFIX}{self.home}"
        )
        return items

    def record_upstream(self, region: str, prefix: str, health: UpstreamHealth) -> bool:
        """Newest observation wins (an equal time too: the same event again writes the same health)."""
        names = {
            "#rule": f"{RULE_ATTRIBUTE}{prefix}",
            "#health": f"{UPSTREAM_ATTRIBUTE}{prefix}",
            "#at": f"{UPSTREAM_AT_ATTRIBUTE}{prefix}",
        }
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._status_key(region),
                UpdateExpression="SET #health = :health, #at = :at",
                ConditionExpression="attribute_exists(#rule) AND (attribute_not_exists(#at) OR #at <= :at)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":health": _s(health.within_bytes().model_dump_json()),
                    ":at": _n(_micros(health.check.observed_at)),
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return (
                    False
                    if self.migrated
                    else _record_upstream_legacy(self.client, self.table_name, region, prefix, health)
                )
            raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return True

    def delete_rule_status(self, region: str, prefix: str) -> None:
        self.write_statuses(region, {}, [prefix], version=None)

    # -- event forwarders (the ``fwd`` attribute of a Region's item) ---------------------------

    def put_forwarder_status(self, region: str, status: ForwarderStatus) -> None:
        """Sets the Region item's ``fwd`` only (no other attribute, no version move: the rules' status writes,
        conditioned on the version, are not disturbed); makes the item when the Region has none yet, so the
        record exists before the forwarding rule is created."""
        self._update(
            {
                "TableName": self.table_name,
                "Key": self._status_key(region),
                "UpdateExpression": "SET #fwd = :fwd",
                "ExpressionAttributeNames": {"#fwd": FORWARDER_ATTRIBUTE},
                "ExpressionAttributeValues": {":fwd": _s(status.model_dump_json())},
            }
        )

    def forwarder_statuses(self) -> list[ForwarderStatusRecord]:
        """Every Region's forwarder record: the Regions' items (one Query of the stack Region's partition) and,
        until the former layout is migrated, its forwarder items (one more Query)."""
        items = self._query_status_items()
        return _forwarder_records(items, self._until_migrated(LEGACY_FORWARDER_PARTITION))

    def delete_forwarder_status(self, region: str) -> None:
        """Removes the Region item's ``fwd`` (never makes an item) and, until migrated, the former item."""
        self._update(
            {
                "TableName": self.table_name,
                "Key": self._status_key(region),
                "UpdateExpression": "REMOVE #fwd",
                "ConditionExpression": "attribute_exists(#fwd)",
                "ExpressionAttributeNames": {"#fwd": FORWARDER_ATTRIBUTE},
            },
            refused_ok=True,
        )
        if not self.migrated:
            try:
                self.client.delete_item(TableName=self.table_name, Key=self._legacy_forwarder_key(region))
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "DynamoDB DeleteItem") from exc

    def _legacy_forwarder(self, region: str) -> ForwarderStatus | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=self._legacy_forwarder_key(region), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return ForwarderStatus.model_validate_json(item["status"]["S"]) if item and "status" in item else None

    @staticmethod
    def _legacy_forwarder_key(region: str) -> Item:
        return {"pk": _s(LEGACY_FORWARDER_PARTITION), "sk": _s(region)}

    def finish_run(self, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> None:
        """The finished run record and the stamp of every Region it reconciled, in one TransactWriteItems
        (a run that changed nothing makes no other write).

        A stamp only moves forward and only onto a Region's existing item (:data:`_STAMP_CONDITION`): a run
        that read a Region without its lease while another run reconciled it must not put its older stamp
        over the other's. When the transaction is cancelled (such a stamp refused, a concurrent write to an
        item: ``TransactionConflict``, or a throttled item: ``ThrottlingError``, each a reason of
        ``TransactionCanceledException``), the run record and the stamps are written one by one (botocore
        retrying each), a refused stamp left as it is. Other failures raise, classified."""
        if not stamps:
            self.put_run(run)
            return
        updates = [self._stamp_update(region, stamp) for region, stamp in sorted(stamps.items())]
        items: list[Any] = [{"Put": {"TableName": self.table_name, "Item": self._run_item(run)}}]
        items += [{"Update": update} for update in updates]  # at most 100 items: far more than there are Regions
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise classify(exc, "DynamoDB TransactWriteItems") from exc
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            logger.info("run record and stamps written one by one", extra={"reasons": reasons})
            self.put_run(run)
            for update in updates:
                self._update(update, refused_ok=True)
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB TransactWriteItems") from exc

    def _stamp_update(self, region: str, stamp: RegionStamp) -> dict[str, Any]:
        names: dict[str, str] = {"#version": "version"}
        values: Item = {}
        sets = _stamp_sets(stamp, names, values)
        return {
            "TableName": self.table_name,
            "Key": self._status_key(region),
            "UpdateExpression": f"SET {', '.join(sets)}",
            "ConditionExpression": _STAMP_CONDITION,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def _update(self, request: Mapping[str, Any], *, refused_ok: bool = False) -> None:
        try:
            self.client.update_item(**request)
        except ClientError as exc:
            if refused_ok and error_code(exc) == "ConditionalCheckFailedException":
                return
            raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc

    # -- the former layout (one status item per rule, ownership items per Region) --------------

    def migrate_legacy(self, regions: Iterable[str] = ()) -> int:
        """Move the former layout's items into the Regions' items, then delete them: every status item (one
        partition), and the ownership items of ``regions``, of the Regions with a status item and of every
        Region ECR has in the table's partition (the ownership of a Region no rule names any more must not be
        lost; one Query per Region, once). A status already in the current layout is kept. The stack Region's
        item is marked ``migrated`` last: from then on reads no longer look at the former layout. Idempotent
        (a migration cut short is finished by the next). Returns how many former items were moved."""
        known = boto3.session.Session().get_available_regions("ecr", partition_name=self.client.meta.partition)
        by_region: dict[str, list[dict[str, Any]]] = {region: [] for region in {*known, *regions} - {self.home}}
        for item in self._query_partition(LEGACY_STATUS_PARTITION):
            by_region.setdefault(item["region"]["S"], []).append(item)
        for item in self._query_partition(LEGACY_FORWARDER_PARTITION):  # "status" and "region" as a status item's
            by_region.setdefault(item["sk"]["S"], []).append({**item, "forwarder": item["status"]})
        home = by_region.pop(self.home, [])
        moved = 0
        for region, items in [*sorted(by_region.items()), (self.home, home)]:
            owned = list(self._query_partition(f"OWNED#{region}"))
            if not items and not owned and region != self.home:
                continue
            for update in _migration(self.table_name, self._status_key(region), items, owned, mark=region == self.home):
                self._update(update)
            deletes: list[WriteRequestTypeDef] = [
                {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}} for item in (*items, *owned)
            ]
            batch_write(self.client, self.table_name, deletes, sleep=self.sleep)
            moved += len(deletes)
        self.migrated = True
        return moved

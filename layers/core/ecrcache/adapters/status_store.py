"""What the reconciler records about ECR, in the state table next to the desired state.

The table and its desired-state items are described in :mod:`ecrcache.adapters.dynamodb_store`;
this module adds these items (``<region>`` is an AWS Region name, ``<prefix>`` a rule prefix)::

    pk = "OWNED#<region>"    sk = "rule#<prefix>" | "template#<prefix>"   kind, prefix (the principal ARN
                             | "exclusion#<principal ARN>"                for an exclusion)
    pk = "APPLIED#<region>"  sk = <repository name>                       lifecycle?, policy?, tags?
    pk = "STATUS"            sk = "<region>#<prefix>"                     region, prefix, status (JSON),
                                                                          upstream (JSON)?, upstream_at?
    pk = "FORWARDER"         sk = "<region>"                               region, status (JSON): the event
                                                                          forwarder of a Region (a record
                                                                          while one may exist there)
    pk = "LEASE#<region>"    sk = "RECONCILE"                             lease_owner, lease_expires
    pk = "RUN#<run_id>"      sk = "RUN"                                   run (JSON), run_status, expires_at
    pk = "REQUEST#reconcile" sk = <run_id>                                deep, requested_by, expires_at (the stream
                                                                          delivers it to the reconciler)
                             gsi1pk = "RUN", gsi1sk = "<started_at>#<run_id>"

* Ownership: one partition per Region; :meth:`DynamoDbStatusStore.ownership` is one Query.
* Applied fingerprints: one partition per Region, one item per repository, so a fast resync reads
  a Region's records with one paginated Query and writes them with ``BatchWriteItem`` (25 a batch,
  unprocessed items retried with backoff). An absent attribute is an aspect with nothing applied.
* Status: all rules of all Regions in one partition (at most 50 rules per Region): ``all_status``
  is one Query, ``rule_status`` one GetItem. The status is the :class:`RuleStatus` as JSON, but for
  its upstream health (:class:`UpstreamHealth`), kept in ``upstream`` with the time of its observation
  in ``upstream_at`` (epoch microseconds): the reconciler (``put_rule_status``, an UpdateItem of the
  other attributes) and the pull-through events (``record_upstream``, an UpdateItem of these two,
  conditioned on the item existing and on no newer observation) write the same item without a lease
  and never undo each other's write; reads put the two back together.
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import batch_write, query_partition
from ecrcache.adapters.dynamodb_codec import iso as _iso
from ecrcache.adapters.dynamodb_codec import n as _n
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.adapters.dynamodb_store import HISTORY_INDEX
from ecrcache.models.forwarder import ForwarderStatus, ForwarderStatusRecord
from ecrcache.models.observed import AppliedFingerprints, Aspect, Ownership
from ecrcache.models.status import REQUEST_PARTITION, ReconcileRun, RuleStatus, RuleStatusRecord, UpstreamHealth

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, WriteRequestTypeDef

    from ecrcache.engine.plan import OwnedKind

RUN_RETENTION: Final = timedelta(days=30)
RUNS_PARTITION: Final = "RUN"
REQUEST_RETENTION: Final = timedelta(days=1)
STATUS_PARTITION: Final = "STATUS"
FORWARDER_PARTITION: Final = "FORWARDER"
LEASE_SORT_KEY: Final = "RECONCILE"

Item = dict[str, "AttributeValueTypeDef"]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp can be 1 µs off, and order two observations wrong)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _status_of(item: Mapping[str, Any]) -> RuleStatus:
    """A status item's :class:`RuleStatus`, with its upstream health put back (when recorded)."""
    status = RuleStatus.model_validate_json(item["status"]["S"])
    if "upstream" not in item:
        return status
    return status.with_upstream_health(UpstreamHealth.model_validate_json(item["upstream"]["S"]))


class DynamoDbStatusStore:
    """Implements :class:`ecrcache.ports.StatusStore` on the stack's state table."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        run_retention: timedelta = RUN_RETENTION,
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.sleep = sleep
        self.run_retention = run_retention

    # -- ownership -----------------------------------------------------------------------------

    def ownership(self, region: str) -> Ownership:
        owned: dict[str, set[str]] = {"rule": set(), "template": set(), "exclusion": set()}
        for item in self._query_partition(f"OWNED#{region}"):
            owned.get(item["kind"]["S"], owned["template"]).add(item["prefix"]["S"])
        return Ownership(
            rules=frozenset(owned["rule"]),
            templates=frozenset(owned["template"]),
            exclusions=frozenset(owned["exclusion"]),
        )

    def record_owned(self, region: str, kind: OwnedKind, prefix: str) -> None:
        item: Item = {**self._owned_key(region, kind, prefix), "kind": _s(kind), "prefix": _s(prefix)}
        try:
            self.client.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB PutItem") from exc

    def forget_owned(self, region: str, kind: OwnedKind, prefix: str) -> None:
        try:
            self.client.delete_item(TableName=self.table_name, Key=self._owned_key(region, kind, prefix))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB DeleteItem") from exc

    @staticmethod
    def _owned_key(region: str, kind: OwnedKind, prefix: str) -> Item:
        if kind not in ("rule", "template", "exclusion"):
            msg = f"ownership kind must be 'rule', 'template' or 'exclusion', got {kind!r}"
            raise ValueError(msg)
        return {"pk": _s(f"OWNED#{region}"), "sk": _s(f"{kind}#{prefix}")}

    # -- applied fingerprints ------------------------------------------------------------------

    def applied(self, region: str) -> dict[str, AppliedFingerprints]:
        return {
            item["sk"]["S"]: AppliedFingerprints(
                **{aspect.value: item[aspect.value]["S"] for aspect in Aspect if aspect.value in item}
            )
            for item in self._query_partition(f"APPLIED#{region}")
        }

    def record_applied(self, region: str, items: Mapping[str, AppliedFingerprints]) -> None:
        requests: list[WriteRequestTypeDef] = []
        for name, applied in items.items():
            item: Item = {"pk": _s(f"APPLIED#{region}"), "sk": _s(name)}
            for aspect in Aspect:
                if (value := applied.get(aspect)) is not None:
                    item[aspect.value] = _s(value)
            requests.append({"PutRequest": {"Item": item}})
        self._batch_write(requests)

    def forget_applied(self, region: str, names: Iterable[str]) -> None:
        requests: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": {"pk": _s(f"APPLIED#{region}"), "sk": _s(name)}}} for name in dict.fromkeys(names)
        ]
        self._batch_write(requests)

    def _batch_write(self, requests: list[WriteRequestTypeDef]) -> None:
        batch_write(self.client, self.table_name, requests, sleep=self.sleep)

    # -- rule status (conditions) --------------------------------------------------------------

    def put_rule_status(self, region: str, prefix: str, status: RuleStatus) -> None:
        """Everything but the upstream health, which stays as ``record_upstream`` last wrote it."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._status_key(region, prefix),
                UpdateExpression="SET #region = :region, #prefix = :prefix, #status = :status",
                ExpressionAttributeNames={"#region": "region", "#prefix": "prefix", "#status": "status"},
                ExpressionAttributeValues={
                    ":region": _s(region),
                    ":prefix": _s(prefix),
                    ":status": _s(status.with_upstream_health(None).model_dump_json()),
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc

    def rule_status(self, region: str, prefix: str) -> RuleStatus | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=self._status_key(region, prefix), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return _status_of(item) if item else None

    def all_status(self) -> list[RuleStatusRecord]:
        return [
            RuleStatusRecord(region=item["region"]["S"], prefix=item["prefix"]["S"], status=_status_of(item))
            for item in self._query_partition(STATUS_PARTITION)
            if "status" in item  # an item the reconciler has not written yet holds nothing to show
        ]

    def record_upstream(self, region: str, prefix: str, health: UpstreamHealth) -> bool:
        """Newest observation wins (an equal time too: the same event again writes the same health)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._status_key(region, prefix),
                UpdateExpression="SET upstream = :health, upstream_at = :at",
                ConditionExpression=(
                    "attribute_exists(#status) AND (attribute_not_exists(upstream_at) OR upstream_at <= :at)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":health": _s(health.model_dump_json()),
                    ":at": _n(_micros(health.check.observed_at)),
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return True

    def delete_rule_status(self, region: str, prefix: str) -> None:
        try:
            self.client.delete_item(TableName=self.table_name, Key=self._status_key(region, prefix))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB DeleteItem") from exc

    @staticmethod
    def _status_key(region: str, prefix: str) -> Item:
        return {"pk": _s(STATUS_PARTITION), "sk": _s(f"{region}#{prefix}")}

    # -- event forwarders (one record per Region where one may exist) ---------------------------

    def put_forwarder_status(self, region: str, status: ForwarderStatus) -> None:
        item: Item = {
            "pk": _s(FORWARDER_PARTITION),
            "sk": _s(region),
            "region": _s(region),
            "status": _s(status.model_dump_json()),
        }
        try:
            self.client.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB PutItem") from exc

    def forwarder_statuses(self) -> list[ForwarderStatusRecord]:
        return [
            ForwarderStatusRecord(
                region=item["region"]["S"], status=ForwarderStatus.model_validate_json(item["status"]["S"])
            )
            for item in self._query_partition(FORWARDER_PARTITION)
        ]

    def delete_forwarder_status(self, region: str) -> None:
        try:
            self.client.delete_item(TableName=self.table_name, Key={"pk": _s(FORWARDER_PARTITION), "sk": _s(region)})
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB DeleteItem") from exc

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
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._lease_key(region),
                UpdateExpression="SET lease_expires = :exp",
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues={":me": _s(owner), ":exp": _n(_epoch(now) + ttl_seconds)},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return True

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

    def put_run(self, run: ReconcileRun) -> None:
        """Write (or overwrite, e.g. when it finishes) a run record; it expires after the retention."""
        item: Item = {
            **self._run_key(run.run_id),
            "gsi1pk": _s(RUNS_PARTITION),
            "gsi1sk": _s(f"{_iso(run.started_at)}#{run.run_id}"),
            "run": _s(run.model_dump_json()),
            "run_status": _s(run.status.value),
            "expires_at": _n(_epoch(run.started_at + self.run_retention)),
        }
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
        return ReconcileRun.model_validate_json(item["run"]["S"]) if item else None

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
        return [ReconcileRun.model_validate_json(item["run"]["S"]) for item in out.get("Items", [])]

    @staticmethod
    def _run_key(run_id: str) -> Item:
        return {"pk": _s(f"RUN#{run_id}"), "sk": _s("RUN")}

    # -- helpers -------------------------------------------------------------------------------

    def _query_partition(self, pk: str) -> Iterator[dict[str, Any]]:
        return query_partition(self.client, self.table_name, pk)

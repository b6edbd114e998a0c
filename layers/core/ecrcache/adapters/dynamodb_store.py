"""The desired state in one DynamoDB table (single-table design).

Items::

    pk = "META"                 sk = "STATE"                    revision, lock_owner?, lock_expires?
    pk = "DESIRED#<kind>"       sk = <name>                     version, spec (JSON), created_at, updated_*
    pk = "HISTORY#<kind>#<name>" sk = "<iso time>#<revision>"   gsi1pk = "HISTORY", gsi1sk = same + kind/name

Every commit is one ``TransactWriteItems``: the META revision moves from the revision the caller
read to the next one (so two writers never interleave; the loser re-reads), each item is
conditioned on the version the caller saw, and each write appends its history item.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import iso as _iso
from ecrcache.adapters.dynamodb_codec import n as _n
from ecrcache.adapters.dynamodb_codec import parse_iso as _time
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.errors import BadRequestError, LockedError, StaleRevisionError, VersionConflictError
from ecrcache.models.records import (
    HistoryEntry,
    Page,
    ResourceKind,
    Snapshot,
    StoredResource,
    WriteAction,
    written_version,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

    from ecrcache.models.records import (
        Write,
    )

META_KEY: dict[str, AttributeValueTypeDef] = {"pk": {"S": "META"}, "sk": {"S": "STATE"}}
HISTORY_INDEX = "gsi1"
MAX_TRANSACTION_ITEMS = 100
# One META update plus (item + history) per write.
MAX_WRITES_PER_COMMIT = (MAX_TRANSACTION_ITEMS - 1) // 2
NO_OWNER = "-"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(_dumps(key).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> dict[str, AttributeValueTypeDef] | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("next_token is not a token this API returned") from exc
    if not isinstance(key, dict) or not key or not all(_is_key_value(v) for v in key.values()):
        raise BadRequestError("next_token is not a token this API returned")
    return key


def _is_key_value(value: object) -> bool:
    """A key attribute as DynamoDB returns it: exactly one of S / N / B, holding a string."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in {"S", "N", "B"}
        and isinstance(next(iter(value.values())), str)
    )


class DynamoDbStateStore:
    """Implements :class:`ecrcache.ports.StateStore` on the stack's state table."""

    max_writes_per_commit = MAX_WRITES_PER_COMMIT

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()

    # -- reads ---------------------------------------------------------------------------------

    def revision(self) -> int:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=META_KEY, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return int(item["revision"]["N"]) if item and "revision" in item else 0

    def snapshot(self, *, warm_sets: bool = True) -> Snapshot:
        revision = self.revision()
        kinds = [kind for kind in ResourceKind if warm_sets or kind is not ResourceKind.WARM_SET]
        by_kind = {kind: {r.name: r for r in self._query_kind(kind)} for kind in ResourceKind if kind in kinds}
        by_kind.setdefault(ResourceKind.WARM_SET, {})
        return Snapshot(
            revision=revision,
            rules=by_kind[ResourceKind.RULE],
            credentials=by_kind[ResourceKind.CREDENTIAL],
            warm_sets=by_kind[ResourceKind.WARM_SET],
        )

    def get(self, kind: ResourceKind, name: str) -> StoredResource | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": _s(f"DESIRED#{kind}"), "sk": _s(name)}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return self._resource(item) if item else None

    def _query_kind(self, kind: ResourceKind) -> Iterator[StoredResource]:
        for item in self._query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s(f"DESIRED#{kind}")}
        ):
            yield self._resource(item)

    def _query(self, **kwargs: Any) -> Iterator[dict[str, AttributeValueTypeDef]]:
        paginator = self.client.get_paginator("query")
        try:
            for page in paginator.paginate(TableName=self.table_name, ConsistentRead=True, **kwargs):
                yield from page.get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc

    @staticmethod
    def _resource(item: dict[str, Any]) -> StoredResource:
        return StoredResource(
            kind=ResourceKind(item["kind"]["S"]),
            name=item["name"]["S"],
            version=int(item["version"]["N"]),
            spec=json.loads(item["spec"]["S"]),
            created_at=_time(item["created_at"]["S"]),
            updated_at=_time(item["updated_at"]["S"]),
            updated_by=item["updated_by"]["S"],
            secret_arn=item["secret_arn"]["S"] if "secret_arn" in item else None,
        )

    def history(
        self, kind: ResourceKind | None, name: str | None, *, limit: int, next_token: str | None
    ) -> Page[HistoryEntry]:
        start = _decode_token(next_token)
        kwargs: dict[str, Any] = {"TableName": self.table_name, "ScanIndexForward": False, "Limit": limit}
        if start:
            kwargs["ExclusiveStartKey"] = start
        if kind is not None and name is not None:
            kwargs |= {
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": _s(f"HISTORY#{kind}#{name}")},
            }
        else:
            kwargs |= {
                "IndexName": HISTORY_INDEX,
                "KeyConditionExpression": "gsi1pk = :h",
                "ExpressionAttributeValues": {":h": _s("HISTORY")},
            }
            if kind is not None:
                kwargs["FilterExpression"] = "kind = :k"
                kwargs["ExpressionAttributeValues"][":k"] = _s(kind.value)
        try:
            out = self.client.query(**kwargs)
        except ClientError as exc:
            if start and error_code(exc) == "ValidationException":  # a forged or foreign start key
                raise BadRequestError("next_token is not a token this API returned") from exc
            raise classify(exc, "DynamoDB Query") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB Query") from exc
        items = [self._history_entry(i) for i in out.get("Items", [])]
        return Page[HistoryEntry](items=items, next_token=_encode_token(out.get("LastEvaluatedKey")))

    @staticmethod
    def _history_entry(item: dict[str, Any]) -> HistoryEntry:
        return HistoryEntry(
            kind=ResourceKind(item["kind"]["S"]),
            name=item["name"]["S"],
            version=int(item["version"]["N"]),
            action=WriteAction(item["action"]["S"]),
            at=_time(item["at"]["S"]),
            by=item["by"]["S"],
            revision=int(item["revision"]["N"]),
            before=json.loads(item["before"]["S"]) if "before" in item else None,
            after=json.loads(item["after"]["S"]) if "after" in item else None,
        )

    # -- writes --------------------------------------------------------------------------------

    def commit(
        self, writes: Sequence[Write], *, revision: int, actor: str, now: datetime, lock_owner: str | None = None
    ) -> int:
        if not writes:
            return revision
        if len(writes) > MAX_WRITES_PER_COMMIT:
            msg = f"at most {MAX_WRITES_PER_COMMIT} writes per commit, got {len(writes)}"
            raise ValueError(msg)
        new_revision = revision + 1
        items: list[TransactWriteItemTypeDef] = [self._meta_update(revision, new_revision, now, lock_owner)]
        for write in writes:
            items.append(self._item_write(write, now, actor))
            items.append(self._history_put(write, now, actor, new_revision))
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                self._raise_cancelled(exc, writes, now, lock_owner)
            raise classify(exc, "DynamoDB TransactWriteItems") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB TransactWriteItems") from exc
        return new_revision

    def _raise_cancelled(
        self, exc: ClientError, writes: Sequence[Write], now: datetime, lock_owner: str | None
    ) -> None:
        response: dict[str, Any] = dict(exc.response)
        codes = [str(r.get("Code", "None")) for r in response.get("CancellationReasons", [])]
        for index, write in enumerate(writes):
            position = 1 + 2 * index
            if position < len(codes) and codes[position] == "ConditionalCheckFailed":
                raise VersionConflictError(write.kind.value, write.name, write.expected_version) from exc
        if codes and codes[0] == "ConditionalCheckFailed":
            if self._locked_by_other(now, lock_owner):
                raise LockedError("another apply holds the desired-state lease; try again shortly") from exc
            raise StaleRevisionError("the desired state changed while this write was prepared; try again") from exc
        if any(code in {"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"} for code in codes):
            raise StaleRevisionError("the state table was busy; try again") from exc
        raise classify(exc, "DynamoDB TransactWriteItems") from exc

    def _locked_by_other(self, now: datetime, owner: str | None) -> bool:
        try:
            got = self.client.get_item(TableName=self.table_name, Key=META_KEY, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        item = got.get("Item") or {}
        holder = item.get("lock_owner", {}).get("S")
        expires = int(item.get("lock_expires", {}).get("N", "0"))
        return holder is not None and holder != owner and expires >= int(now.timestamp())

    def _meta_update(
        self, revision: int, new_revision: int, now: datetime, lock_owner: str | None
    ) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": META_KEY,
                "UpdateExpression": "SET revision = :new",
                "ConditionExpression": (
                    "((attribute_not_exists(revision) AND :old = :zero) OR revision = :old) AND "
                    "(attribute_not_exists(lock_owner) OR lock_owner = :me OR lock_expires < :now)"
                ),
                "ExpressionAttributeValues": {
                    ":new": _n(new_revision),
                    ":old": _n(revision),
                    ":zero": _n(0),
                    ":me": _s(lock_owner or NO_OWNER),
                    ":now": _n(int(now.timestamp())),
                },
            }
        }

    def _item_write(self, write: Write, now: datetime, actor: str) -> TransactWriteItemTypeDef:
        key: dict[str, AttributeValueTypeDef] = {"pk": _s(f"DESIRED#{write.kind}"), "sk": _s(write.name)}
        if write.action is WriteAction.DELETE:
            if write.expected_version is None:
                msg = "a delete needs the version it deletes"
                raise ValueError(msg)
            return {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": key,
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": _n(write.expected_version)},
                }
            }
        if write.spec is None:
            msg = "a create or update needs a spec"
            raise ValueError(msg)
        version = written_version(write)
        created_at = write.before.created_at if write.before else now
        item: dict[str, AttributeValueTypeDef] = {
            **key,
            "kind": _s(write.kind.value),
            "name": _s(write.name),
            "version": _n(version),
            "spec": _s(_dumps(write.spec)),
            "created_at": _s(_iso(created_at)),
            "updated_at": _s(_iso(now)),
            "updated_by": _s(actor),
        }
        if write.secret_arn:
            item["secret_arn"] = _s(write.secret_arn)
        if write.expected_version is None:
            return {
                "Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
            }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": _n(write.expected_version)},
            }
        }

    def _history_put(self, write: Write, now: datetime, actor: str, revision: int) -> TransactWriteItemTypeDef:
        version = written_version(write)
        sort_key = f"{_iso(now)}#{revision:012d}"
        item: dict[str, AttributeValueTypeDef] = {
            "pk": _s(f"HISTORY#{write.kind}#{write.name}"),
            "sk": _s(sort_key),
            "gsi1pk": _s("HISTORY"),
            "gsi1sk": _s(f"{sort_key}#{write.kind}#{write.name}"),
            "kind": _s(write.kind.value),
            "name": _s(write.name),
            "version": _n(version),
            "action": _s(write.action.value),
            "at": _s(_iso(now)),
            "by": _s(actor),
            "revision": _n(revision),
        }
        if write.before is not None:
            item["before"] = _s(_dumps(write.before.spec))
        if write.spec is not None and write.action is not WriteAction.DELETE:
            item["after"] = _s(_dumps(write.spec))
        return {"Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}

    # -- lease for applies larger than one transaction -----------------------------------------

    def acquire_lock(self, owner: str, *, now: datetime, ttl_seconds: int) -> int:
        try:
            out = self.client.update_item(
                TableName=self.table_name,
                Key=META_KEY,
                UpdateExpression="SET lock_owner = :me, lock_expires = :exp, revision = if_not_exists(revision, :zero)",
                ConditionExpression="attribute_not_exists(lock_owner) OR lock_owner = :me OR lock_expires < :now",
                ExpressionAttributeValues={
                    ":me": _s(owner),
                    ":exp": _n(int(now.timestamp()) + ttl_seconds),
                    ":now": _n(int(now.timestamp())),
                    ":zero": _n(0),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LockedError("another apply holds the desired-state lease; try again shortly") from exc
            raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return int(out["Attributes"]["revision"]["N"])

    def release_lock(self, owner: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=META_KEY,
                UpdateExpression="REMOVE lock_owner, lock_expires",
                ConditionExpression="lock_owner = :me",
                ExpressionAttributeValues={":me": _s(owner)},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc

"""A Region's applied fingerprints and its quiet digest, in the state table (mixed into the status store).

Items (the layout is :mod:`ecrcache.adapters.status_store`'s)::

    pk = "APPLIED#<region>"  sk = <repository name>        lifecycle?, policy?, tags?, tag_keys?, created_at?
    pk = "APPLIED#<home>"    sk = "#STATUS#<region>"       + qd (the quiet digest)?, ag (the applied generation)?

* Applied fingerprints: one item per repository, read with one paginated Query of the Region's partition from the
  first repository name on (``sk >= "0"``: ECR repository names start with a lowercase letter or a digit, the
  ``repositoryName`` pattern of botocore's ECR model, so the stack Region's status items, ``#STATUS#...``, are never
  read with them), written with ``BatchWriteItem`` (25 a batch, unprocessed items retried with backoff).
* Quiet digest (:mod:`ecrcache.engine.quiet`): ``qd`` on the Region's status item, recorded by a run that found the
  Region quiet (:meth:`AppliedRecords.record_digest`), so the next fast run that computes the same digest reads no
  applied fingerprint. Every write of the Region's fingerprints removes it and moves ``ag`` on (making the item when
  there is none: a write before the Region's first status is counted too), once before the write (a write that stops
  half way leaves no digest behind) and once after (a digest recorded meanwhile, from a plan made on a read the write
  overtook, is removed). A digest is recorded only on an item a status write (or the former layout's migration) made,
  while ``ag`` is still the generation the caller read with the records its plan was made from, and while no fan-out
  is unfinished there: so it never stands for records that changed after they were read.

Nothing here reads a clock; no item holds a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify
from ecrcache.adapters.dynamodb_codec import batch_write, conditional_update, parse_iso
from ecrcache.adapters.dynamodb_codec import iso as _iso
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.adapters.shard_records import FANOUT_ATTRIBUTE
from ecrcache.models.observed import AppliedFingerprints, Aspect

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, WriteRequestTypeDef

__all__ = [
    "CREATED_ATTRIBUTE",
    "DIGEST_ATTRIBUTE",
    "GENERATION_ATTRIBUTE",
    "STATUS_SORT_PREFIX",
    "TAG_KEYS_ATTRIBUTE",
    "AppliedRecords",
    "applied_of_items",
]

CREATED_ATTRIBUTE: Final = "created_at"
"""Of an applied-fingerprints item: :attr:`~ecrcache.models.observed.AppliedFingerprints.created_at`."""
TAG_KEYS_ATTRIBUTE: Final = "tag_keys"
"""Of an applied-fingerprints item: :attr:`~ecrcache.models.observed.AppliedFingerprints.tag_keys` (a string set;
absent when there are none: DynamoDB has no empty set)."""
STATUS_SORT_PREFIX: Final = "#STATUS#"
"""Sort key prefix of the Regions' status items, in the stack Region's partition (``APPLIED#<stack Region>``):
no repository name starts with ``#``, so they sort ahead of the applied fingerprints and never clash."""
DIGEST_ATTRIBUTE: Final = "qd"
"""Of a Region's status item: its quiet digest (:mod:`ecrcache.engine.quiet`)."""
GENERATION_ATTRIBUTE: Final = "ag"
"""Of a Region's status item: moved on before and after every write of the Region's applied fingerprints."""
FIRST_REPOSITORY_KEY: Final = "0"
"""No repository name sorts before it (ECR's ``repositoryName`` pattern: ``(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*...``)."""
_VERSION_ATTRIBUTE: Final = "version"

Item = dict[str, "AttributeValueTypeDef"]


def applied_of_items(items: Iterable[Mapping[str, Any]]) -> dict[str, AppliedFingerprints]:
    """The applied fingerprints among a Region partition's items (repository names never start with ``#``)."""
    return {
        item["sk"]["S"]: AppliedFingerprints(
            **{aspect.value: item[aspect.value]["S"] for aspect in Aspect if aspect.value in item},
            tag_keys=frozenset(item[TAG_KEYS_ATTRIBUTE]["SS"]) if TAG_KEYS_ATTRIBUTE in item else None,
            created_at=parse_iso(item[CREATED_ATTRIBUTE]["S"]) if CREATED_ATTRIBUTE in item else None,
        )
        for item in items
        if not str(item["sk"]["S"]).startswith("#")
    }


def _item(region: str, name: str, applied: AppliedFingerprints) -> Item:
    item: Item = {"pk": _s(f"APPLIED#{region}"), "sk": _s(name)}
    for aspect in Aspect:
        if (value := applied.get(aspect)) is not None:
            item[aspect.value] = _s(value)
    if applied.tag_keys:
        item[TAG_KEYS_ATTRIBUTE] = {"SS": sorted(applied.tag_keys)}
    if applied.created_at is not None:
        item[CREATED_ATTRIBUTE] = _s(_iso(applied.created_at))
    return item


class AppliedRecords:
    """The applied fingerprints and the quiet digest of :class:`~ecrcache.ports.StatusStore` (see the module)."""

    table_name: str
    client: DynamoDBClient
    home: str
    sleep: Callable[[float], None]

    def applied(self, region: str) -> dict[str, AppliedFingerprints]:
        """The Region's applied fingerprints only (one paginated Query; never the status items)."""
        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND sk >= :first",
                ExpressionAttributeValues={":pk": _s(f"APPLIED#{region}"), ":first": _s(FIRST_REPOSITORY_KEY)},
                ConsistentRead=True,
            )
            return applied_of_items(item for page in pages for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc

    def record_applied(self, region: str, items: Mapping[str, AppliedFingerprints]) -> None:
        requests: list[WriteRequestTypeDef] = [
            {"PutRequest": {"Item": _item(region, name, applied)}} for name, applied in items.items()
        ]
        self._write_applied(region, requests)

    def forget_applied(self, region: str, names: Iterable[str]) -> None:
        requests: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": {"pk": _s(f"APPLIED#{region}"), "sk": _s(name)}}} for name in dict.fromkeys(names)
        ]
        self._write_applied(region, requests)

    def _write_applied(self, region: str, requests: list[WriteRequestTypeDef]) -> None:
        if not requests:
            return
        self._drop_digest(region)
        batch_write(self.client, self.table_name, requests, sleep=self.sleep)
        self._drop_digest(region)

    def _status_key(self, region: str) -> Item:
        return {"pk": _s(f"APPLIED#{self.home}"), "sk": _s(f"{STATUS_SORT_PREFIX}{region}")}

    def _drop_digest(self, region: str) -> None:
        """Remove the Region's digest and move its generation on (an item with the generation alone when the Region
        has none yet: status writes and reads take it as no status, :meth:`record_digest` as a write)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._status_key(region),
                UpdateExpression="REMOVE #qd ADD #ag :one",
                ExpressionAttributeNames={"#qd": DIGEST_ATTRIBUTE, "#ag": GENERATION_ATTRIBUTE},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc

    def record_digest(self, region: str, digest: str, *, generation: int) -> bool:
        """Record the Region's quiet digest, unless its applied fingerprints were written since ``generation`` (the
        :attr:`~ecrcache.models.region_records.RegionStatus.generation` read with the records the digest's plan was
        made from), a fan-out is unfinished there, or no status was ever written there (no ``version`` on the item);
        whether it was recorded."""
        names = {
            "#qd": DIGEST_ATTRIBUTE,
            "#ag": GENERATION_ATTRIBUTE,
            "#version": _VERSION_ATTRIBUTE,
            "#fan": FANOUT_ATTRIBUTE,
        }
        values: Item = {":qd": _s(digest)}
        same = "attribute_not_exists(#ag)"
        if generation:
            same, values[":ag"] = "#ag = :ag", {"N": str(generation)}
        return conditional_update(
            self.client,
            {
                "TableName": self.table_name,
                "Key": self._status_key(region),
                "UpdateExpression": "SET #qd = :qd",
                "ConditionExpression": f"attribute_exists(#version) AND attribute_not_exists(#fan) AND {same}",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            },
        )

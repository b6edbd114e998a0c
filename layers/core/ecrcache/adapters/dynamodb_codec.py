"""How the state table's items encode values, in the low-level client's attribute-value shape.

The stores of the state table (desired state, status, pull statistics, warm runs, budgets) write
items of one table; they share these encoders so that the table holds one format, whichever store
wrote an item, and :func:`query_partition` to read a partition.

Times are UTC ISO-8601 text with microseconds and a ``Z``: fixed width, so sort keys built from
them (history entries, the run index) sort as text in time order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code
from ecrcache.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, KeysAndAttributesTypeDef, WriteRequestTypeDef

__all__ = ["batch_get", "batch_write", "conditional_update", "iso", "n", "parse_iso", "query_partition", "s"]

BATCH_SIZE: Final = 25
"""Items per ``BatchWriteItem`` (the DynamoDB maximum)."""
BATCH_GET_SIZE: Final = 100
"""Keys per ``BatchGetItem`` (the DynamoDB maximum)."""
BATCH_ATTEMPTS: Final = 8
"""Rounds of ``UnprocessedItems`` retries before giving up with a ``RetryableError``."""
BATCH_BACKOFF_SECONDS: Final = 0.05
BATCH_BACKOFF_MAX_SECONDS: Final = 2.0


def s(value: str) -> AttributeValueTypeDef:
    """A string attribute."""
    return {"S": value}


def n(value: int) -> AttributeValueTypeDef:
    """A number attribute (DynamoDB carries numbers as text)."""
    return {"N": str(value)}


def iso(value: datetime) -> str:
    """``value`` as stored: UTC, fixed width, so it sorts as text in time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """The time :func:`iso` stored (timezone-aware, UTC)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def query_partition(
    client: DynamoDBClient, table_name: str, pk: str, *, consistent: bool = True
) -> Iterator[dict[str, Any]]:
    """Every item of partition ``pk``, page by page, read consistently unless told otherwise; a failure is
    classified (:func:`ecrcache.adapters.aws.classify`) whichever page it happens on."""
    paginator = client.get_paginator("query")
    try:
        for page in paginator.paginate(
            TableName=table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(pk)},
            ConsistentRead=consistent,
        ):
            yield from page.get("Items", [])
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, "DynamoDB Query") from exc


def conditional_update(client: DynamoDBClient, request: Mapping[str, Any]) -> bool:
    """``UpdateItem`` with ``request``: ``False`` when its condition refused it, any other failure classified."""
    try:
        client.update_item(**request)
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise classify(exc, "DynamoDB UpdateItem") from exc
    except BotoCoreError as exc:
        raise classify(exc, "DynamoDB UpdateItem") from exc
    return True


def _rounds(sleep: Callable[[float], None]) -> Iterator[int]:
    """:data:`BATCH_ATTEMPTS` rounds of a batch call, each after the last one's backoff (doubling, capped)."""
    delay = BATCH_BACKOFF_SECONDS
    for attempt in range(BATCH_ATTEMPTS):
        if attempt:
            sleep(delay)
            delay = min(delay * 2, BATCH_BACKOFF_MAX_SECONDS)
        yield attempt


def batch_write(
    client: DynamoDBClient, table_name: str, requests: Sequence[WriteRequestTypeDef], *, sleep: Callable[[float], None]
) -> None:
    """Every request, 25 to a ``BatchWriteItem``, its ``UnprocessedItems`` sent again with backoff; a batch
    still unprocessed after :data:`BATCH_ATTEMPTS` rounds raises :class:`RetryableError` (the caller's
    trigger retries), a failed call is classified."""
    for start in range(0, len(requests), BATCH_SIZE):
        pending = list(requests[start : start + BATCH_SIZE])
        for _ in _rounds(sleep):
            try:
                out = client.batch_write_item(RequestItems={table_name: pending})
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "DynamoDB BatchWriteItem") from exc
            pending = cast("list[WriteRequestTypeDef]", out.get("UnprocessedItems", {}).get(table_name, []))
            if not pending:
                break
        else:
            msg = f"DynamoDB BatchWriteItem left {len(pending)} items unprocessed after {BATCH_ATTEMPTS} attempts"
            raise RetryableError(msg)


def batch_get(
    client: DynamoDBClient,
    table_name: str,
    keys: Sequence[dict[str, AttributeValueTypeDef]],
    *,
    sleep: Callable[[float], None],
    consistent: bool = True,
    projection: str | None = None,
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The items of ``keys`` that exist, 100 keys to a ``BatchGetItem``, its ``UnprocessedKeys`` asked again
    with backoff; keys still unprocessed after :data:`BATCH_ATTEMPTS` rounds raise :class:`RetryableError`,
    a failed call is classified."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_SIZE):
        pending: KeysAndAttributesTypeDef = {"Keys": list(keys[start : start + BATCH_GET_SIZE])}
        pending["ConsistentRead"] = consistent
        if projection is not None:
            pending["ProjectionExpression"] = projection
        if names:
            pending["ExpressionAttributeNames"] = names
        for _ in _rounds(sleep):
            try:
                out = client.batch_get_item(RequestItems={table_name: pending})
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "DynamoDB BatchGetItem") from exc
            found += out.get("Responses", {}).get(table_name, [])
            unprocessed = out.get("UnprocessedKeys", {}).get(table_name)
            if not unprocessed or not unprocessed.get("Keys"):
                break
            pending = cast("KeysAndAttributesTypeDef", unprocessed)
        else:
            msg = f"DynamoDB BatchGetItem left keys unprocessed after {BATCH_ATTEMPTS} attempts"
            raise RetryableError(msg)
    return found

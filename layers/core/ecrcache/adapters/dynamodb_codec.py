"""How the state table's items encode values, in the low-level client's attribute-value shape.

The desired-state store (:mod:`ecrcache.adapters.dynamodb_store`) and the status store
(:mod:`ecrcache.adapters.status_store`) write items of one table; they share these encoders so
that the table holds one format, whichever store wrote an item.

Times are UTC ISO-8601 text with microseconds and a ``Z``: fixed width, so sort keys built from
them (history entries, the run index) sort as text in time order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["iso", "n", "parse_iso", "s"]


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

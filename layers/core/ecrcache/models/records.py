"""What the state table holds, as values (the DynamoDB item shapes live in the store adapter)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field


class ResourceKind(StrEnum):
    RULE = "rule"
    CREDENTIAL = "credential"
    WARM_SET = "warm-set"


SECTIONS: Final = MappingProxyType(
    {ResourceKind.RULE: "rules", ResourceKind.CREDENTIAL: "credentials", ResourceKind.WARM_SET: "warm_sets"}
)
"""Each kind's section in a desired-state document (``rules.<prefix>``), in document order.

Field paths of errors use them too, and the CLI reads documents by them: one definition for all.
"""


class WriteAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class StoredResource(BaseModel):
    """One desired item as stored: the validated spec (as JSON data) and its bookkeeping."""

    model_config = ConfigDict(frozen=True)

    kind: ResourceKind
    name: str
    version: int = Field(ge=1)
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    updated_by: str
    secret_arn: str | None = None


class Write(BaseModel):
    """One change to commit. ``expected_version`` None means "must not exist yet".

    ``before`` is what the history records as the previous state (for a re-created item, the one
    that was deleted); ``version`` overrides the new version (re-creating an item after its deletion
    continues its numbering instead of starting at 1 again).
    """

    model_config = ConfigDict(frozen=True)

    kind: ResourceKind
    name: str
    action: WriteAction
    expected_version: int | None
    version: int | None = Field(default=None, ge=1, description="Version to write; default expected_version + 1.")
    spec: dict[str, Any] | None = None
    secret_arn: str | None = None
    before: StoredResource | None = None


class HistoryEntry(BaseModel):
    """An immutable record of one write: who, when, what it was before and after."""

    model_config = ConfigDict(frozen=True)

    kind: ResourceKind
    name: str
    version: int
    action: WriteAction
    at: datetime
    by: str
    revision: int
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class Snapshot(BaseModel):
    """Every desired item at one revision of the state (the revision guards the next commit)."""

    model_config = ConfigDict(frozen=True)

    revision: int
    rules: dict[str, StoredResource]
    credentials: dict[str, StoredResource]
    warm_sets: dict[str, StoredResource]

    def of(self, kind: ResourceKind) -> dict[str, StoredResource]:
        return {
            ResourceKind.RULE: self.rules,
            ResourceKind.CREDENTIAL: self.credentials,
            ResourceKind.WARM_SET: self.warm_sets,
        }[kind]


class Page[T](BaseModel):
    items: list[T]
    next_token: str | None = None


def written_version(write: Write) -> int:
    """The version a write leaves the item at (for a delete: the version deleted)."""
    if write.action is WriteAction.DELETE:
        return write.expected_version or 0
    return write.version or (write.expected_version or 0) + 1

"""The ports the services depend on; ``ecrcache.adapters`` implements them (ACK manager style)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ecrcache.models.records import HistoryEntry, Page, ResourceKind, Snapshot, StoredResource, Write


class StateStore(Protocol):
    """Desired state with optimistic concurrency on a global revision and per-item versions."""

    def snapshot(self) -> Snapshot:
        """Every desired item, with the revision they were read at."""
        ...

    def get(self, kind: ResourceKind, name: str) -> StoredResource | None: ...

    def commit(
        self, writes: Sequence[Write], *, revision: int, actor: str, now: datetime, lock_owner: str | None = None
    ) -> int:
        """Apply ``writes`` and their history atomically if the state is still at ``revision``.

        Returns the new revision. Raises ``StaleRevisionError`` when anything changed since, and
        ``VersionConflictError`` naming the item whose version no longer matches.
        """
        ...

    def acquire_lock(self, owner: str, *, now: datetime, ttl_seconds: int) -> int:
        """Take the writer lease (for multi-transaction document applies); returns the revision."""
        ...

    def release_lock(self, owner: str) -> None: ...

    def history(
        self, kind: ResourceKind | None, name: str | None, *, limit: int, next_token: str | None
    ) -> Page[HistoryEntry]: ...


@dataclass(frozen=True, slots=True)
class StagedSecret:
    """A secret value written but not yet current (or a new secret, current but unreferenced)."""

    name: str
    arn: str
    version_id: str
    created: bool


class SecretStore(Protocol):
    """Upstream credentials in Secrets Manager. Values go in; nothing ever comes back out."""

    def stage(self, name: str, secret_string: str, *, request_token: str) -> StagedSecret: ...

    def promote(self, staged: StagedSecret) -> None: ...

    def discard(self, staged: StagedSecret) -> None: ...

    def delete(self, name: str) -> None: ...

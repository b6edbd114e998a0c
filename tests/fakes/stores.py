"""In-memory fakes of the state and secret ports (style.md: prefer fakes over mocks)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ecrcache.adapters.dynamodb_store import MAX_WRITES_PER_COMMIT
from ecrcache.errors import LockedError, StaleRevisionError, TerminalError, VersionConflictError
from ecrcache.models.records import (
    HistoryEntry,
    Page,
    ResourceKind,
    Snapshot,
    StoredResource,
    Write,
    WriteAction,
    written_version,
)
from ecrcache.ports import StagedSecret


class MemoryStateStore:
    """Same contract as ``DynamoDbStateStore``: revision-guarded atomic commits with history."""

    max_writes_per_commit = MAX_WRITES_PER_COMMIT

    def __init__(self) -> None:
        self.items: dict[tuple[ResourceKind, str], StoredResource] = {}
        self.log: list[HistoryEntry] = []
        self.revision = 0
        self.lock_owner: str | None = None
        self.fail_commits: list[Exception] = []  # raised, in order, by the next commits
        self.commits = 0

    def snapshot(self, *, warm_sets: bool = True) -> Snapshot:
        by: dict[ResourceKind, dict[str, StoredResource]] = {k: {} for k in ResourceKind}
        for (kind, name), item in self.items.items():
            by[kind][name] = item
        return Snapshot(
            revision=self.revision,
            rules=by[ResourceKind.RULE],
            credentials=by[ResourceKind.CREDENTIAL],
            warm_sets=by[ResourceKind.WARM_SET] if warm_sets else {},
        )

    def get(self, kind: ResourceKind, name: str) -> StoredResource | None:
        return self.items.get((kind, name))

    def commit(
        self, writes: Sequence[Write], *, revision: int, actor: str, now: datetime, lock_owner: str | None = None
    ) -> int:
        self.commits += 1
        if len(writes) > self.max_writes_per_commit:
            msg = f"at most {self.max_writes_per_commit} writes per commit, got {len(writes)}"
            raise ValueError(msg)
        if self.fail_commits:
            raise self.fail_commits.pop(0)
        if self.lock_owner is not None and self.lock_owner != lock_owner:
            raise LockedError("locked")
        if revision != self.revision:
            raise StaleRevisionError("stale")
        for w in writes:
            current = self.items.get((w.kind, w.name))
            if (current.version if current else None) != w.expected_version:
                raise VersionConflictError(w.kind.value, w.name, w.expected_version)
        self.revision += 1
        for w in writes:
            key = (w.kind, w.name)
            version = written_version(w)
            before = self.items.get(key)
            if w.action is WriteAction.DELETE:
                self.items.pop(key)
            else:
                assert w.spec is not None
                self.items[key] = StoredResource(
                    kind=w.kind,
                    name=w.name,
                    version=version,
                    spec=w.spec,
                    created_at=before.created_at if before else now,
                    updated_at=now,
                    updated_by=actor,
                    secret_arn=w.secret_arn,
                )
            self.log.append(
                HistoryEntry(
                    kind=w.kind,
                    name=w.name,
                    version=version,
                    action=w.action,
                    at=now,
                    by=actor,
                    revision=self.revision,
                    before=before.spec if before else None,
                    after=w.spec if w.action is not WriteAction.DELETE else None,
                )
            )
        return self.revision

    def acquire_lock(self, owner: str, *, now: datetime, ttl_seconds: int) -> int:
        if self.lock_owner not in (None, owner):
            raise LockedError("locked")
        self.lock_owner = owner
        return self.revision

    def release_lock(self, owner: str) -> None:
        if self.lock_owner == owner:
            self.lock_owner = None

    def history(
        self, kind: ResourceKind | None, name: str | None, *, limit: int, next_token: str | None
    ) -> Page[HistoryEntry]:
        items = [h for h in reversed(self.log) if (kind is None or h.kind == kind) and (name is None or h.name == name)]
        return Page[HistoryEntry](items=items[:limit])


class MemorySecretStore:
    """Records values by version; ``current`` is what ECR would read."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, str]] = {}
        self.current: dict[str, str] = {}
        self.deleted: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.replicas: dict[str, list[str]] = {}
        """Secret name -> the Regions of its replicas (removed when the secret is deleted)."""

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail:
            raise self.fail.pop(op)

    def stage(self, name: str, secret_string: str, *, request_token: str) -> StagedSecret:
        self._maybe_fail("stage")
        created = name not in self.versions
        restored = name in self.deleted  # scheduled for deletion: restored, as the adapter does
        if restored:
            self.deleted.remove(name)
        self.versions.setdefault(name, {})[request_token] = secret_string
        if created:
            self.current[name] = request_token
        return StagedSecret(
            name=name,
            arn=f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf",
            version_id=request_token,
            created=created,
            restored=restored,
        )

    def promote(self, staged: StagedSecret) -> None:
        self._maybe_fail("promote")
        self.current[staged.name] = staged.version_id

    def discard(self, staged: StagedSecret) -> None:
        self.versions[staged.name].pop(staged.version_id, None)
        if staged.created:
            self.versions.pop(staged.name)
            self.current.pop(staged.name, None)
        if staged.restored:
            self.deleted.append(staged.name)

    def delete(self, name: str) -> bool:
        self._maybe_fail("delete")
        if name in self.deleted:
            return False
        self.replicas.pop(name, None)  # as the adapter does: replicas first, then the primary
        self.deleted.append(name)
        return True

    def replica_regions(self, name: str) -> tuple[str, ...]:
        self._maybe_fail("replica_regions")
        return tuple(sorted(self.replicas.get(name, ())))

    def restore(self, name: str) -> None:
        if name in self.deleted:
            self.deleted.remove(name)

    def existing_arn(self, name: str) -> str | None:
        if name in self.versions and name not in self.deleted:
            return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"
        return None

    def value(self, name: str) -> Any:
        return self.versions[name][self.current[name]]


__all__ = ["MemorySecretStore", "MemoryStateStore", "TerminalError"]

"""An in-memory fake of the status port (style.md: prefer fakes over mocks)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

from ecrcache.engine.plan import OwnedKind
from ecrcache.models.forwarder import ForwarderStatus, ForwarderStatusRecord
from ecrcache.models.observed import AppliedFingerprints, Ownership
from ecrcache.models.region_records import RegionState, RegionStatus
from ecrcache.models.status import (
    ReconcileRun,
    RegionStamp,
    RuleStatus,
    RuleStatusRecord,
    UpstreamHealth,
)
from tests.fakes.shard_store import MemoryShardRecords


class MemoryStatusStore(MemoryShardRecords):
    """Same contract as ``DynamoDbStatusStore``: ownership and applied fingerprints per Region, rule
    statuses, a lease per Region (free, expired or already the caller's), run records.

    ``writes`` logs every call that changes something, as ``(method, region or run id, ...)``;
    ``fail`` maps a method name to the error its next call raises.
    """

    def __init__(self) -> None:
        super().__init__()
        self.owned: dict[str, dict[OwnedKind, set[str]]] = {}
        self.fingerprints: dict[str, dict[str, AppliedFingerprints]] = {}
        self.statuses: dict[tuple[str, str], RuleStatus] = {}
        self.versions: dict[str, int] = {}
        self.stamps: dict[str, RegionStamp] = {}
        self.upstream: dict[tuple[str, str], UpstreamHealth] = {}
        self.leases: dict[str, tuple[str, datetime]] = {}
        self.runs: dict[str, ReconcileRun] = {}
        self.requests: list[tuple[str, bool, str]] = []
        self.forwarders: dict[str, ForwarderStatus] = {}
        self.writes: list[tuple[str, ...]] = []
        self.fail: dict[str, Exception] = {}
        self.digests: dict[str, str] = {}
        """Region -> its quiet digest (its writes are logged in ``digest_writes``, not ``writes``: a cache of the
        Region's quiet state, not a change of what ecrcache records about ECR)."""
        self.digest_writes: list[str] = []
        self.generations: dict[str, int] = {}

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail:
            raise self.fail.pop(method)

    # ownership and applied fingerprints

    def ownership(self, region: str) -> Ownership:
        self._maybe_fail("ownership")
        owned = self.owned.get(region, {})
        return Ownership(
            rules=frozenset(owned.get("rule", ())),
            templates=frozenset(owned.get("template", ())),
            exclusions=frozenset(owned.get("exclusion", ())),
        )

    def record_owned(self, region: str, kind: OwnedKind, prefix: str) -> None:
        self.writes.append(("record_owned", region, kind, prefix))
        self.owned.setdefault(region, {}).setdefault(kind, set()).add(prefix)

    def forget_owned(self, region: str, kind: OwnedKind, prefix: str) -> None:
        self.writes.append(("forget_owned", region, kind, prefix))
        self.owned.get(region, {}).get(kind, set()).discard(prefix)

    def applied(self, region: str) -> dict[str, AppliedFingerprints]:
        self._maybe_fail("applied")
        return dict(self.fingerprints.get(region, {}))

    def record_applied(self, region: str, items: Mapping[str, AppliedFingerprints]) -> None:
        self.writes.append(("record_applied", region, *sorted(items)))
        if items:
            self._drop_digest(region)
        self.fingerprints.setdefault(region, {}).update(items)

    def forget_applied(self, region: str, names: Iterable[str]) -> None:
        names = list(names)
        self.writes.append(("forget_applied", region, *names))
        if names:
            self._drop_digest(region)
        for name in names:
            self.fingerprints.get(region, {}).pop(name, None)

    def _drop_digest(self, region: str) -> None:
        """As the table: the digest goes and the generation moves on, before and after the write (by 2)."""
        self.digests.pop(region, None)
        self.generations[region] = self.generations.get(region, 0) + 2

    def record_digest(self, region: str, digest: str, *, generation: int) -> bool:
        self._maybe_fail("record_digest")
        if generation != self.generations.get(region, 0) or region in self.markers or region not in self.versions:
            return False
        self.digest_writes.append(region)
        self.digests[region] = digest
        return True

    # rule status

    def put_rule_status(self, region: str, prefix: str, status: RuleStatus) -> None:
        """Like the table: the upstream health is not part of this write (``record_upstream``'s)."""
        self._maybe_fail("put_rule_status")
        self.writes.append(("put_rule_status", region, prefix))
        self.statuses[region, prefix] = status.with_upstream_health(None)

    def rule_status(self, region: str, prefix: str) -> RuleStatus | None:
        self._maybe_fail("rule_status")
        return self._status(region, prefix)

    def _status(self, region: str, prefix: str) -> RuleStatus | None:
        status = self.statuses.get((region, prefix))
        if status is None:
            return None
        stamp = self.stamps.get(region)
        status = stamp.stamp(status) if stamp is not None else status
        return status.with_upstream_health(self.upstream.get((region, prefix)))

    def region_status(self, region: str) -> RegionStatus:
        self._maybe_fail("rule_status")
        return self._region(region)

    def _region(self, region: str) -> RegionStatus:
        return RegionStatus(
            region=region,
            statuses={p: s for (r, p) in sorted(self.statuses) if r == region and (s := self._status(r, p))},
            ownership=self.ownership(region),
            version=self.versions.get(region, 0),
            stamp=self.stamps.get(region),
            forwarder=self.forwarders.get(region),
            fanout=self.markers.get(region),
            digest=self.digests.get(region),
            generation=self.generations.get(region, 0),
        )

    def read_region(self, region: str, *, applied: bool = True) -> RegionState:
        self._maybe_fail("read_region")
        if applied:
            self._maybe_fail("applied")
        status = self._region(region)
        others = {r: self._region(r) for r in sorted({*(r for r, _ in self.statuses), *self.forwarders} - {region})}
        found = self.applied(region) if applied else {}
        return RegionState(status=status, applied=found, others=others, applied_read=applied)

    def write_statuses(
        self,
        region: str,
        put: Mapping[str, RuleStatus],
        drop: Collection[str] = (),
        *,
        version: int | None,
        stamp: RegionStamp | None = None,
    ) -> bool:
        self._maybe_fail("write_statuses")
        if version is not None and version != self.versions.get(region, 0):
            return False
        self.writes.append(("write_statuses", region, *sorted(put), *(f"-{p}" for p in sorted(drop))))
        for prefix in drop:
            self.statuses.pop((region, prefix), None)
            self.upstream.pop((region, prefix), None)
        for prefix, status in put.items():
            self.statuses[region, prefix] = status.with_upstream_health(None)
        if stamp is not None:
            self.stamps[region] = stamp
        self.versions[region] = self.versions.get(region, 0) + 1
        return True

    def finish_run(self, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> None:
        """As the store: a stamp moves only forward, and only onto a Region with a status write."""
        self.put_run(run)
        for region, stamp in stamps.items():
            old = self.stamps.get(region)
            if region in self.versions and (old is None or (old.revision, old.at) <= (stamp.revision, stamp.at)):
                self.stamps[region] = stamp

    def migrate_legacy(self, regions: Iterable[str] = ()) -> int:
        return 0

    def all_status(self) -> list[RuleStatusRecord]:
        return [
            RuleStatusRecord(region=region, prefix=prefix, status=status)
            for (region, prefix) in sorted(self.statuses)
            if (status := self._status(region, prefix)) is not None
        ]

    def record_upstream(self, region: str, prefix: str, health: UpstreamHealth) -> bool:
        self._maybe_fail("record_upstream")
        if (region, prefix) not in self.statuses:
            return False
        recorded = self.upstream.get((region, prefix))
        if recorded is not None and recorded.check.observed_at > health.check.observed_at:
            return False
        self.writes.append(("record_upstream", region, prefix))
        self.upstream[region, prefix] = health
        return True

    def delete_rule_status(self, region: str, prefix: str) -> None:
        self.writes.append(("delete_rule_status", region, prefix))
        self.statuses.pop((region, prefix), None)
        self.upstream.pop((region, prefix), None)

    # lease

    def put_forwarder_status(self, region: str, status: ForwarderStatus) -> None:
        self._maybe_fail("put_forwarder_status")
        self.writes.append(("put_forwarder_status", region))
        self.forwarders[region] = status

    def forwarder_statuses(self) -> list[ForwarderStatusRecord]:
        self._maybe_fail("forwarder_statuses")
        return [ForwarderStatusRecord(region=r, status=s) for r, s in sorted(self.forwarders.items())]

    def status_overview(self) -> tuple[list[RuleStatusRecord], list[ForwarderStatusRecord]]:
        return self.all_status(), self.forwarder_statuses()

    def delete_forwarder_status(self, region: str) -> None:
        self.writes.append(("delete_forwarder_status", region))
        self.forwarders.pop(region, None)

    def acquire_lease(self, region: str, owner: str, *, now: datetime, ttl_seconds: int) -> bool:
        self._maybe_fail("acquire_lease")
        held = self.leases.get(region)
        if held is not None and held[0] != owner and held[1] >= now:
            return False
        self.leases[region] = (owner, now + timedelta(seconds=ttl_seconds))
        return True

    def renew_lease(self, region: str, owner: str, *, now: datetime, ttl_seconds: int) -> bool:
        held = self.leases.get(region)
        if held is None or held[0] != owner:
            return False
        self.leases[region] = (owner, now + timedelta(seconds=ttl_seconds))
        return True

    def release_lease(self, region: str, owner: str) -> None:
        held = self.leases.get(region)
        if held is not None and held[0] == owner:
            del self.leases[region]

    # runs

    def put_run(self, run: ReconcileRun) -> None:
        self.writes.append(("put_run", run.run_id))
        self.runs[run.run_id] = run

    def request_reconcile(self, run: ReconcileRun, *, deep: bool, requested_by: str) -> None:
        self.put_run(run)
        self.requests.append((run.run_id, deep, requested_by))

    def get_run(self, run_id: str) -> ReconcileRun | None:
        run = self.runs.get(run_id)
        return self._counted(run) if run is not None else None

    def latest_runs(self, limit: int) -> list[ReconcileRun]:
        newest = sorted(self.runs.values(), key=lambda r: (r.started_at, r.run_id), reverse=True)
        return newest[:limit]


__all__ = ["MemoryStatusStore"]

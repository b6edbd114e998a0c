"""The reconciler's event-forwarder phase: one Region's forwarder, planned, applied, verified, recorded.

Run by :class:`~ecrcache.services.reconcile.ReconcileService` for each Region other than the stack's, under
that Region's lease, after the Region's ECR work (whatever became of it): a forwarder that cannot be read or
written never stops the Region's rules, and the Region's failure never stops its forwarder. What happened is
recorded on the Region's forwarder status (``GET /v1/status``: ``forwarders``), counted in the run's summary
(``ReconcileFailed`` / ``ReconcileActions`` metrics) and logged; it does not make an event-triggered run raise
for a retry (the event was about ECR, which was reconciled; the next resync tries the forwarder again).

A fast resync's quiet path (no lease, no write) skips a Region only when its forwarder is in sync too
(:meth:`ForwarderPhase.in_sync`: a Synced record, read with every Region's statuses, and ``DescribeRule`` +
``ListTargetsByRule`` finding nothing to change); otherwise the Region goes to its lease and the forwarder is
converged there.

Why forwarders exist, what they match and why the controller makes them: :mod:`ecrcache.engine.forwarders`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ecrcache.engine.forwarders import Forwarding, forwarder_status, plan_forwarder
from ecrcache.engine.plan import ActionKind
from ecrcache.engine.status import RegionSummary
from ecrcache.errors import EcrcacheError
from ecrcache.observability import logger

if TYPE_CHECKING:
    from ecrcache.engine.plan import PlannedAction
    from ecrcache.models.forwarder import ForwarderStatus
    from ecrcache.ports import ForwarderProbe, ForwarderReader, ForwarderRegistry, StatusStore

__all__ = ["SWEEP_THREADS", "ForwarderOutcome", "ForwarderPhase", "ForwarderPlanner", "ForwarderSweep", "forwarding"]

SWEEP_THREADS = 8
"""The deep run's sweep asks this many Regions at once (``DescribeRule``, a few seconds at worst each)."""


@dataclass(slots=True)
class ForwarderOutcome:
    """What one Region's forwarder phase did: its line in the run summary and its error (if any)."""

    summary: RegionSummary | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ForwarderPlanner:
    """Read only: the forwarder action a Region needs (``GET /v1/plan`` and the reconciler)."""

    forwarding: Forwarding
    reader: Callable[[str], ForwarderReader]

    def plan(self, region: str, *, wanted: bool) -> PlannedAction | None:
        """Raises :class:`EcrcacheError` when EventBridge cannot be read."""
        found = self.reader(region).observe_forwarder(self.forwarding.rule_name)
        return plan_forwarder(region, self.forwarding, wanted=wanted, found=found)


@dataclass(frozen=True, slots=True)
class ForwarderSweep:
    """Where the deep run looks for forwarders nothing else points it to: every Region of the partition
    (``regions``, from botocore's endpoint data) asked with ``probe`` (``DescribeRule`` only, short timeouts).

    Why: a Region is reconciled while a rule names it or it has a forwarder status record; a forwarder whose
    record was never written or was lost (the Lambda died between ``PutRule`` and the record, the item was
    deleted) would otherwise keep forwarding for good once no rule names its Region."""

    regions: Callable[[], Sequence[str]]
    probe: Callable[[str], ForwarderProbe]


class ForwarderPhase:
    """Converges one Region's forwarder and records its status (the caller holds the Region's lease)."""

    def __init__(
        self,
        *,
        forwarding: Forwarding,
        registry: Callable[[str], ForwarderRegistry],
        status: StatusStore,
        clock: Callable[[], datetime],
        sweep: ForwarderSweep | None = None,
    ) -> None:
        self.forwarding = forwarding
        self.planner = ForwarderPlanner(forwarding, registry)
        self.registry = registry
        self.status = status
        self.clock = clock
        self.sweep = sweep
        """Finds forwarders left in Regions no rule names and no record remembers (deep runs; ``None``: never)."""

    def strays(self, visited: Collection[str]) -> tuple[list[str], list[str]]:
        """The Regions of the partition, other than ``visited`` and the stack's, that hold the forwarding rule;
        and an error per Region that could not be asked (a Region not enabled in the account is not an error: it
        holds nothing). The Regions are asked in parallel (:data:`SWEEP_THREADS`), each with the probe's short
        timeouts, so the sweep costs seconds of a run."""
        if self.sweep is None:
            return [], []
        skip = {*visited, self.forwarding.home_region}
        regions = [r for r in self.sweep.regions() if r not in skip]
        name = self.forwarding.rule_name
        # The clients are made here, one after the other: boto3's default session is not thread safe (its
        # clients are), "Multithreading or multiprocessing with resources", boto3 guide.
        probes = [self.sweep.probe(region) for region in regions]

        def ask(region: str, probe: ForwarderProbe) -> bool | str:
            try:
                return probe.forwarder_exists(name)
            except EcrcacheError as exc:
                return f"{region}: event forwarder not looked for: {exc.message}"

        with ThreadPoolExecutor(max_workers=SWEEP_THREADS) as pool:
            answers = list(pool.map(ask, regions, probes))
        found = [region for region, answer in zip(regions, answers, strict=True) if answer is True]
        errors = [answer for answer in answers if isinstance(answer, str)]
        return found, errors

    def in_sync(self, region: str, *, wanted: bool, record: ForwarderStatus | None) -> bool:
        """Whether the Region's forwarder needs nothing (a reconcile's quiet path: no lease, no write).

        None is kept in the stack's Region; a Region that wants none and has no record has nothing made there to
        keep or remove (a forwarder left without a record is the deep run's sweep's, :meth:`strays`). Otherwise
        it is in sync only when it wants one, its record says Synced, and EventBridge holds it as planned
        (``DescribeRule`` + ``ListTargetsByRule``: reads only). Anything else (no record, a failed or
        ``Creating`` record, a forwarder to remove, drift) sends the Region to its lease, where it is
        converged. The record is not rewritten when in sync (its ``last_reconciled_at`` stays the one of the
        last run that converged it). Raises :class:`EcrcacheError` when EventBridge cannot be read."""
        if region == self.forwarding.home_region or (not wanted and record is None):
            return True
        if not wanted or record is None or not record.synced:
            return False
        return self.planner.plan(region, wanted=True) is None

    def converge_recorded(self, region: str, *, wanted: bool, run_id: str) -> ForwarderOutcome:
        """:meth:`converge` from the Region's record as it is now (read under the lease: another run may have
        changed it since this run's first read); nothing in the stack's Region. Never raises."""
        if region == self.forwarding.home_region:
            return ForwarderOutcome()
        try:
            current = self.status.region_status(region).forwarder
        except EcrcacheError as exc:
            return ForwarderOutcome(errors=[f"{region}: event forwarder not reconciled: {exc.message}"])
        return self.converge(region, wanted=wanted, run_id=run_id, current=current)

    def sweep_strays(
        self, visited: Collection[str], run_id: str, *, lease_seconds: int
    ) -> tuple[list[ForwarderOutcome], list[str]]:
        """Deletes the forwarders :meth:`strays` finds (no rule names their Region), each under its Region's
        lease; the outcomes (the sweep's errors among them) and the Regions whose lease another run held."""
        found, errors = self.strays(visited)
        outcomes = [ForwarderOutcome(errors=errors)]
        busy: list[str] = []
        for region in found:
            if not self.status.acquire_lease(region, run_id, now=self.clock(), ttl_seconds=lease_seconds):
                busy.append(region)
                continue
            try:
                outcomes.append(self.converge_recorded(region, wanted=False, run_id=run_id))
            finally:
                self.status.release_lease(region, run_id)
        return outcomes, busy

    def converge(self, region: str, *, wanted: bool, run_id: str, current: ForwarderStatus | None) -> ForwarderOutcome:
        """Plan, apply, verify; record the outcome on the Region's forwarder status (deleted once no forwarder
        is wanted there and none is left)."""
        run = _Run(region, run_id, current)
        action: PlannedAction | None = None
        try:
            action = self.planner.plan(region, wanted=wanted)
            if action is not None and action.kind is ActionKind.CREATE_FORWARDER:
                self._record_creating(run)
            applied = None if action is None else self.registry(region).apply(action)
            if action is not None and applied is not None and not applied.ok:
                return self._failed(run, action, applied.code or "Failed", applied.message or "")
            left = self.planner.plan(region, wanted=wanted) if action is not None else None
        except EcrcacheError as exc:
            return self._failed(run, action, exc.reason or "ReadFailed", exc.message)
        if action is not None and left is not None:
            return self._failed(run, left, "NotConverged", f"still differs after {action.kind.value}: {left.reason}")
        summary = RegionSummary(applied=((action.kind, 1),)) if action is not None else None
        try:
            self._record_ok(run, wanted=wanted)
        except EcrcacheError as exc:
            return ForwarderOutcome(summary, [f"{region}: event forwarder status not recorded: {exc.message}"])
        return ForwarderOutcome(summary)

    def _record_creating(self, run: _Run) -> None:
        """The record before the rule: it keeps the Region reconciled until its forwarder is gone, so a forwarder
        must never exist without one. Raises when it cannot be written (nothing is created then)."""
        status = forwarder_status(
            run.current,
            self.forwarding.rule_name,
            synced=False,
            reason="Creating",
            message=f"the forwarding rule of {run.region} is being created",
            now=self.clock(),
            run_id=run.run_id,
        )
        try:
            self.status.put_forwarder_status(run.region, status)
        except EcrcacheError as exc:
            raise EcrcacheError(
                f"status not recorded, so the forwarder was not created: {exc.message}", reason=exc.reason
            ) from exc
        run.current = status

    def _record_ok(self, run: _Run, *, wanted: bool) -> None:
        if not wanted:
            if run.current is not None:
                self.status.delete_forwarder_status(run.region)
            return
        status = forwarder_status(
            run.current,
            self.forwarding.rule_name,
            synced=True,
            reason="Forwarding",
            message=f"ECR events of {run.region} are forwarded to the default bus of {self.forwarding.home_region}",
            now=self.clock(),
            run_id=run.run_id,
        )
        self.status.put_forwarder_status(run.region, status)

    def _failed(self, run: _Run, action: PlannedAction | None, code: str, message: str) -> ForwarderOutcome:
        what = action.kind.value if action is not None else "read"
        logger.warning(
            "event forwarder failed",
            extra={"region": run.region, "kind": what, "code": code, "forwarder": self.forwarding.rule_name},
        )
        errors = [f"{run.region}: event forwarder ({what}): {code}: {message}"]
        status = forwarder_status(
            run.current,
            self.forwarding.rule_name,
            synced=False,
            reason=code,
            message=message,
            now=self.clock(),
            run_id=run.run_id,
        )
        try:  # the record also keeps the Region in the runs until its forwarder is gone
            self.status.put_forwarder_status(run.region, status)
        except EcrcacheError as exc:
            errors.append(f"{run.region}: event forwarder status not recorded: {exc.message}")
        return ForwarderOutcome(RegionSummary(failed_actions=1), errors)


@dataclass(slots=True)
class _Run:
    """One Region's phase: where, in which run, and the status it had."""

    region: str
    run_id: str
    current: ForwarderStatus | None


def forwarding(*, rule_name: str, role_arn: str, ignored_roles: Sequence[str], home_region: str) -> Forwarding | None:
    """The stack's forwarding settings (``None`` when off: no rule name configured)."""
    if not rule_name:
        return None
    return Forwarding(
        rule_name=rule_name, role_arn=role_arn, home_region=home_region, ignored_roles=tuple(ignored_roles)
    )

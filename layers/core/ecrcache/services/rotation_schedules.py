"""The reconciler's rotation-schedule phase: each credential's ``rotation`` schedule as its secret's.

``rotation: {every_days: N}`` (or ``schedule``) becomes the secret's Secrets Manager rotation schedule, with the
stack's rotation function; a credential that no longer has one gets it removed. Planned by
:func:`ecrcache.engine.rotation_schedule.plan_schedules` from the desired credentials and ``DescribeSecret``, so
a schedule changed by hand (console, CLI) is put back by the next run, and the API's ``PUT`` only writes the
desired state. A failed call never stops the run: it is one of the run's errors, and the next run tries again.

The phase reads every secret first and plans, but a rotation may start meanwhile (``POST .../rotations``), and
``CancelRotateSecret`` cancels one in progress ("can leave the VersionStage labels in an unexpected state",
CancelRotateSecret API reference) while ``RotateSecret`` is refused during one: the secret is read again
(``DescribeSecret``) right before each call, which is skipped when a rotation is in progress. The reconciler runs the
phase under the lease of the stack's Region (:class:`ecrcache.services.reconcile.ReconcileService`), so two runs
never do it at once. With a ``sweeper``, each secret read is also swept of an abandoned rotation's labels
(:mod:`ecrcache.services.rotation_sweeper`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ecrcache.engine.rotation_schedule import ScheduleChange, plan_schedules
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential import CredentialSpec, secret_name
from ecrcache.observability import logger

if TYPE_CHECKING:
    from ecrcache.engine.rotation_schedule import ObservedRotation, ScheduleAction
    from ecrcache.models.records import Snapshot
    from ecrcache.ports import RotationScheduler
    from ecrcache.services.rotation_sweeper import RotationSweeper

__all__ = ["RotationSchedules", "ScheduleOutcome"]


@dataclass(slots=True)
class ScheduleOutcome:
    """What the phase did (each change, described), what waits for a rotation in progress, and its errors."""

    changed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class RotationSchedules:
    def __init__(
        self, *, secrets: RotationScheduler, function_arn: str, sweeper: RotationSweeper | None = None
    ) -> None:
        """``function_arn`` empty: the stack has no rotation function; the phase does nothing. ``sweeper``: sweep
        abandoned rotations off the secrets read (``None``: not at all)."""
        self.secrets = secrets
        self.function_arn = function_arn
        self.sweeper = sweeper

    def converge(self, snapshot: Snapshot) -> ScheduleOutcome:
        outcome = ScheduleOutcome()
        if not self.function_arn:
            return outcome
        wanted = {
            name: CredentialSpec.model_validate(stored.spec).rotation.rotation_schedule()
            for name, stored in sorted(snapshot.credentials.items())
        }
        observed = self._observe(wanted, outcome)
        actions, outcome.waiting = plan_schedules(wanted, observed, function_arn=self.function_arn)
        for credential in outcome.waiting:
            logger.info(
                "rotation schedule left to the next run: a rotation is in progress", extra={"credential": credential}
            )
        for action in actions:
            self._apply(action, outcome)
        return outcome

    def _observe(self, wanted: dict[str, str | None], outcome: ScheduleOutcome) -> dict[str, ObservedRotation]:
        observed: dict[str, ObservedRotation] = {}
        for name in wanted:
            try:
                seen = self.secrets.observe(secret_name(name))
            except EcrcacheError as exc:
                outcome.errors.append(f"credential {name}: rotation schedule not read: {exc.message}")
                continue
            if seen is not None:
                observed[name] = seen
                self._sweep(name, seen, outcome)
        return observed

    def _sweep(self, name: str, seen: ObservedRotation, outcome: ScheduleOutcome) -> None:
        if self.sweeper is None or seen.versions is None:
            return
        swept = self.sweeper.sweep(name, seen.versions)
        outcome.changed.extend(swept.changed)
        outcome.errors.extend(swept.errors)

    def _in_progress(self, action: ScheduleAction, outcome: ScheduleOutcome) -> bool:
        """Read the secret again right before the call: a rotation started since the phase read it is left alone."""
        seen = self.secrets.observe(action.secret_arn)
        if seen is not None and not seen.in_progress:
            return False
        outcome.waiting.append(action.credential)
        logger.info(
            "rotation schedule left to the next run: a rotation started meanwhile (or the secret is gone)",
            extra={"credential": action.credential},
        )
        return True

    def _apply(self, action: ScheduleAction, outcome: ScheduleOutcome) -> None:
        try:
            if self._in_progress(action, outcome):
                return
            if action.change is ScheduleChange.SET and action.schedule is not None:
                self.secrets.set_schedule(action.secret_arn, schedule=action.schedule, function_arn=self.function_arn)
            else:
                self.secrets.cancel(action.secret_arn)
        except EcrcacheError as exc:
            outcome.errors.append(f"{action.describe()} failed: {exc.message}")
            logger.warning(
                "rotation schedule not converged", extra={"credential": action.credential, "error": exc.message}
            )
            return
        outcome.changed.append(action.describe())
        logger.info("rotation schedule converged", extra={"credential": action.credential, "change": action.change})

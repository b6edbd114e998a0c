"""The reconciler's sweeper of abandoned rotations: what would otherwise block a credential's rotations for good.

Two things can be left on a credential secret by a rotation nobody will finish:

* ``AWSPENDING`` on a version other than ``AWSCURRENT``. While it is there, "any later invocation of RotateSecret
  assumes that a previous rotation request is still in progress and returns an error" (RotateSecret API
  reference): every later ``POST .../rotations`` answers 409 and the schedule's rotations are refused. The rotation
  function keeps it on purpose after a failure that should clear by itself (so that Secrets Manager's retries can
  succeed), and cannot take it off when ``UpdateSecretVersionStage`` fails, or when it is never called again (a
  cancelled rotation, Secrets Manager's retries exhausted).
* A token staged through the API under ``ecrcache-staged-<rotation id>`` whose rotation never copied it: the API
  function timing out between ``PutSecretValue`` and ``RotateSecret``, the rotation function's guard refusing at
  ``createSecret``, a rotation cancelled before ``createSecret``.

For each credential secret the rotation-schedule phase reads (``DescribeSecret``), the sweeper looks at the rotation
record of the version ``AWSPENDING`` is on, and of each staged label's rotation id: a rotation whose record has an
outcome has ended, and one whose record has not moved for :data:`ABANDON_AFTER` has been given up by Secrets
Manager. Its label comes off; a record without an outcome is given ``failed`` ("abandoned: ..."), never replacing
an outcome written meanwhile. ``AWSPENDING`` on a version without a record is left alone: it is Secrets Manager's
test of the rotation configuration (``RotateImmediately=false`` "creates an AWSPENDING version of the secret and
then removes it", RotateSecret API reference) or a scheduled rotation whose first step has not run yet. A staged
label without a record is taken off: the API records a rotation before it stages its token, and the record expires
only after 90 days.

A failed call is one of the run's errors; the next run tries again. No value is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from ecrcache.errors import EcrcacheError
from ecrcache.models.rotation import (
    AWSPENDING,
    STAGED_LABEL_PREFIX,
    RotationKey,
    RotationOutcome,
    rotation_in_progress,
)
from ecrcache.observability import logger, metrics

if TYPE_CHECKING:
    from ecrcache.models.rotation import (
        RotationRecord,
        SecretVersions,
    )
    from ecrcache.ports import RotationScheduler, RotationStore

__all__ = ["ABANDON_AFTER", "RotationSweeper", "Swept"]

ABANDON_AFTER: Final = timedelta(hours=1)
"""How long a rotation's record may stay still before the rotation is taken as abandoned. A live rotation records
every step it runs, and each run of a step lasts at most the rotation function's timeout (120 s, template.yaml):
the four steps take at most 8 minutes an attempt. Secrets Manager retries a failed rotation a few times (the count
and the spacing are not documented; reported as a handful of attempts within minutes); an hour is several times
the longest retried rotation, and short enough that a credential is not kept from rotating for long."""


@dataclass(slots=True)
class Swept:
    """What a sweep changed (described) and its errors."""

    changed: list[str]
    errors: list[str]


class RotationSweeper:
    """Take an abandoned rotation's labels off a credential secret, and record it ``failed``."""

    def __init__(self, *, secrets: RotationScheduler, records: RotationStore, clock: Callable[[], datetime]) -> None:
        self.secrets = secrets
        self.records = records
        self.clock = clock

    def sweep(self, credential: str, versions: SecretVersions) -> Swept:
        swept = Swept([], [])
        pending = rotation_in_progress(versions)
        if pending is not None:
            self._sweep(credential, versions, pending, AWSPENDING, swept, missing_is_abandoned=False)
        for version, labels in sorted(versions.stages.items()):
            for label in sorted(labels):
                if label.startswith(STAGED_LABEL_PREFIX):
                    self._sweep(credential, versions, version, label, swept, missing_is_abandoned=True)
        return swept

    def _sweep(
        self,
        credential: str,
        versions: SecretVersions,
        version: str,
        label: str,
        swept: Swept,
        *,
        missing_is_abandoned: bool,
    ) -> None:
        rotation_id = version if label == AWSPENDING else label.removeprefix(STAGED_LABEL_PREFIX)
        try:
            record = self.records.get(credential, rotation_id)
        except EcrcacheError as exc:
            swept.errors.append(f"credential {credential}: rotation {rotation_id} not checked: {exc.message}")
            return
        why = self._abandoned(record, missing_is_abandoned=missing_is_abandoned)
        if why is None:
            return
        try:
            self.secrets.remove_label(versions.arn, version=version, label=label)
        except EcrcacheError as exc:
            swept.errors.append(f"credential {credential}: {label} not taken off version {version}: {exc.message}")
            return
        done = f"credential {credential}: {label} taken off version {version} (rotation {rotation_id} {why})"
        swept.changed.append(done)
        metrics.add_metric(name="RotationSwept", unit="Count", value=1)
        logger.warning("abandoned rotation swept", extra={"credential": credential, "rotation": rotation_id})
        if record is not None and record.outcome is None:
            self._record_abandoned(RotationKey(credential, rotation_id, versions.arn), label, version, why)

    def _abandoned(self, record: RotationRecord | None, *, missing_is_abandoned: bool) -> str | None:
        """Why the rotation is over, or ``None``: it may still be running (or, without a record, not ours to end)."""
        if record is None:
            return "has no record" if missing_is_abandoned else None
        if record.outcome is not None:
            return f"ended {record.outcome.value}"
        if self.clock() - record.updated_at > ABANDON_AFTER:
            return f"recorded nothing since {record.updated_at.isoformat()}, more than {ABANDON_AFTER} ago"
        return None

    def _record_abandoned(self, key: RotationKey, label: str, version: str, why: str) -> None:
        message = (
            f"abandoned: the rotation {why}, so Secrets Manager's retries are over; the reconciler took {label} off "
            f"version {version} (it would block the next rotation); the sweep did not change AWSCURRENT. Start a new "
            "rotation"
        )
        try:
            self.records.record_outcome(
                key, RotationOutcome.FAILED, at=self.clock(), message=message, keep_recorded=True
            )
        except EcrcacheError as exc:
            logger.error("a rotation record could not be written", extra={"error": exc.message})

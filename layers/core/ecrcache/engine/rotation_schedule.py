"""Which credential secrets need their Secrets Manager rotation schedule set or removed (pure).

A credential with ``rotation: {every_days: N}`` (or a ``schedule``) is rotated by Secrets Manager on that
schedule: the secret's ``RotationRules.ScheduleExpression`` and ``RotationLambdaARN`` (the stack's rotation
function). The reconciler compares what each credential wants with what ``DescribeSecret`` says:

* wanted, and the secret is not rotation-enabled, or has another schedule or another function -> ``set``
  (``RotateSecret`` with ``RotateImmediately=false``: the schedule only, no rotation now);
* not wanted, and the secret has a schedule -> ``cancel`` (``CancelRotateSecret``). A secret enabled for
  rotation without a schedule (a rotation started through the API configures the function) rotates only when
  asked: nothing to remove;
* nothing is changed while a rotation is in progress (``AWSPENDING`` on a version other than ``AWSCURRENT``):
  ``RotateSecret`` would be refused, and ``CancelRotateSecret`` would cancel that rotation ("can leave the
  VersionStage labels in an unexpected state", CancelRotateSecret API reference). The next run does it; the phase
  reads the secret again right before each call (:mod:`ecrcache.services.rotation_schedules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecrcache.models.rotation import SecretVersions

__all__ = ["ObservedRotation", "ScheduleAction", "ScheduleChange", "plan_schedules"]


@dataclass(frozen=True, slots=True)
class ObservedRotation:
    """A credential secret's rotation configuration, as ``DescribeSecret`` gives it (``schedule`` normalised as the
    credential's is: ``AutomaticallyAfterDays: N`` is ``rate(N days)``)."""

    arn: str
    enabled: bool
    schedule: str | None
    function_arn: str | None
    in_progress: bool = False
    versions: SecretVersions | None = None
    """The versions and their staging labels (the reconciler's sweeper of abandoned rotations reads them)."""


class ScheduleChange(StrEnum):
    SET = "set"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class ScheduleAction:
    credential: str
    secret_arn: str
    change: ScheduleChange
    schedule: str | None = None

    def describe(self) -> str:
        if self.change is ScheduleChange.SET:
            return f"credential {self.credential}: rotation schedule set to {self.schedule}"
        return f"credential {self.credential}: rotation schedule removed"


def plan_schedules(
    wanted: Mapping[str, str | None], observed: Mapping[str, ObservedRotation], *, function_arn: str
) -> tuple[list[ScheduleAction], list[str]]:
    """The changes to make, and the credentials left as they are because a rotation is in progress (named).
    ``wanted``: each credential's schedule (``None``: none); ``observed``: the secrets that exist."""
    actions: list[ScheduleAction] = []
    waiting: list[str] = []
    for credential in sorted(wanted.keys() & observed.keys()):
        action = _change(credential, wanted[credential], observed[credential], function_arn)
        if action is None:
            continue
        if observed[credential].in_progress:
            waiting.append(credential)
            continue
        actions.append(action)
    return actions, waiting


def _change(credential: str, schedule: str | None, seen: ObservedRotation, function_arn: str) -> ScheduleAction | None:
    if schedule is None:
        if seen.enabled and seen.schedule is not None:
            return ScheduleAction(credential, seen.arn, ScheduleChange.CANCEL)
        return None
    if seen.enabled and seen.schedule == schedule and seen.function_arn == function_arn:
        return None
    return ScheduleAction(credential, seen.arn, ScheduleChange.SET, schedule)

"""What a rotation's outcome says of the credential's health (the rotation function's collaborator).

A rotation tries a token at the upstream (``testSecret``) and validates every rule using it in ECR
(``finishSecret``): that is at least what the daily check does (:mod:`ecrcache.services.credential_health`), so
its outcome is recorded on the credential's health at once instead of waiting for the next daily check:

* **promoted** -- the new token is current and validated: ``Healthy``, ``checked_at`` = ``rotated_at`` = now,
  message ``rotated and validated``, any mark cleared (a credential error seen after the promotion, newer
  evidence, stands). A credential error older than ``rotated_at`` (a pull-through failure redelivered, a warm
  finishing late) is about the replaced token and marks nothing. ``Expiring`` is left to the next daily check:
  the new token's ``expires_at`` is the desired spec's, which the operator may not have updated yet.
* **refused** at ``testSecret`` with the upstream refusing the credential (probe status ``credential``) on
  the token that is ``AWSCURRENT`` -- a scheduled re-test (``rotation: {every_days: N}`` stages the current token
  again), or an operator staging the current token -- marks the credential ``Invalid`` as a credential error
  seen elsewhere does (:class:`~ecrcache.services.credential_health.CredentialMarks`), with the probe's time as
  the evidence's. A refused *new* token says nothing of the current one: nothing is marked.

The probe results are seen through :meth:`RotationHealth.watching` (the service's probe, wrapped): the rotation
service reports only the outcome. Each change is announced (``Credential Health Changed``). Failures are
logged and counted, never raised: the rotation's outcome does not depend on them, and the daily check records
the health anyway. No token is kept beyond the step, logged or written: the logins seen are compared with the
current one, never shown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ecrcache.engine.credential_errors import CredentialError
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential import UpstreamLogin
from ecrcache.models.credential_health import CredentialHealth, HealthState
from ecrcache.models.rotation import RotationOutcome, RotationStep
from ecrcache.models.upstream_probe import ProbeStatus
from ecrcache.observability import logger, metrics
from ecrcache.services.credential_checks import refusal
from ecrcache.services.credential_health import CredentialMarks

if TYPE_CHECKING:
    from ecrcache.models.rotation import RotationKey
    from ecrcache.models.upstream_probe import ProbeResult, ProbeTarget
    from ecrcache.ports import CredentialHealthStore, HealthNotifier, RotationSecrets, UpstreamProbe

__all__ = ["ROTATED", "RotationHealth"]

ROTATED: Final = "rotated and validated"
_KEPT: Final = 16
"""Probes remembered between two rotation outcomes (a step probes each target once; a Lambda container lives on)."""


@dataclass(frozen=True, slots=True)
class _Probed:
    target: ProbeTarget
    login: UpstreamLogin | None
    result: ProbeResult
    at: datetime


class _WatchedProbe:
    """The service's probe, each result remembered for :meth:`RotationHealth.ended`."""

    def __init__(self, probe: UpstreamProbe, seen: deque[_Probed], clock: Callable[[], datetime]) -> None:
        self.inner = probe
        self.seen = seen
        self.clock = clock

    def probe(self, target: ProbeTarget, login: UpstreamLogin | None) -> ProbeResult:
        at = self.clock()
        result = self.inner.probe(target, login)
        self.seen.append(_Probed(target, login, result, at))
        return result


class RotationHealth:
    """Records a rotation's outcome on the credential's health (see the module)."""

    def __init__(
        self,
        *,
        store: CredentialHealthStore,
        secrets: RotationSecrets,
        notifier: HealthNotifier,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.clock = clock
        self.marks = CredentialMarks(store=store, notifier=notifier, clock=clock)
        self._seen: deque[_Probed] = deque(maxlen=_KEPT)

    def watching(self, probe: UpstreamProbe) -> UpstreamProbe:
        """``probe``, its results seen here (give the rotation service this one)."""
        return _WatchedProbe(probe, self._seen, self.clock)

    def ended(self, key: RotationKey, step: RotationStep | None, outcome: RotationOutcome) -> None:
        """A rotation ended in ``outcome`` (at ``step`` when a step failed): record what it says of the health."""
        seen = list(self._seen)
        self._seen.clear()
        try:
            if outcome is RotationOutcome.PROMOTED:
                self._promoted(key)
            elif outcome is RotationOutcome.REFUSED and step is RotationStep.TEST:
                self._refused(key, seen)
        except EcrcacheError as exc:
            metrics.add_metric(name="CredentialHealthNotRecorded", unit="Count", value=1)
            logger.error(
                "a rotation's outcome could not be recorded on the credential's health; the daily check will",
                extra={"credential": key.credential, "rotation": key.rotation_id, "error": exc.message},
            )

    def _promoted(self, key: RotationKey) -> None:
        at = self.clock()
        health = CredentialHealth(
            credential=key.credential, state=HealthState.HEALTHY, checked_at=at, rotated_at=at, message=ROTATED
        )
        before = self.store.record_rotated(health)
        if before is None:
            logger.warning(
                "a credential error newer than the promotion stands; the health is left Invalid",
                extra={"credential": key.credential, "rotation": key.rotation_id},
            )
            return
        logger.info("credential healthy after a rotation", extra={"credential": key.credential})
        self.marks.announce(health, before)

    def _refused(self, key: RotationKey, seen: list[_Probed]) -> None:
        refused = [probed for probed in seen if probed.result.status is ProbeStatus.CREDENTIAL]
        if not refused:
            return
        try:
            current = UpstreamLogin.from_secret_string(self.secrets.current_value(key.secret_arn))
        except ValueError:
            return  # the current value is no credential: the daily check says so
        mine = [probed for probed in refused if probed.login == current]
        if not mine:
            return  # a new token was refused: the current one is not in question
        first = mine[0]
        why = refusal(first.result)
        self.marks.mark(
            [
                CredentialError(
                    key.credential,
                    f"the upstream refused the current token when rotation {key.rotation_id} re-tested it: {why}",
                    f"rotation {key.rotation_id} testSecret at {first.at.isoformat()}: {why}",
                    first.at,
                )
            ]
        )

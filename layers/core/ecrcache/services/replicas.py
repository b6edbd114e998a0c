"""The reconciler's secret replica phases: add replicas before the Regions are planned, remove them after.

A run (:class:`~ecrcache.services.reconcile.ReconcileService`) plans each credential's replicas with
:mod:`ecrcache.engine.replicas`:

1. **Before** the Regions: ``replicate_secret`` / ``retry_replica`` for every Region a rule using the
   credential names, applied under the stack Region's lease (the calls are made on the primary, in
   that Region; two runs must not replicate the same secret at once). Secrets Manager creates a replica
   asynchronously (``InProgress``, then ``InSync``): the phase reads the secrets again a few times,
   :data:`WAIT_SECONDS` apart, so that the usual case - a replica in sync within seconds - creates the
   rules in the same run. A replica still in progress leaves its rules ``Pending``; the next run (the
   fast resync at the latest) creates them.
2. **After** the Regions: ``remove_replica`` for the replicas no desired rule wants, in the Regions
   this run read (ECR's rules there after apply and verify): never while an ECR rule there uses it.

A failed call never stops the run: it is in the run's errors and summary, and (when it was an add) the
rules of its Region wait with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ecrcache.engine.replicas import CredentialSecret, plan_replica_removals
from ecrcache.engine.status import RegionSummary
from ecrcache.errors import EcrcacheError
from ecrcache.observability import logger

if TYPE_CHECKING:
    from ecrcache.engine.plan import ActionKind, ActionResult, PlannedAction
    from ecrcache.models.observed import ObservedRule
    from ecrcache.ports import SecretReplicator, StatusStore
    from ecrcache.services.plan import DesiredByRegion, Secrets

__all__ = ["WAIT_SECONDS", "ReplicaOutcome", "ReplicaPhases"]

WAIT_SECONDS: Final = (1.0, 2.0, 4.0, 8.0)
"""Pauses between reads of a secret whose new replica is not in sync yet (15 s in all, at most)."""
LEASE_SECONDS: Final = 120


@dataclass(slots=True)
class ReplicaOutcome:
    """What a phase did: the secrets as read after it, its failed actions by ``(credential, Region)``,
    its counts and errors (for the run record)."""

    secrets: dict[str, CredentialSecret]
    failures: dict[tuple[str, str], ActionResult] = field(default_factory=dict)
    applied: dict[ActionKind, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> RegionSummary | None:
        """The phase's line in the run summary (``None`` when it called nothing)."""
        if not self.applied and not self.failures:
            return None
        return RegionSummary(applied=tuple(self.applied.items()), failed_actions=len(self.failures))


class ReplicaPhases:
    """Applies replica actions for the reconciler; the stack Region's lease guards them."""

    def __init__(
        self,
        *,
        replicas: SecretReplicator,
        status: StatusStore,
        clock: Callable[[], datetime],
        stack_region: str,
        sleep: Callable[[float], None] = time.sleep,
        wait_seconds: Sequence[float] = WAIT_SECONDS,
    ) -> None:
        self.replicas = replicas
        self.status = status
        self.clock = clock
        self.stack_region = stack_region
        self.sleep = sleep
        self.wait_seconds = tuple(wait_seconds)

    def add(self, actions: Sequence[PlannedAction], secrets: Secrets, *, run_id: str) -> ReplicaOutcome:
        """Apply ``actions`` (adds and retries), then read the secrets they touched until their new
        replicas are in sync or failed, or the waits run out."""
        outcome = ReplicaOutcome(secrets=dict(secrets))
        if not actions or not self._apply(actions, secrets, outcome, run_id=run_id):
            return outcome
        added: dict[str, set[str]] = {}
        by_name = {secret.name: credential for credential, secret in secrets.items()}
        for action in actions:
            credential = by_name[action.target]
            if (credential, action.region) not in outcome.failures:
                added.setdefault(credential, set()).add(action.region)
        self._await(outcome, added)
        return outcome

    def remove(
        self, inputs: DesiredByRegion, rules_by_region: Mapping[str, Mapping[str, ObservedRule]], *, run_id: str
    ) -> ReplicaOutcome:
        """Remove the replicas no desired rule wants where ECR was read and no rule uses them."""
        outcome = ReplicaOutcome(secrets=dict(inputs.secrets))
        removals, kept = plan_replica_removals(
            inputs.secrets, inputs.wanted_replicas, rules_by_region, home=self.stack_region
        )
        for entry in kept:
            logger.info("secret replica kept", extra={"secret_name": entry.name, "region": entry.region})
        if removals:
            self._apply(removals, inputs.secrets, outcome, run_id=run_id)
        return outcome

    def _apply(
        self, actions: Sequence[PlannedAction], secrets: Secrets, outcome: ReplicaOutcome, *, run_id: str
    ) -> bool:
        """Apply every action under the stack Region's lease; ``False`` when another run holds it, or
        the lease cannot be read (recorded: the run goes on without the replicas)."""
        try:
            leased = self.status.acquire_lease(self.stack_region, run_id, now=self.clock(), ttl_seconds=LEASE_SECONDS)
        except EcrcacheError as exc:
            outcome.errors.append(f"{self.stack_region}: secret replicas not reconciled: {exc.message}")
            return False
        if not leased:
            logger.info("another reconcile holds the lease: secret replicas are left to it")
            return False
        by_name = {secret.name: credential for credential, secret in secrets.items()}
        try:
            for action in actions:
                result = self.replicas.apply(action)
                if result.ok:
                    outcome.applied[action.kind] = outcome.applied.get(action.kind, 0) + 1
                    continue
                outcome.failures[by_name[action.target], action.region] = result
                outcome.errors.append(
                    f"{action.region}: {action.kind} {action.target}: {result.code}: {result.message}"
                )
                logger.warning(
                    "secret replica action failed",
                    extra={"kind": action.kind, "target": action.target, "region": action.region, "code": result.code},
                )
        finally:
            self._release(run_id)
        return True

    def _release(self, run_id: str) -> None:
        """Free the lease (best effort: it expires by itself)."""
        try:
            self.status.release_lease(self.stack_region, run_id)
        except EcrcacheError:
            logger.exception("could not release the lease after the secret replicas")

    def _await(self, outcome: ReplicaOutcome, added: dict[str, set[str]]) -> None:
        """Read the secrets with new replicas again until those are settled (or the waits run out)."""
        for pause in (0.0, *self.wait_seconds):
            if not added:
                return
            if pause:
                self.sleep(pause)
            for credential in sorted(added):
                secret = self._describe(outcome.secrets[credential])
                outcome.secrets[credential] = secret
                if _settled(secret, added[credential]):
                    del added[credential]

    def _describe(self, secret: CredentialSecret) -> CredentialSecret:
        try:
            observed = self.replicas.describe(secret.name)
        except EcrcacheError as exc:
            return CredentialSecret(secret.credential, secret.arn, error=exc.message)
        return CredentialSecret(secret.credential, secret.arn, observed=observed)


def _settled(secret: CredentialSecret, regions: set[str]) -> bool:
    """Nothing more to wait for: the secret cannot be read, or each replica is in sync or failed."""
    observed = secret.observed
    if observed is None:
        return True
    return all((r := observed.replicas.get(region)) is not None and (r.in_sync or r.failed) for region in regions)

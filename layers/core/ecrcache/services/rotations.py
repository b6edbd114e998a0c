"""Rotations started through the API (``POST /v1/credentials/{name}/rotations``), and their records.

A rotation with a new token, lock-out-proof: the token is tested against the upstream before it becomes
``AWSCURRENT`` and every rule using it is validated after (the rotation function's four steps,
:mod:`ecrcache.services.rotation`). Starting one, in this order:

1. the credential must be desired, its secret must exist, and no rotation may be in progress (``AWSPENDING`` on a
   version other than ``AWSCURRENT``: Secrets Manager would refuse) -- 404 / 409 before anything is written;
2. the rotation is recorded (who asked, when): a rotation the state table cannot hold is not started;
3. the token is put as a new version of the secret carrying only the private label
   ``ecrcache-staged-<rotation id>`` (never ``AWSPENDING``: RotateSecret "assumes that a previous rotation request
   is still in progress and returns an error" while that label is on a version other than ``AWSCURRENT``,
   RotateSecret API reference) -- ``AWSCURRENT`` is untouched;
4. ``RotateSecret(ClientRequestToken=<rotation id>, RotationLambdaARN=<the rotation function>)``, with the
   credential's schedule as ``RotationRules`` when it has one (so a rotation started here does not drop the
   schedule the reconciler converges). Secrets Manager then makes version ``<rotation id>`` ``AWSPENDING`` and
   calls the function, whose ``createSecret`` copies the staged token into it.

If step 3 or 4 fails, the rotation is recorded failed with the reason, the staged token's label is taken off
again (its version then has no label: Secrets Manager deletes it in time), and the caller gets the reason: 409
when Secrets Manager refused because a rotation is in progress, 503 for what clears by itself (throttling,
5xx), 500 otherwise. ``AWSCURRENT`` never changes here. No token is in any record, message or log line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Final

from pydantic import SecretStr

from ecrcache.errors import ConflictError, EcrcacheError, NotFoundError
from ecrcache.models.credential import CredentialSpec, RotationRequest, secret_name
from ecrcache.models.records import ResourceKind
from ecrcache.models.rotation import (
    RotationKey,
    RotationOutcome,
    RotationRecord,
    rotation_in_progress,
    staged_label,
)
from ecrcache.observability import logger, metrics
from ecrcache.ports import RotationStarter, RotationStore, StateStore

__all__ = ["LIST_LIMIT", "RotationsService"]

LIST_LIMIT: Final = 20
"""Rotations a list answers by default (the newest)."""


class RotationsService:
    """Start a credential's rotation with a staged token; read its rotations' records."""

    def __init__(
        self,
        *,
        desired: StateStore,
        secrets: RotationStarter,
        records: RotationStore,
        function_arn: str,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.desired = desired
        self.secrets = secrets
        self.records = records
        self.function_arn = function_arn
        self.clock = clock
        self.new_id = new_id

    def start(self, credential: str, request: RotationRequest, *, actor: str) -> RotationRecord:
        """Stage ``request``'s token and start the rotation; the rotation as recorded (``in_progress``)."""
        spec = self._spec(credential)
        if not self.function_arn:
            raise ConflictError(
                "this stack has no rotation function configured (ROTATOR_FUNCTION_ARN is empty): rotations "
                "cannot be started"
            )
        name = secret_name(credential)
        try:
            versions = self.secrets.describe(name)
        except NotFoundError:
            raise ConflictError(
                f"credential {credential!r} has no secret {name} yet: give it a token first "
                f"(PUT /v1/credentials/{credential} with token)"
            ) from None
        busy = rotation_in_progress(versions)
        if busy is not None:
            raise ConflictError(
                f"a rotation of credential {credential!r} is in progress (AWSPENDING is on version {busy}, which is "
                "not AWSCURRENT): Secrets Manager starts no other until it ends; see GET "
                f"/v1/credentials/{credential}/rotations"
            )
        key = RotationKey(credential, self.new_id(), versions.arn)
        self.records.record_start(key, requested_by=actor, at=self.clock())
        self._stage_and_rotate(key, request.secret_string(spec.username), spec.rotation.rotation_schedule())
        metrics.add_metric(name="RotationStarted", unit="Count", value=1)
        logger.info("rotation started", extra={"credential": credential, "rotation": key.rotation_id, "by": actor})
        return self.get(credential, key.rotation_id)

    def get(self, credential: str, rotation_id: str) -> RotationRecord:
        self._spec(credential)
        found = self.records.get(credential, rotation_id)
        if found is None:
            raise NotFoundError(f"credential {credential!r} has no rotation {rotation_id!r}")
        return found

    def recent(self, credential: str, *, limit: int = LIST_LIMIT) -> list[RotationRecord]:
        """The credential's rotations, newest first."""
        self._spec(credential)
        return self.records.recent(credential, limit=limit)

    def _spec(self, credential: str) -> CredentialSpec:
        stored = self.desired.get(ResourceKind.CREDENTIAL, credential)
        if stored is None:
            raise NotFoundError(f"no credential named {credential!r}")
        return CredentialSpec.model_validate(stored.spec)

    def _stage_and_rotate(self, key: RotationKey, value: str, schedule: str | None) -> None:
        label = staged_label(key.rotation_id)
        version = self.new_id()
        try:
            self.secrets.stage(key.secret_arn, version=version, label=label, value=SecretStr(value))
        except EcrcacheError as exc:
            raise self._failed(
                key, exc, f"the token could not be staged ({exc.message}); nothing was changed"
            ) from None
        try:
            self.secrets.rotate(
                key.secret_arn, token=key.rotation_id, function_arn=self.function_arn, schedule=schedule
            )
        except EcrcacheError as exc:
            cleaned = self._unstage(key, version, label)
            raise self._failed(key, exc, f"{exc.message}; {cleaned}; AWSCURRENT is unchanged") from None

    def _unstage(self, key: RotationKey, version: str, label: str) -> str:
        try:
            self.secrets.unstage(key.secret_arn, version=version, label=label)
        except EcrcacheError as exc:
            return (
                f"the staged token's label {label} could not be taken off version {version} ({exc.message}); it is "
                "never used (only this rotation's createSecret reads it)"
            )
        return "the staged token was discarded"

    def _failed(self, key: RotationKey, exc: EcrcacheError, message: str) -> EcrcacheError:
        """Record the rotation failed (best effort: the caller gets the reason either way); the error to raise."""
        try:
            self.records.record_outcome(key, RotationOutcome.FAILED, at=self.clock(), message=message)
        except EcrcacheError as record:
            logger.error("a rotation record could not be written", extra={"error": record.message})
        metrics.add_metric(name="RotationNotStarted", unit="Count", value=1)
        logger.warning(
            "rotation not started", extra={"credential": key.credential, "rotation": key.rotation_id, "reason": message}
        )
        return type(exc)(f"rotation {key.rotation_id} not started: {message}", exc.details, reason=exc.reason)

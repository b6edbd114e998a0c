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
5xx), 500 otherwise. A ``RotateSecret`` failure that is not a definite refusal (a 5xx, a timeout: Secrets Manager
may have accepted the call) is checked first with ``DescribeSecret``: version ``<rotation id>`` carrying
``AWSPENDING`` means the rotation started, and the caller gets 202 as if the call had answered (the staged token
stays for ``createSecret``). If even that read fails, nothing is undone or recorded: 503 names the rotation to
follow, and the reconciler's sweeper (:mod:`ecrcache.services.rotation_sweeper`) ends it if it never started. The
202's body is the record read back, or what was written when that read fails. ``AWSCURRENT`` never changes here.
No token is in any record, message or log line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

from ecrcache.errors import ConflictError, EcrcacheError, NotFoundError, RetryableError
from ecrcache.models.credential import CredentialSpec, secret_name
from ecrcache.models.records import ResourceKind
from ecrcache.models.rotation import (
    AWSPENDING,
    RotationKey,
    RotationOutcome,
    RotationRecord,
    rotation_in_progress,
    staged_label,
)
from ecrcache.observability import logger, metrics
from ecrcache.services.rotation_sweeper import ABANDON_AFTER

if TYPE_CHECKING:
    from ecrcache.models.credential import RotationRequest
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
        at = self.clock()
        self.records.record_start(key, requested_by=actor, at=at)
        self._stage_and_rotate(key, request.secret_string(spec.username), spec.rotation.rotation_schedule())
        metrics.add_metric(name="RotationStarted", unit="Count", value=1)
        logger.info("rotation started", extra={"credential": credential, "rotation": key.rotation_id, "by": actor})
        return self._started_record(key, actor=actor, at=at)

    def _started_record(self, key: RotationKey, *, actor: str, at: datetime) -> RotationRecord:
        """The started rotation as recorded; if the record cannot be read back, as it was written (the rotation is
        running: the caller must get its id, not an error a retry would answer with 409)."""
        try:
            found = self.records.get(key.credential, key.rotation_id)
        except EcrcacheError as exc:
            logger.warning("the started rotation's record could not be read", extra={"error": exc.message})
            found = None
        return found or RotationRecord(
            credential=key.credential,
            rotation_id=key.rotation_id,
            secret_arn=key.secret_arn,
            started_at=at,
            updated_at=at,
            requested_by=actor,
        )

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
        except RetryableError as exc:  # not a definite refusal: Secrets Manager may have started it all the same
            if self._started(key, exc):
                return
            cleaned = self._unstage(key, version, label)
            raise self._failed(key, exc, f"{exc.message}; {cleaned}; AWSCURRENT is unchanged") from None
        except EcrcacheError as exc:
            cleaned = self._unstage(key, version, label)
            raise self._failed(key, exc, f"{exc.message}; {cleaned}; AWSCURRENT is unchanged") from None

    def _started(self, key: RotationKey, exc: RetryableError) -> bool:
        """After ``RotateSecret`` failed in a way that does not say it was refused (a 5xx, a timeout: the request may
        have been accepted), whether the rotation started: version ``<rotation id>`` carries ``AWSPENDING``. If the
        secret cannot be read to tell, nothing is undone or recorded (the staged token may be the rotation's): the
        caller gets 503 and the rotation's id to follow; the reconciler's sweeper ends it if it never started."""
        try:
            versions = self.secrets.describe(key.secret_arn)
        except EcrcacheError as read:
            logger.warning("rotation start unknown", extra={"credential": key.credential, "rotation": key.rotation_id})
            raise RetryableError(
                f"rotation {key.rotation_id}: RotateSecret's answer was lost ({exc.message}) and the secret could not "
                f"be read ({read.message}): the rotation may have started; follow GET /v1/credentials/"
                f"{key.credential}/rotations/{key.rotation_id} (if it did not start, it is recorded failed within "
                f"{ABANDON_AFTER})",
                reason=exc.reason,
            ) from None
        started = AWSPENDING in versions.stages.get(key.rotation_id, frozenset())
        if started:
            logger.warning(
                "RotateSecret failed but the rotation started",
                extra={"credential": key.credential, "rotation": key.rotation_id, "error": exc.message},
            )
        return started

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

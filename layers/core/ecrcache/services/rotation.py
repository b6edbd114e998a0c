"""The rotation function's four Secrets Manager steps for an upstream credential, lock-out-proof.

Secrets Manager calls the function once per step, in order, and retries a failed rotation several times
(Secrets Manager user guide, "Rotation by Lambda function"); every step is idempotent and first passes the
guard of AWS's rotation template (:func:`ecrcache.models.rotation.guard`: rotation enabled, the token a
version of the secret, ``AWSCURRENT`` already = nothing to do, otherwise it must be ``AWSPENDING``).

* ``createSecret`` -- upstream registries issue tokens themselves, so there is nothing to mint here. An
  operator's new token is staged by the API before it calls ``RotateSecret`` (``POST
  /v1/credentials/{name}/rotations``, :mod:`ecrcache.services.rotations`): on a version of its own, under the
  private label ``ecrcache-staged-<ClientRequestToken>`` -- not ``AWSPENDING``, which would make
  ``RotateSecret`` refuse to start. The step copies that value into the pending version
  (``PutSecretValue(ClientRequestToken=token, VersionStages=["AWSPENDING"])``) and takes the private label
  off; a retry finding the pending version filled only finishes the clean-up. A value already in the pending
  version (staged there by hand) is left as it is. A rotation started through the API (its record names who
  asked) whose staged token is gone (no label, an empty pending version) is refused: staging the current token in
  its place would report the old token ``promoted``. A scheduled rotation (``rotation: {every_days: N}``) has no
  staged token: the current value is staged again as ``AWSPENDING``, so the following steps re-test it against
  the upstream and re-validate the rules in ECR on that schedule. (Minting Docker Hub PATs, ``dockerhub-pat``,
  is not built yet.)
* ``setSecret`` -- nothing to set: the upstream made the token.
* ``testSecret`` -- (with nothing in the pending version, it is Secrets Manager testing the rotation
  configuration of ``RotateSecret(RotateImmediately=false)``: "Secrets Manager tests the rotation configuration
  by running the testSecret step ... The test creates an AWSPENDING version of the secret and then removes it",
  RotateSecret API reference, ``RotateImmediately``; the step answers that the function is there, records
  nothing and changes nothing.) Otherwise the pending value is tried against the upstream directly (ECR reads
  only ``AWSCURRENT``):
  the registry token dance and a manifest ``HEAD`` of the credential's probe image
  (:mod:`ecrcache.adapters.upstream_auth`), at the upstream the credential's desired spec names (for Azure,
  every registry a desired rule naming the credential points at).
* ``finishSecret`` -- ``AWSCURRENT`` moves to the new version (``AWSPREVIOUS`` to the old one, by Secrets
  Manager), ``AWSPENDING`` comes off it, then ``ValidatePullThroughCacheRule`` runs for every ECR rule using
  the secret in every Region the secret is in (its own and its replicas' -- a rule whose ``credentialArn`` is
  the secret's ARN in that Region; a replica not ``InSync`` is skipped and named). ECR's failure text is classified
  as the status engine classifies it (:func:`ecrcache.engine.status.classify_upstream_failure`): only a rule
  not valid because of the credential rolls ``AWSCURRENT`` back to the previous version -- and only after the
  upstream accepted that previous token in ``testSecret``'s probe (the usual reason to rotate is that the old
  token was revoked). Any other failure (a rate limit or outage in ECR's text, ECR throttling, rules that
  could not be read) keeps the new token current and fails the step so that Secrets Manager retries it (the
  validation is idempotent). A rule deleted meanwhile is skipped. A retry of a rotation already rolled back (or
  refused) whose removals of ``AWSPENDING`` all failed only takes ``AWSPENDING`` off: it never promotes again.

What is left ``AWSCURRENT`` on each failure: before promotion (any failure of create/set/test, or of the move
itself) nothing changed -- the previous token stays current. A failure that should clear by itself (an AWS call
throttled or failing with a 5xx, :class:`~ecrcache.errors.RetryableError`; the upstream rate limiting or down)
keeps ``AWSPENDING`` on the version, so that Secrets Manager's retries of the step can succeed; the step is recorded
failed but the rotation gets no outcome (it is still in progress, its message says it is retried: a retry may
promote it, and an outcome written now would be overwritten by the opposite one). If no retry comes, the
reconciler's sweeper (:mod:`ecrcache.services.rotation_sweeper`) takes ``AWSPENDING`` off and records it failed. A
definitive
one (the upstream refusing the token, a value that is not a credential, access denied, the probe image gone)
takes ``AWSPENDING`` off it (a pending version left behind blocks the next ``RotateSecret``; the retries
Secrets Manager makes then stop at the guard). After promotion, a rule ECR refuses the credential for rolls
back to the previous token; if even the roll-back fails, or the upstream refuses the previous token too, the
new token (which passed ``testSecret``) stays current and the message says so. A guard refusal changes
nothing at all: a second rotation that took ``AWSPENDING`` over (a staging label is on one version
at most) is not disturbed by the first one's retries; a retry of a rotation that has an outcome (promoted,
rolled back...) leaves its record as it was and counts nothing.

Each step is recorded (:class:`ecrcache.ports.RotationStore`): started, succeeded or failed, with its
message, and the outcome. The records are for people: a write that fails is logged, never allowed to change
what happens to the secret -- except the promotion's (``promoted_at``), written before ``AWSCURRENT`` moves:
without it a retry finding the version current could not tell a validated promotion from one an attempt
left unvalidated, so the label does not move unless it is written. No token is ever in a record, a log line,
a message or an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ecrcache.errors import EcrcacheError, RetryableError, TerminalError
from ecrcache.models.credential import UpstreamLogin
from ecrcache.models.rotation import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    GuardRefused,
    RotationKey,
    RotationOutcome,
    RotationStep,
    StepStatus,
    guard,
    staged_label,
)
from ecrcache.models.upstream_probe import ProbeStatus
from ecrcache.observability import logger, metrics
from ecrcache.services.credential_checks import NoProbeTarget, probe_targets, refusal, validate_rules

if TYPE_CHECKING:
    from ecrcache.models.rotation import (
        RotationEvent,
        SecretVersions,
    )
    from ecrcache.models.upstream_probe import ProbeTarget
    from ecrcache.ports import EcrRuleChecker, RotationSecrets, RotationStore, StateStore, UpstreamProbe
    from ecrcache.services.credential_checks import RuleValidation
    from ecrcache.services.rotation_health import RotationHealth

__all__ = ["RotationFailed", "RotationService"]

_PASSING: Final = frozenset({ProbeStatus.RATE_LIMIT, ProbeStatus.UPSTREAM_DOWN})
"""Probe outcomes that should clear by themselves: ``testSecret`` keeps ``AWSPENDING`` for Secrets Manager's retries.
``not_found`` (the probe image is gone) is not one of them: it does not clear until someone sets the credential's
``probe``, long after Secrets Manager's retries; the rotation is refused and the token must be staged again."""
NOTHING_TO_SET = "nothing to set: upstream registries issue their tokens themselves"
ALREADY_CURRENT = "the version is already AWSCURRENT: nothing to do"
STAGED_VALUE_GONE = (
    "the staged token is gone (its label ecrcache-staged-<rotation id> is on no version and the pending version is "
    "empty): this rotation was started through the API, so the current token is not staged in its place; stage "
    "it again (POST /v1/credentials/{name}/rotations)"
)
ENDED_BEFORE_FINISH = (
    "this rotation already ended ({outcome}) and AWSPENDING was still on its version: only AWSPENDING is taken off, "
    "nothing is promoted"
)
RETRYING = "retrying: {step} failed with a failure that should clear by itself; Secrets Manager retries it"
CONFIGURATION_TEST = (
    "nothing is staged in the pending version: Secrets Manager's test of the rotation configuration "
    "(RotateImmediately=false); the rotation function answers, nothing is recorded or changed"
)


class RotationFailed(TerminalError):
    """A step failed: raised to Secrets Manager, which records the rotation as failed (and retries it)."""


class _StepFailed(Exception):
    """A step ends in ``outcome``; ``pending``: ``AWSPENDING`` is still on the version (take it off, unless
    ``retryable``: the failure should clear by itself, and Secrets Manager's retries need the label)."""

    def __init__(
        self,
        message: str,
        outcome: RotationOutcome,
        *,
        pending: bool = True,
        retryable: bool = False,
        keep_recorded: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome
        self.pending = pending
        self.retryable = retryable
        self.keep_recorded = keep_recorded


class RotationService:
    """One Secrets Manager rotation step of an ``ecr-pullthroughcache/<name>`` credential secret."""

    def __init__(
        self,
        *,
        secrets: RotationSecrets,
        probe: UpstreamProbe,
        desired: StateStore,
        records: RotationStore,
        ecr: Callable[[str], EcrRuleChecker],
        clock: Callable[[], datetime],
        health: RotationHealth | None = None,
    ) -> None:
        self.secrets = secrets
        self.probe = probe
        self.desired = desired
        self.records = records
        self.ecr = ecr
        self.clock = clock
        self.health = health
        """Records each outcome on the credential's health (:mod:`ecrcache.services.rotation_health`; give the
        service ``health.watching(probe)`` as its probe). ``None``: the health waits for the daily check."""

    def handle(self, event: RotationEvent) -> str:
        """Run ``event``'s step; what it did (also recorded). Raises :class:`RotationFailed` when it failed."""
        versions = self.secrets.describe(event.secret_id)
        if versions.credential is None:
            raise RotationFailed(
                f"secret {versions.name} is not an upstream credential (ecr-pullthroughcache/<name>): not rotated"
            )
        key = RotationKey(versions.credential, event.client_request_token, versions.arn)
        step = event.step
        try:
            current = guard(versions, key.rotation_id)
        except GuardRefused as refused:
            if not self._ended(key):  # Secrets Manager retrying a rotation that ended: its record stays as it was
                self._end(key, step, RotationOutcome.FAILED, str(refused), keep_recorded=True)
            raise RotationFailed(f"{step}: {refused}; nothing was changed") from None
        if step is RotationStep.TEST and not current and self._configuration_test(key):
            return CONFIGURATION_TEST
        self._note(lambda: self.records.record_step(key, step, StepStatus.STARTED, at=self.clock()))
        try:
            message, outcome = self._run(step, key, versions, current=current)
        except _StepFailed as failed:
            raise self._failed(key, step, failed) from None
        except EcrcacheError as exc:  # an AWS call of a step before promotion: nothing changed
            aws = _StepFailed(
                exc.message, RotationOutcome.FAILED, pending=not current, retryable=isinstance(exc, RetryableError)
            )
            raise self._failed(key, step, aws) from None
        self._note(lambda: self.records.record_step(key, step, StepStatus.SUCCEEDED, at=self.clock(), message=message))
        if outcome is not None:
            self._end(key, None, outcome, message)
        logger.info(
            "rotation step done", extra={"credential": key.credential, "rotation": key.rotation_id, "step": step}
        )
        return message

    def _run(
        self, step: RotationStep, key: RotationKey, versions: SecretVersions, *, current: bool
    ) -> tuple[str, RotationOutcome | None]:
        if step is RotationStep.FINISH:
            return self._finish(key, versions, current=current)
        if current:
            return ALREADY_CURRENT, None
        if step is RotationStep.CREATE:
            return self._create(key, versions), None
        if step is RotationStep.SET:
            return NOTHING_TO_SET, None
        return self._test(key), None

    # -- createSecret --------------------------------------------------------------------------

    def _configuration_test(self, key: RotationKey) -> bool:
        """``testSecret`` of a pending version holding no value: Secrets Manager's test of the rotation
        configuration (a rotation's ``createSecret`` always fills the version before its ``testSecret``). A read
        that fails is not taken for one: the step runs and fails as it would."""
        try:
            return self.secrets.pending_value(key.secret_arn, key.rotation_id) is None
        except EcrcacheError:
            return False

    def _create(self, key: RotationKey, versions: SecretVersions) -> str:
        label = staged_label(key.rotation_id)
        staged = versions.labelled(label)
        if self.secrets.pending_value(key.secret_arn, key.rotation_id) is not None:
            if staged is not None:  # a retry after the copy: only the clean-up is left
                self.secrets.unstage(key.secret_arn, version=staged, label=label)
            return "a new value is staged as AWSPENDING for this rotation: nothing to create"
        if staged is not None:
            self.secrets.stage_pending(
                key.secret_arn, key.rotation_id, self.secrets.version_value(key.secret_arn, staged)
            )
            self.secrets.unstage(key.secret_arn, version=staged, label=label)
            return "the token staged through the API is copied into the pending version (AWSPENDING)"
        record = self.records.get(key.credential, key.rotation_id)  # failing: not taken for a scheduled rotation
        if record is not None and record.requested_by is not None:
            raise _StepFailed(STAGED_VALUE_GONE, RotationOutcome.REFUSED)
        self.secrets.stage_pending(key.secret_arn, key.rotation_id, self.secrets.current_value(key.secret_arn))
        return (
            "no new token was staged (a scheduled rotation): the current token is staged again as AWSPENDING, "
            "to be re-tested against the upstream and re-validated in ECR"
        )

    # -- testSecret ----------------------------------------------------------------------------

    def _test(self, key: RotationKey) -> str:
        value = self.secrets.pending_value(key.secret_arn, key.rotation_id)
        if value is None:
            raise _StepFailed("no value is staged as AWSPENDING for this rotation", RotationOutcome.REFUSED)
        try:
            login = UpstreamLogin.from_secret_string(value)
        except ValueError as exc:
            raise _StepFailed(f"the new value is refused: {exc}", RotationOutcome.REFUSED) from None
        results = [self.probe.probe(target, login) for target in self._targets(key.credential)]
        refused = [result for result in results if not result.ok]
        if refused:
            listed = "; ".join(refusal(result) for result in refused)
            raise _StepFailed(
                f"the upstream did not accept the new token: {listed}",
                RotationOutcome.REFUSED,
                retryable=all(result.status in _PASSING for result in refused),
            )
        return "; ".join(result.message for result in results)

    def _targets(self, credential: str) -> list[ProbeTarget]:
        """Where the credential's token is tried (:func:`~ecrcache.services.credential_checks.probe_targets`)."""
        try:
            return probe_targets(self.desired, credential)
        except NoProbeTarget as exc:
            raise _StepFailed(str(exc), RotationOutcome.REFUSED) from None

    # -- finishSecret --------------------------------------------------------------------------

    def _finish(
        self, key: RotationKey, versions: SecretVersions, *, current: bool
    ) -> tuple[str, RotationOutcome | None]:
        if current:
            record = self.records.get(key.credential, key.rotation_id)
            # promoted_at is written before AWSCURRENT moves: without it, no attempt of ours made the version current
            if record is None or record.promoted_at is None or record.outcome is RotationOutcome.PROMOTED:
                return ALREADY_CURRENT, None
            previous = versions.labelled(AWSPREVIOUS)  # promoted by an attempt that ended before validating
        else:
            ended = self.records.get(key.credential, key.rotation_id)
            if ended is not None and ended.outcome in {RotationOutcome.ROLLED_BACK, RotationOutcome.REFUSED}:
                # a retry after a roll-back (or a refusal) whose removals of AWSPENDING all failed: never re-promote
                message = ENDED_BEFORE_FINISH.format(outcome=ended.outcome.value)
                raise _StepFailed(message, ended.outcome, keep_recorded=True)
            previous = versions.labelled(AWSCURRENT)
            self._promote(key, previous)
        checked = validate_rules(self.ecr, versions)
        if checked.refused:
            raise self._roll_back(key, previous, checked)
        if checked.unsure:
            raise _StepFailed(
                f"ECR could not validate {'; '.join(checked.unsure)}: not a refusal of the credential, so the new "
                "token (which the upstream accepted at testSecret) stays AWSCURRENT; Secrets Manager retries "
                "finishSecret, which validates again",
                RotationOutcome.FAILED,
                pending=False,
            )
        return f"AWSCURRENT is the new version; {checked.summary()}", RotationOutcome.PROMOTED

    def _promote(self, key: RotationKey, previous: str | None) -> None:
        if previous is None:
            raise _StepFailed("the secret has no AWSCURRENT version to rotate from", RotationOutcome.FAILED)
        try:  # first, and not a mere note: a retry finding the version current re-validates only if it is recorded
            self.records.record_promoted(key, at=self.clock())
        except EcrcacheError as exc:
            raise _StepFailed(
                f"the promotion could not be recorded ({exc.message}), so AWSCURRENT was not moved: the previous "
                "token stays current",
                RotationOutcome.FAILED,
                retryable=isinstance(exc, RetryableError),
            ) from None
        try:
            self.secrets.move_current(key.secret_arn, to_version=key.rotation_id, from_version=previous)
        except EcrcacheError as exc:
            raise _StepFailed(
                f"AWSCURRENT could not be moved to the new version ({exc.message}); the previous token stays current",
                RotationOutcome.FAILED,
                retryable=isinstance(exc, RetryableError),
            ) from None
        self._clear_pending(key)

    def _roll_back(self, key: RotationKey, previous: str | None, checked: RuleValidation) -> _StepFailed:
        """ECR blamed the credential: back to the previous token, but only if the upstream still takes it (the
        usual reason to rotate is that the old token was revoked)."""
        listed = "; ".join(checked.refused + checked.unsure)
        kept = "the new token (which the upstream accepted at testSecret) is still AWSCURRENT"
        if previous is None:
            return _StepFailed(
                f"ECR did not validate {listed}; there is no previous version to roll back to",
                RotationOutcome.FAILED,
                pending=False,
            )
        doubt = self._previous_doubt(key, previous)
        if doubt is not None:
            return _StepFailed(
                f"ECR did not validate {listed}; not rolled back: the previous token {doubt}, so {kept}",
                RotationOutcome.FAILED,
                pending=False,
            )
        try:
            self.secrets.move_current(key.secret_arn, to_version=previous, from_version=key.rotation_id)
        except EcrcacheError as exc:
            return _StepFailed(
                f"ECR did not validate {listed}; rolling back failed ({exc.message}): {kept}",
                RotationOutcome.FAILED,
                pending=False,
            )
        self._clear_pending(key)
        return _StepFailed(
            f"rolled back: AWSCURRENT is the previous version again (the upstream still accepts it); ECR did not "
            f"validate {listed}",
            RotationOutcome.ROLLED_BACK,
            pending=False,
        )

    def _previous_doubt(self, key: RotationKey, previous: str) -> str | None:
        """Why the previous version is not known to work (testSecret's probe of it), or ``None``: it works."""
        try:
            login = UpstreamLogin.from_secret_string(self.secrets.version_value(key.secret_arn, previous))
            targets = self._targets(key.credential)
        except ValueError as exc:
            return f"is not a credential ({exc})"
        except EcrcacheError as exc:
            return f"could not be read ({exc.message})"
        except _StepFailed as failed:
            return f"could not be tested ({failed.message})"
        refused = [result for result in (self.probe.probe(target, login) for target in targets) if not result.ok]
        if refused:
            return "was not accepted by the upstream either: " + "; ".join(refusal(result) for result in refused)
        return None

    # -- failures and records --------------------------------------------------------------------

    def _clear_pending(self, key: RotationKey) -> None:
        """Take ``AWSPENDING`` off the version if it is still there (after a promotion or a roll-back)."""
        try:
            if AWSPENDING in self.secrets.describe(key.secret_arn).stages.get(key.rotation_id, frozenset()):
                self.secrets.unstage_pending(key.secret_arn, key.rotation_id)
        except EcrcacheError as exc:
            logger.warning(
                "AWSPENDING could not be taken off a rotated version",
                extra={"credential": key.credential, "rotation": key.rotation_id, "error": exc.message},
            )

    def _failed(self, key: RotationKey, step: RotationStep, failed: _StepFailed) -> RotationFailed:
        message = failed.message
        if failed.pending and failed.retryable:
            message += (
                "; a failure that should clear by itself: AWSPENDING stays on the new version for Secrets Manager's "
                "retries, the previous token stays current"
            )
            self._retrying(key, step, message)
            return RotationFailed(f"{step}: {message}")
        if failed.pending:
            try:
                self.secrets.unstage_pending(key.secret_arn, key.rotation_id)
                message += "; AWSPENDING was taken off the new version, the previous token stays current"
            except EcrcacheError as exc:
                message += (
                    f"; AWSPENDING could not be taken off version {key.rotation_id} ({exc.message}): the next "
                    "rotation is refused until it is (aws secretsmanager update-secret-version-stage "
                    "--version-stage AWSPENDING --remove-from-version-id <version>)"
                )
            self._drop_staged(key)
        self._end(key, step, failed.outcome, message, keep_recorded=failed.keep_recorded)
        return RotationFailed(f"{step}: {message}")

    def _retrying(self, key: RotationKey, step: RotationStep, message: str) -> None:
        """A failure that should clear by itself: the step is recorded failed but the rotation has no outcome (it
        stays in progress, its message saying it is being retried) -- a retry of Secrets Manager's may still promote
        it. If none comes, the reconciler's sweeper (:mod:`ecrcache.services.rotation_sweeper`) takes ``AWSPENDING``
        off once the record has not moved for :data:`~ecrcache.services.rotation_sweeper.ABANDON_AFTER`."""
        at = self.clock()
        self._note(lambda: self.records.record_step(key, step, StepStatus.FAILED, at=at, message=message))
        said = f"{RETRYING.format(step=step)}: {message}"
        self._note(lambda: self.records.record_retrying(key, at=at, message=said))
        metrics.add_metric(name="RotationRetrying", unit="Count", value=1)
        logger.warning(
            "rotation step failed; Secrets Manager retries it",
            extra={"credential": key.credential, "rotation": key.rotation_id, "step": step, "reason": message},
        )

    def _drop_staged(self, key: RotationKey) -> None:
        """A rotation that ended before ``createSecret`` copied the token staged through the API: take its private
        label off (best effort: only this rotation's ``createSecret`` would read it, and none will run again)."""
        label = staged_label(key.rotation_id)
        try:
            staged = self.secrets.describe(key.secret_arn).labelled(label)
            if staged is not None:
                self.secrets.unstage(key.secret_arn, version=staged, label=label)
        except EcrcacheError as exc:
            logger.warning(
                "the staged token's label could not be taken off",
                extra={"credential": key.credential, "rotation": key.rotation_id, "error": exc.message},
            )

    def _end(
        self,
        key: RotationKey,
        step: RotationStep | None,
        outcome: RotationOutcome,
        message: str,
        *,
        keep_recorded: bool = False,
    ) -> None:
        """Record a failed step (``step``) and the rotation's outcome; log and count it."""
        at = self.clock()
        if step is not None:
            self._note(lambda: self.records.record_step(key, step, StepStatus.FAILED, at=at, message=message))
        self._note(
            lambda: self.records.record_outcome(key, outcome, at=at, message=message, keep_recorded=keep_recorded)
        )
        if self.health is not None:
            self.health.ended(key, step, outcome)
        metrics.add_metric(name=f"Rotation{outcome.value.title().replace('_', '')}", unit="Count", value=1)
        log = logger.info if outcome is RotationOutcome.PROMOTED else logger.warning
        log(
            "rotation ended",
            extra={"credential": key.credential, "rotation": key.rotation_id, "outcome": outcome, "reason": message},
        )

    def _ended(self, key: RotationKey) -> bool:
        """The rotation has a recorded outcome (the state table failing to say: not known to have one)."""
        try:
            record = self.records.get(key.credential, key.rotation_id)
        except EcrcacheError:
            return False
        return record is not None and record.outcome is not None

    @staticmethod
    def _note(write: Callable[[], object]) -> None:
        """A record write: its failure is logged, never allowed to change what happens to the secret."""
        try:
            write()
        except EcrcacheError as exc:
            logger.error("a rotation record could not be written", extra={"error": exc.message})

"""Credential health: the daily check of every desired credential, and the marks made at once elsewhere.

:meth:`CredentialHealthService.check_all` (``functions/credential_health``, once a day) checks each credential
as the rotation function's ``testSecret`` / ``finishSecret`` check a new token
(:mod:`ecrcache.services.credential_checks`), with the ``AWSCURRENT`` value:

1. the secret: ``DescribeSecret`` (its ARN and replicas) and ``GetSecretValue`` (``AWSCURRENT``). A secret that
   does not exist or holds no credential is a refusal; a read that fails (throttled, denied) cannot tell;
2. the upstream: the registry token dance and a manifest ``HEAD`` (:class:`~ecrcache.ports.UpstreamProbe`),
   each probe's requests taken first from the upstream's token bucket, the one warming spends from
   (:class:`~ecrcache.ports.UpstreamBudget`, key ``<upstream url>#<credential>``, the credential's
   ``rate_limit`` or the kind's default). An empty or blocked bucket defers the probe: ``Unknown`` with that
   reason, never ``Invalid``. What the probe did not spend is refunded, an overspend charged, a 429 blocks the
   bucket (for warming too) until the upstream's reset;
3. ECR: ``ValidatePullThroughCacheRule`` of every rule using the secret in every Region the secret is in;
   ECR's failure text is classified as the status engine classifies it;
4. a refusal: ``DescribeSecret`` again -- a rotation that promoted (or rolled back) while the check ran moved
   ``AWSCURRENT``, one that began put ``AWSPENDING`` on a new version: the check may have tried a token no longer
   current, and the refusals count as "cannot tell" (``Unknown``, or ``Invalid`` kept). A promotion recorded on
   the health (``rotated_at``, :mod:`ecrcache.services.rotation_health`) after the check began wins as well.

The state, expiry alerts and events are decided by :mod:`ecrcache.engine.credential_health`. The health is
written first (conditioned on no credential error having marked it meanwhile: then it is read and decided
again), then the events are sent (``Credential Health Changed`` on a change, ``Credential Expiring`` at 14, 7,
1 and 0 days), then what was delivered is recorded -- an event is sent at least once: a failure to record
that it was sent sends it again the next day. Delivery is recorded per channel: an event the bus took counts
as sent even if the alert topic did not take it -- the topic is owed it (``alerts_owed``), and the next check
sends it to the topic alone, never to the bus again. If a mark writes over the health between the two writes,
what was delivered is still recorded (set operations on ``alerts_sent`` / ``alerts_owed``, ``announced`` while
the state is the one announced). A credential no longer desired loses its health item.

:class:`CredentialMarks` is the other way in, for the pull statistics and the warm worker: a credential error
seen there marks the credential ``Invalid`` at once, with the evidence (one conditional write per credential
per batch), and announces the change. Its failures are logged and counted, never raised: the pulls and warms
are already recorded, and the next daily check sees the credential anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ecrcache.engine.credential_errors import newest
from ecrcache.engine.credential_health import (
    Findings,
    announced_state,
    days_to_expiry,
    decide,
    health_changed,
    marked,
    owe,
    owed_event,
    still_owed,
)
from ecrcache.engine.upstream_buckets import BucketLimit, block_until, bucket_key
from ecrcache.errors import AlertNotSent, EcrcacheError, RetryableError
from ecrcache.models.credential import CredentialSpec, UpstreamLogin, secret_name
from ecrcache.models.rotation import AWSCURRENT, AWSPENDING
from ecrcache.models.upstream import default_rate_limit
from ecrcache.models.upstream_probe import ProbeStatus
from ecrcache.observability import count_by, logger, measure_by, metrics
from ecrcache.services.credential_checks import NoProbeTarget, probe_targets, refusal, validate_rules

if TYPE_CHECKING:
    from ecrcache.engine.credential_errors import CredentialError
    from ecrcache.engine.credential_health import (
        HealthDecision,
        HealthEvent,
    )
    from ecrcache.models.credential_health import CredentialHealth, HealthState
    from ecrcache.models.rotation import SecretVersions
    from ecrcache.models.upstream_probe import ProbeTarget
    from ecrcache.ports import (
        CredentialHealthStore,
        CredentialSecrets,
        EcrRuleChecker,
        HealthNotifier,
        StateStore,
        UpstreamBudget,
        UpstreamProbe,
    )

__all__ = ["PROBE_REQUESTS", "CheckOutcome", "CredentialHealthService", "CredentialMarks", "bucket_limit"]

PROBE_REQUESTS: Final = 4
"""Tokens taken before a probe: ``/v2/``, the realm, the manifest ``HEAD``, one redirect. The difference with
what it really sent (:attr:`~ecrcache.models.upstream_probe.ProbeResult.requests`) is refunded or charged."""
_SECRET_MISSING: Final = frozenset({"ResourceNotFoundException"})


def bucket_limit(spec: CredentialSpec) -> BucketLimit:
    """The credential's upstream bucket, as warming computes it: its ``rate_limit``, else the kind's default."""
    if spec.rate_limit is not None:
        return BucketLimit(spec.rate_limit.requests, spec.rate_limit.window_seconds)
    return BucketLimit(*default_rate_limit(spec.upstream_kind))


@dataclass
class _Found:
    refused: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def findings(self, started_at: datetime) -> Findings:
        return Findings(started_at, tuple(self.refused), tuple(self.unsure), tuple(self.passed))


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What the daily check came to: each credential's state, and the ones whose health could not be written."""

    states: dict[str, HealthState]
    not_recorded: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"states": {k: v.value for k, v in self.states.items()}, "not_recorded": list(self.not_recorded)}


class CredentialHealthService:
    """The daily health check of every desired credential (see the module)."""

    def __init__(
        self,
        *,
        desired: StateStore,
        secrets: CredentialSecrets,
        probe: UpstreamProbe,
        budget: UpstreamBudget,
        ecr: Callable[[str], EcrRuleChecker],
        store: CredentialHealthStore,
        notifier: HealthNotifier,
        clock: Callable[[], datetime],
    ) -> None:
        self.desired = desired
        self.secrets = secrets
        self.probe = probe
        self.budget = budget
        self.ecr = ecr
        self.store = store
        self.notifier = notifier
        self.clock = clock

    def check_all(self) -> CheckOutcome:
        """Check every desired credential; raises :class:`RetryableError` (after checking all of them) when the
        health of some could not be recorded."""
        credentials = self.desired.snapshot().credentials
        stored = self.store.all_health()
        states: dict[str, HealthState] = {}
        failed: list[str] = []
        for name, resource in sorted(credentials.items()):
            try:
                states[name] = self.check(name, CredentialSpec.model_validate(resource.spec), stored.get(name)).state
            except EcrcacheError as exc:
                failed.append(name)
                metrics.add_metric(name="CredentialHealthNotRecorded", unit="Count", value=1)
                logger.error(
                    "a credential's health could not be recorded", extra={"credential": name, "error": exc.message}
                )
        for name in sorted(set(stored) - set(credentials)):
            self._forget(name)
        outcome = CheckOutcome(states, tuple(failed))
        logger.info("credential health checked", extra=outcome.as_dict())
        if failed:
            raise RetryableError(f"the health of {', '.join(failed)} could not be recorded; try again")
        return outcome

    def check(self, name: str, spec: CredentialSpec, previous: CredentialHealth | None) -> CredentialHealth:
        """Check one credential, record its health and announce what changed."""
        started = self.clock()
        findings = self._findings(name, spec).findings(started)
        seen = previous
        for _ in range(2):  # a mark landing between the read and the write: read again, decide again
            decision = decide(name, seen, findings, expires_at=spec.expires_at, now=self.clock())
            if self.store.save(decision.health, seen=seen):
                break
            seen = self.store.health(name)
        else:
            raise RetryableError(f"the health of credential {name!r} is contended; try again", reason="Contended")
        delivered = self._announce(decision)
        if delivered != decision.health and not self.store.save(delivered, seen=decision.health):
            self._record_sent(decision.health, delivered)  # a mark came in since: keep what was delivered
        metrics.add_metric(name=f"Credential{delivered.state.value}", unit="Count", value=1)
        days = days_to_expiry(spec.expires_at, self.clock())
        if days is not None:  # per credential: the dashboard shows each one's runway (names are no secret)
            measure_by("CredentialDaysToExpiry", dimension="credential", value=name, amount=days)
        logger.info(
            "credential checked",
            extra={"credential": name, "state": delivered.state.value, "detail": delivered.message},
        )
        return delivered

    # -- findings ------------------------------------------------------------------------------

    def _findings(self, name: str, spec: CredentialSpec) -> _Found:
        found = _Found()
        try:
            versions = self.secrets.describe(secret_name(name))
            login = UpstreamLogin.from_secret_string(self.secrets.current_value(versions.arn))
        except ValueError as exc:
            found.refused.append(f"the secret {secret_name(name)} (AWSCURRENT): {exc}")
            return found
        except EcrcacheError as exc:
            if exc.reason in _SECRET_MISSING:
                found.refused.append(f"the secret {secret_name(name)} does not exist ({exc.message})")
            else:
                found.unsure.append(f"the secret {secret_name(name)} could not be read ({exc.message})")
            return found
        try:
            targets = probe_targets(self.desired, name, spec)
        except NoProbeTarget as exc:
            found.unsure.append(str(exc))
            targets = []
        for target in targets:
            self._probe(name, spec, target, login, found)
        validation = validate_rules(self.ecr, versions)
        found.refused.extend(f"ECR refused {line}" for line in validation.refused)
        found.unsure.extend(validation.unsure)
        found.passed.append(validation.summary())
        if found.refused:
            self._rotated_meanwhile(versions, found)
        return found

    def _rotated_meanwhile(self, versions: SecretVersions, found: _Found) -> None:
        """A refusal of a token a rotation replaced (or rolled back) while the check ran says nothing of the current
        one: read the secret again; if ``AWSCURRENT`` moved or a rotation began, the refusals cannot tell."""
        try:
            again = self.secrets.describe(versions.arn)
        except EcrcacheError as exc:
            logger.warning("the secret could not be read again after a refusal", extra={"error": exc.message})
            return  # the refusal stands: most checks race nothing
        moved = again.labelled(AWSCURRENT) != versions.labelled(AWSCURRENT)
        began = again.labelled(AWSPENDING) not in (None, versions.labelled(AWSPENDING), again.labelled(AWSCURRENT))
        if moved or began:
            why = "AWSCURRENT moved" if moved else "a rotation began"
            found.unsure.extend(f"{line} (not counted: {why} while the check ran)" for line in found.refused)
            found.refused.clear()

    def _probe(self, name: str, spec: CredentialSpec, target: ProbeTarget, login: UpstreamLogin, found: _Found) -> None:
        """One probe, within the upstream's token bucket (deferred when it is empty or blocked)."""
        key, limit, now = bucket_key(target.upstream_url, name), bucket_limit(spec), self.clock()
        try:
            blocked = self.budget.blocked_until(key, now=now)
            taken = 0 if blocked is not None else self.budget.take(key, PROBE_REQUESTS, limit=limit, now=now)
            if blocked is None and 0 < taken < PROBE_REQUESTS:
                self.budget.refund(key, taken, limit=limit, now=now)
        except EcrcacheError as exc:
            found.unsure.append(f"{target}: deferred, the upstream budget could not be read ({exc.message})")
            return
        if taken < PROBE_REQUESTS:
            why = f"blocked until {blocked.isoformat()} after a 429" if blocked else "empty (warming spent it)"
            found.unsure.append(f"{target}: deferred, the upstream's request budget is {why}")
            metrics.add_metric(name="CredentialCheckDeferred", unit="Count", value=1)
            return
        result = self.probe.probe(target, login)
        self._settle(key, limit, result.requests, result.retry_at if result.status is ProbeStatus.RATE_LIMIT else None)
        if result.ok:
            found.passed.append(result.message)
        elif result.status is ProbeStatus.CREDENTIAL:
            found.refused.append(f"the upstream refused the token: {refusal(result)}")
        else:
            found.unsure.append(refusal(result))
        if result.status is ProbeStatus.RATE_LIMIT:
            count_by("UpstreamRateLimited", dimension="source", value="health_check", count=1)
            if result.retry_at is None:
                self._block(key, limit, block_until(self.clock(), limit.window_seconds))

    def _settle(self, key: str, limit: BucketLimit, spent: int, retry_at: datetime | None) -> None:
        """Refund what the probe did not spend, charge what it overspent (best effort: logged when it fails)."""
        now = self.clock()
        try:
            if retry_at is not None:
                self.budget.block(key, until=retry_at, limit=limit, now=now)
            elif spent < PROBE_REQUESTS:
                self.budget.refund(key, PROBE_REQUESTS - spent, limit=limit, now=now)
            elif spent > PROBE_REQUESTS:
                self.budget.charge(key, spent - PROBE_REQUESTS, limit=limit, now=now)
        except EcrcacheError as exc:
            logger.warning("the upstream budget could not be settled", extra={"upstream": key, "error": exc.message})

    def _block(self, key: str, limit: BucketLimit, until: datetime) -> None:
        self._settle(key, limit, PROBE_REQUESTS, until)

    # -- recording and announcing -----------------------------------------------------------------

    def _announce(self, decision: HealthDecision) -> CredentialHealth:
        """Send what the alert topic is owed, then the decision's events; the health with what was delivered
        recorded (per channel: an event the bus took is sent, one the topic missed is owed to it)."""
        health, now = decision.health, self.clock()
        owed = {text for text in sorted(health.alerts_owed) if not _alerted(self.notifier, text, health.credential)}
        if decision.changed is not None:
            sent, missed = _deliver(self.notifier, decision.changed, health.credential, now)
            health = health.model_copy(update={"announced": health.state}) if sent else health
            owed |= missed
        if decision.alert is not None:
            sent, missed = _deliver(self.notifier, decision.alert.event, health.credential, now)
            health = health.model_copy(update={"alerts_sent": decision.alert.sent}) if sent else health
            owed |= missed
        return health.model_copy(update={"alerts_owed": still_owed(owed)})

    def _record_sent(self, decided: CredentialHealth, delivered: CredentialHealth) -> None:
        """A mark wrote over the health after the events went out: record only what was delivered (set
        operations, whatever the mark wrote), so that it is not sent again."""
        try:
            self.store.record_sent(
                decided.credential,
                sent=delivered.alerts_sent - decided.alerts_sent,
                owed=delivered.alerts_owed - decided.alerts_owed,
                done=decided.alerts_owed - delivered.alerts_owed,
            )
            if delivered.announced is not None and delivered.announced != decided.announced:
                self.store.record_announced(decided.credential, delivered.announced)
        except EcrcacheError as exc:
            logger.warning(
                "what was delivered could not be recorded; it is sent again next time",
                extra={"credential": decided.credential, "error": exc.message},
            )

    def _forget(self, name: str) -> None:
        try:
            self.store.delete_health(name)
        except EcrcacheError as exc:
            logger.warning(
                "the health of a deleted credential could not be removed",
                extra={"credential": name, "error": exc.message},
            )


def _deliver(
    notifier: HealthNotifier, event: HealthEvent, credential: str, now: datetime
) -> tuple[bool, frozenset[str]]:
    """Publish ``event``: whether the bus took it, and what is owed to the alert topic (it did not take it)."""
    try:
        notifier.publish(event)
    except AlertNotSent as exc:
        metrics.add_metric(name="CredentialAlertsFailed", unit="Count", value=1)
        logger.error(
            "a credential health event went to the event bus, not to the alert topic; the topic gets it next time",
            extra={"credential": credential, "detail_type": event.detail_type, "error": exc.message},
        )
        return True, frozenset({owe(event, now)})
    except EcrcacheError as exc:
        metrics.add_metric(name="CredentialEventsFailed", unit="Count", value=1)
        logger.error(
            "a credential health event could not be sent; it is sent again next time",
            extra={"credential": credential, "detail_type": event.detail_type, "error": exc.message},
        )
        return False, frozenset()
    logger.info("credential health event sent", extra={"credential": credential, "detail_type": event.detail_type})
    return True, frozenset()


def _alerted(notifier: HealthNotifier, owed: str, credential: str) -> bool:
    """Send an event owed to the alert topic (to the topic alone); whether it took it."""
    event = owed_event(owed)
    try:
        notifier.alert(event)
    except EcrcacheError as exc:
        metrics.add_metric(name="CredentialAlertsFailed", unit="Count", value=1)
        logger.error(
            "an event owed to the alert topic could not be sent; it is sent again next time",
            extra={"credential": credential, "detail_type": event.detail_type, "error": exc.message},
        )
        return False
    logger.info("an owed alert was sent", extra={"credential": credential, "detail_type": event.detail_type})
    return True


class CredentialMarks:
    """Marks credentials ``Invalid`` at once on a credential error seen elsewhere (see the module)."""

    def __init__(
        self, *, store: CredentialHealthStore, notifier: HealthNotifier, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock

    def mark(self, errors: Iterable[CredentialError]) -> int:
        """Mark the credential of each error (one write per credential, the newest error's); how many were marked."""
        count = 0
        for credential, error in sorted(newest(errors).items()):
            health = marked(credential, message=error.message, evidence=error.evidence, at=error.at)
            try:
                before = self.store.mark_invalid(health)
            except EcrcacheError as exc:
                metrics.add_metric(name="CredentialMarkFailed", unit="Count", value=1)
                logger.error(
                    "a credential error could not be recorded on the credential's health; the daily check will see it",
                    extra={"credential": credential, "error": exc.message, "evidence": error.evidence},
                )
                continue
            count += 1
            logger.warning("credential marked Invalid", extra={"credential": credential, "evidence": error.evidence})
            metrics.add_metric(name="CredentialMarkedInvalid", unit="Count", value=1)
            if before is not None:
                self.announce(health, before)
        return count

    def announce(self, health: CredentialHealth, before: CredentialHealth) -> None:
        """``Credential Health Changed`` if ``health`` (just written over ``before``) is not the state users last
        heard of; then record that they heard of it (best effort: an unrecorded one is announced again)."""
        now = self.clock()
        event = health_changed(health, previous=announced_state(before), expires_at=before.expires_at, now=now)
        if event is None:
            return
        sent, owed = _deliver(self.notifier, event, health.credential, now)
        if not sent:
            return
        try:
            if owed:
                self.store.record_sent(health.credential, sent=frozenset(), owed=owed, done=frozenset())
            self.store.record_announced(health.credential, health.state)
        except EcrcacheError as exc:
            logger.warning(
                "an announced state could not be recorded",
                extra={"credential": health.credential, "error": exc.message},
            )

"""What a reconcile concludes, as values: each rule's new status, ownership changes and the run summary.

The reconcile service does the I/O (observe, apply, verify, read and write the status store); this
module decides what that means, the way :mod:`ecrcache.engine.planner` decides what to do:

* :func:`rule_findings` groups what one run found in one Region by rule (actions planned, failed,
  left after verify, blocked, cached repositories); :func:`rule_status` turns a rule's current
  :class:`~ecrcache.models.status.RuleStatus` and its findings into the new one (the ACK conditions
  ``Synced``, ``Terminal`` and ``Recoverable``, their reasons and messages, the drift counter and the
  last ``ValidatePullThroughCacheRule`` answer); :func:`region_failure_status` does the same for a
  Region that could not be reconciled at all.
* :func:`ownership_change` says which applied actions make a rule or template ours, or no longer ours;
  :func:`no_longer_desired` and :func:`forgettable` which statuses of rules no longer desired can be
  dropped (:func:`deleting_status`: the status of those kept while their deletion is under way);
  :func:`unverified` which applied fingerprints verify no longer trusts.
* :func:`upstream_health` turns an observation of the upstream (:class:`UpstreamObservation`: a
  pull-through cache event, or a validation via :func:`validation_observation`) into the rule's
  ``UpstreamHealthy`` condition, with a reason :func:`classify_upstream_failure` picks from ECR's
  failure code (or, failing that, its text): ``CredentialRejected``, ``RateLimited``,
  ``ImageNotFound``, ``UpstreamUnavailable``; ``PullFailed`` / ``ValidationFailed`` when neither says.
  An observation older than the one recorded changes nothing (events arrive in any order).
* :class:`RunSummary` is the run's counts (actions applied per kind, failed actions, Region failures,
  actions left after verify); :meth:`RunSummary.as_dict` is the ``summary`` a run record stores and
  the API returns, :func:`run_status` how the run ended.

Pure: no I/O, no clock (``now`` is passed in), no environment.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, ActionResult, PlannedAction
from ecrcache.engine.upstream_reasons import UpstreamReason, classify_upstream_failure, owning_prefix
from ecrcache.errors import RetryableError
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.rule import DeletionPolicy
from ecrcache.models.status import (
    Condition,
    ConditionType,
    RunStatus,
    UpstreamCheck,
    UpstreamCheckSource,
    UpstreamHealth,
)

if TYPE_CHECKING:
    from ecrcache.engine.plan import OwnedKind, Plan
    from ecrcache.errors import EcrcacheError
    from ecrcache.models.observed import DesiredRule, Ownership
    from ecrcache.models.status import (
        RuleStatus,
    )

__all__ = [
    "APPLYING",
    "DELETING_MESSAGE",
    "UNVERIFIED",
    "VALIDATE_AFTER",
    "Failure",
    "OwnershipChange",
    "RegionSummary",
    "RuleFindings",
    "RunSummary",
    "UpstreamObservation",
    "UpstreamReason",
    "Validation",
    "action_errors",
    "classify_upstream_failure",
    "deleting_status",
    "forgettable",
    "no_longer_desired",
    "ownership_change",
    "owning_prefix",
    "region_failure_status",
    "rule_findings",
    "rule_status",
    "run_status",
    "synced_message",
    "synced_reason",
    "unverified",
    "upstream_health",
    "validation_observation",
]

UNVERIFIED: Final = "unverified"
"""A fingerprint no desired setting has: the next fast resync writes the setting again."""

VALIDATE_AFTER: Final = frozenset({ActionKind.CREATE_RULE, ActionKind.UPDATE_RULE, ActionKind.REPLACE_RULE})
"""After these succeed, a rule with a credential is checked with ``ValidatePullThroughCacheRule``."""

Failure = tuple[PlannedAction, ActionResult]
"""One action that failed, with what ECR answered."""


# --------------------------------------------------------------------------------------------------
# Ownership


@dataclass(frozen=True, slots=True)
class OwnershipChange:
    """An applied action makes the ECR rule or template ``target`` ours (``owned``) or no longer ours."""

    kind: OwnedKind
    owned: bool


_OWNERSHIP: Final[Mapping[ActionKind, OwnershipChange]] = {
    ActionKind.CREATE_RULE: OwnershipChange("rule", owned=True),
    ActionKind.ADOPT_RULE: OwnershipChange("rule", owned=True),
    ActionKind.REPLACE_RULE: OwnershipChange("rule", owned=True),
    ActionKind.UPDATE_RULE: OwnershipChange("rule", owned=True),
    ActionKind.DELETE_RULE: OwnershipChange("rule", owned=False),
    ActionKind.CREATE_TEMPLATE: OwnershipChange("template", owned=True),
    ActionKind.ADOPT_TEMPLATE: OwnershipChange("template", owned=True),
    ActionKind.UPDATE_TEMPLATE: OwnershipChange("template", owned=True),
    ActionKind.DELETE_TEMPLATE: OwnershipChange("template", owned=False),
    ActionKind.REGISTER_EXCLUSION: OwnershipChange("exclusion", owned=True),
    ActionKind.DEREGISTER_EXCLUSION: OwnershipChange("exclusion", owned=False),
    ActionKind.FORGET_EXCLUSION: OwnershipChange("exclusion", owned=False),
}


def ownership_change(kind: ActionKind) -> OwnershipChange | None:
    """What applying an action of ``kind`` does to ownership; ``None`` for repository actions."""
    return _OWNERSHIP.get(kind)


def no_longer_desired(recorded: Iterable[str], desired: Sequence[DesiredRule]) -> list[str]:
    """The recorded statuses (prefixes) of one Region whose rule is no longer desired there."""
    wanted = {r.prefix for r in desired}
    return [prefix for prefix in recorded if prefix not in wanted]


def forgettable(
    stale: Iterable[str], *, retired: Sequence[DesiredRule], ownership: Ownership, desired_left: bool = True
) -> list[str]:
    """The statuses among ``stale`` to drop now: all but those of a ``deletion_policy: delete`` rule
    that still owns its ECR rule or template (the Region stays in the runs until they are deleted).

    None while ecrcache still owns a pull-time update exclusion in a Region no desired rule names
    (``desired_left`` false): a status keeps the Region in the runs until the exclusion is deregistered."""
    if ownership.exclusions and not desired_left:
        return []
    deleting = {r.prefix for r in retired if r.spec.deletion_policy is DeletionPolicy.DELETE}
    owned = ownership.rules | ownership.templates
    return [prefix for prefix in stale if not (prefix in deleting and prefix in owned)]


def unverified(applied: Mapping[str, AppliedFingerprints], names: Collection[str]) -> dict[str, AppliedFingerprints]:
    """The fingerprints of ``names`` that verify still finds wrong, marked :data:`UNVERIFIED` (kept
    non-empty, so a policy we applied can still be deleted); repositories with no record are left out."""
    return {
        name: AppliedFingerprints(
            lifecycle=UNVERIFIED if fp.lifecycle else None,
            policy=UNVERIFIED if fp.policy else None,
            tags=UNVERIFIED if fp.tags else None,
            tag_keys=fp.tag_keys,
        )
        for name in names
        if (fp := applied.get(name)) is not None
    }


# --------------------------------------------------------------------------------------------------
# Rule status


@dataclass(frozen=True, slots=True)
class RuleFindings:
    """What one run found for one rule in one Region."""

    planned: int = 0
    """Actions planned for the rule that call ECR (failed ones included)."""
    failures: tuple[Failure, ...] = ()
    """The rule's failed actions, then the Region's registry-level ones (the warmer's exclusion)."""
    shared_failures: int = 0
    """How many of ``failures`` are registry-level: every rule of the Region shows them (the exclusion
    is wanted because of them all), none counts them against its own ``planned`` actions."""
    left: tuple[PlannedAction, ...] = ()
    """Actions verify still planned after apply (the Region's registry-level ones included)."""
    blocked: str | None = None
    """Why the planner could not plan the rule (fully), if it could not."""
    pending: bool = False
    """The block waits for something under way (the Region's secret replica being created): it is
    ``Recoverable``, not ``Terminal``."""
    cached_repositories: int = 0
    applying: int = 0
    """Repositories of the rule whose changes were left to shard workers (too many for the run itself)."""
    applying_run: str | None = None
    """The run whose shard workers apply them (this run, or the one whose fan-out of the Region is unfinished)."""
    waiting: bool = False
    """:attr:`applying_run` is another run, whose unfinished fan-out the changes wait for."""


APPLYING: Final = "Applying"
"""The ``Synced`` reason of a rule whose repositories' changes shard workers are applying (a fast run's plan changed
more repositories than one shard): the next run after they report settles the condition."""


@dataclass(frozen=True, slots=True)
class Validation:
    """A ``ValidatePullThroughCacheRule`` answer; ``is_valid`` ``None`` when ECR could not be asked."""

    is_valid: bool | None
    failure: str | None


def rule_findings(
    prefixes: Sequence[str],
    *,
    region: str,
    plan: Plan,
    left: Plan,
    failures: Mapping[str, Sequence[Failure]],
    repositories: Iterable[str],
    applying: Mapping[str, str] | None = None,
    applying_run: str | None = None,
    waiting: bool = False,
) -> dict[str, RuleFindings]:
    """What a run found for each of ``prefixes`` (the desired rules of ``region``): from the plan it
    applied, what verify left, the failed actions (by rule) and the repositories observed after.
    Registry-level failures and leftovers (:data:`~ecrcache.engine.plan.REGISTRY_LEVEL`) go to every rule.
    ``applying``: the repositories (name -> rule) whose changes ``applying_run``'s shard workers apply (``waiting``:
    another run's, whose unfinished fan-out they wait for)."""
    shards = Counter((applying or {}).values())
    planned = Counter(a.rule_prefix for a in plan.actions if a.kind.calls_aws)
    left_by_rule: dict[str, list[PlannedAction]] = defaultdict(list)
    for action in left.actions:
        left_by_rule[action.rule_prefix].append(action)
    blocked = {b.prefix: b for b in plan.blocked if b.region == region}
    cached = Counter(owning_prefix(name, prefixes) for name in repositories)
    shared = tuple(failures.get(REGISTRY_LEVEL, ()))
    shared_left = tuple(left_by_rule.get(REGISTRY_LEVEL, ()))
    return {
        prefix: RuleFindings(
            planned=planned[prefix],
            failures=(*failures.get(prefix, ()), *shared),
            shared_failures=len(shared),
            left=(*left_by_rule.get(prefix, ()), *shared_left),
            blocked=blocked[prefix].reason if prefix in blocked else None,
            pending=prefix in blocked and blocked[prefix].pending,
            cached_repositories=cached.get(prefix, 0),
            applying=shards.get(prefix, 0),
            applying_run=applying_run if shards.get(prefix) else None,
            waiting=waiting and bool(shards.get(prefix)),
        )
        for prefix in prefixes
    }


def synced_reason(found: RuleFindings) -> str:
    """The ``Synced`` condition's reason: the first of blocked, an action failed, verify not converged."""
    if found.blocked:
        return "Pending" if found.pending else "Blocked"
    if found.failures:
        return "ApplyFailed"
    if found.left:
        return "NotConverged"
    return APPLYING if found.applying else "Converged"


def synced_message(found: RuleFindings) -> str:
    """The ``Synced`` condition's message: what to look at first."""
    if found.blocked:
        return found.blocked
    if found.failures:
        action, result = found.failures[0]
        more = f" (and {len(found.failures) - 1} more)" if len(found.failures) > 1 else ""
        return f"{action.kind} {action.target}: {result.code}: {result.message}{more}"
    if found.left:
        first = found.left[0]
        return (
            f"{len(found.left)} action(s) still planned after apply, e.g. {first.kind} {first.target}: {first.reason}"
        )
    if found.applying and found.waiting:
        return (
            f"changes to {found.applying} cached repositories of this rule wait for the unfinished fan-out of run "
            f"{found.applying_run} in this Region (GET /v1/runs/{found.applying_run}); the first reconcile after it "
            "makes what is still to do"
        )
    if found.applying:
        return (
            f"{found.applying} cached repositories of this rule are being brought to its settings by the shard workers "
            f"of run {found.applying_run} (GET /v1/runs/{found.applying_run}); the run sets this condition when they "
            "have all reported"
        )
    return ""


def _recoverable(found: RuleFindings) -> tuple[bool, str, str]:
    """The ``Recoverable`` condition: a retryable failure, or a pending block (status, reason, message)."""
    retryable = [r for _, r in found.failures if r.retryable]
    if retryable:
        return True, retryable[0].code or "Retryable", retryable[0].message or ""
    if found.blocked is not None and found.pending:
        return True, "Pending", found.blocked
    return False, "None", ""


def _conditions(status: RuleStatus, found: RuleFindings, now: datetime) -> RuleStatus:
    terminal = [r for _, r in found.failures if not r.retryable]
    blocked = found.blocked is not None and not found.pending
    synced = not found.failures and not found.left and found.blocked is None and not found.applying
    recoverable, recoverable_reason, recoverable_message = _recoverable(found)
    return (
        status.with_condition(
            ConditionType.SYNCED,
            status=synced,
            reason="Converged" if synced else synced_reason(found),
            message="" if synced else synced_message(found),
            now=now,
        )
        .with_condition(
            ConditionType.TERMINAL,
            status=bool(terminal) or blocked,
            reason=(terminal[0].code or "Terminal") if terminal else ("Blocked" if blocked else "None"),
            message=(terminal[0].message or "") if terminal else (found.blocked or "") if blocked else "",
            now=now,
        )
        .with_condition(
            ConditionType.RECOVERABLE,
            status=recoverable,
            reason=recoverable_reason,
            message=recoverable_message,
            now=now,
        )
    )


def rule_status(
    current: RuleStatus,
    found: RuleFindings,
    *,
    now: datetime,
    run_id: str,
    revision: int,
    validation: Validation | None = None,
) -> RuleStatus:
    """A rule's status after a run: the conditions, the cumulative drift corrected (actions that
    succeeded), the cached repositories, and the validation answer when the run asked for one."""
    corrected = found.planned - (len(found.failures) - found.shared_failures)
    status = current.model_copy(
        update={
            "last_reconciled_at": now,
            "last_run_id": run_id,
            "observed_revision": revision,
            "drift_corrected": current.drift_corrected + max(corrected, 0),
            "cached_repositories": found.cached_repositories,
        }
    )
    status = _conditions(status, found, now)
    if validation is None:
        return status
    checked = status.validation.model_copy(
        update={"is_valid": validation.is_valid, "failure": validation.failure, "checked_at": now}
    )
    return status.model_copy(update={"validation": checked})


DELETING_MESSAGE: Final = (
    "the rule is no longer desired here; ecrcache is removing what it owns for it in this Region (its ECR rule and "
    "template with deletion_policy: delete) and drops this status once that is verified"
)


def deleting_status(
    current: RuleStatus, found: RuleFindings, *, now: datetime, run_id: str, revision: int
) -> RuleStatus:
    """The status of a rule no longer desired whose ECR rule or template ecrcache still owns and deletes: not
    ``Synced``, reason ``Deleting`` (or why the deletion failed: ``ApplyFailed`` with ``Terminal`` /
    ``Recoverable`` as for any action). Dropped once nothing of it is owned any more (:func:`forgettable`)."""
    status = rule_status(current, found, now=now, run_id=run_id, revision=revision)
    if found.failures:
        return status
    return status.with_condition(
        ConditionType.SYNCED, status=False, reason="Deleting", message=DELETING_MESSAGE, now=now
    )


def region_failure_status(
    current: RuleStatus, error: EcrcacheError, *, now: datetime, run_id: str, revision: int
) -> RuleStatus:
    """A rule's status when its Region could not be reconciled at all: not ``Synced``, and
    ``Recoverable`` or ``Terminal`` as the error is."""
    kind = ConditionType.RECOVERABLE if isinstance(error, RetryableError) else ConditionType.TERMINAL
    status = current.with_condition(
        ConditionType.SYNCED, status=False, reason="RegionFailed", message=error.message, now=now
    ).with_condition(kind, status=True, reason=error.reason, message=error.message, now=now)
    return status.model_copy(update={"last_run_id": run_id, "last_reconciled_at": now, "observed_revision": revision})


def action_errors(region: str, failures: Mapping[str, Sequence[Failure]]) -> list[str]:
    """The run record's errors for the failed actions of one Region, by rule prefix (registry-level
    ones, such as the warmer's exclusion, with the Region only)."""
    return [
        f"{region}{f':{prefix}' if prefix else ''}: {action.kind} {action.target}: {result.code}: {result.message}"
        for prefix, found in sorted(failures.items())
        for action, result in found
    ]


# --------------------------------------------------------------------------------------------------
# Upstream health


_ADVICE: Final[Mapping[UpstreamReason, str]] = {
    UpstreamReason.CREDENTIAL_REJECTED: (
        "the upstream refused the rule's credential, or ECR could not read its secret: renew the token "
        "(ecrcache credentials set), or give the rule a credential if the upstream requires one"
    ),
    UpstreamReason.RATE_LIMITED: (
        "the upstream is rate limiting pulls: cached images are still served, new tags fail until the limit "
        "resets (an authenticated credential raises Docker Hub's limit)"
    ),
    UpstreamReason.IMAGE_NOT_FOUND: (
        "the upstream has no such image: check the repository path and tag (Docker Hub official images need library/)"
    ),
    UpstreamReason.UPSTREAM_UNAVAILABLE: (
        "the upstream did not answer or failed: cached images are still served; pulls of new tags fail until it is back"
    ),
    UpstreamReason.PULL_FAILED: "a pull through the cache failed upstream",
    UpstreamReason.VALIDATION_FAILED: "ECR could not validate the rule against its upstream",
}


@dataclass(frozen=True, slots=True)
class UpstreamObservation:
    """What ECR reported about the upstream once: a pull-through cache action, or a validation."""

    source: UpstreamCheckSource
    at: datetime
    healthy: bool
    failure_code: str | None = None
    failure: str | None = None
    """ECR's text for a failure (an event's ``failure-reason``, a validation's ``failure``)."""
    repository: str | None = None
    image: str | None = None


def _failed_reason(seen: UpstreamObservation) -> UpstreamReason:
    reason = classify_upstream_failure(seen.failure_code, seen.failure)
    if reason is not None:
        return reason
    return UpstreamReason.PULL_FAILED if seen.source is UpstreamCheckSource.PULL else UpstreamReason.VALIDATION_FAILED


def _what(seen: UpstreamObservation) -> str:
    if seen.source is UpstreamCheckSource.VALIDATION:
        return "validation"
    image = f"{seen.repository}:{seen.image}" if seen.repository and seen.image else seen.repository
    return f"pull of {image}" if image else "pull"


def _upstream_condition(seen: UpstreamObservation) -> tuple[UpstreamReason, str]:
    if seen.healthy:
        ok = UpstreamReason.PULL_SUCCEEDED if seen.source is UpstreamCheckSource.PULL else UpstreamReason.VALIDATED
        return ok, ""
    reason = _failed_reason(seen)
    detail = ": ".join(part for part in (seen.failure_code, seen.failure) if part)
    return reason, f"{_what(seen)} failed{f' ({detail})' if detail else ''}; {_ADVICE[reason]}"


def upstream_health(current: RuleStatus, seen: UpstreamObservation) -> UpstreamHealth | None:
    """The rule's ``UpstreamHealthy`` condition after ``seen``; ``None`` when a newer observation is
    recorded already (the older one changes nothing). ``last_transition`` moves only on a change of status."""
    if current.upstream is not None and current.upstream.observed_at > seen.at:
        return None
    reason, message = _upstream_condition(seen)
    previous = current.condition(ConditionType.UPSTREAM_HEALTHY)
    unchanged = previous is not None and previous.status == seen.healthy
    condition = Condition(
        type=ConditionType.UPSTREAM_HEALTHY,
        status=seen.healthy,
        reason=reason,
        message=message,
        last_transition=previous.last_transition if previous is not None and unchanged else seen.at,
    )
    check = UpstreamCheck(
        source=seen.source,
        observed_at=seen.at,
        healthy=seen.healthy,
        failure_code=None if seen.healthy else _cut(seen.failure_code, 128),
        repository=_cut(seen.repository, 256),
        image=_cut(seen.image, 300),
    )
    return UpstreamHealth(condition=condition, check=check)


def _cut(text: str | None, limit: int) -> str | None:
    """An event's field as the record keeps it: empty is none, longer than the model takes is cut."""
    return text[:limit] if text else None


def validation_observation(validation: Validation, *, at: datetime) -> UpstreamObservation | None:
    """A ``ValidatePullThroughCacheRule`` answer as an observation; ``None`` when ECR could not be asked."""
    if validation.is_valid is None:
        return None
    return UpstreamObservation(
        source=UpstreamCheckSource.VALIDATION, at=at, healthy=validation.is_valid, failure=validation.failure
    )


# --------------------------------------------------------------------------------------------------
# Run summary


@dataclass(frozen=True, slots=True)
class RegionSummary:
    """What one run did in one Region; ``failed`` when the Region could not be reconciled at all."""

    applied: tuple[tuple[ActionKind, int], ...] = ()
    """Actions applied, per kind, in the order each kind was first applied."""
    failed_actions: int = 0
    left_after_verify: int = 0
    failed: bool = False

    @classmethod
    def region_failure(cls) -> RegionSummary:
        return cls(failed=True)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The counts of one run, Region by Region (in the order they ran)."""

    regions: tuple[RegionSummary, ...] = ()

    @property
    def applied(self) -> dict[ActionKind, int]:
        """Actions applied, per kind."""
        counts: dict[ActionKind, int] = {}
        for region in self.regions:
            for kind, n in region.applied:
                counts[kind] = counts.get(kind, 0) + n
        return counts

    @property
    def applied_total(self) -> int:
        return sum(n for region in self.regions for _, n in region.applied)

    @property
    def failed_actions(self) -> int:
        return sum(region.failed_actions for region in self.regions)

    @property
    def region_failures(self) -> int:
        return sum(1 for region in self.regions if region.failed)

    @property
    def left_after_verify(self) -> int:
        return sum(region.left_after_verify for region in self.regions)

    def as_dict(self) -> dict[str, int]:
        """The run record's ``summary`` (stored, returned by the API, printed by the CLI).

        Keys: each action kind applied, ``failed_actions`` and ``region_failures`` when any, and
        ``left_after_verify`` once a Region was reconciled (0 included). Keys come in the order
        the Regions first produced them.
        """
        out: Counter[str] = Counter()
        for region in self.regions:
            if region.failed:
                out["region_failures"] += 1
                continue
            out.update({kind.value: n for kind, n in region.applied})
            if region.failed_actions:
                out["failed_actions"] += region.failed_actions
            out["left_after_verify"] += region.left_after_verify
        return dict(out)


def run_status(summary: RunSummary, *, errors: bool, busy: bool) -> RunStatus:
    """How a run ended: succeeded without an error or a busy Region, else partial if it applied anything."""
    if not errors and not busy:
        return RunStatus.SUCCEEDED
    return RunStatus.PARTIAL if summary.applied_total else RunStatus.FAILED

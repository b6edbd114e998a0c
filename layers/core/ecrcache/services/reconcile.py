"""Reconcile: desired state -> observe ECR -> plan -> apply -> verify -> record status.

One use case for every trigger (stream, schedule, CloudTrail drift, pull-through events, the API):
the trigger only chooses the :class:`Scope` (which Regions, which repositories to read deeply).
Rules and templates are always planned in full: reading them is two paginated calls, and it lets
any run repair drift on any rule. The plan is applied action by action; a failure on one action
never stops the others. Verify re-reads (deeply, for every repository the run touched) and plans
again: whatever is left is a recorded failure on its rule's ``Synced`` condition.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from ecrcache.engine.plan import ActionKind, Plan, PlannedAction
from ecrcache.engine.planner import plan as plan_regions
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.observed import AppliedFingerprints, DesiredRule, ObservedRegion, Ownership
from ecrcache.models.records import ResourceKind, Snapshot, WriteAction
from ecrcache.models.rule import DeletionPolicy, RuleSpec
from ecrcache.models.status import ConditionType, ReconcileRun, RuleStatus, RunStatus, RunTrigger
from ecrcache.observability import logger, metrics
from ecrcache.ports import ActionResult, EcrRegistry, OwnedKind, StateStore, StatusStore

LEASE_SECONDS = 300
UNVERIFIED = "unverified"  # a fingerprint no desired setting has: the next fast resync writes again
_OWNED: dict[ActionKind, tuple[OwnedKind, bool]] = {
    ActionKind.CREATE_RULE: ("rule", True),
    ActionKind.ADOPT_RULE: ("rule", True),
    ActionKind.REPLACE_RULE: ("rule", True),
    ActionKind.UPDATE_RULE: ("rule", True),
    ActionKind.DELETE_RULE: ("rule", False),
    ActionKind.CREATE_TEMPLATE: ("template", True),
    ActionKind.ADOPT_TEMPLATE: ("template", True),
    ActionKind.UPDATE_TEMPLATE: ("template", True),
    ActionKind.DELETE_TEMPLATE: ("template", False),
}
_VALIDATE_AFTER = frozenset({ActionKind.CREATE_RULE, ActionKind.UPDATE_RULE, ActionKind.REPLACE_RULE})


@dataclass(frozen=True, slots=True)
class Scope:
    """What one run covers. ``regions`` None means every Region a rule names (or the stack's);
    ``deep`` reads every repository's details, ``deep_repositories`` only those named."""

    regions: frozenset[str] | None = None
    deep: bool = False
    deep_repositories: frozenset[str] = frozenset()

    def describe(self) -> str:
        where = ",".join(sorted(self.regions)) if self.regions else "all"
        how = "deep" if self.deep else f"fast+{len(self.deep_repositories)}" if self.deep_repositories else "fast"
        return f"{where}:{how}"


@dataclass(slots=True)
class _RegionOutcome:
    applied: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[tuple[PlannedAction, ActionResult]]] = field(default_factory=lambda: defaultdict(list))
    touched: set[str] = field(default_factory=set)
    validated: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class DesiredByRegion:
    desired: dict[str, list[DesiredRule]]
    retired: dict[str, list[DesiredRule]]
    problems: dict[str, str]
    revision: int = 0


class ReconcileService:
    def __init__(
        self,
        *,
        desired: StateStore,
        status: StatusStore,
        registry: Callable[[str], EcrRegistry],
        clock: Callable[[], datetime],
        stack_region: str,
    ) -> None:
        self.desired = desired
        self.status = status
        self.registry = registry
        self.clock = clock
        self.stack_region = stack_region

    # -- inputs --------------------------------------------------------------------------------

    def desired_rules(self, snapshot: Snapshot, regions: Iterable[str]) -> DesiredByRegion:
        """Desired rules per Region, with credential names resolved to secret ARNs; and the owned
        rules whose desired rule is gone (retired), with the spec they had when deleted."""
        desired: dict[str, list[DesiredRule]] = defaultdict(list)
        problems: dict[str, str] = {}
        for prefix, stored in sorted(snapshot.rules.items()):
            try:
                spec = RuleSpec.model_validate(stored.spec)
            except ValidationError as exc:  # stored by an older version with other rules
                problems[prefix] = f"stored rule no longer validates: {exc.error_count()} error(s)"
                continue
            arn = None
            if spec.credential is not None:
                credential = snapshot.credentials.get(spec.credential)
                arn = credential.secret_arn if credential else None
                if arn is None:
                    problems[prefix] = f"credential {spec.credential!r} has no secret yet"
            for region in spec.regions or (self.stack_region,):
                desired[region].append(DesiredRule(prefix=prefix, spec=spec, credential_arn=arn))
        retired: dict[str, list[DesiredRule]] = defaultdict(list)
        for region in regions:
            owned = self.status.ownership(region)
            wanted = {r.prefix for r in desired.get(region, [])}
            for prefix in sorted((owned.rules | owned.templates) - wanted):
                last = self._last_spec(prefix)
                if last is not None:
                    retired[region].append(DesiredRule(prefix=prefix, spec=last))
        return DesiredByRegion(dict(desired), dict(retired), problems, snapshot.revision)

    def _last_spec(self, prefix: str) -> RuleSpec | None:
        """The spec a rule had when it was deleted (its history's last ``before``)."""
        page = self.desired.history(ResourceKind.RULE, prefix, limit=1, next_token=None)
        entry = page.items[0] if page.items else None
        if entry is None or entry.action is not WriteAction.DELETE or entry.before is None:
            return None
        try:
            return RuleSpec.model_validate(entry.before)
        except ValidationError:
            return None

    def regions(self, snapshot: Snapshot, scope: Scope, reconciled: Iterable[str] = ()) -> list[str]:
        """The stack's Region, every Region a rule names, and every Region with a rule status
        (``reconciled``): a rule deleted from, or moved out of, its only Region is retired there."""
        named = {self.stack_region, *reconciled}
        for stored in snapshot.rules.values():
            named.update(stored.spec.get("regions") or [])
        if scope.regions is not None:
            named &= scope.regions
        return sorted(named)

    def observe(
        self, region: str, prefixes: Sequence[str], *, deep: bool | Collection[str]
    ) -> tuple[ObservedRegion, Ownership]:
        observed, ownership, _ = self._observe(region, prefixes, deep=deep)
        return observed, ownership

    def _observe(
        self, region: str, prefixes: Sequence[str], *, deep: bool | Collection[str]
    ) -> tuple[ObservedRegion, Ownership, dict[str, AppliedFingerprints]]:
        applied = self.status.applied(region)
        observed = self.registry(region).observe(prefixes=prefixes, deep=deep, applied=applied)
        return observed, self.status.ownership(region), applied

    # -- plan (read-only: GET /v1/plan) --------------------------------------------------------

    def plan(self, scope: Scope = Scope()) -> Plan:
        snapshot = self.desired.snapshot()
        regions = self.regions(snapshot, scope, {record.region for record in self.status.all_status()})
        inputs = self.desired_rules(snapshot, regions)
        observed: dict[str, ObservedRegion] = {}
        ownership: dict[str, Ownership] = {}
        for region in regions:
            prefixes = _prefixes(inputs, region)
            deep: bool | Collection[str] = scope.deep or scope.deep_repositories
            observed[region], ownership[region] = self.observe(region, prefixes, deep=deep)
        return plan_regions(
            {r: inputs.desired.get(r, []) for r in regions},
            {r: inputs.retired.get(r, []) for r in regions},
            observed,
            ownership,
            deep=scope.deep,
        )

    # -- reconcile -----------------------------------------------------------------------------

    def reconcile(self, scope: Scope, trigger: RunTrigger, *, run_id: str | None = None) -> ReconcileRun:
        run = ReconcileRun(
            run_id=run_id or str(uuid.uuid4()),
            trigger=trigger,
            scope=scope.describe(),
            started_at=self.clock(),
        )
        self.status.put_run(run)
        snapshot = self.desired.snapshot()
        records = self.status.all_status()
        regions = self.regions(snapshot, scope, {record.region for record in records})
        inputs = self.desired_rules(snapshot, regions)
        summary: Counter[str] = Counter()
        errors: list[str] = [f"{prefix}: {problem}" for prefix, problem in sorted(inputs.problems.items())]
        busy: list[str] = []
        retryable_failure = False
        for region in regions:
            owner = f"{run.run_id}"
            if not self.status.acquire_lease(region, owner, now=self.clock(), ttl_seconds=LEASE_SECONDS):
                busy.append(region)
                continue
            try:
                outcome, left = self._reconcile_region(region, inputs, scope, run.run_id)
                self._forget_stale_status(region, inputs, [r.prefix for r in records if r.region == region])
            except EcrcacheError as exc:
                errors.append(f"{region}: {exc.message}")
                summary["region_failures"] += 1
                retryable_failure |= isinstance(exc, RetryableError)
                self._record_region_failure(
                    region, inputs.desired.get(region, []), exc, run.run_id, revision=inputs.revision
                )
                continue
            finally:
                self.status.release_lease(region, owner)
            summary.update(outcome.applied)
            for prefix, failures in sorted(outcome.failures.items()):
                errors.extend(f"{region}:{prefix}: {a.kind} {a.target}: {r.code}: {r.message}" for a, r in failures)
                summary["failed_actions"] += len(failures)
            summary["left_after_verify"] += len(left.actions)
        applied = sum(v for k, v in summary.items() if k in {a.value for a in ActionKind})
        status = RunStatus.SUCCEEDED if not errors and not busy else RunStatus.PARTIAL if applied else RunStatus.FAILED
        if busy:
            errors.append(f"another reconcile holds the lease for {', '.join(busy)}")
        done = run.model_copy(
            update={"finished_at": self.clock(), "status": status, "summary": dict(summary), "errors": tuple(errors)}
        )
        self.status.put_run(done)
        metrics.add_metric(name="ReconcileRuns", unit="Count", value=1)
        if summary.get("failed_actions"):
            metrics.add_metric(name="ReconcileFailed", unit="Count", value=summary["failed_actions"])
        if applied:
            metrics.add_metric(name="ChangesApplied", unit="Count", value=applied)
        logger.info("reconcile finished", extra={"run_id": run.run_id, "status": status, "summary": dict(summary)})
        if trigger in {RunTrigger.STREAM, RunTrigger.CLOUDTRAIL, RunTrigger.CACHE_EVENT}:
            # Event triggers are retried by Lambda/EventBridge; the schedules come back by themselves.
            if busy:
                raise RetryableError(f"another reconcile is running in {', '.join(busy)}; the trigger will retry")
            if retryable_failure:
                raise RetryableError(f"the reconcile failed for now ({errors[-1]}); the trigger will retry")
        return done

    def _mark_unverified(self, region: str, names: Collection[str]) -> None:
        current = self.status.applied(region)
        marked = {
            name: AppliedFingerprints(
                lifecycle=UNVERIFIED if fp.lifecycle else None,
                policy=UNVERIFIED if fp.policy else None,
                tags=UNVERIFIED if fp.tags else None,
            )
            for name in names
            if (fp := current.get(name)) is not None
        }
        if marked:
            self.status.record_applied(region, marked)

    def _forget_stale_status(self, region: str, inputs: DesiredByRegion, recorded: Sequence[str]) -> None:
        """Drop the status of rules no longer desired in ``region`` once nothing is left to do there:
        kept while a ``deletion_policy: delete`` rule still owns its ECR rule or template (the Region
        stays in the runs until they are deleted)."""
        wanted = {r.prefix for r in inputs.desired.get(region, [])}
        stale = [prefix for prefix in recorded if prefix not in wanted]
        if not stale:
            return
        owned = self.status.ownership(region)
        deleting = {r.prefix for r in inputs.retired.get(region, []) if r.spec.deletion_policy is DeletionPolicy.DELETE}
        for prefix in stale:
            if prefix in deleting and (prefix in owned.rules or prefix in owned.templates):
                continue
            self.status.delete_rule_status(region, prefix)

    def _record_region_failure(
        self, region: str, desired: Sequence[DesiredRule], exc: EcrcacheError, run_id: str, *, revision: int
    ) -> None:
        """Every rule of a Region that could not be reconciled at all is not Synced (best effort)."""
        now = self.clock()
        kind = ConditionType.RECOVERABLE if isinstance(exc, RetryableError) else ConditionType.TERMINAL
        for rule in desired:
            try:
                current = self.status.rule_status(region, rule.prefix) or RuleStatus()
                status = current.with_condition(
                    ConditionType.SYNCED, status=False, reason="RegionFailed", message=exc.message, now=now
                ).with_condition(kind, status=True, reason=exc.reason, message=exc.message, now=now)
                update = {"last_run_id": run_id, "last_reconciled_at": now, "observed_revision": revision}
                self.status.put_rule_status(region, rule.prefix, status.model_copy(update=update))
            except EcrcacheError:
                logger.exception("could not record a Region failure on a rule", extra={"prefix": rule.prefix})
                return

    def _reconcile_region(
        self, region: str, inputs: DesiredByRegion, scope: Scope, run_id: str
    ) -> tuple[_RegionOutcome, Plan]:
        prefixes = _prefixes(inputs, region)
        desired = inputs.desired.get(region, [])
        retired = inputs.retired.get(region, [])
        deep: bool | Collection[str] = scope.deep or scope.deep_repositories
        observed, ownership, applied = self._observe(region, prefixes, deep=deep)
        plan = plan_regions({region: desired}, {region: retired}, {region: observed}, {region: ownership})
        outcome = self._apply(region, plan, observed, applied)
        if any(a.kind.calls_aws for a in plan.actions):
            # Verify: re-read (deeply where we wrote) and plan again; what is left did not converge.
            check_deep: bool | Collection[str] = scope.deep or (outcome.touched | set(scope.deep_repositories))
            after, after_owned = self.observe(region, prefixes, deep=check_deep)
            left = plan_regions({region: desired}, {region: retired}, {region: after}, {region: after_owned})
            # What verify still finds wrong must not be trusted by the next fast resync: mark those
            # fingerprints unverified (kept non-empty, so a policy we applied can still be deleted).
            unsure = {a.target for a in left.actions if a.kind.scope == "repository"}
            if unsure:
                self._mark_unverified(region, unsure)
        else:  # nothing in ECR changed: the observation is still what verify would read
            after, left = observed, Plan()
        if scope.deep:  # the daily deep resync also checks every credential against its upstream
            outcome.validated.update(r.prefix for r in desired if r.spec.credential is not None)
        self._record_status(
            region,
            desired=desired,
            observed=after,
            plan=plan,
            left=left,
            outcome=outcome,
            run_id=run_id,
            revision=inputs.revision,
        )
        return outcome, left

    def _apply(
        self, region: str, plan: Plan, observed: ObservedRegion, applied: Mapping[str, AppliedFingerprints]
    ) -> _RegionOutcome:
        outcome = _RegionOutcome()
        registry = self.registry(region)
        applied_updates: dict[str, AppliedFingerprints] = {}
        for action in plan.actions:
            result = registry.apply(action)
            if not result.ok:
                outcome.failures[action.rule_prefix].append((action, result))
                logger.warning(
                    "action failed",
                    extra={
                        "kind": action.kind,
                        "target": action.target,
                        "code": result.code,
                        "retryable": result.retryable,
                    },
                )
                continue
            outcome.applied[action.kind.value] += 1
            if action.kind in _OWNED:
                kind, owned = _OWNED[action.kind]
                if owned:
                    self.status.record_owned(region, kind, action.target)
                else:
                    self.status.forget_owned(region, kind, action.target)
            if action.kind in _VALIDATE_AFTER:
                outcome.validated.add(action.target)
            if action.kind.scope == "repository":
                outcome.touched.add(action.target)
                if action.fingerprints:
                    repo = observed.repositories.get(action.target)
                    base = (
                        applied_updates.get(action.target) or (repo.applied if repo else None) or AppliedFingerprints()
                    )
                    applied_updates[action.target] = base.merged(action.fingerprints)
        if applied_updates:
            self.status.record_applied(region, applied_updates)
        gone = [name for name in applied if name not in observed.repositories]
        if gone:
            self.status.forget_applied(region, gone)
        return outcome

    def _record_status(
        self,
        region: str,
        *,
        desired: Sequence[DesiredRule],
        observed: ObservedRegion,
        plan: Plan,
        left: Plan,
        outcome: _RegionOutcome,
        run_id: str,
        revision: int,
    ) -> None:
        now = self.clock()
        applied_by_rule = Counter(a.rule_prefix for a in plan.actions if a.kind.calls_aws)
        left_by_rule: dict[str, list[PlannedAction]] = defaultdict(list)
        for action in left.actions:
            left_by_rule[action.rule_prefix].append(action)
        blocked = {b.prefix: b.reason for b in plan.blocked if b.region == region}
        repo_counts = Counter(_owning_prefix(name, [r.prefix for r in desired]) for name in observed.repositories)
        registry = self.registry(region)
        for rule in desired:
            prefix = rule.prefix
            current = self.status.rule_status(region, prefix) or RuleStatus()
            failures = outcome.failures.get(prefix, [])
            terminal = [r for _, r in failures if not r.retryable]
            retryable = [r for _, r in failures if r.retryable]
            corrected = applied_by_rule[prefix] - len(failures)
            status = current.model_copy(
                update={
                    "last_reconciled_at": now,
                    "last_run_id": run_id,
                    "observed_revision": revision,
                    "drift_corrected": current.drift_corrected + max(corrected, 0),
                    "cached_repositories": repo_counts.get(prefix, 0),
                }
            )
            synced = not failures and not left_by_rule.get(prefix) and prefix not in blocked
            status = status.with_condition(
                ConditionType.SYNCED,
                status=synced,
                reason="Converged" if synced else _reason(failures, left_by_rule.get(prefix), blocked.get(prefix)),
                message="" if synced else _message(failures, left_by_rule.get(prefix), blocked.get(prefix)),
                now=now,
            )
            status = status.with_condition(
                ConditionType.TERMINAL,
                status=bool(terminal) or prefix in blocked,
                reason=(terminal[0].code or "Terminal") if terminal else ("Blocked" if prefix in blocked else "None"),
                message=(terminal[0].message or "") if terminal else blocked.get(prefix, ""),
                now=now,
            )
            status = status.with_condition(
                ConditionType.RECOVERABLE,
                status=bool(retryable),
                reason=(retryable[0].code or "Retryable") if retryable else "None",
                message=(retryable[0].message or "") if retryable else "",
                now=now,
            )
            if prefix in outcome.validated and rule.spec.credential is not None:
                status = self._validate(registry, prefix, status, now)
            self.status.put_rule_status(region, prefix, status)

    @staticmethod
    def _validate(registry: EcrRegistry, prefix: str, status: RuleStatus, now: datetime) -> RuleStatus:
        try:
            valid, failure = registry.validate_rule(prefix)
        except EcrcacheError as exc:
            valid, failure = None, exc.message
        return status.model_copy(
            update={
                "validation": status.validation.model_copy(
                    update={"is_valid": valid, "failure": failure, "checked_at": now}
                )
            }
        )


def _prefixes(inputs: DesiredByRegion, region: str) -> list[str]:
    # ROOT rules never patch existing repositories, so they need no repository listing.
    rules = (*inputs.desired.get(region, []), *inputs.retired.get(region, []))
    return sorted({r.prefix for r in rules if r.prefix != "ROOT"})


def _owning_prefix(name: str, prefixes: Sequence[str]) -> str | None:
    best = None
    for prefix in prefixes:
        if prefix != "ROOT" and name.startswith(prefix + "/") and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def _reason(
    failures: Sequence[tuple[PlannedAction, ActionResult]], left: Sequence[PlannedAction] | None, blocked: str | None
) -> str:
    if blocked:
        return "Blocked"
    if failures:
        return "ApplyFailed"
    return "NotConverged" if left else "Converged"


def _message(
    failures: Sequence[tuple[PlannedAction, ActionResult]], left: Sequence[PlannedAction] | None, blocked: str | None
) -> str:
    if blocked:
        return blocked
    if failures:
        action, result = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return f"{action.kind} {action.target}: {result.code}: {result.message}{more}"
    if left:
        return (
            f"{len(left)} action(s) still planned after apply, e.g. {left[0].kind} {left[0].target}: {left[0].reason}"
        )
    return ""


__all__ = ["ReconcileService", "Scope"]

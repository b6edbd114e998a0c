"""Plan: desired state -> observe ECR -> the plan, read only (``GET /v1/plan``; the reconciler's first step).

:class:`PlanService` reads the desired state, the status store and ECR through
:class:`~ecrcache.ports.EcrReader` s: it has no way to change ECR, so the API (whose role cannot write
ECR anyway) holds nothing that could. :class:`~ecrcache.services.reconcile.ReconcileService` plans
with it, then applies.

Rules and templates are always planned in full: reading them is two paginated calls, and it lets
any run repair drift on any rule. The :class:`Scope` only chooses the Regions and which
repositories are read deeply. The registry's pull-time update exclusions are read (one more paginated
call) while the warm worker's role is set (``warmer_role_arn``) or ecrcache owns an exclusion in the
Region, so the plan keeps the warmer excluded and removes what ecrcache registered once unwanted.

A rule's credential is resolved per Region: the secret's ARN in the stack's Region, its replica's
elsewhere (:mod:`ecrcache.engine.replicas`). With a ``secrets`` reader, every credential's secret is
described (``DescribeSecret``, in the stack's Region) once per plan: the plan shows the replicas to add
(``replicate_secret`` / ``retry_replica``, before the rules that need them) and to remove
(``remove_replica``, once no ECR rule in the Region uses them after the plan), and a rule whose Region's
replica is not in sync is :class:`~ecrcache.engine.plan.Blocked` (``pending`` while it is being made).
Without one, rules outside the stack's Region that take a credential are blocked: nothing tells their
Region's secret.

A deep plan may be given a ``stop`` (the API's time budget: API Gateway answers 504 after 29 s): the
repositories its deep read did not reach are compared on the fast path, and the plan says it is
incomplete (``complete`` false, a note per Region), never a timeout.

Two narrower reads serve desired-state writes: :meth:`PlanService.ownership_check` (the
:class:`~ecrcache.engine.plan.Blocked` entries the plan will show for the rules a write touches, so
a dry run and an apply say what the plan says) and :meth:`PlanService.rules_in_ecr` (what ECR holds,
for the per-Region rule quota).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from ecrcache import __version__
from ecrcache.engine.deadline import Deadline
from ecrcache.engine.forwarders import forwarder_regions
from ecrcache.engine.ownership import ownership_block
from ecrcache.engine.plan import ActionResult, Note, Plan
from ecrcache.engine.planner import plan as plan_regions
from ecrcache.engine.quiet import quiet_digest
from ecrcache.engine.replicas import (
    CredentialSecret,
    credential_in,
    plan_replica_removals,
    plan_replicas,
    replica_regions,
    wanted_regions,
)
from ecrcache.engine.role_path import ANY_ROLE
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.credential import secret_name
from ecrcache.models.observed import CredentialWait, DesiredRule
from ecrcache.models.records import ResourceKind, WriteAction
from ecrcache.models.region_records import RegionStatus
from ecrcache.models.rule import RuleSpec
from ecrcache.models.secret_replica import replica_arn
from ecrcache.models.status import RuleStatusRecord

if TYPE_CHECKING:
    from ecrcache.engine.plan import Blocked, PlannedAction
    from ecrcache.engine.role_path import RoleScope
    from ecrcache.models.observed import ObservedRegion, Ownership
    from ecrcache.models.records import Snapshot
    from ecrcache.models.region_records import RegionState
    from ecrcache.models.status import RuleStatus
    from ecrcache.ports import EcrReader, SecretReplicaReader, StateStore, StatusStore
    from ecrcache.services.forwarders import ForwarderPlanner

__all__ = [
    "FAST_SCOPE",
    "DesiredByRegion",
    "OwnershipCheck",
    "PlanService",
    "ReplicaFailures",
    "Scope",
    "Secrets",
    "release_code",
    "unread_plan",
]

Secrets = Mapping[str, CredentialSecret]
"""Credential name -> its secret as described (credentials with a secret only)."""
ReplicaFailures = Mapping[tuple[str, str], ActionResult]
"""``(credential, Region)`` -> the replica action of this run that failed there."""


def release_code() -> str:
    """The planning code's identity when no finer one is given: the package's version."""
    return __version__


@dataclass(frozen=True, slots=True)
class Scope:
    """What one run covers. ``regions`` None means every Region a rule names (or the stack's);
    ``deep`` reads every repository's details, ``deep_repositories`` only those named, ``new_repositories``
    those named that a run has not settled yet since they were created (an event saying a repository is new
    or was imported into: its settings are applied once, not once per event about it)."""

    regions: frozenset[str] | None = None
    deep: bool = False
    deep_repositories: frozenset[str] = frozenset()
    new_repositories: frozenset[str] = frozenset()

    def describe(self) -> str:
        where = ",".join(sorted(self.regions)) if self.regions else "all"
        named = len(self.deep_repositories | self.new_repositories)
        how = "deep" if self.deep else f"fast+{named}" if named else "fast"
        return f"{where}:{how}"

    @property
    def deep_read(self) -> bool | Collection[str]:
        """What :meth:`~ecrcache.ports.EcrReader.observe` reads deeply: everything, or the named repositories."""
        return self.deep or self.deep_repositories


FAST_SCOPE: Final = Scope()
"""Every Region, the fast path (what ``GET /v1/plan`` answers without parameters)."""


@dataclass(frozen=True, slots=True)
class DesiredByRegion:
    """The Regions a run covers, the desired rules of each, the owned rules whose desired rule is gone
    (retired, with the spec they had when deleted) and the rules that could not be read."""

    desired: dict[str, list[DesiredRule]]
    retired: dict[str, list[DesiredRule]]
    problems: dict[str, str]
    revision: int = 0
    regions: tuple[str, ...] = ()
    secrets: Secrets = field(default_factory=dict)
    """Every credential's secret as described (empty without a ``secrets`` reader)."""
    wanted_replicas: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Credential -> the Regions other than the stack's its desired rules name (all rules, any scope)."""
    recorded: Mapping[str, RegionStatus] = field(default_factory=dict)
    """Region -> what the status store held for it when the run read it (every Region with an item)."""
    home: RegionState | None = None
    """The stack Region's records as read with the statuses (its observe reuses them)."""

    def state_of(self, region: str) -> RegionState | None:
        """The Region's records when they were read with the statuses (the stack's Region, its applied fingerprints
        with them), else ``None``."""
        home = self.home
        return home if home is not None and home.status.region == region and home.applied_read else None

    def status_of(self, region: str) -> RegionStatus:
        """The Region's status as read with every Region's (none recorded: an empty one)."""
        return self.recorded.get(region) or RegionStatus(region=region)

    def desired_in(self, region: str) -> list[DesiredRule]:
        return self.desired.get(region, [])

    def retired_in(self, region: str) -> list[DesiredRule]:
        return self.retired.get(region, [])

    named: frozenset[str] = frozenset()
    """Every Region a stored rule names (whatever the scope), read from the raw specs as :meth:`PlanService.regions`
    reads them: a rule that no longer validates (a problem) still names its Regions, so their forwarders stay."""

    @property
    def named_regions(self) -> frozenset[str]:
        """The Regions where at least one desired rule is wanted, or a stored rule names (whatever the scope)."""
        return frozenset(region for region, rules in self.desired.items() if rules) | self.named

    def prefixes(self, region: str) -> list[str]:
        """The prefixes whose repositories are listed (``ROOT`` rules never patch existing repositories)."""
        rules = (*self.desired_in(region), *self.retired_in(region))
        return sorted({r.prefix for r in rules if r.prefix != ROOT_PREFIX})


@dataclass(frozen=True, slots=True)
class OwnershipCheck:
    """The rules a write touches that the plan will show Blocked (ECR holds a rule or template with
    their prefix that ecrcache does not own), and the Regions that could not be read."""

    blocked: list[Blocked]
    warnings: list[str]


def deleted_spec(store: StateStore, kind: ResourceKind, name: str) -> Mapping[str, Any] | None:
    """The spec a resource had when it was deleted (its history's last ``before``); ``None`` when its
    last change was not a deletion."""
    page = store.history(kind, name, limit=1, next_token=None)
    entry = page.items[0] if page.items else None
    if entry is None or entry.action is not WriteAction.DELETE:
        return None
    return entry.before


FORWARDER_UNREAD: Final = (
    "event forwarder not read: time budget (the deep read used the API's time). Plan this Region alone "
    "(region=...) to see its forwarder; the reconciler reads it on every run."
)
"""The note of a Region whose event forwarder a plan had no time left to read."""


def unread_plan(observed: Iterable[ObservedRegion]) -> Plan:
    """An empty plan, incomplete with a note per Region whose deep read stopped before every repository."""
    notes = tuple(
        Note(
            region=found.region,
            prefix="",
            message=(
                f"deep read stopped at the API's time budget: {len(found.unread)} of {len(found.repositories)} "
                "cached repositories were not read deeply and were compared with what ecrcache last applied "
                "(e.g. " + ", ".join(found.unread[:3]) + "). For a full deep plan, plan one Region at a time "
                "(region=...); the daily deep resync repairs drift in every repository."
            ),
        )
        for found in observed
        if found.unread
    )
    return Plan(notes=notes, complete=not notes)


def region_share(stop: Callable[[], bool] | None, regions_left: int) -> Callable[[], bool] | None:
    """The ``stop`` of the next of ``regions_left`` Regions: a :class:`Deadline`'s equal share of the time left
    now (so a Region is never left only what the ones before it did not spend), any other ``stop`` as it is."""
    return stop.share(regions_left) if isinstance(stop, Deadline) else stop


class PlanService:
    """Desired state, ownership and ECR (read only) -> what the reconciler would do."""

    def __init__(
        self,
        *,
        desired: StateStore,
        status: StatusStore,
        registry: Callable[[str], EcrReader],
        stack_region: str,
        warmer_role_arn: str | None = None,
        secrets: SecretReplicaReader | None = None,
        forwarders: ForwarderPlanner | None = None,
        role_path: RoleScope = ANY_ROLE,
        planner_code: Callable[[], str] = release_code,
    ) -> None:
        self.desired = desired
        self.planner_code = planner_code
        """The planning code's identity, part of every quiet digest (:mod:`ecrcache.adapters.code_identity`)."""
        self.forwarders = forwarders
        """Plans the event forwarders of the Regions other than the stack's (``None``: the feature is off)."""
        self.status = status
        self.registry = registry
        self.stack_region = stack_region
        self.warmer_role_arn = warmer_role_arn or None
        """The warm worker's role, kept registered as a pull-time update exclusion (``None``: none)."""
        self.role_path = role_path
        """The stack's EcrRolePath: a rule naming a role outside it is blocked (the reconciler may not pass it)."""
        self.secrets = secrets
        """Reads credentials' secrets and their replicas (``None``: rules outside the stack's Region
        that take a credential are blocked)."""

    def plan(self, scope: Scope = FAST_SCOPE, *, stop: Callable[[], bool] | None = None) -> Plan:
        """The plan for ``scope``. ``stop`` (a caller's time budget, e.g. the API's): asked before each
        repository's deep read; once it says so, the rest are compared on the fast path and the plan is
        marked incomplete with a note per Region (never a timeout: the API Gateway integration has 29 s).
        A :class:`Deadline` is shared out between the Regions (:func:`region_share`), and bounds the reads
        under way too (:meth:`Deadline.hard_seconds_left`)."""
        snapshot = self.desired.snapshot(warm_sets=False)
        secrets = self.read_secrets(snapshot)
        inputs, _ = self.read_desired(scope, snapshot=snapshot, secrets=secrets)
        observed: dict[str, ObservedRegion] = {}
        ownership: dict[str, Ownership] = {}
        for index, region in enumerate(inputs.regions):
            budget = region_share(stop, len(inputs.regions) - index)
            observed[region], state = self.observe_region(
                region, inputs.prefixes(region), deep=scope.deep_read, stop=budget, state=inputs.state_of(region)
            )
            ownership[region] = state.status.ownership
        planned = plan_regions(
            {r: inputs.desired_in(r) for r in inputs.regions},
            {r: inputs.retired_in(r) for r in inputs.regions},
            observed,
            ownership,
            deep=scope.deep,
            warmer_role=self.warmer_role_arn,
            role_path=self.role_path,
        )
        removals, kept = plan_replica_removals(
            inputs.secrets,
            inputs.wanted_replicas,
            {region: found.rules for region, found in observed.items()},
            home=self.stack_region,
            planned=planned.actions,
        )
        replicas = Plan(actions=(*self.replica_plan(snapshot, secrets, scope), *removals), unmanaged=tuple(kept))
        forwarders = self.forwarder_plan(inputs, stop=stop)
        return Plan.merge([planned, replicas, unread_plan(observed.values()), forwarders])

    def forwarder_plan(self, inputs: DesiredByRegion, *, stop: Callable[[], bool] | None = None) -> Plan:
        """The event forwarder actions of the Regions ``inputs`` covers; a Region whose forwarder cannot be read
        gets a note (its rules are planned all the same).

        ``stop`` (the plan's time budget, see :meth:`plan`) is asked before each Region's reads: once it says so,
        the Regions left get a note instead (``DescribeRule`` and ``ListTargetsByRule`` under retries could
        otherwise take the answer past API Gateway's 29 s) and the plan is incomplete."""
        if self.forwarders is None:
            return Plan()
        wanted = forwarder_regions(inputs.named_regions, self.stack_region)
        actions: list[PlannedAction] = []
        notes: list[Note] = []
        complete = True
        for region in inputs.regions:
            if region == self.stack_region:
                continue
            if stop is not None and stop():
                notes.append(Note(region=region, prefix="", message=FORWARDER_UNREAD))
                complete = False
                continue
            try:
                action = self.forwarders.plan(region, wanted=region in wanted)
            except EcrcacheError as exc:
                notes.append(Note(region=region, prefix="", message=f"event forwarder not read: {exc.message}"))
                continue
            if action is not None:
                actions.append(action)
        return Plan(actions=tuple(actions), notes=tuple(notes), complete=complete)

    def read_secrets(self, snapshot: Snapshot) -> dict[str, CredentialSecret]:
        """Every credential's secret (``DescribeSecret``; none without a reader); a secret that cannot
        be read carries why (its rules outside the stack's Region wait, the others are not affected)."""
        if self.secrets is None:
            return {}
        found: dict[str, CredentialSecret] = {}
        for name, credential in sorted(snapshot.credentials.items()):
            if credential.secret_arn is None:
                continue
            try:
                observed = self.secrets.describe(secret_name(name))
            except EcrcacheError as exc:
                found[name] = CredentialSecret(name, credential.secret_arn, error=exc.message)
                continue
            found[name] = CredentialSecret(name, credential.secret_arn, observed=observed)
        return found

    def replica_plan(self, snapshot: Snapshot, secrets: Secrets, scope: Scope) -> list[PlannedAction]:
        """The replicas to add (or retry) for the Regions ``scope`` covers."""
        wanted = wanted_regions((stored.spec for stored in snapshot.rules.values()), self.stack_region)
        return plan_replicas(secrets, wanted, home=self.stack_region, regions=scope.regions)

    def read_desired(
        self,
        scope: Scope,
        *,
        snapshot: Snapshot | None = None,
        secrets: Secrets | None = None,
        failures: ReplicaFailures | None = None,
        applied: bool = True,
    ) -> tuple[DesiredByRegion, list[RuleStatusRecord]]:
        """The desired rules of every Region ``scope`` covers, and every rule status recorded.

        ``snapshot`` and ``secrets`` are read when not given; ``failures``: the replica actions of this
        run that failed (their rules wait with the reason). ``applied``: read the stack Region's applied
        fingerprints with the statuses (else the statuses only: a reconcile reads them when it needs them)."""
        snapshot = snapshot if snapshot is not None else self.desired.snapshot(warm_sets=False)
        secrets = secrets if secrets is not None else self.read_secrets(snapshot)
        home = self.status.read_region(self.stack_region, applied=applied)
        recorded = {home.status.region: home.status, **home.others}
        if not home.status.migrated:  # the former layout: every Region's statuses in a partition of their own
            recorded = self._with_legacy(recorded)
        reconciled = {region for region, found in recorded.items() if found.statuses} | replica_regions(
            secrets.values()
        )
        if self.forwarders is not None:  # a Region keeps being reconciled until its forwarder is removed
            reconciled |= {region for region, found in recorded.items() if found.forwarder is not None}
        regions = self.regions(snapshot, scope, reconciled)
        inputs = self.desired_rules(snapshot, regions, secrets=secrets, failures=failures or {}, recorded=recorded)
        inputs = replace(inputs, recorded=recorded, home=home)
        records = [
            RuleStatusRecord(region=region, prefix=prefix, status=status)
            for region, found in sorted(recorded.items())
            for prefix, status in found.statuses.items()
        ]
        return inputs, records

    def _with_legacy(self, recorded: Mapping[str, RegionStatus]) -> dict[str, RegionStatus]:
        """``recorded`` with what the former layout holds (rule statuses and forwarder records, each in a
        partition of its own), read until the store is migrated; the current layout wins."""
        merged = dict(recorded)
        legacy: dict[str, dict[str, RuleStatus]] = defaultdict(dict)
        for record in self.status.all_status():
            legacy[record.region][record.prefix] = record.status
        for region, statuses in legacy.items():
            merged.setdefault(region, RegionStatus(region=region, statuses=statuses, migrated=False))
        for found in self.status.forwarder_statuses():
            region_status = merged.get(found.region) or RegionStatus(region=found.region, migrated=False)
            if region_status.forwarder is None:
                merged[found.region] = region_status.model_copy(update={"forwarder": found.status})
        return merged

    def named_in(self, snapshot: Snapshot) -> set[str]:
        """Every Region a stored rule names, from the raw specs (the stack's for a rule naming none)."""
        named: set[str] = set()
        for stored in snapshot.rules.values():
            regions = stored.spec.get("regions")
            named.update(regions if isinstance(regions, list) and regions else [self.stack_region])
        return {region for region in named if isinstance(region, str)}

    def regions(self, snapshot: Snapshot, scope: Scope, reconciled: Iterable[str] = ()) -> list[str]:
        """The stack's Region, every Region a rule names, and every Region with a rule status, a
        secret replica or an event forwarder (``reconciled``): a rule deleted from, or moved out of, its only Region is
        retired there, and a replica no rule wants is removed once ECR there is read."""
        named = {self.stack_region, *reconciled, *self.named_in(snapshot)}
        if scope.regions is not None:
            named &= scope.regions
        return sorted(named)

    def desired_rules(
        self,
        snapshot: Snapshot,
        regions: Sequence[str],
        *,
        secrets: Secrets | None = None,
        failures: ReplicaFailures | None = None,
        recorded: Mapping[str, RegionStatus] | None = None,
        retired: bool = True,
    ) -> DesiredByRegion:
        """Desired rules per Region, with credential names resolved to the secret's ARN in each Region;
        and the owned rules whose desired rule is gone (retired), with the spec they had when deleted
        (``retired`` false: not looked for, which reads the Regions' ownership and the deleted rules' history:
        a deep-resync shard plans only the desired rules' repositories)."""
        desired: dict[str, list[DesiredRule]] = defaultdict(list)
        problems: dict[str, str] = {}
        secrets = secrets or {}
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
                secret = secrets.get(spec.credential or "")
                found, wait = self._credential(region, arn, secret, failures or {})
                desired[region].append(
                    DesiredRule(prefix=prefix, spec=spec, credential_arn=found, credential_wait=wait)
                )
        wanted = wanted_regions((stored.spec for stored in snapshot.rules.values()), self.stack_region)
        return DesiredByRegion(
            dict(desired),
            self._retired(regions, desired, recorded or {}) if retired else {},
            problems,
            snapshot.revision,
            tuple(regions),
            secrets=secrets,
            wanted_replicas=wanted,
            named=frozenset(self.named_in(snapshot)),
        )

    def _credential(
        self, region: str, arn: str | None, secret: CredentialSecret | None, failures: ReplicaFailures
    ) -> tuple[str | None, CredentialWait | None]:
        """A credential's secret ARN in ``region`` (``arn``: the primary's, recorded) and why a rule
        there must wait for it."""
        if arn is None or region == self.stack_region:
            return arn, None
        if secret is None:
            return replica_arn(arn, region), CredentialWait(
                reason=(
                    f"the credential's secret has no known replica in {region}: this service does not read "
                    "Secrets Manager replication"
                ),
                pending=False,
            )
        return credential_in(region, secret, home=self.stack_region, failures=failures)

    def _retired(
        self, regions: Sequence[str], desired: Mapping[str, list[DesiredRule]], recorded: Mapping[str, RegionStatus]
    ) -> dict[str, list[DesiredRule]]:
        """The owned rules and templates of ``regions`` whose desired rule is gone, with their last spec
        (ownership as ``recorded`` when it was read with the statuses)."""
        retired: dict[str, list[DesiredRule]] = defaultdict(list)
        for region in regions:
            found = recorded.get(region)
            owned = found.ownership if found is not None and found.migrated else self.status.ownership(region)
            wanted = {r.prefix for r in desired.get(region, [])}
            for prefix in sorted((owned.rules | owned.templates) - wanted):
                last = self._last_spec(prefix)
                if last is not None:
                    retired[region].append(DesiredRule(prefix=prefix, spec=last))
        return dict(retired)

    def _last_spec(self, prefix: str) -> RuleSpec | None:
        """The spec a rule had when it was deleted, if it still validates."""
        before = deleted_spec(self.desired, ResourceKind.RULE, prefix)
        if before is None:
            return None
        try:
            return RuleSpec.model_validate(before)
        except ValidationError:
            return None

    def ownership_check(self, rules: Mapping[str, RuleSpec]) -> OwnershipCheck:
        """What the plan will say about ownership for ``rules`` (prefix -> spec, as a write leaves
        them): the same :func:`~ecrcache.engine.ownership.ownership_block` the planner runs, on ECR's
        rules and templates and the ownership records of each Region they name. Best effort: a
        Region that cannot be read is a warning, never an error (the write stands on its own)."""
        by_region: dict[str, list[DesiredRule]] = defaultdict(list)
        for prefix, spec in sorted(rules.items()):
            for region in spec.regions or (self.stack_region,):
                by_region[region].append(DesiredRule(prefix=prefix, spec=spec))
        blocked: list[Blocked] = []
        warnings: list[str] = []
        for region, wanted in sorted(by_region.items()):
            try:
                observed = self.registry(region).observe(prefixes=(), deep=False, applied={})
                ownership = self.status.ownership(region)
            except EcrcacheError as exc:
                warnings.append(f"could not check {region} for rules ecrcache does not own: {exc.message}")
                continue
            blocked.extend(found for rule in wanted if (found := ownership_block(rule, observed, ownership)))
        return OwnershipCheck(blocked, warnings)

    def rules_in_ecr(self, region: str) -> frozenset[str]:
        """The prefixes of every pull-through cache rule ECR holds in ``region`` (desired or not).

        Raises ``RetryableError`` when ECR cannot be read: the quota cannot be checked honestly.
        """
        try:
            held = self.registry(region).rules()
        except EcrcacheError as exc:
            raise RetryableError(
                f"could not read ECR in {region} to check its pull-through cache rule quota ({exc.message})",
                reason=exc.reason,
            ) from exc
        return frozenset(held)

    def plan_region(self, region: str, inputs: DesiredByRegion, observed: ObservedRegion, ownership: Ownership) -> Plan:
        """One Region's rule plan (a reconcile plans each Region as it reaches it)."""
        return plan_regions(
            {region: inputs.desired_in(region)},
            {region: inputs.retired_in(region)},
            {region: observed},
            {region: ownership},
            warmer_role=self.warmer_role_arn,
            role_path=self.role_path,
        )

    def digest(self, region: str, inputs: DesiredByRegion, observed: ObservedRegion, ownership: Ownership) -> str:
        """The Region's quiet digest now (:func:`~ecrcache.engine.quiet.quiet_digest`: its fast plan's inputs but
        the applied fingerprints)."""
        return quiet_digest(
            inputs.desired_in(region),
            inputs.retired_in(region),
            observed,
            ownership,
            warmer_role=self.warmer_role_arn,
            role_path=self.role_path,
            code=self.planner_code(),
        )

    def observe_region(
        self,
        region: str,
        prefixes: Sequence[str],
        *,
        deep: bool | Collection[str],
        stop: Callable[[], bool] | None = None,
        state: RegionState | None = None,
    ) -> tuple[ObservedRegion, RegionState]:
        """ECR in ``region``, and the Region's records (read now, in one read, unless ``state`` is given).

        The pull-time update exclusions are read only while a warmer role is set or ecrcache owns one
        there (without either there is nothing to plan for them, and the call is saved). ``stop``: see
        :meth:`plan` (only the deep read asks it)."""
        state = state if state is not None else self.status.read_region(region)
        reader = self.registry(region)
        observed = reader.observe(prefixes=prefixes, deep=deep, applied=dict(state.applied), stop=stop)
        if self.warmer_role_arn or state.status.ownership.exclusions:
            observed = observed.model_copy(update={"exclusions": reader.pull_time_exclusions()})
        return observed, state

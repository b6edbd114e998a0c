"""The reconciler's planning engine: ``desired + observed -> Plan`` (a value; see :mod:`.plan`).

Pure: no I/O, no clock, no environment. The service observes ECR, resolves credentials and
ownership, calls :func:`plan` (or :func:`plan_region`), applies exactly the plan's actions, and
verifies by observing and planning again, expecting an empty plan.

What is planned, per Region (the ACK ``Sync`` shape: create if missing, update only when the
essences differ; :mod:`.essence` defines "differ"):

* **Ownership** first: :func:`~ecrcache.engine.ownership.claim` alone decides whether a rule or
  template is ecrcache's to change. A desired prefix whose rule or template in ECR is not ecrcache's
  is :class:`~.plan.Blocked` unless the rule says ``adopt: true``: nothing is planned for it (not
  its rule, template or repositories), identical or not.
* **The credential's secret in the Region** next: a rule whose ``credential_wait`` is set (its
  Region's replica of the secret is not in sync, or failed) is :class:`~.plan.Blocked` with that
  reason (``pending`` while the replica is being created), unless ECR's rule already uses the
  secret's ARN there and the wait is pending. Secret replicas themselves are planned by
  :mod:`.replicas` (they are the credential's, not one Region's).
* **Roles** then: a rule whose ``custom_role_arn`` or ``creation_role_arn`` is outside the stack's
  ``EcrRolePath`` (``role_path``) is :class:`~.plan.Blocked`: the reconciler may not pass it (:mod:`.role_path`).
* **Rules.** Missing: ``create_rule``. Found, not owned, ``adopt: true``: ``adopt_rule`` when it
  already matches (only ownership is recorded), else an update or replace whose reason says it
  takes over the rule. Credential / role changed: ``update_rule``.
  Upstream URL, registry or upstream repository prefix changed - or a role to be removed, which
  ``UpdatePullThroughCacheRule`` cannot clear - : ``replace_rule`` (delete + create, one action).
* **Templates** (prefix = the rule's ECR prefix, ``appliedFor`` containing ``PULL_THROUGH_CACHE``):
  the same create / adopt / update. An update keeps ``appliedFor`` values someone else set (e.g.
  ``CREATE_ON_PUSH``) and sends the union: other users of the template are not cut off. It clears
  what the rule no longer sets (``repositoryPolicy``/``lifecyclePolicy``/``customRoleArn`` ``""``,
  ``resourceTags`` ``[]``); a description is compared and sent only when the rule sets one.
* **Retired rules** (deleted desired rules with their last spec): the ECR rule and template are
  deleted only when the controller owns them and ``deletion_policy`` is ``delete`` (and a template
  only when it applies to nothing but pull-through cache); otherwise they are reported as
  :class:`~.plan.Unmanaged`. Cached repositories are never deleted.
* **Unmanaged.** Rules and templates that are neither desired nor retired are reported, never changed.
* **The warm worker's pull-time update exclusion** (registry-level, when ``warmer_role`` is given and
  the exclusions were read): registered in every Region a desired rule names, deregistered only where
  ecrcache registered it and it is no longer wanted (:mod:`.exclusions`).
* **Repositories.** A repository belongs to the rule with the longest prefix ``p`` such that its
  name starts with ``p + "/"``, among every rule known in the Region (desired, retired and found in
  ECR), so a repository cached by a rule ecrcache does not manage is left alone. Repositories of
  ``ROOT`` rules are never patched (they cannot be told from ordinary repositories; a note is
  reported once per ROOT rule). For the others: lifecycle policy, repository policy, tags and tag
  mutability are compared with the rule's (deep read) or, when ``details`` were not read (fast
  path), the recorded fingerprints are compared with the rule's and only differing aspects are
  written, blind (the writes are idempotent). Tag mutability is always compared directly.

  - A lifecycle / repository policy is deleted only when the rule sets none **and** the controller
    recorded applying one; on a deep read, also only when the policy in ECR is still the one it
    applied (a policy changed by someone since is left in place and the record dropped).
  - Tags: only the keys the rule sets are compared and written; other tags (cost allocation, ...)
    are never counted as drift. The keys ecrcache applied are recorded with the tags fingerprint
    (:attr:`~ecrcache.models.observed.AppliedFingerprints.tag_keys`: the rule's keys whenever the
    tags are recorded), and a recorded key the rule no longer sets is removed (``untag_repository``:
    on the fast path blind, on a deep read only if ECR still holds it). A key someone else set is
    never recorded, so never removed. A record made before keys were recorded gets them when its
    fingerprint still matches the rule's (``record_applied``); until then nothing is removed.
  - ``record_applied`` records fingerprints for aspects that already match but whose record is
    missing or stale, so verify stays empty and the next resync can take the fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from ecrcache.engine.essence import (
    IMMUTABLE_RULE_FIELDS,
    PULL_THROUGH_CACHE,
    changed_fields,
    desired_fingerprints,
    fingerprint,
    lifecycle_essence,
    policy_essence,
    rule_essence,
    template_essence,
)
from ecrcache.engine.exclusions import plan_exclusions
from ecrcache.engine.ownership import Claim, claim, ownership_block
from ecrcache.engine.plan import ActionKind, Blocked, JsonObject, Note, Plan, PlannedAction, Unmanaged, UnmanagedKind
from ecrcache.engine.role_path import ANY_ROLE, outside_role_path, roles_of_spec
from ecrcache.errors import InvalidInputError
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.credential import secret_name
from ecrcache.models.observed import (
    AppliedFingerprints,
    Aspect,
    ObservedRule,
    ObservedTemplate,
    Ownership,
)
from ecrcache.models.rule import DeletionPolicy

if TYPE_CHECKING:
    from pydantic import JsonValue

    from ecrcache.engine.plan import JsonObject, UnmanagedKind
    from ecrcache.engine.role_path import RoleScope
    from ecrcache.models.observed import (
        DesiredRule,
        ObservedRegion,
        ObservedRepository,
        RepositoryDetails,
    )
    from ecrcache.models.rule import RuleSpec

__all__ = ["ROOT_RULE_NOTE", "plan", "plan_region", "plan_repositories"]

ROOT_RULE_NOTE: Final = (
    "existing repositories are not patched for ROOT rules: without a prefix, cached repositories cannot be "
    "told from ordinary ones; the creation template covers repositories cached from now on"
)
_TAKEOVER: Final = "; takes over an existing {what} ecrcache did not create (adopt: true)"


def _json(value: Mapping[str, Any]) -> JsonObject:
    """A request TypedDict as plain JSON data (they hold only JSON types)."""
    return cast("JsonObject", dict(value))


# --------------------------------------------------------------------------------------------------
# What a desired rule wants


@dataclass(frozen=True, slots=True)
class _RepoWant:
    """What every repository of one rule should hold (computed once per rule)."""

    texts: Mapping[Aspect, str | None]
    essences: Mapping[Aspect, JsonValue]
    tags: Mapping[str, str]
    mutability: str
    exclusions: tuple[str, ...]
    fingerprints: AppliedFingerprints

    @classmethod
    def of(cls, spec: RuleSpec) -> _RepoWant:
        settings = spec.repository
        lifecycle = None if spec.lifecycle is None else spec.lifecycle.render_text()
        policy = settings.policy_text()
        return cls(
            texts={Aspect.LIFECYCLE: lifecycle, Aspect.POLICY: policy},
            essences={Aspect.LIFECYCLE: lifecycle_essence(lifecycle), Aspect.POLICY: policy_essence(policy)},
            tags=dict(settings.tags),
            mutability=settings.tag_mutability.value,
            exclusions=tuple(settings.tag_mutability_exclusions),
            fingerprints=desired_fingerprints(spec),
        )


@dataclass(frozen=True, slots=True)
class _Ready:
    """A desired rule that can be planned: its ECR requests are built and valid."""

    prefix: str
    spec: RuleSpec
    rule_request: JsonObject
    template_request: JsonObject
    repo: _RepoWant


def _prepare(rule: DesiredRule, role_path: RoleScope) -> _Ready | str:
    """The rule ready to plan, or why it cannot be planned (``role_path``: the stack's EcrRolePath)."""
    spec = rule.spec
    if spec.credential is not None and rule.credential_arn is None:
        return (
            f"credential {spec.credential!r} has no secret ARN in this Region (secret {secret_name(spec.credential)}); "
            "nothing is planned for the rule until the secret exists"
        )
    outside = outside_role_path(roles_of_spec(spec), role_path)
    if outside:
        return "; ".join(f"{o.field}: {o.message}" for o in outside) + "; nothing is planned for the rule"
    try:
        rule_request = spec.pull_through_cache_rule_request(rule.prefix, rule.credential_arn)
        template_request = spec.creation_template_request(rule.prefix)
    except InvalidInputError as exc:
        return f"the rule cannot be sent to ECR: {exc.message}"
    return _Ready(rule.prefix, spec, _json(rule_request), _json(template_request), _RepoWant.of(spec))


def _by_prefix(rules: Sequence[DesiredRule], what: str) -> dict[str, DesiredRule]:
    out: dict[str, DesiredRule] = {}
    for rule in rules:
        if rule.prefix in out:
            raise ValueError(f"{what} rules list prefix {rule.prefix!r} twice")
        out[rule.prefix] = rule
    return out


# --------------------------------------------------------------------------------------------------
# Repository aspects


@dataclass(frozen=True, slots=True)
class _Document:
    """A repository aspect that is a policy document: put it, or delete it."""

    aspect: Aspect
    label: str
    put: ActionKind
    delete: ActionKind
    text_key: str
    read: Callable[[RepositoryDetails], str | None]
    essence: Callable[[str | None], JsonValue]


_LIFECYCLE: Final = _Document(
    Aspect.LIFECYCLE,
    "lifecycle policy",
    ActionKind.PUT_LIFECYCLE_POLICY,
    ActionKind.DELETE_LIFECYCLE_POLICY,
    "lifecyclePolicyText",
    lambda details: details.lifecycle_policy,
    lifecycle_essence,
)
_POLICY: Final = _Document(
    Aspect.POLICY,
    "repository policy",
    ActionKind.SET_REPOSITORY_POLICY,
    ActionKind.DELETE_REPOSITORY_POLICY,
    "policyText",
    lambda details: details.repository_policy,
    policy_essence,
)


@dataclass(frozen=True, slots=True)
class _Repo:
    """One repository being planned against its rule."""

    region: str
    rule: _Ready
    repo: ObservedRepository
    applied: AppliedFingerprints
    unread: str
    """Reason suffix for blind (fast path) writes."""

    def action(
        self,
        kind: ActionKind,
        reason: str,
        *,
        request: JsonObject,
        before: JsonObject | None = None,
        after: JsonObject | None = None,
        fingerprints: Mapping[Aspect, str | None] | None = None,
        tag_keys: Mapping[str, bool] | None = None,
    ) -> PlannedAction:
        return PlannedAction(
            kind=kind,
            region=self.region,
            target=self.repo.name,
            rule_prefix=self.rule.prefix,
            before=before,
            after=after,
            reason=reason,
            request=request,
            fingerprints=dict(fingerprints or {}),
            tag_keys=dict(tag_keys or {}),
        )


@dataclass(frozen=True, slots=True)
class _AspectPlan:
    """The actions for one aspect, or (when none) why its record may still need updating."""

    aspect: Aspect
    actions: tuple[PlannedAction, ...] = ()
    note: str = ""
    tag_keys: Mapping[str, bool] = field(default_factory=dict)
    """Tag keys to record as ecrcache's (``True``) or no longer (``False``) when no action records them."""


def _put(ctx: _Repo, doc: _Document, reason: str, before: JsonObject | None) -> _AspectPlan:
    text = ctx.rule.repo.texts[doc.aspect]
    action = ctx.action(
        doc.put,
        reason,
        request={"repositoryName": ctx.repo.name, doc.text_key: text},
        before=before,
        after={doc.text_key: text},
        fingerprints={doc.aspect: ctx.rule.repo.fingerprints.get(doc.aspect)},
    )
    return _AspectPlan(doc.aspect, (action,))


def _delete(ctx: _Repo, doc: _Document, before: JsonObject | None) -> _AspectPlan:
    reason = f"the rule sets no {doc.label} any more; remove the one ecrcache applied"
    action = ctx.action(
        doc.delete,
        reason if before is not None else reason + ctx.unread,
        request={"repositoryName": ctx.repo.name},
        before=before,
        fingerprints={doc.aspect: None},
    )
    return _AspectPlan(doc.aspect, (action,))


def _document_blind(ctx: _Repo, doc: _Document) -> _AspectPlan:
    """Fast path: the recorded fingerprint stands in for what ECR holds."""
    applied = ctx.applied.get(doc.aspect)
    wanted = ctx.rule.repo.fingerprints.get(doc.aspect)
    if applied == wanted:
        return _AspectPlan(doc.aspect)
    if wanted is None:
        return _delete(ctx, doc, None)
    why = (
        f"no record of ecrcache applying the rule's {doc.label}"
        if applied is None
        else f"the {doc.label} ecrcache recorded applying differs from the rule's"
    )
    return _put(ctx, doc, why + ctx.unread, None)


def _document(ctx: _Repo, doc: _Document) -> _AspectPlan:
    details = ctx.repo.details
    if details is None:
        return _document_blind(ctx, doc)
    observed = doc.read(details)
    if ctx.rule.repo.texts[doc.aspect] is None:
        return _document_unwanted(ctx, doc, observed)
    if doc.essence(observed) == ctx.rule.repo.essences[doc.aspect]:
        return _AspectPlan(doc.aspect, note=f"ECR already holds the rule's {doc.label}")
    why = f"the repository has no {doc.label}" if observed is None else f"the {doc.label} differs from the rule's"
    return _put(ctx, doc, why, {doc.text_key: observed})


def _document_unwanted(ctx: _Repo, doc: _Document, observed: str | None) -> _AspectPlan:
    """Deep path, the rule sets no document: delete only the one ecrcache applied, if still unchanged."""
    applied = ctx.applied.get(doc.aspect)
    if applied is None:
        return _AspectPlan(doc.aspect)  # nothing wanted, and whatever is there is not ours
    observed_essence = doc.essence(observed)
    if observed_essence is None:
        return _AspectPlan(doc.aspect, note=f"the {doc.label} ecrcache applied is gone and the rule sets none")
    if fingerprint(observed_essence) != applied:
        return _AspectPlan(
            doc.aspect,
            note=(
                f"the rule sets no {doc.label} any more, and the one in ECR was changed outside ecrcache "
                "after ecrcache applied its own: it is left in place"
            ),
        )
    return _delete(ctx, doc, {doc.text_key: observed})


def _tags(ctx: _Repo) -> _AspectPlan:
    """The rule's tag keys are written when missing or different; the keys ecrcache applied that the rule no
    longer sets are removed (never a key it did not apply: :attr:`AppliedFingerprints.tag_keys`). The tags
    fingerprint and the rule's keys are recorded by the tag action, else by the untag action, else by
    ``record_applied`` (:func:`_record`, with the key changes this returns)."""
    wanted = ctx.rule.repo.tags
    ours = ctx.applied.tag_keys or frozenset()
    dropped = sorted(ours - wanted.keys())
    tag = _tag_action(ctx)
    untag = _untag_action(ctx, dropped, records_tags=tag is None)
    actions = tuple(action for action in (tag, untag) if action is not None)
    if actions:
        return _AspectPlan(Aspect.TAGS, actions)
    keys = {**dict.fromkeys(sorted(wanted.keys() - ours), True), **dict.fromkeys(dropped, False)}
    return _AspectPlan(Aspect.TAGS, note=_tags_note(ctx, dropped), tag_keys=keys)


def _tags_note(ctx: _Repo, dropped: Sequence[str]) -> str:
    """Why the tags record changes when no tag call is needed (for ``record_applied``'s reason)."""
    wanted = ctx.rule.repo.tags
    parts = [
        "the rule sets no tags" if not wanted else "ECR already holds the rule's tags" if ctx.repo.details else "",
        f"tag keys ecrcache applied are gone: {', '.join(dropped)}" if dropped else "",
        "the rule's tag keys recorded as ecrcache's" if wanted and not ctx.repo.details else "",
    ]
    return "; ".join(part for part in parts if part)


def _tag_action(ctx: _Repo) -> PlannedAction | None:
    wanted = ctx.rule.repo.tags
    wanted_fp = ctx.rule.repo.fingerprints.tags
    if not wanted:
        return None
    details = ctx.repo.details
    before: JsonObject | None = None
    if details is None:
        if ctx.applied.tags == wanted_fp:
            return None
        missing = dict(wanted)
        reason = (
            "no record of ecrcache applying the rule's tags"
            if ctx.applied.tags is None
            else "the tags ecrcache recorded applying differ from the rule's"
        ) + ctx.unread
    else:
        missing = {key: value for key, value in wanted.items() if details.tags.get(key) != value}
        if not missing:
            return None
        before = {"tags": {key: details.tags[key] for key in sorted(missing) if key in details.tags}}
        reason = f"tag{'s' if len(missing) > 1 else ''} {', '.join(sorted(missing))} missing or different"
    return ctx.action(
        ActionKind.TAG_REPOSITORY,
        reason,
        request={
            "resourceArn": ctx.repo.arn,
            "tags": [{"Key": key, "Value": value} for key, value in sorted(missing.items())],
        },
        before=before,
        after={"tags": dict(sorted(missing.items()))},
        fingerprints={Aspect.TAGS: wanted_fp},
        tag_keys=dict.fromkeys(sorted(wanted), True),
    )


def _untag_action(ctx: _Repo, dropped: Sequence[str], *, records_tags: bool) -> PlannedAction | None:
    """``UntagResource`` of the ``dropped`` keys (ecrcache's, no longer the rule's) ECR still holds: all of
    them on the fast path, those read on a deep one. It records the tags fingerprint too when no tag action
    does (``records_tags``) and the record is not the rule's.

    The fast path may name a key someone removed since: the API reference lists no error for a key the
    repository does not carry (it documents none of the case; moto ignores such keys, as AWS's tagging
    APIs do), so that is taken to change nothing [?]."""
    details = ctx.repo.details
    present = list(dropped) if details is None else [key for key in dropped if key in details.tags]
    if not present:
        return None
    wanted_fp = ctx.rule.repo.fingerprints.tags
    record_tags = records_tags and ctx.applied.tags != wanted_fp
    keys = dict.fromkeys(sorted(ctx.rule.repo.tags), True) if record_tags else {}
    reason = (
        f"tag key{'s' if len(present) > 1 else ''} {', '.join(present)} applied by ecrcache and no longer set by "
        "the rule"
    )
    return ctx.action(
        ActionKind.UNTAG_REPOSITORY,
        reason + (ctx.unread if details is None else ""),
        request={"resourceArn": ctx.repo.arn, "tagKeys": cast("list[JsonValue]", present)},
        before=None if details is None else {"tags": {key: details.tags[key] for key in present}},
        fingerprints={Aspect.TAGS: wanted_fp} if record_tags else {},
        tag_keys={**keys, **dict.fromkeys(dropped, False)},
    )


def _mutability(ctx: _Repo) -> PlannedAction | None:
    want = ctx.rule.repo
    have_filters = sorted(set(ctx.repo.tag_mutability_exclusions))
    if (ctx.repo.image_tag_mutability, have_filters) == (want.mutability, sorted(set(want.exclusions))):
        return None
    request: JsonObject = {"repositoryName": ctx.repo.name, "imageTagMutability": want.mutability}
    if want.exclusions:
        request["imageTagMutabilityExclusionFilters"] = [
            {"filterType": "WILDCARD", "filter": f} for f in want.exclusions
        ]
    return ctx.action(
        ActionKind.PUT_IMAGE_TAG_MUTABILITY,
        "image tag mutability differs from the rule's",
        request=request,
        before={
            "imageTagMutability": ctx.repo.image_tag_mutability,
            "tagMutabilityExclusions": list(ctx.repo.tag_mutability_exclusions),
        },
        after={"imageTagMutability": want.mutability, "tagMutabilityExclusions": list(want.exclusions)},
    )


def _record(ctx: _Repo, aspects: Sequence[_AspectPlan]) -> PlannedAction | None:
    wanted = ctx.rule.repo.fingerprints
    stale = [p for p in aspects if not p.actions and (ctx.applied.get(p.aspect) != wanted.get(p.aspect) or p.tag_keys)]
    if not stale:
        return None
    tag_keys = {key: ours for p in stale for key, ours in p.tag_keys.items()}
    before: JsonObject = {p.aspect.value: ctx.applied.get(p.aspect) for p in stale}
    after: JsonObject = {p.aspect.value: wanted.get(p.aspect) for p in stale}
    if tag_keys:
        before["tag_keys"] = cast("list[JsonValue]", sorted(ctx.applied.tag_keys or ()))
        after["tag_keys"] = cast("list[JsonValue]", sorted(ctx.applied.merged({}, tag_keys).tag_keys or ()))
    return ctx.action(
        ActionKind.RECORD_APPLIED,
        "record what the repository holds: " + "; ".join(p.note for p in stale if p.note),
        request={},
        before=before,
        after=after,
        fingerprints={p.aspect: wanted.get(p.aspect) for p in stale},
        tag_keys=tag_keys,
    )


def _repository_actions(ctx: _Repo) -> list[PlannedAction]:
    aspects = [_document(ctx, _LIFECYCLE), _document(ctx, _POLICY), _tags(ctx)]
    actions = [action for aspect in aspects for action in aspect.actions]
    extra = (_mutability(ctx), _record(ctx, aspects))
    return actions + [action for action in extra if action is not None]


def _owner(name: str, prefixes: Sequence[str]) -> str | None:
    """The longest prefix ``p`` (``prefixes`` sorted longest first) with ``name`` under ``p/``."""
    return next((p for p in prefixes if name.startswith(p + "/")), None)


# --------------------------------------------------------------------------------------------------
# One Region


@dataclass
class _RegionPlanner:
    observed: ObservedRegion
    ownership: Ownership
    deep: bool
    warmer_role: str | None = None
    role_path: RoleScope = ANY_ROLE
    actions: list[PlannedAction] = field(default_factory=list)
    unmanaged: list[Unmanaged] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.observed.region

    def add(
        self,
        kind: ActionKind,
        prefix: str,
        reason: str,
        *,
        before: JsonObject | None = None,
        after: JsonObject | None = None,
        request: JsonObject | None = None,
    ) -> None:
        self.actions.append(
            PlannedAction(
                kind=kind,
                region=self.region,
                target=prefix,
                rule_prefix=prefix,
                before=before,
                after=after,
                reason=reason,
                request=request or {},
            )
        )

    def report(self, kind: UnmanagedKind, name: str, reason: str) -> None:
        self.unmanaged.append(Unmanaged(kind=kind, region=self.region, name=name, reason=reason))

    def block(self, prefix: str, reason: str) -> None:
        self.blocked.append(Blocked(region=self.region, prefix=prefix, reason=reason))

    # ---------------------------------------------------------------- the whole Region

    def run(self, desired: Sequence[DesiredRule], retired: Sequence[DesiredRule]) -> Plan:
        wanted = _by_prefix(desired, "desired")
        gone = {p: r for p, r in _by_prefix(retired, "retired").items() if p not in wanted}
        ready: dict[str, _Ready] = {}
        for prefix, rule in sorted(wanted.items()):
            collision = ownership_block(rule, self.observed, self.ownership) or self.credential_wait(rule)
            if collision is not None:
                self.blocked.append(collision)
                continue
            prepared = _prepare(rule, self.role_path)
            if isinstance(prepared, str):
                self.block(prefix, prepared)
                continue
            ready[prefix] = prepared
            self.plan_rule(prepared)
            self.plan_template(prepared)
            if prefix == ROOT_PREFIX:  # planned, and Synced once converged: a note, not a block
                self.notes.append(Note(region=self.region, prefix=prefix, message=ROOT_RULE_NOTE))
        for prefix, rule in sorted(gone.items()):
            self.plan_retired(prefix, rule.spec.deletion_policy)
        self.report_unmanaged(set(wanted) | set(gone))
        exclusions = plan_exclusions(
            self.observed, self.ownership, warmer_role=self.warmer_role, has_desired=bool(wanted)
        )
        self.actions.extend(exclusions.actions)
        self.unmanaged.extend(exclusions.unmanaged)
        known = ({*wanted, *gone, *self.observed.rules}) - {ROOT_PREFIX}
        self.plan_repositories(ready, sorted(known, key=lambda p: (-len(p), p)))
        return Plan(
            actions=tuple(self.actions),
            unmanaged=tuple(self.unmanaged),
            blocked=tuple(self.blocked),
            notes=tuple(self.notes),
        )

    # ---------------------------------------------------------------- rules

    def credential_wait(self, rule: DesiredRule) -> Blocked | None:
        """Why the rule waits for its credential's secret in this Region (its replica), if it does.

        A pending wait (the replica is being created) does not hold back a rule ECR already has with
        that very secret: nothing about the credential changes, and everything else can be planned."""
        wait = rule.credential_wait
        if wait is None:
            return None
        found = self.observed.rules.get(rule.prefix)
        if wait.pending and found is not None and rule.credential_arn and found.credential_arn == rule.credential_arn:
            return None
        return Blocked(region=self.region, prefix=rule.prefix, reason=wait.reason, pending=wait.pending)

    def plan_rule(self, ready: _Ready) -> None:
        prefix = ready.prefix
        want = rule_essence(ObservedRule.from_ecr(ready.rule_request))
        found = self.observed.rules.get(prefix)
        if found is None:
            self.add(
                ActionKind.CREATE_RULE,
                prefix,
                "no pull-through cache rule with this prefix",
                after=want,
                request=ready.rule_request,
            )
            return
        have = rule_essence(found)
        owner = claim(present=True, owned=prefix in self.ownership.rules, desired=True, adopt=ready.spec.adopt)
        if not owner.may_change:  # reported by ownership_block; never planned
            return
        changed = changed_fields(have, want)
        if not changed:
            if owner is Claim.ADOPTABLE:
                self.add(
                    ActionKind.ADOPT_RULE,
                    prefix,
                    "an identical rule ecrcache did not create exists and the rule says adopt: true: adopt it",
                    before=have,
                    after=want,
                )
            return
        takeover = "" if owner is Claim.OURS else _TAKEOVER.format(what="rule")
        immutable = [name for name in changed if name in IMMUTABLE_RULE_FIELDS]
        cleared = [name for name in changed if want[name] is None]
        if immutable or cleared:
            why = (
                f"{', '.join(immutable)} cannot be changed in place"
                if immutable
                else f"UpdatePullThroughCacheRule cannot clear {', '.join(cleared)}"
            )
            self.add(
                ActionKind.REPLACE_RULE,
                prefix,
                f"{why}: delete and re-create the rule (cached repositories stay){takeover}",
                before=have,
                after=want,
                request={"delete": {"ecrRepositoryPrefix": prefix}, "create": ready.rule_request},
            )
            return
        request: JsonObject = {"ecrRepositoryPrefix": prefix}
        for key, name in (("credentialArn", "credential_arn"), ("customRoleArn", "custom_role_arn")):
            if want[name] is not None:
                request[key] = want[name]
        self.add(
            ActionKind.UPDATE_RULE,
            prefix,
            f"{', '.join(changed)} changed{takeover}",
            before=have,
            after=want,
            request=request,
        )

    # ---------------------------------------------------------------- templates

    def plan_template(self, ready: _Ready) -> None:
        prefix = ready.prefix
        with_description = ready.spec.description is not None
        want = template_essence(ObservedTemplate.from_ecr(ready.template_request), with_description=with_description)
        found = self.observed.templates.get(prefix)
        if found is None:
            self.add(
                ActionKind.CREATE_TEMPLATE,
                prefix,
                "no repository creation template for the prefix",
                after=want,
                request=ready.template_request,
            )
            return
        have = template_essence(found, with_description=with_description)
        owner = claim(present=True, owned=prefix in self.ownership.templates, desired=True, adopt=ready.spec.adopt)
        if not owner.may_change:  # reported by ownership_block; never planned
            return
        changed = changed_fields(have, want)
        if not changed:
            if owner is Claim.ADOPTABLE:
                self.add(
                    ActionKind.ADOPT_TEMPLATE,
                    prefix,
                    "an identical template ecrcache did not create exists and the rule says adopt: true: adopt it",
                    before=have,
                    after=want,
                )
            return
        takeover = "" if owner is Claim.OURS else _TAKEOVER.format(what="template")
        self.add(
            ActionKind.UPDATE_TEMPLATE,
            prefix,
            f"{', '.join(changed)} differ{'s' if len(changed) == 1 else ''}{takeover}",
            before=have,
            after=want,
            request=_template_update(ready.template_request, found),
        )

    # ---------------------------------------------------------------- retired and unmanaged

    def plan_retired(self, prefix: str, deletion: DeletionPolicy) -> None:
        """A deleted desired rule: remove its ECR rule and template only if owned and ``deletion_policy: delete``."""
        self.plan_retired_rule(prefix, deletion)
        self.plan_retired_template(prefix, deletion)

    def plan_retired_rule(self, prefix: str, deletion: DeletionPolicy) -> None:
        rule = self.observed.rules.get(prefix)
        if rule is None:
            return
        owner = claim(present=True, owned=prefix in self.ownership.rules, desired=False, adopt=False)
        if deletion is DeletionPolicy.DELETE and owner is Claim.OURS:
            self.add(
                ActionKind.DELETE_RULE,
                prefix,
                "the desired rule was deleted with deletion_policy delete (cached repositories stay)",
                before=rule_essence(rule),
                request={"ecrRepositoryPrefix": prefix},
            )
        else:
            self.report("rule", prefix, _retired_reason("rule", deletion, owned=owner is Claim.OURS))

    def plan_retired_template(self, prefix: str, deletion: DeletionPolicy) -> None:
        """Like a rule, except that a template also used for other ``appliedFor`` values is left in place."""
        template = self.observed.templates.get(prefix)
        if template is None:
            return
        owned = claim(present=True, owned=prefix in self.ownership.templates, desired=False, adopt=False) is Claim.OURS
        shared = sorted(set(template.applied_for) - {PULL_THROUGH_CACHE})
        if deletion is DeletionPolicy.DELETE and owned and not shared:
            self.add(
                ActionKind.DELETE_TEMPLATE,
                prefix,
                "the desired rule was deleted with deletion_policy delete",
                before=template_essence(template, with_description=True),
                request={"prefix": prefix},
            )
        elif deletion is DeletionPolicy.DELETE and owned:
            self.report(
                "template",
                prefix,
                f"its desired rule was deleted with deletion_policy delete, but the template also applies to "
                f"{', '.join(shared)}: left in place",
            )
        else:
            self.report("template", prefix, _retired_reason("template", deletion, owned=owned))

    def report_unmanaged(self, handled: set[str]) -> None:
        for kind, found, owned in (
            ("rule", self.observed.rules, self.ownership.rules),
            ("template", self.observed.templates, self.ownership.templates),
        ):
            for prefix in sorted(set(found) - handled):
                owner = claim(present=True, owned=prefix in owned, desired=False, adopt=False)
                reason = (
                    "created or adopted by ecrcache but no longer desired: left in place (only a deleted rule "
                    "with deletion_policy delete is removed)"
                    if owner is Claim.OURS
                    else "not in the desired state and not created or adopted by ecrcache: reported, never changed"
                )
                self.report(cast("UnmanagedKind", kind), prefix, reason)

    # ---------------------------------------------------------------- repositories

    def plan_repositories(self, ready: Mapping[str, _Ready], prefixes: Sequence[str]) -> None:
        unread = " (not read in this resync)" if self.deep else " (fast resync: the repository was not read)"
        for name in sorted(self.observed.repositories):
            owner = _owner(name, prefixes)
            rule = None if owner is None else ready.get(owner)
            if rule is None:
                continue
            repo = self.observed.repositories[name]
            ctx = _Repo(self.region, rule, repo, repo.applied or AppliedFingerprints(), unread)
            self.actions.extend(_repository_actions(ctx))


def _template_update(request: JsonObject, found: ObservedTemplate) -> JsonObject:
    """``UpdateRepositoryCreationTemplate`` kwargs: the desired template, keeping other ``appliedFor``
    values and clearing what the rule no longer sets."""
    update = dict(request)
    update["appliedFor"] = cast("list[JsonValue]", sorted({*found.applied_for, PULL_THROUGH_CACHE}))
    for key, present in (
        ("repositoryPolicy", found.repository_policy),
        ("lifecyclePolicy", found.lifecycle_policy),
        ("customRoleArn", found.custom_role_arn),
    ):
        if key not in update and present:
            update[key] = ""
    if "resourceTags" not in update and found.resource_tags:
        update["resourceTags"] = []
    return update


def _retired_reason(what: str, deletion: DeletionPolicy, *, owned: bool) -> str:
    if not owned:
        return (
            f"its desired rule was deleted, but ecrcache never created or adopted this {what}: reported, never changed"
        )
    return f"its desired rule was deleted with deletion_policy {deletion.value}: left in place and no longer managed"


# --------------------------------------------------------------------------------------------------
# Entry points


def plan_region(
    desired: Sequence[DesiredRule],
    retired: Sequence[DesiredRule],
    observed: ObservedRegion,
    ownership: Ownership,
    *,
    deep: bool,
    warmer_role: str | None = None,
    role_path: RoleScope = ANY_ROLE,
) -> Plan:
    """The plan that takes ``observed`` to ``desired`` in one Region.

    ``retired`` are desired rules that were deleted, with their last spec (a prefix that is also
    desired is ignored there). ``deep`` says whether the caller read repository details; it only
    changes reason texts - each repository's own ``details`` decide deep or fast comparison.
    ``warmer_role`` is the warm worker's role ARN (``None``: no warmer; exclusions ecrcache registered
    are deregistered). ``role_path`` is the stack's EcrRolePath: a rule naming a role outside it is
    :class:`~.plan.Blocked` (the reconciler may not pass that role; :mod:`.role_path`). Raises ``ValueError``
    when a prefix is listed twice in ``desired`` or in ``retired``.
    """
    return _RegionPlanner(observed, ownership, deep, warmer_role, role_path).run(desired, retired)


def plan(
    desired_by_region: Mapping[str, Sequence[DesiredRule]],
    retired_by_region: Mapping[str, Sequence[DesiredRule]],
    observed_by_region: Mapping[str, ObservedRegion],
    ownership_by_region: Mapping[str, Ownership],
    *,
    deep: bool = False,
    warmer_role: str | None = None,
    role_path: RoleScope = ANY_ROLE,
) -> Plan:
    """:func:`plan_region` for every observed Region, merged into one plan.

    Raises ``ValueError`` when a Region with desired or retired rules was not observed, or when an
    observation is filed under another Region's key.
    """
    wanted = {region for region, rules in (*desired_by_region.items(), *retired_by_region.items()) if rules}
    missing = sorted(wanted - set(observed_by_region))
    if missing:
        raise ValueError(f"no observation for Region(s) {', '.join(missing)}")
    misfiled = sorted(key for key, found in observed_by_region.items() if found.region != key)
    if misfiled:
        raise ValueError(f"observation filed under the wrong Region: {', '.join(misfiled)}")
    return Plan.merge(
        plan_region(
            desired_by_region.get(region, ()),
            retired_by_region.get(region, ()),
            observed_by_region[region],
            ownership_by_region.get(region, Ownership()),
            deep=deep,
            warmer_role=warmer_role,
            role_path=role_path,
        )
        for region in sorted(observed_by_region)
    )


def plan_repositories(
    desired: Sequence[DesiredRule],
    observed: ObservedRegion,
    *,
    role_path: RoleScope = ANY_ROLE,
    known: Collection[str] = (),
    deep: bool = True,
) -> Plan:
    """Only the per-repository part of :func:`plan_region`: the actions for the repositories ``observed`` holds (a
    shard's: read deeply, or ``deep`` false, compared with the applied fingerprints as a fast run does), each under
    the rule with the longest prefix it is under among ``desired`` and ``known`` (the other rules known in the
    Region: retired, ECR's; :func:`plan_region` picks among the same), planned when that rule is desired and the
    stack's role path allows it (blocked otherwise, as :func:`plan_region` blocks
    them); a repository owned by a rule no longer desired is left alone.

    The checks that block a whole rule on what ECR and the store hold (its rule or template not ecrcache's, its
    credential's secret not replicated to the Region) are the coordinating run's: it read the Region's rules and
    templates, and gave its shards only the repositories of the rules it could plan (and no repository under a
    longer prefix of a rule ecrcache does not manage). No rule, template or exclusion action is planned."""
    planner = _RegionPlanner(observed, Ownership(), deep=deep, role_path=role_path)
    ready: dict[str, _Ready] = {}
    for prefix, rule in sorted(_by_prefix(desired, "desired").items()):
        prepared = _prepare(rule, role_path)
        if isinstance(prepared, str):
            planner.block(prefix, prepared)
        else:
            ready[prefix] = prepared
    prefixes = ({rule.prefix for rule in desired} | set(known)) - {ROOT_PREFIX}
    planner.plan_repositories(ready, sorted(prefixes, key=lambda p: (-len(p), p)))
    return Plan(actions=tuple(planner.actions), blocked=tuple(planner.blocked))

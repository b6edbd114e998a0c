"""The plan: what the reconciler will do, as a value (Terraform's ``plans.Changes``).

A :class:`Plan` is a sorted tuple of :class:`PlannedAction`. Every action carries the exact
keyword arguments of the ECR call the adapter makes (``request``), so apply executes only what
the plan says and never re-diffs; ``before`` / ``after`` show the change, and ``reason`` explains
it to people only (like Terraform's ``ActionReason``, it is never used to decide anything).
``fingerprints`` are what the service records for the repository once the action succeeded.

Most actions belong to one rule (``rule_prefix``); the shared ones belong to none (``rule_prefix``
:data:`REGISTRY_LEVEL`, ``""``): the warm worker's pull-time update exclusion (the registry's), and a
credential's secret replicas (every rule using the credential in the replica's Region needs one).

Besides actions, a plan reports rules, templates, the warmer's exclusion and secret replicas it
leaves alone (:class:`Unmanaged`) and rules it cannot plan, or plans only partly (:class:`Blocked`; a
``pending`` one waits for something that comes by itself, a replica being created). Neither makes
a plan non-empty: :attr:`Plan.is_empty` is the "verify found nothing to do" test.

Ordering is deterministic: by Region, then secret replicas (a rule needs its Region's replica first),
rules, templates, repositories, exclusions and event forwarders, then target (secret name, prefix, repository name or
principal ARN), then :class:`ActionKind` declaration order. The plan is JSON-serialisable
(``model_dump(mode="json")``) for ``GET /v1/plan``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from ecrcache.models.observed import Aspect

if TYPE_CHECKING:
    from ecrcache.models.observed import AppliedFingerprints

__all__ = [
    "REGISTRY_LEVEL",
    "ActionKind",
    "ActionResult",
    "Blocked",
    "Note",
    "OwnedKind",
    "Plan",
    "PlannedAction",
    "Scope",
    "Unmanaged",
    "UnmanagedKind",
]

Scope = Literal["secret", "rule", "template", "repository", "exclusion", "forwarder"]
UnmanagedKind = Literal["secret", "rule", "template", "repository", "exclusion"]
JsonObject = dict[str, JsonValue]

REGISTRY_LEVEL: Final = ""
"""The ``rule_prefix`` of an action that belongs to no one rule: a pull-time update exclusion is the
registry's (it is wanted because of every desired rule of the Region), a secret replica the
credential's (it is wanted because of every rule using the credential in its Region)."""


class ActionKind(StrEnum):
    """What one action does. Declaration order is the order actions run in for one target."""

    # a credential's secret replicas (Secrets Manager ...Replication, called in the primary's Region)
    REPLICATE_SECRET = "replicate_secret"  # noqa: S105 - an action name, not a secret
    RETRY_REPLICA = "retry_replica"
    REMOVE_REPLICA = "remove_replica"
    # rules (ECR ...PullThroughCacheRule)
    CREATE_RULE = "create_rule"
    ADOPT_RULE = "adopt_rule"
    UPDATE_RULE = "update_rule"
    REPLACE_RULE = "replace_rule"
    DELETE_RULE = "delete_rule"
    # creation templates (ECR ...RepositoryCreationTemplate)
    CREATE_TEMPLATE = "create_template"
    ADOPT_TEMPLATE = "adopt_template"
    UPDATE_TEMPLATE = "update_template"
    DELETE_TEMPLATE = "delete_template"
    # existing cached repositories
    PUT_LIFECYCLE_POLICY = "put_lifecycle_policy"
    DELETE_LIFECYCLE_POLICY = "delete_lifecycle_policy"
    SET_REPOSITORY_POLICY = "set_repository_policy"
    DELETE_REPOSITORY_POLICY = "delete_repository_policy"
    TAG_REPOSITORY = "tag_repository"
    UNTAG_REPOSITORY = "untag_repository"
    PUT_IMAGE_TAG_MUTABILITY = "put_image_tag_mutability"
    RECORD_APPLIED = "record_applied"
    # the warm worker's pull-time update exclusion (ECR ...PullTimeUpdateExclusion, registry-level)
    REGISTER_EXCLUSION = "register_exclusion"
    DEREGISTER_EXCLUSION = "deregister_exclusion"
    FORGET_EXCLUSION = "forget_exclusion"
    # the event forwarder of a Region other than the stack's (EventBridge PutRule / PutTargets / DeleteRule)
    CREATE_FORWARDER = "create_forwarder"
    UPDATE_FORWARDER = "update_forwarder"
    DELETE_FORWARDER = "delete_forwarder"

    @property
    def scope(self) -> Scope:
        return _SCOPES[self]

    @property
    def calls_aws(self) -> bool:
        """``False`` for actions that only record something in the state table."""
        return self not in _RECORD_ONLY


_SCOPES: Final[dict[ActionKind, Scope]] = {
    **dict.fromkeys((ActionKind.REPLICATE_SECRET, ActionKind.RETRY_REPLICA, ActionKind.REMOVE_REPLICA), "secret"),
    **dict.fromkeys(
        (
            ActionKind.CREATE_RULE,
            ActionKind.ADOPT_RULE,
            ActionKind.UPDATE_RULE,
            ActionKind.REPLACE_RULE,
            ActionKind.DELETE_RULE,
        ),
        "rule",
    ),
    **dict.fromkeys(
        (
            ActionKind.CREATE_TEMPLATE,
            ActionKind.ADOPT_TEMPLATE,
            ActionKind.UPDATE_TEMPLATE,
            ActionKind.DELETE_TEMPLATE,
        ),
        "template",
    ),
    **dict.fromkeys(
        (ActionKind.REGISTER_EXCLUSION, ActionKind.DEREGISTER_EXCLUSION, ActionKind.FORGET_EXCLUSION),
        "exclusion",
    ),
    **dict.fromkeys(
        (ActionKind.CREATE_FORWARDER, ActionKind.UPDATE_FORWARDER, ActionKind.DELETE_FORWARDER), "forwarder"
    ),
}
_SCOPES.update({kind: "repository" for kind in ActionKind if kind not in _SCOPES})
_RECORD_ONLY: Final = frozenset(
    {ActionKind.ADOPT_RULE, ActionKind.ADOPT_TEMPLATE, ActionKind.RECORD_APPLIED, ActionKind.FORGET_EXCLUSION}
)
_SCOPE_ORDER: Final[dict[Scope, int]] = {
    "secret": 0,
    "rule": 1,
    "template": 2,
    "repository": 3,
    "exclusion": 4,
    "forwarder": 5,
}
_KIND_ORDER: Final = {kind: index for index, kind in enumerate(ActionKind)}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlannedAction(_Frozen):
    """One change to make in ECR or to a credential's secret replicas (or, for ``adopt_*`` /
    ``record_applied`` / ``forget_exclusion``, in the state table only).

    ``request`` shapes (boto3 client keyword arguments: ECR's, Secrets Manager's for the replicas):

    * ``create_rule``: ``CreatePullThroughCacheRule`` (``RuleSpec.pull_through_cache_rule_request``);
    * ``update_rule``: ``UpdatePullThroughCacheRule`` ``{ecrRepositoryPrefix, credentialArn?, customRoleArn?}``;
    * ``replace_rule``: two calls, ``{"delete": DeletePullThroughCacheRule, "create": CreatePullThroughCacheRule}``;
    * ``delete_rule``: ``DeletePullThroughCacheRule`` ``{ecrRepositoryPrefix}``;
    * ``create_template`` / ``update_template``: ``Create``/``UpdateRepositoryCreationTemplate``
      (``RuleSpec.creation_template_request``; an update also clears what the rule no longer sets
      with ``""`` / ``[]``, and keeps other ``appliedFor`` values);
    * ``delete_template``: ``DeleteRepositoryCreationTemplate`` ``{prefix}``;
    * ``put_lifecycle_policy``: ``{repositoryName, lifecyclePolicyText}``; ``delete_lifecycle_policy``:
      ``{repositoryName}``; ``set_repository_policy``: ``{repositoryName, policyText}``;
      ``delete_repository_policy``: ``{repositoryName}``;
    * ``tag_repository``: ``TagResource`` ``{resourceArn, tags: [{Key, Value}]}`` (only missing or different keys);
    * ``untag_repository``: ``UntagResource`` ``{resourceArn, tagKeys}`` (only keys ecrcache applied that the
      rule no longer sets: ``tag_keys`` of the repository's applied record);
    * ``put_image_tag_mutability``: ``{repositoryName, imageTagMutability, imageTagMutabilityExclusionFilters?}``;
    * ``register_exclusion`` / ``deregister_exclusion``: ``Register``/``DeregisterPullTimeUpdateExclusion``
      ``{principalArn}`` (target: the principal ARN; ``rule_prefix`` ``""``: the registry's, no one rule's);
    * ``replicate_secret``: Secrets Manager ``ReplicateSecretToRegions`` ``{SecretId, AddReplicaRegions:
      [{Region}]}``; ``remove_replica``: ``RemoveRegionsFromReplication`` ``{SecretId, RemoveReplicaRegions}``;
      ``retry_replica``: both, ``{"remove": ..., "replicate": ...}`` (region: the replica's, while the
      call is made in the primary's; target: the secret's name; ``rule_prefix`` ``""``);
    * ``create_forwarder`` / ``update_forwarder``: EventBridge ``{"rule": PutRule, "targets": PutTargets}`` (an
      update also ``"remove"``: RemoveTargets of stray targets, or null); ``delete_forwarder``: ``{"remove":
      RemoveTargets, "delete": DeleteRule}`` (target: the forwarding rule's name; ``rule_prefix`` ``""``; made in
      the forwarder's Region: :mod:`ecrcache.engine.forwarders`);
    * ``adopt_rule`` / ``adopt_template`` / ``record_applied`` / ``forget_exclusion``: ``{}`` (no AWS call).

    After success the service records ownership for every rule / template action except the
    deletes (which drop it), and for a registered exclusion (unless ECR had it already); a
    deregistered or forgotten exclusion drops it. It merges ``fingerprints`` into the repository's
    applied record, and ``tag_keys`` into its record of the tag keys ecrcache applied
    (:meth:`record_onto`).
    """

    kind: ActionKind
    region: str
    target: str = Field(description="The rule / template prefix, the repository name, or the principal ARN.")
    rule_prefix: str = Field(description="The rule the action is for; '' for a registry-level action (an exclusion).")
    before: JsonObject | None = Field(default=None, description="What ECR holds now; None when absent or not read.")
    after: JsonObject | None = Field(default=None, description="What ECR will hold; None when deleted.")
    reason: str = Field(description="For people only; never used to decide anything.")
    request: JsonObject = Field(default_factory=dict, description="The exact boto3 keyword arguments.")
    fingerprints: dict[Aspect, str | None] = Field(
        default_factory=dict,
        description="Repository fingerprints to record after success (aspect -> fingerprint; None clears).",
    )
    tag_keys: dict[str, bool] = Field(
        default_factory=dict,
        description=(
            "Tag keys to record after success as applied by ecrcache (true) or no longer (false); only keys "
            "recorded as applied by ecrcache are ever removed from a repository."
        ),
    )

    @property
    def records(self) -> bool:
        """Success changes the repository's applied record."""
        return bool(self.fingerprints or self.tag_keys)

    def record_onto(self, applied: AppliedFingerprints) -> AppliedFingerprints:
        """The repository's applied record once this action succeeded."""
        return applied.merged(self.fingerprints, self.tag_keys)

    @property
    def sort_key(self) -> tuple[str, int, str, int]:
        return (self.region, _SCOPE_ORDER[self.kind.scope], self.target, _KIND_ORDER[self.kind])


class Unmanaged(_Frozen):
    """Something found in ECR that the controller reports and never changes (``kind`` ``secret``: a
    secret replica no desired rule wants that an ECR rule in its Region still uses: kept)."""

    kind: UnmanagedKind
    region: str
    name: str
    reason: str


class Blocked(_Frozen):
    """A desired rule the planner could not plan: nothing is planned for it, and its status says Blocked
    (``Terminal``: someone must act) or, when ``pending``, Pending (``Recoverable``: it waits for
    something that comes by itself, such as its Region's replica of its credential's secret)."""

    region: str
    prefix: str
    reason: str
    pending: bool = Field(
        default=False, description="The rule waits for something under way (a secret replica being created)."
    )


class Note(_Frozen):
    """Something a user should know about a rule that is planned (e.g. what a ROOT rule cannot do).

    Not a failure: a rule with a note is planned and can be Synced (a note is never a Blocked entry)."""

    region: str
    prefix: str
    message: str


class Plan(_Frozen):
    """Actions in a fixed order, plus what was left alone. Built sorted, whatever order it is given in."""

    actions: tuple[PlannedAction, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    notes: tuple[Note, ...] = ()
    complete: bool = Field(
        default=True,
        description=(
            "False when a deep plan's read stopped at the API's time budget: the repositories not read deeply "
            "were compared with what ecrcache last applied (the fast path), and a note per Region says how many. "
            "Actions listed are real; an empty list does not mean converged."
        ),
    )

    @field_validator("actions")
    @classmethod
    def _sort_actions(cls, value: tuple[PlannedAction, ...]) -> tuple[PlannedAction, ...]:
        return tuple(sorted(value, key=lambda action: action.sort_key))

    @field_validator("unmanaged")
    @classmethod
    def _sort_unmanaged(cls, value: tuple[Unmanaged, ...]) -> tuple[Unmanaged, ...]:
        return tuple(sorted(value, key=lambda item: (item.region, _SCOPE_ORDER[item.kind], item.name)))

    @field_validator("blocked")
    @classmethod
    def _sort_blocked(cls, value: tuple[Blocked, ...]) -> tuple[Blocked, ...]:
        return tuple(sorted(value, key=lambda item: (item.region, item.prefix, item.reason)))

    @field_validator("notes")
    @classmethod
    def _sort_notes(cls, value: tuple[Note, ...]) -> tuple[Note, ...]:
        return tuple(sorted(value, key=lambda item: (item.region, item.prefix, item.message)))

    @property
    def is_empty(self) -> bool:
        """No actions (unmanaged, blocked and note entries are reports, not work)."""
        return not self.actions

    def summary(self) -> dict[str, int]:
        """Action counts by kind (in kind order), plus ``unmanaged`` / ``blocked`` counts when non-zero."""
        counts = Counter(action.kind for action in self.actions)
        out = {kind.value: counts[kind] for kind in ActionKind if counts[kind]}
        if self.unmanaged:
            out["unmanaged"] = len(self.unmanaged)
        if self.blocked:
            out["blocked"] = len(self.blocked)
        return out

    @classmethod
    def merge(cls, plans: Iterable[Plan]) -> Plan:
        """One plan from several (e.g. one per Region)."""
        parts = list(plans)
        return cls(
            actions=tuple(a for p in parts for a in p.actions),
            unmanaged=tuple(u for p in parts for u in p.unmanaged),
            blocked=tuple(b for p in parts for b in p.blocked),
            notes=tuple(n for p in parts for n in p.notes),
            complete=all(p.complete for p in parts),
        )


OwnedKind = Literal["rule", "template", "exclusion"]
"""What ecrcache records owning in a Region: pull-through cache rules, creation templates and the
pull-time update exclusions it registered."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of applying one planned action. AWS errors end up here, never as exceptions.

    ``retryable`` failures should clear on a later reconcile (throttling, 5xx, a secret not yet
    visible to ECR, a resource changed underneath); the others need a change of input or
    permissions (``Terminal``). ``code`` is the AWS error code; ``message`` is for people and
    never holds a secret value.
    """

    ok: bool
    retryable: bool = False
    code: str | None = None
    message: str | None = None
    existed: bool = False
    """``ok`` because ECR already held what the call makes, and the adapter cannot tell who made it:
    set for a pull-time update exclusion (``ExclusionAlreadyExistsException``), which is then not
    recorded as ecrcache's. (A rule or template that already exists exactly as requested is taken as
    an earlier attempt of ecrcache's own: ``existed`` stays ``False``.)"""

    @classmethod
    def success(cls, message: str | None = None, *, existed: bool = False) -> ActionResult:
        return cls(ok=True, message=message, existed=existed)

    @classmethod
    def failure(cls, code: str, message: str, *, retryable: bool) -> ActionResult:
        return cls(ok=False, retryable=retryable, code=code, message=message)

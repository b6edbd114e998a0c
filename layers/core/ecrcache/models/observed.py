"""The reconciler's inputs as values: desired rules (with resolved credentials) and what ECR holds.

The planning engine (:mod:`ecrcache.engine.planner`) takes these and returns a plan; it never reads
ECR itself. The service builds them:

* :class:`DesiredRule` - a rule's spec with the credential name already resolved to its secret ARN;
* :class:`ObservedRule`, :class:`ObservedTemplate`, :class:`ObservedRepository` - what
  ``DescribePullThroughCacheRules``, ``DescribeRepositoryCreationTemplates`` and
  ``DescribeRepositories`` returned, minus the server-set fields (``createdAt``, ``updatedAt``,
  ``registryId``) that are never compared;
* :class:`RepositoryDetails` - the deep read of one repository (``GetLifecyclePolicy``,
  ``GetRepositoryPolicy``, ``ListTagsForResource``), absent on the fast path;
* :class:`AppliedFingerprints` - what the controller last applied to a repository, per aspect,
  kept in the state table, so a fast resync can skip repositories whose record matches;
* :class:`Ownership` - the prefixes whose ECR rule / template the controller created or adopted
  (pull-through cache rules have no tags, so ownership is recorded in the table), and the
  pull-time update exclusions it registered;
* :attr:`ObservedRegion.exclusions` - what ``ListPullTimeUpdateExclusions`` returned (the principal
  ARNs whose pulls do not move ``lastRecordedPullTime``), when it was read.

All models are frozen. ``from_ecr`` constructors read ECR's own shapes (a ``Describe*`` item or a
``Create*`` request, which share their field names), for the adapter and for the tests' plan simulation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ecrcache.models.common import ROOT_PREFIX, EcrPrefix
from ecrcache.models.rule import RuleSpec

__all__ = [
    "AppliedFingerprints",
    "Aspect",
    "CredentialWait",
    "DesiredRule",
    "ObservedRegion",
    "ObservedRepository",
    "ObservedRule",
    "ObservedTemplate",
    "Ownership",
    "RepositoryDetails",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _none_if_empty(value: object) -> str | None:
    """ECR answers an unset optional string as absent or as ``""``; both mean "not set"."""
    return str(value) if value else None


# --------------------------------------------------------------------------------------------------
# Desired


class CredentialWait(_Frozen):
    """Why a rule's credential cannot be used in its Region yet (its secret's replica there).

    ``pending``: it comes by itself (the replica is being created): the rule waits, ``Recoverable``;
    otherwise someone must act (the replica failed, the secret is gone): ``Terminal``."""

    reason: str
    pending: bool


class DesiredRule(_Frozen):
    """One desired rule in one Region, ready to plan.

    ``credential_arn`` is the secret ARN of ``spec.credential`` in this Region (the primary's in the
    stack's Region, its replica's elsewhere), resolved by the service; ``None`` when the rule takes no
    credential, or when the credential's secret is missing (the planner then plans nothing for the
    rule and reports it as blocked). ``credential_wait`` says why that secret cannot be used here yet:
    the planner blocks the rule with it, unless ECR's rule already uses ``credential_arn`` and the
    wait is ``pending`` (nothing about the credential has to change then).
    """

    prefix: EcrPrefix
    spec: RuleSpec
    credential_arn: str | None = None
    credential_wait: CredentialWait | None = None


# --------------------------------------------------------------------------------------------------
# Observed: rules and templates


class ObservedRule(_Frozen):
    """A pull-through cache rule as ``DescribePullThroughCacheRules`` returns it (server-set fields dropped)."""

    prefix: str
    upstream_registry_url: str
    upstream_registry: str | None = None
    upstream_repository_prefix: str = ROOT_PREFIX
    credential_arn: str | None = None
    custom_role_arn: str | None = None

    @classmethod
    def from_ecr(cls, item: Mapping[str, Any]) -> Self:
        """From a ``pullThroughCacheRules[]`` item (or a ``CreatePullThroughCacheRule`` request)."""
        return cls(
            prefix=str(item["ecrRepositoryPrefix"]),
            upstream_registry_url=str(item["upstreamRegistryUrl"]),
            upstream_registry=_none_if_empty(item.get("upstreamRegistry")),
            upstream_repository_prefix=_none_if_empty(item.get("upstreamRepositoryPrefix")) or ROOT_PREFIX,
            credential_arn=_none_if_empty(item.get("credentialArn")),
            custom_role_arn=_none_if_empty(item.get("customRoleArn")),
        )


class ObservedTemplate(_Frozen):
    """A repository creation template as ``DescribeRepositoryCreationTemplates`` returns it.

    ``encryption_type`` ``None`` means ECR returned no encryption configuration (which is AES256).
    """

    prefix: str
    applied_for: tuple[str, ...] = ()
    image_tag_mutability: str = "MUTABLE"
    tag_mutability_exclusions: tuple[str, ...] = ()
    encryption_type: str | None = None
    kms_key: str | None = None
    resource_tags: dict[str, str] = Field(default_factory=dict)
    repository_policy: str | None = None
    lifecycle_policy: str | None = None
    custom_role_arn: str | None = None
    description: str | None = None

    @classmethod
    def from_ecr(cls, item: Mapping[str, Any]) -> Self:
        """From a ``repositoryCreationTemplates[]`` item (or a ``CreateRepositoryCreationTemplate`` request)."""
        encryption: Mapping[str, Any] = item.get("encryptionConfiguration") or {}
        filters: Sequence[Mapping[str, Any]] = item.get("imageTagMutabilityExclusionFilters") or ()
        tags: Sequence[Mapping[str, Any]] = item.get("resourceTags") or ()
        return cls(
            prefix=str(item["prefix"]),
            applied_for=tuple(str(a) for a in item.get("appliedFor") or ()),
            image_tag_mutability=str(item.get("imageTagMutability") or "MUTABLE"),
            tag_mutability_exclusions=tuple(str(f["filter"]) for f in filters),
            encryption_type=_none_if_empty(encryption.get("encryptionType")),
            kms_key=_none_if_empty(encryption.get("kmsKey")),
            resource_tags={str(t["Key"]): str(t["Value"]) for t in tags},
            repository_policy=_none_if_empty(item.get("repositoryPolicy")),
            lifecycle_policy=_none_if_empty(item.get("lifecyclePolicy")),
            custom_role_arn=_none_if_empty(item.get("customRoleArn")),
            description=_none_if_empty(item.get("description")),
        )


# --------------------------------------------------------------------------------------------------
# Observed: repositories


class Aspect(StrEnum):
    """The repository settings whose applied state is fingerprinted (tag mutability is always read)."""

    LIFECYCLE = "lifecycle"
    POLICY = "policy"
    TAGS = "tags"


class AppliedFingerprints(_Frozen):
    """What the controller last applied to one repository: a fingerprint per aspect.

    ``None`` for an aspect means the controller has applied nothing there (or has since removed
    what it applied): it then never deletes a lifecycle or repository policy it finds, because
    that policy is someone else's. Fingerprints are made by :func:`ecrcache.engine.essence.fingerprint`.
    """

    lifecycle: str | None = None
    policy: str | None = None
    tags: str | None = None
    tag_keys: frozenset[str] | None = None
    """The tag keys ecrcache applied to the repository and has not removed since (the keys of the rule's tags
    whenever it recorded them; ``None``: none). A key the rule no longer sets is removed (``UntagResource``)
    only when it is here: a key someone else set is never ecrcache's. ``None`` next to a ``tags`` fingerprint
    is a record made before the keys were recorded (which keys it applied is then unknown)."""
    created_at: AwareDatetime | None = None
    """The repository's creation time (``DescribeRepositories``' ``createdAt``) when a run last settled it
    after an event naming it as new (pull-through import, ``CreateRepository``): a later such event for the
    same repository (same creation) needs no deep read; a repository deleted and created again does."""

    def get(self, aspect: Aspect) -> str | None:
        value: str | None = getattr(self, aspect.value)
        return value

    def merged(
        self, updates: Mapping[Aspect, str | None], tag_keys: Mapping[str, bool] | None = None
    ) -> AppliedFingerprints:
        """A copy with the given aspects replaced, and the tag keys marked ``True`` added to :attr:`tag_keys`
        (those marked ``False`` dropped)."""
        update: dict[str, object] = {aspect.value: value for aspect, value in updates.items()}
        if tag_keys:
            keys = (self.tag_keys or frozenset()) | {k for k, ours in tag_keys.items() if ours}
            update["tag_keys"] = frozenset(k for k in keys if tag_keys.get(k, True)) or None
        return self.model_copy(update=update)


class RepositoryDetails(_Frozen):
    """A deep read of one repository. ``None`` policies mean ECR has none (``*NotFoundException``)."""

    lifecycle_policy: str | None = None
    repository_policy: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ObservedRepository(_Frozen):
    """One repository: always what ``DescribeRepositories`` gives, plus optionally the deep read.

    ``details`` is ``None`` on the fast path (only ``DescribeRepositories`` was read); ``applied`` is
    ``None`` when the state table has no record for the repository (the same as all aspects ``None``).
    """

    name: str
    arn: str
    image_tag_mutability: str = "MUTABLE"
    tag_mutability_exclusions: tuple[str, ...] = ()
    details: RepositoryDetails | None = None
    applied: AppliedFingerprints | None = None
    created_at: AwareDatetime | None = None
    """``DescribeRepositories``' ``createdAt`` (``None`` when not given)."""

    @property
    def settled(self) -> bool:
        """A run settled this very repository (this creation of it) after an event that named it as new."""
        return self.created_at is not None and self.applied is not None and self.applied.created_at == self.created_at


# --------------------------------------------------------------------------------------------------
# Ownership and one Region


class Ownership(_Frozen):
    """What the controller made in one Region: the prefixes whose ECR rule / creation template it created
    or adopted, and the principal ARNs it registered as pull-time update exclusions (never adopted: an
    exclusion someone else registered stays theirs)."""

    rules: frozenset[str] = frozenset()
    templates: frozenset[str] = frozenset()
    exclusions: frozenset[str] = frozenset()


class ObservedRegion(_Frozen):
    """Everything read from ECR in one Region, keyed by prefix (rules, templates) or name (repositories),
    and the registry's pull-time update exclusions when they were read."""

    region: str
    rules: dict[str, ObservedRule] = Field(default_factory=dict)
    templates: dict[str, ObservedTemplate] = Field(default_factory=dict)
    repositories: dict[str, ObservedRepository] = Field(default_factory=dict)
    exclusions: frozenset[str] | None = Field(
        default=None,
        description=(
            "Principal ARNs registered as pull-time update exclusions in the Region's registry; None when "
            "not read (only read while a warmer role is set or ecrcache owns an exclusion there)."
        ),
    )
    unread: tuple[str, ...] = Field(
        default=(),
        description=(
            "Repositories a deep read skipped because the caller's time budget ran out (their ``details`` are "
            "None: the planner compares them on the fast path, with what ecrcache last applied)."
        ),
    )

    @model_validator(mode="after")
    def _keys_match(self) -> Self:
        wrong = [
            f"{where}[{key!r}] holds {name!r}"
            for where, items in (
                ("rules", {k: v.prefix for k, v in self.rules.items()}),
                ("templates", {k: v.prefix for k, v in self.templates.items()}),
                ("repositories", {k: v.name for k, v in self.repositories.items()}),
            )
            for key, name in items.items()
            if key != name
        ]
        if wrong:
            raise ValueError(f"keys must be the item's prefix or name: {'; '.join(wrong)}")
        return self

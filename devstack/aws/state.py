"""Per-backend state of the ECR extension (pull-through cache, creation templates, lifecycle previews).

Moto recreates its backends for every ``mock_aws()`` (and on ``POST /moto-api/reset``), so this
state hangs off the :class:`moto.ecr.models.ECRBackend` instance itself and is created lazily by
:func:`ext_state`. One :class:`EcrExtState` exists per (account, region) backend, exactly like
ECR's per-registry, per-Region resources.

Layout::

    ext_state(backend)
      .rules         {ecrRepositoryPrefix -> PullThroughCacheRule}   (prefix normalised, no trailing "/")
      .templates     {prefix -> CreationTemplate}
      .previews      {repositoryName -> LifecyclePreview}
      .pull_through  {repositoryName -> PullThroughRepoState}      (data-plane: tag validation, layer imports)
      .images        {repositoryName -> {imageDigest -> ImageExt}} (pull time, storage class, archive times)
      .exclusions    {principalArn -> createdAt}                  (pull-time update exclusions, registry-wide)
      .lock          RLock guarding all of the above (moto's server is multi-threaded)

Records are dataclasses with snake_case attributes; ``to_dict()`` returns the botocore member names
(``ecrRepositoryPrefix``, ``createdAt`` ...) with ``datetime`` values, which moto's serializer
renders as epoch seconds. Absent optional fields are omitted, as ECR does.

Everything here is plain data plus lookups; validation lives in ``ecr_rules``/``ecr_templates``/
``ecr_lifecycle``. Data-plane code (``ecr_pullthrough``) is expected to use :func:`rule_for_repository`,
:func:`upstream_repository_name`, :func:`pull_through_repo` and :func:`image_ext`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

__all__ = [
    "ROOT",
    "CreationTemplate",
    "EcrExtState",
    "ImageExt",
    "LayerImportStatus",
    "LifecyclePreview",
    "PullThroughCacheRule",
    "PullThroughRepoState",
    "TagValidation",
    "ext_state",
    "image_ext",
    "normalize_prefix",
    "pull_through_repo",
    "rule_for_repository",
    "upstream_repository_name",
]

ROOT: Final = "ROOT"
_ATTR: Final = "_ecrcache_ext_state"
_attach_lock = threading.Lock()

LayerImportStatus = Literal["PENDING", "IN_PROGRESS", "COMPLETE", "FAILED"]
StorageClass = Literal["STANDARD", "ARCHIVE"]
PreviewStatus = Literal["IN_PROGRESS", "COMPLETE", "EXPIRED", "FAILED"]


def normalize_prefix(prefix: str) -> str:
    """``foo/`` and ``foo`` name the same rule (ECR implies a trailing ``/``, ecr-facts §1.5)."""
    return prefix if prefix == ROOT else prefix.rstrip("/")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(slots=True)
class PullThroughCacheRule:
    """One pull-through cache rule (botocore shape ``PullThroughCacheRule``)."""

    ecr_repository_prefix: str
    upstream_registry_url: str
    upstream_registry: str
    registry_id: str
    created_at: datetime
    updated_at: datetime
    upstream_repository_prefix: str = ROOT
    credential_arn: str | None = None
    custom_role_arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "ecrRepositoryPrefix": self.ecr_repository_prefix,
                "upstreamRegistryUrl": self.upstream_registry_url,
                "createdAt": self.created_at,
                "registryId": self.registry_id,
                "credentialArn": self.credential_arn,
                "customRoleArn": self.custom_role_arn,
                "upstreamRepositoryPrefix": self.upstream_repository_prefix,
                "upstreamRegistry": self.upstream_registry,
                "updatedAt": self.updated_at,
            }
        )

    def covers(self, repository_name: str) -> bool:
        """Whether a repository name lives under this rule's ECR prefix (``ROOT`` covers every name)."""
        if self.ecr_repository_prefix == ROOT:
            return True
        return repository_name.startswith(self.ecr_repository_prefix + "/")


@dataclass(slots=True)
class CreationTemplate:
    """One repository creation template (botocore shape ``RepositoryCreationTemplate``)."""

    prefix: str
    applied_for: list[str]
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    encryption_configuration: dict[str, str] | None = None
    resource_tags: list[dict[str, str]] = field(default_factory=list)
    image_tag_mutability: str = "MUTABLE"
    image_tag_mutability_exclusion_filters: list[dict[str, str]] | None = None
    repository_policy: str | None = None
    lifecycle_policy: str | None = None
    custom_role_arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "prefix": self.prefix,
                "description": self.description,
                "encryptionConfiguration": self.encryption_configuration or {"encryptionType": "AES256"},
                "resourceTags": list(self.resource_tags),
                "imageTagMutability": self.image_tag_mutability,
                "imageTagMutabilityExclusionFilters": self.image_tag_mutability_exclusion_filters,
                "repositoryPolicy": self.repository_policy,
                "lifecyclePolicy": self.lifecycle_policy,
                "appliedFor": list(self.applied_for),
                "customRoleArn": self.custom_role_arn,
                "createdAt": self.created_at,
                "updatedAt": self.updated_at,
            }
        )

    def matches(self, repository_name: str) -> bool:
        """Whether this template's prefix covers ``repository_name`` (``ROOT`` covers all)."""
        if self.prefix == ROOT:
            return True
        base = self.prefix.rstrip("/")
        return repository_name == base or repository_name.startswith(base + "/")


@dataclass(slots=True)
class LifecyclePreview:
    """A lifecycle policy preview of one repository (``StartLifecyclePolicyPreview``)."""

    repository_name: str
    registry_id: str
    lifecycle_policy_text: str
    started_at: datetime
    status: PreviewStatus = "IN_PROGRESS"
    #: Completes at the first Get after this time (``None`` = at the first Get).
    complete_after: datetime | None = None
    #: Filled when the preview completes: botocore ``LifecyclePolicyPreviewResult`` dicts.
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class TagValidation:
    """When a cached tag was last checked against the upstream (drives the 24-hour refresh)."""

    last_validated_at: datetime
    upstream_digest: str | None = None


@dataclass(slots=True)
class PullThroughRepoState:
    """Data-plane facts about one pull-through-cache repository.

    Owned by ``ecr_pullthrough`` (the data plane); this module only defines the place:

    * ``tags`` -- tag -> :class:`TagValidation` (``lastValidatedAt`` per tag, ecr-facts §9.13);
    * ``layer_imports`` -- layer digest -> :data:`LayerImportStatus` (asynchronous layer import);
    * ``extra`` -- free-form room for anything else the data plane needs to remember.
    """

    repository_name: str
    rule_prefix: str
    created_by_pull_through: bool = True
    tags: dict[str, TagValidation] = field(default_factory=dict)
    layer_imports: dict[str, LayerImportStatus] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ImageExt:
    """Per-image facts moto does not keep (keyed by repository + digest).

    ``pushed_at`` overrides moto's ``imagePushedAt`` (taken from the injectable clock at PutImage);
    ``last_recorded_pull_time`` is set by the data plane on pulls (lifecycle ``sinceImagePulled``
    falls back to ``pushed_at``); ``storage_class`` and the archive times drive ``transition``.
    ``restore_complete_at`` is set while a restore from the archive runs (``imageStatus``
    ``ACTIVATING``; the image stays in the ``ARCHIVE`` class until then -- see ``ecr_storage``).
    """

    pushed_at: datetime | None = None
    last_recorded_pull_time: datetime | None = None
    storage_class: StorageClass = "STANDARD"
    last_archived_at: datetime | None = None
    last_activated_at: datetime | None = None
    restore_complete_at: datetime | None = None


@dataclass(slots=True)
class EcrExtState:
    """All extension state of one ECR backend (one account + Region)."""

    account_id: str
    region: str
    rules: dict[str, PullThroughCacheRule] = field(default_factory=dict)
    templates: dict[str, CreationTemplate] = field(default_factory=dict)
    previews: dict[str, LifecyclePreview] = field(default_factory=dict)
    pull_through: dict[str, PullThroughRepoState] = field(default_factory=dict)
    images: dict[str, dict[str, ImageExt]] = field(default_factory=dict)
    exclusions: dict[str, datetime] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)


def ext_state(backend: Any) -> EcrExtState:
    """The extension state of a moto ``ECRBackend``, created on first use (thread-safe)."""
    state = getattr(backend, _ATTR, None)
    if isinstance(state, EcrExtState):
        return state
    with _attach_lock:
        state = getattr(backend, _ATTR, None)
        if not isinstance(state, EcrExtState):
            state = EcrExtState(account_id=str(backend.account_id), region=str(backend.region_name))
            setattr(backend, _ATTR, state)
        return state


def rule_for_repository(state: EcrExtState, repository_name: str) -> PullThroughCacheRule | None:
    """The rule a repository name falls under: the longest matching ECR prefix, else ``ROOT``, else ``None``."""
    with state.lock:
        best: PullThroughCacheRule | None = None
        for rule in state.rules.values():
            if rule.ecr_repository_prefix == ROOT or not rule.covers(repository_name):
                continue
            if best is None or len(rule.ecr_repository_prefix) > len(best.ecr_repository_prefix):
                best = rule
        return best if best is not None else state.rules.get(ROOT)


def upstream_repository_name(rule: PullThroughCacheRule, repository_name: str) -> str:
    """Map a cache repository name to the upstream repository (ecr-facts §1.5 examples).

    (``ecr-public``, ``ROOT``): ``ecr-public/my-app/image1`` -> ``my-app/image1``;
    (``my-app``, ``upstream-app``): ``my-app/image1`` -> ``upstream-app/image1``;
    (``ROOT``, ``ROOT``): unchanged.
    """
    path = repository_name
    if rule.ecr_repository_prefix != ROOT:
        path = repository_name.removeprefix(rule.ecr_repository_prefix + "/")
    if rule.upstream_repository_prefix != ROOT:
        path = f"{normalize_prefix(rule.upstream_repository_prefix)}/{path}"
    return path


def pull_through_repo(state: EcrExtState, repository_name: str, rule_prefix: str) -> PullThroughRepoState:
    """The data-plane record of a cache repository, created on first use."""
    with state.lock:
        record = state.pull_through.get(repository_name)
        if record is None:
            record = PullThroughRepoState(repository_name=repository_name, rule_prefix=rule_prefix)
            state.pull_through[repository_name] = record
        return record


def image_ext(state: EcrExtState, repository_name: str, image_digest: str) -> ImageExt:
    """The extension record of one image, created on first use."""
    with state.lock:
        per_repo = state.images.setdefault(repository_name, {})
        record = per_repo.get(image_digest)
        if record is None:
            record = ImageExt()
            per_repo[image_digest] = record
        return record

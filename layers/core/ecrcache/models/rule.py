"""Desired state of one pull-through cache rule: the ECR rule, its creation template and repo settings.

A :class:`RuleSpec` is keyed by its ECR repository prefix, which it does not carry itself; the
checks and renderings that need the prefix take it as an argument (:meth:`RuleSpec.validate_for_prefix`,
:meth:`RuleSpec.pull_through_cache_rule_request`, :meth:`RuleSpec.creation_template_request`), and
:class:`~ecrcache.models.desired_state.DesiredStateDocument` runs the same checks for every rule.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ecrcache.errors import FieldError, InvalidInputError, field_errors_from_pydantic, invalid
from ecrcache.models.common import (
    MAX_TAGS,
    ROOT_PREFIX,
    AwsRegion,
    Description,
    EcrPrefix,
    IamRoleArn,
    ImageTagFilter,
    KmsKeyArn,
    Loc,
    ResourceName,
    TagKey,
    TagValue,
    parse_ecr_prefix,
    raise_field_errors,
)
from ecrcache.models.credential import check_credential_arn
from ecrcache.models.lifecycle import LifecycleSpec
from ecrcache.models.upstream import (
    PTC_UNSUPPORTED_REGIONS,
    UpstreamKind,
    allows_custom_role,
    check_url,
    default_url,
    facts,
    requires_credential,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr.type_defs import (
        CreatePullThroughCacheRuleRequestTypeDef,
        CreateRepositoryCreationTemplateRequestTypeDef,
        EncryptionConfigurationForRepositoryCreationTemplateTypeDef,
    )

REPOSITORY_POLICY_MAX_LENGTH: Final = 10_240
MAX_TAG_MUTABILITY_EXCLUSIONS: Final = 5
CREATION_ROLE_ISSUE: Final = "aws/containers-roadmap#2398"


class TagMutability(StrEnum):
    """ECR ``imageTagMutability``. ``IMMUTABLE`` is refused for cached repositories (see below)."""

    MUTABLE = "MUTABLE"
    IMMUTABLE = "IMMUTABLE"
    IMMUTABLE_WITH_EXCLUSION = "IMMUTABLE_WITH_EXCLUSION"
    MUTABLE_WITH_EXCLUSION = "MUTABLE_WITH_EXCLUSION"

    @property
    def takes_exclusions(self) -> bool:
        return self in (TagMutability.IMMUTABLE_WITH_EXCLUSION, TagMutability.MUTABLE_WITH_EXCLUSION)


class EncryptionType(StrEnum):
    AES256 = "AES256"
    KMS = "KMS"
    KMS_DSSE = "KMS_DSSE"


class DeletionPolicy(StrEnum):
    """What deleting the desired rule does to the ECR rule. Cached repositories are never deleted."""

    RETAIN = "retain"
    DELETE = "delete"


class EncryptionSettings(BaseModel):
    """Encryption of repositories ECR creates under the prefix. Fixed at creation; ECR cannot change it later."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"type": "AES256"},
                {
                    "type": "KMS",
                    "kms_key": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                },
            ]
        },
    )

    type: EncryptionType = Field(
        default=EncryptionType.AES256,
        description="AES256 (S3-managed keys), KMS or KMS_DSSE (dual-layer).",
    )
    kms_key: KmsKeyArn | None = Field(
        default=None,
        description="Full KMS key ARN for KMS/KMS_DSSE; omit to use the AWS managed key aws/ecr.",
    )

    @field_validator("kms_key")
    @classmethod
    def _kms_key_needs_kms(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if value is not None and kind is EncryptionType.AES256:
            raise ValueError("kms_key is only allowed with encryption type KMS or KMS_DSSE")
        return value

    @property
    def uses_kms(self) -> bool:
        return self.type is not EncryptionType.AES256

    def render(self) -> EncryptionConfigurationForRepositoryCreationTemplateTypeDef:
        """ECR ``encryptionConfiguration``."""
        rendered: EncryptionConfigurationForRepositoryCreationTemplateTypeDef = {"encryptionType": self.type.value}
        if self.kms_key is not None:
            rendered["kmsKey"] = self.kms_key
        return rendered


def _check_statement(index: int, statement: JsonValue) -> str | None:
    if not isinstance(statement, dict):
        return f"Statement[{index}] must be a JSON object"
    if statement.get("Effect") not in ("Allow", "Deny"):
        return f"Statement[{index}] must have Effect Allow or Deny"
    return None


def render_policy(policy: dict[str, JsonValue]) -> str:
    """Compact JSON with sorted keys, so the same policy always renders to the same text."""
    return json.dumps(policy, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class RepositorySettings(BaseModel):
    """Settings of every repository cached under the prefix: the creation template, and patches for
    repositories that already exist (creation templates are not retroactive)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {},
                {
                    "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
                    "tag_mutability_exclusions": ["latest", "*-dev"],
                    "encryption": {"type": "KMS"},
                    "tags": {"team": "platform"},
                    "creation_role_arn": "arn:aws:iam::123456789012:role/ecrcache/ecr-ptc-creation",
                },
            ]
        },
    )

    tag_mutability: TagMutability = Field(
        default=TagMutability.MUTABLE,
        description=(
            "ECR image tag mutability. Keep MUTABLE: ECR refreshes a cached tag by moving it, which an "
            "immutable tag forbids. IMMUTABLE is refused; IMMUTABLE_WITH_EXCLUSION keeps the listed tags "
            "refreshing and freezes the rest, MUTABLE_WITH_EXCLUSION freezes only the listed tags."
        ),
    )
    tag_mutability_exclusions: tuple[ImageTagFilter, ...] = Field(
        default=(),
        validate_default=True,
        max_length=MAX_TAG_MUTABILITY_EXCLUSIONS,
        description="1-5 wildcard tag filters; required with the *_WITH_EXCLUSION settings, forbidden otherwise.",
        examples=[["latest", "*-dev"]],
    )
    encryption: EncryptionSettings = Field(
        default_factory=EncryptionSettings,
        description="Encryption of newly cached repositories (cannot be changed on existing ones).",
    )
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        max_length=MAX_TAGS,
        description="Resource tags for cached repositories (at most 50; keys aws:* and ecrcache:* are reserved).",
        examples=[{"team": "platform", "cost-center": "1234"}],
    )
    policy: dict[str, JsonValue] | None = Field(
        default=None,
        description="IAM repository policy as a JSON object (at most 10,240 characters rendered).",
        examples=[
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "OrgPull",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-exampleorgid"}},
                    }
                ],
            }
        ],
    )
    creation_role_arn: IamRoleArn | None = Field(
        default=None,
        description=(
            "Repository creation role (the template's customRoleArn) that ECR assumes to create cached "
            "repositories. Required when tags or KMS encryption are set. The deployed controller passes only "
            "roles under its EcrRolePath (default /ecrcache/)."
        ),
    )

    @field_validator("tag_mutability")
    @classmethod
    def _not_immutable(cls, value: TagMutability) -> TagMutability:
        if value is TagMutability.IMMUTABLE:
            raise ValueError(
                "IMMUTABLE stops ECR from refreshing cached tags from the upstream; use MUTABLE, or "
                "IMMUTABLE_WITH_EXCLUSION listing the tags that must keep refreshing (e.g. latest)"
            )
        return value

    @field_validator("tag_mutability_exclusions")
    @classmethod
    def _exclusions_match_mutability(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        mutability = info.data.get("tag_mutability")
        if mutability is None:
            return value
        if mutability.takes_exclusions and not value:
            raise ValueError(f"{mutability.value} needs 1-{MAX_TAG_MUTABILITY_EXCLUSIONS} exclusion filters")
        if not mutability.takes_exclusions and value:
            raise ValueError(f"exclusion filters are only allowed with *_WITH_EXCLUSION, not {mutability.value}")
        if len(set(value)) != len(value):
            raise ValueError("exclusion filters must be unique")
        return value

    @field_validator("policy")
    @classmethod
    def _policy_shape(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - {"Version", "Id", "Statement"})
        if unknown:
            raise ValueError(f"a repository policy has only Version, Id and Statement at the top; unknown: {unknown}")
        if value.get("Version", "2012-10-17") not in ("2012-10-17", "2008-10-17"):
            raise ValueError("policy Version must be 2012-10-17 (or the legacy 2008-10-17)")
        statements = value.get("Statement")
        items = statements if isinstance(statements, list) else [statements]
        if statements is None or not items:
            raise ValueError("a repository policy needs at least one Statement")
        problems = [p for i, s in enumerate(items) if (p := _check_statement(i, s))]
        if problems:
            raise ValueError("; ".join(problems))
        length = len(render_policy(value))
        if length > REPOSITORY_POLICY_MAX_LENGTH:
            raise ValueError(f"policy renders to {length} characters; ECR allows {REPOSITORY_POLICY_MAX_LENGTH}")
        return value

    @model_validator(mode="after")
    def _creation_role_when_needed(self) -> Self:
        needs = [
            what
            for what, used in (("resource tags", bool(self.tags)), ("KMS encryption", self.encryption.uses_kms))
            if used
        ]
        if needs and self.creation_role_arn is None:
            raise_field_errors(
                "RepositorySettings",
                [
                    (
                        ("creation_role_arn",),
                        f"creation_role_arn is required with {' and '.join(needs)}: without a repository creation "
                        "role ECR cannot create the cached repository and every first pull fails as 'not found' "
                        f"({CREATION_ROLE_ISSUE})",
                        None,
                    )
                ],
            )
        return self

    def policy_text(self) -> str | None:
        """The repository policy as ECR takes it (``repositoryPolicy`` / ``SetRepositoryPolicy``)."""
        return None if self.policy is None else render_policy(self.policy)


class RuleSpec(BaseModel):
    """Desired state of one pull-through cache rule, keyed by its ECR repository prefix."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"upstream_kind": "docker-hub", "credential": "docker-hub"},
                {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 20}}},
                {
                    "upstream_kind": "ecr",
                    "upstream_url": "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
                    "upstream_repository_prefix": "base",
                    "custom_role_arn": "arn:aws:iam::123456789012:role/ecrcache/ecr-to-ecr-ptc",
                    "regions": ["eu-west-1", "us-east-1"],
                    "deletion_policy": "delete",
                },
            ]
        },
    )

    upstream_kind: UpstreamKind = Field(description="The upstream registry (ECR upstreamRegistry).")
    upstream_url: str | None = Field(
        default=None,
        validate_default=True,
        description=(
            "ECR upstreamRegistryUrl, host only. Defaulted for kinds with a fixed URL; required for "
            "azure-container-registry (<name>.azurecr.io) and ecr (<account>.dkr.ecr.<region>.amazonaws.com)."
        ),
        examples=["registry-1.docker.io", "myregistry.azurecr.io"],
    )
    upstream_repository_prefix: EcrPrefix = Field(
        default=ROOT_PREFIX,
        description="Upstream namespace the rule maps to (ROOT = any). Only allowed when the ECR prefix is not ROOT.",
    )
    credential: ResourceName | None = Field(
        default=None,
        validate_default=True,
        description=(
            "Name of the credential (secret ecr-pullthroughcache/<name>). Required for docker-hub, "
            "github-container-registry, gitlab-container-registry, azure-container-registry and chainguard; "
            "forbidden for the others."
        ),
    )
    custom_role_arn: IamRoleArn | None = Field(
        default=None,
        description=(
            "ECR-to-ECR only: role ECR assumes to read the upstream registry. Needed when the upstream is "
            "another account; a same-account, cross-region upstream needs none. The deployed controller passes "
            "only roles under its EcrRolePath (default /ecrcache/)."
        ),
    )
    regions: tuple[AwsRegion, ...] = Field(
        default=(),
        description="Regions to create the rule in; empty means the stack's region.",
        examples=[["us-east-1", "eu-west-1"]],
    )
    repository: RepositorySettings = Field(
        default_factory=RepositorySettings,
        description="Settings of cached repositories (creation template and patches).",
    )
    lifecycle: LifecycleSpec | None = Field(
        default=None,
        description="Lifecycle policy for cached repositories (presets or full ECR grammar).",
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.RETAIN,
        description="retain: deleting the desired rule leaves the ECR rule; delete: removes it. Cached repos stay.",
    )
    description: Description | None = Field(default=None, description="Free text, at most 256 characters.")
    adopt: bool = Field(
        default=False,
        strict=True,
        # Left out of the stored / exported spec while false: specs stored before the field existed stay equal.
        exclude_if=lambda value: value is False,
        description=(
            "Take over a pull-through cache rule or creation template with this prefix that ecrcache did not "
            "create (made by hand, by Terraform ...) and make it match this rule. Without it such a rule is "
            "Blocked and nothing in ECR is changed. Once taken over, the rule is ecrcache's like any other."
        ),
    )

    @field_validator("upstream_url")
    @classmethod
    def _url_for_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind: UpstreamKind | None = info.data.get("upstream_kind")
        if kind is None:
            return value
        if value is None:
            default = default_url(kind)
            if default is None:
                raise ValueError(f"upstream_kind {kind.value!r} needs upstream_url {facts(kind).url_hint}")
            return default
        return check_url(kind, value)

    @field_validator("credential")
    @classmethod
    def _credential_for_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind: UpstreamKind | None = info.data.get("upstream_kind")
        if kind is None:
            return value
        if requires_credential(kind) and value is None:
            raise ValueError(
                f"upstream_kind {kind.value!r} requires a credential "
                "(ECR: the upstream registry requires authentication)"
            )
        if not requires_credential(kind) and value is not None:
            raise ValueError(f"upstream_kind {kind.value!r} takes no credential (ECR rejects a credentialArn for it)")
        return value

    @field_validator("custom_role_arn")
    @classmethod
    def _custom_role_for_ecr(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind: UpstreamKind | None = info.data.get("upstream_kind")
        if value is not None and kind is not None and not allows_custom_role(kind):
            raise ValueError(f"custom_role_arn is only allowed for upstream_kind 'ecr', not {kind.value!r}")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({r for r in value if value.count(r) > 1})
        if duplicates:
            raise ValueError(f"regions must be unique; repeated: {', '.join(duplicates)}")
        unsupported = sorted(set(value) & PTC_UNSUPPORTED_REGIONS)
        if unsupported:
            raise ValueError(f"ECR offers no pull-through cache in {', '.join(unsupported)}")
        return value

    # ------------------------------------------------------------------ prefix-dependent checks

    def prefix_errors(self, prefix: str) -> list[tuple[Loc, str, object]]:
        """Problems that need the (normalised) ECR prefix; ``loc`` relative to the rule."""
        if prefix == ROOT_PREFIX and self.upstream_repository_prefix != ROOT_PREFIX:
            return [
                (
                    ("upstream_repository_prefix",),
                    "upstream_repository_prefix can only be set when the ECR repository prefix is not ROOT",
                    self.upstream_repository_prefix,
                )
            ]
        return []

    def validate_for_prefix(self, prefix: str) -> str:
        """Check the rule against its ECR prefix; return the normalised prefix.

        Raises :class:`~ecrcache.errors.InvalidInputError` naming the field (``prefix`` or
        ``upstream_repository_prefix``) and the rule broken.
        """
        try:
            normalised = parse_ecr_prefix(prefix)
        except ValidationError as exc:
            details = field_errors_from_pydantic(exc, "prefix")
            raise InvalidInputError(f"prefix: {details[0].message}", details) from None
        self.check_prefix(normalised)
        return normalised

    def check_prefix(self, prefix: str) -> None:
        """Check the rule against its ECR prefix, already normalised (:meth:`validate_for_prefix` parses it).

        Raises :class:`~ecrcache.errors.InvalidInputError` naming the field and the rule broken.
        """
        errors = self.prefix_errors(prefix)
        if errors:
            details = [FieldError(".".join(map(str, loc)), message) for loc, message, _ in errors]
            raise InvalidInputError(f"{details[0].field}: {details[0].message}", details)

    # ------------------------------------------------------------------ renderings

    def effective_url(self) -> str:
        """The upstream registry URL ECR is given (the default for fixed-URL kinds)."""
        if self.upstream_url is None:  # pragma: no cover - the validator always sets it
            raise AssertionError("upstream_url is set by validation")
        return self.upstream_url

    def pull_through_cache_rule_request(
        self, prefix: str, credential_arn: str | None
    ) -> CreatePullThroughCacheRuleRequestTypeDef:
        """Keyword arguments for ECR ``CreatePullThroughCacheRule``.

        ``credential_arn`` is the full ARN of the credential's secret, resolved by the caller;
        it is required exactly when the rule names a credential. ``upstreamRepositoryPrefix`` is
        sent only when it is not ``ROOT`` (ECR's default).
        """
        normalised = self.validate_for_prefix(prefix)
        if self.credential is not None and credential_arn is None:
            raise invalid("credential_arn", f"the rule uses credential {self.credential!r}; pass its secret ARN")
        if self.credential is None and credential_arn is not None:
            raise invalid("credential_arn", f"upstream_kind {self.upstream_kind.value!r} takes no credential")
        request: CreatePullThroughCacheRuleRequestTypeDef = {
            "ecrRepositoryPrefix": normalised,
            "upstreamRegistryUrl": self.effective_url(),
            "upstreamRegistry": self.upstream_kind.value,
        }
        if self.upstream_repository_prefix != ROOT_PREFIX:
            request["upstreamRepositoryPrefix"] = self.upstream_repository_prefix
        if credential_arn is not None:
            try:
                request["credentialArn"] = check_credential_arn(credential_arn)
            except ValueError as exc:
                raise invalid("credential_arn", str(exc)) from None
        if self.custom_role_arn is not None:
            request["customRoleArn"] = self.custom_role_arn
        return request

    def creation_template_request(self, prefix: str) -> CreateRepositoryCreationTemplateRequestTypeDef:
        """Keyword arguments for ECR ``CreateRepositoryCreationTemplate`` (also the desired template).

        The template prefix is the rule's ECR prefix and applies to pull-through cache only. Optional
        members are present only when set, so equal specs render equal requests.
        """
        normalised = self.validate_for_prefix(prefix)
        settings = self.repository
        request: CreateRepositoryCreationTemplateRequestTypeDef = {
            "prefix": normalised,
            "appliedFor": ["PULL_THROUGH_CACHE"],
            "imageTagMutability": settings.tag_mutability.value,
            "encryptionConfiguration": settings.encryption.render(),
        }
        if settings.tag_mutability_exclusions:
            request["imageTagMutabilityExclusionFilters"] = [
                {"filterType": "WILDCARD", "filter": f} for f in settings.tag_mutability_exclusions
            ]
        if self.description is not None:
            request["description"] = self.description
        if settings.tags:
            request["resourceTags"] = [{"Key": k, "Value": v} for k, v in sorted(settings.tags.items())]
        if (policy := settings.policy_text()) is not None:
            request["repositoryPolicy"] = policy
        if self.lifecycle is not None:
            request["lifecyclePolicy"] = self.lifecycle.render_text()
        if settings.creation_role_arn is not None:
            request["customRoleArn"] = settings.creation_role_arn
        return request

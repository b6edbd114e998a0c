"""Typed model of Amazon ECR's lifecycle policy grammar, and the readable presets that compile to it.

Two ways to write a rule's ``lifecycle`` section (:class:`LifecycleSpec`), exactly one of them:

* ``presets`` (:class:`LifecyclePresets`): ``keep_last``, ``expire_untagged_after_days``,
  ``expire_after_days``, ``archive_unpulled_after_days``, ``expire_archived_after_days``;
* ``rules``: ECR's own grammar, with ECR's JSON field names, so an example from the AWS documentation
  can be pasted as is (:class:`LifecycleRule`, :class:`LifecycleSelection`, :class:`LifecycleAction`).

Every constraint the ECR documentation states is checked here, so a bad policy is refused at the API
with the field path and the rule broken (``rules[2].selection.countUnit: countUnit is only allowed
with ...``) instead of failing later in ``PutLifecyclePolicy`` with ECR's ``instance failed to match
exactly one schema``. Sources: the ECR user guide pages "Lifecycle policy properties",
"Examples of lifecycle policies" and "How lifecycle policies work" (evaluation rules), and
``shared/reference/ecr-facts.md`` section 5.

Decisions where the documentation is silent or ambiguous (the API docs should repeat them):

* "A rule with tagStatus any must have the highest rulePriority" is checked **per storage class**:
  the documentation's own "Combining archive and expire rules" example has an ``any`` rule for
  standard images at priority 1 and an ``any`` rule for archived images at priority 2, and the
  evaluation rules scope their uniqueness statements "to the rules selecting a specific storage
  class". So there is at most one ``any`` rule per storage class, and it is the last of its class.
* "Only one rule selecting a specific storage class is allowed to select untagged images" is read
  as at most one ``tagStatus: untagged`` rule per storage class (the documentation's "Filtering on
  all images, example B" has an ``untagged`` and an ``any`` rule side by side, so ``any`` does not
  count). "The set of all rules selecting a specific storage class must contain a unique set of
  prefixes" is read as: two rules of one storage class may not use the same tag list (compared as a
  set, for ``tagPrefixList`` and ``tagPatternList`` alike). Such a second rule could never act anyway.
* ``sinceImageTransitioned`` requires ``countNumber`` >= 90: the examples page says a policy cannot
  delete images that have been in archive for less than 90 days.
* Entries of ``tagPatternList`` / ``tagPrefixList`` must be non-empty strings (ECR image tags are).
* Integers are strict (``14``, not ``"14"``, ``14.0`` or ``true``), as in ECR's JSON schema.
* ``storageClass`` is kept as written: omitted stays omitted, ``standard`` stays ``standard``;
  :func:`normalise_policy_text` drops ``standard`` (ECR's default) so both forms compare equal.
* The 100-30,720 character bounds of ``LifecyclePolicyText`` are a property of a text, so they are
  checked on the text we send (:meth:`LifecycleSpec.render_text`) and the text we read
  (:func:`parse_policy_text`), not on the model: the compact rendering of any valid rule is at least
  138 characters, so the lower bound only bites on hand-written text.

The model is pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ecrcache.models.common import MAX_API_INTEGER, PrintableText

__all__ = [
    "MAX_POLICY_TEXT_LENGTH",
    "MAX_RULES",
    "MAX_TAG_PATTERN_WILDCARDS",
    "MIN_ARCHIVED_DAYS",
    "MIN_POLICY_TEXT_LENGTH",
    "ActionType",
    "CountType",
    "CountUnit",
    "LifecycleAction",
    "LifecyclePolicy",
    "LifecyclePresets",
    "LifecycleRule",
    "LifecycleSelection",
    "LifecycleSpec",
    "StorageClass",
    "TagStatus",
    "TargetStorageClass",
    "check_policy_text_length",
    "normalise_policy_text",
    "parse_policy_text",
]

MIN_POLICY_TEXT_LENGTH = 100  # LifecyclePolicyText min (botocore service model)
MAX_POLICY_TEXT_LENGTH = 30_720  # LifecyclePolicyText max (botocore service model)
MAX_RULES = 50  # rules per lifecycle policy (ECR service quotas)
MAX_TAG_PATTERN_WILDCARDS = 4  # '*' per tagPatternList string (lifecycle policy properties)
MIN_ARCHIVED_DAYS = 90  # minimum archive storage duration before a lifecycle expiry (examples page)


class TagStatus(StrEnum):
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    ANY = "any"


class StorageClass(StrEnum):
    STANDARD = "standard"
    ARCHIVE = "archive"


class CountType(StrEnum):
    IMAGE_COUNT_MORE_THAN = "imageCountMoreThan"
    SINCE_IMAGE_PUSHED = "sinceImagePushed"
    SINCE_IMAGE_PULLED = "sinceImagePulled"
    SINCE_IMAGE_TRANSITIONED = "sinceImageTransitioned"


class CountUnit(StrEnum):
    DAYS = "days"


class ActionType(StrEnum):
    EXPIRE = "expire"
    TRANSITION = "transition"


class TargetStorageClass(StrEnum):
    ARCHIVE = "archive"


_SINCE_COUNT_TYPES = frozenset(
    {CountType.SINCE_IMAGE_PUSHED, CountType.SINCE_IMAGE_PULLED, CountType.SINCE_IMAGE_TRANSITIONED}
)
_SINCE_NAMES = "sinceImagePushed, sinceImagePulled or sinceImageTransitioned"


# --------------------------------------------------------------------------------------------------
# Error plumbing: a validator may report several broken rules, each at its own field path. Raising a
# ValidationError from a validator keeps every line error, with the path of the validated value
# prepended (so ``("countUnit",)`` raised in the selection surfaces as ``rules.2.selection.countUnit``).


@dataclass(frozen=True, slots=True)
class _Issue:
    loc: tuple[str | int, ...]
    code: str
    message: str
    value: object = None


def _raise_issues(title: str, issues: Iterable[_Issue]) -> None:
    details = [
        InitErrorDetails(type=PydanticCustomError(issue.code, issue.message), loc=issue.loc, input=issue.value)
        for issue in issues
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


def _at_least(minimum: int, code: str, message: str) -> AfterValidator:
    def check(value: int) -> int:
        if value < minimum:
            raise PydanticCustomError(code, message)
        return value

    return AfterValidator(check)


def _at_most_api_integer(name: str) -> AfterValidator:
    """ECR's documentation types ``rulePriority`` and ``countNumber`` as ``integer`` without a maximum;
    an AWS API integer is a 32-bit signed one (:data:`~ecrcache.models.common.MAX_API_INTEGER`)."""

    def check(value: int) -> int:
        if value > MAX_API_INTEGER:
            raise PydanticCustomError(
                "lifecycle_integer_too_large",
                f"{name} must be at most {MAX_API_INTEGER:,} (the largest integer ECR accepts)",
            )
        return value

    return AfterValidator(check)


def _check_tag_list(kind: str, *, max_wildcards: int | None) -> AfterValidator:
    def check(values: list[str]) -> list[str]:
        if not values:
            raise PydanticCustomError("lifecycle_tag_list_empty", f"{kind} must contain at least one entry")
        issues: list[_Issue] = []
        for index, value in enumerate(values):
            if not value:
                issues.append(_Issue((index,), "lifecycle_tag_list_entry_empty", f"{kind} entries must not be empty"))
            elif max_wildcards is not None and value.count("*") > max_wildcards:
                issues.append(
                    _Issue(
                        (index,),
                        "lifecycle_tag_pattern_wildcards",
                        f"{kind} entries may contain at most {max_wildcards} wildcards (*); "
                        f"this one has {value.count('*')}",
                        value,
                    )
                )
        _raise_issues(kind, issues)
        return values

    return AfterValidator(check)


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


# --------------------------------------------------------------------------------------------------
# Field types

_INTEGER_BOUNDS = {"minimum": 1, "maximum": MAX_API_INTEGER}

RulePriority = Annotated[
    int,
    Field(strict=True, json_schema_extra=_INTEGER_BOUNDS, description="Order of evaluation, lowest first; unique."),
    _at_least(1, "lifecycle_rule_priority", "rulePriority must be a positive integer (1 is evaluated first)"),
    _at_most_api_integer("rulePriority"),
]
CountNumber = Annotated[
    int,
    Field(strict=True, json_schema_extra=_INTEGER_BOUNDS),
    _at_least(1, "lifecycle_count_number", "countNumber must be a positive integer (0 is not accepted)"),
    _at_most_api_integer("countNumber"),
]
RuleDescription = PrintableText
"""A rule's ``description``: no documented limit but the policy text's, and no control characters."""
TagPatternList = Annotated[
    list[str],
    Field(json_schema_extra={"minItems": 1}, description="Tag patterns with up to 4 '*' each; all must match."),
    _check_tag_list("tagPatternList", max_wildcards=MAX_TAG_PATTERN_WILDCARDS),
]
TagPrefixList = Annotated[
    list[str],
    Field(json_schema_extra={"minItems": 1}, description="Tag prefixes; all must match."),
    _check_tag_list("tagPrefixList", max_wildcards=None),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# The grammar


class LifecycleSelection(_Frozen):
    """``selection`` of a rule. Field order is ECR's canonical key order (and the rendering order)."""

    tagStatus: TagStatus
    tagPatternList: TagPatternList | None = None
    tagPrefixList: TagPrefixList | None = None
    storageClass: StorageClass | None = Field(
        default=None, description="standard (the default) or archive; archive only with sinceImageTransitioned."
    )
    countType: CountType
    countUnit: CountUnit | None = Field(default=None, description=f"days; required with {_SINCE_NAMES} only.")
    countNumber: CountNumber

    @property
    def effective_storage_class(self) -> StorageClass:
        return self.storageClass or StorageClass.STANDARD

    @property
    def tag_list(self) -> list[str] | None:
        """The tag filter in use (``tagPatternList`` or ``tagPrefixList``), if any."""
        return self.tagPatternList if self.tagPatternList is not None else self.tagPrefixList

    @model_validator(mode="after")
    def _check_selection(self) -> Self:
        _raise_issues(
            "LifecycleSelection",
            [
                *self._tag_filter_issues(),
                *self._storage_class_issues(),
                *self._count_issues(),
            ],
        )
        return self

    def _tag_filter_issues(self) -> Iterator[_Issue]:
        has_pattern = self.tagPatternList is not None
        has_prefix = self.tagPrefixList is not None
        if self.tagStatus is TagStatus.TAGGED:
            if not has_pattern and not has_prefix:
                yield _Issue(
                    ("tagPatternList",),
                    "lifecycle_tag_filter_missing",
                    "tagPatternList or tagPrefixList is required when tagStatus is tagged",
                )
            elif has_pattern and has_prefix:
                yield _Issue(
                    ("tagPrefixList",),
                    "lifecycle_tag_filter_conflict",
                    "tagPatternList and tagPrefixList cannot both be set in one rule; keep one of them",
                    self.tagPrefixList,
                )
            return
        for name, value in (("tagPatternList", self.tagPatternList), ("tagPrefixList", self.tagPrefixList)):
            if value is not None:
                yield _Issue(
                    (name,),
                    "lifecycle_tag_filter_not_allowed",
                    f"{name} is only allowed when tagStatus is tagged; remove it for tagStatus {self.tagStatus}",
                    value,
                )

    def _storage_class_issues(self) -> Iterator[_Issue]:
        if self.countType is CountType.SINCE_IMAGE_TRANSITIONED:
            if self.effective_storage_class is not StorageClass.ARCHIVE:
                yield _Issue(
                    ("storageClass",),
                    "lifecycle_storage_class_required",
                    "storageClass must be archive when countType is sinceImageTransitioned "
                    "(only archived images have a transition time)",
                    self.storageClass,
                )
        elif self.effective_storage_class is StorageClass.ARCHIVE:
            yield _Issue(
                ("storageClass",),
                "lifecycle_storage_class_not_allowed",
                f"storageClass archive is only allowed with countType sinceImageTransitioned; "
                f"{self.countType} selects standard images only (omit storageClass or set standard)",
                self.storageClass,
            )

    def _count_issues(self) -> Iterator[_Issue]:
        if self.countType in _SINCE_COUNT_TYPES and self.countUnit is None:
            yield _Issue(
                ("countUnit",),
                "lifecycle_count_unit_required",
                f"countUnit days is required when countType is {self.countType}",
            )
        elif self.countType not in _SINCE_COUNT_TYPES and self.countUnit is not None:
            yield _Issue(
                ("countUnit",),
                "lifecycle_count_unit_not_allowed",
                f"countUnit is only allowed with {_SINCE_NAMES}; remove it for {self.countType}",
                self.countUnit,
            )
        if self.countType is CountType.SINCE_IMAGE_TRANSITIONED and self.countNumber < MIN_ARCHIVED_DAYS:
            yield _Issue(
                ("countNumber",),
                "lifecycle_archived_days_minimum",
                f"countNumber must be at least {MIN_ARCHIVED_DAYS} when countType is sinceImageTransitioned: "
                f"ECR keeps archived images for a minimum of {MIN_ARCHIVED_DAYS} days",
                self.countNumber,
            )


class LifecycleAction(_Frozen):
    """``action`` of a rule: ``expire`` (delete) or ``transition`` to ``archive``."""

    type: ActionType
    targetStorageClass: TargetStorageClass | None = Field(
        default=None, description="archive; required with type transition, not allowed with expire."
    )

    @model_validator(mode="after")
    def _check_action(self) -> Self:
        issues: list[_Issue] = []
        if self.type is ActionType.TRANSITION and self.targetStorageClass is None:
            issues.append(
                _Issue(
                    ("targetStorageClass",),
                    "lifecycle_target_storage_class_required",
                    "targetStorageClass archive is required when type is transition",
                )
            )
        elif self.type is ActionType.EXPIRE and self.targetStorageClass is not None:
            issues.append(
                _Issue(
                    ("targetStorageClass",),
                    "lifecycle_target_storage_class_not_allowed",
                    "targetStorageClass is only allowed when type is transition; remove it for expire",
                    self.targetStorageClass,
                )
            )
        _raise_issues("LifecycleAction", issues)
        return self


class LifecycleRule(_Frozen):
    """One rule of a lifecycle policy, in ECR's JSON shape."""

    rulePriority: RulePriority
    description: RuleDescription | None = None
    selection: LifecycleSelection
    action: LifecycleAction

    @model_validator(mode="after")
    def _check_rule(self) -> Self:
        issues: list[_Issue] = []
        if self.selection.countType is CountType.SINCE_IMAGE_PULLED and self.action.type is ActionType.EXPIRE:
            issues.append(
                _Issue(
                    ("action", "type"),
                    "lifecycle_pulled_requires_transition",
                    "action type expire cannot be used with countType sinceImagePulled; use type transition with "
                    "targetStorageClass archive (to delete images by pull activity, archive them with "
                    "sinceImagePulled, then expire them with a storageClass archive, sinceImageTransitioned rule)",
                    self.action.type,
                )
            )
        if self.selection.effective_storage_class is StorageClass.ARCHIVE and self.action.type is ActionType.TRANSITION:
            issues.append(
                _Issue(
                    ("action", "type"),
                    "lifecycle_archive_transition",
                    "action type transition is not allowed for storageClass archive (the images are already "
                    "archived); sinceImageTransitioned rules must use type expire",
                    self.action.type,
                )
            )
        _raise_issues("LifecycleRule", issues)
        return self


# --------------------------------------------------------------------------------------------------
# Checks across the rules of one policy


def _rule_count_issues(rules: Sequence[LifecycleRule]) -> Iterator[_Issue]:
    if not rules:
        yield _Issue((), "lifecycle_rules_empty", "rules must contain at least one rule")
    elif len(rules) > MAX_RULES:
        yield _Issue(
            (),
            "lifecycle_rules_too_many",
            f"rules has {len(rules)} rules; ECR allows at most {MAX_RULES} in one lifecycle policy",
        )


def _priority_issues(rules: Sequence[LifecycleRule]) -> Iterator[_Issue]:
    first_use: dict[int, int] = {}
    for index, rule in enumerate(rules):
        earlier = first_use.setdefault(rule.rulePriority, index)
        if earlier != index:
            yield _Issue(
                (index, "rulePriority"),
                "lifecycle_rule_priority_duplicate",
                f"rulePriority {rule.rulePriority} is already used by rules[{earlier}]; "
                "every rule needs a unique rulePriority",
                rule.rulePriority,
            )


def _any_rule_issues(indexed: Sequence[tuple[int, LifecycleRule]], storage: StorageClass) -> Iterator[_Issue]:
    any_rules = [(i, r) for i, r in indexed if r.selection.tagStatus is TagStatus.ANY]
    if not any_rules:
        return
    first_index, any_rule = any_rules[0]
    for index, rule in any_rules[1:]:
        yield _Issue(
            (index, "selection", "tagStatus"),
            "lifecycle_any_rule_duplicate",
            f"only one rule per storageClass may have tagStatus any; rules[{first_index}] already does "
            f"for storageClass {storage}",
            rule.selection.tagStatus,
        )
    later = [
        (i, r)
        for i, r in indexed
        if r.selection.tagStatus is not TagStatus.ANY and r.rulePriority >= any_rule.rulePriority
    ]
    if later:
        index, rule = later[0]
        yield _Issue(
            (first_index, "rulePriority"),
            "lifecycle_any_rule_not_last",
            f"a rule with tagStatus any must have the highest rulePriority of the rules selecting storageClass "
            f"{storage} (it is evaluated last); rules[{index}] has rulePriority {rule.rulePriority}",
            any_rule.rulePriority,
        )


def _selector_issues(indexed: Sequence[tuple[int, LifecycleRule]], storage: StorageClass) -> Iterator[_Issue]:
    untagged_at: int | None = None
    seen: dict[tuple[str, frozenset[str]], int] = {}
    for index, rule in indexed:
        selection = rule.selection
        if selection.tagStatus is TagStatus.UNTAGGED:
            if untagged_at is not None:
                yield _Issue(
                    (index, "selection", "tagStatus"),
                    "lifecycle_untagged_rule_duplicate",
                    f"only one rule per storageClass may have tagStatus untagged; rules[{untagged_at}] already "
                    f"selects untagged {storage} images, so this rule would never act",
                    selection.tagStatus,
                )
            else:
                untagged_at = index
            continue
        tags = selection.tag_list
        if tags is None:
            continue
        field = "tagPatternList" if selection.tagPatternList is not None else "tagPrefixList"
        key = (field, frozenset(tags))
        earlier = seen.setdefault(key, index)
        if earlier != index:
            yield _Issue(
                (index, "selection", field),
                "lifecycle_tag_filter_duplicate",
                f"rules[{earlier}] already uses the same {field} for storageClass {storage}; ECR needs a unique set "
                "per storage class (this rule would never act)",
                tags,
            )


def _check_rules(rules: list[LifecycleRule]) -> list[LifecycleRule]:
    issues = [*_rule_count_issues(rules), *_priority_issues(rules)]
    for storage in StorageClass:
        indexed = [(i, r) for i, r in enumerate(rules) if r.selection.effective_storage_class is storage]
        issues += [*_any_rule_issues(indexed, storage), *_selector_issues(indexed, storage)]
    _raise_issues("rules", issues)
    return rules


RuleList = Annotated[
    list[LifecycleRule],
    Field(json_schema_extra={"minItems": 1, "maxItems": MAX_RULES}),
    AfterValidator(_check_rules),
]


def _text_length_message(length: int) -> str | None:
    if length < MIN_POLICY_TEXT_LENGTH:
        return (
            f"the lifecycle policy text is {length} characters; ECR requires at least {MIN_POLICY_TEXT_LENGTH} "
            "(LifecyclePolicyText) - add a description to a rule to lengthen it"
        )
    if length > MAX_POLICY_TEXT_LENGTH:
        return (
            f"the lifecycle policy text is {length:,} characters; ECR allows at most {MAX_POLICY_TEXT_LENGTH:,} "
            "(LifecyclePolicyText) - use fewer rules, or shorter descriptions and tag lists"
        )
    return None


def check_policy_text_length(text: str) -> None:
    """Raise ``ValueError`` unless ``text`` fits ECR's ``LifecyclePolicyText`` bounds (100-30,720 characters)."""
    message = _text_length_message(len(text))
    if message is not None:
        raise ValueError(message)


class LifecyclePolicy(_Frozen):
    """A whole ECR lifecycle policy document: ``{"rules": [...]}``."""

    rules: RuleList

    def render(self) -> dict[str, object]:
        """The ECR JSON document: keys in ECR's canonical order, rules in the given order, no ``None`` values."""
        document: dict[str, object] = self.model_dump(mode="json", exclude_none=True)
        return document

    def render_text(self) -> str:
        """Compact, deterministic JSON text for ``PutLifecyclePolicy``."""
        return json.dumps(self.render(), separators=(",", ":"), sort_keys=False)

    def normalised(self) -> LifecyclePolicy:
        """Semantic normal form: rules sorted by rulePriority, ``storageClass: standard`` (the default)
        dropped, tag lists sorted and de-duplicated (an image must match all entries, so order is
        meaningless). Descriptions and priorities are kept: they are visible to people and in previews.
        """
        rules = [_normalised_rule(rule) for rule in sorted(self.rules, key=lambda rule: rule.rulePriority)]
        return self.model_copy(update={"rules": rules})


def _normalised_rule(rule: LifecycleRule) -> LifecycleRule:
    selection = rule.selection
    update: dict[str, object] = {}
    if selection.storageClass is StorageClass.STANDARD:
        update["storageClass"] = None
    if selection.tagPatternList is not None:
        update["tagPatternList"] = sorted(set(selection.tagPatternList))
    if selection.tagPrefixList is not None:
        update["tagPrefixList"] = sorted(set(selection.tagPrefixList))
    return rule.model_copy(update={"selection": selection.model_copy(update=update)})


# --------------------------------------------------------------------------------------------------
# Presets

PresetCount = Annotated[
    int,
    Field(strict=True, json_schema_extra=_INTEGER_BOUNDS),
    _at_least(1, "lifecycle_preset_positive", "the value must be a positive integer"),
    _at_most_api_integer("the value (a countNumber)"),
]
PresetArchivedDays = Annotated[
    int,
    Field(strict=True, json_schema_extra={"minimum": MIN_ARCHIVED_DAYS, "maximum": MAX_API_INTEGER}),
    _at_least(
        MIN_ARCHIVED_DAYS,
        "lifecycle_archived_days_minimum",
        f"expire_archived_after_days must be at least {MIN_ARCHIVED_DAYS}: "
        f"ECR keeps archived images for a minimum of {MIN_ARCHIVED_DAYS} days",
    ),
    _at_most_api_integer("expire_archived_after_days (a countNumber)"),
]

_TAGGED_PRESETS = ("keep_last", "expire_after_days", "archive_unpulled_after_days")
_ALL_TAGS = ["*"]


class LifecyclePresets(_Frozen):
    """Readable lifecycle settings that compile to ECR rules (:meth:`to_rules`).

    Compilation, with priorities assigned 1, 2, 3 in this order, skipping unset presets:

    1. ``expire_untagged_after_days: N`` - ``tagStatus: untagged``, ``sinceImagePushed`` N days, expire.
    2. at most one of the *tagged* presets, each selecting every tagged image with
       ``tagStatus: tagged, tagPatternList: ["*"]``:

       * ``keep_last: N`` - ``imageCountMoreThan`` N, expire: keeps the N most recently pushed tagged images;
       * ``expire_after_days: N`` - ``sinceImagePushed`` N days, expire;
       * ``archive_unpulled_after_days: N`` - ``sinceImagePulled`` N days, transition to archive.
    3. ``expire_archived_after_days: N`` (N >= 90) - ``tagStatus: any, storageClass: archive``,
       ``sinceImageTransitioned`` N days, expire: deletes images N days after they were archived.

    Untagged images are touched only by ``expire_untagged_after_days``: the tagged presets use the
    ``["*"]`` pattern rather than ``tagStatus: any``, so ``keep_last`` counts tagged images only and
    never deletes an untagged (digest-only) image. No preset policy has an ``any`` rule for standard
    images, so the "any rule last" constraint never gets in the way of combining presets.

    The tagged presets cannot be combined (the second one is rejected, naming both fields): they select
    the same images, and ECR lets an image be acted on only by the highest-priority rule whose tag
    filter matches it, so a second rule on ``["*"]`` would never act. "Keep the last 10 but expire
    anything older than 30 days" is not expressible in ECR's grammar; write ``rules`` with distinct tag
    patterns for finer control.

    Pull-through cache caveat (ecr-facts section 5.1): images pulled through the cache by digest, or
    left behind when an upstream tag moves to a new digest, are *untagged* in ECR. An
    ``expire_untagged_after_days`` rule can therefore delete images that are still deployed by digest
    (a later pull re-fetches them from the upstream if it still has them; children of a manifest list
    are protected until the list goes). Push-age and count expiry of tagged images is safe for a cache
    because a miss re-fetches from the upstream.
    """

    expire_untagged_after_days: PresetCount | None = Field(
        default=None, description="Expire untagged images this many days after push (see the digest caveat)."
    )
    keep_last: PresetCount | None = Field(
        default=None, description="Keep this many most recently pushed tagged images; expire older tagged images."
    )
    expire_after_days: PresetCount | None = Field(
        default=None, description="Expire tagged images this many days after push."
    )
    archive_unpulled_after_days: PresetCount | None = Field(
        default=None, description="Move tagged images not pulled for this many days to the archive storage class."
    )
    expire_archived_after_days: PresetArchivedDays | None = Field(
        default=None, description="Expire archived images this many days (at least 90) after they were archived."
    )

    @model_validator(mode="after")
    def _check_presets(self) -> Self:
        issues: list[_Issue] = []
        if all(value is None for value in self.model_dump().values()):
            names = ", ".join(type(self).model_fields)
            issues.append(_Issue((), "lifecycle_presets_empty", f"set at least one preset: {names}"))
        chosen = [name for name in _TAGGED_PRESETS if getattr(self, name) is not None]
        issues += [
            _Issue(
                (name,),
                "lifecycle_presets_conflict",
                f"{name} cannot be combined with {chosen[0]}: both select every tagged image, and ECR lets only "
                "the higher-priority rule act on an image whose tags it matches, so the second rule would never "
                "act; keep one of them, or write rules with distinct tag patterns",
                getattr(self, name),
            )
            for name in chosen[1:]
        ]
        _raise_issues("LifecyclePresets", issues)
        return self

    def to_rules(self) -> list[LifecycleRule]:
        """The ECR rules these presets compile to, priorities 1..n in the documented order."""
        selections: list[tuple[str, LifecycleSelection, LifecycleAction]] = [
            *self._untagged_rules(),
            *self._tagged_rules(),
            *self._archived_rules(),
        ]
        return [
            LifecycleRule(rulePriority=priority, description=description, selection=selection, action=action)
            for priority, (description, selection, action) in enumerate(selections, start=1)
        ]

    def to_policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(rules=self.to_rules())

    def _untagged_rules(self) -> Iterator[tuple[str, LifecycleSelection, LifecycleAction]]:
        if self.expire_untagged_after_days is not None:
            days = self.expire_untagged_after_days
            yield (
                f"Expire untagged images {_days(days)} after push",
                LifecycleSelection(
                    tagStatus=TagStatus.UNTAGGED,
                    countType=CountType.SINCE_IMAGE_PUSHED,
                    countUnit=CountUnit.DAYS,
                    countNumber=days,
                ),
                _EXPIRE,
            )

    def _tagged_rules(self) -> Iterator[tuple[str, LifecycleSelection, LifecycleAction]]:
        if self.keep_last is not None:
            count = self.keep_last
            kept = (
                "only the most recently pushed tagged image"
                if count == 1
                else f"the {count} most recently pushed tagged images"
            )
            yield (
                f"Keep {kept}, expire older tagged images",
                _all_tagged(CountType.IMAGE_COUNT_MORE_THAN, count),
                _EXPIRE,
            )
        if self.expire_after_days is not None:
            days = self.expire_after_days
            yield (
                f"Expire tagged images {_days(days)} after push",
                _all_tagged(CountType.SINCE_IMAGE_PUSHED, days),
                _EXPIRE,
            )
        if self.archive_unpulled_after_days is not None:
            days = self.archive_unpulled_after_days
            yield (
                f"Archive tagged images not pulled for {_days(days)}",
                _all_tagged(CountType.SINCE_IMAGE_PULLED, days),
                _TRANSITION,
            )

    def _archived_rules(self) -> Iterator[tuple[str, LifecycleSelection, LifecycleAction]]:
        if self.expire_archived_after_days is not None:
            days = self.expire_archived_after_days
            yield (
                f"Expire archived images {_days(days)} after archiving",
                LifecycleSelection(
                    tagStatus=TagStatus.ANY,
                    storageClass=StorageClass.ARCHIVE,
                    countType=CountType.SINCE_IMAGE_TRANSITIONED,
                    countUnit=CountUnit.DAYS,
                    countNumber=days,
                ),
                _EXPIRE,
            )


_EXPIRE = LifecycleAction(type=ActionType.EXPIRE)
_TRANSITION = LifecycleAction(type=ActionType.TRANSITION, targetStorageClass=TargetStorageClass.ARCHIVE)


def _all_tagged(count_type: CountType, number: int) -> LifecycleSelection:
    return LifecycleSelection(
        tagStatus=TagStatus.TAGGED,
        tagPatternList=list(_ALL_TAGS),
        countType=count_type,
        countUnit=None if count_type is CountType.IMAGE_COUNT_MORE_THAN else CountUnit.DAYS,
        countNumber=number,
    )


# --------------------------------------------------------------------------------------------------
# What a user writes


class LifecycleSpec(_Frozen):
    """A rule's ``lifecycle`` section: ``presets`` or ``rules`` (ECR's grammar), exactly one of them.

    Validation also renders the policy and checks the text against ECR's ``LifecyclePolicyText``
    bounds, so a spec that validates can always be sent with ``PutLifecyclePolicy``.
    """

    presets: LifecyclePresets | None = None
    rules: RuleList | None = None

    @model_validator(mode="after")
    def _check_spec(self) -> Self:
        if self.presets is not None and self.rules is not None:
            message = "set either presets or rules, not both"
        elif self.presets is None and self.rules is None:
            message = "set one of presets or rules"
        else:
            message = _text_length_message(len(self.render_text())) or ""
        if message:
            _raise_issues("LifecycleSpec", [_Issue((), "lifecycle_spec", message)])
        return self

    def to_policy(self) -> LifecyclePolicy:
        if self.rules is not None:
            return LifecyclePolicy(rules=list(self.rules))
        if self.presets is not None:
            return self.presets.to_policy()
        raise ValueError("set one of presets or rules")  # unreachable after validation

    def render(self) -> dict[str, object]:
        """The ECR JSON document (see :meth:`LifecyclePolicy.render`)."""
        return self.to_policy().render()

    def render_text(self) -> str:
        """Compact, deterministic JSON text for ``PutLifecyclePolicy``."""
        return self.to_policy().render_text()


# --------------------------------------------------------------------------------------------------
# Reading ECR's text back


def parse_policy_text(text: str) -> LifecyclePolicy:
    """Parse lifecycle policy text (as stored by ECR, or hand-written) into a :class:`LifecyclePolicy`.

    Raises ``ValueError`` when the text is outside 100-30,720 characters or is not a JSON object, and
    ``pydantic.ValidationError`` (a ``ValueError``) naming every broken rule otherwise.
    """
    check_policy_text_length(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"lifecycle policy text is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(document, dict):
        raise ValueError('lifecycle policy text must be a JSON object like {"rules": [...]}')
    return LifecyclePolicy.model_validate(document)


def normalise_policy_text(text: str) -> str:
    """Semantic normal form of a policy text, for drift detection: equal for equal policies.

    See :meth:`LifecyclePolicy.normalised`. Raises like :func:`parse_policy_text`.
    """
    return parse_policy_text(text).normalised().render_text()

"""ECR lifecycle policies for moto: full-grammar validation, previews, evaluation, CloudTrail events.

Independent of the ``ecrcache`` library on purpose: the fake must be a second opinion on the grammar
the controller compiles, not a copy of it.

* :func:`parse_lifecycle_policy` validates the whole grammar of ecr-facts §5.1 / §9.18 (``expire`` and
  ``transition``, ``tagPatternList``/``tagPrefixList``, all four ``countType`` values, storage classes)
  and raises ``InvalidParameterException`` with ECR's message format
  ``Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation
  failure: ...'``. Schema-level wording follows the JSON-schema messages ECR returns (and moto copies);
  semantic rules are worded in plain English. Each check quotes the documentation sentence it enforces
  (or the report, where a constraint is only reported); the rules between rules (``any`` last, one
  ``untagged`` rule, unique prefix sets) apply per storage class, as the documentation scopes them.
* :func:`evaluate_policy` computes what a policy does to a set of images, following the documented
  evaluation rules (ECR User Guide, "Lifecycle policies" -- how lifecycle policies work / evaluation rules):

  - all rules are evaluated, then applied by priority (lowest number first);
  - an image is acted on by at most one rule, and an image that matches the tagging requirements of
    a rule cannot be acted on by a lower-priority rule (rules still *see* such images, e.g. when
    counting for ``imageCountMoreThan``);
  - ``imageCountMoreThan`` sorts images newest-first by push time (``lastActivatedAt`` after a restore)
    and acts on those beyond ``countNumber``; ``sinceImagePushed``/``sinceImagePulled`` act on images
    older than ``countNumber`` days (pull time falls back to push time); ``sinceImageTransitioned``
    uses the archive time;
  - images referenced by a manifest list in the repository are never acted on.

  Ages are measured against the injectable :mod:`clock`.
* ``StartLifecyclePolicyPreview`` answers ``IN_PROGRESS``; the preview becomes ``COMPLETE`` at the first
  ``GetLifecyclePolicyPreview`` after :data:`settings.preview_delay` (default: the very next Get).
* :func:`evaluate_lifecycle_now` applies a repository's policy for real (test hook; server mode:
  ``POST /_ecrcache/lifecycle/evaluate``): expired images are deleted, transitioned ones archived.
* ``PutLifecyclePolicy``/``DeleteLifecyclePolicy``/``CreateRepository``/``DeleteRepository`` emit their
  CloudTrail events; ``PutImage`` stamps ``imagePushedAt`` from the injectable clock.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.exceptions import LifecyclePolicyNotFoundException
from moto.ecr.models import ECRBackend, ecr_backends

from devstack.aws import clock, events
from devstack.aws.common import (
    InvalidParameterException,
    LifecyclePolicyPreviewInProgressException,
    LifecyclePolicyPreviewNotFoundException,
    add_backend_method,
    add_response_action,
    api_action,
    paginate,
    request_params,
    wrap_backend_method,
    wrap_response_action,
)
from devstack.aws.state import LifecyclePreview, ext_state, image_ext

__all__ = [
    "LifecycleAction",
    "LifecyclePolicy",
    "LifecycleRule",
    "LifecycleSettings",
    "PolicyImage",
    "evaluate_lifecycle_now",
    "evaluate_policy",
    "install",
    "parse_lifecycle_policy",
    "repository_images",
    "settings",
]

MIN_POLICY_LENGTH: Final = 100
MAX_POLICY_LENGTH: Final = 30_720
MAX_RULES: Final = 50
MAX_WILDCARDS: Final = 4
MIN_ARCHIVED_DAYS: Final = 90

TAG_STATUSES: Final = ("tagged", "untagged", "any")
COUNT_TYPES: Final = ("imageCountMoreThan", "sinceImagePushed", "sinceImagePulled", "sinceImageTransitioned")
STORAGE_CLASSES: Final = ("standard", "archive")
ACTION_TYPES: Final = ("expire", "transition")
_RULE_KEYS: Final = frozenset({"rulePriority", "description", "selection", "action"})
_SELECTION_KEYS: Final = frozenset(
    {"tagStatus", "tagPatternList", "tagPrefixList", "storageClass", "countType", "countUnit", "countNumber"}
)
_ACTION_KEYS: Final = frozenset({"type", "targetStorageClass"})
_INDEX_MEDIA_TYPES: Final = frozenset(
    {
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    }
)


@dataclass
class LifecycleSettings:
    """Knobs of the fake (process-wide)."""

    #: How long a preview stays ``IN_PROGRESS`` (measured on the injectable clock). ``0`` = until the next Get.
    preview_delay: timedelta = timedelta(0)


settings = LifecycleSettings()


# --------------------------------------------------------------------------------------------------
# Grammar
#
# Every check below quotes the sentence of AWS's documentation it enforces. Sources (ECR User Guide):
#   [properties] "Lifecycle policy properties in Amazon ECR" (lifecycle_policy_parameters.html);
#   [evaluation] "Automate the cleanup of images by using lifecycle policies", section "Lifecycle policy
#                evaluation rules" (LifecyclePolicies.html);
#   [examples]   "Examples of lifecycle policies in Amazon ECR" (lifecycle_policy_examples.html);
#   [archive]    "Archiving an image" (archive-image.html);
#   [quotas]     "Amazon ECR service quotas" (service-quotas.html);
#   [model]      botocore's ECR service model 2015-09-21 (shape ``LifecyclePolicyText``).
# Where a constraint is only reported (issues), the comment names the report.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LifecycleRule:
    priority: int
    tag_status: str
    count_type: str
    count_number: int
    action: str
    storage_class: str = "standard"
    tag_prefixes: tuple[str, ...] = ()
    tag_patterns: tuple[str, ...] = ()
    count_unit: str | None = None
    target_storage_class: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    rules: tuple[LifecycleRule, ...]


def _failure(detail: str, field_name: str = "LifecyclePolicyText") -> InvalidParameterException:
    return InvalidParameterException(
        f"Invalid parameter at '{field_name}' failed to satisfy constraint: "
        f"'Lifecycle policy validation failure: {detail}'"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schema_keys(obj: dict[str, Any], allowed: frozenset[str], required: Iterable[str], where: str, fld: str) -> None:
    # ECR validates the document against a JSON schema; these two messages are the schema validator's
    # (quoted in moto's ``policy_validation.py`` and in public reports of ECR's answers).
    missing = sorted(k for k in required if k not in obj)
    if missing:
        raise _failure(f"object has missing required properties ({json.dumps(missing)}) at {where}", fld)
    extra = sorted(k for k in obj if k not in allowed)
    if extra:
        raise _failure(
            f"object instance has properties which are not allowed by the schema: ({json.dumps(extra)})", fld
        )


def _enum(value: Any, allowed: tuple[str, ...], where: str, fld: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _failure(
            f"instance value ({json.dumps(value)}) not found in enum at {where} "
            f"(possible values: {json.dumps(list(allowed))})",
            fld,
        )
    return value


def _string_list(value: Any, where: str, fld: str) -> tuple[str, ...]:
    # [properties] "Type: list[string]". That the list and its entries must not be empty is not documented
    # (an image tag is 1-300 characters, botocore's ImageTag shape); kept as the strictest reading.
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _failure(f"{where} must be a non-empty list of non-empty strings", fld)
    return tuple(value)


def _reject_nulls(value: Any, fld: str) -> None:
    """JSON ``null`` anywhere in the document is refused.

    Reported, not documented: a ``null`` ``countUnit`` (cloudposse/terraform-aws-ecr#132) and a ``null``
    ``targetStorageClass`` (cloudposse/terraform-aws-ecr#158) were both answered
    ``Lifecycle policy validation failure: instance failed to match exactly one schema (matched 0 out of 2)``.
    """
    if value is None:
        raise _failure("instance failed to match exactly one schema (matched 0 out of 2)", fld)
    if isinstance(value, dict):
        for item in value.values():
            _reject_nulls(item, fld)
    elif isinstance(value, list):
        for item in value:
            _reject_nulls(item, fld)


def parse_lifecycle_policy(
    text: str, *, field_name: str = "LifecyclePolicyText", min_length: int = MIN_POLICY_LENGTH
) -> LifecyclePolicy:
    """Validate a lifecycle policy document and return its parsed form (or raise ``InvalidParameterException``)."""
    # [model] LifecyclePolicyText: "min":100, "max":30720 (a creation template's lifecyclePolicy: min 0);
    # [quotas] "Lifecycle policy length: 30,720 characters".
    if len(text) < min_length or len(text) > MAX_POLICY_LENGTH:
        raise InvalidParameterException(
            f"Invalid parameter at '{field_name}' failed to satisfy constraint: "
            f"'Member must have length between {min_length} and {MAX_POLICY_LENGTH}'"
        )
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _failure("Could not map policyString into LifecyclePolicy.", field_name) from exc
    if not isinstance(document, dict):
        raise _failure("Could not map policyString into LifecyclePolicy.", field_name)
    _reject_nulls(document, field_name)
    _schema_keys(document, frozenset({"rules"}), ["rules"], "policy", field_name)
    raw_rules = document["rules"]
    # [evaluation] "A lifecycle policy contains one or more rules".
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _failure("'rules' must be a non-empty array", field_name)
    # [quotas] "Rules per lifecycle policy: 50" (not adjustable).
    if len(raw_rules) > MAX_RULES:
        raise _failure(f"a lifecycle policy can have at most {MAX_RULES} rules", field_name)
    rules = tuple(_parse_rule(raw, index, field_name) for index, raw in enumerate(raw_rules))
    _check_policy(rules, field_name)
    return LifecyclePolicy(rules=tuple(sorted(rules, key=lambda r: r.priority)))


def _parse_rule(raw: Any, index: int, fld: str) -> LifecycleRule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise _failure(f'instance type at {where} does not match any allowed primitive type (allowed: ["object"])', fld)
    # [properties] rulePriority, selection (tagStatus, countType, countNumber) and action type are
    # "Required: yes"; description is "Required: no". The template lists every key a rule may have.
    _schema_keys(raw, _RULE_KEYS, ["rulePriority", "selection", "action"], where, fld)
    priority = raw["rulePriority"]
    # [properties] rulePriority "Type: integer ... A lifecycle policy rule with a priority of 1 is applied first".
    if not _is_int(priority) or priority < 1:
        raise _failure(f"rulePriority at {where} must be an integer greater than or equal to 1", fld)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise _failure(f"description at {where} must be a string", fld)
    selection, action = raw["selection"], raw["action"]
    if not isinstance(selection, dict) or not isinstance(action, dict):
        raise _failure(f"selection and action at {where} must be objects", fld)
    _schema_keys(selection, _SELECTION_KEYS, ["tagStatus", "countType", "countNumber"], f"{where}.selection", fld)
    _schema_keys(action, _ACTION_KEYS, ["type"], f"{where}.action", fld)
    count_number = selection["countNumber"]
    # [properties] countNumber: "Acceptable values are positive integers (0 is not an accepted value)."
    if not _is_int(count_number) or count_number < 1:
        raise _failure(f"numeric instance is lower than the required minimum (minimum: 1, found: {count_number})", fld)
    rule = LifecycleRule(
        priority=priority,
        # [properties] tagStatus: "Acceptable options are tagged, untagged, or any."
        tag_status=_enum(selection["tagStatus"], TAG_STATUSES, f"{where}.selection.tagStatus", fld),
        # [properties] the template: countType "imageCountMoreThan"|"sinceImagePushed"|"sinceImagePulled"|
        # "sinceImageTransitioned".
        count_type=_enum(selection["countType"], COUNT_TYPES, f"{where}.selection.countType", fld),
        count_number=count_number,
        # [properties] action type: "The supported values are expire (to delete images) and transition".
        action=_enum(action["type"], ACTION_TYPES, f"{where}.action.type", fld),
        # [properties] the template: "storageClass": "standard"|"archive"; "If you omit this, the value of
        # standard will be used."
        storage_class=_enum(
            selection.get("storageClass", "standard"), STORAGE_CLASSES, f"{where}.selection.storageClass", fld
        ),
        tag_prefixes=_optional_list(selection, "tagPrefixList", where, fld),
        tag_patterns=_optional_list(selection, "tagPatternList", where, fld),
        count_unit=selection.get("countUnit"),
        target_storage_class=action.get("targetStorageClass"),
        description=description,
    )
    _check_tags(rule, where, fld)
    _check_count(rule, where, fld)
    _check_storage_class(rule, where, fld)
    _check_action(rule, where, fld)
    return rule


def _optional_list(selection: dict[str, Any], key: str, where: str, fld: str) -> tuple[str, ...]:
    return _string_list(selection[key], f"{where}.selection.{key}", fld) if key in selection else ()


def _check_tags(rule: LifecycleRule, where: str, fld: str) -> None:
    # [properties] tagStatus: "If you specify tagged, then you must also specify a tagPrefixList value or a
    # tagPatternList value. If you specify untagged, then you must omit both tagPrefixList and tagPatternList."
    if rule.tag_status == "tagged" and not (rule.tag_prefixes or rule.tag_patterns):
        raise _failure(f"tagPrefixList or tagPatternList is required at {where} when tagStatus is tagged", fld)
    # [evaluation] "The tagPatternList or tagPrefixList parameters may only used if the tagStatus is tagged."
    if rule.tag_status != "tagged" and (rule.tag_prefixes or rule.tag_patterns):
        raise _failure(f"tagPrefixList and tagPatternList can only be used at {where} when tagStatus is tagged", fld)
    # [evaluation] "A lifecycle policy rule may specify either tagPatternList or tagPrefixList, but not both."
    if rule.tag_prefixes and rule.tag_patterns:
        raise _failure(f"tagPrefixList and tagPatternList cannot both be specified at {where}", fld)
    # [properties] "There is a maximum limit of four wildcards (*) per string. For example,
    # ["*test*1*2*3", "test*1*2*3*"] is valid but ["test*1*2*3*4*5*6"] is invalid."
    for pattern in rule.tag_patterns:
        if pattern.count("*") > MAX_WILDCARDS:
            raise _failure(f"tagPatternList value '{pattern}' at {where} has more than {MAX_WILDCARDS} wildcards", fld)


def _check_count(rule: LifecycleRule, where: str, fld: str) -> None:
    # [properties] countUnit: "Required: yes, only if countType is set to sinceImagePushed, sinceImagePulled,
    # or sinceImageTransitioned ... an error will occur if you specify a count unit when countType is any
    # other value"; "Specify a count unit of days".
    if rule.count_type == "imageCountMoreThan":
        if rule.count_unit is not None:
            raise _failure(f"countUnit cannot be specified at {where} when countType is imageCountMoreThan", fld)
    elif rule.count_unit is None:
        raise _failure(f"countUnit is required at {where} when countType is {rule.count_type}", fld)
    elif rule.count_unit != "days":
        raise _failure(
            f"instance value ({json.dumps(rule.count_unit)}) not found in enum at {where}.selection.countUnit "
            '(possible values: ["days"])',
            fld,
        )
    # [archive] "Archived images have a minimum storage duration of 90 days. You cannot configure lifecycle
    # policies that delete images that have been in archive for less than 90 days." ([examples] repeats it.)
    if rule.count_type == "sinceImageTransitioned" and rule.count_number < MIN_ARCHIVED_DAYS:
        raise _failure(
            f"countNumber at {where} must be at least {MIN_ARCHIVED_DAYS} when countType is sinceImageTransitioned "
            f"(archived images have a minimum storage duration of {MIN_ARCHIVED_DAYS} days)",
            fld,
        )


def _check_storage_class(rule: LifecycleRule, where: str, fld: str) -> None:
    # [properties] storageClass: "Required: yes, if countType is sinceImageTransitioned ... When using a
    # countType of imageCountMoreThan, sinceImagePushed, or sinceImagePulled, the only supported value is
    # standard. When using a count type of sinceImageTransitioned, this is required, and the only supported
    # value is archive."
    if rule.count_type == "sinceImageTransitioned" and rule.storage_class != "archive":
        raise _failure(f"storageClass must be archive at {where} when countType is sinceImageTransitioned", fld)
    if rule.count_type != "sinceImageTransitioned" and rule.storage_class != "standard":
        raise _failure(f"storageClass archive is only valid at {where} with countType sinceImageTransitioned", fld)


def _check_action(rule: LifecycleRule, where: str, fld: str) -> None:
    if rule.action == "transition":
        # [properties] targetStorageClass: "Required: yes, if type is transition ... archive is the only
        # supported value."
        if rule.target_storage_class != "archive":
            raise _failure(f"targetStorageClass archive is required at {where} when the action type is transition", fld)
        # [examples] "The sinceImageTransitioned count type must be used with the expire action and the
        # archive storage class."
        if rule.storage_class == "archive":
            raise _failure(f"archived images can only be expired (rule at {where})", fld)
        return
    # [properties] the template pairs targetStorageClass with transition only ("to transition the image to").
    if rule.target_storage_class is not None:
        raise _failure(f"targetStorageClass can only be specified at {where} when the action type is transition", fld)
    # [examples] "The sinceImagePulled count type must be used with the transition action. It cannot be used
    # with the expire action." (Also reported refused by the API: aws/containers-roadmap#921, #2728.)
    if rule.count_type == "sinceImagePulled":
        raise _failure(f"countType sinceImagePulled at {where} must be used with the transition action", fld)


def _check_policy(rules: tuple[LifecycleRule, ...], fld: str) -> None:
    # [properties] rulePriority: "When you add rules to a lifecycle policy, you must give them each a unique
    # value for rulePriority. Values don't need to be sequential across rules in a policy."
    priorities = [r.priority for r in rules]
    duplicates = sorted({p for p in priorities if priorities.count(p) > 1})
    if duplicates:
        raise _failure(f"rulePriority values must be unique; duplicated: {duplicates}", fld)
    for storage_class in STORAGE_CLASSES:
        _check_storage_class_rules([r for r in rules if r.storage_class == storage_class], storage_class, fld)


def _check_storage_class_rules(rules: list[LifecycleRule], storage_class: str, fld: str) -> None:
    """The constraints between the rules that select one storage class."""
    if not rules:
        return
    # [properties] "A rule with a tagStatus value of any must have the highest value for rulePriority and be
    # evaluated last." Scoped to the rules of one storage class: [examples] "Combining archive and expire
    # rules" has an any rule for standard images at priority 1 and one for archived images at priority 2.
    highest = max(r.priority for r in rules)
    if any(r.tag_status == "any" and r.priority != highest for r in rules):
        raise _failure(
            f"a rule with tagStatus any must have the highest rulePriority (of the rules selecting "
            f"storageClass {storage_class})",
            fld,
        )
    # [evaluation] "Only one rule selecting a specific storage class is allowed to select untagged images."
    # (Only tagStatus untagged: [examples] "Filtering on all images, Example B" has an untagged and an any rule.)
    if sum(1 for r in rules if r.tag_status == "untagged") > 1:
        raise _failure(
            f"only one rule is allowed to select untagged images (storageClass {storage_class})",
            fld,
        )
    # [evaluation] "The set of all rules selecting a specific storage class must contain a unique set of
    # prefixes." Read as: no two rules of a storage class with the same tagPrefixList (compared as sets).
    # Whether ECR applies it to tagPatternList too is not documented; not enforced for patterns.
    seen: set[frozenset[str]] = set()
    for rule in rules:
        if not rule.tag_prefixes:
            continue
        prefixes = frozenset(rule.tag_prefixes)
        if prefixes in seen:
            raise _failure(
                f"the rules selecting storageClass {storage_class} must contain a unique set of prefixes; "
                f"{sorted(prefixes)} is used twice",
                fld,
            )
        seen.add(prefixes)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyImage:
    """What the evaluator needs to know about one image."""

    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime
    storage_class: str = "STANDARD"
    last_recorded_pull_time: datetime | None = None
    last_archived_at: datetime | None = None
    last_activated_at: datetime | None = None
    child_digests: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LifecycleAction:
    """One decision: ``action`` is ``EXPIRE`` or ``TRANSITION`` (to ``ARCHIVE``)."""

    image: PolicyImage
    action: Literal["EXPIRE", "TRANSITION"]
    rule_priority: int

    def preview_result(self) -> dict[str, Any]:
        action: dict[str, Any] = {"type": self.action}
        if self.action == "TRANSITION":
            action["targetStorageClass"] = "ARCHIVE"
        result: dict[str, Any] = {
            "imageDigest": self.image.digest,
            "imagePushedAt": self.image.pushed_at,
            "action": action,
            "appliedRulePriority": self.rule_priority,
            "storageClass": self.image.storage_class,
        }
        if self.image.tags:
            result["imageTags"] = list(self.image.tags)
        return result


def _tags_match(rule: LifecycleRule, image: PolicyImage) -> bool:
    if rule.tag_status == "untagged":
        return not image.tags
    if rule.tag_status == "any":
        return True
    if not image.tags:
        return False
    # "If you specify multiple tags, only the images with all specified tags are selected."
    if rule.tag_prefixes:
        return all(any(tag.startswith(prefix) for tag in image.tags) for prefix in rule.tag_prefixes)
    return all(any(fnmatch.fnmatchcase(tag, pattern) for tag in image.tags) for pattern in rule.tag_patterns)


def _in_scope(rule: LifecycleRule, image: PolicyImage) -> bool:
    storage = "archive" if image.storage_class == "ARCHIVE" else "standard"
    return storage == rule.storage_class and _tags_match(rule, image)


def _effective_push(image: PolicyImage) -> datetime:
    return image.last_activated_at or image.pushed_at


def _selected(rule: LifecycleRule, images: list[PolicyImage], now: datetime) -> list[PolicyImage]:
    if rule.count_type == "imageCountMoreThan":
        newest_first = sorted(images, key=_effective_push, reverse=True)
        return newest_first[rule.count_number :]
    limit = timedelta(days=rule.count_number)
    chosen: list[PolicyImage] = []
    for image in images:
        if rule.count_type == "sinceImagePushed":
            since = _effective_push(image)
        elif rule.count_type == "sinceImagePulled":
            since = image.last_recorded_pull_time or _effective_push(image)
        else:
            since = image.last_archived_at or _effective_push(image)
        # "older than countNumber days": strictly more than N x 24 h.
        if now - since > limit:
            chosen.append(image)
    return chosen


def evaluate_policy(policy: LifecyclePolicy, images: Iterable[PolicyImage], now: datetime) -> list[LifecycleAction]:
    """The actions a policy takes on ``images`` at ``now`` (oldest first within a rule)."""
    pool = list(images)
    protected = {child for image in pool for child in image.child_digests}
    claimed: set[str] = set()  # matched the tagging requirements of a higher-priority rule
    decided: dict[str, LifecycleAction] = {}
    for rule in policy.rules:  # sorted by priority
        scope = [image for image in pool if _in_scope(rule, image)]
        for image in sorted(_selected(rule, scope, now), key=_effective_push):
            if image.digest in claimed or image.digest in decided or image.digest in protected:
                continue
            decided[image.digest] = LifecycleAction(
                image=image,
                action="TRANSITION" if rule.action == "transition" else "EXPIRE",
                rule_priority=rule.priority,
            )
        claimed.update(image.digest for image in scope)
    return list(decided.values())


def _child_digests(manifest_text: str, media_type: str | None) -> tuple[str, ...]:
    try:
        manifest = json.loads(manifest_text)
    except ValueError:
        return ()
    if not isinstance(manifest, dict):
        return ()
    kind = media_type or manifest.get("mediaType")
    children = manifest.get("manifests")
    if kind not in _INDEX_MEDIA_TYPES and not isinstance(children, list):
        return ()
    if not isinstance(children, list):
        return ()
    return tuple(str(c["digest"]) for c in children if isinstance(c, dict) and "digest" in c)


def repository_images(backend: ECRBackend, repository_name: str) -> list[PolicyImage]:
    """The repository's images as the evaluator sees them (moto image + extension data)."""
    repository = backend._get_repository(repository_name)
    state = ext_state(backend)
    result: list[PolicyImage] = []
    for image in list(repository.images):
        digest = image.get_image_digest()
        ext = image_ext(state, repository_name, digest)
        pushed = ext.pushed_at or datetime.fromtimestamp(float(image.image_pushed_at), tz=clock.now().tzinfo)
        result.append(
            PolicyImage(
                digest=digest,
                tags=tuple(image.image_tags or ()),
                pushed_at=pushed,
                storage_class=ext.storage_class,
                last_recorded_pull_time=ext.last_recorded_pull_time,
                last_archived_at=ext.last_archived_at,
                last_activated_at=ext.last_activated_at,
                child_digests=_child_digests(image.image_manifest, image.image_manifest_media_type),
            )
        )
    return result


def evaluate_lifecycle_now(account_id: str, region: str, repository_name: str) -> list[LifecycleAction]:
    """Apply the repository's lifecycle policy now: delete expired images, archive transitioned ones.

    Returns the actions taken (empty without a policy). Emits one ``ECR Image Action`` event per image
    (``DELETE`` / ``UPDATE_STORAGE_CLASS``, detail fields of ecr-facts §6.2). Whether AWS sends that event
    for lifecycle actions is not documented [?]; AWS documents only that lifecycle actions are logged in
    CloudTrail (as service events, which this fake does not produce).
    """
    backend: ECRBackend = ecr_backends[account_id][region]
    repository = backend._get_repository(repository_name)
    if not repository.lifecycle_policy:
        return []
    policy = parse_lifecycle_policy(repository.lifecycle_policy)
    now = clock.now()
    actions = evaluate_policy(policy, repository_images(backend, repository_name), now)
    state = ext_state(backend)
    for action in actions:
        if action.action == "EXPIRE":
            backend.batch_delete_image(repository_name, None, [{"imageDigest": action.image.digest}])
            with state.lock:
                state.images.get(repository_name, {}).pop(action.image.digest, None)
            detail: dict[str, Any] = {"result": "SUCCESS", "action-type": "DELETE"}
        else:
            ext = image_ext(state, repository_name, action.image.digest)
            ext.storage_class = "ARCHIVE"
            ext.last_archived_at = now
            detail = {"result": "SUCCESS", "action-type": "UPDATE_STORAGE_CLASS", "target-storage-class": "ARCHIVE"}
        detail.update({"repository-name": repository_name, "image-digest": action.image.digest})
        if action.image.tags:
            detail["image-tag"] = action.image.tags[0]
        events.emit(account_id, region, source="aws.ecr", detail_type="ECR Image Action", detail=detail, resources=[])
    return actions


# --------------------------------------------------------------------------------------------------
# Previews
# --------------------------------------------------------------------------------------------------


def start_lifecycle_policy_preview(
    self: ECRBackend, *, repository_name: str, registry_id: str | None = None, lifecycle_policy_text: str | None = None
) -> LifecyclePreview:
    repository = self._get_repository(repository_name, registry_id)
    text = lifecycle_policy_text or repository.lifecycle_policy
    if not text:
        raise LifecyclePolicyNotFoundException(repository_name, repository.registry_id)
    parse_lifecycle_policy(text)
    state = ext_state(self)
    with state.lock:
        current = state.previews.get(repository_name)
        if current is not None and current.status == "IN_PROGRESS":
            raise LifecyclePolicyPreviewInProgressException(
                f"The previous lifecycle policy preview request has not completed for repository '{repository_name}'"
            )
        started = clock.now()
        preview = LifecyclePreview(
            repository_name=repository_name,
            registry_id=repository.registry_id,
            lifecycle_policy_text=text,
            started_at=started,
            complete_after=started + settings.preview_delay if settings.preview_delay else None,
        )
        state.previews[repository_name] = preview
        return preview


def get_lifecycle_policy_preview(
    self: ECRBackend, *, repository_name: str, registry_id: str | None = None
) -> LifecyclePreview:
    """The repository's preview, completed now if its time has come (computing real results)."""
    self._get_repository(repository_name, registry_id)
    state = ext_state(self)
    with state.lock:
        preview = state.previews.get(repository_name)
        if preview is None:
            raise LifecyclePolicyPreviewNotFoundException(
                f"There is no dry run for the repository with name '{repository_name}' "
                f"in the registry with id '{self.account_id}'"
            )
        now = clock.now()
        if preview.status == "IN_PROGRESS" and (preview.complete_after is None or now >= preview.complete_after):
            policy = parse_lifecycle_policy(preview.lifecycle_policy_text)
            actions = evaluate_policy(policy, repository_images(self, repository_name), now)
            preview.results = [a.preview_result() for a in actions]
            preview.status = "COMPLETE"
        return preview


def _filter_results(results: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    tag_status = (params.get("filter") or {}).get("tagStatus", "ANY")
    selected = results
    if tag_status == "TAGGED":
        selected = [r for r in selected if r.get("imageTags")]
    elif tag_status == "UNTAGGED":
        selected = [r for r in selected if not r.get("imageTags")]
    image_ids = params.get("imageIds")
    if image_ids:
        wanted_digests = {i["imageDigest"] for i in image_ids if i.get("imageDigest")}
        wanted_tags = {i["imageTag"] for i in image_ids if i.get("imageTag")}
        selected = [
            r for r in selected if r["imageDigest"] in wanted_digests or wanted_tags & set(r.get("imageTags", []))
        ]
    return selected


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    transitioning = sum(1 for r in results if r["action"]["type"] == "TRANSITION")
    summary: dict[str, Any] = {"expiringImageTotalCount": sum(1 for r in results if r["action"]["type"] == "EXPIRE")}
    if transitioning:
        summary["transitioningImageTotalCounts"] = [{"targetStorageClass": "ARCHIVE", "imageTotalCount": transitioning}]
    return summary


def _start_preview(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    preview: LifecyclePreview = backend.start_lifecycle_policy_preview(  # type: ignore[attr-defined]
        repository_name=params["repositoryName"],
        registry_id=params.get("registryId"),
        lifecycle_policy_text=params.get("lifecyclePolicyText"),
    )
    return {
        "registryId": preview.registry_id,
        "repositoryName": preview.repository_name,
        "lifecyclePolicyText": preview.lifecycle_policy_text,
        "status": preview.status,
    }


def _get_preview(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("imageIds") and params.get("maxResults"):
        # API reference: maxResults "cannot be used when you specify images with imageIds".
        raise InvalidParameterException("Invalid parameter: maxResults cannot be used together with imageIds")
    backend: ECRBackend = response.ecr_backend
    preview: LifecyclePreview = backend.get_lifecycle_policy_preview(  # type: ignore[attr-defined]
        repository_name=params["repositoryName"], registry_id=params.get("registryId")
    )
    result: dict[str, Any] = {
        "registryId": preview.registry_id,
        "repositoryName": preview.repository_name,
        "lifecyclePolicyText": preview.lifecycle_policy_text,
        "status": preview.status,
    }
    if preview.status == "COMPLETE":
        selected = _filter_results(preview.results, params)
        page, token = paginate(selected, params.get("maxResults"), params.get("nextToken"))
        result.update({"previewResults": page, "nextToken": token, "summary": _summary(preview.results)})
    return result


# --------------------------------------------------------------------------------------------------
# Put/DeleteLifecyclePolicy, repositories, images
# --------------------------------------------------------------------------------------------------


def put_lifecycle_policy(
    self: ECRBackend, registry_id: str | None, repository_name: str, lifecycle_policy_text: str
) -> dict[str, Any]:
    """moto's ``put_lifecycle_policy`` with the full-grammar validator."""
    repository = self._get_repository(repository_name, registry_id)
    parse_lifecycle_policy(lifecycle_policy_text)
    repository.lifecycle_policy = lifecycle_policy_text
    return {
        "registryId": repository.registry_id,
        "repositoryName": repository_name,
        "lifecyclePolicyText": lifecycle_policy_text,
    }


def _put_policy(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    return backend.put_lifecycle_policy(
        registry_id=params.get("registryId"),  # type: ignore[arg-type]
        repository_name=params["repositoryName"],
        lifecycle_policy_text=params["lifecyclePolicyText"],
    )


def _delete_policy(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    result: dict[str, Any] = backend.delete_lifecycle_policy(
        registry_id=params.get("registryId"),  # type: ignore[arg-type]
        repository_name=params["repositoryName"],
    )
    result["lastEvaluatedAt"] = clock.now()
    return result


def repository_elements(repository: Any) -> dict[str, Any]:
    """A moto ``Repository`` as CloudTrail ``responseElements.repository`` (botocore member names)."""
    return {
        "repositoryArn": repository.arn,
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
        "repositoryUri": repository.uri,
        "createdAt": repository.created_at,
        "imageTagMutability": repository.image_tag_mutability,
        "imageScanningConfiguration": repository.image_scanning_configuration,
        "encryptionConfiguration": repository.encryption_configuration,
    }


def _cloudtrail_wrapper(event_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a moto handler returning ``ActionResult({"repository": Repository})`` with its CloudTrail event."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any) -> Any:
            params = request_params(self)
            try:
                result = original(self)
            except ServiceException as exc:
                events.emit_api_call(self, event_name, params, None, error_code=exc.code, error_message=exc.message)
                raise
            payload = result.result if isinstance(result, ActionResult) else None
            repository = payload.get("repository") if isinstance(payload, dict) else None
            elements = {"repository": repository_elements(repository)} if repository is not None else None
            events.emit_api_call(self, event_name, params, elements)
            return result

        return handler

    return make


def _put_image_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    """Stamp new images with the injectable clock (``imagePushedAt`` and the evaluator's push time)."""

    def put_image(self: ECRBackend, repository_name: str, *args: Any, **kwargs: Any) -> Any:
        repository = self.repositories.get(repository_name)
        before = {id(i) for i in repository.images} if repository is not None else set()
        image = original(self, repository_name, *args, **kwargs)
        if id(image) not in before:
            now = clock.now()
            image.image_pushed_at = int(now.timestamp())
            image_ext(ext_state(self), repository_name, image.get_image_digest()).pushed_at = now.replace(microsecond=0)
        return image

    return put_image


def _delete_repository_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    """Forget extension data of a deleted repository (so a re-created one starts clean)."""

    def delete_repository(self: ECRBackend, repository_name: str, *args: Any, **kwargs: Any) -> Any:
        repository = original(self, repository_name, *args, **kwargs)
        state = ext_state(self)
        with state.lock:
            state.images.pop(repository_name, None)
            state.previews.pop(repository_name, None)
            state.pull_through.pop(repository_name, None)
        return repository

    return delete_repository


def install() -> None:
    """Patch moto (idempotent)."""
    add_backend_method("put_lifecycle_policy", put_lifecycle_policy)
    add_backend_method("start_lifecycle_policy_preview", start_lifecycle_policy_preview)
    add_backend_method("get_lifecycle_policy_preview", get_lifecycle_policy_preview)
    wrap_backend_method("put_image", _put_image_wrapper)
    wrap_backend_method("delete_repository", _delete_repository_wrapper)
    add_response_action("put_lifecycle_policy", api_action("PutLifecyclePolicy", _put_policy, mutating=True))
    add_response_action("delete_lifecycle_policy", api_action("DeleteLifecyclePolicy", _delete_policy, mutating=True))
    add_response_action(
        "start_lifecycle_policy_preview", api_action("StartLifecyclePolicyPreview", _start_preview, mutating=False)
    )
    add_response_action(
        "get_lifecycle_policy_preview", api_action("GetLifecyclePolicyPreview", _get_preview, mutating=False)
    )
    wrap_response_action("create_repository", _cloudtrail_wrapper("CreateRepository"))
    wrap_response_action("delete_repository", _cloudtrail_wrapper("DeleteRepository"))

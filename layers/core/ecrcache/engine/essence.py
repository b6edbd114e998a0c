"""Normal forms for semantic comparison: the "essence" of what ECR holds and of what a rule wants.

Like kopf's ``diffbase`` essence (and ``kubectl apply``'s last-applied state), both sides are
reduced to a normal form before they are compared, so formatting, defaults and server-set fields
never show up as drift:

* Lifecycle policies compare by :func:`~ecrcache.models.lifecycle.normalise_policy_text` (rules
  by priority, ``storageClass: standard`` dropped, tag lists sorted). A text the model rejects (an
  out-of-band policy) keeps its raw text as its essence, which never equals a parsed document: it
  is drift, and the rule's policy is put back.
* IAM policies (repository policies) compare by :func:`normalise_iam_policy`: keys sorted, a
  single ``Statement`` object is a one-element list, statements are unordered, ``Action`` /
  ``Resource`` / ``Principal`` values and condition values are sets (a string is a one-element list).
* Defaults: an omitted ``upstreamRepositoryPrefix`` is ``ROOT``; a template's ``AES256`` encryption
  without a key is the same as no encryption configuration; ``""`` is the same as absent;
  ``upstreamRegistry`` missing from an old rule is inferred from its URL. ``createdAt``,
  ``updatedAt`` and ``registryId`` are never part of an essence.
* A template's ``description`` is compared only when the rule sets one; its ``appliedFor`` only
  has to contain ``PULL_THROUGH_CACHE`` (other uses someone configured are kept, see the planner).
* Tags on existing repositories: only the keys the rule sets are compared (see the planner). The
  template's ``resourceTags`` are compared exactly, because the template belongs to the rule.

Fingerprints (:func:`fingerprint`) are the SHA-256 of the canonical JSON of a normal form; the
controller records them per repository aspect after applying (:func:`desired_fingerprints`), so a
fast resync can skip repositories whose record matches without reading them.

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from pydantic import JsonValue

from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.lifecycle import normalise_policy_text
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.rule import EncryptionType
from ecrcache.models.upstream import infer_kind

if TYPE_CHECKING:
    from ecrcache.models.observed import ObservedRule, ObservedTemplate
    from ecrcache.models.rule import RuleSpec

__all__ = [
    "IMMUTABLE_RULE_FIELDS",
    "PULL_THROUGH_CACHE",
    "canonical_json",
    "changed_fields",
    "desired_fingerprints",
    "encryption_essence",
    "fingerprint",
    "lifecycle_essence",
    "lifecycle_fingerprint",
    "normalise_iam_policy",
    "policy_essence",
    "policy_fingerprint",
    "rule_essence",
    "tags_fingerprint",
    "template_essence",
]

PULL_THROUGH_CACHE: Final = "PULL_THROUGH_CACHE"
"""The ``appliedFor`` value of creation templates that apply to pull-through cache repositories."""

IMMUTABLE_RULE_FIELDS: Final = frozenset({"upstream_registry_url", "upstream_registry", "upstream_repository_prefix"})
"""Rule fields ``UpdatePullThroughCacheRule`` cannot change: a change means delete and re-create."""

Essence = dict[str, JsonValue]


# --------------------------------------------------------------------------------------------------
# Canonical JSON and fingerprints


def canonical_json(value: JsonValue) -> str:
    """Compact JSON with sorted keys: equal values always give the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: JsonValue) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value`` (pass a normal form)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def changed_fields(before: Mapping[str, JsonValue], after: Mapping[str, JsonValue]) -> tuple[str, ...]:
    """The keys whose values differ between two essences, sorted."""
    return tuple(key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key))


# --------------------------------------------------------------------------------------------------
# IAM policies

_SET_FIELDS: Final = ("Action", "NotAction", "Resource", "NotResource")
_PRINCIPAL_FIELDS: Final = ("Principal", "NotPrincipal")


def _as_set(value: Any) -> Any:
    """An IAM value that is a set: a scalar is a one-element list; a list is sorted, without repeats."""
    if isinstance(value, list):
        unique = {canonical_json(item): item for item in value}
        return [unique[key] for key in sorted(unique)]
    if isinstance(value, dict):
        return value
    return [value]


def _principal(value: Any) -> Any:
    # "*" (anyone) stays a string; {"AWS": "arn"} becomes {"AWS": ["arn"]}.
    if isinstance(value, dict):
        return {key: _as_set(item) for key, item in value.items()}
    return value


def _condition(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        operator: {key: _as_set(item) for key, item in block.items()} if isinstance(block, dict) else block
        for operator, block in value.items()
    }


def _statement(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    statement = dict(value)
    for name in _SET_FIELDS:
        if name in statement:
            statement[name] = _as_set(statement[name])
    for name in _PRINCIPAL_FIELDS:
        if name in statement:
            statement[name] = _principal(statement[name])
    if "Condition" in statement:
        statement["Condition"] = _condition(statement["Condition"])
    return statement


def normalise_iam_policy(text: str) -> str:
    """Semantic normal form of an IAM policy text (canonical JSON); equal for equal policies.

    ``Statement`` becomes a list (a single statement object is a one-element list) of normalised
    statements in a canonical order (IAM evaluates statements as a set); ``Action``, ``NotAction``,
    ``Resource``, ``NotResource``, the values inside ``Principal`` / ``NotPrincipal`` and condition
    values become sorted lists without repeats (a string is a one-element list). ``"Principal": "*"``
    stays as it is. Raises ``ValueError`` when the text is not a JSON object.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"policy text is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(document, dict):
        raise ValueError("policy text must be a JSON object")
    if "Statement" in document:
        statements = document["Statement"]
        items = statements if isinstance(statements, list) else [statements]
        document["Statement"] = sorted((_statement(item) for item in items), key=canonical_json)
    return canonical_json(document)


# --------------------------------------------------------------------------------------------------
# Policy documents: essence (for comparing) and fingerprint (for recording)


def _document_essence(text: str | None, normalise: Callable[[str], str]) -> JsonValue:
    """``None`` for no policy, the normal-form document, or the raw text when it does not parse
    (a text ECR holds that we cannot read still compares, as itself)."""
    if not text:
        return None
    try:
        essence: JsonValue = json.loads(normalise(text))
    except ValueError:
        return text
    return essence


def lifecycle_essence(text: str | None) -> JsonValue:
    """``None`` for no policy, the normal-form document, or the raw text when ECR's text does not parse."""
    return _document_essence(text, normalise_policy_text)


def policy_essence(text: str | None) -> JsonValue:
    """``None`` for no policy, the normal-form IAM document, or the raw text when it does not parse."""
    return _document_essence(text, normalise_iam_policy)


def lifecycle_fingerprint(text: str | None) -> str | None:
    essence = lifecycle_essence(text)
    return None if essence is None else fingerprint(essence)


def policy_fingerprint(text: str | None) -> str | None:
    essence = policy_essence(text)
    return None if essence is None else fingerprint(essence)


def tags_fingerprint(tags: Mapping[str, str]) -> str | None:
    """Fingerprint of the tags a rule sets; ``None`` when it sets none."""
    return fingerprint(dict(tags)) if tags else None


def desired_fingerprints(spec: RuleSpec) -> AppliedFingerprints:
    """What the controller records for a repository once it holds everything ``spec`` asks for."""
    return AppliedFingerprints(
        lifecycle=lifecycle_fingerprint(None if spec.lifecycle is None else spec.lifecycle.render_text()),
        policy=policy_fingerprint(spec.repository.policy_text()),
        tags=tags_fingerprint(spec.repository.tags),
        tag_keys=frozenset(spec.repository.tags) or None,
    )


# --------------------------------------------------------------------------------------------------
# Rules and templates


def rule_essence(rule: ObservedRule) -> Essence:
    """The comparable fields of a rule (build the desired side with ``ObservedRule.from_ecr(request)``)."""
    url = rule.upstream_registry_url.lower()
    registry = rule.upstream_registry
    if registry is None:
        inferred = infer_kind(url)
        registry = None if inferred is None else inferred.value
    return {
        "upstream_registry_url": url,
        "upstream_registry": registry,
        "upstream_repository_prefix": rule.upstream_repository_prefix.removesuffix("/") or ROOT_PREFIX,
        "credential_arn": rule.credential_arn or None,
        "custom_role_arn": rule.custom_role_arn or None,
    }


def encryption_essence(encryption_type: str | None, kms_key: str | None) -> JsonValue:
    """``None`` for ECR's default (AES256 without a key), else ``{"type", "kms_key"}``."""
    kind = encryption_type or EncryptionType.AES256.value
    if kind == EncryptionType.AES256.value and not kms_key:
        return None
    return {"type": kind, "kms_key": kms_key or None}


def template_essence(template: ObservedTemplate, *, with_description: bool) -> Essence:
    """The comparable fields of a creation template (desired side: ``ObservedTemplate.from_ecr(request)``)."""
    essence: Essence = {
        "applies_to_pull_through_cache": PULL_THROUGH_CACHE in template.applied_for,
        "image_tag_mutability": template.image_tag_mutability,
        "tag_mutability_exclusions": list[JsonValue](sorted(set(template.tag_mutability_exclusions))),
        "encryption": encryption_essence(template.encryption_type, template.kms_key),
        "resource_tags": dict(sorted(template.resource_tags.items())),
        "repository_policy": policy_essence(template.repository_policy),
        "lifecycle_policy": lifecycle_essence(template.lifecycle_policy),
        "custom_role_arn": template.custom_role_arn or None,
    }
    if with_description:
        essence["description"] = template.description or None
    return essence

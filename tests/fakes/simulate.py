"""An in-memory model of what ECR (and the state table) would hold after a plan is applied.

Test support, not product: the planner's property tests ("apply the plan, plan again: nothing to
do"), the simulation tests and the in-memory ECR fake check a plan's outcome with it. It lives under
``tests/`` so that the deployed layer carries no code only tests run.

It follows ECR's documented semantics for the calls the plan makes: ``UpdatePullThroughCacheRule``
changes only the fields it is given; ``UpdateRepositoryCreationTemplate`` replaces the fields it
is given (``""`` / ``[]`` clear them) and keeps the rest; ``TagResource`` adds or overwrites the
keys given and keeps other tags, ``UntagResource`` removes the keys given (an absent one is no
error: not documented, see the planner's untag); ``Register``/``DeregisterPullTimeUpdateExclusion``
add and remove one principal ARN (exclusions read, ``ObservedRegion.exclusions`` not ``None``, stay
read).

Repository details are updated only where they were read: a repository observed on the fast path
(``details`` ``None``) stays unread, because the aspects the plan did not touch are still unknown;
its applied fingerprints and tag mutability are updated all the same.

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import JsonValue

from ecrcache.engine.plan import ActionKind, Plan, PlannedAction
from ecrcache.models.observed import (
    AppliedFingerprints,
    ObservedRegion,
    ObservedRepository,
    ObservedRule,
    ObservedTemplate,
    Ownership,
)

__all__ = ["apply_to_observed"]


@dataclass
class _State:
    rules: dict[str, ObservedRule]
    templates: dict[str, ObservedTemplate]
    repositories: dict[str, ObservedRepository]
    owned_rules: set[str]
    owned_templates: set[str]
    exclusions: set[str] | None
    owned_exclusions: set[str]


def _template_as_ecr(template: ObservedTemplate) -> dict[str, Any]:
    """A template in ECR's shape (what ``from_ecr`` reads)."""
    item: dict[str, Any] = {
        "prefix": template.prefix,
        "appliedFor": list(template.applied_for),
        "imageTagMutability": template.image_tag_mutability,
        "resourceTags": [{"Key": k, "Value": v} for k, v in template.resource_tags.items()],
        "repositoryPolicy": template.repository_policy,
        "lifecyclePolicy": template.lifecycle_policy,
        "customRoleArn": template.custom_role_arn,
        "description": template.description,
    }
    if template.tag_mutability_exclusions:
        item["imageTagMutabilityExclusionFilters"] = [
            {"filterType": "WILDCARD", "filter": f} for f in template.tag_mutability_exclusions
        ]
    if template.encryption_type is not None:
        item["encryptionConfiguration"] = {"encryptionType": template.encryption_type, "kmsKey": template.kms_key}
    return item


def _updated_template(template: ObservedTemplate, request: Mapping[str, Any]) -> ObservedTemplate:
    item = {**_template_as_ecr(template), **request}
    if "imageTagMutabilityExclusionFilters" not in request and not str(item["imageTagMutability"]).endswith(
        "_WITH_EXCLUSION"
    ):
        item.pop("imageTagMutabilityExclusionFilters", None)
    return ObservedTemplate.from_ecr(item)


# --------------------------------------------------------------------------------------------------
# Rules and templates


def _create_rule(state: _State, action: PlannedAction) -> None:
    state.rules[action.target] = ObservedRule.from_ecr(action.request)
    state.owned_rules.add(action.target)


def _replace_rule(state: _State, action: PlannedAction) -> None:
    create = action.request["create"]
    if not isinstance(create, dict):  # pragma: no cover - the planner always sends a mapping
        raise TypeError("replace_rule request needs a 'create' mapping")
    state.rules[action.target] = ObservedRule.from_ecr(create)
    state.owned_rules.add(action.target)


def _update_rule(state: _State, action: PlannedAction) -> None:
    rule = state.rules[action.target]
    update = {
        name: action.request[key]
        for key, name in (("credentialArn", "credential_arn"), ("customRoleArn", "custom_role_arn"))
        if key in action.request
    }
    state.rules[action.target] = rule.model_copy(update=update)
    state.owned_rules.add(action.target)


def _delete_rule(state: _State, action: PlannedAction) -> None:
    state.rules.pop(action.target, None)
    state.owned_rules.discard(action.target)


def _adopt_rule(state: _State, action: PlannedAction) -> None:
    state.owned_rules.add(action.target)


def _create_template(state: _State, action: PlannedAction) -> None:
    state.templates[action.target] = ObservedTemplate.from_ecr(action.request)
    state.owned_templates.add(action.target)


def _update_template(state: _State, action: PlannedAction) -> None:
    state.templates[action.target] = _updated_template(state.templates[action.target], action.request)
    state.owned_templates.add(action.target)


def _delete_template(state: _State, action: PlannedAction) -> None:
    state.templates.pop(action.target, None)
    state.owned_templates.discard(action.target)


def _adopt_template(state: _State, action: PlannedAction) -> None:
    state.owned_templates.add(action.target)


def _register_exclusion(state: _State, action: PlannedAction) -> None:
    if state.exclusions is not None:
        state.exclusions.add(action.target)
    state.owned_exclusions.add(action.target)


def _deregister_exclusion(state: _State, action: PlannedAction) -> None:
    if state.exclusions is not None:
        state.exclusions.discard(action.target)
    state.owned_exclusions.discard(action.target)


def _forget_exclusion(state: _State, action: PlannedAction) -> None:
    state.owned_exclusions.discard(action.target)


# --------------------------------------------------------------------------------------------------
# Repositories


def _with_details(repo: ObservedRepository, **update: Any) -> ObservedRepository:
    if repo.details is None:
        return repo
    return repo.model_copy(update={"details": repo.details.model_copy(update=update)})


def _objects(value: JsonValue) -> list[dict[str, JsonValue]]:
    """The JSON objects in a request's list value (``tags``, exclusion filters)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _put_lifecycle(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    return _with_details(repo, lifecycle_policy=action.request["lifecyclePolicyText"])


def _delete_lifecycle(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    return _with_details(repo, lifecycle_policy=None)


def _set_policy(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    return _with_details(repo, repository_policy=action.request["policyText"])


def _delete_policy(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    return _with_details(repo, repository_policy=None)


def _tag(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    if repo.details is None:
        return repo
    tags = dict(repo.details.tags)
    for tag in _objects(action.request["tags"]):
        tags[str(tag["Key"])] = str(tag["Value"])
    return _with_details(repo, tags=tags)


def _untag(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    if repo.details is None:
        return repo
    value = action.request["tagKeys"]
    keys = {str(key) for key in value} if isinstance(value, list) else set()
    return _with_details(repo, tags={k: v for k, v in repo.details.tags.items() if k not in keys})


def _put_mutability(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    filters = _objects(action.request.get("imageTagMutabilityExclusionFilters"))
    exclusions = tuple(str(f["filter"]) for f in filters)
    return repo.model_copy(
        update={"image_tag_mutability": action.request["imageTagMutability"], "tag_mutability_exclusions": exclusions}
    )


def _record_only(repo: ObservedRepository, action: PlannedAction) -> ObservedRepository:
    return repo


_REGION_EFFECTS: Final[dict[ActionKind, Callable[[_State, PlannedAction], None]]] = {
    ActionKind.CREATE_RULE: _create_rule,
    ActionKind.ADOPT_RULE: _adopt_rule,
    ActionKind.UPDATE_RULE: _update_rule,
    ActionKind.REPLACE_RULE: _replace_rule,
    ActionKind.DELETE_RULE: _delete_rule,
    ActionKind.CREATE_TEMPLATE: _create_template,
    ActionKind.ADOPT_TEMPLATE: _adopt_template,
    ActionKind.UPDATE_TEMPLATE: _update_template,
    ActionKind.DELETE_TEMPLATE: _delete_template,
    ActionKind.REGISTER_EXCLUSION: _register_exclusion,
    ActionKind.DEREGISTER_EXCLUSION: _deregister_exclusion,
    ActionKind.FORGET_EXCLUSION: _forget_exclusion,
}
_REPOSITORY_EFFECTS: Final[dict[ActionKind, Callable[[ObservedRepository, PlannedAction], ObservedRepository]]] = {
    ActionKind.PUT_LIFECYCLE_POLICY: _put_lifecycle,
    ActionKind.DELETE_LIFECYCLE_POLICY: _delete_lifecycle,
    ActionKind.SET_REPOSITORY_POLICY: _set_policy,
    ActionKind.DELETE_REPOSITORY_POLICY: _delete_policy,
    ActionKind.TAG_REPOSITORY: _tag,
    ActionKind.UNTAG_REPOSITORY: _untag,
    ActionKind.PUT_IMAGE_TAG_MUTABILITY: _put_mutability,
    ActionKind.RECORD_APPLIED: _record_only,
}


def _apply_repository(state: _State, action: PlannedAction) -> None:
    repo = _REPOSITORY_EFFECTS[action.kind](state.repositories[action.target], action)
    if action.records:
        applied = action.record_onto(repo.applied or AppliedFingerprints())
        repo = repo.model_copy(update={"applied": applied})
    state.repositories[action.target] = repo


def apply_to_observed(observed: ObservedRegion, ownership: Ownership, plan: Plan) -> tuple[ObservedRegion, Ownership]:
    """What a fresh observation of ``observed.region`` would show after every action of ``plan`` in
    that Region succeeded, and the ownership recorded by then. Actions for other Regions are ignored."""
    state = _State(
        dict(observed.rules),
        dict(observed.templates),
        dict(observed.repositories),
        set(ownership.rules),
        set(ownership.templates),
        None if observed.exclusions is None else set(observed.exclusions),
        set(ownership.exclusions),
    )
    for action in plan.actions:
        if action.region != observed.region:
            continue
        if action.kind in _REGION_EFFECTS:
            _REGION_EFFECTS[action.kind](state, action)
        else:
            _apply_repository(state, action)
    region = ObservedRegion(
        region=observed.region,
        rules=state.rules,
        templates=state.templates,
        repositories=state.repositories,
        exclusions=None if state.exclusions is None else frozenset(state.exclusions),
    )
    return region, Ownership(
        rules=frozenset(state.owned_rules),
        templates=frozenset(state.owned_templates),
        exclusions=frozenset(state.owned_exclusions),
    )

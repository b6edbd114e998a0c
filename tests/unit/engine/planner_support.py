"""Builders for the planner tests: desired rules, ECR observations that match them, and plan summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ecrcache.engine.essence import desired_fingerprints
from ecrcache.engine.plan import Plan
from ecrcache.models.observed import (
    AppliedFingerprints,
    DesiredRule,
    ObservedRegion,
    ObservedRepository,
    ObservedRule,
    ObservedTemplate,
    Ownership,
    RepositoryDetails,
)
from ecrcache.models.rule import RuleSpec
from ecrcache.models.upstream import UpstreamKind, default_url, requires_credential

REGION = "us-east-1"
ACCOUNT = "123456789012"
HUB_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/hub-AbCdEf"
HUB_ARN_ROTATED = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/hub2-XyZ123"
CREATION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecr-ptc-creation"
UPSTREAM_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecr-to-ecr"
UPSTREAM_ROLE_2 = f"arn:aws:iam::{ACCOUNT}:role/ecr-to-ecr-2"
ECR_URL = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
ECR_URL_2 = "210987654322.dkr.ecr.eu-west-1.amazonaws.com"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

KEEP_10: dict[str, Any] = {"presets": {"keep_last": 10}}
KEEP_20: dict[str, Any] = {"presets": {"keep_last": 20}}
DENY_DELETE: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": {"Sid": "NoDelete", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchDeleteImage"},
}


def spec(kind: str = "quay", **fields: Any) -> RuleSpec:
    """A valid rule of ``kind``: the URL and credential are filled in where the kind needs them;
    ``tags`` / ``policy`` / ``tag_mutability`` / ``exclusions`` go into ``repository``."""
    upstream = UpstreamKind(kind)
    data: dict[str, Any] = {"upstream_kind": kind}
    if default_url(upstream) is None:
        data["upstream_url"] = ECR_URL
    if requires_credential(upstream):
        data["credential"] = "hub"
    repository: dict[str, Any] = dict(fields.pop("repository", {}))
    for key, name in (("tags", "tags"), ("policy", "policy"), ("mutability", "tag_mutability")):
        if key in fields:
            repository[name] = fields.pop(key)
    if "exclusions" in fields:
        repository["tag_mutability_exclusions"] = fields.pop("exclusions")
    if repository.get("tags") and "creation_role_arn" not in repository:
        repository["creation_role_arn"] = CREATION_ROLE
    if repository:
        data["repository"] = repository
    return RuleSpec.model_validate({**data, **fields})


def desired(prefix: str, rule: RuleSpec | None = None, *, arn: str | None = None, **fields: Any) -> DesiredRule:
    """A desired rule; a rule that takes a credential gets :data:`HUB_ARN` unless ``arn`` is given."""
    rule = rule if rule is not None else spec(**fields)
    if arn is None and rule.credential is not None:
        arn = HUB_ARN
    return DesiredRule(prefix=prefix, spec=rule, credential_arn=arn)


def rule_of(rule: DesiredRule) -> ObservedRule:
    """What ECR describes once ``rule`` was created."""
    return ObservedRule.from_ecr(rule.spec.pull_through_cache_rule_request(rule.prefix, rule.credential_arn))


def template_of(rule: DesiredRule) -> ObservedTemplate:
    """What ECR describes once ``rule``'s creation template was created."""
    return ObservedTemplate.from_ecr(rule.spec.creation_template_request(rule.prefix))


def repository_arn(name: str) -> str:
    return f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"


def details_of(rule: RuleSpec, **extra_tags: str) -> RepositoryDetails:
    """The deep read of a repository that holds everything ``rule`` asks for (plus ``extra_tags``)."""
    return RepositoryDetails(
        lifecycle_policy=None if rule.lifecycle is None else rule.lifecycle.render_text(),
        repository_policy=rule.repository.policy_text(),
        tags={**rule.repository.tags, **extra_tags},
    )


def repo(
    name: str,
    *,
    details: RepositoryDetails | None = None,
    applied: AppliedFingerprints | None = None,
    mutability: str = "MUTABLE",
    exclusions: Sequence[str] = (),
) -> ObservedRepository:
    return ObservedRepository(
        name=name,
        arn=repository_arn(name),
        image_tag_mutability=mutability,
        tag_mutability_exclusions=tuple(exclusions),
        details=details,
        applied=applied,
    )


def converged_repo(name: str, rule: RuleSpec, *, deep: bool = True) -> ObservedRepository:
    """A repository that holds what ``rule`` asks for, with the fingerprints recorded."""
    settings = rule.repository
    return repo(
        name,
        details=details_of(rule) if deep else None,
        applied=desired_fingerprints(rule),
        mutability=settings.tag_mutability.value,
        exclusions=settings.tag_mutability_exclusions,
    )


def region(
    rules: Iterable[ObservedRule] = (),
    templates: Iterable[ObservedTemplate] = (),
    repositories: Iterable[ObservedRepository] = (),
    *,
    name: str = REGION,
) -> ObservedRegion:
    return ObservedRegion(
        region=name,
        rules={r.prefix: r for r in rules},
        templates={t.prefix: t for t in templates},
        repositories={r.name: r for r in repositories},
    )


def owned(*prefixes: str) -> Ownership:
    """Ownership of both the rule and the template of every prefix."""
    return Ownership(rules=frozenset(prefixes), templates=frozenset(prefixes))


def converged(rules: Sequence[DesiredRule], repositories: Iterable[ObservedRepository] = ()) -> ObservedRegion:
    """ECR holding exactly the rules' rules and templates (ownership: :func:`owned`)."""
    return region([rule_of(r) for r in rules], [template_of(r) for r in rules], repositories)


def kinds(plan: Plan) -> list[tuple[str, str]]:
    """``(kind, target)`` of every action, in plan order."""
    return [(action.kind.value, action.target) for action in plan.actions]


def only(plan: Plan, kind: str) -> dict[str, Any]:
    """The request of the single action of ``kind``."""
    found = [action for action in plan.actions if action.kind == kind]
    assert len(found) == 1, kinds(plan)
    return dict(found[0].request)

"""Brownfield import: adopt pull-through cache rules (and their creation templates) that already
exist in ECR - made by hand, by Terraform or by the console - into the desired state.

Each ECR rule whose prefix is not desired yet becomes a desired rule with ``deletion_policy:
retain`` (importing never puts an existing rule at risk) and ``adopt: true`` (importing is the user
saying "take it over": without it the rule would be Blocked as someone else's); the creation
template with the same prefix, if any, gives its repository settings and lifecycle policy. The next
reconcile then finds ECR already matching and adopts the rule and template (records ownership)
without changing them.
A rule that uses a credential needs that credential in the desired state first (the controller
cannot read the secret to learn its username): it is skipped with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ecrcache.errors import EcrcacheError, field_errors_from_pydantic
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.credential import credential_name_from_arn
from ecrcache.models.lifecycle import parse_policy_text
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.upstream import infer_kind

if TYPE_CHECKING:
    from ecrcache.models.observed import ObservedRule, ObservedTemplate
    from ecrcache.ports import EcrReader
    from ecrcache.services.desired_state import ApplyResult, DesiredStateService

PULL_THROUGH_CACHE = "PULL_THROUGH_CACHE"


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    prefix: str
    region: str
    imported: bool
    reason: str
    spec: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    outcomes: list[ImportOutcome]
    apply: ApplyResult | None
    dry_run: bool
    warnings: list[str] = field(default_factory=list)


def _repository_settings(template: ObservedTemplate) -> dict[str, Any]:
    settings: dict[str, Any] = {"tag_mutability": template.image_tag_mutability}
    if template.tag_mutability_exclusions:
        settings["tag_mutability_exclusions"] = list(template.tag_mutability_exclusions)
    if template.encryption_type:
        settings["encryption"] = {"type": template.encryption_type, "kms_key": template.kms_key}
    if template.resource_tags:
        settings["tags"] = dict(template.resource_tags)
    if template.repository_policy:
        settings["policy"] = json.loads(template.repository_policy)
    if template.custom_role_arn:
        settings["creation_role_arn"] = template.custom_role_arn
    return settings


def rule_spec_from_ecr(
    rule: ObservedRule, template: ObservedTemplate | None, *, region: str, stack_region: str
) -> dict[str, Any]:
    """The desired-rule document equivalent to what ECR holds (raises ``ValueError`` when it can't be)."""
    kind = rule.upstream_registry or (infer_kind(rule.upstream_registry_url) or "")
    if not kind:
        msg = f"cannot tell the upstream kind of {rule.upstream_registry_url}"
        raise ValueError(msg)
    spec: dict[str, Any] = {
        "upstream_kind": kind,
        "upstream_url": rule.upstream_registry_url,
        "deletion_policy": "retain",
        "adopt": True,
    }
    if rule.upstream_repository_prefix != ROOT_PREFIX:
        spec["upstream_repository_prefix"] = rule.upstream_repository_prefix
    if rule.custom_role_arn:
        spec["custom_role_arn"] = rule.custom_role_arn
    if region != stack_region:
        spec["regions"] = [region]
    if template is not None and PULL_THROUGH_CACHE in template.applied_for:
        spec["repository"] = _repository_settings(template)
        if template.description:
            spec["description"] = template.description
        if template.lifecycle_policy:
            policy = parse_policy_text(template.lifecycle_policy)
            spec["lifecycle"] = {"rules": [r.model_dump(mode="json", exclude_none=True) for r in policy.rules]}
    return spec


class ImportService:
    def __init__(
        self,
        desired: DesiredStateService,
        registry: Callable[[str], EcrReader],
        *,
        stack_region: str,
    ) -> None:
        self.desired = desired
        self.registry = registry
        self.stack_region = stack_region

    def run(self, regions: Iterable[str], *, actor: str, dry_run: bool) -> ImportResult:
        snapshot = self.desired.snapshot()
        outcomes: list[ImportOutcome] = []
        new_rules: dict[str, dict[str, Any]] = {}
        for region in sorted(set(regions) or {self.stack_region}):
            observed = self.registry(region).observe(prefixes=[], deep=False, applied={})
            for prefix, rule in sorted(observed.rules.items()):
                if prefix in snapshot.rules:
                    outcomes.append(
                        ImportOutcome(prefix, region, imported=False, reason="already in the desired state")
                    )
                    continue
                outcome = self._one(
                    prefix,
                    region=region,
                    rule=rule,
                    template=observed.templates.get(prefix),
                    credentials=snapshot.credentials,
                    pending=new_rules,
                )
                if outcome.imported and outcome.spec is not None:
                    new_rules[prefix] = outcome.spec
                outcomes.append(outcome)
        specs = {
            ResourceKind.RULE: {**{p: r.spec for p, r in snapshot.rules.items()}, **new_rules},
            ResourceKind.CREDENTIAL: {n: c.spec for n, c in snapshot.credentials.items()},
            ResourceKind.WARM_SET: {n: w.spec for n, w in snapshot.warm_sets.items()},
        }
        if not new_rules:
            return ImportResult(outcomes=outcomes, apply=None, dry_run=dry_run)
        applied = self.desired.apply(
            specs, {}, actor=actor, prune=False, dry_run=dry_run, if_match_revision=snapshot.revision
        )
        return ImportResult(outcomes=outcomes, apply=applied, dry_run=dry_run)

    def _one(
        self,
        prefix: str,
        *,
        region: str,
        rule: ObservedRule,
        template: ObservedTemplate | None,
        credentials: Any,
        pending: dict[str, dict[str, Any]],
    ) -> ImportOutcome:
        try:
            spec = rule_spec_from_ecr(rule, template, region=region, stack_region=self.stack_region)
        except ValueError as exc:
            return ImportOutcome(prefix, region, imported=False, reason=str(exc))
        if rule.credential_arn:
            name = credential_name_from_arn(rule.credential_arn)
            if name is None:
                return ImportOutcome(
                    prefix, region, imported=False, reason="its secret is not under ecr-pullthroughcache/"
                )
            if name not in credentials:
                return ImportOutcome(
                    prefix,
                    region,
                    imported=False,
                    reason=(
                        f"create credential {name!r} first: PUT /v1/credentials/{name} with its username "
                        "(the existing secret is adopted; no token needed)"
                    ),
                )
            spec["credential"] = name
        if prefix in pending:  # the same prefix in another Region: one desired rule for both
            merged_regions = sorted({*pending[prefix].get("regions", [self.stack_region]), region})
            spec = {**pending[prefix], "regions": merged_regions}
        try:
            validated = RuleSpec.model_validate(spec)
            validated.validate_for_prefix(prefix)
        except ValidationError as exc:
            problems = "; ".join(f"{e.field}: {e.message}" for e in field_errors_from_pydantic(exc))
            return ImportOutcome(prefix, region, imported=False, reason=f"not representable: {problems}")
        except EcrcacheError as exc:
            return ImportOutcome(prefix, region, imported=False, reason=f"not representable: {exc.message}")
        return ImportOutcome(prefix, region, imported=True, reason="imported", spec=validated.model_dump(mode="json"))

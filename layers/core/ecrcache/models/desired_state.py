"""The whole desired state as one document: rules, credentials and warm sets.

This is the shape of the desired-state file (``ecrcache apply -f``) and of a bulk API write. The
document checks everything that needs no store: each rule against its own prefix key, credentials
used by rules are for the rule's upstream kind, and ECR's 50-rules-per-Region quota. References to
credentials and rules that are not in the document are not errors: the service resolves
:meth:`DesiredStateDocument.unresolved_credentials` and :meth:`DesiredStateDocument.unresolved_rules`
against the store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ecrcache.models.common import EcrPrefix, Loc, ResourceName, raise_field_errors
from ecrcache.models.credential import CredentialPut
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_set import WarmSetSpec


def _integer(value: Any) -> Any:
    """Before ``Literal[1]``: the integer itself (pydantic's literal check takes ``true`` and ``1.0`` as 1)."""
    if type(value) is not int:
        raise ValueError("the document version must be the integer 1")
    return value


DocumentVersion = Annotated[Literal[1], BeforeValidator(_integer)]

MAX_RULES_PER_REGION: Final = 50
"""ECR quota "Pull through cache rules per registry": 50, not adjustable (a registry is per Region)."""
STACK_REGION: Final = ""
"""Bucket for rules with no ``regions`` (they go to the stack's Region, unknown to the document)."""


class DesiredStateDocument(BaseModel):
    """Desired state: ``{"version": 1, "rules": {...}, "credentials": {...}, "warm_sets": {...}}``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "rules": {
                        "docker-hub": {"upstream_kind": "docker-hub", "credential": "docker-hub"},
                        "ecr-public": {"upstream_kind": "ecr-public"},
                    },
                    "credentials": {
                        "docker-hub": {
                            "upstream_kind": "docker-hub",
                            "username": "ci-bot",
                            "token": "REPLACE_WITH_ACCESS_TOKEN",
                        }
                    },
                    "warm_sets": {
                        "base-images": {"rule": "docker-hub", "images": ["library/node:18-alpine"]},
                    },
                }
            ]
        },
    )

    version: DocumentVersion = Field(description="Document format version: required, the integer 1.")
    rules: dict[EcrPrefix, RuleSpec] = Field(
        default_factory=dict, description="Pull-through cache rules keyed by ECR repository prefix (or ROOT)."
    )
    credentials: dict[ResourceName, CredentialPut] = Field(
        default_factory=dict, description="Upstream credentials keyed by name (secret ecr-pullthroughcache/<name>)."
    )
    warm_sets: dict[ResourceName, WarmSetSpec] = Field(default_factory=dict, description="Warm sets keyed by name.")

    @field_validator("rules", mode="before")
    @classmethod
    def _no_aliased_prefixes(cls, value: Any) -> Any:
        """``docker-hub`` and ``docker-hub/`` are the same rule; refuse both rather than keep one silently."""
        if isinstance(value, dict):
            stems = Counter(k.removesuffix("/") for k in value if isinstance(k, str))
            aliased = sorted(stem for stem, n in stems.items() if n > 1)
            if aliased:
                raise ValueError(
                    f"prefixes {', '.join(repr(a) for a in aliased)} appear with and without a trailing '/'; "
                    "ECR implies the '/', so they name the same rule"
                )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        errors: list[tuple[Loc, str, object]] = []
        for prefix, rule in self.rules.items():
            errors.extend((("rules", prefix, *loc), message, v) for loc, message, v in rule.prefix_errors(prefix))
            credential = self.credentials.get(rule.credential) if rule.credential else None
            if credential is not None and credential.upstream_kind is not rule.upstream_kind:
                errors.append(
                    (
                        ("rules", prefix, "credential"),
                        f"credential {rule.credential!r} is for upstream_kind {credential.upstream_kind.value!r}, "
                        f"but this rule's upstream_kind is {rule.upstream_kind.value!r}",
                        rule.credential,
                    )
                )
        for region, prefixes in sorted(self._rules_by_bucket().items()):
            if len(prefixes) > MAX_RULES_PER_REGION:
                where = "the stack's Region" if region == STACK_REGION else region
                errors.append(
                    (
                        ("rules",),
                        f"{len(prefixes)} rules target {where}; ECR allows at most {MAX_RULES_PER_REGION} pull "
                        "through cache rules per registry (not adjustable)",
                        len(prefixes),
                    )
                )
        if errors:
            raise_field_errors("DesiredStateDocument", errors)
        return self

    @property
    def declares_nothing(self) -> bool:
        """No rules, credentials or warm sets: applied with prune, it deletes everything."""
        return not (self.rules or self.credentials or self.warm_sets)

    def _rules_by_bucket(self) -> dict[str, list[str]]:
        buckets: dict[str, list[str]] = defaultdict(list)
        for prefix, rule in self.rules.items():
            for region in rule.regions or (STACK_REGION,):
                buckets[region].append(prefix)
        return buckets

    def rules_by_region(self, stack_region: str) -> dict[str, tuple[str, ...]]:
        """Prefixes per Region once the stack's Region is known (rules without ``regions`` go there).

        The document alone can only check each bucket; the service checks these exact counts (plus
        the rules already in the store) against :data:`MAX_RULES_PER_REGION`.
        """
        result: dict[str, list[str]] = defaultdict(list)
        for bucket, prefixes in self._rules_by_bucket().items():
            result[bucket or stack_region].extend(prefixes)
        return {region: tuple(sorted(set(prefixes))) for region, prefixes in sorted(result.items())}

    def referenced_credentials(self) -> frozenset[str]:
        """Every credential name a rule in the document uses."""
        return frozenset(r.credential for r in self.rules.values() if r.credential is not None)

    def unresolved_credentials(self) -> frozenset[str]:
        """Credential names used by rules but not declared here: the service looks them up in the store."""
        return self.referenced_credentials() - self.credentials.keys()

    def referenced_rules(self) -> frozenset[str]:
        """Every rule prefix a warm set in the document names."""
        return frozenset(w.rule for w in self.warm_sets.values())

    def unresolved_rules(self) -> frozenset[str]:
        """Rule prefixes named by warm sets but not declared here: the service looks them up in the store."""
        return self.referenced_rules() - self.rules.keys()

"""What the rotation function and the daily credential health check both do with a credential: find where its
token is tried (:func:`probe_targets`) and validate, in ECR, every rule using its secret (:func:`validate_rules`).

Shared so that a rotation's ``testSecret`` / ``finishSecret`` and the health check judge a credential alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ecrcache.engine.upstream_reasons import UpstreamReason, classify_upstream_failure
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.records import ResourceKind
from ecrcache.models.upstream import default_url
from ecrcache.models.upstream_probe import probe_target

if TYPE_CHECKING:
    from ecrcache.models.rotation import SecretVersions
    from ecrcache.models.upstream_probe import ProbeResult, ProbeTarget
    from ecrcache.ports import EcrRuleChecker, StateStore

__all__ = ["NoProbeTarget", "RuleValidation", "credential_spec", "probe_targets", "refusal", "validate_rules"]


class NoProbeTarget(ValueError):
    """There is nowhere to try the credential's token (not desired; no upstream URL to try it at)."""


def credential_spec(desired: StateStore, credential: str) -> CredentialSpec:
    """The credential's desired spec; :class:`NoProbeTarget` when it is not desired."""
    stored = desired.get(ResourceKind.CREDENTIAL, credential)
    if stored is None:
        raise NoProbeTarget(f"credential {credential!r} is not in ecrcache's desired state: its upstream is unknown")
    return CredentialSpec.model_validate(stored.spec)


def probe_targets(desired: StateStore, credential: str, spec: CredentialSpec | None = None) -> list[ProbeTarget]:
    """Where the credential's token is tried: its kind's upstream, or (Azure) every registry a desired rule
    naming it points at; with the credential's own probe image if it names one."""
    spec = spec or credential_spec(desired, credential)
    fixed = default_url(spec.upstream_kind)
    urls = [fixed] if fixed is not None else _rule_urls(desired, credential)
    if not urls:
        raise NoProbeTarget(
            f"no desired rule names credential {credential!r}, and {spec.upstream_kind.value} has no fixed "
            "upstream URL: there is no registry to test the token at"
        )
    return [probe_target(spec.upstream_kind, url, spec.probe) for url in urls]


def _rule_urls(desired: StateStore, credential: str) -> list[str]:
    rules = desired.snapshot().rules.values()
    urls = {r.spec.get("upstream_url") for r in rules if r.spec.get("credential") == credential}
    return sorted(str(url) for url in urls if url)


def refusal(result: ProbeResult) -> str:
    """A probe that did not pass, as a message says it."""
    retry = f" (retry after {result.retry_at.isoformat()})" if result.retry_at is not None else ""
    return f"{result.target} {result.status.value}: {result.message}{retry}"


@dataclass(frozen=True, slots=True)
class RuleValidation:
    """What ECR said of the rules using the secret, each named ``<prefix> (<region>)``: ``refused``, a failure
    ECR's text blames on the credential (classified as the status engine classifies ECR's failures);
    ``unsure``, any other (throttling, an upstream outage, rules that could not be read, an unclassified text);
    ``gone``, a rule deleted meanwhile (nothing to validate)."""

    validated: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)

    def summary(self) -> str:
        checked = ", ".join(self.validated) if self.validated else "no pull-through cache rule uses the secret"
        gone = f"; gone meanwhile, not validated: {', '.join(self.gone)}" if self.gone else ""
        skipped = f"; not validated: {', '.join(self.skipped)}" if self.skipped else ""
        return f"validated in ECR: {checked}{gone}{skipped}"


def validate_rules(ecr: Callable[[str], EcrRuleChecker], versions: SecretVersions) -> RuleValidation:
    """``ValidatePullThroughCacheRule`` of every rule using the secret, in every Region it is in. A rule uses it
    when its ``credentialArn`` is the secret's ARN in the rule's Region (not merely a secret of the same name: a
    replica that failed because another secret of that name is there leaves that secret's rules to it). A replica
    not ``InSync`` is skipped: it may not hold the new labels yet (replicas are updated asynchronously)."""
    found = RuleValidation()
    for region in versions.regions:
        unsynced = versions.out_of_sync(region)
        if unsynced is not None:
            found.skipped.append(f"{region} ({unsynced})")
            continue
        checker = ecr(region)
        try:
            rules = checker.rules()
        except EcrcacheError as exc:
            found.unsure.append(f"the rules in {region} could not be read ({exc.message})")
            continue
        arn = versions.arn_in(region)
        for prefix, rule in sorted(rules.items()):
            if rule.credential_arn == arn:
                _validate_rule(checker, prefix, found)
    return found


def _validate_rule(checker: EcrRuleChecker, prefix: str, found: RuleValidation) -> None:
    name = f"{prefix} ({checker.region})"
    try:
        valid, failure = checker.validate_rule(prefix)
    except EcrcacheError as exc:
        found.unsure.append(f"{name}: ValidatePullThroughCacheRule failed ({exc.message})")
        return
    if valid:
        found.validated.append(name)
    elif _gone(checker, prefix):
        found.gone.append(name)
    elif classify_upstream_failure(None, failure) is UpstreamReason.CREDENTIAL_REJECTED:
        found.refused.append(f"{name}: {failure}")
    else:
        found.unsure.append(f"{name}: {failure}")


def _gone(checker: EcrRuleChecker, prefix: str) -> bool:
    """The rule is no longer listed (deleted since the rules were read); an error listing them: not known gone."""
    try:
        return prefix not in checker.rules()
    except EcrcacheError:
        return False

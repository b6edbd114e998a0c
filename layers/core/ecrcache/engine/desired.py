"""Pure planning for desired-state writes: what a document changes, and whether the result holds.

Works on specs as JSON data (what the store keeps), so it needs nothing but the field names that
tie resources together: a rule's ``credential``, a warm set's ``rule`` and a credential's
``upstream_kind``. No I/O, no clock, no environment.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from ecrcache.errors import FieldError
from ecrcache.models.image_reference import needs_library_prefix, with_library_prefix
from ecrcache.models.records import ResourceKind, WriteAction

# ECR: "Pull through cache rules per registry: 50" (not adjustable; ecr-facts §1.6).
MAX_RULES = 50

Specs = Mapping[ResourceKind, Mapping[str, Mapping[str, Any]]]

# Creates and updates go credentials -> rules -> warm sets (what is referenced first); deletes go
# the other way round, so every intermediate state keeps its references whole.
_CREATE_ORDER = (ResourceKind.CREDENTIAL, ResourceKind.RULE, ResourceKind.WARM_SET)
_DELETE_ORDER = tuple(reversed(_CREATE_ORDER))


@dataclass(frozen=True, slots=True)
class ResourceChange:
    """One resource a document creates, updates or deletes; ``fields`` are the top-level fields changed."""

    kind: ResourceKind
    name: str
    action: WriteAction
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    fields: tuple[str, ...] = ()
    secret_changed: bool = False


@dataclass(frozen=True, slots=True)
class Violations:
    """Broken references and quotas; ``conflicts`` are 409s, ``invalid`` are 422s."""

    invalid: list[FieldError] = field(default_factory=list)
    conflicts: list[FieldError] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.invalid or self.conflicts)


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    keys = sorted(set(before) | set(after))
    return tuple(k for k in keys if before.get(k) != after.get(k))


def diff_document(
    current: Specs,
    desired: Specs,
    *,
    prune: bool,
    secrets_supplied: frozenset[str] = frozenset(),
) -> list[ResourceChange]:
    """The changes that take ``current`` to ``desired``, in a safe order.

    Resources ``desired`` omits are deleted only with ``prune``. A credential whose metadata is
    unchanged still changes when the document supplies its token (``secrets_supplied``).
    """
    upserts: list[ResourceChange] = []
    deletes: list[ResourceChange] = []
    for kind in _CREATE_ORDER:
        have = current.get(kind, {})
        want = desired.get(kind, {})
        for name in sorted(want):
            after = want[name]
            before = have.get(name)
            secret = kind is ResourceKind.CREDENTIAL and name in secrets_supplied
            if before is None:
                upserts.append(
                    ResourceChange(kind, name, WriteAction.CREATE, None, after, tuple(sorted(after)), secret)
                )
            elif dict(before) != dict(after) or secret:
                upserts.append(
                    ResourceChange(kind, name, WriteAction.UPDATE, before, after, changed_fields(before, after), secret)
                )
    if prune:
        for kind in _DELETE_ORDER:
            have = current.get(kind, {})
            want = desired.get(kind, {})
            deletes.extend(
                ResourceChange(kind, name, WriteAction.DELETE, have[name], None)
                for name in sorted(have)
                if name not in want
            )
    # Upserts first (a moved reference lands before its old target goes), then deletes.
    return [*upserts, *deletes]


def apply_changes(current: Specs, changes: list[ResourceChange]) -> dict[ResourceKind, dict[str, Mapping[str, Any]]]:
    """The state after ``changes`` (used to check integrity before anything is written)."""
    state: dict[ResourceKind, dict[str, Mapping[str, Any]]] = {k: dict(current.get(k, {})) for k in ResourceKind}
    for change in changes:
        if change.action is WriteAction.DELETE:
            state[change.kind].pop(change.name, None)
        elif change.after is not None:
            state[change.kind][change.name] = change.after
    return state


Touched = frozenset[tuple[ResourceKind, str]] | None
Held = Mapping[str, Collection[str]]
"""Region -> prefixes of the pull-through cache rules ECR holds there (desired or not)."""
_NAMED: Final = 5


def _regions(rule: Mapping[str, Any], default_region: str) -> set[str]:
    return {str(region) for region in rule.get("regions") or [default_region]}


def regions_gaining_rules(changes: Iterable[ResourceChange], default_region: str) -> set[str]:
    """The Regions where ``changes`` add a rule (a new rule, or a rule given another Region): only
    there can a write push ECR past its rule quota, so only there must ECR be asked what it holds."""
    gained: set[str] = set()
    for change in changes:
        if change.kind is ResourceKind.RULE and change.after is not None:
            before = _regions(change.before, default_region) if change.before is not None else set()
            gained |= _regions(change.after, default_region) - before
    return gained


def check_integrity(
    state: Specs, *, touched: Touched = None, default_region: str = "", held: Held | None = None
) -> Violations:
    """References resolve, kinds agree and the rule quota holds in ``state``.

    ``touched`` limits reference errors to what a write changed (a single PUT reports its own
    field, not an unrelated pre-existing problem). Paths use document form (``rules.<prefix>.credential``).
    ``held`` is what ECR holds in the Regions a write adds rules to: the quota counts what ECR will
    hold there, the desired rules and every rule ECR keeps that is not desired (retained by
    ``deletion_policy: retain``, or made outside ecrcache).
    """
    out = Violations()
    _credential_references(state, touched, out)
    _warm_set_references(state, touched, out)
    if touched is None or any(k is ResourceKind.RULE for k, _ in touched):
        _quota(state.get(ResourceKind.RULE, {}), default_region, held or {}, out)
    return out


def _quota(rules: Mapping[str, Mapping[str, Any]], default_region: str, held: Held, out: Violations) -> None:
    """ECR's quota is per registry, i.e. per Region: count each rule in every Region it names, plus
    the rules ECR holds there that are not desired (ECR's ``LimitExceededException`` counts them too)."""
    desired: dict[str, set[str]] = {region: set() for region in held}
    for prefix, rule in rules.items():
        for region in _regions(rule, default_region):
            desired.setdefault(region, set()).add(prefix)
    for region, prefixes in sorted(desired.items()):
        others = sorted(set(held.get(region, ())) - prefixes)
        count = len(prefixes) + len(others)
        if count <= MAX_RULES:
            continue
        where = f" in {region}" if region else ""
        message = f"ECR allows at most {MAX_RULES} pull-through cache rules per registry{where}; "
        if not others:
            message += f"{count} requested"
        else:
            named = ", ".join(others[:_NAMED]) + (f" and {len(others) - _NAMED} more" if len(others) > _NAMED else "")
            message += (
                f"this would make {count}: {len(prefixes)} desired and {len(others)} in ECR that are not desired "
                f"({named}: retained by deletion_policy retain, or made outside ecrcache; delete them in ECR, "
                "or import them to manage them)"
            )
        out.conflicts.append(FieldError("rules", message))


def _is_touched(touched: Touched, kind: ResourceKind, name: str) -> bool:
    return touched is None or (kind, name) in touched


def _credential_references(state: Specs, touched: Touched, out: Violations) -> None:
    credentials = state.get(ResourceKind.CREDENTIAL, {})
    for prefix, rule in sorted(state.get(ResourceKind.RULE, {}).items()):
        cred = rule.get("credential")
        if not cred:
            continue
        rule_touched = _is_touched(touched, ResourceKind.RULE, prefix)
        cred_touched = _is_touched(touched, ResourceKind.CREDENTIAL, str(cred))
        if cred not in credentials:
            if rule_touched:
                out.invalid.append(
                    FieldError(f"rules.{prefix}.credential", f"no credential named {cred!r}; create it first")
                )
            elif cred_touched:
                out.conflicts.append(
                    FieldError(f"credentials.{cred}", f"credential {cred!r} is still used by rule {prefix!r}")
                )
            continue
        cred_kind = credentials[cred].get("upstream_kind")
        rule_kind = rule.get("upstream_kind")
        if cred_kind and cred_kind != rule_kind and (rule_touched or cred_touched):
            out.invalid.append(
                FieldError(
                    f"rules.{prefix}.credential",
                    f"credential {cred!r} is for {cred_kind}, but the rule's upstream_kind is {rule_kind}",
                )
            )


def _warm_set_references(state: Specs, touched: Touched, out: Violations) -> None:
    rules = state.get(ResourceKind.RULE, {})
    for name, warm in sorted(state.get(ResourceKind.WARM_SET, {}).items()):
        rule_name = str(warm.get("rule"))
        rule = rules.get(rule_name)
        if rule is None:
            if _is_touched(touched, ResourceKind.WARM_SET, name):
                out.invalid.append(FieldError(f"warm_sets.{name}.rule", f"no rule with prefix {rule_name!r}"))
            elif _is_touched(touched, ResourceKind.RULE, rule_name):
                out.conflicts.append(
                    FieldError(f"rules.{rule_name}", f"rule {rule_name!r} is still used by warm set {name!r}")
                )
            continue
        if rule.get("upstream_kind") == "docker-hub" and _is_touched(touched, ResourceKind.WARM_SET, name):
            # Docker Hub official images live under library/ upstream; ECR answers 403 without it
            # (ecr-facts §3.1, containers-roadmap#2211).
            for index, image in enumerate(warm.get("images") or []):
                if needs_library_prefix(str(image)):
                    out.invalid.append(
                        FieldError(
                            f"warm_sets.{name}.images[{index}]",
                            f"Docker Hub official images need library/: {with_library_prefix(str(image))}",
                        )
                    )


def referenced_by(state: Specs, kind: ResourceKind, name: str) -> list[str]:
    """Names of the resources that reference ``kind``/``name`` (rules for a credential, warm sets for a rule)."""
    if kind is ResourceKind.CREDENTIAL:
        return sorted(p for p, r in state.get(ResourceKind.RULE, {}).items() if r.get("credential") == name)
    if kind is ResourceKind.RULE:
        return sorted(n for n, w in state.get(ResourceKind.WARM_SET, {}).items() if w.get("rule") == name)
    return []


def past_expiry(changes: Sequence[ResourceChange], *, today: date) -> list[FieldError]:
    """Credentials a write gives an ``expires_at`` already past (UTC ``today``): a 422 each.

    Only a new or changed date is checked: a stored credential whose date has passed since stays
    readable, and a write that leaves its date as it was (another field, or a whole document applied
    again) goes through. The expiry warning is what tells about it then.
    """
    errors: list[FieldError] = []
    for change in changes:
        if change.kind is not ResourceKind.CREDENTIAL or change.after is None:
            continue
        expires = change.after.get("expires_at")
        if not expires or expires == (change.before or {}).get("expires_at"):
            continue
        if date.fromisoformat(str(expires)) < today:
            errors.append(
                FieldError(
                    f"credentials.{change.name}.expires_at",
                    f"{expires} is in the past (today is {today.isoformat()} UTC): "
                    "set the date the token expires, or omit expires_at",
                )
            )
    return errors

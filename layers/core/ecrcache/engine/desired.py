"""Pure planning for desired-state writes: what a document changes, and whether the result holds.

Works on specs as JSON data (what the store keeps), so it needs nothing but the field names that
tie resources together: a rule's ``credential``, a warm set's ``rule`` and a credential's
``upstream_kind``. No I/O, no clock, no environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecrcache.errors import FieldError
from ecrcache.models.records import ResourceKind, WriteAction

# ECR: "Pull through cache rules per registry: 50" (not adjustable; ecr-facts §1.6).
MAX_RULES = 50

Specs = Mapping[ResourceKind, Mapping[str, Mapping[str, Any]]]

# Creates and updates go credentials -> rules -> warm sets (what is referenced first); deletes go
# the other way round, so every intermediate state keeps its references whole.
_CREATE_ORDER = (ResourceKind.CREDENTIAL, ResourceKind.RULE, ResourceKind.WARM_SET)
_DELETE_ORDER = tuple(reversed(_CREATE_ORDER))
_DOC_SECTION = {ResourceKind.RULE: "rules", ResourceKind.CREDENTIAL: "credentials", ResourceKind.WARM_SET: "warm_sets"}


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
                upserts.append(ResourceChange(kind, name, WriteAction.CREATE, None, after, tuple(sorted(after)), secret))
            elif dict(before) != dict(after) or secret:
                upserts.append(
                    ResourceChange(kind, name, WriteAction.UPDATE, before, after, changed_fields(before, after), secret)
                )
    if prune:
        for kind in _DELETE_ORDER:
            have = current.get(kind, {})
            want = desired.get(kind, {})
            deletes.extend(
                ResourceChange(kind, name, WriteAction.DELETE, have[name], None) for name in sorted(have) if name not in want
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


def check_integrity(state: Specs, *, touched: frozenset[tuple[ResourceKind, str]] | None = None) -> Violations:
    """References resolve, kinds agree and the rule quota holds in ``state``.

    ``touched`` limits reference errors to what a write changed (a single PUT reports its own
    field, not an unrelated pre-existing problem). Paths use document form (``rules.<prefix>.credential``).
    """
    out = Violations()
    rules = state.get(ResourceKind.RULE, {})
    credentials = state.get(ResourceKind.CREDENTIAL, {})
    warm_sets = state.get(ResourceKind.WARM_SET, {})

    def relevant(*keys: tuple[ResourceKind, str]) -> bool:
        return touched is None or any(k in touched for k in keys)

    for prefix, rule in sorted(rules.items()):
        cred = rule.get("credential")
        if not cred:
            continue
        key = ((ResourceKind.RULE, prefix), (ResourceKind.CREDENTIAL, str(cred)))
        if cred not in credentials:
            if touched is None or (ResourceKind.RULE, prefix) in touched:
                out.invalid.append(
                    FieldError(f"rules.{prefix}.credential", f"no credential named {cred!r}; create it first")
                )
            elif relevant(*key):
                out.conflicts.append(
                    FieldError(f"credentials.{cred}", f"credential {cred!r} is still used by rule {prefix!r}")
                )
            continue
        cred_kind = credentials[cred].get("upstream_kind")
        if cred_kind and cred_kind != rule.get("upstream_kind") and relevant(*key):
            out.invalid.append(
                FieldError(
                    f"rules.{prefix}.credential",
                    f"credential {cred!r} is for {cred_kind}, but the rule's upstream_kind is {rule.get('upstream_kind')}",
                )
            )
    for name, warm in sorted(warm_sets.items()):
        rule_name = warm.get("rule")
        if rule_name is None or rule_name in rules:
            continue
        if touched is None or (ResourceKind.WARM_SET, name) in touched:
            out.invalid.append(FieldError(f"warm_sets.{name}.rule", f"no rule with prefix {rule_name!r}"))
        elif (ResourceKind.RULE, str(rule_name)) in touched:
            out.conflicts.append(
                FieldError(f"rules.{rule_name}", f"rule {rule_name!r} is still used by warm set {name!r}")
            )
    if len(rules) > MAX_RULES and (touched is None or any(k is ResourceKind.RULE for k, _ in touched)):
        out.conflicts.append(
            FieldError("rules", f"ECR allows at most {MAX_RULES} pull-through cache rules per registry; {len(rules)} requested")
        )
    return out


def document_path(kind: ResourceKind, name: str) -> str:
    return f"{_DOC_SECTION[kind]}.{name}"


def referenced_by(state: Specs, kind: ResourceKind, name: str) -> list[str]:
    """Names of the resources that reference ``kind``/``name`` (rules for a credential, warm sets for a rule)."""
    if kind is ResourceKind.CREDENTIAL:
        return sorted(p for p, r in state.get(ResourceKind.RULE, {}).items() if r.get("credential") == name)
    if kind is ResourceKind.RULE:
        return sorted(n for n, w in state.get(ResourceKind.WARM_SET, {}).items() if w.get("rule") == name)
    return []

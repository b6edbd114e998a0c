"""The pure planning of desired-state writes: document diffs and integrity checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrcache.engine.desired import (
    MAX_RULES,
    ResourceChange,
    apply_changes,
    check_integrity,
    diff_document,
    referenced_by,
)
from ecrcache.models.records import ResourceKind, WriteAction

pytestmark = pytest.mark.unit

R, C, W = ResourceKind.RULE, ResourceKind.CREDENTIAL, ResourceKind.WARM_SET
HUB = {"upstream_kind": "docker-hub", "credential": "hub"}
QUAY = {"upstream_kind": "quay"}
HUB_CRED = {"upstream_kind": "docker-hub", "username": "ci"}
WARM = {"rule": "docker-hub", "images": ["library/node:18-alpine"]}


def state(
    rules: Mapping[str, Any] | None = None,
    creds: Mapping[str, Any] | None = None,
    warm: Mapping[str, Any] | None = None,
) -> dict[ResourceKind, dict[str, Mapping[str, Any]]]:
    return {R: dict(rules or {}), C: dict(creds or {}), W: dict(warm or {})}


def summary(changes: list[ResourceChange]) -> list[tuple[str, str, str]]:
    return [(c.kind.value, c.name, c.action.value) for c in changes]


def test_diff_identical_states_is_empty() -> None:
    # GIVEN a state WHEN it is diffed with itself THEN nothing changes
    s = state({"docker-hub": HUB}, {"hub": HUB_CRED}, {"base": WARM})
    assert diff_document(s, s, prune=True) == []


def test_diff_creates_referenced_resources_first() -> None:
    # GIVEN an empty state and a document with a warm set, its rule and the rule's credential
    desired = state({"docker-hub": HUB}, {"hub": HUB_CRED}, {"base": WARM})
    # WHEN diffed
    changes = diff_document(state(), desired, prune=False)
    # THEN the credential comes before the rule, and the rule before the warm set
    assert summary(changes) == [
        ("credential", "hub", "create"),
        ("rule", "docker-hub", "create"),
        ("warm-set", "base", "create"),
    ]


def test_diff_prune_deletes_referencing_resources_first() -> None:
    # GIVEN everything exists WHEN an empty document is applied with prune
    current = state({"docker-hub": HUB}, {"hub": HUB_CRED}, {"base": WARM})
    changes = diff_document(current, state(), prune=True)
    # THEN warm set, then rule, then credential go
    assert summary(changes) == [
        ("warm-set", "base", "delete"),
        ("rule", "docker-hub", "delete"),
        ("credential", "hub", "delete"),
    ]


def test_diff_without_prune_keeps_omitted_resources() -> None:
    current = state({"quay": QUAY})
    assert diff_document(current, state(), prune=False) == []


@pytest.mark.parametrize(
    ("before", "after", "fields"),
    [
        ({"a": 1}, {"a": 2}, ("a",)),
        ({"a": 1}, {"a": 1, "b": 2}, ("b",)),
        ({"a": 1, "b": 2}, {"a": 1}, ("b",)),
        ({"a": {"x": 1}}, {"a": {"x": 2}}, ("a",)),
    ],
)
def test_diff_update_lists_changed_top_level_fields(
    before: dict[str, Any], after: dict[str, Any], fields: tuple[str, ...]
) -> None:
    changes = diff_document(state({"quay": before}), state({"quay": after}), prune=False)
    assert [(c.action, c.fields) for c in changes] == [(WriteAction.UPDATE, fields)]


def test_diff_supplied_secret_updates_unchanged_credential() -> None:
    # GIVEN a credential whose metadata is unchanged WHEN the document carries its token
    s = state(creds={"hub": HUB_CRED})
    changes = diff_document(s, s, prune=False, secrets_supplied=frozenset({"hub"}))
    # THEN it is an update that changes the secret only
    assert [(c.action, c.fields, c.secret_changed) for c in changes] == [(WriteAction.UPDATE, (), True)]


def test_integrity_rule_needs_existing_credential() -> None:
    violations = check_integrity(state({"docker-hub": HUB}))
    assert [e.field for e in violations.invalid] == ["rules.docker-hub.credential"]
    assert "no credential named 'hub'" in violations.invalid[0].message


def test_integrity_credential_kind_must_match_rule() -> None:
    ghcr_cred = {"upstream_kind": "github-container-registry", "username": "octo"}
    violations = check_integrity(state({"docker-hub": HUB}, {"hub": ghcr_cred}))
    assert [e.field for e in violations.invalid] == ["rules.docker-hub.credential"]
    assert "is for github-container-registry" in violations.invalid[0].message


def test_integrity_deleting_used_credential_is_a_conflict() -> None:
    # GIVEN the credential was removed by the write, while an untouched rule still uses it
    violations = check_integrity(state({"docker-hub": HUB}), touched=frozenset({(C, "hub")}))
    # THEN it is a conflict naming the rule, not an invalid rule
    assert violations.invalid == []
    assert [e.field for e in violations.conflicts] == ["credentials.hub"]
    assert "docker-hub" in violations.conflicts[0].message


def test_integrity_warm_set_needs_existing_rule() -> None:
    violations = check_integrity(state(warm={"base": WARM}))
    assert [e.field for e in violations.invalid] == ["warm_sets.base.rule"]


def test_integrity_deleting_rule_used_by_warm_set_is_a_conflict() -> None:
    violations = check_integrity(state(warm={"base": WARM}), touched=frozenset({(R, "docker-hub")}))
    assert [e.field for e in violations.conflicts] == ["rules.docker-hub"]


def test_integrity_docker_hub_official_images_need_library() -> None:
    # GIVEN a warm set on a docker-hub rule naming `node:18` without library/
    warm = {"rule": "docker-hub", "images": ["library/python:3.12", "node:18"]}
    violations = check_integrity(state({"docker-hub": HUB}, {"hub": HUB_CRED}, {"base": warm}))
    # THEN the second image is flagged with the corrected reference
    assert [e.field for e in violations.invalid] == ["warm_sets.base.images[1]"]
    assert "library/node:18" in violations.invalid[0].message


def test_integrity_untouched_problems_are_not_reported() -> None:
    # GIVEN a pre-existing dangling reference WHEN an unrelated resource is written
    violations = check_integrity(state({"docker-hub": HUB, "quay": QUAY}), touched=frozenset({(R, "quay")}))
    # THEN the write is not blamed for it
    assert not violations


@pytest.mark.parametrize(("count", "ok"), [(MAX_RULES, True), (MAX_RULES + 1, False)])
def test_integrity_rule_quota(count: int, ok: bool) -> None:
    rules = {f"quay-{i:02d}": QUAY for i in range(count)}
    violations = check_integrity(state(rules))
    assert bool(violations.conflicts) is not ok


def test_referenced_by_lists_users() -> None:
    s = state({"docker-hub": HUB, "other": HUB, "quay": QUAY}, {"hub": HUB_CRED}, {"base": WARM})
    assert referenced_by(s, C, "hub") == ["docker-hub", "other"]
    assert referenced_by(s, R, "docker-hub") == ["base"]
    assert referenced_by(s, W, "base") == []


names = st.sampled_from(["a", "b", "c", "d"])
specs = st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2)
states = st.builds(
    state,
    st.dictionaries(names, specs, max_size=4),
    st.dictionaries(names, specs, max_size=4),
    st.dictionaries(names, specs, max_size=4),
)


@given(current=states, desired=states, prune=st.booleans())
def test_diff_applied_then_rediffed_is_empty(
    current: dict[ResourceKind, dict[str, Mapping[str, Any]]],
    desired: dict[ResourceKind, dict[str, Mapping[str, Any]]],
    prune: bool,
) -> None:
    # GIVEN any two states WHEN the diff is applied THEN diffing again plans nothing
    after = apply_changes(current, diff_document(current, desired, prune=prune))
    assert diff_document(after, desired, prune=prune) == []
    # AND with prune the result is exactly the document
    if prune:
        assert after == desired


@given(current=states, desired=states, prune=st.booleans())
def test_diff_is_deterministic(
    current: dict[ResourceKind, dict[str, Mapping[str, Any]]],
    desired: dict[ResourceKind, dict[str, Mapping[str, Any]]],
    prune: bool,
) -> None:
    assert diff_document(current, desired, prune=prune) == diff_document(current, desired, prune=prune)

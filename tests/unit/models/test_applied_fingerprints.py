"""The repository's applied record: fingerprints replaced per aspect, tag keys added and dropped."""

from __future__ import annotations

import pytest

from ecrcache.models.observed import AppliedFingerprints, Aspect

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("keys", "changes", "expected"),
    [
        pytest.param(None, {"team": True}, frozenset({"team"}), id="first key"),
        pytest.param(frozenset({"team", "env"}), {"env": False}, frozenset({"team"}), id="one dropped"),
        pytest.param(frozenset({"env"}), {"env": False}, None, id="last dropped: none"),
        pytest.param(frozenset({"env"}), {"team": True, "env": False}, frozenset({"team"}), id="both"),
        pytest.param(frozenset({"env"}), {"other": False}, frozenset({"env"}), id="dropping an unknown key"),
        pytest.param(frozenset({"env"}), {}, frozenset({"env"}), id="no change"),
    ],
)
def test_merged_adds_and_drops_tag_keys(
    keys: frozenset[str] | None, changes: dict[str, bool], expected: frozenset[str] | None
) -> None:
    before = AppliedFingerprints(lifecycle="l", tags="t", tag_keys=keys)
    after = before.merged({Aspect.TAGS: "u"}, changes)
    assert after == AppliedFingerprints(lifecycle="l", tags="u", tag_keys=expected)


def test_merged_without_tag_key_changes_keeps_the_keys() -> None:
    before = AppliedFingerprints(tags="t", tag_keys=frozenset({"team"}))
    assert before.merged({Aspect.TAGS: None}).tag_keys == frozenset({"team"})

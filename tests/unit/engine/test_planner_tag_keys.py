"""Issue 14: tag keys removed from a rule are removed from its repositories (``untag_repository``), but only
the keys ecrcache applied (recorded in the repository's applied record), never a key someone else set."""

from __future__ import annotations

import pytest

from ecrcache.engine.essence import desired_fingerprints, tags_fingerprint
from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.engine.planner import plan_region
from ecrcache.models.observed import AppliedFingerprints, Aspect, ObservedRepository, RepositoryDetails
from ecrcache.models.rule import RuleSpec
from tests.fakes.simulate import apply_to_observed
from tests.unit.engine.planner_support import converged, desired, only, owned, repo, repository_arn, spec

pytestmark = pytest.mark.unit

NGINX = "quay/library/nginx"
BEFORE = spec(tags={"team": "platform", "env": "prod"})
AFTER = spec(tags={"team": "platform"})
HAND = {"cost-center": "42"}
"""A tag someone set by hand: never ecrcache's."""


def run(rule: RuleSpec, repository: ObservedRepository, *, deep: bool) -> Plan:
    rules = [desired("quay", rule)]
    return plan_region(rules, [], converged(rules, [repository]), owned("quay"), deep=deep)


def kinds(found: Plan) -> list[str]:
    return [action.kind.value for action in found.actions]


def tagged(tags: dict[str, str] | None, applied: AppliedFingerprints | None) -> ObservedRepository:
    """The repository; ``tags`` ``None``: read on the fast path (no details)."""
    return repo(NGINX, details=None if tags is None else RepositoryDetails(tags=tags), applied=applied)


# --------------------------------------------------------------------------------------------------
# A key removed from the rule


def test_a_key_removed_from_the_rule_is_untagged() -> None:
    # GIVEN a repository ecrcache tagged with team and env, plus a tag set by hand; the rule drops env
    found = run(AFTER, tagged({**BEFORE.repository.tags, **HAND}, desired_fingerprints(BEFORE)), deep=True)
    # THEN env alone is removed, and the record becomes the rule's: its fingerprint and its keys
    assert kinds(found) == ["untag_repository"]
    assert only(found, "untag_repository") == {"resourceArn": repository_arn(NGINX), "tagKeys": ["env"]}
    action = found.actions[0]
    assert action.before == {"tags": {"env": "prod"}}
    assert action.fingerprints == {Aspect.TAGS: tags_fingerprint(AFTER.repository.tags)}
    assert action.tag_keys == {"team": True, "env": False}
    assert action.record_onto(desired_fingerprints(BEFORE)) == desired_fingerprints(AFTER)


def test_a_key_removed_from_the_rule_is_untagged_blind_on_the_fast_path() -> None:
    # GIVEN the same, read on the fast path: what ECR holds is unknown, the record says env is ecrcache's
    found = run(AFTER, tagged(None, desired_fingerprints(BEFORE)), deep=False)
    # THEN the rule's tags are written blind (their fingerprint changed) and env is removed
    assert kinds(found) == ["tag_repository", "untag_repository"]
    tag, untag = found.actions
    assert tag.request["tags"] == [{"Key": "team", "Value": "platform"}]
    assert untag.request == {"resourceArn": repository_arn(NGINX), "tagKeys": ["env"]}
    assert untag.before is None
    assert "not read" in untag.reason
    record = untag.record_onto(tag.record_onto(desired_fingerprints(BEFORE)))
    assert record == desired_fingerprints(AFTER)


def test_a_hand_set_key_is_never_untagged() -> None:
    # GIVEN keys set by hand that ecrcache never applied (not in its record), one of them with a rule's name
    hand = {**HAND, "env": "staging"}
    found = run(AFTER, tagged({**AFTER.repository.tags, **hand}, desired_fingerprints(AFTER)), deep=True)
    # THEN nothing is planned on a deep read, nor on the fast path
    assert found.is_empty
    assert run(AFTER, tagged(None, desired_fingerprints(AFTER)), deep=False).is_empty


def test_a_removed_key_already_gone_is_only_forgotten() -> None:
    # GIVEN env (ecrcache's, no longer the rule's) removed by someone already
    found = run(AFTER, tagged(AFTER.repository.tags, desired_fingerprints(BEFORE)), deep=True)
    # THEN no AWS call: the record forgets env and takes the rule's fingerprint
    assert kinds(found) == ["record_applied"]
    action = found.actions[0]
    assert action.tag_keys == {"env": False}
    assert action.fingerprints == {Aspect.TAGS: desired_fingerprints(AFTER).tags}
    assert action.after == {"tags": desired_fingerprints(AFTER).tags, "tag_keys": ["team"]}
    assert action.record_onto(desired_fingerprints(BEFORE)) == desired_fingerprints(AFTER)


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "fast"])
def test_a_changed_value_and_a_removed_key_tag_and_untag(deep: bool) -> None:
    # GIVEN the rule changes team's value and drops env
    rule = spec(tags={"team": "data"})
    found = run(rule, tagged(BEFORE.repository.tags if deep else None, desired_fingerprints(BEFORE)), deep=deep)
    # THEN team is tagged (recording the fingerprint and the rule's keys) and env untagged (forgetting env only)
    assert kinds(found) == ["tag_repository", "untag_repository"]
    tag, untag = found.actions
    assert tag.request["tags"] == [{"Key": "team", "Value": "data"}]
    assert (tag.fingerprints, tag.tag_keys) == ({Aspect.TAGS: tags_fingerprint({"team": "data"})}, {"team": True})
    assert untag.request["tagKeys"] == ["env"]
    assert (untag.fingerprints, untag.tag_keys) == ({}, {"env": False})


def test_an_untag_that_failed_is_planned_again_alone() -> None:
    # GIVEN the tag call of the plan above succeeded and the untag call failed
    rule = spec(tags={"team": "data"})
    tag = run(rule, tagged(None, desired_fingerprints(BEFORE)), deep=False).actions[0]
    record = tag.record_onto(desired_fingerprints(BEFORE))
    assert record.tag_keys == frozenset({"team", "env"})
    # THEN the next fast resync plans the untag only
    again = run(rule, tagged(None, record), deep=False)
    assert kinds(again) == ["untag_repository"]
    assert (again.actions[0].request["tagKeys"], again.actions[0].fingerprints) == (["env"], {})


def test_a_tag_that_failed_keeps_its_fingerprint_stale() -> None:
    # GIVEN the untag call succeeded and the tag call failed
    rule = spec(tags={"team": "data"})
    untag = run(rule, tagged(None, desired_fingerprints(BEFORE)), deep=False).actions[1]
    record = untag.record_onto(desired_fingerprints(BEFORE))
    # THEN env is forgotten, and the tags are still to write
    assert record.tag_keys == frozenset({"team"})
    assert kinds(run(rule, tagged(None, record), deep=False)) == ["tag_repository"]


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "fast"])
def test_a_rule_without_tags_any_more_untags_every_key_ecrcache_applied(deep: bool) -> None:
    found = run(
        spec(), tagged({**BEFORE.repository.tags, **HAND} if deep else None, desired_fingerprints(BEFORE)), deep=deep
    )
    assert kinds(found) == ["untag_repository"]
    action = found.actions[0]
    assert action.request["tagKeys"] == ["env", "team"]
    assert action.record_onto(desired_fingerprints(BEFORE)) == AppliedFingerprints()


# --------------------------------------------------------------------------------------------------
# Records made before the keys were recorded


def test_a_record_without_keys_whose_fingerprint_matches_gets_the_rules_keys() -> None:
    # GIVEN a record of the rule's tags made before keys were recorded (fast path: the fingerprint matches)
    legacy = desired_fingerprints(AFTER).model_copy(update={"tag_keys": None})
    found = run(AFTER, tagged(None, legacy), deep=False)
    # THEN the keys are recorded (no AWS call), and the next resync has nothing to do
    assert kinds(found) == ["record_applied"]
    assert found.actions[0].tag_keys == {"team": True}
    assert found.actions[0].record_onto(legacy) == desired_fingerprints(AFTER)


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "fast"])
def test_a_record_without_keys_removes_nothing(deep: bool) -> None:
    # GIVEN a record without keys of tags the rule no longer sets: which keys ecrcache applied is unknown
    legacy = desired_fingerprints(BEFORE).model_copy(update={"tag_keys": None})
    found = run(AFTER, tagged(BEFORE.repository.tags if deep else None, legacy), deep=deep)
    # THEN nothing is untagged: on a deep read the rule's tags are held, on the fast path they are written blind
    assert ActionKind.UNTAG_REPOSITORY not in {action.kind for action in found.actions}
    assert kinds(found) == (["record_applied"] if deep else ["tag_repository"])
    assert found.actions[0].record_onto(legacy) == desired_fingerprints(AFTER)


def test_a_deep_read_records_the_rules_keys_it_finds_in_ecr() -> None:
    # GIVEN a repository holding the rule's tags with no record (a creation template of the rule's tagged it)
    found = run(AFTER, tagged({**AFTER.repository.tags, **HAND}, None), deep=True)
    assert kinds(found) == ["record_applied"]
    # THEN the rule's keys become ecrcache's, the hand-set one does not
    assert found.actions[0].tag_keys == {"team": True}


# --------------------------------------------------------------------------------------------------
# Apply, then plan again


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "fast"])
@pytest.mark.parametrize(
    "rule", [AFTER, spec(), spec(tags={"team": "data", "tier": "1"})], ids=["drop one", "drop all", "change"]
)
def test_applying_the_plan_converges_and_keeps_hand_set_tags(rule: RuleSpec, deep: bool) -> None:
    rules = [desired("quay", rule)]
    repository = tagged({**BEFORE.repository.tags, **HAND} if deep else None, desired_fingerprints(BEFORE))
    observed = converged(rules, [repository])
    found = plan_region(rules, [], observed, owned("quay"), deep=deep)
    after, ownership = apply_to_observed(observed, owned("quay"), found)
    assert plan_region(rules, [], after, ownership, deep=deep).is_empty
    result = after.repositories[NGINX]
    assert result.applied == desired_fingerprints(rule)
    if deep:
        assert result.details is not None
        assert result.details.tags == {**rule.repository.tags, **HAND}

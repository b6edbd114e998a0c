"""The planner for existing cached repositories: which repository belongs to which rule, and which
settings are written on a deep read and on the fast (fingerprint) path."""

from __future__ import annotations

import json

import pytest

from ecrcache.engine.essence import desired_fingerprints, lifecycle_fingerprint, policy_fingerprint, tags_fingerprint
from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.engine.planner import ROOT_RULE_NOTE, plan_region
from ecrcache.models.lifecycle import LifecycleSpec
from ecrcache.models.observed import AppliedFingerprints, Aspect, DesiredRule, ObservedRepository
from ecrcache.models.rule import RuleSpec
from tests.samples import ORG_PULL
from tests.unit.engine.planner_support import (
    DENY_DELETE,
    KEEP_10,
    KEEP_20,
    converged,
    converged_repo,
    desired,
    details_of,
    kinds,
    only,
    owned,
    repo,
    repository_arn,
    rule_of,
    spec,
)

pytestmark = pytest.mark.unit

NGINX = "quay/library/nginx"
FULL = spec(lifecycle=KEEP_10, policy=ORG_PULL, tags={"team": "platform"})
BARE = spec()
LIFECYCLE_TEXT = LifecycleSpec.model_validate(KEEP_10).render_text()
OTHER_LIFECYCLE_TEXT = LifecycleSpec.model_validate(KEEP_20).render_text()
POLICY_TEXT = json.dumps(ORG_PULL)


def run(rule: RuleSpec, *repositories: ObservedRepository, deep: bool = True, prefix: str = "quay") -> Plan:
    """Plan one converged, owned rule with ``repositories`` under it."""
    rules = [desired(prefix, rule)]
    return plan_region(rules, [], converged(rules, repositories), owned(prefix), deep=deep)


def repo_kinds(found: Plan) -> list[str]:
    return [action.kind.value for action in found.actions]


# --------------------------------------------------------------------------------------------------
# Converged repositories


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "fast"])
@pytest.mark.parametrize("rule", [FULL, BARE, spec(mutability="IMMUTABLE_WITH_EXCLUSION", exclusions=["latest"])])
def test_plan_region_converged_repository_needs_nothing(rule: RuleSpec, deep: bool) -> None:
    assert run(rule, converged_repo(NGINX, rule, deep=deep)).is_empty


def test_plan_region_extra_tags_on_a_repository_are_not_drift() -> None:
    # GIVEN a repository with the rule's tags plus a cost-allocation tag the platform team added
    extra = converged_repo(NGINX, FULL).model_copy(update={"details": details_of(FULL, **{"cost-center": "42"})})
    assert run(FULL, extra).is_empty


def test_plan_region_equivalent_policy_texts_are_not_drift() -> None:
    # GIVEN the policies in another formatting and key order
    reordered_policy = json.dumps({"Statement": ORG_PULL["Statement"][0], "Version": "2012-10-17"}, indent=1)
    reordered_lifecycle = json.dumps(json.loads(LIFECYCLE_TEXT), indent=4)
    details = details_of(FULL).model_copy(
        update={"repository_policy": reordered_policy, "lifecycle_policy": reordered_lifecycle}
    )
    assert run(FULL, converged_repo(NGINX, FULL).model_copy(update={"details": details})).is_empty


def test_plan_region_rule_without_settings_leaves_foreign_policies_alone() -> None:
    # GIVEN a repository with someone's lifecycle and repository policy, no record of ecrcache applying any
    foreign = repo(NGINX, details=details_of(FULL))
    # WHEN its rule sets none THEN nothing happens (never delete what ecrcache did not apply)
    assert run(BARE, foreign).is_empty


# --------------------------------------------------------------------------------------------------
# Deep read: each aspect


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(None, ["put_lifecycle_policy"], id="missing"),
        pytest.param(OTHER_LIFECYCLE_TEXT, ["put_lifecycle_policy"], id="different"),
        pytest.param(
            '{"rules": "written by hand, not ECR grammar"}' + " " * 80, ["put_lifecycle_policy"], id="unparsable"
        ),
        pytest.param(LIFECYCLE_TEXT, [], id="same"),
    ],
)
def test_plan_region_deep_lifecycle_policy(observed: str | None, expected: list[str]) -> None:
    rule = spec(lifecycle=KEEP_10)
    found = run(
        rule,
        converged_repo(NGINX, rule).model_copy(
            update={"details": details_of(rule).model_copy(update={"lifecycle_policy": observed})}
        ),
    )
    assert repo_kinds(found) == expected


def test_plan_region_put_lifecycle_policy_request_and_record() -> None:
    rule = spec(lifecycle=KEEP_10)
    found = run(rule, repo(NGINX, details=details_of(BARE), applied=desired_fingerprints(rule)))
    assert only(found, "put_lifecycle_policy") == {"repositoryName": NGINX, "lifecyclePolicyText": LIFECYCLE_TEXT}
    action = found.actions[0]
    assert action.before == {"lifecyclePolicyText": None}
    assert action.fingerprints == {Aspect.LIFECYCLE: lifecycle_fingerprint(LIFECYCLE_TEXT)}


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(None, ["set_repository_policy"], id="missing"),
        pytest.param(json.dumps(DENY_DELETE), ["set_repository_policy"], id="different"),
        pytest.param("not json", ["set_repository_policy"], id="unparsable"),
        pytest.param(json.dumps({"Statement": ORG_PULL["Statement"][0], "Version": "2012-10-17"}), [], id="same"),
    ],
)
def test_plan_region_deep_repository_policy(observed: str | None, expected: list[str]) -> None:
    rule = spec(policy=ORG_PULL)
    details = details_of(rule).model_copy(update={"repository_policy": observed})
    assert repo_kinds(run(rule, converged_repo(NGINX, rule).model_copy(update={"details": details}))) == expected


def test_plan_region_set_repository_policy_request() -> None:
    rule = spec(policy=ORG_PULL)
    found = run(rule, repo(NGINX, details=details_of(BARE), applied=desired_fingerprints(rule)))
    assert only(found, "set_repository_policy") == {
        "repositoryName": NGINX,
        "policyText": rule.repository.policy_text(),
    }


@pytest.mark.parametrize(
    ("observed", "sent"),
    [
        pytest.param({}, {"team": "platform", "env": "prod"}, id="missing"),
        pytest.param({"team": "platform"}, {"env": "prod"}, id="one missing"),
        pytest.param({"team": "other", "env": "prod", "x": "y"}, {"team": "platform"}, id="one different"),
    ],
)
def test_plan_region_tag_repository_sends_only_missing_or_different_keys(
    observed: dict[str, str], sent: dict[str, str]
) -> None:
    rule = spec(tags={"team": "platform", "env": "prod"})
    details = details_of(rule).model_copy(update={"tags": observed})
    found = run(rule, repo(NGINX, details=details, applied=desired_fingerprints(rule)))
    assert only(found, "tag_repository") == {
        "resourceArn": repository_arn(NGINX),
        "tags": [{"Key": k, "Value": v} for k, v in sorted(sent.items())],
    }
    assert found.actions[0].fingerprints == {Aspect.TAGS: tags_fingerprint({"team": "platform", "env": "prod"})}


def test_plan_region_removing_tags_from_the_rule_untags_the_keys_ecrcache_applied() -> None:
    # GIVEN a repository tagged by ecrcache (team) and by hand (cost-center), and a rule that no longer sets tags
    tagged = spec(tags={"team": "platform"})
    found = run(
        BARE, repo(NGINX, details=details_of(tagged, **{"cost-center": "42"}), applied=desired_fingerprints(tagged))
    )
    # THEN only ecrcache's key is removed, and the record no longer holds tags
    assert repo_kinds(found) == ["untag_repository"]
    assert only(found, "untag_repository") == {"resourceArn": repository_arn(NGINX), "tagKeys": ["team"]}
    assert found.actions[0].fingerprints == {Aspect.TAGS: None}
    assert found.actions[0].tag_keys == {"team": False}


@pytest.mark.parametrize(
    ("mutability", "exclusions", "expected"),
    [
        pytest.param("MUTABLE", (), ["put_image_tag_mutability"], id="mutable"),
        pytest.param("IMMUTABLE", (), ["put_image_tag_mutability"], id="immutable"),
        pytest.param("IMMUTABLE_WITH_EXCLUSION", ("latest",), ["put_image_tag_mutability"], id="other filters"),
        pytest.param("IMMUTABLE_WITH_EXCLUSION", ("latest", "*-dev"), [], id="same filters"),
        pytest.param("IMMUTABLE_WITH_EXCLUSION", ("*-dev", "latest"), [], id="same filters, other order"),
    ],
)
def test_plan_region_tag_mutability_is_compared_directly(
    mutability: str, exclusions: tuple[str, ...], expected: list[str]
) -> None:
    rule = spec(mutability="IMMUTABLE_WITH_EXCLUSION", exclusions=["latest", "*-dev"])
    for deep in (True, False):
        observed = converged_repo(NGINX, rule, deep=deep).model_copy(
            update={"image_tag_mutability": mutability, "tag_mutability_exclusions": exclusions}
        )
        assert repo_kinds(run(rule, observed)) == expected


def test_plan_region_put_image_tag_mutability_request() -> None:
    with_filters = spec(mutability="IMMUTABLE_WITH_EXCLUSION", exclusions=["latest", "*-dev"])
    assert only(run(with_filters, repo(NGINX, details=details_of(BARE))), "put_image_tag_mutability") == {
        "repositoryName": NGINX,
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": [
            {"filterType": "WILDCARD", "filter": "latest"},
            {"filterType": "WILDCARD", "filter": "*-dev"},
        ],
    }
    observed = repo(NGINX, details=details_of(BARE), mutability="IMMUTABLE")
    assert only(run(BARE, observed), "put_image_tag_mutability") == {
        "repositoryName": NGINX,
        "imageTagMutability": "MUTABLE",
    }


# --------------------------------------------------------------------------------------------------
# Deleting what ecrcache applied


OURS = AppliedFingerprints(lifecycle=lifecycle_fingerprint(LIFECYCLE_TEXT))


@pytest.mark.parametrize(
    ("applied", "observed", "expected"),
    [
        pytest.param(OURS, LIFECYCLE_TEXT, ["delete_lifecycle_policy"], id="ours"),
        pytest.param(OURS, OTHER_LIFECYCLE_TEXT, ["record_applied"], id="changed since: left in place"),
        pytest.param(OURS, None, ["record_applied"], id="already gone"),
        pytest.param(AppliedFingerprints(), LIFECYCLE_TEXT, [], id="never ours"),
        pytest.param(None, LIFECYCLE_TEXT, [], id="no record"),
    ],
)
def test_plan_region_delete_lifecycle_policy_only_when_ecrcache_applied_it(
    applied: AppliedFingerprints | None, observed: str | None, expected: list[str]
) -> None:
    # GIVEN a rule that sets no lifecycle policy (any more) and a repository with one
    details = details_of(BARE).model_copy(update={"lifecycle_policy": observed})
    # WHEN planned THEN it is deleted only if ecrcache applied it and it is unchanged since
    found = run(BARE, repo(NGINX, details=details, applied=applied))
    assert repo_kinds(found) == expected
    if expected == ["record_applied"]:
        assert found.actions[0].fingerprints == {Aspect.LIFECYCLE: None}


def test_plan_region_delete_lifecycle_policy_request_and_record() -> None:
    found = run(BARE, repo(NGINX, details=details_of(spec(lifecycle=KEEP_10)), applied=OURS))
    assert only(found, "delete_lifecycle_policy") == {"repositoryName": NGINX}
    assert found.actions[0].fingerprints == {Aspect.LIFECYCLE: None}
    assert found.actions[0].after is None


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(json.dumps(ORG_PULL, indent=2), ["delete_repository_policy"], id="ours"),
        pytest.param(json.dumps(DENY_DELETE), ["record_applied"], id="changed since: left"),
    ],
)
def test_plan_region_delete_repository_policy_only_when_unchanged(observed: str, expected: list[str]) -> None:
    applied = AppliedFingerprints(policy=policy_fingerprint(json.dumps(ORG_PULL)))
    found = run(
        BARE, repo(NGINX, details=details_of(BARE).model_copy(update={"repository_policy": observed}), applied=applied)
    )
    assert repo_kinds(found) == expected
    if expected == ["delete_repository_policy"]:
        assert found.actions[0].request == {"repositoryName": NGINX}


# --------------------------------------------------------------------------------------------------
# record_applied


def test_plan_region_record_applied_when_ecr_matches_but_nothing_recorded() -> None:
    # GIVEN a repository that already holds the rule's settings, with no record (e.g. set by hand)
    found = run(FULL, repo(NGINX, details=details_of(FULL)))
    # THEN only the fingerprints are recorded: no AWS call
    assert repo_kinds(found) == ["record_applied"]
    action = found.actions[0]
    assert action.request == {}
    assert not action.kind.calls_aws
    wanted = desired_fingerprints(FULL)
    assert action.fingerprints == {
        Aspect.LIFECYCLE: wanted.lifecycle,
        Aspect.POLICY: wanted.policy,
        Aspect.TAGS: wanted.tags,
    }


def test_plan_region_record_applied_covers_only_aspects_without_a_write() -> None:
    # GIVEN matching tags (not recorded) and a missing lifecycle policy
    details = details_of(FULL).model_copy(update={"lifecycle_policy": None})
    found = run(
        FULL, repo(NGINX, details=details, applied=AppliedFingerprints(policy=desired_fingerprints(FULL).policy))
    )
    assert repo_kinds(found) == ["put_lifecycle_policy", "record_applied"]
    assert set(found.actions[1].fingerprints) == {Aspect.TAGS}


# --------------------------------------------------------------------------------------------------
# Fast path: details not read


def test_plan_region_fast_path_with_matching_fingerprints_is_empty() -> None:
    assert run(FULL, converged_repo(NGINX, FULL, deep=False), deep=False).is_empty


def test_plan_region_fast_path_without_a_record_writes_every_aspect_blind() -> None:
    found = run(FULL, repo(NGINX), deep=False)
    assert repo_kinds(found) == ["put_lifecycle_policy", "set_repository_policy", "tag_repository"]
    assert all(action.before is None for action in found.actions)
    assert "fast resync" in found.actions[0].reason
    assert only(found, "tag_repository")["tags"] == [{"Key": "team", "Value": "platform"}]


@pytest.mark.parametrize(
    ("stale", "expected"),
    [
        (Aspect.LIFECYCLE, ["put_lifecycle_policy"]),
        (Aspect.POLICY, ["set_repository_policy"]),
        (Aspect.TAGS, ["tag_repository"]),
    ],
)
def test_plan_region_fast_path_writes_only_the_stale_aspect(stale: Aspect, expected: list[str]) -> None:
    applied = desired_fingerprints(FULL).model_copy(update={stale.value: "0" * 64})
    found = run(FULL, repo(NGINX, applied=applied), deep=False)
    assert repo_kinds(found) == expected
    assert found.actions[0].fingerprints == {stale: desired_fingerprints(FULL).get(stale)}


def test_plan_region_fast_path_removes_an_applied_policy_blind() -> None:
    applied = AppliedFingerprints(
        lifecycle=lifecycle_fingerprint(LIFECYCLE_TEXT), policy=policy_fingerprint(POLICY_TEXT)
    )
    found = run(BARE, repo(NGINX, applied=applied), deep=False)
    assert repo_kinds(found) == ["delete_lifecycle_policy", "delete_repository_policy"]


def test_plan_region_fast_path_tags_no_longer_set_only_updates_the_record() -> None:
    found = run(BARE, repo(NGINX, applied=AppliedFingerprints(tags=tags_fingerprint({"a": "b"}))), deep=False)
    assert repo_kinds(found) == ["record_applied"]


def test_plan_region_fast_path_misses_out_of_band_changes_by_design() -> None:
    # GIVEN drift ECR holds but the record does not show, read fast (details unknown)
    drifted = converged_repo(NGINX, FULL, deep=False)
    # THEN the fast path trusts the record; a deep read would find it
    assert run(FULL, drifted, deep=False).is_empty
    deep = drifted.model_copy(update={"details": details_of(BARE)})
    assert repo_kinds(run(FULL, deep)) == ["put_lifecycle_policy", "set_repository_policy", "tag_repository"]


def test_plan_region_deep_flag_only_changes_reasons() -> None:
    fast = run(FULL, repo(NGINX), deep=False)
    deep = run(FULL, repo(NGINX), deep=True)
    assert [a.model_copy(update={"reason": ""}) for a in fast.actions] == [
        a.model_copy(update={"reason": ""}) for a in deep.actions
    ]
    assert fast.actions[0].reason != deep.actions[0].reason


# --------------------------------------------------------------------------------------------------
# Which rule a repository belongs to


def _plan_many(
    rules: list[DesiredRule],
    names: list[str],
    *,
    retired: list[DesiredRule] | None = None,
    observed_rules: list[DesiredRule] | None = None,
) -> Plan:
    """Plan ``rules`` (converged and owned, with their ECR rules or ``observed_rules``) over bare repositories."""
    repositories = [repo(name, details=details_of(BARE)) for name in names]
    observed = converged(rules, repositories)
    if observed_rules is not None:
        observed = observed.model_copy(update={"rules": {r.prefix: rule_of(r) for r in observed_rules}})
    return plan_region(rules, retired or [], observed, owned(*(r.prefix for r in rules)), deep=True)


def test_plan_region_repository_belongs_to_the_longest_prefix() -> None:
    # GIVEN rules "team" (keep 10) and "team/quay" (keep 20)
    team = desired("team", lifecycle=KEEP_10)
    team_quay = desired("team/quay", lifecycle=KEEP_20)
    found = _plan_many([team, team_quay], ["team/quay/argo", "team/app", "teamx/app", "other/x", "team"])
    # THEN each repository gets its own rule's policy, and repositories outside both get nothing
    puts = {
        a.target: (a.rule_prefix, a.request["lifecyclePolicyText"])
        for a in found.actions
        if a.kind is ActionKind.PUT_LIFECYCLE_POLICY
    }
    assert puts == {
        "team/app": ("team", LIFECYCLE_TEXT),
        "team/quay/argo": ("team/quay", OTHER_LIFECYCLE_TEXT),
    }


def test_plan_region_repository_of_an_unmanaged_rule_is_left_alone() -> None:
    # GIVEN a rule "team/other" in ECR that ecrcache does not manage, under the desired "team"
    team = desired("team", lifecycle=KEEP_10)
    foreign = desired("team/other")
    found = _plan_many([team], ["team/other/x", "team/app"], observed_rules=[team, foreign])
    assert kinds(found) == [("put_lifecycle_policy", "team/app")]


def test_plan_region_repository_of_a_retired_rule_is_left_alone() -> None:
    team = desired("team", lifecycle=KEEP_10)
    found = _plan_many([team], ["team/quay/x"], retired=[desired("team/quay")])
    assert found.is_empty


def test_plan_region_repository_of_a_blocked_rule_is_left_alone() -> None:
    team = desired("team", lifecycle=KEEP_10)
    blocked = desired("team/hub", kind="docker-hub").model_copy(update={"credential_arn": None})
    found = plan_region(
        [team, blocked], [], converged([team], [repo("team/hub/library/nginx")]), owned("team"), deep=True
    )
    assert [b.prefix for b in found.blocked] == ["team/hub"]
    assert not [a for a in found.actions if a.kind.scope == "repository"]


def test_plan_region_root_rule_does_not_patch_repositories() -> None:
    # GIVEN a ROOT rule with a lifecycle policy and ordinary-looking repositories
    root = desired("ROOT", lifecycle=KEEP_10)
    found = _plan_many([root], ["nginx/x", "library/nginx"])
    # THEN no repository is touched, and one note explains why
    assert found.is_empty
    assert [(n.prefix, n.message) for n in found.notes] == [("ROOT", ROOT_RULE_NOTE)]
    assert found.blocked == ()


def test_plan_region_root_rule_does_not_take_repositories_from_other_rules() -> None:
    root = desired("ROOT")
    quay = desired("quay", lifecycle=KEEP_10)
    found = _plan_many([root, quay], ["quay/x", "y/z"])
    assert [a.target for a in found.actions] == ["quay/x"]


def test_plan_region_repositories_are_planned_in_name_order() -> None:
    rule = desired("quay", lifecycle=KEEP_10)
    found = _plan_many([rule], ["quay/c", "quay/a", "quay/b"])
    assert [a.target for a in found.actions] == ["quay/a", "quay/b", "quay/c"]

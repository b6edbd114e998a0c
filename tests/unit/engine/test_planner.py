"""The planner for rules and templates: each action kind for exactly its situation, and nothing else.

Repository settings are in ``test_planner_repositories.py``; properties in ``test_planner_properties.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from ecrcache.engine.plan import ActionKind, Blocked, Note, Plan, PlannedAction, Unmanaged
from ecrcache.engine.planner import ROOT_RULE_NOTE, plan, plan_region
from ecrcache.models.observed import DesiredRule, ObservedRegion, ObservedTemplate, Ownership
from tests.samples import ORG_PULL
from tests.unit.engine.planner_support import (
    CREATION_ROLE,
    ECR_URL_2,
    HUB_ARN,
    HUB_ARN_ROTATED,
    KEEP_10,
    KEEP_20,
    REGION,
    UPSTREAM_ROLE,
    UPSTREAM_ROLE_2,
    converged,
    desired,
    kinds,
    only,
    owned,
    region,
    rule_of,
    spec,
    template_of,
)

pytestmark = pytest.mark.unit

QUAY = desired("quay")
QUAY_ADOPT = desired("quay", adopt=True)
HUB = desired("docker-hub", kind="docker-hub")
ECR = desired("mirror", kind="ecr", custom_role_arn=UPSTREAM_ROLE)


def run(
    rules: Sequence[DesiredRule],
    observed: ObservedRegion,
    ownership: Ownership | None = None,
    retired: Sequence[DesiredRule] = (),
) -> Plan:
    return plan_region(rules, retired, observed, ownership or Ownership(), deep=True)


@dataclass(frozen=True)
class Situation:
    """Desired and observed state, and exactly the ``(kind, target)`` pairs expected."""

    rules: Sequence[DesiredRule]
    observed: ObservedRegion
    ownership: Ownership
    expected: list[tuple[str, str]]
    retired: Sequence[DesiredRule] = ()


def _situations() -> dict[str, Situation]:
    hub_rotated = desired("docker-hub", kind="docker-hub", arn=HUB_ARN_ROTATED)
    ecr_role_2 = desired("mirror", kind="ecr", custom_role_arn=UPSTREAM_ROLE_2)
    ecr_no_role = desired("mirror", kind="ecr")
    ecr_other_url = desired("mirror", kind="ecr", upstream_url=ECR_URL_2, custom_role_arn=UPSTREAM_ROLE)
    quay_team = desired("quay", upstream_repository_prefix="team")
    quay_keep_20 = desired("quay", lifecycle=KEEP_20)
    quay_delete = desired("quay", deletion_policy="delete")
    quay_retain = desired("quay", deletion_policy="retain")
    return {
        "nothing observed": Situation(
            [QUAY], region(), Ownership(), [("create_rule", "quay"), ("create_template", "quay")]
        ),
        "converged and owned": Situation(
            [QUAY, HUB, ECR], converged([QUAY, HUB, ECR]), owned("quay", "docker-hub", "mirror"), []
        ),
        "rule exists, template missing": Situation(
            [QUAY], region([rule_of(QUAY)]), owned("quay"), [("create_template", "quay")]
        ),
        "identical rule not owned, adopt": Situation(
            [QUAY_ADOPT], converged([QUAY]), Ownership(templates=frozenset({"quay"})), [("adopt_rule", "quay")]
        ),
        "identical template not owned, adopt": Situation(
            [QUAY_ADOPT], converged([QUAY]), Ownership(rules=frozenset({"quay"})), [("adopt_template", "quay")]
        ),
        "identical rule not owned, no adopt: blocked": Situation(
            [QUAY], converged([QUAY]), Ownership(templates=frozenset({"quay"})), []
        ),
        "identical template not owned, no adopt: blocked": Situation(
            [QUAY], converged([QUAY]), Ownership(rules=frozenset({"quay"})), []
        ),
        "credential rotated to another secret": Situation(
            [hub_rotated], converged([HUB]), owned("docker-hub"), [("update_rule", "docker-hub")]
        ),
        "upstream role changed": Situation(
            [ecr_role_2], converged([ECR]), owned("mirror"), [("update_rule", "mirror")]
        ),
        "upstream role removed": Situation(
            [ecr_no_role], converged([ECR]), owned("mirror"), [("replace_rule", "mirror")]
        ),
        "upstream URL changed": Situation(
            [ecr_other_url], converged([ECR]), owned("mirror"), [("replace_rule", "mirror")]
        ),
        "upstream repository prefix changed": Situation(
            [quay_team], converged([QUAY]), owned("quay"), [("replace_rule", "quay")]
        ),
        "upstream registry changed": Situation(
            [desired("quay", kind="ecr-public")], converged([QUAY]), owned("quay"), [("replace_rule", "quay")]
        ),
        "template lifecycle changed": Situation(
            [quay_keep_20],
            converged([desired("quay", lifecycle=KEEP_10)]),
            owned("quay"),
            [("update_template", "quay")],
        ),
        "retired, delete, owned": Situation(
            [],
            converged([quay_delete]),
            owned("quay"),
            [("delete_rule", "quay"), ("delete_template", "quay")],
            [quay_delete],
        ),
        "retired, delete, only the rule owned": Situation(
            [],
            converged([quay_delete]),
            Ownership(rules=frozenset({"quay"})),
            [("delete_rule", "quay")],
            [quay_delete],
        ),
        "retired, delete, not owned": Situation([], converged([quay_delete]), Ownership(), [], [quay_delete]),
        "retired, retain, owned": Situation([], converged([quay_retain]), owned("quay"), [], [quay_retain]),
        "retired, delete, already gone": Situation([], region(), owned("quay"), [], [quay_delete]),
        "retired but desired again": Situation([QUAY], converged([QUAY]), owned("quay"), [], [quay_delete]),
        "unmanaged rule and template": Situation([], converged([QUAY]), Ownership(), []),
    }


SITUATIONS = _situations()


@pytest.mark.parametrize("name", list(SITUATIONS))
def test_plan_region_plans_exactly_the_actions_for_the_situation(name: str) -> None:
    # GIVEN desired and observed state WHEN planned THEN exactly the expected actions, in order
    situation = SITUATIONS[name]
    found = run(situation.rules, situation.observed, situation.ownership, situation.retired)
    assert kinds(found) == situation.expected


@pytest.mark.parametrize("kind", [k for k in ActionKind if k.scope in ("rule", "template")])
def test_plan_region_every_rule_and_template_kind_has_a_situation(kind: ActionKind) -> None:
    # The table above is complete: each rule/template action kind is planned in some situation.
    assert any(kind.value in {k for k, _ in s.expected} for s in SITUATIONS.values())


# --------------------------------------------------------------------------------------------------
# Rules: requests and reasons


def test_plan_region_create_rule_request_is_the_rule_spec_request() -> None:
    found = run([HUB], region())
    assert only(found, "create_rule") == dict(HUB.spec.pull_through_cache_rule_request("docker-hub", HUB_ARN))
    assert only(found, "create_template") == dict(HUB.spec.creation_template_request("docker-hub"))


def test_plan_region_create_rule_has_no_before_and_the_desired_after() -> None:
    action = run([QUAY], region()).actions[0]
    assert action.before is None
    assert action.after is not None
    assert action.after["upstream_registry_url"] == "quay.io"


def test_plan_region_update_rule_sends_only_the_mutable_fields() -> None:
    # GIVEN a rule whose secret ARN changed WHEN planned THEN UpdatePullThroughCacheRule kwargs
    rotated = desired("docker-hub", kind="docker-hub", arn=HUB_ARN_ROTATED)
    found = run([rotated], converged([HUB]), owned("docker-hub"))
    assert only(found, "update_rule") == {"ecrRepositoryPrefix": "docker-hub", "credentialArn": HUB_ARN_ROTATED}
    assert "credential_arn" in found.actions[0].reason


def test_plan_region_update_rule_sends_the_role_for_ecr_upstreams() -> None:
    changed = desired("mirror", kind="ecr", custom_role_arn=UPSTREAM_ROLE_2)
    found = run([changed], converged([ECR]), owned("mirror"))
    assert only(found, "update_rule") == {"ecrRepositoryPrefix": "mirror", "customRoleArn": UPSTREAM_ROLE_2}


@pytest.mark.parametrize(
    ("new", "field"),
    [
        (desired("mirror", kind="ecr", upstream_url=ECR_URL_2, custom_role_arn=UPSTREAM_ROLE), "upstream_registry_url"),
        (
            desired("mirror", kind="ecr", upstream_repository_prefix="base", custom_role_arn=UPSTREAM_ROLE),
            "upstream_repository_prefix",
        ),
        (desired("mirror", kind="ecr"), "cannot clear custom_role_arn"),
    ],
)
def test_plan_region_replace_rule_carries_both_sides(new: DesiredRule, field: str) -> None:
    # GIVEN a change UpdatePullThroughCacheRule cannot make WHEN planned THEN one replace action
    found = run([new], converged([ECR]), owned("mirror"))
    action = found.actions[0]
    assert action.kind is ActionKind.REPLACE_RULE
    assert action.request == {
        "delete": {"ecrRepositoryPrefix": "mirror"},
        "create": dict(new.spec.pull_through_cache_rule_request("mirror", None)),
    }
    assert action.before is not None
    assert action.after is not None
    assert action.before != action.after
    assert field in action.reason


def test_plan_region_rule_with_defaults_spelled_out_is_not_drift() -> None:
    # GIVEN ECR describing a rule with ROOT upstream prefix and no upstreamRegistry
    observed = rule_of(QUAY).model_copy(update={"upstream_registry": None, "upstream_repository_prefix": "ROOT"})
    found = run([QUAY], region([observed], [template_of(QUAY)]), owned("quay"))
    assert found.is_empty


def test_plan_region_takeover_of_a_different_unowned_rule_says_so() -> None:
    # GIVEN a rule at the desired prefix that ecrcache did not create and that differs, and adopt: true
    rotated = desired("docker-hub", kind="docker-hub", arn=HUB_ARN_ROTATED, adopt=True)
    found = run([rotated], converged([HUB]), Ownership(templates=frozenset({"docker-hub"})))
    # THEN it is updated (not created: that would fail with AlreadyExists) and the reason says so
    assert kinds(found) == [("update_rule", "docker-hub")]
    assert "takes over an existing rule" in found.actions[0].reason


def test_plan_region_adopt_rule_is_not_an_aws_call() -> None:
    found = run([QUAY_ADOPT], converged([QUAY]), Ownership(templates=frozenset({"quay"})))
    action = found.actions[0]
    assert action.kind is ActionKind.ADOPT_RULE
    assert action.request == {}
    assert not action.kind.calls_aws


# --------------------------------------------------------------------------------------------------
# Templates


def test_plan_region_template_update_keeps_other_applied_for_values() -> None:
    # GIVEN a template someone also uses for CREATE_ON_PUSH, with an old lifecycle policy
    old = desired("quay", lifecycle=KEEP_10)
    shared = template_of(old).model_copy(update={"applied_for": ("CREATE_ON_PUSH", "PULL_THROUGH_CACHE")})
    new = desired("quay", lifecycle=KEEP_20)
    # WHEN planned
    found = run([new], region([rule_of(new)], [shared]), owned("quay"))
    # THEN the update sends the union of appliedFor
    request = only(found, "update_template")
    assert request["appliedFor"] == ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"]
    assert request["lifecyclePolicy"] == new.spec.creation_template_request("quay").get("lifecyclePolicy")


def test_plan_region_template_for_other_uses_only_gets_pull_through_cache_added() -> None:
    other = template_of(QUAY).model_copy(update={"applied_for": ("CREATE_ON_PUSH",)})
    found = run([QUAY], region([rule_of(QUAY)], [other]), owned("quay"))
    assert only(found, "update_template")["appliedFor"] == ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"]
    assert "applies_to_pull_through_cache" in found.actions[0].reason


def test_plan_region_template_with_extra_applied_for_and_same_settings_is_not_drift() -> None:
    shared = template_of(QUAY).model_copy(update={"applied_for": ("CREATE_ON_PUSH", "PULL_THROUGH_CACHE")})
    assert run([QUAY], region([rule_of(QUAY)], [shared]), owned("quay")).is_empty


def test_plan_region_template_update_clears_what_the_rule_no_longer_sets() -> None:
    # GIVEN a template with a policy, lifecycle, tags and role, and a rule that sets none of them
    full = desired("quay", lifecycle=KEEP_10, policy=ORG_PULL, tags={"team": "a"})
    found = run([QUAY], region([rule_of(QUAY)], [template_of(full)]), owned("quay"))
    request = only(found, "update_template")
    # THEN the update clears each one explicitly
    assert request["repositoryPolicy"] == ""
    assert request["lifecyclePolicy"] == ""
    assert request["resourceTags"] == []
    assert request["customRoleArn"] == ""


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param({"encryption_type": "AES256", "kms_key": None}, [], id="AES256 spelled out"),
        pytest.param({"encryption_type": None}, [], id="no encryption configuration"),
        pytest.param({"description": "set by hand"}, [], id="description not desired"),
        pytest.param(
            {"tag_mutability_exclusions": ("x",), "image_tag_mutability": "MUTABLE_WITH_EXCLUSION"},
            [("update_template", "quay")],
            id="mutability",
        ),
        pytest.param({"encryption_type": "KMS"}, [("update_template", "quay")], id="KMS"),
        pytest.param({"resource_tags": {"a": "b"}}, [("update_template", "quay")], id="tags"),
        pytest.param({"custom_role_arn": CREATION_ROLE}, [("update_template", "quay")], id="creation role"),
    ],
)
def test_plan_region_template_compares_semantically(
    observed: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    template = template_of(QUAY).model_copy(update=observed)
    assert kinds(run([QUAY], region([rule_of(QUAY)], [template]), owned("quay"))) == expected


def test_plan_region_template_description_is_compared_when_desired() -> None:
    described = desired("quay", description="Quay mirror")
    template = template_of(described).model_copy(update={"description": "old"})
    found = run([described], region([rule_of(described)], [template]), owned("quay"))
    assert only(found, "update_template")["description"] == "Quay mirror"


def test_plan_region_template_policy_in_another_key_order_is_not_drift() -> None:
    with_policy = desired("quay", policy=ORG_PULL)
    reordered = json.dumps({"Statement": ORG_PULL["Statement"][0], "Version": "2012-10-17"}, indent=2)
    template = template_of(with_policy).model_copy(update={"repository_policy": reordered})
    assert run([with_policy], region([rule_of(with_policy)], [template]), owned("quay")).is_empty


def test_plan_region_delete_template_request() -> None:
    retired = desired("quay", deletion_policy="delete")
    found = plan_region([], [retired], converged([retired]), owned("quay"), deep=False)
    assert only(found, "delete_rule") == {"ecrRepositoryPrefix": "quay"}
    assert only(found, "delete_template") == {"prefix": "quay"}
    assert all(action.after is None for action in found.actions)


def test_plan_region_retired_template_shared_with_other_uses_is_left_in_place() -> None:
    # GIVEN a retired rule (delete, owned) whose template someone also uses for CREATE_ON_PUSH
    retired = desired("quay", deletion_policy="delete")
    shared = template_of(retired).model_copy(update={"applied_for": ("CREATE_ON_PUSH", "PULL_THROUGH_CACHE")})
    found = run([], region([rule_of(retired)], [shared]), owned("quay"), [retired])
    # THEN the rule goes, the template stays (deleting it would stop CREATE_ON_PUSH), and that is reported
    assert kinds(found) == [("delete_rule", "quay")]
    assert [(u.kind, u.name) for u in found.unmanaged] == [("template", "quay")]
    assert "CREATE_ON_PUSH" in found.unmanaged[0].reason


# --------------------------------------------------------------------------------------------------
# Unmanaged and retained


def test_plan_region_unmanaged_rules_and_templates_are_reported_never_changed() -> None:
    # GIVEN a rule and template nobody desires and ecrcache does not own
    found = run([QUAY], converged([QUAY, HUB]), owned("quay"))
    # THEN no action touches them, and both are reported
    assert found.is_empty
    assert [(u.kind, u.name) for u in found.unmanaged] == [("rule", "docker-hub"), ("template", "docker-hub")]
    assert "never changed" in found.unmanaged[0].reason


def test_plan_region_owned_but_no_longer_desired_is_reported_as_left_in_place() -> None:
    found = run([], converged([QUAY]), owned("quay"))
    assert found.is_empty
    assert {u.reason for u in found.unmanaged} == {
        "created or adopted by ecrcache but no longer desired: left in place (only a deleted rule with "
        "deletion_policy delete is removed)"
    }


@pytest.mark.parametrize(
    ("deletion", "ownership", "phrase"),
    [
        ("retain", owned("quay"), "deletion_policy retain"),
        ("delete", Ownership(), "never created or adopted"),
        ("retain", Ownership(), "never created or adopted"),
    ],
)
def test_plan_region_retired_rules_kept_are_reported(deletion: str, ownership: Ownership, phrase: str) -> None:
    retired = desired("quay", deletion_policy=deletion)
    found = run([], converged([retired]), ownership, [retired])
    assert found.is_empty
    assert [u.kind for u in found.unmanaged] == ["rule", "template"]
    assert all(phrase in u.reason for u in found.unmanaged)


# --------------------------------------------------------------------------------------------------
# Blocked


def test_plan_region_missing_credential_arn_blocks_the_whole_rule() -> None:
    # GIVEN a rule whose credential's secret ARN could not be resolved, and its ECR rule in place
    blocked = desired("docker-hub", kind="docker-hub").model_copy(update={"credential_arn": None})
    found = run([blocked], converged([HUB]), owned("docker-hub"))
    # THEN nothing is planned, nothing reported unmanaged, and the reason names the secret
    assert found.is_empty
    assert found.unmanaged == ()
    assert [b.prefix for b in found.blocked] == ["docker-hub"]
    assert "ecr-pullthroughcache/hub" in found.blocked[0].reason


def test_plan_region_rule_ecr_would_reject_is_blocked_with_the_field() -> None:
    # ROOT rules cannot map an upstream repository prefix; the spec alone cannot know its prefix
    bad = DesiredRule(prefix="ROOT", spec=spec(upstream_repository_prefix="team"))
    found = run([bad], region())
    assert found.is_empty
    assert "upstream_repository_prefix" in found.blocked[0].reason


def test_plan_region_root_rule_gets_one_note_and_is_not_blocked() -> None:
    root = desired("ROOT")
    found = run([root], region())
    assert kinds(found) == [("create_rule", "ROOT"), ("create_template", "ROOT")]
    assert found.notes == (Note(region=REGION, prefix="ROOT", message=ROOT_RULE_NOTE),)
    assert found.blocked == ()


def test_plan_region_rejects_a_prefix_listed_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        run([QUAY, desired("quay", lifecycle=KEEP_10)], region())


# --------------------------------------------------------------------------------------------------
# The plan value


def _action(kind: ActionKind, target: str, region_name: str = REGION) -> PlannedAction:
    return PlannedAction(kind=kind, region=region_name, target=target, rule_prefix=target, reason="r")


def test_plan_orders_by_region_scope_target_and_kind() -> None:
    # GIVEN actions in a scrambled order WHEN made into a plan THEN sorted
    scrambled = (
        _action(ActionKind.RECORD_APPLIED, "a/x"),
        _action(ActionKind.PUT_LIFECYCLE_POLICY, "a/x"),
        _action(ActionKind.CREATE_TEMPLATE, "a"),
        _action(ActionKind.CREATE_RULE, "b", "eu-west-1"),
        _action(ActionKind.CREATE_RULE, "b"),
        _action(ActionKind.CREATE_RULE, "a"),
    )
    found = Plan(actions=scrambled)
    assert [(a.region, a.kind.value, a.target) for a in found.actions] == [
        ("eu-west-1", "create_rule", "b"),
        (REGION, "create_rule", "a"),
        (REGION, "create_rule", "b"),
        (REGION, "create_template", "a"),
        (REGION, "put_lifecycle_policy", "a/x"),
        (REGION, "record_applied", "a/x"),
    ]


def test_plan_is_empty_ignores_reports() -> None:
    reports = Plan(
        unmanaged=(Unmanaged(kind="rule", region=REGION, name="x", reason="r"),),
        blocked=(Blocked(region=REGION, prefix="y", reason="r"),),
    )
    assert reports.is_empty
    assert not Plan(actions=(_action(ActionKind.ADOPT_RULE, "a"),)).is_empty


def test_plan_summary_counts_kinds_and_reports() -> None:
    found = Plan(
        actions=(
            _action(ActionKind.CREATE_RULE, "a"),
            _action(ActionKind.CREATE_RULE, "b"),
            _action(ActionKind.TAG_REPOSITORY, "a/x"),
        ),
        blocked=(Blocked(region=REGION, prefix="y", reason="r"),),
    )
    assert found.summary() == {"create_rule": 2, "tag_repository": 1, "blocked": 1}
    assert Plan().summary() == {}


def test_plan_is_json_serialisable_and_round_trips() -> None:
    # GIVEN a plan with every kind of content
    full = desired("quay", lifecycle=KEEP_10, policy=ORG_PULL, tags={"t": "v"})
    found = run([full, desired("ROOT")], converged([HUB]))
    # WHEN dumped as JSON THEN it loads back to an equal plan
    dumped = json.dumps(found.model_dump(mode="json"))
    assert Plan.model_validate(json.loads(dumped)) == found


def test_plan_merge_keeps_everything_sorted() -> None:
    first = Plan(actions=(_action(ActionKind.CREATE_RULE, "b"),))
    second = Plan(actions=(_action(ActionKind.CREATE_RULE, "a"),))
    assert [a.target for a in Plan.merge([first, second]).actions] == ["a", "b"]


@pytest.mark.parametrize(
    ("kind", "scope", "calls_aws"),
    [
        (ActionKind.REPLACE_RULE, "rule", True),
        (ActionKind.ADOPT_TEMPLATE, "template", False),
        (ActionKind.TAG_REPOSITORY, "repository", True),
        (ActionKind.RECORD_APPLIED, "repository", False),
    ],
)
def test_action_kind_scope_and_aws_calls(kind: ActionKind, scope: str, calls_aws: bool) -> None:
    assert (kind.scope, kind.calls_aws) == (scope, calls_aws)


# --------------------------------------------------------------------------------------------------
# Several Regions


def test_plan_merges_regions_in_order() -> None:
    found = plan(
        {REGION: [QUAY_ADOPT], "eu-west-1": [QUAY_ADOPT]},
        {},
        {REGION: region(), "eu-west-1": region(name="eu-west-1")},
        {},
    )
    assert [(a.region, a.kind.value) for a in found.actions] == [
        ("eu-west-1", "create_rule"),
        ("eu-west-1", "create_template"),
        (REGION, "create_rule"),
        (REGION, "create_template"),
    ]


def test_plan_refuses_a_region_that_was_not_observed() -> None:
    with pytest.raises(ValueError, match="eu-west-1"):
        plan({"eu-west-1": [QUAY]}, {}, {REGION: region()}, {})


def test_plan_refuses_a_misfiled_observation() -> None:
    with pytest.raises(ValueError, match="wrong Region"):
        plan({}, {}, {"eu-west-1": region()}, {})


def test_plan_uses_each_regions_ownership() -> None:
    found = plan(
        {REGION: [QUAY_ADOPT], "eu-west-1": [QUAY_ADOPT]},
        {},
        {REGION: converged([QUAY]), "eu-west-1": converged([QUAY]).model_copy(update={"region": "eu-west-1"})},
        {REGION: owned("quay")},
    )
    assert [(a.region, a.kind.value) for a in found.actions] == [
        ("eu-west-1", "adopt_rule"),
        ("eu-west-1", "adopt_template"),
    ]


def test_observed_region_keys_must_match_items() -> None:
    with pytest.raises(ValueError, match="keys must be"):
        ObservedRegion(region=REGION, templates={"a": ObservedTemplate(prefix="b")})

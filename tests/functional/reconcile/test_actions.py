"""Every action kind, end to end: API -> stream -> ``lambda_handler`` -> the embedded ECR.

Each test checks the ECR calls the function made (its registry counts them), what ECR holds after,
what the state table records (ownership, conditions), and that the controller's own calls that come
back as CloudTrail events are ignored.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import boto3
import pytest

from ecrcache.engine.plan import ActionKind
from ecrcache.models.observed import Ownership
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import ConditionType, RunStatus
from tests.conftest import REGION
from tests.functional.reconcile.conftest import ALICE, World
from tests.functional.reconcile.support import (
    CREATION_ROLE,
    GOOD_TOKEN,
    Admin,
    Look,
    Principal,
    Reconciler,
    condition,
    failing,
)
from tests.samples import ORG_PULL

pytestmark = pytest.mark.functional

KEEP_10 = {"presets": {"keep_last": 10}}
KEEP_20 = {"presets": {"keep_last": 20}}
BOBS_LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "bob's own",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"},
            }
        ]
    }
)
QUAY_SETTINGS: dict[str, Any] = {
    "upstream_kind": "quay",
    "lifecycle": KEEP_10,
    "repository": {
        "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
        "tag_mutability_exclusions": ["latest"],
        "tags": {"team": "platform", "cost-center": "1234"},
        "policy": ORG_PULL,
        "creation_role_arn": CREATION_ROLE,
    },
}


def _lifecycle_of(spec: dict[str, Any]) -> dict[str, Any]:
    rendered = RuleSpec.model_validate(spec).lifecycle
    assert rendered is not None
    policy: dict[str, Any] = json.loads(rendered.render_text())
    return policy


def _assert_own_events_ignored(controller: Reconciler) -> list[str]:
    """What came back is the controller's own: the template's pattern keeps every event from the function, and
    the code ignores each should it get through. Returns their names."""
    assert controller.deliver_events() == []
    deliveries = controller.deliver_held_back()
    assert all(d.ignored for d in deliveries), [d.envelope["detail"] for d in deliveries if not d.ignored]
    return [str(d.envelope["detail"]["eventName"]) for d in deliveries]


# --------------------------------------------------------------------------------------------------
# Rules


def test_create_rule_creates_rule_and_template_validates_and_records_ownership(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a credential
    arn = alice.put_credential("hub")
    # WHEN a Docker Hub rule using it is PUT and the stream delivered
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    controller.deliver_stream()

    # THEN exactly the rule and its template were created, with the credential's secret ARN
    assert controller.writes() == {"CreatePullThroughCacheRule": 1, "CreateRepositoryCreationTemplate": 1}
    rule = look.rule("docker-hub")
    assert rule is not None
    assert (rule["upstreamRegistryUrl"], rule["credentialArn"]) == ("registry-1.docker.io", arn)
    # THEN ownership is recorded, the rule validated with the upstream, and Synced
    owned = look.owned()
    assert (owned.rules, owned.templates) == (frozenset({"docker-hub"}), frozenset({"docker-hub"}))
    status = look.rule_status("docker-hub")
    assert status is not None
    assert (status.validation.is_valid, status.validation.failure) == (True, None)
    assert condition(status, ConditionType.SYNCED) == (True, "Converged", "")
    assert condition(status, ConditionType.TERMINAL)[0] is False
    assert condition(status, ConditionType.RECOVERABLE)[0] is False
    # THEN its own calls come back and are ignored
    assert sorted(_assert_own_events_ignored(controller)) == [
        "CreatePullThroughCacheRule",
        "CreateRepositoryCreationTemplate",
    ]


def test_update_rule_changes_the_credential_in_place(controller: Reconciler, alice: Admin, look: Look) -> None:
    # GIVEN a converged Docker Hub rule and a second credential
    alice.put_credential("hub")
    ci_arn = alice.put_credential("hub-ci", token=GOOD_TOKEN)
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    controller.converge()
    controller.reset_calls()

    # WHEN the rule is switched to the other credential
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub-ci"})
    outcome = controller.deliver_stream()

    # THEN one UpdatePullThroughCacheRule, no delete / create, the template untouched
    assert outcome.reported_failures == []
    assert controller.writes() == {"UpdatePullThroughCacheRule": 1}
    rule = look.rule("docker-hub")
    assert rule is not None
    assert rule["credentialArn"] == ci_arn
    [run] = [r for r in look.runs() if r.summary.get("update_rule")]
    assert run.summary["update_rule"] == 1
    status = look.rule_status("docker-hub")
    assert status is not None
    assert status.synced
    assert status.validation.is_valid is True
    assert _assert_own_events_ignored(controller) == ["UpdatePullThroughCacheRule"]


def test_replace_rule_when_the_upstream_repository_prefix_changes(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN a converged rule and a repository cached under it
    bob.ecr.create_repository(repositoryName="quay/prometheus/node-exporter")
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.converge()
    controller.reset_calls()

    # WHEN the immutable upstream repository prefix changes
    alice.put_rule("quay", {"upstream_kind": "quay", "upstream_repository_prefix": "prometheus"})
    controller.deliver_stream()

    # THEN the rule is deleted and re-created (one replace action), cached repositories stay
    assert controller.writes() == {"DeletePullThroughCacheRule": 1, "CreatePullThroughCacheRule": 1}
    rule = look.rule("quay")
    assert rule is not None
    assert rule["upstreamRepositoryPrefix"] == "prometheus"
    assert look.ecr.describe_repositories(repositoryNames=["quay/prometheus/node-exporter"])["repositories"]
    assert look.owned().rules == {"quay"}
    status = look.rule_status("quay")
    assert status is not None
    assert status.synced
    assert _assert_own_events_ignored(controller) == ["DeletePullThroughCacheRule", "CreatePullThroughCacheRule"]


def test_deleted_rule_with_deletion_policy_delete_removes_rule_and_template_but_not_repositories(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a converged rule with deletion_policy delete and a repository cached under it
    bob.ecr.create_repository(repositoryName="quay/library/nginx")
    alice.put_rule("quay", {"upstream_kind": "quay", "lifecycle": KEEP_10, "deletion_policy": "delete"})
    controller.converge()
    controller.reset_calls()

    # WHEN the desired rule is deleted
    alice.delete_rule("quay")
    controller.deliver_stream()

    # THEN the ECR rule and template are deleted, ownership dropped; the repository and its policy stay
    assert controller.writes() == {"DeletePullThroughCacheRule": 1, "DeleteRepositoryCreationTemplate": 1}
    assert (look.rule("quay"), look.template("quay")) == (None, None)
    owned = look.owned()
    assert (owned.rules, owned.templates) == (frozenset(), frozenset())
    assert look.lifecycle("quay/library/nginx") is not None
    # THEN nothing is left to do or to report
    plan = world.reconciler.plan()
    assert (plan.actions, plan.unmanaged) == ((), ())
    assert sorted(_assert_own_events_ignored(controller)) == [
        "DeletePullThroughCacheRule",
        "DeleteRepositoryCreationTemplate",
    ]


def test_a_rule_being_deleted_is_not_synced_until_its_deletion_is_verified(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a converged rule with deletion_policy delete, then deleted from the desired state
    alice.put_rule("quay", {"upstream_kind": "quay", "deletion_policy": "delete"})
    controller.converge()
    alice.delete_rule("quay")
    # WHEN ECR throttles the rule's deletion (after botocore's retries)
    with failing(controller.registry(REGION).client, "delete_pull_through_cache_rule", "throttling"):
        controller.resync()
    # THEN the rule's status stays, not Synced, naming the failed deletion, Recoverable
    status = look.rule_status("quay")
    assert status is not None and not status.synced
    synced, recoverable = status.condition(ConditionType.SYNCED), status.condition(ConditionType.RECOVERABLE)
    assert synced is not None and synced.reason == "ApplyFailed"
    assert "delete_rule quay: ThrottlingException" in synced.message
    assert recoverable is not None and recoverable.status
    assert look.rule("quay") is not None
    # WHEN the next resync deletes it THEN the deletion is verified and the status is gone
    controller.resync()
    assert look.rule("quay") is None
    assert look.rule_status("quay") is None


def test_deleted_rule_with_deletion_policy_retain_stays_in_ecr_and_is_no_longer_managed(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a converged rule (deletion_policy defaults to retain) and a repository cached under it
    bob.ecr.create_repository(repositoryName="quay/library/nginx")
    alice.put_rule("quay", {"upstream_kind": "quay", "lifecycle": KEEP_10})
    controller.converge()
    controller.reset_calls()

    # WHEN the desired rule is deleted
    alice.delete_rule("quay")
    controller.deliver_stream()

    # THEN ECR keeps the rule and the template: no write
    assert controller.writes() == {}
    assert look.rule("quay") is not None
    assert look.template("quay") is not None
    # THEN the plan reports both as left in place and no longer managed
    plan = world.reconciler.plan()
    assert plan.actions == ()
    assert [(u.kind, u.name) for u in plan.unmanaged] == [("rule", "quay"), ("template", "quay")]
    assert all("no longer managed" in u.reason for u in plan.unmanaged)

    # WHEN someone changes them afterwards, and the events and a deep resync run
    bob.ecr.update_repository_creation_template(prefix="quay", lifecyclePolicy=BOBS_LIFECYCLE)
    bob.ecr.delete_lifecycle_policy(repositoryName="quay/library/nginx")
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    controller.deliver_events()
    controller.resync("deep")

    # THEN the controller changes nothing back
    assert controller.writes() == {}
    assert look.rule("quay") is None
    template = look.template("quay")
    assert template is not None
    assert json.loads(template["lifecyclePolicy"]) == json.loads(BOBS_LIFECYCLE)
    assert look.lifecycle("quay/library/nginx") is None


# --------------------------------------------------------------------------------------------------
# Creation templates


def test_creation_template_follows_the_rule_create_update_clear(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a rule with a lifecycle: its template carries the rendered policy
    alice.put_rule("quay", {"upstream_kind": "quay", "lifecycle": KEEP_10})
    controller.converge()
    template = look.template("quay")
    assert template is not None
    assert json.loads(template["lifecyclePolicy"]) == _lifecycle_of({"upstream_kind": "quay", "lifecycle": KEEP_10})
    controller.reset_calls()

    # WHEN the lifecycle and the tag mutability change
    changed = {
        "upstream_kind": "quay",
        "lifecycle": KEEP_20,
        "repository": {"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["v*"]},
    }
    alice.put_rule("quay", changed)
    controller.deliver_stream()

    # THEN the template is updated in place, the rule untouched
    assert controller.writes() == {"UpdateRepositoryCreationTemplate": 1}
    template = look.template("quay")
    assert template is not None
    assert json.loads(template["lifecyclePolicy"]) == _lifecycle_of(changed)
    assert template["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    assert template["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "v*"}]

    # WHEN the rule no longer sets a lifecycle
    controller.reset_calls()
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.deliver_stream()

    # THEN the template's lifecycle policy is cleared
    assert controller.writes() == {"UpdateRepositoryCreationTemplate": 1}
    template = look.template("quay")
    assert template is not None
    assert not template.get("lifecyclePolicy")
    assert template["imageTagMutability"] == "MUTABLE"
    assert _assert_own_events_ignored(controller) == ["UpdateRepositoryCreationTemplate"] * 2


# --------------------------------------------------------------------------------------------------
# Repositories already cached under the prefix


def test_settings_are_put_on_repositories_already_cached_under_the_prefix(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN repositories cached before the rule existed, and repositories outside its prefix
    inside = ["quay/library/nginx", "quay/prometheus/node-exporter"]
    outside = ["quaylike/tool", "ghcr/other/image"]
    for name in inside + outside:
        bob.ecr.create_repository(repositoryName=name)
    controller.deliver_events()  # their CreateRepository events: nothing to manage yet

    # WHEN a rule with every repository setting is PUT
    alice.put_rule("quay", QUAY_SETTINGS)
    controller.deliver_stream()

    # THEN each cached repository got each setting, with one write per aspect
    assert controller.writes() == {
        "CreatePullThroughCacheRule": 1,
        "CreateRepositoryCreationTemplate": 1,
        "PutLifecyclePolicy": 2,
        "SetRepositoryPolicy": 2,
        "TagResource": 2,
        "PutImageTagMutability": 2,
    }
    for name in inside:
        assert look.lifecycle(name) == _lifecycle_of(QUAY_SETTINGS)
        assert look.policy(name) == ORG_PULL
        assert look.tags(name) == {"team": "platform", "cost-center": "1234"}
        assert look.mutability(name) == ("IMMUTABLE_WITH_EXCLUSION", ["latest"])
    # THEN repositories outside the prefix are untouched
    for name in outside:
        assert (look.lifecycle(name), look.policy(name), look.tags(name)) == (None, None, {})
        assert look.mutability(name) == ("MUTABLE", [])
    status = look.rule_status("quay")
    assert status is not None
    assert status.synced
    assert status.cached_repositories == 2

    # WHEN the fast resync runs THEN the recorded fingerprints make it write and deep-read nothing
    controller.reset_calls()
    assert controller.resync().status is RunStatus.SUCCEEDED
    assert controller.writes() == {}
    assert not {"GetLifecyclePolicy", "GetRepositoryPolicy", "ListTagsForResource"} & set(controller.calls)


def test_settings_dropped_from_the_rule_are_removed_only_where_the_controller_applied_them(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN a converged rule with lifecycle, policy and tags on a cached repository
    bob.ecr.create_repository(repositoryName="quay/library/nginx")
    alice.put_rule("quay", QUAY_SETTINGS)
    controller.converge()
    # GIVEN a repository cached since, whose lifecycle someone else set
    bob.ecr.create_repository(repositoryName="quay/library/alpine")
    bob.ecr.put_lifecycle_policy(repositoryName="quay/library/alpine", lifecyclePolicyText=BOBS_LIFECYCLE)
    controller.reset_calls()

    # WHEN the rule drops its lifecycle, its policy and a tag
    alice.put_rule(
        "quay",
        {
            "upstream_kind": "quay",
            "repository": {
                "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
                "tag_mutability_exclusions": ["latest"],
                "tags": {"team": "platform"},
                "creation_role_arn": CREATION_ROLE,
            },
        },
    )
    controller.deliver_stream()

    # THEN what the controller applied is deleted (the dropped tag key too); someone else's lifecycle stays
    assert look.lifecycle("quay/library/nginx") is None
    assert look.policy("quay/library/nginx") is None
    assert look.tags("quay/library/nginx") == {"team": "platform"}
    assert look.lifecycle("quay/library/alpine") == json.loads(BOBS_LIFECYCLE)
    writes = controller.writes()
    assert (writes["DeleteLifecyclePolicy"], writes["DeleteRepositoryPolicy"], writes["UntagResource"]) == (1, 1, 1)
    assert writes["UpdateRepositoryCreationTemplate"] == 1
    # THEN the new repository got the rule's tags and mutability (those the rule still sets)
    assert look.tags("quay/library/alpine") == {"team": "platform"}
    assert look.mutability("quay/library/alpine") == ("IMMUTABLE_WITH_EXCLUSION", ["latest"])
    status = look.rule_status("quay")
    assert status is not None
    assert status.synced


def _tagging(tags: dict[str, str]) -> dict[str, Any]:
    return {"upstream_kind": "quay", "repository": {"tags": tags, "creation_role_arn": CREATION_ROLE}}


@pytest.mark.parametrize("depth", ["fast", "deep"])
def test_a_tag_key_dropped_from_the_rule_is_removed_by_a_resync_and_a_key_set_by_hand_stays(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, depth: Literal["fast", "deep"]
) -> None:
    # GIVEN cached repositories the rule tagged with team and env, and a key bob set by hand on one of them
    names = ["quay/library/alpine", "quay/library/nginx"]
    for name in names:
        bob.ecr.create_repository(repositoryName=name)
    alice.put_rule("quay", _tagging({"team": "platform", "env": "prod"}))
    controller.converge()
    [nginx] = bob.ecr.describe_repositories(repositoryNames=[names[1]])["repositories"]
    bob.ecr.tag_resource(resourceArn=nginx["repositoryArn"], tags=[{"Key": "owner", "Value": "bob"}])
    assert [e["detail"]["eventName"] for e in controller.pending_events()] == ["TagResource"]

    # WHEN the rule drops env, and the change is reconciled by the next scheduled resync (not the stream)
    alice.put_rule("quay", _tagging({"team": "platform"}))
    controller.stream.skip()
    controller.reset_calls()
    assert controller.resync(depth).status is RunStatus.SUCCEEDED

    # THEN env is gone from every repository; team and bob's key stay
    assert {name: look.tags(name) for name in names} == {
        names[0]: {"team": "platform"},
        names[1]: {"team": "platform", "owner": "bob"},
    }
    # (the fast path writes the rule's changed tags blind: it does not read them)
    blind = {"TagResource": 2} if depth == "fast" else {}
    assert controller.writes() == {"UntagResource": 2, "UpdateRepositoryCreationTemplate": 1, **blind}
    status = look.rule_status("quay")
    assert status is not None
    assert status.synced
    # THEN its own UntagResource calls come back as CloudTrail events, and are ignored
    assert sorted(_assert_own_events_ignored(controller)) == sorted(
        ["UntagResource"] * 2 + ["UpdateRepositoryCreationTemplate"] + ["TagResource"] * blind.get("TagResource", 0)
    )
    # THEN the next resync, of either depth, has nothing to do
    controller.reset_calls()
    for again in ("fast", "deep"):
        controller.resync(again)
    assert controller.writes() == {}


# --------------------------------------------------------------------------------------------------
# Ownership: adopt, take over, leave alone


def test_identical_rule_and_template_made_by_hand_are_blocked_until_adopt_then_adopted_without_a_write(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a rule and a template someone created by hand, identical to what the rule asks for
    bob.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    bob.ecr.create_repository_creation_template(
        prefix="quay",
        appliedFor=["PULL_THROUGH_CACHE"],
        imageTagMutability="MUTABLE",
        encryptionConfiguration={"encryptionType": "AES256"},
    )
    controller.deliver_events()  # drift events of a prefix nobody manages yet: nothing to do
    assert controller.writes() == {}

    # WHEN the same rule is declared without adopt THEN it is Blocked: not owned, not written, Terminal
    alice.put_rule("quay", {"upstream_kind": "quay"})
    plan = world.reconciler.plan()
    assert plan.actions == ()
    assert [b.prefix for b in plan.blocked] == ["quay"]
    controller.deliver_stream()
    assert controller.writes() == {}
    assert look.owned() == Ownership()
    status = look.rule_status("quay")
    assert status is not None and not status.synced
    conditions = {c.type.value: (c.status, c.reason) for c in status.conditions}
    assert conditions["Terminal"] == (True, "Blocked")

    # WHEN the rule says adopt: true
    alice.put_rule("quay", {"upstream_kind": "quay", "adopt": True})
    plan = world.reconciler.plan()
    assert [a.kind for a in plan.actions] == [ActionKind.ADOPT_RULE, ActionKind.ADOPT_TEMPLATE]
    controller.deliver_stream()

    # THEN both are adopted: recorded as owned, no ECR write, Synced, and nothing left to do
    assert controller.writes() == {}
    owned = look.owned()
    assert (owned.rules, owned.templates) == (frozenset({"quay"}), frozenset({"quay"}))
    [run] = [r for r in look.runs() if r.summary.get("adopt_rule")]
    assert run.summary == {"adopt_rule": 1, "adopt_template": 1, "left_after_verify": 0}
    status = look.rule_status("quay")
    assert status is not None
    assert status.synced
    assert world.reconciler.plan().is_empty


def test_different_rule_made_by_hand_is_taken_over_with_adopt_and_the_plan_says_so(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a hand-made Docker Hub rule using another secret, declared with adopt: true
    old_arn = alice.put_credential("old")
    new_arn = alice.put_credential("hub")
    bob.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=old_arn
    )
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub", "adopt": True})

    # WHEN the plan is read THEN it updates the rule in place and says it takes it over
    [update] = [a for a in world.reconciler.plan().actions if a.kind is ActionKind.UPDATE_RULE]
    assert "takes over an existing rule ecrcache did not create (adopt: true)" in update.reason

    # WHEN the stream is delivered THEN it does, and owns it from then on
    controller.deliver_stream()
    rule = look.rule("docker-hub")
    assert rule is not None
    assert rule["credentialArn"] == new_arn
    assert "docker-hub" in look.owned().rules


def test_unmanaged_rules_and_templates_are_untouched_and_reported_by_plan(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a rule, a template and a cached repository someone manages by hand
    bob.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")
    bob.ecr.create_repository_creation_template(
        prefix="k8s", appliedFor=["PULL_THROUGH_CACHE"], lifecyclePolicy=BOBS_LIFECYCLE
    )
    bob.ecr.create_repository(repositoryName="k8s/pause")
    before = (look.rule("k8s"), look.template("k8s"))
    # GIVEN a managed rule, converged
    alice.put_rule("quay", QUAY_SETTINGS)
    controller.converge()

    # WHEN every trigger runs: events for the hand-made changes, a fast and a deep resync
    controller.deliver_events()
    controller.resync()
    controller.resync("deep")

    # THEN the hand-made rule, template and repository are exactly as they were
    assert (look.rule("k8s"), look.template("k8s")) == before
    assert (look.lifecycle("k8s/pause"), look.policy("k8s/pause"), look.tags("k8s/pause")) == (None, None, {})
    assert "k8s" not in look.owned().rules
    # THEN the plan reports them, with why they are left alone
    plan = world.reconciler.plan()
    assert plan.actions == ()
    assert [(u.kind, u.name) for u in plan.unmanaged] == [("rule", "k8s"), ("template", "k8s")]
    assert all("not created or adopted by ecrcache" in u.reason for u in plan.unmanaged)


def _rules_in(region: str) -> list[str]:
    ecr = boto3.client("ecr", region_name=region)
    return [r["ecrRepositoryPrefix"] for r in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]]


def _status_keys(world: World) -> set[tuple[str, str]]:
    return {(r.region, r.prefix) for r in world.reconciler.status.all_status()}


def test_a_rule_deleted_from_its_only_region_is_deleted_there_and_its_status_goes(
    controller: Reconciler, alice: Admin, world: World
) -> None:
    # GIVEN a converged rule that lives only outside the stack's Region, with deletion_policy delete
    alice.put_rule("quay", {"upstream_kind": "quay", "regions": ["eu-west-1"], "deletion_policy": "delete"})
    controller.converge()
    assert _rules_in("eu-west-1") == ["quay"]
    assert ("eu-west-1", "quay") in _status_keys(world)

    # WHEN the desired rule is deleted (no desired rule names eu-west-1 any more)
    alice.delete_rule("quay")
    controller.deliver_stream()

    # THEN the reconciler still visits eu-west-1 (it has a status there), deletes the ECR rule,
    # and then drops the status, so later runs no longer visit the Region
    assert _rules_in("eu-west-1") == []
    assert ("eu-west-1", "quay") not in _status_keys(world)
    assert world.reconciler.plan().actions == ()


def test_the_status_of_a_retained_rule_goes_with_the_rule(controller: Reconciler, alice: Admin, world: World) -> None:
    # GIVEN a converged rule with the default deletion_policy (retain)
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.converge()
    assert (REGION, "quay") in _status_keys(world)

    # WHEN the desired rule is deleted
    alice.delete_rule("quay")
    controller.deliver_stream()

    # THEN ECR keeps the rule, and no status is reported for a rule that is no longer desired
    assert _rules_in(REGION) == ["quay"]
    assert (REGION, "quay") not in _status_keys(world)


def test_a_rule_moved_to_another_region_leaves_no_status_behind(
    controller: Reconciler, alice: Admin, world: World
) -> None:
    alice.put_rule("quay", {"upstream_kind": "quay", "regions": ["eu-west-1"]})
    controller.converge()
    version = alice.api.get("/v1/rules/quay").etag
    assert version is not None

    response = alice.api.put(
        "/v1/rules/quay", {"upstream_kind": "quay", "regions": ["us-west-2"]}, headers={"If-Match": version}
    )
    assert response.status == 200, response.text
    controller.deliver_stream()

    assert {key for key in _status_keys(world) if key[1] == "quay"} == {("us-west-2", "quay")}
    assert _rules_in("us-west-2") == ["quay"]
    assert _rules_in("eu-west-1") == ["quay"]  # retained there (deletion_policy retain)


def test_a_stored_rule_naming_a_role_outside_the_ecr_role_path_is_blocked_terminal(
    controller: Reconciler, world: World, alice: Admin, look: Look
) -> None:
    # GIVEN a rule stored (before an upgrade, or by another writer) with a creation role at the root path, while the
    # stack's EcrRolePath is /ecrcache/ (its reconciler may pass no other role: iam:PassRole would be denied)
    spec = RuleSpec.model_validate(
        {"upstream_kind": "quay", "repository": {"creation_role_arn": "arn:aws:iam::123456789012:role/creation"}}
    )
    world.desired.put_rule("quay", spec, actor=ALICE)

    # WHEN the reconciler runs
    controller.deliver_stream()

    # THEN nothing is tried in ECR, and the rule is Blocked (Terminal) with a message naming the field and EcrRolePath
    assert controller.writes() == {}
    assert look.rule("quay") is None
    status = look.rule_status("quay")
    synced, terminal = condition(status, ConditionType.SYNCED), condition(status, ConditionType.TERMINAL)
    assert synced[0] is False
    assert terminal[:2] == (True, "Blocked")
    assert "repository.creation_role_arn" in terminal[2]
    assert "IAM path /, outside the stack's EcrRolePath /ecrcache/" in terminal[2]
    # AND GET /v1/plan shows it blocked for that reason
    plan = alice.api.get("/v1/plan").json
    assert [(b["prefix"], "EcrRolePath /ecrcache/" in b["reason"]) for b in plan["blocked"]] == [("quay", True)]


def test_a_stored_rule_naming_another_accounts_role_is_blocked_terminal(
    controller: Reconciler, world: World, look: Look
) -> None:
    # GIVEN a stored rule whose creation role is under EcrRolePath but of another account (PassRole would be denied)
    role = "arn:aws:iam::210987654321:role/ecrcache/creation"
    spec = RuleSpec.model_validate({"upstream_kind": "quay", "repository": {"creation_role_arn": role}})
    world.desired.put_rule("quay", spec, actor=ALICE)
    # WHEN the reconciler runs
    controller.deliver_stream()
    # THEN nothing is tried in ECR, and the rule is Blocked (Terminal) naming the role's account
    assert controller.writes() == {}
    terminal = condition(look.rule_status("quay"), ConditionType.TERMINAL)
    assert terminal[:2] == (True, "Blocked")
    assert f"{role} is a role of account 210987654321 in partition aws" in terminal[2]

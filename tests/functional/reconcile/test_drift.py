"""Drift made out of band, repaired by the CloudTrail event path and by the schedule.

The controller's own ECR calls come back as CloudTrail events too: the embedded AWS names the caller
from its credentials (``userIdentity.arn``), the function compares that with STS
``GetCallerIdentity`` of its own credentials, and ignores its own role's calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from devstack.aws import events
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS
from ecrcache.engine.plan import ActionKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import Scope
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile.conftest import World
from tests.functional.reconcile.support import (
    CREATION_ROLE,
    RECONCILE_WORKER_ROLE,
    RECONCILE_WORKER_SESSION,
    RECONCILER_ROLE,
    RECONCILER_SESSION,
    Admin,
    Look,
    Principal,
    Reconciler,
    clients,
    reconciler_test_session,
    recording,
)

pytestmark = pytest.mark.functional

Path = Literal["event", "schedule"]
BOBS_LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"},
            }
        ]
    }
)
HUB = {"upstream_kind": "docker-hub", "credential": "hub", "lifecycle": {"presets": {"keep_last": 10}}}
QUAY: dict[str, Any] = {
    "upstream_kind": "quay",
    "lifecycle": {"presets": {"keep_last": 10}},
    "repository": {
        "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
        "tag_mutability_exclusions": ["latest"],
        "tags": {"team": "platform"},
        "policy": {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "Pull", "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}],
        },
        "creation_role_arn": CREATION_ROLE,
    },
}
REPOSITORIES = ("quay/library/nginx", "quay/library/alpine", "quay/prometheus/node-exporter")


def _rendered_lifecycle(spec: dict[str, Any]) -> dict[str, Any]:
    lifecycle = RuleSpec.model_validate(spec).lifecycle
    assert lifecycle is not None
    policy: dict[str, Any] = json.loads(lifecycle.render_text())
    return policy


def _repair(controller: Reconciler, path: Path) -> None:
    """Let the drift reach the controller by ``path``: its CloudTrail event, or (events lost) the schedule."""
    if path == "event":
        deliveries = controller.deliver_events()
        assert deliveries, "the drift made no event"
        assert all(d.run.trigger is RunTrigger.CLOUDTRAIL for d in deliveries)
        assert all(d.run.status is RunStatus.SUCCEEDED for d in deliveries)
    else:
        assert controller.pending_events() == []
        run = controller.resync()
        assert run.status is RunStatus.SUCCEEDED


@pytest.fixture
def hub(controller: Reconciler, alice: Admin) -> str:
    """A converged Docker Hub rule (credential ``hub``); returns the credential's secret ARN."""
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", HUB)
    controller.converge()
    controller.reset_calls()
    return arn


@pytest.fixture
def quay(controller: Reconciler, alice: Admin, bob: Principal) -> list[str]:
    """A converged quay rule with every repository setting, on three repositories cached before it."""
    for name in REPOSITORIES:
        bob.ecr.create_repository(repositoryName=name)
    alice.put_rule("quay", QUAY)
    controller.converge()
    controller.reset_calls()
    return list(REPOSITORIES)


def _lose_cloudtrail_events() -> None:
    events.faults.drop(count=None, detail_type=events.CLOUDTRAIL_DETAIL_TYPE)


# --------------------------------------------------------------------------------------------------
# Rules and templates


@dataclass(frozen=True)
class RuleDrift:
    name: str
    make: Callable[[Principal], None]
    repair_writes: dict[str, int]


def _other_secret() -> str:
    value = json.dumps({"username": "bob", "accessToken": "bobs-token"})
    client = clients().secretsmanager
    return client.create_secret(Name="ecr-pullthroughcache/bobs", SecretString=value)["ARN"]


def _delete_rule(bob: Principal) -> None:
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")


def _change_credential(bob: Principal) -> None:
    bob.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub", credentialArn=_other_secret())


def _edit_template(bob: Principal) -> None:
    bob.ecr.update_repository_creation_template(
        prefix="docker-hub", lifecyclePolicy=BOBS_LIFECYCLE, imageTagMutability="IMMUTABLE"
    )


def _delete_template(bob: Principal) -> None:
    bob.ecr.delete_repository_creation_template(prefix="docker-hub")


RULE_DRIFTS = [
    RuleDrift("rule-deleted", _delete_rule, {"CreatePullThroughCacheRule": 1}),
    RuleDrift("credential-changed", _change_credential, {"UpdatePullThroughCacheRule": 1}),
    RuleDrift("template-edited", _edit_template, {"UpdateRepositoryCreationTemplate": 1}),
    RuleDrift("template-deleted", _delete_template, {"CreateRepositoryCreationTemplate": 1}),
]


@pytest.mark.parametrize("path", ["event", "schedule"])
@pytest.mark.parametrize("drift", RULE_DRIFTS, ids=[d.name for d in RULE_DRIFTS])
def test_rule_and_template_drift_is_repaired(  # noqa: PLR0917 - pytest passes fixtures by name
    controller: Reconciler, bob: Principal, look: Look, world: World, hub: str, drift: RuleDrift, path: Path
) -> None:
    # GIVEN a converged rule; for the schedule path, CloudTrail events are lost
    before_rule, before_template = look.rule("docker-hub"), look.template("docker-hub")
    assert before_rule is not None
    assert before_template is not None
    if path == "schedule":
        _lose_cloudtrail_events()

    # WHEN someone changes the rule or its template behind the controller's back
    drift.make(bob)
    assert (look.rule("docker-hub"), look.template("docker-hub")) != (before_rule, before_template)
    # ... and the change reaches the controller
    _repair(controller, path)

    # THEN exactly the repair was written, and ECR holds what the rule asks for again
    assert controller.writes() == drift.repair_writes
    rule, template = look.rule("docker-hub"), look.template("docker-hub")
    assert rule is not None
    assert template is not None
    assert rule["credentialArn"] == hub
    assert json.loads(template["lifecyclePolicy"]) == _rendered_lifecycle(HUB)
    assert template["imageTagMutability"] == "MUTABLE"
    assert world.reconciler.plan().is_empty
    status = look.rule_status("docker-hub")
    assert status is not None
    assert status.synced


# --------------------------------------------------------------------------------------------------
# Settings of cached repositories


def test_fast_resync_reads_no_repository_and_so_misses_a_removed_lifecycle_policy(
    controller: Reconciler, bob: Principal, look: Look, world: World, quay: list[str]
) -> None:
    # GIVEN the lifecycle policy removed from one cached repository, its event lost
    _lose_cloudtrail_events()
    bob.ecr.delete_lifecycle_policy(repositoryName="quay/library/alpine")

    # WHEN the fast resync runs
    run = controller.resync()

    # THEN it made no per-repository read, so it neither saw nor repaired the drift
    assert run.status is RunStatus.SUCCEEDED
    assert not PER_REPOSITORY_READS & set(controller.calls)
    assert controller.writes() == {}
    assert look.lifecycle("quay/library/alpine") is None
    # THEN only a deep plan sees it
    assert world.reconciler.plan().is_empty
    [action] = world.reconciler.plan(Scope(deep=True)).actions
    assert (action.kind, action.target) == (ActionKind.PUT_LIFECYCLE_POLICY, "quay/library/alpine")


def test_deep_resync_repairs_a_removed_lifecycle_policy(
    controller: Reconciler, bob: Principal, look: Look, quay: list[str]
) -> None:
    # GIVEN the lifecycle policy removed from one cached repository, its event lost
    _lose_cloudtrail_events()
    bob.ecr.delete_lifecycle_policy(repositoryName="quay/library/alpine")

    # WHEN the deep resync runs
    with recording(controller.registry(REGION).client, "get_lifecycle_policy") as reads:
        run = controller.resync("deep")

    # THEN it read every cached repository, and put the policy back where it was missing
    assert run.status is RunStatus.SUCCEEDED
    assert {r["repositoryName"] for r in reads} == set(quay)
    assert controller.writes() == {"PutLifecyclePolicy": 1}
    assert look.lifecycle("quay/library/alpine") == _rendered_lifecycle(QUAY)


@dataclass(frozen=True)
class RepositoryDrift:
    name: str
    make: Callable[[Principal, Look], None]
    repair_writes: dict[str, int]


def _delete_lifecycle(bob: Principal, _: Look) -> None:
    bob.ecr.delete_lifecycle_policy(repositoryName="quay/library/alpine")


def _delete_policy(bob: Principal, _: Look) -> None:
    bob.ecr.delete_repository_policy(repositoryName="quay/library/alpine")


def _untag(bob: Principal, look: Look) -> None:
    [repo] = look.ecr.describe_repositories(repositoryNames=["quay/library/alpine"])["repositories"]
    bob.ecr.untag_resource(resourceArn=repo["repositoryArn"], tagKeys=["team"])


def _mutability(bob: Principal, _: Look) -> None:
    bob.ecr.put_image_tag_mutability(repositoryName="quay/library/alpine", imageTagMutability="MUTABLE")


REPOSITORY_DRIFTS = [
    RepositoryDrift("lifecycle-deleted", _delete_lifecycle, {"PutLifecyclePolicy": 1}),
    RepositoryDrift("policy-deleted", _delete_policy, {"SetRepositoryPolicy": 1}),
    RepositoryDrift("tag-removed", _untag, {"TagResource": 1}),
    RepositoryDrift("mutability-changed", _mutability, {"PutImageTagMutability": 1}),
]


@pytest.mark.usefixtures("quay")
@pytest.mark.parametrize("drift", REPOSITORY_DRIFTS, ids=[d.name for d in REPOSITORY_DRIFTS])
def test_cloudtrail_event_naming_a_repository_repairs_it_with_a_deep_read_of_that_repository_only(
    controller: Reconciler, bob: Principal, look: Look, world: World, drift: RepositoryDrift
) -> None:
    # GIVEN one cached repository's setting changed by someone (the embedded AWS records each call's
    # CloudTrail event)
    drift.make(bob, look)

    # WHEN the CloudTrail event reaches the function
    with recording(controller.registry(REGION).client, "get_lifecycle_policy") as reads:
        [delivery] = controller.deliver_events()

    # THEN the run read that repository deeply - and no other - and repaired it
    assert delivery.run.scope == f"{REGION}:fast+1"
    assert {r["repositoryName"] for r in reads} == {"quay/library/alpine"}
    assert controller.writes() == drift.repair_writes
    assert look.lifecycle("quay/library/alpine") == _rendered_lifecycle(QUAY)
    assert look.policy("quay/library/alpine") == QUAY["repository"]["policy"]
    assert look.tags("quay/library/alpine") == {"team": "platform"}
    assert look.mutability("quay/library/alpine") == ("IMMUTABLE_WITH_EXCLUSION", ["latest"])
    assert world.reconciler.plan(Scope(deep=True)).is_empty


# --------------------------------------------------------------------------------------------------
# Whose call was it?


def test_the_controllers_own_calls_come_back_as_events_and_cause_no_reconcile(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN a rule with settings for repositories already cached, delivered by the stream
    for name in REPOSITORIES:
        bob.ecr.create_repository(repositoryName=name)
    controller.deliver_events()
    alice.put_rule("quay", QUAY)
    controller.deliver_stream()
    runs = len(look.runs())
    controller.reset_calls()

    # WHEN the CloudTrail events of its own calls come back
    # THEN the template's pattern keeps them from the function (EcrDrift: anything-but its role's sessions)
    assert controller.deliver_events() == []
    deliveries = controller.deliver_held_back()

    # AND should one get through, each names the function's role session and is ignored: no run, no ECR call
    assert sorted({d.envelope["detail"]["eventName"] for d in deliveries}) == [
        "CreatePullThroughCacheRule",
        "CreateRepositoryCreationTemplate",
        "PutImageTagMutability",
        "PutLifecyclePolicy",
        "SetRepositoryPolicy",
        "TagResource",
    ]
    role = RECONCILER_ROLE.rsplit("/", 1)[1]
    assert {d.caller for d in deliveries} == {f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{RECONCILER_SESSION}"}
    assert all(d.ignored for d in deliveries)
    assert len(look.runs()) == runs
    assert sum(controller.calls.values()) == 0


def _assumed_ecr(role_arn: str, session: str) -> Principal:
    credentials = clients().sts.assume_role(RoleArn=role_arn, RoleSessionName=session)
    keys = credentials["Credentials"]
    client = reconciler_test_session().client(
        "ecr",
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    )
    return Principal(arn=credentials["AssumedRoleUser"]["Arn"], ecr=client)


@pytest.mark.usefixtures("hub")
def test_another_session_of_the_controllers_role_is_recognised_as_its_own(controller: Reconciler, look: Look) -> None:
    # GIVEN another concurrent instance of the function (a second session of its role)
    twin = _assumed_ecr(RECONCILER_ROLE, "ecrcache-ReconcilerFunction-Zz9yX")
    runs = len(look.runs())

    # WHEN it writes to ECR and the event comes back to this instance
    twin.ecr.update_repository_creation_template(prefix="docker-hub", description="written by the twin")
    # THEN the template's pattern keeps it from the function (every session of the role)
    assert controller.deliver_events() == []
    [delivery] = controller.deliver_held_back()

    # AND should it get through, it is the controller's own call: ignored
    assert delivery.caller == twin.arn
    assert delivery.ignored
    assert len(look.runs()) == runs


@pytest.mark.usefixtures("quay")
def test_the_reconcile_workers_writes_come_back_as_events_and_cause_no_reconcile(
    controller: Reconciler, look: Look
) -> None:
    # GIVEN the reconcile worker, in a session of its own role (not the reconciler's), converging a shard
    worker = _assumed_ecr(RECONCILE_WORKER_ROLE, RECONCILE_WORKER_SESSION)
    runs = len(look.runs())
    [repository] = worker.ecr.describe_repositories(repositoryNames=["quay/library/alpine"])["repositories"]

    # WHEN its writes come back as CloudTrail events
    worker.ecr.put_image_tag_mutability(repositoryName="quay/library/alpine", imageTagMutability="MUTABLE")
    worker.ecr.tag_resource(resourceArn=repository["repositoryArn"], tags=[{"Key": "team", "Value": "platform"}])
    # THEN the template's pattern keeps them from the function (EcrDrift: anything-but its role, by session issuer)
    assert controller.deliver_events() == []
    deliveries = controller.deliver_held_back()

    # AND should they get through, they are the controller's own calls (RECONCILE_WORKER_ROLE_ARN): ignored, no run
    assert sorted(d.envelope["detail"]["eventName"] for d in deliveries) == ["PutImageTagMutability", "TagResource"]
    assert {d.caller for d in deliveries} == {worker.arn}
    assert all(d.ignored for d in deliveries)
    assert len(look.runs()) == runs


@pytest.mark.parametrize(
    "who",
    ["iam-user", "other-role", "role-named-like-the-controllers", "default-identity"],
)
@pytest.mark.usefixtures("hub")
def test_calls_by_anyone_else_trigger_a_reconcile(
    controller: Reconciler, bob: Principal, world: World, look: Look, who: str
) -> None:
    # GIVEN someone other than the controller
    if who == "iam-user":
        actor = bob
    elif who == "other-role":
        actor = _assumed_ecr(f"arn:aws:iam::{ACCOUNT_ID}:role/TerraformApply", "ci-pipeline")
    elif who == "role-named-like-the-controllers":
        actor = _assumed_ecr(f"{RECONCILER_ROLE}-admin", "ecrcache-ReconcilerFunction-Ab3dE")
    else:
        actor = Principal(arn=f"arn:aws:sts::{ACCOUNT_ID}:user/moto", ecr=world.ecr)

    # WHEN they delete the rule and the event comes back
    actor.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    [delivery] = controller.deliver_events()

    # THEN it is a reconcile that puts the rule back
    assert delivery.caller == actor.arn
    assert not delivery.ignored
    assert delivery.run.summary.get("create_rule") == 1
    assert look.rule("docker-hub") is not None

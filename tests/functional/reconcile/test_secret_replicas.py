"""One secret per Region (issue 12), on the embedded AWS with two Regions.

ECR reads a rule's secret in the rule's own Region only: a credential's rules in a second Region get
the credential's secret replicated there (Secrets Manager multi-Region secrets, the same name, the
primary's ARN with that Region), and each Region's ECR rule uses its own Region's ARN. A replica no
rule wants goes once no ECR rule there uses it; deleting the credential removes its replicas first.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from devstack.aws import clock, secrets_replication
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import ConditionType
from tests.conftest import REGION
from tests.functional.api.assertions import assert_error
from tests.functional.reconcile.conftest import ALICE, World
from tests.functional.reconcile.support import (
    GOOD_TOKEN,
    Admin,
    Look,
    Principal,
    Reconciler,
    clients,
    condition,
    failing,
    reconciler_test_session,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.functional

OTHER = "eu-west-1"
NAME = "ecr-pullthroughcache/hub"
HUB: dict[str, Any] = {"upstream_kind": "docker-hub", "credential": "hub", "regions": [REGION, OTHER]}


def ecr_in(region: str) -> ECRClient:
    return reconciler_test_session().client("ecr", region_name=region)


def secrets_in(region: str) -> SecretsManagerClient:
    return reconciler_test_session().client("secretsmanager", region_name=region)


def rule_in(region: str, prefix: str = "docker-hub") -> dict[str, Any] | None:
    rules = ecr_in(region).describe_pull_through_cache_rules()["pullThroughCacheRules"]
    return next((dict(r) for r in rules if r["ecrRepositoryPrefix"] == prefix), None)


def replicas(arn: str) -> dict[str, str]:
    status = clients().secretsmanager.describe_secret(SecretId=arn).get("ReplicationStatus", [])
    return {str(r["Region"]): str(r["Status"]) for r in status}


def in_other(arn: str) -> str:
    return arn.replace(f":{REGION}:", f":{OTHER}:")


def desired_hub(world: World, **spec: Any) -> str:
    """Credential ``hub`` and rule ``docker-hub`` on it in both Regions, written in-process; the secret's ARN."""
    credential = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ci"})
    world.desired.put_credential("hub", credential, SecretStr(GOOD_TOKEN), actor=ALICE)
    world.desired.put_rule("docker-hub", RuleSpec.model_validate({**HUB, **spec}), actor=ALICE)
    return clients().secretsmanager.describe_secret(SecretId=NAME)["ARN"]


# --------------------------------------------------------------------------------------------------
# The deployed reconciler


def test_a_rule_in_two_regions_uses_each_regions_secret_and_validates_in_both(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a credential and a rule naming the stack's Region and eu-west-1
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", HUB)
    # WHEN the reconciler converges
    controller.converge()
    # THEN the secret has an in-sync replica in eu-west-1 (same name, the primary's ARN with that Region)
    assert replicas(arn) == {OTHER: "InSync"}
    replica = secrets_in(OTHER).describe_secret(SecretId=NAME)
    assert (replica["Name"], replica["ARN"]) == (NAME, in_other(arn))
    # AND each Region's ECR rule uses its own Region's secret, which ECR reads there: both validate, Synced
    home, other = rule_in(REGION), rule_in(OTHER)
    assert home is not None and other is not None
    assert (home["credentialArn"], other["credentialArn"]) == (arn, in_other(arn))
    for region in (REGION, OTHER):
        status = look.status.rule_status(region, "docker-hub")
        assert status is not None and status.validation.is_valid is True, region
        assert condition(status, ConditionType.SYNCED) == (True, "Converged", "")
    # AND the plan is empty
    assert alice.api.get("/v1/plan").json["actions"] == []


def test_a_new_token_reaches_the_replica_and_ecr_reads_it_there(controller: Reconciler, alice: Admin) -> None:
    # GIVEN a converged rule in two Regions on a token the upstream rejects
    alice.put_credential("hub", token="dckr_pat_expired")
    alice.put_rule("docker-hub", HUB)
    controller.converge()
    assert ecr_in(OTHER).validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")["isValid"] is False
    # WHEN the credential gets a good token (PutSecretValue on the primary: nothing to do for the replica)
    alice.put_credential("hub", token=GOOD_TOKEN)
    # THEN ECR in eu-west-1 reads the new value from its replica
    assert ecr_in(OTHER).validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")["isValid"] is True
    current = secrets_in(OTHER).get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")
    assert json.loads(current["SecretString"])["accessToken"] == GOOD_TOKEN


def test_a_region_dropped_from_the_rule_keeps_its_replica_until_the_ecr_rule_there_goes(
    controller: Reconciler, alice: Admin, bob: Principal
) -> None:
    # GIVEN a converged rule in two Regions, then eu-west-1 dropped from it
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", HUB)
    controller.converge()
    alice.put_rule("docker-hub", {**HUB, "regions": [REGION]})
    controller.converge()
    # THEN ECR keeps the rule there (ecrcache leaves it), so the replica it uses stays, and the plan says why
    assert rule_in(OTHER) is not None
    assert replicas(arn) == {OTHER: "InSync"}
    kept = [u for u in alice.api.get("/v1/plan").json["unmanaged"] if u["kind"] == "secret"]
    assert [(u["region"], u["name"]) for u in kept] == [(OTHER, NAME)]
    # WHEN that ECR rule is deleted by hand, and a resync runs
    ecr_in(OTHER).delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    planned = alice.api.get("/v1/plan").json["actions"]
    assert [(a["kind"], a["region"], a["target"]) for a in planned] == [("remove_replica", OTHER, NAME)]
    controller.invoke({"resync": "fast"})
    # THEN the replica is removed, and it is gone from eu-west-1
    assert replicas(arn) == {}
    assert secrets_in(OTHER).list_secrets()["SecretList"] == []


def test_a_deleted_rules_replica_goes_after_its_ecr_rules_and_the_credential_can_be_deleted(
    controller: Reconciler, alice: Admin
) -> None:
    # GIVEN a converged rule in two Regions with deletion_policy delete, then the rule deleted
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", {**HUB, "deletion_policy": "delete"})
    controller.converge()
    alice.delete_rule("docker-hub")
    controller.converge()
    # THEN the ECR rules and the replica are gone
    assert rule_in(REGION) is None and rule_in(OTHER) is None
    assert replicas(arn) == {}
    # AND the credential deletes cleanly
    assert alice.api.delete("/v1/credentials/hub").status == 204
    assert "DeletedDate" in clients().secretsmanager.describe_secret(SecretId=arn)


def test_deleting_a_credential_removes_its_replicas_first_unless_an_ecr_rule_uses_one(
    controller: Reconciler, alice: Admin
) -> None:
    # GIVEN a converged rule in two Regions kept in ECR when deleted (retain), then the rule deleted
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", HUB)
    controller.converge()
    alice.delete_rule("docker-hub")
    controller.converge()
    # WHEN the credential is deleted THEN it is 409 naming both retained rules, their Regions; nothing goes
    body = assert_error(alice.api.delete("/v1/credentials/hub"), 409, "Conflict")
    assert f"docker-hub ({REGION}, retained" in body["message"] and f"docker-hub ({OTHER}, retained" in body["message"]
    assert replicas(arn) == {OTHER: "InSync"}
    # WHEN both ECR rules are deleted by hand THEN the delete removes the replica and schedules the secret
    for region in (REGION, OTHER):
        ecr_in(region).delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    assert alice.api.delete("/v1/credentials/hub").status == 204
    described = clients().secretsmanager.describe_secret(SecretId=arn)
    assert "DeletedDate" in described and not described.get("ReplicationStatus")
    assert secrets_in(OTHER).list_secrets()["SecretList"] == []


def test_a_credential_delete_that_cannot_remove_the_replicas_deletes_nothing(
    controller: Reconciler, alice: Admin
) -> None:
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", {**HUB, "deletion_policy": "delete"})
    controller.converge()
    alice.delete_rule("docker-hub")
    controller.converge()
    clients().secretsmanager.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": "us-west-2"}])
    from functions.api import app as api_app  # the API function's own Secrets Manager client

    with failing(api_app.service.secrets.client, "remove_regions_from_replication", "throttling"):  # type: ignore[attr-defined]
        response = alice.api.delete("/v1/credentials/hub")
    assert response.status == 503, response.text
    assert "nothing was deleted" in response.json["message"]
    assert "DeletedDate" not in clients().secretsmanager.describe_secret(SecretId=arn)
    assert replicas(arn) == {"us-west-2": "InSync"}


# --------------------------------------------------------------------------------------------------
# Waiting for a replica (in-process, the embedded AWS's clock paces the wait)


def test_the_rule_is_created_in_the_same_run_when_the_replica_syncs_within_the_wait(world: World) -> None:
    # GIVEN replication that takes 5 s
    secrets_replication.settings.replication_delay = timedelta(seconds=5)
    arn = desired_hub(world)
    # WHEN reconciled (the run waits 1 s, 2 s, 4 s... on the embedded clock)
    run = world.reconcile()
    # THEN the replica is in sync and the rule in eu-west-1 uses it
    rule = rule_in(OTHER)
    assert rule is not None and rule["credentialArn"] == in_other(arn)
    assert run.summary["replicate_secret"] == 1


def test_a_rule_waits_pending_while_its_replica_syncs_and_is_created_once_it_is(world: World) -> None:
    # GIVEN replication that takes 10 minutes
    secrets_replication.settings.replication_delay = timedelta(minutes=10)
    arn = desired_hub(world)
    # WHEN reconciled
    world.reconcile()
    # THEN no rule in eu-west-1 yet: Pending (Recoverable, not Terminal), naming the replica and its status
    assert rule_in(OTHER) is None
    status = world.reconciler.status.rule_status(OTHER, "docker-hub")
    synced = condition(status, ConditionType.SYNCED)
    assert synced[:2] == (False, "Pending")
    assert f"the replica of secret {NAME} in {OTHER} ({in_other(arn)})" in synced[2]
    assert "InProgress" in synced[2]
    assert condition(status, ConditionType.TERMINAL)[0] is False
    assert condition(status, ConditionType.RECOVERABLE)[:2] == (True, "Pending")
    # AND the plan says the same
    plan = world.reconciler.plan()
    assert [(b.region, b.pending) for b in plan.blocked] == [(OTHER, True)]
    # WHEN the replication is done by the next resync THEN the rule is created with the replica
    clock.advance(timedelta(minutes=10))
    world.reconcile()
    rule = rule_in(OTHER)
    assert rule is not None and rule["credentialArn"] == in_other(arn)
    assert condition(world.reconciler.status.rule_status(OTHER, "docker-hub"), ConditionType.SYNCED)[:2] == (
        True,
        "Converged",
    )


@pytest.mark.parametrize(("fault", "reason"), [("throttling", "Pending"), ("access-denied", "Blocked")])
def test_a_failing_replicate_call_is_recorded_and_the_rule_says_why(world: World, fault: str, reason: str) -> None:
    desired_hub(world)
    with failing(world.replicas.client, "replicate_secret_to_regions", fault):
        run = world.reconcile()
    assert any("replicate_secret" in e and "injected" in e for e in run.errors)
    assert rule_in(OTHER) is None
    synced = condition(world.reconciler.status.rule_status(OTHER, "docker-hub"), ConditionType.SYNCED)
    assert synced[:2] == (False, reason) and "ReplicateSecretToRegions failed" in synced[2]
    # AND the stack's Region is not held back; the next run replicates and creates the rule
    assert rule_in(REGION) is not None
    world.reconcile()
    assert rule_in(OTHER) is not None


def test_a_failing_describe_holds_back_only_the_other_regions(world: World) -> None:
    desired_hub(world)
    with failing(world.replicas.client, "describe_secret", "server-error"):
        world.reconcile()
    assert rule_in(REGION) is not None and rule_in(OTHER) is None
    synced = condition(world.reconciler.status.rule_status(OTHER, "docker-hub"), ConditionType.SYNCED)
    assert synced[:2] == (False, "Pending") and "could not be read" in synced[2]


def test_a_failing_removal_is_recorded_and_retried(world: World) -> None:
    arn = desired_hub(world, deletion_policy="delete")
    world.reconcile()
    world.desired.delete(ResourceKind.RULE, "docker-hub", actor=ALICE)
    with failing(world.replicas.client, "remove_regions_from_replication", "access-denied"):
        run = world.reconcile()
    assert any("remove_replica" in e and "AccessDeniedException" in e for e in run.errors)
    assert replicas(arn) == {OTHER: "InSync"}
    world.reconcile()
    assert replicas(arn) == {}


def test_a_replica_that_fails_because_the_region_has_a_secret_of_that_name_blocks_the_rule_with_the_reason(
    world: World,
) -> None:
    # GIVEN someone's own secret named ecr-pullthroughcache/hub in eu-west-1
    theirs = secrets_in(OTHER).create_secret(Name=NAME, SecretString="theirs")["ARN"]
    arn = desired_hub(world)
    # WHEN reconciled THEN the replica failed, and the rule there is Blocked with Secrets Manager's message
    world.reconcile()
    assert replicas(arn) == {OTHER: "Failed"}
    status = world.reconciler.status.rule_status(OTHER, "docker-hub")
    synced = condition(status, ConditionType.SYNCED)
    assert synced[:2] == (False, "Blocked") and secrets_replication.EXISTS_MESSAGE in synced[2]
    assert condition(status, ConditionType.TERMINAL)[:2] == (True, "Blocked")
    # AND their secret is untouched; once they delete it, the next run retries the replica and creates the rule
    assert secrets_in(OTHER).get_secret_value(SecretId=theirs)["SecretString"] == "theirs"
    secrets_in(OTHER).delete_secret(SecretId=theirs, ForceDeleteWithoutRecovery=True)
    world.reconcile()
    assert replicas(arn) == {OTHER: "InSync"}
    rule = rule_in(OTHER)
    assert rule is not None and rule["credentialArn"] == in_other(arn)


def test_an_ecr_rule_repointed_at_another_secret_of_its_region_gets_its_replica_back(world: World) -> None:
    # GIVEN a converged rule in two Regions, then the eu-west-1 rule pointed at another secret of that
    # Region by hand (ECR refuses another Region's secret, so that is the drift there can be)
    arn = desired_hub(world)
    world.reconcile()
    other = secrets_in(OTHER).create_secret(Name="ecr-pullthroughcache/by-hand", SecretString="{}")["ARN"]
    ecr_in(OTHER).update_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub", credentialArn=other)
    # WHEN reconciled THEN it uses its Region's replica of the credential's secret again
    world.reconcile()
    rule = rule_in(OTHER)
    assert rule is not None and rule["credentialArn"] == in_other(arn)

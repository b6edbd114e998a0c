"""A credential's secret across deletions, with the reconciler as deployed (issue 10, items 3 and 4).

Deleting a credential schedules its secret ``ecr-pullthroughcache/<name>`` for deletion (a 7-day
recovery window): Secrets Manager then refuses it to everyone, ECR included, until it is restored.
"""

from __future__ import annotations

import pytest

from ecrcache.models.status import ConditionType
from tests.conftest import REGION
from tests.functional.api.assertions import assert_error
from tests.functional.reconcile.support import GOOD_TOKEN, Admin, Look, Principal, Reconciler, clients, condition

pytestmark = pytest.mark.functional

EXPIRED_TOKEN = "dckr_pat_expired"
HUB_RULE = {"upstream_kind": "docker-hub", "credential": "hub", "deletion_policy": "delete"}


def test_credential_recreated_after_delete_makes_its_rule_work_again(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a converged Docker Hub rule on credential "hub", then the rule deleted (deletion_policy
    # delete: its ECR rule goes) and the credential deleted (its secret scheduled for deletion)
    arn = alice.put_credential("hub", token=EXPIRED_TOKEN)
    alice.put_rule("docker-hub", HUB_RULE)
    controller.converge()
    alice.delete_rule("docker-hub")
    controller.converge()
    assert look.rule("docker-hub") is None
    assert alice.api.delete("/v1/credentials/hub").status == 204

    # WHEN the credential is set again with a good token and the rule declared again
    assert alice.put_credential("hub", token=GOOD_TOKEN) == arn
    alice.put_rule("docker-hub", HUB_RULE)
    controller.converge()

    # THEN the secret is restored with the new token current, ECR's rule uses it, and ECR reads it:
    # the rule validates with the upstream and is Synced
    assert "DeletedDate" not in clients().secretsmanager.describe_secret(SecretId="ecr-pullthroughcache/hub")
    rule = look.rule("docker-hub")
    assert rule is not None
    assert rule["credentialArn"] == arn
    status = look.rule_status("docker-hub")
    assert status is not None
    assert (status.validation.is_valid, status.validation.failure) == (True, None)
    assert condition(status, ConditionType.SYNCED) == (True, "Converged", "")


def test_credential_of_a_rule_retained_in_ecr_cannot_be_deleted_until_that_rule_goes(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN a converged rule with deletion_policy retain, then its desired rule deleted: the reconciler
    # leaves the ECR rule in place, still using the credential's secret
    arn = alice.put_credential("hub")
    alice.put_rule("docker-hub", {**HUB_RULE, "deletion_policy": "retain"})
    controller.converge()
    alice.delete_rule("docker-hub")
    controller.converge()
    rule = look.rule("docker-hub")
    assert rule is not None
    assert rule["credentialArn"] == arn

    # WHEN the credential is deleted
    refused = alice.api.delete("/v1/credentials/hub")

    # THEN it is 409 naming the retained rule and its Region, and the secret is not scheduled for deletion
    body = assert_error(refused, 409, "Conflict")
    assert f"docker-hub ({REGION}, retained in ECR by ecrcache" in body["message"]
    assert [d["field"] for d in body["details"]] == ["docker-hub"]
    assert "DeletedDate" not in clients().secretsmanager.describe_secret(SecretId="ecr-pullthroughcache/hub")

    # AND once the ECR rule is deleted (as the message says), the credential can go
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    assert alice.api.delete("/v1/credentials/hub").status == 204


def test_credential_of_a_rule_deleted_with_deletion_policy_delete_can_go_before_the_reconcile(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a converged rule with deletion_policy delete, then its desired rule deleted (not reconciled yet)
    alice.put_credential("hub")
    alice.put_rule("docker-hub", HUB_RULE)
    controller.converge()
    alice.delete_rule("docker-hub")
    assert look.rule("docker-hub") is not None
    # WHEN the credential is deleted at once THEN it goes: the reconciler deletes that ECR rule
    assert alice.api.delete("/v1/credentials/hub").status == 204
    controller.converge()
    assert look.rule("docker-hub") is None

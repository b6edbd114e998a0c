"""The pure planning of credentials' secret replicas (``ecrcache.engine.replicas``) and the planner's
use of a rule's per-Region credential (``credential_wait``)."""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.engine.plan import ActionKind, ActionResult, PlannedAction
from ecrcache.engine.planner import plan_region
from ecrcache.engine.replicas import (
    CredentialSecret,
    credential_in,
    plan_replica_removals,
    plan_replicas,
    replica_regions,
    wanted_regions,
)
from ecrcache.models.observed import CredentialWait, DesiredRule, ObservedRegion, ObservedRule, Ownership
from ecrcache.models.rule import RuleSpec
from ecrcache.models.secret_replica import ObservedSecret, SecretReplica, region_of, replica_arn

pytestmark = pytest.mark.unit

HOME, EU, AP = "us-east-1", "eu-west-1", "ap-south-1"
NAME = "ecr-pullthroughcache/hub"
ARN = f"arn:aws:secretsmanager:{HOME}:123456789012:secret:{NAME}-AbCdEf"
EU_ARN = f"arn:aws:secretsmanager:{EU}:123456789012:secret:{NAME}-AbCdEf"
HUB: dict[str, Any] = {"upstream_kind": "docker-hub", "credential": "hub"}
K = ActionKind


def secret(**replicas: str) -> CredentialSecret:
    """Credential ``hub``'s secret with replicas ``region=status`` (``_`` for ``-`` in Region names)."""
    found = {
        region.replace("_", "-"): SecretReplica(region=region.replace("_", "-"), status=status, message=f"{status}!")
        for region, status in replicas.items()
    }
    return CredentialSecret(
        "hub", ARN, observed=ObservedSecret(name=NAME, arn=ARN, primary_region=HOME, replicas=found)
    )


def rule(credential_arn: str | None = None) -> ObservedRule:
    return ObservedRule(
        prefix="docker-hub",
        upstream_registry_url="registry-1.docker.io",
        upstream_registry="docker-hub",
        credential_arn=credential_arn,
    )


# ---------------------------------------------------------------------------------------------- ARNs


def test_replica_arn_is_the_primarys_with_the_replicas_region() -> None:
    # "The ARN for a replicated secret is the same as the primary secret except for the Region"
    assert replica_arn(ARN, EU) == EU_ARN
    assert replica_arn(ARN, HOME) == ARN
    assert region_of(EU_ARN) == EU
    assert replica_arn(ARN.replace(":aws:", ":aws-cn:"), "cn-north-1").startswith(
        "arn:aws-cn:secretsmanager:cn-north-1:"
    )
    with pytest.raises(ValueError, match="not a Secrets Manager secret ARN"):
        replica_arn("arn:aws:ecr:us-east-1:123456789012:repository/x", EU)


# ---------------------------------------------------------------------------------------------- wanted


def test_wanted_regions_are_the_other_regions_rules_name_per_credential() -> None:
    rules = [
        {**HUB, "regions": [HOME, EU]},
        {**HUB, "regions": [AP]},
        {"upstream_kind": "quay", "regions": [EU]},
        {"upstream_kind": "github-container-registry", "credential": "gh"},
    ]
    assert wanted_regions(rules, HOME) == {"hub": frozenset({EU, AP}), "gh": frozenset()}


# ---------------------------------------------------------------------------------------------- adds


def test_plan_replicas_adds_a_missing_replica_once_and_retries_a_failed_one() -> None:
    # GIVEN replicas: in sync in ap-south-1, failed in eu-west-1, none in us-west-2
    secrets = {"hub": secret(ap_south_1="InSync", eu_west_1="Failed")}
    # WHEN all three are wanted
    actions = plan_replicas(secrets, {"hub": {AP, EU, "us-west-2"}}, home=HOME)
    # THEN us-west-2 is replicated (never overwriting a secret someone keeps there), eu-west-1 retried
    assert [(a.kind, a.region, a.target, a.rule_prefix) for a in actions] == [
        (K.RETRY_REPLICA, EU, NAME, ""),
        (K.REPLICATE_SECRET, "us-west-2", NAME, ""),
    ]
    retry, add = actions
    assert add.request == {"SecretId": ARN, "AddReplicaRegions": [{"Region": "us-west-2"}]}
    assert retry.request == {
        "remove": {"SecretId": ARN, "RemoveReplicaRegions": [EU]},
        "replicate": {"SecretId": ARN, "AddReplicaRegions": [{"Region": EU}]},
    }
    assert "Failed!" in retry.reason
    assert add.after == {"replica": replica_arn(ARN, "us-west-2")}


def test_plan_replicas_keeps_to_the_scope_and_to_primaries_in_the_stack_region() -> None:
    wanted = {"hub": {EU, AP}}
    assert [a.region for a in plan_replicas({"hub": secret()}, wanted, home=HOME, regions={EU})] == [EU]
    elsewhere = CredentialSecret(
        "hub", ARN, observed=ObservedSecret(name=NAME, arn=ARN, primary_region="us-west-2", replicas={})
    )
    deleted = CredentialSecret(
        "hub", ARN, observed=ObservedSecret(name=NAME, arn=ARN, primary_region=HOME, deleted=True)
    )
    for unmanaged in (elsewhere, deleted, CredentialSecret("hub", ARN), CredentialSecret("hub", ARN, error="x")):
        assert plan_replicas({"hub": unmanaged}, wanted, home=HOME) == []


# ---------------------------------------------------------------------------------------------- removals


def test_unwanted_replica_is_removed_where_ecr_was_read_and_nothing_uses_it() -> None:
    secrets = {"hub": secret(eu_west_1="InSync", ap_south_1="InSync")}
    # GIVEN neither Region wanted, ECR read in eu-west-1 only (no rule there)
    actions, kept = plan_replica_removals(secrets, {"hub": frozenset()}, {EU: {}}, home=HOME)
    # THEN eu-west-1's replica goes; ap-south-1's stays (whether a rule uses it is unknown)
    assert [(a.kind, a.region, a.request) for a in actions] == [
        (K.REMOVE_REPLICA, EU, {"SecretId": ARN, "RemoveReplicaRegions": [EU]})
    ]
    assert kept == []


def test_unwanted_replica_an_ecr_rule_uses_is_kept_and_reported() -> None:
    secrets = {"hub": secret(eu_west_1="InSync")}
    actions, kept = plan_replica_removals(secrets, {}, {EU: {"docker-hub": rule(EU_ARN)}}, home=HOME)
    assert actions == []
    [entry] = kept
    assert (entry.kind, entry.region, entry.name) == ("secret", EU, NAME)
    assert "docker-hub" in entry.reason and "kept" in entry.reason


@pytest.mark.parametrize(
    ("kind", "request_"),
    [
        (K.DELETE_RULE, {"ecrRepositoryPrefix": "docker-hub"}),
        (K.UPDATE_RULE, {"ecrRepositoryPrefix": "docker-hub", "credentialArn": "arn:other"}),
        (K.REPLACE_RULE, {"delete": {}, "create": {"ecrRepositoryPrefix": "docker-hub", "credentialArn": "x"}}),
    ],
)
def test_a_rule_the_plan_deletes_or_moves_to_another_secret_does_not_keep_the_replica(
    kind: ActionKind, request_: dict[str, Any]
) -> None:
    planned = PlannedAction(
        kind=kind, region=EU, target="docker-hub", rule_prefix="docker-hub", reason="r", request=request_
    )
    secrets = {"hub": secret(eu_west_1="InSync")}
    actions, kept = plan_replica_removals(secrets, {}, {EU: {"docker-hub": rule(EU_ARN)}}, home=HOME, planned=[planned])
    assert [a.kind for a in actions] == [K.REMOVE_REPLICA] and kept == []


def test_replica_regions_lists_every_replica() -> None:
    assert replica_regions([secret(eu_west_1="InSync"), CredentialSecret("x", ARN)]) == {EU}


# ---------------------------------------------------------------------------------------------- ARN per Region


def test_credential_in_the_stack_region_is_the_recorded_arn_and_never_waits() -> None:
    assert credential_in(HOME, CredentialSecret("hub", ARN, error="throttled"), home=HOME) == (ARN, None)


def test_credential_in_another_region_is_its_in_sync_replica() -> None:
    assert credential_in(EU, secret(eu_west_1="InSync"), home=HOME) == (EU_ARN, None)


@pytest.mark.parametrize(
    ("found", "pending", "words"),
    [
        (secret(), True, "does not exist yet: replicate_secret is planned"),
        (secret(eu_west_1="InProgress"), True, "reports it InProgress; the rule is created once it is InSync"),
        (secret(eu_west_1="Failed"), False, "failed: Failed!"),
        (CredentialSecret("hub", ARN, error="DescribeSecret failed with ThrottlingException"), True, "Throttling"),
        (CredentialSecret("hub", ARN), False, "does not exist in us-east-1 any more"),
    ],
)
def test_credential_in_another_region_waits_naming_the_replica(
    found: CredentialSecret, pending: bool, words: str
) -> None:
    arn, wait = credential_in(EU, found, home=HOME)
    assert arn == EU_ARN
    assert wait is not None and wait.pending is pending
    assert words in wait.reason
    assert NAME in wait.reason


def test_a_failed_replica_action_makes_the_rule_wait_with_its_message() -> None:
    throttled = ActionResult.failure("ThrottlingException", "ReplicateSecretToRegions failed", retryable=True)
    denied = ActionResult.failure("AccessDeniedException", "not allowed", retryable=False)
    for result, pending in ((throttled, True), (denied, False)):
        _, wait = credential_in(EU, secret(), home=HOME, failures={("hub", EU): result})
        assert wait is not None and wait.pending is pending and (result.message or "") in wait.reason


def test_a_secret_that_is_a_replica_of_another_regions_is_not_replicated_from_here() -> None:
    found = CredentialSecret("hub", ARN, observed=ObservedSecret(name=NAME, arn=ARN, primary_region="us-west-2"))
    _, wait = credential_in(EU, found, home=HOME)
    assert wait is not None and not wait.pending and "replica of a secret in us-west-2" in wait.reason


# ---------------------------------------------------------------------------------------------- the planner


def desired(wait: CredentialWait | None, arn: str = EU_ARN) -> DesiredRule:
    return DesiredRule(prefix="docker-hub", spec=RuleSpec.model_validate(HUB), credential_arn=arn, credential_wait=wait)


PENDING = CredentialWait(reason="waiting for the replica", pending=True)


def test_a_rule_waiting_for_its_replica_is_blocked_pending_and_nothing_is_planned_for_it() -> None:
    plan = plan_region([desired(PENDING)], [], ObservedRegion(region=EU), Ownership(), deep=False)
    assert plan.actions == ()
    [blocked] = plan.blocked
    assert (blocked.region, blocked.prefix, blocked.reason, blocked.pending) == (EU, "docker-hub", PENDING.reason, True)


def test_a_failed_replica_blocks_the_rule_for_good_even_when_ecr_has_it() -> None:
    failed = CredentialWait(reason="the replica failed", pending=False)
    observed = ObservedRegion(region=EU, rules={"docker-hub": rule(EU_ARN)})
    plan = plan_region([desired(failed)], [], observed, Ownership(rules=frozenset({"docker-hub"})), deep=False)
    assert [(b.reason, b.pending) for b in plan.blocked] == [("the replica failed", False)]


def test_a_pending_replica_does_not_hold_back_a_rule_ecr_has_with_it_already() -> None:
    observed = ObservedRegion(region=EU, rules={"docker-hub": rule(EU_ARN)})
    plan = plan_region([desired(PENDING)], [], observed, Ownership(rules=frozenset({"docker-hub"})), deep=False)
    assert plan.blocked == ()
    assert [a.kind for a in plan.actions] == [K.CREATE_TEMPLATE]


def test_a_rule_pointing_at_the_stack_regions_secret_is_repointed_at_its_regions_replica() -> None:
    # GIVEN ECR's rule in eu-west-1 on the stack Region's ARN (drift), and the replica in sync
    observed = ObservedRegion(region=EU, rules={"docker-hub": rule(ARN)})
    plan = plan_region([desired(None)], [], observed, Ownership(rules=frozenset({"docker-hub"})), deep=False)
    # THEN the rule is updated to the replica's ARN
    [update] = [a for a in plan.actions if a.kind is K.UPDATE_RULE]
    assert update.request == {"ecrRepositoryPrefix": "docker-hub", "credentialArn": EU_ARN}

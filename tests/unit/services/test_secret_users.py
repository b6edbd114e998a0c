"""EcrSecretUsers and the desired-state service's "still used in ECR" check, on in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from ecrcache.errors import ConflictError, RetryableError
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.observed import ObservedRegion, ObservedRule
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.secret_users import EcrSecretUsers, SecretUse, UseKind, still_used_conflict
from tests.fakes.ecr_registry import MemoryEcrReader
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemorySecretStore, MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
REGION = "us-east-1"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"
CRED = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ci"})
TOKEN = SecretStr("dckr_pat_secret")


def hub_rule(policy: str = "retain") -> RuleSpec:
    return RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub", "deletion_policy": policy})


def ecr_rule(prefix: str, arn: str | None = ARN) -> ObservedRule:
    return ObservedRule(prefix=prefix, upstream_registry_url="registry-1.docker.io", credential_arn=arn)


class World:
    def __init__(self) -> None:
        self.store = MemoryStateStore()
        self.status = MemoryStatusStore()
        self.ecr = MemoryEcrReader(REGION, ObservedRegion(region=REGION))
        self.users = EcrSecretUsers(
            registry=lambda region: self.ecr, status=self.status, desired=self.store, stack_region=REGION
        )
        self.service = DesiredStateService(
            self.store, MemorySecretStore(), clock=lambda: NOW, stack_region=REGION, secret_users=self.users
        )

    def in_ecr(self, *rules: ObservedRule, owned: tuple[str, ...] = ()) -> None:
        self.ecr.state = ObservedRegion(region=REGION, rules={r.prefix: r for r in rules})
        for prefix in owned:
            self.status.record_owned(REGION, "rule", prefix)


@pytest.fixture
def world() -> World:
    w = World()
    w.service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    return w


def test_secret_users_classify_each_ecr_rule_on_the_secret(world: World) -> None:
    # GIVEN in ECR: a retained rule (owned, desired rule deleted with retain), a hand-made one, one desired
    # with another credential (not reconciled yet), one deleted with deletion_policy delete, one on another secret
    for prefix, policy in (("kept", "retain"), ("going", "delete")):
        world.service.put_rule(prefix, hub_rule(policy), actor=ALICE)
        world.service.delete(ResourceKind.RULE, prefix, actor=ALICE)
    world.service.put_credential("other", CRED, TOKEN, actor=ALICE)
    moved = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "other"})
    world.service.put_rule("moved", moved, actor=ALICE)
    world.in_ecr(
        ecr_rule("kept"),
        ecr_rule("by-hand"),
        ecr_rule("moved"),
        ecr_rule("going"),
        ecr_rule("elsewhere", arn=ARN.replace("hub-", "x-")),
        owned=("kept", "moved", "going"),
    )
    desired = {p: r.spec for p, r in world.store.snapshot().rules.items()}
    # WHEN asked which rules use the secret of "hub"
    uses = world.users.using({"hub": ARN}, desired_rules=desired, deleted_rules={})
    # THEN each is named with its kind; the one ecrcache deletes, and the one on another secret, are not
    assert uses == [
        SecretUse("hub", REGION, "by-hand", UseKind.UNMANAGED),
        SecretUse("hub", REGION, "kept", UseKind.RETAINED),
        SecretUse("hub", REGION, "moved", UseKind.NOT_RECONCILED),
    ]
    # AND the 409 says what to do for each kind, naming prefix and Region
    message = still_used_conflict(uses).message
    assert "kept (us-east-1, retained in ECR by ecrcache)" in message
    assert "by-hand (us-east-1, not managed by ecrcache)" in message
    assert "aws ecr delete-pull-through-cache-rule --ecr-repository-prefix kept --region us-east-1" in message
    assert "Wait for the reconciler to point moved at its new credential" in message


def test_delete_credential_used_by_a_retained_rule_is_a_conflict(world: World) -> None:
    world.service.put_rule("kept", hub_rule(), actor=ALICE)
    world.service.delete(ResourceKind.RULE, "kept", actor=ALICE)
    world.in_ecr(ecr_rule("kept"), owned=("kept",))
    with pytest.raises(ConflictError) as refused:
        world.service.delete(ResourceKind.CREDENTIAL, "hub", actor=ALICE)
    assert [(d.field, d.type) for d in refused.value.details] == [("kept", "still_used")]
    assert world.store.get(ResourceKind.CREDENTIAL, "hub") is not None
    assert world.service.secrets.deleted == []  # type: ignore[attr-defined]


def test_prune_deleting_the_rule_with_deletion_policy_delete_and_its_credential_is_allowed(world: World) -> None:
    # GIVEN a desired rule with deletion_policy delete, in ECR, on the credential's secret
    world.service.put_rule("going", hub_rule("delete"), actor=ALICE)
    world.in_ecr(ecr_rule("going"), owned=("going",))
    empty = DesiredStateDocument.model_validate({"version": 1})
    # WHEN a prune deletes both THEN it is allowed (the reconciler deletes the ECR rule)
    result = world.service.apply_document(empty, actor=ALICE, prune=True, dry_run=False, allow_empty=True)
    assert {(c.kind, c.name) for c in result.changes} == {
        (ResourceKind.RULE, "going"),
        (ResourceKind.CREDENTIAL, "hub"),
    }


def test_prune_deleting_a_retained_rule_and_its_credential_is_a_conflict(world: World) -> None:
    world.service.put_rule("kept", hub_rule("retain"), actor=ALICE)
    world.in_ecr(ecr_rule("kept"), owned=("kept",))
    empty = DesiredStateDocument.model_validate({"version": 1})
    with pytest.raises(ConflictError):
        world.service.apply_document(empty, actor=ALICE, prune=True, dry_run=True, allow_empty=True)


def test_no_ecr_read_when_no_credential_is_deleted(world: World) -> None:
    world.service.put_rule("quay", RuleSpec.model_validate({"upstream_kind": "quay"}), actor=ALICE)
    world.service.delete(ResourceKind.RULE, "quay", actor=ALICE)
    assert world.ecr.calls["rules"] == 0


def test_ecr_failure_while_checking_refuses_the_delete(world: World) -> None:
    world.ecr.observe_error = RetryableError("ECR DescribePullThroughCacheRules failed with ThrottlingException")
    with pytest.raises(RetryableError):
        world.service.delete(ResourceKind.CREDENTIAL, "hub", actor=ALICE)
    assert world.store.get(ResourceKind.CREDENTIAL, "hub") is not None


def test_a_rule_on_the_secrets_replica_in_another_region_blocks_the_credentials_delete() -> None:
    # GIVEN credential hub whose secret has a replica in eu-west-1, where ECR holds a hand-made rule on it
    store, status, secrets = MemoryStateStore(), MemoryStatusStore(), MemorySecretStore()
    readers = {region: MemoryEcrReader(region, ObservedRegion(region=region)) for region in (REGION, "eu-west-1")}
    users = EcrSecretUsers(
        registry=readers.__getitem__, status=status, desired=store, stack_region=REGION, secrets=secrets
    )
    service = DesiredStateService(store, secrets, clock=lambda: NOW, stack_region=REGION, secret_users=users)
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    secrets.replicas["ecr-pullthroughcache/hub"] = ["eu-west-1"]
    replica = ARN.replace(f":{REGION}:", ":eu-west-1:")
    readers["eu-west-1"].state = ObservedRegion(region="eu-west-1", rules={"by-hand": ecr_rule("by-hand", replica)})
    # WHEN the credential is deleted THEN 409 naming that rule and its Region; nothing is deleted
    with pytest.raises(ConflictError) as refused:
        service.delete(ResourceKind.CREDENTIAL, "hub", actor=ALICE)
    assert "by-hand (eu-west-1, not managed by ecrcache)" in refused.value.message
    assert secrets.deleted == [] and secrets.replicas["ecr-pullthroughcache/hub"] == ["eu-west-1"]
    # AND once that rule is gone, the delete removes the replica with the secret
    readers["eu-west-1"].state = ObservedRegion(region="eu-west-1")
    service.delete(ResourceKind.CREDENTIAL, "hub", actor=ALICE)
    assert secrets.deleted == ["ecr-pullthroughcache/hub"] and "ecr-pullthroughcache/hub" not in secrets.replicas


def test_replica_regions_that_cannot_be_read_refuse_the_delete() -> None:
    world = World()
    world.service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    secrets = world.service.secrets
    assert isinstance(secrets, MemorySecretStore)
    world.users.secrets = secrets
    secrets.fail["replica_regions"] = RetryableError("Secrets Manager DescribeSecret failed with ThrottlingException")
    with pytest.raises(RetryableError):
        world.service.delete(ResourceKind.CREDENTIAL, "hub", actor=ALICE)
    assert secrets.deleted == []

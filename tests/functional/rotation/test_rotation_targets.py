"""Where testSecret tries the token and where finishSecret validates it: the credential's kind (its own probe
image if it names one), Azure's registries from the desired rules naming the credential, every Region the
secret is replicated to (its rules on that Region's replica ARN, the replica InSync) -- and what is refused when
the upstream cannot be known."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from ecrcache.models.credential import CredentialSpec
from ecrcache.models.rotation import RotationOutcome, RotationStep
from ecrcache.models.rule import RuleSpec
from ecrcache.models.upstream import UpstreamKind
from ecrcache.services.rotation import RotationFailed
from tests.functional.rotation.support import NEW_TOKEN, OLD_TOKEN, STEPS, USERNAME, RotationWorld, value_of

pytestmark = pytest.mark.functional

ALICE = "arn:aws:iam::123456789012:user/alice"
ACR = "teamregistry.azurecr.io"


def credential(world: RotationWorld, name: str, kind: UpstreamKind, **spec: object) -> str:
    """A desired credential with its secret (the old token); its secret's name."""
    world.desired.put_credential(
        name,
        CredentialSpec.model_validate({"upstream_kind": kind.value, "username": USERNAME, **spec}),
        SecretStr(OLD_TOKEN),
        actor=ALICE,
    )
    return f"ecr-pullthroughcache/{name}"


def test_a_credential_that_names_its_probe_image_is_tried_with_it(world: RotationWorld) -> None:
    secret = credential(world, "gh", UpstreamKind.GITHUB_CONTAINER_REGISTRY, probe="octo-org/private-app:1.0")
    token = world.begin(value_of(NEW_TOKEN), secret=secret)
    for step in STEPS[:3]:
        world.step(step, token, secret_id=secret)
    assert [str(t) for t in world.upstream.probed] == ["ghcr.io/octo-org/private-app:1.0"]


def test_an_azure_credential_is_tried_at_v2_of_every_registry_its_rules_name(world: RotationWorld) -> None:
    # GIVEN an Azure credential and a desired rule naming it (the registry is the user's own)
    secret = credential(world, "acr", UpstreamKind.AZURE_CONTAINER_REGISTRY)
    rule = RuleSpec.model_validate(
        {"upstream_kind": "azure-container-registry", "upstream_url": ACR, "credential": "acr"}
    )
    world.desired.put_rule("azure", rule, actor=ALICE)
    token = world.begin(value_of(NEW_TOKEN), secret=secret)
    # WHEN tested THEN at that registry's /v2/ (no public image to name there)
    for step in STEPS[:3]:
        world.step(step, token, secret_id=secret)
    assert [str(t) for t in world.upstream.probed] == [f"{ACR}/v2/"]


def test_an_azure_credential_no_rule_names_is_refused_nothing_to_test_at(world: RotationWorld) -> None:
    secret = credential(world, "acr", UpstreamKind.AZURE_CONTAINER_REGISTRY)
    token = world.begin(value_of(NEW_TOKEN), secret=secret)
    world.step(RotationStep.CREATE, token, secret_id=secret)
    with pytest.raises(RotationFailed, match="no desired rule names credential 'acr'"):
        world.step(RotationStep.TEST, token, secret_id=secret)
    assert world.sm.describe_secret(SecretId=secret)["VersionIdsToStages"][token] == []


def test_a_secret_that_is_no_desired_credential_is_refused(world: RotationWorld) -> None:
    # GIVEN an ecr-pullthroughcache/ secret made by hand (not in ecrcache's desired state)
    world.sm.create_secret(Name="ecr-pullthroughcache/by-hand", SecretString=value_of(OLD_TOKEN))
    token = world.begin(value_of(NEW_TOKEN), secret="ecr-pullthroughcache/by-hand")
    world.step(RotationStep.CREATE, token, secret_id="ecr-pullthroughcache/by-hand")
    with pytest.raises(RotationFailed, match="'by-hand' is not in ecrcache's desired state: its upstream is unknown"):
        world.step(RotationStep.TEST, token, secret_id="ecr-pullthroughcache/by-hand")
    assert world.records.get("by-hand", token) is not None


def test_a_secret_outside_the_credential_prefix_is_not_rotated(world: RotationWorld) -> None:
    world.sm.create_secret(Name="database/password", SecretString=json.dumps({"password": "x"}))
    token = world.begin(json.dumps({"password": "y"}), secret="database/password")
    with pytest.raises(RotationFailed, match="is not an upstream credential"):
        world.step(RotationStep.CREATE, token, secret_id="database/password")


def test_a_value_that_is_not_the_secret_shape_is_refused_at_test(world: RotationWorld) -> None:
    token = world.begin(json.dumps({"user": USERNAME, "token": NEW_TOKEN}))
    for step in STEPS[:2]:
        world.step(step, token)
    with pytest.raises(
        RotationFailed, match=re.escape('the new value is refused: the secret value is not {"username", "accessToken"}')
    ):
        world.step(RotationStep.TEST, token)
    assert world.current_token() == OLD_TOKEN
    assert world.record(token).outcome is RotationOutcome.REFUSED


def test_rules_are_validated_in_every_region_the_secret_is_replicated_to(world: RotationWorld) -> None:
    # GIVEN the secret replicated to eu-west-1, and a rule there using the replica (its own Region's ARN)
    world.sm.replicate_secret_to_regions(SecretId=world.secret, AddReplicaRegions=[{"Region": "eu-west-1"}])
    replica = world.service.ecr("eu-west-1")
    replica_arn = world.secret_arn.replace(f":{world.region}:", ":eu-west-1:")
    replica.client.create_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=replica_arn
    )
    token = world.begin(value_of(NEW_TOKEN))
    # WHEN rotated THEN both Regions' rules were validated
    messages = world.rotate(token)
    assert (
        messages[3]
        == f"AWSCURRENT is the new version; validated in ECR: docker-hub ({world.region}), docker-hub (eu-west-1)"
    )
    assert world.validation.checked == [NEW_TOKEN, NEW_TOKEN]


def test_a_rule_of_another_secret_is_not_validated(world: RotationWorld) -> None:
    other = credential(world, "other", UpstreamKind.DOCKER_HUB)
    other_arn = world.sm.describe_secret(SecretId=other)["ARN"]
    world.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="hub-other", upstreamRegistryUrl="registry-1.docker.io", credentialArn=other_arn
    )
    token = world.begin(value_of(NEW_TOKEN))
    assert world.rotate(token)[3].endswith(f"validated in ECR: docker-hub ({world.region})")


def reporting_replica(world: RotationWorld, monkeypatch: pytest.MonkeyPatch, region: str, status: str) -> None:
    """``DescribeSecret`` reports a replica in ``region`` with ``status`` (moto makes every replica InSync)."""
    describe = world.sm.describe_secret

    def described(**kwargs: Any) -> Any:
        out: dict[str, Any] = dict(describe(**kwargs))
        out["ReplicationStatus"] = [{"Region": region, "Status": status, "StatusMessage": "reported"}]
        return out

    monkeypatch.setattr(world.sm, "describe_secret", described)


def test_a_replica_not_in_sync_is_not_validated_and_said(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a rule in eu-west-1 on the replica's ARN, the replica still InProgress (review #3)
    world.sm.replicate_secret_to_regions(SecretId=world.secret, AddReplicaRegions=[{"Region": "eu-west-1"}])
    replica_arn = world.secret_arn.replace(f":{world.region}:", ":eu-west-1:")
    world.service.ecr("eu-west-1").client.create_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=replica_arn
    )
    reporting_replica(world, monkeypatch, "eu-west-1", "InProgress")
    token = world.begin(value_of(NEW_TOKEN))
    # WHEN rotated THEN only the primary's Region is validated, and the replica is named as not validated
    finished = world.rotate(token)[3]
    assert finished.endswith(
        f"validated in ECR: docker-hub ({world.region}); not validated: eu-west-1 (replica InProgress)"
    )
    assert world.validation.checked == [NEW_TOKEN]


def test_a_rule_on_another_secret_of_the_same_name_is_not_validated(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN eu-west-1 holding its own secret ecr-pullthroughcache/hub (not the replica) and a rule using it
    foreign = boto3.client("secretsmanager", region_name="eu-west-1")
    foreign_arn = foreign.create_secret(Name=world.secret, SecretString=value_of(OLD_TOKEN))["ARN"]
    assert foreign_arn != world.secret_arn.replace(f":{world.region}:", ":eu-west-1:")
    world.service.ecr("eu-west-1").client.create_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=foreign_arn
    )
    reporting_replica(world, monkeypatch, "eu-west-1", "InSync")
    token = world.begin(value_of(NEW_TOKEN))
    # WHEN rotated THEN that rule is not ours: only the primary's rule is validated
    assert world.rotate(token)[3].endswith(f"validated in ECR: docker-hub ({world.region})")
    assert world.validation.checked == [NEW_TOKEN]

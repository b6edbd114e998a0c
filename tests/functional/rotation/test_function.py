"""``functions/rotator/app.py`` as Lambda runs it, on the embedded AWS, with the real probe signing in at a local
Docker-Hub-like registry (``UPSTREAM_ENDPOINTS``, as the local stack sets it): every sample event of
``events/rotator`` runs through the handler, in Secrets Manager's order."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from devstack.registry import LocalRegistry, Seeder
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.config import RotatorSettings
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.upstream import UpstreamKind
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.rotation import RotationFailed
from tests.conftest import FakeLambdaContext, load_event, sample_events
from tests.functional.registry.support import AUTH_CREDENTIALS
from tests.functional.rotation.support import BAD_TOKEN, RotationWorld, now, value_of

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

SAMPLES = sample_events("rotator")
ORDER = ["create_secret", "set_secret", "test_secret", "finish_secret"]


@dataclass
class Deployed:
    world: RotationWorld
    secret: str
    arn: str

    def invoke(self, sample: str, token: str, context: FakeLambdaContext) -> dict[str, Any]:
        from functions.rotator import app

        event = load_event(sample) | {"SecretId": self.arn, "ClientRequestToken": token}
        answer: dict[str, Any] = app.lambda_handler(event, context)
        return answer

    def stages(self) -> dict[str, set[str]]:
        described = self.world.sm.describe_secret(SecretId=self.secret)["VersionIdsToStages"]
        return {version: set(labels) for version, labels in described.items() if labels}


@pytest.fixture
def deployed(
    world: RotationWorld,
    token_registry: LocalRegistry,
    unique_repo: str,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployed]:
    """Credential ``docker-hub`` (the samples' secret) with the registry's credentials as its token, its probe an
    image of that registry, an ECR rule using it, and the handler's settings mapping Docker Hub to the registry."""
    from functions.rotator import app

    with Seeder.for_registry(token_registry) as seeder:
        seeder.image(unique_repo, "latest", platforms=("linux/amd64",))
    spec = CredentialSpec(
        upstream_kind=UpstreamKind.DOCKER_HUB, username=AUTH_CREDENTIALS.username, probe=f"{unique_repo}:latest"
    )
    store = DynamoDbStateStore(state_table)
    DesiredStateService(store, SecretsManagerStore(world.sm), now).put_credential(
        "docker-hub", spec, SecretStr(AUTH_CREDENTIALS.password), actor="arn:aws:iam::123456789012:user/alice"
    )
    secret = "ecr-pullthroughcache/docker-hub"
    arn = world.sm.describe_secret(SecretId=secret)["ARN"]
    world.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
    )
    world.validation.accepted.add(AUTH_CREDENTIALS.password)
    endpoints = json.dumps({"registry-1.docker.io": token_registry.url})  # as the environment carries it
    settings = RotatorSettings.model_validate({"table_name": state_table, "upstream_endpoints": endpoints})
    monkeypatch.setattr(app, "settings", settings)
    app.service.cache_clear()
    try:
        yield Deployed(world, secret, arn)
    finally:
        app.service.cache_clear()


def begin(deployed: Deployed, token_value: str) -> str:
    """An operator's staged value and the rotation started (what RotateSecret leaves: see support.py)."""
    deployed.world.enable_rotation_of(deployed.secret)
    token = str(uuid.uuid4())
    deployed.world.sm.put_secret_value(
        SecretId=deployed.secret, ClientRequestToken=token, SecretString=token_value, VersionStages=["AWSPENDING"]
    )
    return token


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_sample_step_runs_through_the_handler(
    deployed: Deployed, lambda_context: FakeLambdaContext, sample: str
) -> None:
    # GIVEN a staged token (the same credentials, as a new version) and the steps before the sample's done
    old = deployed.stages()
    token = begin(deployed, value_of(AUTH_CREDENTIALS.password, AUTH_CREDENTIALS.username))
    name = sample.removeprefix("rotator/").removesuffix(".json")
    for earlier in ORDER[: ORDER.index(name)]:
        deployed.invoke(f"rotator/{earlier}.json", token, lambda_context)

    # WHEN the sample's step is invoked
    answer = deployed.invoke(sample, token, lambda_context)

    # THEN it ran, and the secret is where that step leaves it
    assert answer["step"] == load_event(sample)["Step"]
    (previous,) = old
    if name == "finish_secret":
        assert deployed.stages() == {token: {"AWSCURRENT"}, previous: {"AWSPREVIOUS"}}
        assert "validated in ECR: hub (us-east-1)" in answer["message"]
    else:
        assert deployed.stages() == {token: {"AWSPENDING"}, previous: {"AWSCURRENT"}}
    if name == "test_secret":
        assert "signed in with the credential and found the probe image" in answer["message"]


def test_the_handler_refuses_a_wrong_token_at_the_real_upstream(
    deployed: Deployed, lambda_context: FakeLambdaContext
) -> None:
    old = deployed.stages()
    token = begin(deployed, value_of(BAD_TOKEN, AUTH_CREDENTIALS.username))
    for step in ORDER[:2]:
        deployed.invoke(f"rotator/{step}.json", token, lambda_context)
    with pytest.raises(RotationFailed, match="token service rejected the credential"):
        deployed.invoke("rotator/test_secret.json", token, lambda_context)
    assert deployed.stages() == old


def test_an_event_that_is_not_a_rotation_step_is_refused_by_the_parser(lambda_context: FakeLambdaContext) -> None:
    from aws_lambda_powertools.utilities.parser import ValidationError

    from functions.rotator import app

    event = load_event("rotator/create_secret.json") | {"Step": "dropSecret"}
    with pytest.raises(ValidationError):
        app.lambda_handler(event, lambda_context)

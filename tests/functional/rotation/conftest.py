"""The rotation service on the embedded AWS (moto + the ECR extension), the state table from the template.

``world``: credential ``hub`` (Docker Hub) written through the desired-state service with :data:`OLD_TOKEN`
(its secret ``ecr-pullthroughcache/hub``), an ECR rule ``docker-hub`` using the secret, the upstream as the
probe sees it and as ECR's validation sees it (both accept the old and the new token, until a test says
otherwise), and the service wired to them.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from pydantic import SecretStr

from devstack.aws import install, ports
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.rotation_store import DynamoDbRotationStore
from ecrcache.adapters.secret_rotation import SecretsManagerRotation
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.upstream import UpstreamKind
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.rotation import RotationService
from tests.conftest import REGION
from tests.functional.cli.conftest import _gateway, endpoint  # noqa: F401 - the CLI's fixtures (test_cli_rotations)
from tests.functional.rotation.api_support import Rotator
from tests.functional.rotation.support import (
    NEW_TOKEN,
    OLD_TOKEN,
    USERNAME,
    EcrValidation,
    RotationWorld,
    UpstreamStandIn,
    now,
)

ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture
def rotator(world: RotationWorld) -> Iterator[Rotator]:
    """The rotation service registered as the stack's rotation function with the embedded Secrets Manager (its
    ``RotateSecret``, as AWS documents it); the steps run when the test calls ``rotator.run()``."""
    rotator = Rotator.start(world)
    try:
        yield rotator
    finally:
        rotator.close()


@pytest.fixture
def world(state_table: str) -> Iterator[RotationWorld]:
    install()
    validation = EcrValidation({OLD_TOKEN, NEW_TOKEN})
    ports.set_upstream_auth_checker(validation)
    sm = boto3.client("secretsmanager", region_name=REGION)
    ecr = boto3.client("ecr", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    store = DynamoDbStateStore(state_table, dynamodb)
    desired = DesiredStateService(store, SecretsManagerStore(sm), now)
    spec = CredentialSpec(upstream_kind=UpstreamKind.DOCKER_HUB, username=USERNAME)
    desired.put_credential("hub", spec, SecretStr(OLD_TOKEN), actor=ALICE)
    arn = sm.describe_secret(SecretId="ecr-pullthroughcache/hub")["ARN"]
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
    )
    registries: dict[str, Boto3EcrRegistry] = {}

    def registry(region: str) -> Boto3EcrRegistry:
        if region not in registries:
            registries[region] = Boto3EcrRegistry(region, boto3.client("ecr", region_name=region), sleep=lambda _: None)
        return registries[region]

    upstream = UpstreamStandIn({OLD_TOKEN, NEW_TOKEN})
    records = DynamoDbRotationStore(state_table, dynamodb)
    service = RotationService(
        secrets=SecretsManagerRotation(sm), probe=upstream, desired=store, records=records, ecr=registry, clock=now
    )
    try:
        yield RotationWorld(service, desired, records, sm, ecr, upstream, validation, arn)
    finally:
        ports.set_upstream_auth_checker(None)

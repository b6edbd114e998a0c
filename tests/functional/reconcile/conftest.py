"""The reconciler on the embedded AWS: moto + the ECR extension, the state table from the template."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import boto3
import pytest

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.status import ReconcileRun, RunTrigger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache_cli.embedded_aws import install
from tests.conftest import REGION

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

ALICE = "arn:aws:iam::123456789012:user/alice"


@dataclass
class World:
    desired: DesiredStateService
    reconciler: ReconcileService
    registries: dict[str, Boto3EcrRegistry]
    ecr: ECRClient

    def reconcile(self, scope: Scope | None = None, trigger: RunTrigger = RunTrigger.SCHEDULE) -> ReconcileRun:
        return self.reconciler.reconcile(scope or Scope(), trigger)


@pytest.fixture
def world(state_table: str) -> World:
    install()

    store = DynamoDbStateStore(state_table, boto3.client("dynamodb", region_name=REGION))
    registries: dict[str, Boto3EcrRegistry] = {}

    def registry(region: str) -> Boto3EcrRegistry:
        if region not in registries:
            registries[region] = Boto3EcrRegistry(region, boto3.client("ecr", region_name=region), sleep=lambda _: None)
        return registries[region]

    def clock() -> datetime:
        return datetime.now(UTC)

    desired = DesiredStateService(store, SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)), clock)
    reconciler = ReconcileService(
        desired=store,
        status=DynamoDbStatusStore(state_table, boto3.client("dynamodb", region_name=REGION)),
        registry=registry,
        clock=clock,
        stack_region=REGION,
    )
    return World(desired, reconciler, registries, boto3.client("ecr", region_name=REGION))

"""API function: API Gateway (REST, AWS_IAM) -> the desired-state service, the plan and the status."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.config import api_settings, stack_region
from ecrcache.http.app import create_app, resolve
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.importer import ImportService
from ecrcache.services.reconcile import ReconcileService


def now() -> datetime:
    return datetime.now(UTC)


@cache
def registry(region: str) -> Boto3EcrRegistry:
    return Boto3EcrRegistry(region)


store = DynamoDbStateStore(api_settings().table_name)
status = DynamoDbStatusStore(api_settings().table_name)
# The API only plans (reads ECR); its role has no ECR write permission.
reconciler = ReconcileService(desired=store, status=status, registry=registry, clock=now, stack_region=stack_region())
service = DesiredStateService(store=store, secrets=SecretsManagerStore(), clock=now, stack_region=stack_region())
importer = ImportService(service, registry, stack_region=stack_region())
app = create_app(service, reconciler=reconciler, importer=importer, status=status, clock=now)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)

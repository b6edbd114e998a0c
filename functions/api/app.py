"""API function: API Gateway (REST, AWS_IAM) -> the desired-state service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.config import api_settings
from ecrcache.http.app import create_app, resolve
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.desired_state import DesiredStateService

service = DesiredStateService(
    store=DynamoDbStateStore(api_settings().table_name),
    secrets=SecretsManagerStore(),
    clock=lambda: datetime.now(UTC),
)
app = create_app(service)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)

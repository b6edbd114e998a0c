"""Credential health function: the daily schedule -> the health check of every desired credential.

EventBridge's ``rate(1 day)`` schedule sends a ``Scheduled Event`` (parsed with Powertools' parser; the event
says nothing more than "now"). Each credential is checked with its ``AWSCURRENT`` token at the upstream (within
the upstream's token bucket, shared with warming) and in ECR (``ValidatePullThroughCacheRule`` of every rule
using its secret, in every Region the secret is in); its health is recorded, and changes and expiry alerts go
to the default event bus and the alert topic (:mod:`ecrcache.services.credential_health`). A check whose health
could not be recorded fails the invocation (after every credential was checked): Lambda retries it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.alert_topic import SnsAlerts
from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.health_events import EventBridgeHealthNotifier
from ecrcache.adapters.secret_rotation import SecretsManagerRotation
from ecrcache.adapters.upstream_auth import RegistryAuthProbe
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.config import credential_health_settings
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.credential_health import CredentialHealthService

if TYPE_CHECKING:
    from ecrcache.adapters.ecr_registry import Boto3EcrRegistry

settings = credential_health_settings()


@cache
def registry(region: str) -> Boto3EcrRegistry:
    """ECR in ``region``: the check lists its rules and validates the ones using the secret, nothing else.

    Imported on first use (only a credential with rules reaches ECR): the ECR adapter brings the rule models and
    the engine's rule essence with it."""
    from ecrcache.adapters.ecr_registry import Boto3EcrRegistry  # noqa: PLC0415 -- on first use (cold start)

    return Boto3EcrRegistry(region)


@cache
def service() -> CredentialHealthService:
    """The service, built on first use (the handler tests put their own in its place)."""
    alerts = SnsAlerts(settings.alert_topic_arn) if settings.alert_topic_arn else None
    return CredentialHealthService(
        desired=DynamoDbStateStore(settings.table_name),
        # Read only: DescribeSecret and GetSecretValue (AWSCURRENT) -- the service types it as CredentialSecrets.
        secrets=SecretsManagerRotation(),
        probe=RegistryAuthProbe(endpoints=settings.upstream_endpoints),
        budget=DynamoDbUpstreamBudget(settings.table_name),
        ecr=registry,
        store=DynamoDbCredentialHealthStore(settings.table_name),
        notifier=EventBridgeHealthNotifier(alerts=alerts),
        clock=lambda: datetime.now(UTC),
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    schedule = parse(event=event, model=EventBridgeModel)
    logger.append_keys(schedule=schedule.id)
    return service().check_all().as_dict()

"""Rotator function: Secrets Manager's rotation steps of an upstream credential secret -> one step of the
rotation service.

Secrets Manager invokes the function synchronously, once per step (``createSecret``, ``setSecret``,
``testSecret``, ``finishSecret``), with ``{"Step", "SecretId", "ClientRequestToken", "RotationToken"}``
(:class:`~ecrcache.models.rotation.RotationEvent`, parsed with Powertools' parser). A step that raises fails
the rotation, which Secrets Manager records and retries; what each step does, and what stays ``AWSCURRENT``
when one fails, is :mod:`ecrcache.services.rotation`'s; what an outcome records on the credential's health is
:mod:`ecrcache.services.rotation_health`'s. The answer is for logs and tests only: Secrets
Manager does not read it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.alert_topic import SnsAlerts
from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.health_events import EventBridgeHealthNotifier
from ecrcache.adapters.rotation_store import DynamoDbRotationStore
from ecrcache.adapters.secret_rotation import SecretsManagerRotation
from ecrcache.adapters.upstream_auth import RegistryAuthProbe
from ecrcache.config import rotator_settings
from ecrcache.models.rotation import RotationEvent
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.rotation import RotationService
from ecrcache.services.rotation_health import RotationHealth

if TYPE_CHECKING:
    from ecrcache.adapters.ecr_registry import Boto3EcrRegistry

settings = rotator_settings()
_registries: dict[str, Boto3EcrRegistry] = {}


def registry(region: str) -> Boto3EcrRegistry:
    """ECR in ``region``: the rotation lists its rules and validates the ones using the secret, nothing else.

    Imported on first use: of the four steps, only ``testSecret`` and ``finishSecret`` reach ECR, and the ECR
    adapter brings the rule models and the engine's rule essence with it."""
    from ecrcache.adapters.ecr_registry import Boto3EcrRegistry  # noqa: PLC0415 -- on first use (cold start)

    if region not in _registries:
        _registries[region] = Boto3EcrRegistry(region)
    return _registries[region]


@cache
def service() -> RotationService:
    """The service, built on first use (the handler tests put their own in its place)."""
    secrets = SecretsManagerRotation()
    # Each outcome is recorded on the credential's health at once (promoted: Healthy; the current token refused
    # by a scheduled re-test: Invalid), and the change announced.
    health = RotationHealth(
        store=DynamoDbCredentialHealthStore(settings.table_name),
        secrets=secrets,
        notifier=EventBridgeHealthNotifier(
            alerts=SnsAlerts(settings.alert_topic_arn) if settings.alert_topic_arn else None
        ),
        clock=lambda: datetime.now(UTC),
    )
    return RotationService(
        secrets=secrets,
        probe=health.watching(RegistryAuthProbe(endpoints=settings.upstream_endpoints)),
        desired=DynamoDbStateStore(settings.table_name),
        records=DynamoDbRotationStore(settings.table_name),
        ecr=registry,
        clock=lambda: datetime.now(UTC),
        health=health,
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    rotation = parse(event=event, model=RotationEvent)
    logger.append_keys(step=rotation.step.value, rotation=rotation.client_request_token)
    return {"step": rotation.step.value, "message": service().handle(rotation)}

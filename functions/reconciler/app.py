"""Reconciler function: desired-state stream, schedules, CloudTrail drift and pull-through events
-> one reconcile of the controller's ECR state (the trigger only chooses the scope)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.identity import caller_arn
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.config import reconciler_settings, stack_region
from ecrcache.errors import EcrcacheError
from ecrcache.models.status import ReconcileRun
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.reconcile import ReconcileService
from ecrcache.services.triggers import (
    CloudTrailDetail,
    PullThroughCacheActionDetail,
    Trigger,
    for_cache_action,
    for_cloudtrail,
    for_schedule,
    for_stream_keys,
    own_role_prefix,
)

settings = reconciler_settings()
_registries: dict[str, Boto3EcrRegistry] = {}


def registry(region: str) -> Boto3EcrRegistry:
    if region not in _registries:
        _registries[region] = Boto3EcrRegistry(region)
    return _registries[region]


service = ReconcileService(
    desired=DynamoDbStateStore(settings.table_name),
    status=DynamoDbStatusStore(settings.table_name),
    registry=registry,
    clock=lambda: datetime.now(UTC),
    stack_region=stack_region(),
)
idempotency = IdempotencyConfig(expires_after_seconds=3600)
persistence = DynamoDBPersistenceLayer(
    table_name=settings.table_name, key_attr="pk", sort_key_attr="sk", expiry_attr="expires_at"
)
# A batch whose reconcile cannot run fails every record: report them all (Lambda retries), do not raise.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


def run(trigger: Trigger) -> ReconcileRun:
    return service.reconcile(trigger.scope, trigger.trigger, run_id=trigger.run_id)


def _handle_event(*, event_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """One EventBridge event (delivered at least once: idempotent on its id)."""
    parsed = EventBridgeModel.model_validate(event)
    trigger: Trigger | None
    if parsed.detail_type == "AWS API Call via CloudTrail":
        trigger = for_cloudtrail(CloudTrailDetail.model_validate(parsed.detail), own_role=own_role_prefix(caller_arn()))
    elif parsed.detail_type == "ECR Pull Through Cache Action":
        trigger = for_cache_action(PullThroughCacheActionDetail.model_validate(parsed.detail), parsed.region)
    else:
        trigger = None
    if trigger is None:
        return {"ignored": True}
    return run(trigger).model_dump(mode="json")


handle_event: Callable[..., dict[str, Any]] = idempotent_function(
    data_keyword_argument="event_id", config=idempotency, persistence_store=persistence
)(_handle_event)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    if "Records" in event:  # DynamoDB stream of desired items and reconcile requests
        records = [DynamoDBRecord(r) for r in event["Records"]]
        keys = [
            (
                (r.dynamodb.keys or {}).get("pk", ""),
                (r.dynamodb.keys or {}).get("sk", ""),
                r.raw_event.get("dynamodb", {}).get("NewImage"),
            )
            for r in records
            if r.dynamodb is not None
        ]
        # One reconcile covers the whole batch; if it cannot run, every record fails and is retried.
        failure: EcrcacheError | None = None
        try:
            run(for_stream_keys(keys))
        except EcrcacheError as exc:
            failure = exc

        def record_outcome(record: DynamoDBRecord) -> None:
            if failure is not None:
                raise failure

        response = process_partial_response(
            event=event, record_handler=record_outcome, processor=processor, context=context
        )
        return dict(response)
    if "resync" in event:  # a schedule: EventBridge delivers the target's Input as the event
        return run(for_schedule(event)).model_dump(mode="json")
    return handle_event(event_id=str(event.get("id", "")), event=event)

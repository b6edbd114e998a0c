"""Warm planner function: the ``{"tick": true}`` schedule -> every due warm set; a ``REQUEST#warm`` stream
INSERT (``POST /v1/warm-sets/{name}/runs``) -> that run. Each run is planned once
(:class:`~ecrcache.services.warm_planner.WarmPlannerService`), its tasks sent to the warm queue.

Planning a run is idempotent on its run id (Powertools idempotency on the state table): a duplicate
delivery while it is being planned waits for a retry (a stream record reports its failure; a tick leaves
the fire due), a completed one is not planned again, and a planning that crashed is planned again once its
in-progress record expires (the run store then sends the pending tasks again rather than re-planning a run
already recorded). Stream records are processed one by one with Powertools' batch utility: a failed
record is reported (``ReportBatchItemFailures``) and retried alone; a malformed request is logged and
skipped, so it cannot block the stream.
"""

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
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.adapters.state_events import EventBridgeStateEvents
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.adapters.upstream_registry import OciUpstreamRegistry
from ecrcache.adapters.warm_queue import SqsWarmQueue
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.config import stack_region, warm_planner_settings
from ecrcache.errors import RetryableError
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.pull_stats import PullStatsService
from ecrcache.services.warm_planner import PlanRequest, TickInput, WarmPlannerService, parse_request

settings = warm_planner_settings()
runs = DynamoDbWarmRunStore(settings.table_name)
service = WarmPlannerService(
    desired=DynamoDbStateStore(settings.table_name),
    runs=runs,
    budget=DynamoDbUpstreamBudget(settings.table_name),
    queue=SqsWarmQueue(settings.warm_queue_url),
    tags=OciUpstreamRegistry(endpoints=settings.upstream_endpoints),
    pulls=PullStatsService(DynamoDbPullStatsStore(settings.table_name), stack_region=stack_region()),
    clock=lambda: datetime.now(UTC),
    stack_region=stack_region(),
    # Runs finished here (nothing to warm, planning failed, settled at their deadline): Warm Run Finished.
    events=EventBridgeStateEvents(),
)
idempotency = IdempotencyConfig(event_key_jmespath="run_id", expires_after_seconds=86_400)
# The state table's client, not one of Powertools' own: a second client (in a session of its own) would load
# botocore's DynamoDB model again at every cold start; this one also retries as every client here (adaptive).
persistence = DynamoDBPersistenceLayer(
    table_name=settings.table_name,
    key_attr="pk",
    sort_key_attr="sk",
    expiry_attr="expires_at",
    boto3_client=runs.client,
)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _plan(*, request: PlanRequest) -> dict[str, Any]:
    return service.plan(request)


plan_once: Callable[..., dict[str, Any]] = idempotent_function(
    data_keyword_argument="request", config=idempotency, persistence_store=persistence
)(_plan)


def plan(request: PlanRequest) -> dict[str, Any]:
    """One run, once; a duplicate being planned right now is a retryable error (try again later)."""
    try:
        return plan_once(request=request)
    except IdempotencyAlreadyInProgressError:
        raise RetryableError(f"warm run {request.run_id} is being planned by another invocation") from None


def record_handler(record: DynamoDBRecord) -> dict[str, Any]:
    """One stream record: a warm request is planned; anything else is ignored."""
    stream = record.dynamodb
    try:
        request = parse_request(stream.keys or {}, stream.new_image if stream is not None else None) if stream else None
    except ValueError as exc:
        logger.warning("a malformed warm request was skipped", extra={"record": record.event_id, "error": str(exc)})
        return {"skipped": str(exc)}
    if request is None:
        return {"ignored": True}
    return plan(service.requested(request))


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    if "Records" in event:  # the state table's stream: warm requests
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)
    TickInput.model_validate(event)  # the schedule's input, nothing else
    return service.tick(plan=plan).as_dict()

"""Warm worker function: ``WarmQueue`` batches -> one warm per message, partial batch failures.

Each message body is a :class:`~ecrcache.models.warm_run.WarmTask` the planner queued (one image, one
Region). Powertools' ``BatchProcessor`` runs :func:`record_handler` per record and reports the records
that raised as ``batchItemFailures``: SQS delivers those again, and after ``maxReceiveCount`` (3) moves
them to ``WarmDlq``. What raises is what a retry can fix -- the state table or the budget throttled after
botocore's retries, too little time left in this invocation. A body that is not a task is logged and
dropped (:func:`ecrcache.services.warm_worker.task_from_body`: retrying the same bytes cannot help).
Per-image ECR failures never raise: they are the image's recorded outcome.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.alert_topic import SnsAlerts
from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.ecr_warm import Boto3EcrWarmer
from ecrcache.adapters.health_events import EventBridgeHealthNotifier
from ecrcache.adapters.state_events import EventBridgeStateEvents
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.config import warm_worker_settings
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.credential_health import CredentialMarks
from ecrcache.services.warm_worker import WarmWorkerService, task_from_body

settings = warm_worker_settings()
processor = BatchProcessor(event_type=EventType.SQS)
_warmers: dict[str, Boto3EcrWarmer] = {}

MIN_REMAINING_MS = 60_000
"""A record is not started with less time left than this (a warm takes seconds, a slow upstream up to a
minute): it fails as an item instead, and SQS delivers it again to a fresh invocation."""


def warmer(region: str) -> Boto3EcrWarmer:
    if region not in _warmers:
        _warmers[region] = Boto3EcrWarmer(region)
    return _warmers[region]


@cache
def service() -> WarmWorkerService:
    """The service, built on first use (the handler tests put their own in its place)."""
    return WarmWorkerService(
        store=DynamoDbWarmRunStore(settings.table_name),
        budget=DynamoDbUpstreamBudget(settings.table_name),
        ecr=warmer,
        clock=lambda: datetime.now(UTC),
        # A warm failing on the credential marks it Invalid at once (after the batch), and announces it.
        marks=CredentialMarks(
            store=DynamoDbCredentialHealthStore(settings.table_name),
            notifier=EventBridgeHealthNotifier(
                alerts=SnsAlerts(settings.alert_topic_arn) if settings.alert_topic_arn else None
            ),
            clock=lambda: datetime.now(UTC),
        ),
        # The run its last outcome finishes is announced on the default bus (Warm Run Finished).
        events=EventBridgeStateEvents(),
    )


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> dict[str, Any] | None:
    """One message: the image's outcome (as recorded), or ``None`` for a dropped body."""
    if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < MIN_REMAINING_MS:
        raise TimeoutError("too little time left in this invocation to warm an image; SQS delivers it again")
    task = task_from_body(record.body)
    if task is None:
        return None
    return service().handle(task).model_dump(mode="json")


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        service().flush_marks()  # the batch's credential errors: one mark per credential

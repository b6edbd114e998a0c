"""Reconcile worker function: ``ReconcileShardQueue`` -> one shard of a deep resync per message, partial failures.

Each message body is a :class:`~ecrcache.models.shards.ShardTask` a deep run queued (README "Deep resync at
scale"): up to ``SHARD_SIZE`` repositories of one Region, which :class:`ShardWorkerService` deep-reads, converges
and reports on the run record. Powertools' ``BatchProcessor`` runs :func:`record_handler` per record (the mapping
gives one a batch) and reports a record that raised as a ``batchItemFailure``: SQS delivers it again after the
queue's visibility timeout. What raises is what a retry can fix (ECR throttled after botocore's retries, DynamoDB,
too little time left); the service records the shard ``retrying`` first. The message's third receive
(``ApproximateReceiveCount`` against the queue's ``maxReceiveCount``, :data:`MAX_RECEIVE_COUNT`) is the last
attempt: the service then records the shard ``failed`` instead of raising, so the run still finishes. A body that
is not a shard task is logged, counted and dropped (retrying the same bytes cannot help:
:func:`~ecrcache.services.reconcile_shards.task_from_body`); a shard already reported (a redelivery, or a redrive
from the DLQ after its run finished) is dropped by the service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry, ecr_client
from ecrcache.adapters.state_events import EventBridgeStateEvents
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.config import reconcile_worker_settings, stack_region
from ecrcache.engine.deadline import Deadline
from ecrcache.engine.role_path import RoleScope
from ecrcache.errors import EcrcacheError
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.reconcile_shards import ShardWorkerService, task_from_body

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

settings = reconcile_worker_settings()
# A shard delivered again is an expected outcome (recorded ``retrying`` by the service), not a function error: the
# failed record is reported in batchItemFailures even when it is the batch's only one (BatchSize 1), rather than
# Powertools raising "all records failed". With ReportBatchItemFailures, Lambda does not scale the mapping's polling
# down for reported failures (Lambda Developer Guide, "Handling errors for an SQS event source in Lambda"), so one
# throttled shard does not slow the others; an invocation that crashes still counts as the function's error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_registries: dict[str, Boto3EcrRegistry] = {}

MAX_RECEIVE_COUNT: Final = 3
"""The shard queue's ``RedrivePolicy.maxReceiveCount`` (template.yaml, ReconcileShardQueue; a contract test keeps
them equal): the receive that reaches it is the shard's last attempt, after which SQS moves the message to the DLQ."""
MIN_REMAINING_MS: Final = 120_000
"""A shard is not started with less time left (up to 500 repositories: a minute or two at ECR's rates, under the
300 s timeout): the service records it ``retrying`` and raises, and SQS delivers it again to a fresh invocation
(on its last attempt it is recorded ``failed`` instead)."""


def registry(region: str) -> Boto3EcrRegistry:
    """One ECR client per Region, kept across invocations."""
    if region not in _registries:
        # The reconciler's per-invocation ceiling (EcrRequestRate): the fan-out's aggregate ECR request rate is
        # ShardConcurrency x this (README "Deep resync at scale").
        _registries[region] = Boto3EcrRegistry(region, ecr_client(region, request_rate=settings.ecr_request_rate))
    return _registries[region]


@cache
def service() -> ShardWorkerService:
    """The service, built on first use (the handler tests put their own in its place)."""
    status = DynamoDbStatusStore(settings.table_name)
    return ShardWorkerService(
        desired=DynamoDbStateStore(settings.table_name),
        status=status,
        registry=registry,
        clock=lambda: datetime.now(UTC),
        stack_region=stack_region(),
        warmer_role_arn=settings.warmer_role_arn or None,
        # A rule naming a role outside EcrRolePath (or another account's) is blocked, as the reconciler blocks it.
        role_path=RoleScope.of_stack(settings.ecr_role_path, settings.ecr_role_account, stack_region()),
        # The run this shard finishes may change rules' conditions: announced on the default bus.
        events=EventBridgeStateEvents(),
    )


def last_attempt(record: SQSRecord) -> bool:
    """Whether SQS moves the message to the DLQ if this receive fails too."""
    return int(record.attributes.approximate_receive_count) >= MAX_RECEIVE_COUNT


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> dict[str, Any] | None:
    """One message: the shard's result (as reported), or ``None`` for a dropped body."""
    task = task_from_body(record.body)
    if task is None:
        return None
    keys = {"run_id": task.run_id, "region": task.region, "shard": task.index}
    logger.append_keys(**keys)
    try:
        result = service().process(task, last_attempt=last_attempt(record), deadline=time_left(lambda_context))
    except EcrcacheError:
        raise  # the service logged it and recorded the shard retrying: SQS delivers it again
    except Exception:  # a bug: its traceback in the log (the batch processor only reports the record failed)
        logger.exception("a shard could not be processed; SQS delivers it again")
        raise
    finally:
        logger.remove_keys(list(keys))
    return result.model_dump(mode="json")


def time_left(context: LambdaContext | None) -> Deadline | None:
    """No shard starts with less than :data:`MIN_REMAINING_MS` of the invocation left (``None``: no context)."""
    if context is None:
        return None
    return Deadline(lambda: (context.get_remaining_time_in_millis() - MIN_REMAINING_MS) / 1000)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

"""Reconciler function: desired-state stream, schedules, CloudTrail drift and pull-through events
-> one reconcile of the controller's ECR state (the trigger only chooses the scope).

The event is parsed, never guessed (:mod:`ecrcache.services.triggers`): a stream batch is one
reconcile whose failure reports every record back for retry; a batch of the event queue (ECR's
CloudTrail and pull-through events) is one reconcile per Region, and the messages of a Region that
could not be reconciled now -- its lease held by another run, ECR throttling, any failure, too little time
left -- are reported back: SQS delivers them again after the queue's visibility timeout, no error, nothing
lost (a message that is no ECR event the function reads is dropped and logged); an EventBridge
event invoking the function directly is handled once per event id; a schedule's input is a resync.
A pull-through cache action, successful or not, is first recorded as its rule's upstream health
(:mod:`ecrcache.services.upstream_health`); only a successful one asks for a reconcile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.code_identity import planner_code
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry, ecr_client
from ecrcache.adapters.event_forwarder import PLAN_READ_CONFIG, Boto3EventForwarder, events_client, partition_regions
from ecrcache.adapters.identity import caller_arn
from ecrcache.adapters.rotation_schedule import SecretsManagerRotationSchedule
from ecrcache.adapters.rotation_store import DynamoDbRotationStore
from ecrcache.adapters.secret_replication import SecretsManagerReplication
from ecrcache.adapters.shard_queue import SqsShardQueue
from ecrcache.adapters.state_events import EventBridgeStateEvents
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.config import ReconcilerSettings, reconciler_settings, stack_region
from ecrcache.engine.role_path import RoleScope
from ecrcache.errors import EcrcacheError
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.forwarders import ForwarderPhase, ForwarderSweep, forwarding
from ecrcache.services.reconcile import ReconcileService
from ecrcache.services.reconcile_shards import ShardFanout
from ecrcache.services.rotation_schedules import RotationSchedules
from ecrcache.services.rotation_sweeper import RotationSweeper
from ecrcache.services.triggers import (
    QueueBatch,
    RegionRun,
    StreamBatch,
    Trigger,
    cache_action,
    for_eventbridge,
    for_schedule,
    for_stream,
    own_roles,
    parse_event,
    read_queue,
)
from ecrcache.services.upstream_health import CacheAction, UpstreamHealthService

settings = reconciler_settings()
MIN_REMAINING_MS = 60_000
"""A queue batch's Region is not started with less time left (a fast read plus the deep reads of the repositories
its events name, under a 300 s timeout): its messages are reported back, not cut off by the timeout."""
_registries: dict[str, Boto3EcrRegistry] = {}
_rotation_secrets = SecretsManagerRotationSchedule()


def registry(region: str) -> Boto3EcrRegistry:
    """The Region's registry, its client under the ECR_REQUEST_RATE ceiling (kept across warm invocations)."""
    if region not in _registries:
        _registries[region] = Boto3EcrRegistry(region, ecr_client(region, request_rate=settings.ecr_request_rate))
    return _registries[region]


_forwarders: dict[str, Boto3EventForwarder] = {}


def event_forwarder(region: str) -> Boto3EventForwarder:
    if region not in _forwarders:
        _forwarders[region] = Boto3EventForwarder(region)
    return _forwarders[region]


def forwarder_probe(region: str) -> Boto3EventForwarder:
    """The deep run's sweep asks every Region of the partition: short timeouts, two attempts (made on use)."""
    return Boto3EventForwarder(region, events_client(region, PLAN_READ_CONFIG))


def shard_fanout(shards: ReconcilerSettings) -> ShardFanout | None:
    """The deep run's fan-out over the shard queue (``None``: no ``SHARD_QUEUE_URL``, no fan-out); its shards as
    large as ``SHARD_SIZE`` or as their reads fit a worker's time at ``ECR_REQUEST_RATE``."""
    if not shards.fan_out:
        return None
    return ShardFanout(
        SqsShardQueue(shards.shard_queue_url),
        shard_size=shards.shard_size_in_time,
        deadline_seconds=shards.shard_deadline_seconds,
    )


_status = DynamoDbStatusStore(settings.table_name)
_forwarding = forwarding(
    rule_name=settings.event_forward_rule_name,
    role_arn=settings.event_forward_role_arn,
    ignored_roles=settings.ignored_roles,
    home_region=stack_region(),
)
service = ReconcileService(
    desired=DynamoDbStateStore(settings.table_name),
    status=_status,
    registry=registry,
    clock=lambda: datetime.now(UTC),
    stack_region=stack_region(),
    warmer_role_arn=settings.warmer_role_arn,
    # Part of every Region's quiet digest: a new release's planner never trusts a digest the former one recorded.
    planner_code=planner_code,
    # Its iam:PassRole is narrowed to EcrRolePath: a rule naming a role outside it is blocked (Terminal), not tried.
    role_path=RoleScope.of_stack(settings.ecr_role_path, settings.ecr_role_account, stack_region()),
    # Credentials' secrets get a replica in every other Region their rules name (calls made in this Region).
    replicas=SecretsManagerReplication(),
    # A credential's rotation schedule (every_days / schedule) as its secret's, with the rotation function; an
    # abandoned rotation's AWSPENDING / staged token taken off (it would block every later rotation).
    schedules=RotationSchedules(
        secrets=_rotation_secrets,
        function_arn=settings.rotator_function_arn,
        sweeper=RotationSweeper(
            secrets=_rotation_secrets,
            records=DynamoDbRotationStore(settings.table_name),
            clock=lambda: datetime.now(UTC),
        ),
    ),
    # A rule's Synced / Terminal / Recoverable changing is announced on the default bus (Rule Condition Changed).
    events=EventBridgeStateEvents(),
    # ECR's events of every other Region a rule names reach this Region's bus through a forwarding rule there.
    forwarders=None
    if _forwarding is None
    else ForwarderPhase(
        forwarding=_forwarding,
        registry=event_forwarder,
        status=_status,
        clock=lambda: datetime.now(UTC),
        # Deep runs look in every Region of the partition for a forwarder no rule or record points them to.
        sweep=ForwarderSweep(regions=partial(partition_regions, _forwarding.partition), probe=forwarder_probe),
    ),
    # A deep run of a Region with more managed repositories than one shard queues them in shards for the reconcile
    # worker (README "Deep resync at scale"); without a shard queue every deep read stays in this invocation.
    shards=shard_fanout(settings),
)
upstream = UpstreamHealthService(status=service.status)
idempotency = IdempotencyConfig(expires_after_seconds=3600)
# The state table's client, not one of Powertools' own: a second client (in a session of its own) would load
# botocore's DynamoDB model again at every cold start; this one also retries as every client here (adaptive).
persistence = DynamoDBPersistenceLayer(
    table_name=settings.table_name,
    key_attr="pk",
    sort_key_attr="sk",
    expiry_attr="expires_at",
    boto3_client=_status.client,
)


def controller_roles() -> frozenset[str]:
    """The roles whose CloudTrail events are the controller's own writes: this function's (its caller ARN) and the
    reconcile worker's (``RECONCILE_WORKER_ROLE_ARN``)."""
    return own_roles(caller_arn(), settings.reconcile_worker_role_arn)


def run(trigger: Trigger | None) -> dict[str, Any]:
    """The invocation's answer: the run record, or ``{"ignored": true}`` for an event that asks for none."""
    if trigger is None:
        return {"ignored": True}
    for skipped in trigger.skipped:
        logger.warning("part of the event was not read", extra={"skipped": skipped})
    return service.reconcile(trigger.scope, trigger.kind, run_id=trigger.run_id).model_dump(mode="json")


def reconcile_batch(batch: StreamBatch) -> dict[str, Any]:
    """One reconcile covers the whole batch; if it cannot run, every record fails (Lambda retries them)."""
    try:
        run(for_stream(batch))
    except EcrcacheError as exc:
        logger.warning(
            "the batch's reconcile failed; all its records are reported for retry", extra={"error": str(exc)}
        )
        return {"batchItemFailures": [{"itemIdentifier": number} for number in batch.sequence_numbers]}
    return {"batchItemFailures": []}


def reconcile_queue(batch: QueueBatch, context: LambdaContext) -> dict[str, Any]:
    """The event queue's batch: cache actions recorded, then one reconcile per Region. A message whose Region
    could not be reconciled now (lease held, a failure, no time left in the invocation) is reported as a failure:
    SQS keeps it and delivers it again after the visibility timeout (after maxReceiveCount, its DLQ). A message
    that is not an ECR event this function reads is dropped (logged with its id): read again, it is no better.
    One Region's failure, whatever it is, fails that Region's messages only (the batch processor's way)."""
    read = read_queue(batch, own_roles=controller_roles())
    for message_id, problem in read.unreadable:
        logger.error(
            "an event of the queue could not be read: dropped", extra={"message_id": message_id, "problem": problem}
        )
    failed = _record_actions(read.actions)
    for region_run in read.runs:
        if context.get_remaining_time_in_millis() < MIN_REMAINING_MS:
            logger.warning(
                "too little time left for a Region's events: they come back after the queue's visibility timeout",
                extra={"scope": region_run.trigger.scope.describe(), "events": len(region_run.message_ids)},
            )
            failed.update(region_run.message_ids)
            continue
        if not _reconcile_region(region_run):
            failed.update(region_run.message_ids)
    metrics.add_metric(name="EcrEventsReceived", unit="Count", value=len(batch.Records))
    # dropped: the dashboard and this count show them (a drift event ECR changed the shape of is not lost unseen)
    metrics.add_metric(name="EcrEventsUnreadable", unit="Count", value=len(read.unreadable))
    return {"batchItemFailures": [{"itemIdentifier": r.messageId} for r in batch.Records if r.messageId in failed]}


def _record_actions(actions: Sequence[tuple[str, CacheAction]]) -> set[str]:
    """Record each cache action on its rule; the messages whose action was not recorded."""
    failed: set[str] = set()
    for message_id, action in actions:
        try:
            upstream.record(action)
        except EcrcacheError as exc:
            logger.warning("a cache action was not recorded", extra={"message_id": message_id, "error": str(exc)})
            failed.add(message_id)
        except Exception:  # a bug fails this message only, with its traceback in the log
            logger.exception("a cache action could not be recorded", extra={"message_id": message_id})
            failed.add(message_id)
    return failed


def _reconcile_region(region_run: RegionRun) -> bool:
    """One Region's reconcile for its events; ``False`` when they must come back (logged why)."""
    extra = {"scope": region_run.trigger.scope.describe(), "events": len(region_run.message_ids)}
    try:
        run(region_run.trigger)
    except EcrcacheError as exc:
        logger.info(
            "a Region's events were not reconciled now; they come back after the queue's visibility timeout",
            extra={**extra, "error": str(exc)},
        )
        return False
    except Exception:  # the batch's other Regions, done or to do, are not redone for it
        logger.exception("a Region's reconcile failed; its events come back after the visibility timeout", extra=extra)
        return False
    return True


def _handle_event(*, event_id: str, event: EventBridgeModel) -> dict[str, Any]:
    """One EventBridge event (delivered at least once: idempotent on its id, ignored ones included).

    A pull-through cache action is recorded on its rule first; one that asks for no reconcile (a
    failed pull) answers what it recorded."""
    action = cache_action(event)
    recorded = upstream.record(action) if action is not None else None
    trigger = for_eventbridge(event, own_roles=controller_roles())
    if trigger is None and recorded is not None:
        return {"upstream": recorded.as_dict()}
    return run(trigger)


handle_event: Callable[..., dict[str, Any]] = idempotent_function(
    data_keyword_argument="event_id", config=idempotency, persistence_store=persistence
)(_handle_event)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    match parse_event(event):
        case StreamBatch() as batch:  # desired items and reconcile requests
            return reconcile_batch(batch)
        case QueueBatch() as queued:  # CloudTrail drift, pull-through cache actions (the event queue)
            return reconcile_queue(queued, context)
        case EventBridgeModel() as bridge:  # CloudTrail drift, pull-through cache actions
            return handle_event(event_id=bridge.id, event=bridge)
        case schedule:  # a schedule's input
            return run(for_schedule(schedule))

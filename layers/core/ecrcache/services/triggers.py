"""What each reconciler trigger asks for: from the invocation's event to a :class:`Trigger` (pure).

:func:`from_event` parses the three shapes the template delivers with Powertools' parser models
(:func:`parse_event`), and says which reconcile each asks for:

* DynamoDB stream records of desired items: every Region, fast path (rules and templates are
  always planned in full; repositories of a changed rule get blind, idempotent writes).
* A reconcile request item written by ``POST /v1/reconcile``: its own run id and depth.
* The schedule: a fast resync, or a deep one (reads every repository's settings).
* CloudTrail ``AWS API Call via CloudTrail`` for ECR: the Region of the call (a rule, a template or a
  pull-time update exclusion changed), and a deep read of the repository it touched; calls made by
  the controller's own role are ignored (its own writes come back as events and must not trigger
  another reconcile of the same change).
* ``ECR Pull Through Cache Action``: a successful one may have created a repository, which gets its
  settings at once; every one, successful or not, is also an observation of the rule's upstream
  (:func:`cache_action`, recorded by :mod:`ecrcache.services.upstream_health`). A failed one asks
  for no reconcile: it changed nothing in ECR.

An event of any other shape is an :class:`UnknownEventError`, never a reconcile. No I/O, no clock,
no environment: the controller's own role comes in as a parameter. The reconciler's handler uses the
same steps (:func:`parse_event`, then ``for_*``): it needs the parsed shape to answer each delivery
the way its source expects (a partial batch response, idempotency on the EventBridge event id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Final, Literal

from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamModel,
    DynamoDBStreamRecordModel,
    EventBridgeModel,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ecrcache.engine.status import UpstreamObservation
from ecrcache.models.ecr_operations import REGISTRY_EVENTS, REPOSITORY_EVENTS
from ecrcache.models.events import (
    CACHE_ACTION_DETAIL_TYPE,
    CLOUDTRAIL_DETAIL_TYPE,
    CloudTrailDetail,
    PullThroughCacheActionDetail,
)
from ecrcache.models.status import ReconcileRequest, RunTrigger, UpstreamCheckSource
from ecrcache.services.reconcile import Scope
from ecrcache.services.upstream_health import CacheAction

EXPECTED_EVENTS: Final = (
    'a DynamoDB stream batch {"Records": [...]}, an EventBridge event, or a schedule input {"resync": "fast" | "deep"}'
)


class ScheduleInput(BaseModel):
    """What a schedule delivers: its ``Input`` in ``template.yaml``, as the whole event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resync: Literal["fast", "deep"]


class StreamBatch(DynamoDBStreamModel):
    """A batch of the state table's stream (Lambda never delivers an empty one). Keys and images
    arrive as DynamoDB JSON; the Powertools model deserialises them."""

    Records: list[DynamoDBStreamRecordModel] = Field(min_length=1)

    @property
    def sequence_numbers(self) -> list[str]:
        """The records' ids in a partial batch response (``batchItemFailures``)."""
        return [record.dynamodb.SequenceNumber for record in self.Records]


type ReconcilerEvent = StreamBatch | EventBridgeModel | ScheduleInput
_EVENT: Final[TypeAdapter[ReconcilerEvent]] = TypeAdapter(ReconcilerEvent)


class UnknownEventError(ValueError):
    """The reconciler was invoked with an event that is none of the shapes the template delivers."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """One reconcile to run: what it covers, the kind of trigger it records, and the run id it
    continues (a request's; ``None`` for a new one)."""

    scope: Scope
    kind: RunTrigger
    run_id: str | None = None
    skipped: tuple[str, ...] = ()
    """What the event held that could not be read (e.g. a malformed reconcile request): the caller logs it."""


def parse_event(event: object) -> ReconcilerEvent:
    """The invocation's event as one of the shapes the template delivers; :class:`UnknownEventError` otherwise."""
    try:
        return _EVENT.validate_python(event)
    except ValidationError as exc:
        got = f"keys {sorted(str(k) for k in event)}" if isinstance(event, dict) else f"a {type(event).__name__}"
        raise UnknownEventError(f"not a reconciler event (got {got}): expected {EXPECTED_EVENTS}") from exc


def from_event(event: object, *, own_role: str) -> Trigger | None:
    """The reconcile an invocation's event asks for, or ``None`` (an event to ignore).

    ``own_role`` is the ARN prefix every session of the controller's role shares (:func:`own_role_prefix`):
    CloudTrail events of its calls are ignored. Raises :class:`UnknownEventError` for an unknown shape,
    and pydantic's ``ValidationError`` (a ``ValueError`` too) for a known event with a malformed detail.
    """
    parsed = parse_event(event)
    if isinstance(parsed, StreamBatch):
        return for_stream(parsed)
    if isinstance(parsed, ScheduleInput):
        return for_schedule(parsed)
    return for_eventbridge(parsed, own_role=own_role)


def own_role_prefix(caller_arn: str) -> str:
    """``arn:aws:sts::<acct>:assumed-role/<role>/<session>`` -> the part every session of the role shares."""
    if ":assumed-role/" in caller_arn:
        head, _, rest = caller_arn.partition(":assumed-role/")
        return f"{head}:assumed-role/{rest.split('/', 1)[0]}/"
    return caller_arn


def for_stream(batch: StreamBatch) -> Trigger:
    """One reconcile for the batch. A reconcile request (``POST /v1/reconcile``) in it lends its run
    id and depth (the first one, if several)."""
    skipped: list[str] = []
    for record in batch.Records:
        image = record.dynamodb.NewImage
        try:
            request = ReconcileRequest.from_stream_image(
                record.dynamodb.Keys, image if isinstance(image, dict) else None
            )
        except ValidationError as exc:  # a request item written by hand: it must not block the stream
            fields = ", ".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()}))
            skipped.append(f"record {record.dynamodb.SequenceNumber}: a reconcile request with invalid {fields}")
            continue
        if request is not None:
            return Trigger(Scope(deep=request.deep), RunTrigger.API, run_id=request.run_id, skipped=tuple(skipped))
    return Trigger(Scope(), RunTrigger.STREAM, skipped=tuple(skipped))


def for_schedule(schedule: ScheduleInput) -> Trigger:
    """The template's schedules: a fast resync, or a deep one."""
    return Trigger(Scope(deep=schedule.resync == "deep"), RunTrigger.SCHEDULE)


def for_eventbridge(event: EventBridgeModel, *, own_role: str) -> Trigger | None:
    """A CloudTrail call or a pull-through cache action; any other detail type is ignored."""
    if event.detail_type == CLOUDTRAIL_DETAIL_TYPE:
        return for_cloudtrail(CloudTrailDetail.model_validate(event.detail), own_role=own_role)
    if event.detail_type == CACHE_ACTION_DETAIL_TYPE:
        return for_cache_action(PullThroughCacheActionDetail.model_validate(event.detail), event.region)
    return None


def _repository_name(detail: CloudTrailDetail) -> str | None:
    params = detail.request_parameters or {}
    name = params.get("repositoryName")
    if isinstance(name, str):
        return name
    arn = params.get("resourceArn")
    if isinstance(arn, str) and ":repository/" in arn:
        return arn.split(":repository/", 1)[1]
    return None


def for_cloudtrail(detail: CloudTrailDetail, *, own_role: str) -> Trigger | None:
    """The reconcile a CloudTrail event calls for, or ``None`` (our own call, a failed call, not ECR)."""
    if detail.event_source != "ecr.amazonaws.com" or detail.error_code:
        return None
    caller = detail.user_identity.arn or ""
    if own_role and caller.startswith(own_role):
        return None
    region = frozenset({detail.aws_region})
    if detail.event_name in REGISTRY_EVENTS:  # a rule, a template or the warmer's exclusion
        return Trigger(Scope(regions=region), RunTrigger.CLOUDTRAIL)
    if detail.event_name in REPOSITORY_EVENTS:
        name = _repository_name(detail)
        repos = frozenset({name}) if name else frozenset()
        return Trigger(Scope(regions=region, deep_repositories=repos), RunTrigger.CLOUDTRAIL)
    return None


def for_cache_action(detail: PullThroughCacheActionDetail, region: str) -> Trigger | None:
    """A successful pull-through import may have created a repository: read it deeply, apply settings.
    A failed one created nothing: no reconcile (its upstream health is recorded, :func:`cache_action`)."""
    if not detail.succeeded:
        return None
    return Trigger(
        Scope(regions=frozenset({region}), deep_repositories=frozenset({detail.repository_name})),
        RunTrigger.CACHE_EVENT,
    )


def cache_action(event: EventBridgeModel) -> CacheAction | None:
    """What a pull-through cache action tells about its rule's upstream; ``None`` for other events."""
    if event.detail_type != CACHE_ACTION_DETAIL_TYPE:
        return None
    detail = PullThroughCacheActionDetail.model_validate(event.detail)
    at = event.time if event.time.tzinfo is not None else event.time.replace(tzinfo=UTC)
    seen = UpstreamObservation(
        source=UpstreamCheckSource.PULL,
        at=at,
        healthy=detail.succeeded,
        failure_code=None if detail.succeeded else detail.failure_code,
        failure=None if detail.succeeded else detail.failure_reason,
        repository=detail.repository_name,
        image=detail.image_tag or detail.image_digest,
    )
    return CacheAction(event.region, detail.ecr_repository_prefix, detail.repository_name, seen)

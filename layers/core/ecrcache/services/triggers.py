"""What each reconciler trigger asks for: from the invocation's event to a :class:`Trigger` (pure).

:func:`from_event` parses the shapes the template delivers with Powertools' parser models
(:func:`parse_event`), and says which reconcile each asks for:

* DynamoDB stream records of desired items: every Region, fast path (rules and templates are
  always planned in full; repositories of a changed rule get blind, idempotent writes).
* A reconcile request item written by ``POST /v1/reconcile``: its own run id and depth.
* The schedule: a fast resync, or a deep one (reads every repository's settings).
* CloudTrail ``AWS API Call via CloudTrail`` for ECR: the Region of the call (a rule, a template or a
  pull-time update exclusion changed), and a deep read of the repository it touched; calls made by
  the controller's own roles (the reconciler's, the reconcile worker's) are ignored: their writes come back
  as events and must not trigger another reconcile of the same change (a shard run writing thousands of
  repositories would queue as many reconciles competing for ECR's rate).
* ``ECR Pull Through Cache Action``: a successful one may have created a repository, which gets its
  settings at once; every one, successful or not, is also an observation of the rule's upstream
  (:func:`cache_action`, recorded by :mod:`ecrcache.services.upstream_health`). A failed one asks
  for no reconcile: it changed nothing in ECR.

The template delivers the two ECR events through a queue (``EcrEvents``, an SQS batch whose bodies are
EventBridge events): :func:`read_queue` reads a batch into one :class:`RegionRun` per Region (the
batch's events coalesced: one reconcile, every repository they touched read deeply), the cache actions
to record, and the messages it could not read. An EventBridge event invoking the function directly
(by hand, ``sam local invoke``) is still read on its own.

An event of any other shape is an :class:`UnknownEventError`, never a reconcile. No I/O, no clock,
no environment: the controller's own roles come in as a parameter (:func:`own_roles`). The reconciler's handler uses the
same steps (:func:`parse_event`, then ``for_*``): it needs the parsed shape to answer each delivery
the way its source expects (a partial batch response, idempotency on the EventBridge event id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Final, Literal

from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamModel,
    DynamoDBStreamRecordModel,
    EventBridgeModel,
    SqsModel,
    SqsRecordModel,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ecrcache.engine.status import UpstreamObservation
from ecrcache.models.ecr_operations import REGISTRY_EVENTS, REPOSITORY_EVENTS
from ecrcache.models.events import (
    CACHE_ACTION_DETAIL_TYPE,
    CLOUDTRAIL_DETAIL_TYPE,
    CloudTrailDetail,
    CloudTrailIdentity,
    PullThroughCacheActionDetail,
)
from ecrcache.models.status import ReconcileRequest, RunTrigger, UpstreamCheckSource
from ecrcache.services.reconcile import Scope
from ecrcache.services.upstream_health import CacheAction

EXPECTED_EVENTS: Final = (
    'a DynamoDB stream batch {"Records": [...]}, an SQS batch of EventBridge events, an EventBridge event, '
    'or a schedule input {"resync": "fast" | "deep"}'
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


class QueueBatch(SqsModel):
    """A batch of the reconciler's event queue (``EcrEvents``): each body is an EventBridge event, read
    one by one (:func:`read_queue`) so that one unreadable message fails alone."""

    Records: list[SqsRecordModel] = Field(min_length=1)


type ReconcilerEvent = StreamBatch | QueueBatch | EventBridgeModel | ScheduleInput
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


def from_event(event: object, *, own_roles: Collection[str]) -> Trigger | None:
    """The reconcile an invocation's event asks for, or ``None`` (an event to ignore).

    ``own_roles`` are the ARN prefixes every session of each of the controller's roles shares (:func:`own_roles`):
    CloudTrail events of their calls are ignored. Raises :class:`UnknownEventError` for an unknown shape,
    and pydantic's ``ValidationError`` (a ``ValueError`` too) for a known event with a malformed detail.
    """
    parsed = parse_event(event)
    if isinstance(parsed, StreamBatch):
        return for_stream(parsed)
    if isinstance(parsed, ScheduleInput):
        return for_schedule(parsed)
    if isinstance(parsed, QueueBatch):
        return _single_run(read_queue(parsed, own_roles=own_roles))
    return for_eventbridge(parsed, own_roles=own_roles)


def _single_run(read: QueuedEvents) -> Trigger | None:
    """A queue batch as one trigger: it asks for one reconcile per Region (the handler runs each,
    :func:`read_queue`); as a single trigger only when it names one Region or none."""
    if read.unreadable:
        raise ValueError(f"{len(read.unreadable)} message(s) of the batch could not be read: {read.unreadable[0][1]}")
    if len(read.runs) > 1:
        raise ValueError(f"the batch asks for a reconcile in each of {len(read.runs)} Regions: read it with read_queue")
    return read.runs[0].trigger if read.runs else None


def own_role_prefix(caller_arn: str) -> str:
    """``arn:aws:sts::<acct>:assumed-role/<role>/<session>`` -> the part every session of the role shares."""
    if ":assumed-role/" in caller_arn:
        head, _, rest = caller_arn.partition(":assumed-role/")
        return f"{head}:assumed-role/{rest.split('/', 1)[0]}/"
    return caller_arn


def role_session_prefix(role_arn: str) -> str:
    """``arn:<partition>:iam::<acct>:role/<path/><name>`` -> ``arn:<partition>:sts::<acct>:assumed-role/<name>/``,
    the part every session of the role shares (a session's ARN names the role without its path: CloudTrail User
    Guide, "CloudTrail userIdentity element"). Anything but a role ARN is returned unchanged."""
    parts = role_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[5].startswith("role/"):
        return role_arn
    return f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{parts[5].rsplit('/', 1)[-1]}/"


def own_roles(caller_arn: str, *role_arns: str) -> frozenset[str]:
    """The session prefixes of the controller's roles writing ECR: its own (from its caller ARN,
    :func:`own_role_prefix`) and the other functions' (their IAM role ARNs, :func:`role_session_prefix`;
    empty ones skipped)."""
    return frozenset({own_role_prefix(caller_arn), *(role_session_prefix(arn) for arn in role_arns if arn)})


def _is_own(identity: CloudTrailIdentity, own: Collection[str]) -> bool:
    """A session of one of the controller's roles: by the session's ARN, or by its issuer's (the role's) ARN."""
    caller = identity.arn or ""
    issuer = identity.issuer_arn
    return any(prefix and caller.startswith(prefix) for prefix in own) or (
        issuer is not None and role_session_prefix(issuer) in own
    )


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


def for_eventbridge(event: EventBridgeModel, *, own_roles: Collection[str]) -> Trigger | None:
    """A CloudTrail call or a pull-through cache action; any other detail type is ignored."""
    if event.detail_type == CLOUDTRAIL_DETAIL_TYPE:
        return for_cloudtrail(CloudTrailDetail.model_validate(event.detail), own_roles=own_roles)
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


def for_cloudtrail(detail: CloudTrailDetail, *, own_roles: Collection[str]) -> Trigger | None:
    """The reconcile a CloudTrail event calls for, or ``None`` (our own call, a failed call, not ECR)."""
    if detail.event_source != "ecr.amazonaws.com" or detail.error_code:
        return None
    if _is_own(detail.user_identity, own_roles):
        return None
    region = frozenset({detail.aws_region})
    if detail.event_name in REGISTRY_EVENTS:  # a rule, a template or the warmer's exclusion
        return Trigger(Scope(regions=region), RunTrigger.CLOUDTRAIL)
    if detail.event_name in REPOSITORY_EVENTS:
        name = _repository_name(detail)
        repos = frozenset({name}) if name else frozenset()
        if detail.event_name == "CreateRepository":  # as the pull-through import's event: settled once
            return Trigger(Scope(regions=region, new_repositories=repos), RunTrigger.CLOUDTRAIL)
        return Trigger(Scope(regions=region, deep_repositories=repos), RunTrigger.CLOUDTRAIL)
    return None


def for_cache_action(detail: PullThroughCacheActionDetail, region: str) -> Trigger | None:
    """A successful pull-through import may have created a repository: read it deeply, apply settings, unless
    a run already settled it since it was created (its ``CreateRepository`` event came first, or this is an
    import into a repository cached before: :attr:`Scope.new_repositories`). A failed one created nothing: no
    reconcile (its upstream health is recorded, :func:`cache_action`)."""
    if not detail.succeeded:
        return None
    return Trigger(
        Scope(regions=frozenset({region}), new_repositories=frozenset({detail.repository_name})),
        RunTrigger.CACHE_EVENT,
    )


@dataclass(frozen=True, slots=True)
class RegionRun:
    """One reconcile a queue batch asks for (its events in one Region, coalesced) and the messages it answers for."""

    trigger: Trigger
    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueuedEvents:
    """What a queue batch asks for: at most one reconcile per Region, the cache actions to record (with their
    message), and the messages that could not be read (with why: ids and field names only, never a body)."""

    runs: tuple[RegionRun, ...]
    actions: tuple[tuple[str, CacheAction], ...]
    unreadable: tuple[tuple[str, str], ...]


def read_queue(batch: QueueBatch, *, own_roles: Collection[str]) -> QueuedEvents:
    """Read every message of the batch; coalesce the reconciles they ask for (:func:`coalesce`)."""
    triggers: list[tuple[str, Trigger]] = []
    actions: list[tuple[str, CacheAction]] = []
    unreadable: list[tuple[str, str]] = []
    for record in batch.Records:
        try:
            event = EventBridgeModel.model_validate_json(str(record.body))
            action = cache_action(event)
            trigger = for_eventbridge(event, own_roles=own_roles)
        except ValidationError as exc:
            fields = ", ".join(sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()}))
            unreadable.append((record.messageId, f"not an ECR event this function reads (invalid {fields})"))
            continue
        if action is not None:
            actions.append((record.messageId, action))
        if trigger is not None:
            triggers.append((record.messageId, trigger))
    return QueuedEvents(runs=coalesce(triggers), actions=tuple(actions), unreadable=tuple(unreadable))


def coalesce(triggers: Sequence[tuple[str, Trigger]]) -> tuple[RegionRun, ...]:
    """One reconcile per Region for a batch of event triggers: the repositories they name are all read deeply
    (the ones named as new only if not settled yet), and the run is a CloudTrail one if any of its events is
    (else a cache event). Regions in sorted order."""
    by_region: dict[str, list[tuple[str, Trigger]]] = defaultdict(list)
    for message_id, trigger in triggers:
        for region in sorted(trigger.scope.regions or ()):
            by_region[region].append((message_id, trigger))
    return tuple(_region_run(region, by_region[region]) for region in sorted(by_region))


def _region_run(region: str, group: Iterable[tuple[str, Trigger]]) -> RegionRun:
    ids: list[str] = []
    repositories: set[str] = set()
    new: set[str] = set()
    kinds: set[RunTrigger] = set()
    for message_id, trigger in group:
        if message_id not in ids:
            ids.append(message_id)
        repositories |= trigger.scope.deep_repositories
        new |= trigger.scope.new_repositories
        kinds.add(trigger.kind)
    kind = RunTrigger.CLOUDTRAIL if RunTrigger.CLOUDTRAIL in kinds else RunTrigger.CACHE_EVENT
    scope = Scope(
        regions=frozenset({region}),
        deep_repositories=frozenset(repositories),
        new_repositories=frozenset(new),
    )
    return RegionRun(Trigger(scope, kind), tuple(ids))


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

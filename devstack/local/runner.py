"""The local event runner: each function's ``Events`` from ``template.yaml``, delivered on one machine.

``make local`` has no Lambda service, so nothing would ever call the reconciler for a table write, a
schedule or an ECR event. :class:`EventRunner` plays that role for every event a function declares
in the template -- wired from the resolved :class:`~devstack.local.template.FunctionSpec`, so the
local stack and the deployed one cannot drift: an event type the runner cannot deliver fails
:meth:`EventRunner.deliveries` (and a contract test) with :class:`UnsupportedEventError`.

===================  ===================================================================================
event type           delivered by
===================  ===================================================================================
``DynamoDB``         this runner: a stream poller per shard (Lambda's event source mapping)
``Schedule``         this runner: a scheduler thread per schedule on a virtual clock
``EventBridgeRule``  this runner: an EventBridge rule with an SQS target in the embedded AWS, polled
``Api``              :mod:`devstack.local.gateway` (the local API gateway), not this runner
===================  ===================================================================================

DynamoDB streams (Lambda event source mapping)
----------------------------------------------
* Every shard of the stream is polled (``dynamodbstreams`` against the embedded AWS); shards that
  appear later are read from ``TRIM_HORIZON`` after their parent shard is drained, shards that close
  are drained and dropped. :meth:`EventRunner.setup` positions the initial shards per
  ``StartingPosition`` (``LATEST``: records written after ``setup()``; ``TRIM_HORIZON``).
* A failed ``GetRecords`` is retried with the same iterator (backoff), so no record is skipped. Only
  an iterator that can never work again (``ExpiredIteratorException``, ``TrimmedDataAccessException``)
  is replaced: ``AFTER_SEQUENCE_NUMBER`` of the last record read, else the shard's starting position;
  for ``LATEST`` that is ``TRIM_HORIZON`` skipping records whose ``ApproximateCreationDateTime`` (whole
  seconds) is before the second in which ``setup()`` positioned the shard (so records written in that
  same second just before ``setup()`` may be delivered too: at least once, never skipped).
* Each record is converted to exactly what Lambda delivers: ``eventID, eventName, eventVersion,
  eventSource, awsRegion, dynamodb {ApproximateCreationDateTime (epoch seconds), Keys, NewImage,
  OldImage, SequenceNumber, SizeBytes, StreamViewType}, eventSourceARN``, attribute values in
  DynamoDB JSON (binary values base64, as in Lambda events).
* ``FilterCriteria.Filters[].Pattern``: a record is delivered if any pattern matches (moto's
  EventBridge pattern matcher, see :mod:`.filters`); records matching none are dropped.
* Batches of up to ``BatchSize`` records; a batch waits at most ``MaximumBatchingWindowInSeconds``
  after its first record arrived to fill up. The function gets ``{"Records": [...]}``.
* Records of a shard are delivered in order, one batch at a time; a failing batch blocks its shard.
* With ``FunctionResponseTypes: [ReportBatchItemFailures]``, ``{"batchItemFailures": [{"itemIdentifier":
  <SequenceNumber>}]}`` retries from the lowest failed record (it and those after it in the batch);
  an empty or missing list is success; a null/empty/unknown ``itemIdentifier`` fails the whole batch
  (Lambda's documented rules). A handler error (:class:`~.invoke.FunctionError`, including a timeout:
  :class:`~.invoke.FunctionTimeout`, ``Sandbox.Timedout``) or an unreachable host
  (:class:`~.invoke.InvokeError`) retries the whole batch; ``BisectBatchOnFunctionError`` splits
  it in two first (not counted as a retry).
* ``MaximumRetryAttempts`` (-1 = until the record expires) and ``MaximumRecordAgeInSeconds`` bound the
  retries; then Lambda's on-failure record (``requestContext``, ``responseContext``, ``version``,
  ``timestamp``, ``DDBStreamBatchInfo``) goes to the ``DestinationConfig.OnFailure`` SQS queue and the
  shard moves on.

EventBridge rules and schedules (asynchronous invocation)
---------------------------------------------------------
* ``EventBridgeRule``: :meth:`EventRunner.setup` puts a rule ``<stack>-<function>-<event>`` with the
  event's ``Pattern`` on its bus (``default`` unless ``EventBusName``) and an SQS queue of the same name
  as its target; the embedded AWS matches and delivers its events (moto's matcher), the runner polls
  the queue and invokes the function with the event envelope (``Input``/``InputPath`` applied).
* ``Schedule``: ``rate(N minute|minutes|hour|hours|day|days)`` and 6-field ``cron(...)`` (see
  :mod:`.schedule`) on a virtual clock: virtual now = start + real elapsed x ``schedule_speed``; a
  schedule fires when virtual now passes its next fire time (speed 60 fires ``rate(15 minutes)``
  every 15 real seconds). The event is the parsed ``Input`` or else the ``Scheduled Event`` envelope.
  A schedule that is disabled in the template (``Enabled: false`` / ``State: DISABLED``) is not run;
  the runner also creates the schedule's rule in the embedded AWS and skips a fire while that rule is
  disabled there (``aws events disable-rule`` works locally too). :meth:`EventRunner.fire` runs a
  schedule now.
* Both are asynchronous invocations, with AWS's two layers of retries:

  - **EventBridge -> Lambda** (the invoke itself is refused: locally an :class:`~.invoke.InvokeError`
    on the first attempt): retried per the event's ``RetryPolicy`` (``MaximumRetryAttempts``, default
    185; ``MaximumEventAgeInSeconds``, default 86400), then the event goes to ``DeadLetterConfig.Arn``
    with EventBridge's message attributes (``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``,
    ``ERROR_MESSAGE``, ``EXHAUSTED_RETRY_CONDITION``, ``RETRY_ATTEMPTS``). An event already older than
    ``MaximumEventAgeInSeconds`` (its envelope ``time``) is dead-lettered without an invocation.
  - **Lambda's asynchronous retries** (the handler fails: :class:`~.invoke.FunctionError`, including
    a timeout -- :class:`~.invoke.FunctionTimeout`, ``errorType`` ``Sandbox.Timedout`` in the record --,
    or the host fails on a retry): 1 + the function's ``EventInvokeConfig.MaximumRetryAttempts`` (default 2)
    attempts within ``EventInvokeConfig.MaximumEventAgeInSeconds`` (default 21600), then Lambda's
    invocation record (``requestContext.condition: RetriesExhausted|EventAgeExceeded``,
    ``requestPayload``, ``responseContext``, ``responsePayload``) goes to
    ``EventInvokeConfig.DestinationConfig.OnFailure``; without one the event is discarded (logged).
    ``OnSuccess`` destinations get the success record.

  A rule's queue message is deleted once the event is delivered or dead-lettered.

Stopping
--------
:meth:`EventRunner.stop` returns within about 1.2 s, every thread ended, when nothing is being
invoked. A thread in the middle of an invocation finishes it (logs its outcome; sends a destination
record if it was the last attempt) but starts no further invocation -- no retry, no next batch or
event -- and then ends; :meth:`EventRunner.threads` lists it until then. A rule's event whose
delivery was cut short is made visible in its queue again (the next runner delivers it).

Where local differs from AWS
----------------------------
* Retry delays are a short exponential backoff (``retry_backoff`` doubling up to ``max_backoff``),
  not Lambda's 1 and 2 minutes (async) or the stream's backoff; the counts and destinations are AWS's.
* One invocation at a time per event source (per shard for streams): no concurrency, no
  ``ParallelizationFactor`` > 1 (accepted, run as 1), no 6 MB payload limit, no throttling.
* Schedules run on the virtual clock (``time`` in a ``Scheduled Event`` is the virtual fire time);
  fire times missed while a delivery was running are coalesced into one fire.
* The function ARN in records is ``arn:aws:lambda:<region>:<account>:function:<stack>-<function>``;
  the account is the embedded AWS's (``sts:GetCallerIdentity``) unless ``account_id`` is given.
* The embedded DynamoDB (moto) has one shard per stream that never closes or splits; the shard
  handling above is there for fidelity, not exercised by it. Idle polling costs a few requests a
  second per event source (``poll_interval``).
* A function's own ``DeadLetterQueue`` property is not read (only ``EventInvokeConfig`` destinations).
* Not reproduced (rejected with :class:`UnsupportedEventError`, so they cannot be used unnoticed):
  ``StartingPosition: AT_TIMESTAMP``, ``TumblingWindowInSeconds``, ``InputTransformer``, an
  ``InputPath`` other than ``$``/``$.a.b``, SAM-created dead-letter queues (``DeadLetterConfig.Type``)
  and non-SQS destinations.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

import boto3
from botocore.config import Config

from devstack.local.filters import FilterSet, PatternError, compile_pattern
from devstack.local.invoke import FunctionError, Invoke, InvokeError
from devstack.local.schedule import AwsCron, Rate, ScheduleError, parse_schedule
from devstack.local.template import FunctionEvent, FunctionSpec, TemplateError

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

__all__ = [
    "DELIVERED_ELSEWHERE",
    "LOCALLY_DELIVERED",
    "Delivery",
    "EventRunner",
    "UnsupportedEventError",
]

LOCALLY_DELIVERED: Final = frozenset({"DynamoDB", "Schedule", "EventBridgeRule"})
"""Event types this runner delivers."""
DELIVERED_ELSEWHERE: Final = {"Api": "the local API gateway"}
"""Event types another part of the local stack delivers (``Api``: :mod:`devstack.local.gateway`)."""

# Properties the runner reproduces (or that change nothing locally); anything else is rejected.
_STREAM_PROPERTIES: Final = frozenset(
    {
        "Stream",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError",
        "FunctionResponseTypes",
        "DestinationConfig",
        "FilterCriteria",
        "Enabled",
        "ParallelizationFactor",  # run as 1 locally (stricter ordering, same results)
        "KmsKeyArn",  # encrypts filter criteria at rest: nothing to do locally
        "MetricsConfig",
    }
)
_SCHEDULE_PROPERTIES: Final = frozenset(
    {"Schedule", "Input", "Enabled", "State", "Name", "Description", "RetryPolicy", "DeadLetterConfig", "Target"}
)
_RULE_PROPERTIES: Final = frozenset(
    {"Pattern", "EventBusName", "Input", "InputPath", "RetryPolicy", "DeadLetterConfig", "Target", "RuleName", "State"}
)

# AWS defaults.
_EVENTBRIDGE_RETRIES: Final = 185
_EVENTBRIDGE_MAX_AGE: Final = 86_400
_ASYNC_RETRIES: Final = 2
_ASYNC_MAX_AGE: Final = 21_600
_STREAM_BATCH_SIZE: Final = 100
_STREAM_BATCH_SIZE_MAX: Final = 10_000
_STREAM_WINDOW_MAX: Final = 300
_RULE_NAME_LIMIT: Final = 64
# A received rule message stays invisible while the runner works on it (it is deleted when done,
# made visible again when the runner stops first).
_IN_FLIGHT_VISIBILITY: Final = 43_200
_GET_RECORDS_LIMIT: Final = 1000
# GetRecords errors after which the iterator is replaced (an iterator that can never work again).
_REPOSITION_ERRORS: Final = frozenset({"ExpiredIteratorException", "TrimmedDataAccessException"})
_STOP_JOIN_SECONDS: Final = 1.2
_SIMPLE_PATH: Final = re.compile(r"^\$(\.[A-Za-z0-9_-]+)*$")


class UnsupportedEventError(TemplateError):
    """A function event the local stack cannot deliver (names the function, event and type)."""

    def __init__(self, function: str, event: str, event_type: str, reason: str | None = None) -> None:
        detail = reason or (
            f"the local stack delivers {', '.join(sorted(LOCALLY_DELIVERED | DELIVERED_ELSEWHERE.keys()))} events"
        )
        super().__init__(f"{function} event {event} (Type: {event_type}) has no local delivery: {detail}")
        self.function = function
        self.event = event
        self.event_type = event_type


@dataclass(frozen=True)
class Delivery:
    """How one function event is delivered locally (``description`` carries the template's values)."""

    function: str
    event: str
    type: str
    description: str


# --------------------------------------------------------------------------------------------------
# What each event means (computed from the template, no AWS calls)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AsyncPolicy:
    """The two retry layers of an asynchronous invocation (module docstring)."""

    eventbridge_retries: int
    eventbridge_max_age: int
    dead_letter_arn: str | None
    function_retries: int
    function_max_age: int
    on_failure_arn: str | None
    on_success_arn: str | None

    def describe(self) -> str:
        text = f"retries={self.eventbridge_retries} max-age={self.eventbridge_max_age}s"
        if self.dead_letter_arn:
            text += f" → DLQ {self.dead_letter_arn}"
        text += f"; function errors: retries={self.function_retries} max-age={self.function_max_age}s"
        text += f" → on-failure {self.on_failure_arn}" if self.on_failure_arn else " → discarded"
        if self.on_success_arn:
            text += f", on-success {self.on_success_arn}"
        return text


@dataclass(frozen=True)
class _Source(ABC):
    function: str
    event: str
    type: str

    @property
    def label(self) -> str:
        return f"{self.function} ← {self.event}"

    @abstractmethod
    def description(self) -> str: ...


@dataclass(frozen=True)
class _ElsewhereSource(_Source):
    properties: Mapping[str, Any]

    def description(self) -> str:
        method, path = self.properties.get("Method"), self.properties.get("Path")
        route = f": {str(method).upper()} {path}" if method and path else ""
        return f"delivered by {DELIVERED_ELSEWHERE[self.type]}{route}"


@dataclass(frozen=True)
class _StreamSource(_Source):
    stream_arn: str
    starting_position: str
    batch_size: int
    window: float
    max_retries: int
    max_record_age: int
    bisect: bool
    report_failures: bool
    on_failure_arn: str | None
    filters: FilterSet
    enabled: bool

    def description(self) -> str:
        patterns = " | ".join(self.filters.raw)
        text = f"stream {self.stream_arn} from {self.starting_position} filters={len(self.filters)}"
        text += f" [{patterns}]" if patterns else ""
        text += f" batch={self.batch_size} window={_number(self.window)}s"
        text += f" retries={'forever' if self.max_retries < 0 else self.max_retries}"
        if self.max_record_age >= 0:
            text += f" max-record-age={self.max_record_age}s"
        if self.bisect:
            text += " bisect-on-error"
        if self.report_failures:
            text += " ReportBatchItemFailures"
        text += f" → DLQ {self.on_failure_arn}" if self.on_failure_arn else " → discarded"
        return text + ("" if self.enabled else " (disabled)")


@dataclass(frozen=True)
class _RuleSource(_Source):
    rule_name: str
    queue_name: str
    bus: str
    pattern: Mapping[str, Any]
    enabled: bool
    input: str | None
    input_path: str | None
    policy: _AsyncPolicy

    def description(self) -> str:
        text = f"rule {self.rule_name} on bus {self.bus} pattern={_compact(self.pattern)} via queue {self.queue_name}"
        if self.input is not None:
            text += f" input={self.input}"
        if self.input_path is not None:
            text += f" input-path={self.input_path}"
        return f"{text} {self.policy.describe()}" + ("" if self.enabled else " (disabled)")


@dataclass(frozen=True)
class _ScheduleSource(_Source):
    rule_name: str
    expression: str
    schedule: Rate | AwsCron
    input: str | None
    enabled: bool
    policy: _AsyncPolicy

    def description(self) -> str:
        text = f"schedule {self.expression}"
        text += f" input={self.input}" if self.input is not None else " (Scheduled Event)"
        return f"{text} {self.policy.describe()}" + ("" if self.enabled else " (disabled)")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _records(count: int) -> str:
    return f"{count} record" if count == 1 else f"{count} records"


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value >= 0.1 else f"{value:.2g}s"


def _physical_name(stack: str, function: str, event: str, limit: int = _RULE_NAME_LIMIT) -> str:
    """``<stack>-<function>-<event>``, shortened with a hash to fit EventBridge/SQS name limits."""
    name = f"{stack}-{function}-{event}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


class _Planner:
    """Turns one :class:`FunctionEvent` into a source, or raises :class:`UnsupportedEventError`."""

    def __init__(self, stack: str, spec: FunctionSpec, event: FunctionEvent) -> None:
        self.stack = stack
        self.spec = spec
        self.event = event
        self.props: Mapping[str, Any] = event.properties or {}

    def fail(self, reason: str | None = None) -> UnsupportedEventError:
        return UnsupportedEventError(self.spec.logical_id, self.event.name, self.event.type, reason)

    def invalid(self, reason: str) -> TemplateError:
        return TemplateError(f"{self.spec.logical_id} event {self.event.name} ({self.event.type}): {reason}")

    def plan(self) -> _Source:
        kind = self.event.type
        if kind in DELIVERED_ELSEWHERE:
            return _ElsewhereSource(self.spec.logical_id, self.event.name, kind, self.props)
        if kind == "DynamoDB":
            return self.stream()
        if kind == "Schedule":
            return self.schedule()
        if kind == "EventBridgeRule":
            return self.rule()
        raise self.fail()

    def check_properties(self, allowed: frozenset[str]) -> None:
        unknown = sorted(set(self.props) - allowed)
        if unknown:
            raise self.fail(f"the local runner does not reproduce {', '.join(unknown)}")

    def integer(self, mapping: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
        value = mapping.get(key, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.invalid(f"{key} must be an integer, not {value!r}") from None
        if not low <= number <= high:
            raise self.invalid(f"{key} must be {low}..{high}, not {number}")
        return number

    def flag(self, mapping: Mapping[str, Any], key: str, default: bool) -> bool:
        value = mapping.get(key, default)
        if isinstance(value, str):
            return value.strip().lower() == "true"
        return bool(value)

    def enabled(self) -> bool:
        if "State" in self.props:
            return str(self.props["State"]).upper() == "ENABLED"
        return self.flag(self.props, "Enabled", default=True)

    def sqs_arn(self, value: Any, what: str) -> str:
        arn = str(value or "")
        if not arn.startswith("arn:") or arn.split(":")[2:3] != ["sqs"]:
            raise self.fail(f"{what} {arn or '(none)'} is not an SQS queue ARN; locally only SQS destinations exist")
        return arn

    def destination(self, config: Any, key: str) -> str | None:
        if not isinstance(config, Mapping) or not isinstance(config.get(key), Mapping):
            return None
        target = config[key]
        kind = str(target.get("Type", "SQS")).upper()
        if kind != "SQS":
            raise self.fail(f"DestinationConfig.{key} of Type {kind}: locally only SQS destinations exist")
        return self.sqs_arn(target.get("Destination"), f"DestinationConfig.{key}")

    # ---- DynamoDB -------------------------------------------------------------------------------

    def stream(self) -> _StreamSource:
        self.check_properties(_STREAM_PROPERTIES)
        arn = str(self.props.get("Stream") or "")
        if ":dynamodb:" not in arn or "/stream/" not in arn:
            raise self.invalid(f"Stream must be a DynamoDB stream ARN, not {arn!r}")
        position = str(self.props.get("StartingPosition", "")).upper()
        if position == "AT_TIMESTAMP":
            raise self.fail("StartingPosition AT_TIMESTAMP is not reproduced locally")
        if position not in {"LATEST", "TRIM_HORIZON"}:
            raise self.invalid(f"StartingPosition must be LATEST or TRIM_HORIZON, not {position!r}")
        window = self.props.get("MaximumBatchingWindowInSeconds", 0)
        try:
            window_seconds = float(window)
        except (TypeError, ValueError):
            raise self.invalid(f"MaximumBatchingWindowInSeconds must be a number, not {window!r}") from None
        if not 0 <= window_seconds <= _STREAM_WINDOW_MAX:
            raise self.invalid(f"MaximumBatchingWindowInSeconds must be 0..{_STREAM_WINDOW_MAX}")
        response_types = self.props.get("FunctionResponseTypes") or []
        if not isinstance(response_types, list) or set(response_types) - {"ReportBatchItemFailures"}:
            raise self.invalid(f"FunctionResponseTypes must be [ReportBatchItemFailures], not {response_types!r}")
        max_age = self.integer(self.props, "MaximumRecordAgeInSeconds", -1, -1, 604_800)
        try:
            filters = FilterSet.from_criteria(self.props.get("FilterCriteria"))
        except PatternError as exc:
            raise self.invalid(f"FilterCriteria: {exc}") from None
        return _StreamSource(
            function=self.spec.logical_id,
            event=self.event.name,
            type=self.event.type,
            stream_arn=arn,
            starting_position=position,
            batch_size=self.integer(self.props, "BatchSize", _STREAM_BATCH_SIZE, 1, _STREAM_BATCH_SIZE_MAX),
            window=window_seconds,
            max_retries=self.integer(self.props, "MaximumRetryAttempts", -1, -1, 10_000),
            max_record_age=max_age,
            bisect=self.flag(self.props, "BisectBatchOnFunctionError", default=False),
            report_failures="ReportBatchItemFailures" in response_types,
            on_failure_arn=self.destination(self.props.get("DestinationConfig"), "OnFailure"),
            filters=filters,
            enabled=self.flag(self.props, "Enabled", default=True),
        )

    # ---- asynchronous (Schedule, EventBridgeRule) ------------------------------------------------

    def policy(self) -> _AsyncPolicy:
        retry = self.props.get("RetryPolicy") or {}
        dead_letter = self.props.get("DeadLetterConfig") or {}
        if not isinstance(retry, Mapping) or not isinstance(dead_letter, Mapping):
            raise self.invalid("RetryPolicy and DeadLetterConfig are mappings")
        if "Type" in dead_letter or "QueueLogicalId" in dead_letter:
            raise self.fail("DeadLetterConfig.Type (a queue SAM creates) is not reproduced; give DeadLetterConfig.Arn")
        dead_letter_arn = self.sqs_arn(dead_letter["Arn"], "DeadLetterConfig.Arn") if dead_letter.get("Arn") else None
        invoke_config = self.spec.event_invoke_config or {}
        destinations = invoke_config.get("DestinationConfig")
        return _AsyncPolicy(
            eventbridge_retries=self.integer(retry, "MaximumRetryAttempts", _EVENTBRIDGE_RETRIES, 0, 185),
            eventbridge_max_age=self.integer(retry, "MaximumEventAgeInSeconds", _EVENTBRIDGE_MAX_AGE, 60, 86_400),
            dead_letter_arn=dead_letter_arn,
            function_retries=self.integer(invoke_config, "MaximumRetryAttempts", _ASYNC_RETRIES, 0, 2),
            function_max_age=self.integer(invoke_config, "MaximumEventAgeInSeconds", _ASYNC_MAX_AGE, 60, 21_600),
            on_failure_arn=self.destination(destinations, "OnFailure"),
            on_success_arn=self.destination(destinations, "OnSuccess"),
        )

    def input(self) -> str | None:
        raw = self.props.get("Input")
        if raw is None:
            return None
        text = raw if isinstance(raw, str) else json.dumps(raw)
        try:
            json.loads(text)
        except ValueError:
            raise self.invalid(f"Input must be JSON text, not {text!r}") from None
        return text

    def schedule(self) -> _ScheduleSource:
        self.check_properties(_SCHEDULE_PROPERTIES)
        expression = str(self.props.get("Schedule") or "")
        try:
            schedule = parse_schedule(expression)
        except ScheduleError as exc:
            raise self.invalid(str(exc)) from None
        name = str(self.props.get("Name") or _physical_name(self.stack, self.spec.logical_id, self.event.name))
        return _ScheduleSource(
            function=self.spec.logical_id,
            event=self.event.name,
            type=self.event.type,
            rule_name=name,
            expression=expression,
            schedule=schedule,
            input=self.input(),
            enabled=self.enabled(),
            policy=self.policy(),
        )

    def rule(self) -> _RuleSource:
        self.check_properties(_RULE_PROPERTIES)
        pattern = self.props.get("Pattern")
        if not isinstance(pattern, Mapping) or not pattern:
            raise self.invalid("Pattern must be a non-empty event pattern")
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise self.invalid(str(exc)) from None
        if "Input" in self.props and "InputPath" in self.props:
            raise self.invalid("Input and InputPath are mutually exclusive")
        input_path = str(self.props["InputPath"]) if self.props.get("InputPath") else None
        if input_path is not None and not _SIMPLE_PATH.match(input_path):
            raise self.fail(f"InputPath {input_path}: locally only $ and $.a.b paths are reproduced")
        name = str(self.props.get("RuleName") or _physical_name(self.stack, self.spec.logical_id, self.event.name))
        return _RuleSource(
            function=self.spec.logical_id,
            event=self.event.name,
            type=self.event.type,
            rule_name=name,
            queue_name=_physical_name(self.stack, self.spec.logical_id, self.event.name, limit=80),
            bus=str(self.props.get("EventBusName") or "default"),
            pattern=dict(pattern),
            enabled=self.enabled(),
            input=self.input(),
            input_path=input_path,
            policy=self.policy(),
        )


# --------------------------------------------------------------------------------------------------
# Runtime state
# --------------------------------------------------------------------------------------------------


@dataclass
class _Shard:
    """One shard being read: its iterator, the records read but not yet delivered, its progress."""

    key: str
    shard_id: str
    iterator: str | None
    start_type: str
    # LATEST shards: when setup() took the first iterator (epoch seconds), for re-positioning.
    since: float | None = None
    last_read: str | None = None
    # Records created before this (epoch seconds) are skipped: a LATEST shard re-read from TRIM_HORIZON.
    not_before: int | None = None
    buffer: deque[tuple[dict[str, Any], float]] = field(default_factory=deque)
    retired: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Outcome:
    status: str  # ok | dead-lettered | discarded | not-accepted | stopped | undeliverable
    result: Any = None
    error: Exception | None = None


class _Stopped(Exception):
    """The runner is stopping: abandon the current work."""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FunctionError):
        return f"{exc.error_type}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _lambda_json(value: Any) -> Any:
    """botocore's parsed AttributeValues back to DynamoDB JSON as Lambda delivers it (binary as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _lambda_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_lambda_json(v) for v in value]
    return value


def _epoch_seconds(value: Any) -> int | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def _json_path(event: Mapping[str, Any], path: str) -> Any:
    """The part of ``event`` an ``InputPath`` (``$``, ``$.detail``, ``$.detail.name``) selects."""
    if path == "$":
        return event
    value: Any = event
    for part in path[2:].split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def _make_client(service: str, endpoint_url: str, region: str) -> Any:
    """A client of the embedded AWS. One shared session: it caches the service models (fast clients)."""
    global _session  # noqa: PLW0603 - a process-wide cache
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        # Fixed keys: the embedded AWS accepts any, and the user's own (a profile, an SSO session) must
        # never be looked up, let alone sent, by the local stack.
        credentials = {"aws_access_key_id": "ecrcache-local", "aws_secret_access_key": "ecrcache-local"}
        config = Config(
            # DynamoDB Streams with botocore >= 1.44.4 (tooling.md, gotcha 4).
            account_id_endpoint_mode="disabled",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=2,
            read_timeout=15,
        )
        make = cast("Callable[..., Any]", _session.client)
        return make(service, region_name=region, endpoint_url=endpoint_url, config=config, **credentials)


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------


class EventRunner:
    """Delivers the stream records, EventBridge events and schedules of ``functions`` (module docstring)."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        endpoint_url: str,
        region: str,
        stack_name: str,
        invoke: Invoke,
        schedule_speed: float = 1.0,
        log: Callable[[str], None] = print,
        poll_interval: float = 0.2,
        retry_backoff: float = 0.5,
        max_backoff: float = 5.0,
        account_id: str | None = None,
    ) -> None:
        if schedule_speed <= 0:
            raise ValueError("schedule_speed must be positive")
        self.functions = dict(functions)
        self.endpoint_url = endpoint_url
        self.region = region
        self.stack_name = stack_name
        self.schedule_speed = float(schedule_speed)
        self.poll_interval = poll_interval
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self._invoke = invoke
        self._log_sink = log
        self._account_id = account_id
        self._partition = (
            "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        )
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._sources: list[_Source] | None = None
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}
        # stream source key -> shard key -> (iterator positioned by setup(), when it was taken)
        self._positions: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}
        self._setup_done = False
        self._started = False
        self._virtual_origin = (time.time(), time.monotonic())

    # ---- what is delivered --------------------------------------------------------------------

    def _plan(self) -> list[_Source]:
        if self._sources is None:
            sources: list[_Source] = []
            for logical_id, spec in self.functions.items():
                if spec.logical_id != logical_id:
                    raise TemplateError(f"function {logical_id}: its spec is for {spec.logical_id}")
                sources.extend(_Planner(self.stack_name, spec, event).plan() for event in spec.events)
            self._sources = sources
        return self._sources

    def deliveries(self) -> list[Delivery]:
        """One :class:`Delivery` per function event (``Api`` included); no AWS calls.

        Raises :class:`UnsupportedEventError` for an event (type or property) with no local delivery.
        """
        return [Delivery(s.function, s.event, s.type, s.description()) for s in self._plan()]

    def _source(self, function: str, event: str) -> _Source:
        for source in self._plan():
            if source.function == function and source.event == event:
                return source
        raise KeyError(f"{function} has no event {event!r}")

    # ---- AWS side ---------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
        if client is None:  # made outside the lock: stop() never waits for a client being built
            client = _make_client(service, self.endpoint_url, self.region)
            with self._lock:
                client = self._clients.setdefault(service, client)
        return client

    @property
    def _streams(self) -> DynamoDBStreamsClient:
        client: DynamoDBStreamsClient = self._client("dynamodbstreams")
        return client

    @property
    def _sqs(self) -> SQSClient:
        client: SQSClient = self._client("sqs")
        return client

    @property
    def _events(self) -> EventBridgeClient:
        client: EventBridgeClient = self._client("events")
        return client

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            sts: STSClient = self._client("sts")
            self._account_id = str(sts.get_caller_identity()["Account"])
        return self._account_id

    def function_arn(self, function: str) -> str:
        return f"arn:{self._partition}:lambda:{self.region}:{self.account_id}:function:{self.stack_name}-{function}"

    def _rule_arn(self, name: str, bus: str = "default") -> str:
        bus_name = bus.rsplit("/", 1)[-1]
        resource = f"rule/{name}" if bus_name == "default" else f"rule/{bus_name}/{name}"
        return f"arn:{self._partition}:events:{self.region}:{self.account_id}:{resource}"

    def _queue_url(self, arn: str) -> str:
        with self._lock:
            cached = self._queue_urls.get(arn)
        if cached is not None:
            return cached
        parts = arn.split(":")
        url = self._sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        with self._lock:
            self._queue_urls[arn] = url
        return url

    def setup(self) -> None:
        """Create the rules, queues and targets in the embedded AWS and position the stream iterators.

        Idempotent: a second call changes nothing (stream positions already taken are kept).
        """
        sources = self._plan()
        for source in sources:
            if isinstance(source, _RuleSource):
                self._setup_rule(source)
            elif isinstance(source, _ScheduleSource):
                self._setup_schedule(source)
            elif isinstance(source, _StreamSource) and source.enabled:
                self._setup_stream(source)
        self._setup_done = True

    def _setup_rule(self, source: _RuleSource) -> None:
        url = self._sqs.create_queue(QueueName=source.queue_name)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        with self._lock:
            self._queue_urls[arn] = url
        self._events.put_rule(
            Name=source.rule_name,
            EventPattern=json.dumps(source.pattern),
            EventBusName=source.bus,
            State="ENABLED" if source.enabled else "DISABLED",
            Description=f"ecrcache local: {source.function} event {source.event}",
        )
        self._events.put_targets(
            Rule=source.rule_name, EventBusName=source.bus, Targets=[{"Id": "ecrcache-local-runner", "Arn": arn}]
        )

    def _setup_schedule(self, source: _ScheduleSource) -> None:
        # The rule carries no target (moto never fires schedules): it makes the schedule visible and
        # lets `aws events disable-rule` pause it, as in AWS.
        self._events.put_rule(
            Name=source.rule_name,
            ScheduleExpression=source.expression,
            State="ENABLED" if source.enabled else "DISABLED",
            Description=f"ecrcache local: {source.function} event {source.event}",
        )

    def _setup_stream(self, source: _StreamSource) -> None:
        key = (source.function, source.event)
        with self._lock:
            positions = self._positions.setdefault(key, {})
        label, shards = self._describe_stream(source.stream_arn)
        for shard in shards:
            shard_key = f"{label}/{shard['ShardId']}"
            if shard_key in positions:
                continue
            taken = time.time()
            iterator = self._streams.get_shard_iterator(
                StreamArn=source.stream_arn,
                ShardId=shard["ShardId"],
                ShardIteratorType="LATEST" if source.starting_position == "LATEST" else "TRIM_HORIZON",
            )["ShardIterator"]
            positions[shard_key] = (iterator, taken)

    def _describe_stream(self, arn: str) -> tuple[str, list[dict[str, Any]]]:
        shards: list[dict[str, Any]] = []
        label = ""
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            label = str(description.get("StreamLabel", ""))
            shards.extend(dict(s) for s in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return label, shards
            kwargs["ExclusiveStartShardId"] = last

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background threads (stream pollers, queue pollers, schedulers); sets up first if needed."""
        with self._lock:
            if self._started:
                return
            if self._stop.is_set():
                raise RuntimeError("this EventRunner was stopped; create a new one to run again")
            if not self._setup_done:
                self.setup()
            self._virtual_origin = (time.time(), time.monotonic())
            self._started = True
        for source in self._plan():
            if isinstance(source, _StreamSource) and source.enabled:
                self._spawn(f"stream {source.label}", self._stream_loop, source)
            elif isinstance(source, _RuleSource):
                self._spawn(f"rule {source.label}", self._rule_loop, source)
            elif isinstance(source, _ScheduleSource):
                if source.enabled:
                    self._spawn(f"schedule {source.label}", self._schedule_loop, source)
                else:
                    self._log(f"{source.label} (Schedule) is disabled in the template: not scheduled")

    def stop(self) -> None:
        """Stop every thread; returns within about 1.2 s.

        When nothing is being invoked, every thread has ended when this returns. A thread in the
        middle of an invocation is not waited for: it finishes that invocation (its outcome is
        logged, and a destination record sent if it was the last attempt), starts no further
        invocation, and ends. :meth:`threads` lists it until then.
        """
        self._stop.set()
        deadline = time.monotonic() + _STOP_JOIN_SECONDS
        with self._lock:
            threads = list(self._threads)  # kept: threads() reports those that have not ended yet
            self._started = False
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in threads if t.is_alive()]
        if busy:
            self._log(f"event runner stopped; still finishing: {', '.join(busy)}")

    def __enter__(self) -> EventRunner:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(name, target, *args), name=name, daemon=True)
        with self._lock:  # started under the lock: stop() never sees a thread it cannot join
            if self._stop.is_set():
                return
            self._threads.append(thread)
            thread.start()

    def _guarded(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Run a poller until stop(); an unexpected exception is logged and the loop restarts."""
        failures = 0
        while not self._stop.is_set():
            try:
                target(*args)
                return
            except _Stopped:
                return
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures)
                self._log(f"{name}: {_error_text(exc)}; restarting in {_seconds(delay)}")
                self._stop.wait(delay)

    def _log(self, line: str) -> None:
        with contextlib.suppress(Exception):
            self._log_sink(line)

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.retry_backoff * 2.0 ** max(0, attempt - 1))

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _call(self, what: str, operation: Callable[[], Any]) -> Any:
        """An AWS call retried until it works or the runner stops (the embedded AWS may restart)."""
        failures = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") in _PERMANENT_ERRORS:
                    raise
                failures += 1
                delay = self._backoff(failures)
                if failures == 1 or failures % 10 == 0:
                    self._log(f"{what}: {_error_text(exc)}; retrying in {_seconds(delay)}")
                self._sleep(delay)

    # ---- invocation -----------------------------------------------------------------------------

    def _timed_invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, float]:
        if self._stop.is_set():  # stop() lets a running invocation finish, but none starts after it
            raise _Stopped
        started = time.monotonic()
        try:
            return self._invoke(function, event), time.monotonic() - started
        except (FunctionError, InvokeError):
            raise
        except Exception as exc:  # a broken Invoke callable is reported like a host failure
            raise InvokeError(f"invoking {function}: {_error_text(exc)}") from exc

    def _send(self, arn: str, body: Mapping[str, Any], attributes: Mapping[str, str | int] | None = None) -> str:
        """Send a dead-letter / destination message; returns the queue name."""
        message_attributes: dict[str, Any] = {
            name: {"DataType": "Number", "StringValue": str(value)}
            if isinstance(value, int)
            else {"DataType": "String", "StringValue": value or "-"}
            for name, value in (attributes or {}).items()
        }
        url = self._queue_url(arn)
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": json.dumps(body, default=str)}
        if message_attributes:
            kwargs["MessageAttributes"] = message_attributes
        self._sqs.send_message(**kwargs)
        return arn.rsplit(":", 1)[-1]

    # ---- DynamoDB streams -------------------------------------------------------------------------

    def _stream_loop(self, source: _StreamSource) -> None:
        """Discover shards (new, closed, a recreated table) and run one worker per shard."""
        known: dict[str, _Shard] = {}
        discovery = max(1.0, self.poll_interval * 5)
        failures = 0
        while not self._stop.is_set():
            try:
                self._discover(source, known)
                failures = 0
            except _Stopped:
                return
            except Exception as exc:  # e.g. the table was deleted: keep the shards known, try again
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    self._log(f"{source.label} (DynamoDB): {_error_text(exc)}; retrying")
                self._sleep(self._backoff(failures))
                continue
            self._stop.wait(discovery)

    def _discover(self, source: _StreamSource, known: dict[str, _Shard]) -> None:
        key = (source.function, source.event)
        label, shards = self._describe_stream(source.stream_arn)
        current = {f"{label}/{s['ShardId']}": s for s in shards}
        for shard_key, state in known.items():
            if shard_key not in current:
                state.retired = True
        for shard_key, shard in current.items():
            if shard_key in known:
                continue
            with self._lock:
                position = self._positions.get(key, {}).pop(shard_key, None)
            iterator, since = position if position is not None else (None, None)
            start_type = source.starting_position if iterator is not None else "TRIM_HORIZON"
            state = _Shard(
                key=shard_key,
                shard_id=str(shard["ShardId"]),
                iterator=iterator,
                start_type=start_type,
                since=since if start_type == "LATEST" else None,
            )
            if iterator is None:  # a shard that appeared after setup(): read all of it
                state.iterator = self._position(source, state)
            parent_key = f"{label}/{shard.get('ParentShardId')}" if shard.get("ParentShardId") else None
            known[shard_key] = state
            self._spawn(
                f"stream {source.label} {state.shard_id}", self._shard_loop, source, state, known.get(parent_key or "")
            )
        for shard_key in [k for k, s in known.items() if s.done.is_set() and k not in current]:
            del known[shard_key]

    def _position(self, source: _StreamSource, shard: _Shard) -> str | None:
        """A new iterator for ``shard``: after the last record read, else at its original position.

        A LATEST shard that has read nothing yet cannot ask for "LATEST as of setup()" again: it is
        read from TRIM_HORIZON, skipping records created before the (whole) second setup() positioned it in.
        """
        kwargs: dict[str, Any] = {"StreamArn": source.stream_arn, "ShardId": shard.shard_id}
        if shard.last_read is not None:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_read}
        elif shard.start_type == "LATEST" and shard.since is not None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            shard.not_before = math.floor(shard.since)
        else:
            kwargs["ShardIteratorType"] = shard.start_type
        response = self._call(
            f"{source.label} (DynamoDB): shard iterator", lambda: self._streams.get_shard_iterator(**kwargs)
        )
        iterator = response.get("ShardIterator")
        return str(iterator) if iterator else None

    def _shard_loop(self, source: _StreamSource, shard: _Shard, parent: _Shard | None) -> None:
        """Deliver one shard in order until it is closed (or retired) and drained; never dies on an error."""
        while parent is not None and not parent.done.is_set():
            self._sleep(self.poll_interval)
        failures = 0
        while not self._stop.is_set():
            if (shard.iterator is None or shard.retired) and not shard.buffer:
                shard.done.set()  # closed (or gone) and everything in it was delivered
                return
            try:
                progressed = self._shard_step(source, shard)
                failures = 0
            except _Stopped:
                return
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures)
                if failures == 1 or failures % 10 == 0:
                    self._log(f"{source.label} (DynamoDB) shard {shard.shard_id}: {_error_text(exc)}; retrying")
                self._sleep(delay)
                continue
            if not progressed:
                self._sleep(self.poll_interval)

    def _shard_step(self, source: _StreamSource, shard: _Shard) -> bool:
        """Read what is there, deliver a batch when it is due; True if something happened."""
        read = 0
        if shard.iterator is not None and len(shard.buffer) < source.batch_size and not shard.retired:
            read = self._read(source, shard)
        if not shard.buffer:
            return read > 0
        oldest = shard.buffer[0][1]
        due = (
            len(shard.buffer) >= source.batch_size
            or time.monotonic() - oldest >= source.window
            or shard.iterator is None
            or shard.retired
        )
        if not due:
            return False
        batch = [shard.buffer.popleft()[0] for _ in range(min(source.batch_size, len(shard.buffer)))]
        self._deliver_batch(source, shard, batch)
        return True

    def _read(self, source: _StreamSource, shard: _Shard) -> int:
        try:
            response = self._streams.get_records(ShardIterator=str(shard.iterator), Limit=_GET_RECORDS_LIMIT)
        except Exception as exc:
            # Only an iterator that can never work again is replaced (see _position); any other failure
            # is retried with the same iterator (by _shard_loop, with backoff), so no record is skipped.
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _REPOSITION_ERRORS:
                self._log(f"{source.label} (DynamoDB) shard {shard.shard_id}: {code}; getting a new iterator")
                shard.iterator = self._position(source, shard)
                return 0
            raise
        shard.iterator = response.get("NextShardIterator")
        now = time.monotonic()
        records = response.get("Records", [])
        for raw in records:
            record = self._lambda_record(source, dict(raw))
            shard.last_read = str(record["dynamodb"].get("SequenceNumber"))
            if shard.not_before is not None:
                created = record["dynamodb"].get("ApproximateCreationDateTime")
                if isinstance(created, int) and created < shard.not_before:
                    continue  # written before setup(): LATEST never delivers it
                shard.not_before = None
            if source.filters.matches(record):
                shard.buffer.append((record, now))
        return len(records)

    def _lambda_record(self, source: _StreamSource, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A DynamoDB Streams record exactly as Lambda delivers it."""
        change = dict(raw.get("dynamodb", {}))
        dynamodb: dict[str, Any] = {}
        created = _epoch_seconds(change.get("ApproximateCreationDateTime"))
        if created is not None:
            dynamodb["ApproximateCreationDateTime"] = created
        for name in ("Keys", "NewImage", "OldImage"):
            if name in change:
                dynamodb[name] = _lambda_json(change[name])
        for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
            if name in change:
                dynamodb[name] = change[name]
        record: dict[str, Any] = {
            "eventID": raw.get("eventID"),
            "eventName": raw.get("eventName"),
            "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": source.stream_arn.split(":")[3] or self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": source.stream_arn,
        }
        if raw.get("userIdentity"):
            record["userIdentity"] = dict(raw["userIdentity"])
        return record

    def _failed_from(self, source: _StreamSource, batch: list[dict[str, Any]], result: Any) -> int | None:
        """Index of the first record to retry (partial batch response), or None when the batch succeeded."""
        if not source.report_failures or not isinstance(result, Mapping):
            return None
        failures = result.get("batchItemFailures")
        if not failures:
            return None
        positions = {str(r["dynamodb"].get("SequenceNumber")): i for i, r in enumerate(batch)}
        indexes: list[int] = []
        for failure in failures if isinstance(failures, list) else [failures]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
            if not identifier or str(identifier) not in positions:
                return 0  # Lambda: a null, empty or unknown itemIdentifier fails the whole batch
            indexes.append(positions[str(identifier)])
        return min(indexes)

    def _deliver_batch(self, source: _StreamSource, shard: _Shard, records: list[dict[str, Any]]) -> None:
        """Invoke with one batch until it succeeds or its retries run out (module docstring)."""
        pending: deque[list[dict[str, Any]]] = deque([records])
        retries = attempts = 0
        while pending:
            batch = pending[0]
            if self._too_old(source, batch):
                self._stream_failure(source, shard, batch, attempts=attempts, condition="RecordAgeExceeded", error=None)
                pending.popleft()
                retries = attempts = 0
                continue
            attempts += 1
            label = f"{source.label} (DynamoDB, {_records(len(batch))})"
            error: Exception | None = None
            try:
                result, elapsed = self._timed_invoke(source.function, {"Records": batch})
            except (FunctionError, InvokeError) as exc:
                error, failed_from = exc, 0
            else:
                failed_from_or_none = self._failed_from(source, batch, result)
                if failed_from_or_none is None:
                    self._log(f"{label} ok {elapsed:.2f}s")
                    pending.popleft()
                    retries = attempts = 0
                    continue
                failed_from = failed_from_or_none
            if error is not None and source.bisect and len(batch) > 1:
                half = len(batch) // 2
                pending.popleft()
                pending.extendleft([batch[half:], batch[:half]])
                retries = attempts = 0  # each half is a batch of its own; bisecting is not a retry
                self._log(f"{label} failed: {_error_text(error)}; bisecting into {half} + {len(batch) - half}")
                continue
            reason = (
                _error_text(error)
                if error is not None
                else f"{len(batch) - failed_from} of {len(batch)} records reported failed "
                f"from {batch[failed_from]['dynamodb'].get('SequenceNumber')}"
            )
            retries += 1
            if 0 <= source.max_retries < retries:
                self._log(f"{label} failed: {reason}; retries exhausted ({attempts} attempts)")
                self._stream_failure(
                    source,
                    shard,
                    batch[failed_from:],
                    attempts=attempts,
                    condition="RetryAttemptsExhausted",
                    error=error,
                )
                pending.popleft()
                retries = attempts = 0
                continue
            delay = self._backoff(retries)
            limit = "∞" if source.max_retries < 0 else str(source.max_retries)
            self._log(f"{label} failed: {reason}; retry {retries}/{limit} in {_seconds(delay)}")
            pending[0] = batch[failed_from:]
            self._sleep(delay)

    def _too_old(self, source: _StreamSource, batch: list[dict[str, Any]]) -> bool:
        if source.max_record_age < 0:
            return False
        created = batch[0]["dynamodb"].get("ApproximateCreationDateTime")
        return isinstance(created, int | float) and time.time() - created > source.max_record_age

    def _stream_failure(
        self,
        source: _StreamSource,
        shard: _Shard,
        batch: list[dict[str, Any]],
        *,
        attempts: int,
        condition: str,
        error: Exception | None,
    ) -> None:
        """Lambda's on-failure record for a stream batch, to the OnFailure queue (or discarded)."""
        label = f"{source.label} (DynamoDB, {_records(len(batch))})"
        if source.on_failure_arn is None:
            self._log(f"{label} discarded after {attempts} attempts ({condition}; no on-failure destination)")
            return
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if isinstance(error, FunctionError):
            response["functionError"] = "Unhandled"
        elif isinstance(error, InvokeError):
            response = {"statusCode": 502, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        created = [r["dynamodb"].get("ApproximateCreationDateTime") or time.time() for r in batch]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn(source.function),
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": batch[0]["dynamodb"].get("SequenceNumber"),
                "endSequenceNumber": batch[-1]["dynamodb"].get("SequenceNumber"),
                "approximateArrivalOfFirstRecord": _iso(float(created[0])),
                "approximateArrivalOfLastRecord": _iso(float(created[-1])),
                "batchSize": len(batch),
                "streamArn": source.stream_arn,
            },
        }
        arn = source.on_failure_arn
        try:
            queue = self._call(f"{label}: on-failure destination {arn}", lambda: self._send(arn, record))
        except _Stopped:
            raise
        except Exception as exc:
            self._log(f"{label} dropped: on-failure destination {arn} failed: {_error_text(exc)}")
            return
        self._log(f"{label} dead-lettered to {queue}")

    # ---- asynchronous invocations (EventBridge rules, schedules) --------------------------------

    def _deliver_async(
        self, source: _RuleSource | _ScheduleSource, event: Any, event_time: float, rule_arn: str
    ) -> _Outcome:
        """EventBridge's delivery to Lambda (RetryPolicy, DeadLetterConfig) around Lambda's async retries."""
        policy = source.policy
        label = f"{source.label} ({source.type})"
        retries = 0
        while True:
            if self._stop.is_set():
                return _Outcome("stopped")
            age = time.time() - event_time
            if age > policy.eventbridge_max_age:
                return self._eventbridge_dead_letter(
                    source,
                    event,
                    rule_arn=rule_arn,
                    condition="MaximumEventAgeInSeconds",
                    error=None,
                    retries=retries,
                    reason=f"event is {age:.0f}s old",
                )
            outcome = self._lambda_async(source, event, event_time)
            if outcome.status != "not-accepted":
                return outcome
            retries += 1
            if retries > policy.eventbridge_retries:
                return self._eventbridge_dead_letter(
                    source,
                    event,
                    rule_arn=rule_arn,
                    condition="MaximumRetryAttempts",
                    error=outcome.error,
                    retries=retries - 1,
                    reason=None,
                )
            delay = self._backoff(retries)
            reason = _error_text(outcome.error) if outcome.error else "not delivered"
            self._log(
                f"{label} not delivered: {reason}; retry {retries}/{policy.eventbridge_retries} in {_seconds(delay)}"
            )
            if self._stop.wait(delay):
                return _Outcome("stopped", error=outcome.error)

    def _lambda_async(self, source: _RuleSource | _ScheduleSource, event: Any, event_time: float) -> _Outcome:
        policy = source.policy
        label = f"{source.label} ({source.type})"
        attempt = 0
        while True:
            attempt += 1
            try:
                result, elapsed = self._timed_invoke(source.function, event)
            except _Stopped:
                return _Outcome("stopped")
            except InvokeError as exc:
                if attempt == 1:
                    return _Outcome("not-accepted", error=exc)
                error: Exception = exc
            except FunctionError as exc:
                error = exc
            else:
                self._log(f"{label} ok {elapsed:.2f}s")
                if policy.on_success_arn:
                    self._async_record(
                        source,
                        event,
                        attempts=attempt,
                        condition="Success",
                        response_payload=result,
                        error=None,
                        arn=policy.on_success_arn,
                    )
                return _Outcome("ok", result=result)
            too_old = time.time() - event_time > policy.function_max_age
            if attempt > policy.function_retries or too_old:
                condition = "EventAgeExceeded" if too_old else "RetriesExhausted"
                return self._async_failure(source, event, attempt, condition, error)
            delay = self._backoff(attempt)
            self._log(
                f"{label} failed: {_error_text(error)}; retry {attempt}/{policy.function_retries} in {_seconds(delay)}"
            )
            if self._stop.wait(delay):
                return _Outcome("stopped", error=error)

    def _async_failure(
        self, source: _RuleSource | _ScheduleSource, event: Any, attempts: int, condition: str, error: Exception
    ) -> _Outcome:
        label = f"{source.label} ({source.type})"
        arn = source.policy.on_failure_arn
        if arn is None:
            self._log(
                f"{label} failed: {_error_text(error)}; discarded after {attempts} attempts (no on-failure destination)"
            )
            return _Outcome("discarded", error=error)
        payload = (
            {"errorType": error.error_type, "errorMessage": error.message}
            if isinstance(error, FunctionError)
            else {"errorType": type(error).__name__, "errorMessage": str(error)}
        )
        try:
            queue = self._async_record(
                source, event, attempts=attempts, condition=condition, response_payload=payload, error=error, arn=arn
            )
        except Exception as exc:
            self._log(f"{label} failed: {_error_text(error)}; on-failure destination {arn} failed: {_error_text(exc)}")
            return _Outcome("undeliverable", error=error)
        self._log(
            f"{label} failed: {_error_text(error)}; {condition} after {attempts} attempts, dead-lettered to {queue}"
        )
        return _Outcome("dead-lettered", error=error)

    def _async_record(
        self,
        source: _RuleSource | _ScheduleSource,
        event: Any,
        *,
        attempts: int,
        condition: str,
        response_payload: Any,
        error: Exception | None,
        arn: str,
    ) -> str:
        """Lambda's asynchronous invocation record (destinations), sent to ``arn``."""
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            response["functionError"] = "Unhandled"
        record = {
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{self.function_arn(source.function)}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": response,
            "responsePayload": response_payload,
        }
        return self._send(arn, record)

    def _eventbridge_dead_letter(
        self,
        source: _RuleSource | _ScheduleSource,
        event: Any,
        *,
        rule_arn: str,
        condition: str,
        error: Exception | None,
        retries: int,
        reason: str | None,
    ) -> _Outcome:
        """EventBridge's dead-letter message: the event, with its error attributes."""
        label = f"{source.label} ({source.type})"
        text = reason or (_error_text(error) if error else "not delivered")
        arn = source.policy.dead_letter_arn
        if arn is None:
            self._log(f"{label} not delivered: {text}; dropped ({condition}, no DeadLetterConfig)")
            return _Outcome("discarded", error=error)
        attributes: dict[str, str | int] = {
            "RULE_ARN": rule_arn,
            "TARGET_ARN": self.function_arn(source.function),
            "ERROR_CODE": "SDK_CLIENT_ERROR" if error is not None else "EVENT_EXPIRED",
            "ERROR_MESSAGE": text[:256],
            "EXHAUSTED_RETRY_CONDITION": condition,
            "RETRY_ATTEMPTS": retries,
        }
        try:
            queue = self._send(arn, event if isinstance(event, Mapping) else {"event": event}, attributes)
        except Exception as exc:
            self._log(f"{label} not delivered: {text}; dead-letter queue {arn} failed: {_error_text(exc)}")
            return _Outcome("undeliverable", error=error)
        self._log(f"{label} not delivered: {text}; dead-lettered to {queue}")
        return _Outcome("dead-lettered", error=error)

    # ---- EventBridge rules ----------------------------------------------------------------------

    def _rule_loop(self, source: _RuleSource) -> None:
        url = self._call(
            f"{source.label} (EventBridgeRule): queue",
            lambda: self._sqs.get_queue_url(QueueName=source.queue_name)["QueueUrl"],
        )
        failures = 0
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=_IN_FLIGHT_VISIBILITY,
                    MessageSystemAttributeNames=["SentTimestamp"],
                ).get("Messages", [])
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    self._log(f"{source.label} (EventBridgeRule): receive failed: {_error_text(exc)}; retrying")
                self._sleep(self._backoff(failures))
                continue
            failures = 0
            if not messages:
                self._sleep(self.poll_interval)
                continue
            for message in messages:
                try:
                    self._handle_message(source, url, dict(message))
                except _Stopped:
                    self._release(url, str(message.get("ReceiptHandle")), 0)
                    return
                except Exception as exc:  # deliver it again later rather than lose it
                    self._log(f"{source.label} (EventBridgeRule): {_error_text(exc)}; the event is retried later")
                    self._release(url, str(message.get("ReceiptHandle")), math.ceil(self.max_backoff))

    def _handle_message(self, source: _RuleSource, url: str, message: dict[str, Any]) -> None:
        receipt = str(message.get("ReceiptHandle"))
        if self._stop.is_set():
            self._release(url, receipt, 0)
            return
        try:
            envelope = json.loads(str(message.get("Body")))
        except ValueError:
            self._log(f"{source.label} (EventBridgeRule): dropped a message that is not JSON")
            self._sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)
            return
        sent = _parse_time(message.get("Attributes", {}).get("SentTimestamp"))
        event_time = _parse_time(envelope.get("time") if isinstance(envelope, Mapping) else None)
        if event_time is None:
            event_time = sent / 1000 if sent is not None else time.time()
        if source.input is not None:
            event: Any = json.loads(source.input)
        elif source.input_path is not None:
            event = _json_path(envelope, source.input_path)
        else:
            event = envelope
        outcome = self._deliver_async(source, event, event_time, self._rule_arn(source.rule_name, source.bus))
        if outcome.status in {"ok", "dead-lettered", "discarded"}:
            self._call(
                f"{source.label} (EventBridgeRule): delete message",
                lambda: self._sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt),
            )
        else:  # stopped, or the dead-letter queue itself failed: deliver it again later
            self._release(url, receipt, 0 if outcome.status == "stopped" else math.ceil(self.max_backoff))

    def _release(self, url: str, receipt: str, seconds: int) -> None:
        with contextlib.suppress(Exception):
            self._sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds)

    # ---- schedules --------------------------------------------------------------------------------

    def virtual_now(self) -> datetime:
        """The schedules' clock: start + real elapsed x ``schedule_speed`` (UTC)."""
        wall, mono = self._virtual_origin
        return datetime.fromtimestamp(wall + (time.monotonic() - mono) * self.schedule_speed, UTC)

    def _schedule_loop(self, source: _ScheduleSource) -> None:
        next_fire = source.schedule.next_after(self.virtual_now())
        while not self._stop.is_set():
            if next_fire is None:
                self._log(f"{source.label} (Schedule) {source.expression} has no further fire times")
                return
            now = self.virtual_now()
            if now < next_fire:
                remaining = (next_fire - now).total_seconds() / self.schedule_speed
                self._sleep(min(self.poll_interval, max(remaining, 0.001)))
                continue
            if self._rule_enabled(source):
                outcome = self._fire(source, next_fire)
                if outcome.status == "stopped":
                    return
            else:
                self._log(f"{source.label} (Schedule) skipped: rule {source.rule_name} is disabled")
            following = source.schedule.next_after(next_fire)
            now = self.virtual_now()
            if following is not None and following <= now:
                following = source.schedule.next_after(now)  # coalesce fire times missed meanwhile
            next_fire = following

    def _rule_enabled(self, source: _ScheduleSource) -> bool:
        try:
            return self._events.describe_rule(Name=source.rule_name).get("State", "ENABLED") != "DISABLED"
        except Exception:  # the rule is informational: the template decides when it cannot be read
            return source.enabled

    def _schedule_event(self, source: _ScheduleSource, fire_time: datetime) -> Any:
        if source.input is not None:
            return json.loads(source.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account_id,
            "time": _iso_seconds(fire_time),
            "region": self.region,
            "resources": [self._rule_arn(source.rule_name)],
            "detail": {},
        }

    def _fire(self, source: _ScheduleSource, fire_time: datetime) -> _Outcome:
        event = self._schedule_event(source, fire_time)
        return self._deliver_async(source, event, time.time(), self._rule_arn(source.rule_name))

    def fire(self, function: str, event: str) -> Any:
        """Run the ``Schedule`` event ``event`` of ``function`` now, with its retries and dead-lettering.

        Returns what the function returned; raises the last error when every attempt failed (after
        dead-lettering), ``KeyError`` for an unknown event, ``ValueError`` for a non-schedule event.
        """
        source = self._source(function, event)
        if not isinstance(source, _ScheduleSource):
            raise ValueError(f"{function} event {event} is a {source.type} event, not a Schedule")
        outcome = self._fire(source, self.virtual_now())
        if outcome.status == "ok":
            return outcome.result
        if outcome.error is not None:
            raise outcome.error
        raise InvokeError(f"{source.label}: not delivered ({outcome.status})")

    # ---- introspection (tests, `ecrcache local status`) ---------------------------------------

    def threads(self) -> Iterator[str]:
        """Names of the delivery threads that have not ended (after :meth:`stop`: those still finishing)."""
        with self._lock:
            yield from (t.name for t in self._threads if t.is_alive())


_PERMANENT_ERRORS: Final = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ValidationException",
        "InvalidParameterValue",
        "AccessDenied",
        "AccessDeniedException",
    }
)

"""What each function event means locally: the template's ``Events`` turned into sources, no AWS calls.

:class:`Planner` reads one :class:`~devstack.local.template.FunctionEvent` and returns the source that
delivers it (:class:`StreamSource`, :class:`QueueSource`, :class:`RuleSource`, :class:`ScheduleSource`,
or :class:`ElsewhereSource` for events another part of the local stack delivers), or raises
:class:`UnsupportedEventError` for anything the local stack does not reproduce.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from devstack.local.filters import FilterSet, PatternError, compile_pattern
from devstack.local.schedule import AwsCron, Rate, ScheduleError, parse_schedule
from devstack.local.template import RULE_STATES, FunctionEvent, FunctionSpec, TemplateError

__all__ = [
    "DELIVERED_ELSEWHERE",
    "LOCALLY_DELIVERED",
    "AsyncPolicy",
    "Delivery",
    "ElsewhereSource",
    "Planner",
    "QueueSource",
    "RuleSource",
    "ScheduleSource",
    "Source",
    "StreamSource",
    "UnsupportedEventError",
]

LOCALLY_DELIVERED: Final = frozenset({"DynamoDB", "SQS", "Schedule", "EventBridgeRule"})
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
_QUEUE_PROPERTIES: Final = frozenset(
    {
        "Queue",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "FunctionResponseTypes",
        "FilterCriteria",
        "Enabled",
        "ScalingConfig",  # MaximumConcurrency: run as 1 locally (one function host = one sandbox)
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
_QUEUE_BATCH_SIZE: Final = 10
_QUEUE_BATCH_SIZE_MAX: Final = 10_000
_QUEUE_BATCH_SIZE_NO_WINDOW: Final = 10
_QUEUE_WINDOW_MAX: Final = 300
_RULE_NAME_LIMIT: Final = 64
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


@dataclass(frozen=True)
class AsyncPolicy:
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
class Source(ABC):
    function: str
    event: str
    type: str

    @property
    def label(self) -> str:
        return f"{self.function} ← {self.event}"

    @abstractmethod
    def description(self) -> str: ...


@dataclass(frozen=True)
class ElsewhereSource(Source):
    properties: Mapping[str, Any]

    def description(self) -> str:
        method, path = self.properties.get("Method"), self.properties.get("Path")
        route = f": {str(method).upper()} {path}" if method and path else ""
        return f"delivered by {DELIVERED_ELSEWHERE[self.type]}{route}"


@dataclass(frozen=True)
class StreamSource(Source):
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
class QueueSource(Source):
    queue_arn: str
    batch_size: int
    window: float
    report_failures: bool
    filters: FilterSet
    max_concurrency: int | None
    enabled: bool

    def description(self) -> str:
        patterns = " | ".join(self.filters.raw)
        text = f"queue {self.queue_arn} filters={len(self.filters)}"
        text += f" [{patterns}]" if patterns else ""
        text += f" batch={self.batch_size} window={_number(self.window)}s"
        if self.report_failures:
            text += " ReportBatchItemFailures"
        if self.max_concurrency is not None:
            text += f" max-concurrency={self.max_concurrency} (run as 1)"
        return text + ("" if self.enabled else " (disabled)")


@dataclass(frozen=True)
class RuleSource(Source):
    rule_name: str
    queue_name: str
    bus: str
    pattern: Mapping[str, Any]
    enabled: bool
    state: str
    input: str | None
    input_path: str | None
    policy: AsyncPolicy

    def description(self) -> str:
        text = f"rule {self.rule_name} on bus {self.bus} pattern={_compact(self.pattern)} via queue {self.queue_name}"
        if self.input is not None:
            text += f" input={self.input}"
        if self.input_path is not None:
            text += f" input-path={self.input_path}"
        return f"{text} {self.policy.describe()}" + ("" if self.enabled else " (disabled)")


@dataclass(frozen=True)
class ScheduleSource(Source):
    rule_name: str
    expression: str
    schedule: Rate | AwsCron
    input: str | None
    enabled: bool
    policy: AsyncPolicy

    def description(self) -> str:
        text = f"schedule {self.expression}"
        text += f" input={self.input}" if self.input is not None else " (Scheduled Event)"
        return f"{text} {self.policy.describe()}" + ("" if self.enabled else " (disabled)")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _physical_name(stack: str, function: str, event: str, limit: int = _RULE_NAME_LIMIT) -> str:
    """``<stack>-<function>-<event>``, shortened with a hash to fit EventBridge/SQS name limits."""
    name = f"{stack}-{function}-{event}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


class Planner:
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

    def plan(self) -> Source:
        kind = self.event.type
        if kind in DELIVERED_ELSEWHERE:
            return ElsewhereSource(self.spec.logical_id, self.event.name, kind, self.props)
        if kind == "DynamoDB":
            return self.stream()
        if kind == "SQS":
            return self.queue()
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

    def state(self) -> str:
        """The rule state (``State``, else ``Enabled``): one of :data:`RULE_STATES`."""
        if "State" in self.props:
            state = str(self.props["State"]).upper()
            if state not in RULE_STATES:
                raise self.invalid(f"State must be one of {', '.join(RULE_STATES)}, not {state!r}")
            return state
        return "ENABLED" if self.flag(self.props, "Enabled", default=True) else "DISABLED"

    def enabled(self) -> bool:
        return self.state() != "DISABLED"

    def window(self, maximum: int) -> float:
        window = self.props.get("MaximumBatchingWindowInSeconds", 0)
        try:
            seconds = float(window)
        except (TypeError, ValueError):
            raise self.invalid(f"MaximumBatchingWindowInSeconds must be a number, not {window!r}") from None
        if not 0 <= seconds <= maximum:
            raise self.invalid(f"MaximumBatchingWindowInSeconds must be 0..{maximum}")
        return seconds

    def report_failures(self) -> bool:
        response_types = self.props.get("FunctionResponseTypes") or []
        if not isinstance(response_types, list) or set(response_types) - {"ReportBatchItemFailures"}:
            raise self.invalid(f"FunctionResponseTypes must be [ReportBatchItemFailures], not {response_types!r}")
        return "ReportBatchItemFailures" in response_types

    def filters(self) -> FilterSet:
        try:
            return FilterSet.from_criteria(self.props.get("FilterCriteria"))
        except PatternError as exc:
            raise self.invalid(f"FilterCriteria: {exc}") from None

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

    def stream(self) -> StreamSource:
        self.check_properties(_STREAM_PROPERTIES)
        arn = str(self.props.get("Stream") or "")
        if ":dynamodb:" not in arn or "/stream/" not in arn:
            raise self.invalid(f"Stream must be a DynamoDB stream ARN, not {arn!r}")
        position = str(self.props.get("StartingPosition", "")).upper()
        if position == "AT_TIMESTAMP":
            raise self.fail("StartingPosition AT_TIMESTAMP is not reproduced locally")
        if position not in {"LATEST", "TRIM_HORIZON"}:
            raise self.invalid(f"StartingPosition must be LATEST or TRIM_HORIZON, not {position!r}")
        max_age = self.integer(self.props, "MaximumRecordAgeInSeconds", -1, -1, 604_800)
        return StreamSource(
            function=self.spec.logical_id,
            event=self.event.name,
            type=self.event.type,
            stream_arn=arn,
            starting_position=position,
            batch_size=self.integer(self.props, "BatchSize", _STREAM_BATCH_SIZE, 1, _STREAM_BATCH_SIZE_MAX),
            window=self.window(_STREAM_WINDOW_MAX),
            max_retries=self.integer(self.props, "MaximumRetryAttempts", -1, -1, 10_000),
            max_record_age=max_age,
            bisect=self.flag(self.props, "BisectBatchOnFunctionError", default=False),
            report_failures=self.report_failures(),
            on_failure_arn=self.destination(self.props.get("DestinationConfig"), "OnFailure"),
            filters=self.filters(),
            enabled=self.flag(self.props, "Enabled", default=True),
        )

    # ---- SQS ------------------------------------------------------------------------------------

    def queue(self) -> QueueSource:
        """Lambda's SQS event source mapping (services-sqs-parameters: defaults and limits)."""
        self.check_properties(_QUEUE_PROPERTIES)
        arn = str(self.props.get("Queue") or "")
        if not arn.startswith("arn:") or arn.split(":")[2:3] != ["sqs"] or len(arn.split(":")) != 6:
            raise self.invalid(f"Queue must be an SQS queue ARN (!GetAtt <Queue>.Arn), not {arn!r}")
        if arn.endswith(".fifo"):
            raise self.fail("FIFO queues (message group ordering) are not reproduced locally")
        window = self.window(_QUEUE_WINDOW_MAX)
        batch_size = self.integer(self.props, "BatchSize", _QUEUE_BATCH_SIZE, 1, _QUEUE_BATCH_SIZE_MAX)
        if batch_size > _QUEUE_BATCH_SIZE_NO_WINDOW and window < 1:
            raise self.invalid("a BatchSize over 10 needs MaximumBatchingWindowInSeconds of at least 1")
        scaling = self.props.get("ScalingConfig") or {}
        if not isinstance(scaling, Mapping):
            raise self.invalid("ScalingConfig is a mapping")
        concurrency = (
            self.integer(scaling, "MaximumConcurrency", 2, 2, 1000) if "MaximumConcurrency" in scaling else None
        )
        return QueueSource(
            function=self.spec.logical_id,
            event=self.event.name,
            type=self.event.type,
            queue_arn=arn,
            batch_size=batch_size,
            window=window,
            report_failures=self.report_failures(),
            filters=self.filters(),
            max_concurrency=concurrency,
            enabled=self.flag(self.props, "Enabled", default=True),
        )

    # ---- asynchronous (Schedule, EventBridgeRule) ------------------------------------------------

    def policy(self) -> AsyncPolicy:
        retry = self.props.get("RetryPolicy") or {}
        dead_letter = self.props.get("DeadLetterConfig") or {}
        if not isinstance(retry, Mapping) or not isinstance(dead_letter, Mapping):
            raise self.invalid("RetryPolicy and DeadLetterConfig are mappings")
        if "Type" in dead_letter or "QueueLogicalId" in dead_letter:
            raise self.fail("DeadLetterConfig.Type (a queue SAM creates) is not reproduced; give DeadLetterConfig.Arn")
        dead_letter_arn = self.sqs_arn(dead_letter["Arn"], "DeadLetterConfig.Arn") if dead_letter.get("Arn") else None
        invoke_config = self.spec.event_invoke_config or {}
        destinations = invoke_config.get("DestinationConfig")
        return AsyncPolicy(
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

    def schedule(self) -> ScheduleSource:
        self.check_properties(_SCHEDULE_PROPERTIES)
        expression = str(self.props.get("Schedule") or "")
        try:
            schedule = parse_schedule(expression)
        except ScheduleError as exc:
            raise self.invalid(str(exc)) from None
        name = str(self.props.get("Name") or _physical_name(self.stack, self.spec.logical_id, self.event.name))
        return ScheduleSource(
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

    def rule(self) -> RuleSource:
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
        return RuleSource(
            function=self.spec.logical_id,
            event=self.event.name,
            type=self.event.type,
            rule_name=name,
            queue_name=_physical_name(self.stack, self.spec.logical_id, self.event.name, limit=80),
            bus=str(self.props.get("EventBusName") or "default"),
            pattern=dict(pattern),
            enabled=self.enabled(),
            state=self.state(),
            input=self.input(),
            input_path=input_path,
            policy=self.policy(),
        )

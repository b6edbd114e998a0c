"""What the event runner makes of a function's ``Events`` (no AWS: ``deliveries()`` only reads the specs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.local.filters import FilterSet, PatternError
from devstack.local.runner import DELIVERED_ELSEWHERE, LOCALLY_DELIVERED, EventRunner, UnsupportedEventError
from devstack.local.template import FunctionEvent, FunctionSpec, TemplateError

pytestmark = pytest.mark.unit

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:dlq"


def spec(*events: FunctionEvent, invoke_config: dict[str, Any] | None = None) -> dict[str, FunctionSpec]:
    return {
        "Fn": FunctionSpec(
            logical_id="Fn",
            code_uri=Path("functions/fn"),
            handler="app.lambda_handler",
            timeout=30,
            memory_size=128,
            environment={},
            events=events,
            event_invoke_config=invoke_config or {},
        )
    }


def runner(functions: dict[str, FunctionSpec]) -> EventRunner:
    def invoke(function: str, event: dict[str, Any]) -> Any:
        raise AssertionError("no invocation expected")

    # Nothing listens there: deliveries() must not call AWS.
    return EventRunner(functions, endpoint_url="http://127.0.0.1:9", region="us-east-1", stack_name="s", invoke=invoke)


def stream(**properties: Any) -> FunctionEvent:
    return FunctionEvent("Changes", "DynamoDB", {"Stream": STREAM, "StartingPosition": "LATEST", **properties})


def test_the_type_sets() -> None:
    assert {"DynamoDB", "SQS", "Schedule", "EventBridgeRule"} == LOCALLY_DELIVERED
    assert set(DELIVERED_ELSEWHERE) == {"Api"}


def test_each_event_gets_one_delivery_with_the_templates_values() -> None:
    events = (
        stream(
            BatchSize=7,
            MaximumBatchingWindowInSeconds=3,
            MaximumRetryAttempts=4,
            DestinationConfig={"OnFailure": {"Destination": QUEUE}},
        ),
        FunctionEvent("Tick", "Schedule", {"Schedule": "rate(5 minutes)", "Input": '{"a": 1}'}),
        FunctionEvent(
            "Ecr", "EventBridgeRule", {"Pattern": {"source": ["aws.ecr"]}, "DeadLetterConfig": {"Arn": QUEUE}}
        ),
        FunctionEvent("Root", "Api", {"Path": "/v1", "Method": "any"}),
    )
    deliveries = runner(spec(*events)).deliveries()
    assert [(d.function, d.event, d.type) for d in deliveries] == [
        ("Fn", "Changes", "DynamoDB"),
        ("Fn", "Tick", "Schedule"),
        ("Fn", "Ecr", "EventBridgeRule"),
        ("Fn", "Root", "Api"),
    ]
    changes, tick, ecr, root = (d.description for d in deliveries)
    assert f"stream {STREAM} from LATEST" in changes
    assert "batch=7 window=3s retries=4" in changes
    assert f"→ DLQ {QUEUE}" in changes
    assert tick.startswith('schedule rate(5 minutes) input={"a": 1}')
    assert "retries=185 max-age=86400s" in tick  # EventBridge's defaults
    assert "function errors: retries=2 max-age=21600s → discarded" in tick  # Lambda's defaults, no destination
    assert 'rule s-Fn-Ecr on bus default pattern={"source":["aws.ecr"]} via queue s-Fn-Ecr' in ecr
    assert f"→ DLQ {QUEUE}" in ecr
    assert root == "delivered by the local API gateway: ANY /v1"


def test_a_stream_without_retries_limit_retries_forever() -> None:
    (delivery,) = runner(spec(stream())).deliveries()
    assert "retries=forever" in delivery.description
    assert "filters=0" in delivery.description


@pytest.mark.parametrize(
    ("event", "named"),
    [
        (FunctionEvent("Q", "SQS", {"Queue": f"{QUEUE}.fifo"}), "FIFO queues"),
        (FunctionEvent("Q", "SQS", {"Queue": QUEUE, "ProvisionedPollerConfig": {}}), "ProvisionedPollerConfig"),
        (FunctionEvent("Upload", "S3", {"Bucket": "b"}), "Type: S3"),
        (FunctionEvent("Later", "ScheduleV2", {"ScheduleExpression": "rate(1 day)"}), "Type: ScheduleV2"),
        (stream(TumblingWindowInSeconds=60), "TumblingWindowInSeconds"),
        (stream(StartingPosition="AT_TIMESTAMP"), "AT_TIMESTAMP"),
        (stream(DestinationConfig={"OnFailure": {"Type": "SNS", "Destination": "arn:aws:sns:us-east-1:1:t"}}), "SNS"),
        (
            FunctionEvent("E", "EventBridgeRule", {"Pattern": {"source": ["x"]}, "InputTransformer": {}}),
            "InputTransformer",
        ),
        (
            FunctionEvent("T", "Schedule", {"Schedule": "rate(1 day)", "DeadLetterConfig": {"Type": "SQS"}}),
            "DeadLetterConfig.Type",
        ),
        (
            FunctionEvent("E", "EventBridgeRule", {"Pattern": {"source": ["x"]}, "InputPath": "$.detail[0]"}),
            "InputPath",
        ),
    ],
)
def test_what_the_runner_cannot_reproduce_is_rejected(event: FunctionEvent, named: str) -> None:
    with pytest.raises(UnsupportedEventError, match="Fn event") as info:
        runner(spec(event)).deliveries()
    assert named in str(info.value)
    assert info.value.function == "Fn"
    assert info.value.event == event.name
    assert info.value.event_type == event.type


def test_a_non_sqs_async_destination_is_rejected() -> None:
    event = FunctionEvent("T", "Schedule", {"Schedule": "rate(1 day)"})
    config = {"DestinationConfig": {"OnFailure": {"Type": "EventBridge", "Destination": "arn:aws:events:x"}}}
    with pytest.raises(UnsupportedEventError, match="EVENTBRIDGE"):
        runner(spec(event, invoke_config=config)).deliveries()


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (stream(BatchSize=0), "BatchSize must be 1..10000"),
        (stream(MaximumBatchingWindowInSeconds=301), "MaximumBatchingWindowInSeconds"),
        (stream(StartingPosition="EARLIEST"), "StartingPosition"),
        (stream(Stream="arn:aws:sqs:us-east-1:1:q"), "DynamoDB stream ARN"),
        (stream(FilterCriteria={"Filters": [{"Pattern": "{not json"}]}), "FilterCriteria"),
        (stream(FunctionResponseTypes=["Other"]), "FunctionResponseTypes"),
        (FunctionEvent("T", "Schedule", {"Schedule": "rate(1 minutes)"}), "singular"),
        (FunctionEvent("T", "Schedule", {"Schedule": "rate(1 day)", "Input": "{nope"}), "Input must be JSON"),
        (FunctionEvent("E", "EventBridgeRule", {"Pattern": {}}), "Pattern"),
        (FunctionEvent("E", "EventBridgeRule", {"Pattern": {"source": ["x"]}, "State": "PAUSED"}), "State must be"),
        (FunctionEvent("Q", "SQS", {"Queue": "my-queue"}), "Queue must be an SQS queue ARN"),
        (FunctionEvent("Q", "SQS", {"Queue": QUEUE, "BatchSize": 11}), "a BatchSize over 10 needs"),
        (FunctionEvent("Q", "SQS", {"Queue": QUEUE, "BatchSize": 10_001}), "BatchSize must be 1..10000"),
        (FunctionEvent("Q", "SQS", {"Queue": QUEUE, "ScalingConfig": {"MaximumConcurrency": 1}}), "must be 2..1000"),
        (FunctionEvent("Q", "SQS", {"Queue": QUEUE, "FunctionResponseTypes": ["X"]}), "FunctionResponseTypes"),
        (FunctionEvent("E", "EventBridgeRule", {"Pattern": {"source": "aws.ecr"}}), "must be an object or an array"),
    ],
)
def test_invalid_values_name_the_event(event: FunctionEvent, message: str) -> None:
    with pytest.raises(TemplateError, match=f"Fn event {event.name}") as info:
        runner(spec(event)).deliveries()
    assert message in str(info.value)


def test_an_sqs_event_carries_lambdas_defaults_and_the_templates_values() -> None:
    default, tuned, disabled = runner(
        spec(
            FunctionEvent("Plain", "SQS", {"Queue": QUEUE}),
            FunctionEvent(
                "Pulls",
                "SQS",
                {
                    "Queue": QUEUE,
                    "BatchSize": 1000,
                    "MaximumBatchingWindowInSeconds": 30,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": 2},
                    "FilterCriteria": {"Filters": [{"Pattern": '{"body": {"kind": ["warm"]}}'}]},
                },
            ),
            FunctionEvent("Off", "SQS", {"Queue": QUEUE, "Enabled": False}),
        )
    ).deliveries()
    assert default.description == f"queue {QUEUE} filters=0 batch=10 window=0s"  # Lambda's defaults
    assert tuned.description == (
        f'queue {QUEUE} filters=1 [{{"body": {{"kind": ["warm"]}}}}] batch=1000 window=30s'
        " ReportBatchItemFailures max-concurrency=2 (run as 1)"
    )
    assert disabled.description.endswith("(disabled)")


def test_a_rule_state_for_management_events_is_an_enabled_rule() -> None:
    state = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    (delivery,) = runner(
        spec(FunctionEvent("E", "EventBridgeRule", {"Pattern": {"source": ["aws.ecr"]}, "State": state}))
    ).deliveries()
    assert not delivery.description.endswith("(disabled)")


def test_long_names_are_shortened_to_aws_limits() -> None:
    event = FunctionEvent("E" * 60, "EventBridgeRule", {"Pattern": {"source": ["x"]}})
    (delivery,) = runner(spec(event)).deliveries()
    rule = delivery.description.split("rule ", 1)[1].split(" ", 1)[0]
    assert len(rule) == 64


def test_fire_only_runs_schedules() -> None:
    events = (stream(),)
    with pytest.raises(ValueError, match="not a Schedule"):
        runner(spec(*events)).fire("Fn", "Changes")


RECONCILER_FILTERS = {
    "Filters": [
        {"Pattern": '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "DESIRED#"}]}}}}'},
        {"Pattern": '{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": ["REQUEST#reconcile"]}}}}'},
    ]
}


def record(event_name: str, pk: str) -> dict[str, Any]:
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": "x"}}}}


@pytest.mark.parametrize(
    ("event_name", "pk", "delivered"),
    [
        ("INSERT", "DESIRED#rule#docker-hub", True),
        ("MODIFY", "DESIRED#rule#docker-hub", True),
        ("REMOVE", "DESIRED#warmset#base", True),
        ("INSERT", "REQUEST#reconcile", True),
        ("MODIFY", "REQUEST#reconcile", False),
        ("INSERT", "STATUS#rule#docker-hub", False),
        ("INSERT", "HISTORY#2026", False),
        ("INSERT", "desired#lowercase", False),
    ],
)
def test_filters_are_an_or_of_eventbridge_patterns(event_name: str, pk: str, delivered: bool) -> None:
    assert FilterSet.from_criteria(RECONCILER_FILTERS).matches(record(event_name, pk)) is delivered


def test_no_filters_deliver_everything_and_a_filter_needs_a_pattern() -> None:
    assert FilterSet.from_criteria(None).matches(record("INSERT", "anything"))
    with pytest.raises(PatternError, match="Pattern"):
        FilterSet.from_criteria({"Filters": [{}]})

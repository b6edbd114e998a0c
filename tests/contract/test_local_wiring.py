"""template.yaml <-> the local stack: every function event has a local delivery, every resource a local meaning.

``make local`` delivers events from each function's ``Events`` in the template (the event runner:
DynamoDB streams, SQS queues, schedules, EventBridge rules; the local API gateway: ``Api``) and
provisions the template's resources (:mod:`devstack.local.provision`: created, or a placeholder
with a reason). A function event or a resource type the local stack cannot reproduce fails here --
so nothing added to the template can silently do nothing locally.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from devstack.local.provision import CREATED, PLACEHOLDERS
from devstack.local.runner import (
    DELIVERED_ELSEWHERE,
    LOCALLY_DELIVERED,
    Delivery,
    EventRunner,
    UnsupportedEventError,
)
from devstack.local.template import (
    PhysicalResource,
    Resolver,
    TemplateError,
    function_properties,
    implicit_roles,
    resolve_functions,
)
from tests.template import ROOT, load_template

pytestmark = pytest.mark.contract

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "ecrcache-local"


class _EveryAttribute(Mapping[str, str]):
    """Attributes of a placeholder resource: any ``!GetAtt`` resolves to a plausible value."""

    def __init__(self, values: Mapping[str, str], default: str) -> None:
        self._known = dict(values)
        self._default = default

    def __getitem__(self, key: str) -> str:
        return self._known.get(key, f"{self._default}-{key}")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)


def placeholder(logical_id: str, resource_type: str) -> PhysicalResource:
    """What a local provisioner would make of a resource (names only; nothing is created)."""
    name = f"{STACK}-{logical_id}"
    if resource_type == "AWS::DynamoDB::Table":
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        values = {"Arn": arn, "StreamArn": f"{arn}/stream/2026-01-01T00:00:00.000"}
        return PhysicalResource(ref=name, attributes=_EveryAttribute(values, arn))
    if resource_type == "AWS::SQS::Queue":
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        values = {"Arn": arn, "QueueName": name}
        return PhysicalResource(ref=f"http://127.0.0.1:4566/{ACCOUNT}/{name}", attributes=_EveryAttribute(values, arn))
    if resource_type == "AWS::IAM::Role":
        arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        return PhysicalResource(ref=name, attributes=_EveryAttribute({"Arn": arn}, arn))
    service = resource_type.split("::")[1].lower() if resource_type.count("::") >= 2 else "local"
    arn = f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"
    return PhysicalResource(ref=name, attributes=_EveryAttribute({"Arn": arn}, arn))


def local_resolver(template: dict[str, Any]) -> Resolver:
    """The template's intrinsics as the local stack resolves them (placeholder resources, nothing created)."""
    resources = {
        logical_id: placeholder(logical_id, str(resource.get("Type", "")))
        for logical_id, resource in template["Resources"].items()
    }
    resources |= {role: placeholder(role, "AWS::IAM::Role") for role in implicit_roles(template)}
    return Resolver(
        template,
        resources,
        pseudo={
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
    )


def local_runner(template: dict[str, Any]) -> EventRunner:
    resolver = local_resolver(template)

    def invoke(function: str, event: dict[str, Any]) -> Any:
        raise AssertionError("deliveries() invokes nothing")

    return EventRunner(
        resolve_functions(template, resolver, ROOT),
        endpoint_url="http://127.0.0.1:9",  # nothing listens: deliveries() makes no AWS call
        region=REGION,
        stack_name=STACK,
        invoke=invoke,
    )


def template_events() -> dict[tuple[str, str], dict[str, Any]]:
    """(function, event) -> the event as written in template.yaml."""
    return {
        (function, name): event
        for function, properties in function_properties(load_template()).items()
        for name, event in (properties.get("Events") or {}).items()
    }


@pytest.fixture(scope="module")
def deliveries() -> dict[tuple[str, str], Delivery]:
    return {(d.function, d.event): d for d in local_runner(load_template()).deliveries()}


def test_every_function_event_has_exactly_one_local_delivery(deliveries: dict[tuple[str, str], Delivery]) -> None:
    events = template_events()
    assert events, "the template declares function events"
    assert set(deliveries) == set(events)
    for key, delivery in deliveries.items():
        assert delivery.type == events[key]["Type"]
        assert delivery.type in LOCALLY_DELIVERED | DELIVERED_ELSEWHERE.keys()


def test_stream_deliveries_carry_the_templates_settings(deliveries: dict[tuple[str, str], Delivery]) -> None:
    streams = {k: e for k, e in template_events().items() if e["Type"] == "DynamoDB"}
    assert streams
    for key, event in streams.items():
        properties = event["Properties"]
        text = deliveries[key].description
        assert f"from {properties['StartingPosition']}" in text
        assert f"batch={properties.get('BatchSize', 100)} " in text  # Lambda's defaults otherwise
        assert f"window={properties.get('MaximumBatchingWindowInSeconds', 0)}s" in text
        assert f"retries={properties.get('MaximumRetryAttempts', 'forever')}" in text
        filters = properties.get("FilterCriteria", {}).get("Filters", [])
        assert f"filters={len(filters)}" in text
        for entry in filters:
            assert entry["Pattern"] in text
        if "ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []):
            assert "ReportBatchItemFailures" in text
        if "DestinationConfig" in properties:
            assert f"→ DLQ arn:aws:sqs:{REGION}:{ACCOUNT}:" in text


def test_schedule_deliveries_carry_expression_and_input(deliveries: dict[tuple[str, str], Delivery]) -> None:
    schedules = {k: e for k, e in template_events().items() if e["Type"] == "Schedule"}
    assert schedules
    for key, event in schedules.items():
        properties = event["Properties"]
        text = deliveries[key].description
        assert text.startswith(f"schedule {properties['Schedule']} ")
        if "Input" in properties:
            assert f"input={properties['Input']}" in text
        retry = properties.get("RetryPolicy", {})
        if "MaximumRetryAttempts" in retry:
            assert f"retries={retry['MaximumRetryAttempts']} " in text
        if "DeadLetterConfig" in properties:
            assert "→ DLQ arn:aws:sqs:" in text


def test_rule_deliveries_carry_the_pattern() -> None:
    """The template routes ECR's events through a queue (the reconciler's ``EcrEvents``), so it declares no
    ``EventBridgeRule`` event today: one added (here, the drift rule's pattern sent straight to the function)
    is a rule of the local stack with that pattern."""
    template = copy.deepcopy(load_template())
    pattern = template["Resources"]["ReconcilerEcrDriftRule"]["Properties"]["EventPattern"]
    events = template["Resources"]["ReconcilerFunction"]["Properties"]["Events"]
    events["DirectDrift"] = {"Type": "EventBridgeRule", "Properties": {"Pattern": pattern}}
    rules = {k: e for k, e in template_events().items() if e["Type"] == "EventBridgeRule"}
    assert rules == {}

    text = {(d.function, d.event): d for d in local_runner(template).deliveries()}[
        ("ReconcilerFunction", "DirectDrift")
    ].description

    # the pattern as written, its intrinsics (the drift rule's own role) resolved for the local stack
    resolved = local_resolver(template).resolve(pattern)
    assert f"pattern={json.dumps(resolved, separators=(',', ':'))}" in text
    assert f"rule {STACK}-ReconcilerFunction-DirectDrift on bus default" in text


def test_api_events_are_delivered_by_the_gateway(deliveries: dict[tuple[str, str], Delivery]) -> None:
    apis = {k: e for k, e in template_events().items() if e["Type"] == "Api"}
    assert apis
    for key, event in apis.items():
        properties = event["Properties"]
        assert deliveries[key].description == (
            f"delivered by {DELIVERED_ELSEWHERE['Api']}: {properties['Method'].upper()} {properties['Path']}"
        )


@pytest.mark.parametrize(
    ("event_type", "properties"),
    [
        ("Kinesis", {"Stream": "arn:aws:kinesis:us-east-1:123456789012:stream/s", "StartingPosition": "LATEST"}),
        ("S3", {"Bucket": "uploads", "Events": "s3:ObjectCreated:*"}),
    ],
)
def test_a_function_event_without_local_delivery_fails(event_type: str, properties: dict[str, Any]) -> None:
    template = copy.deepcopy(load_template())
    events = template["Resources"]["ReconcilerFunction"]["Properties"]["Events"]
    events["NewTrigger"] = {"Type": event_type, "Properties": properties}

    with pytest.raises(UnsupportedEventError) as info:
        local_runner(template).deliveries()
    message = str(info.value)
    assert "ReconcilerFunction" in message
    assert "NewTrigger" in message
    assert f"Type: {event_type}" in message


def test_every_resource_type_of_the_template_has_a_local_meaning() -> None:
    """Created in the embedded AWS, or a placeholder with a reason; anything else fails provisioning."""
    types = {str(resource["Type"]) for resource in load_template()["Resources"].values()}
    assert types - CREATED.keys() - PLACEHOLDERS.keys() == set()
    assert not CREATED.keys() & PLACEHOLDERS.keys()


def _events_of(event_type: str) -> list[tuple[str, str]]:
    return sorted(key for key, event in template_events().items() if event["Type"] == event_type)


@pytest.mark.parametrize(("function", "event"), _events_of("SQS"))
def test_sqs_deliveries_poll_a_queue_of_the_template_with_its_settings(
    deliveries: dict[tuple[str, str], Delivery], function: str, event: str
) -> None:
    properties = template_events()[(function, event)]["Properties"]
    queue = properties["Queue"]
    assert isinstance(queue, dict)
    assert list(queue) == ["Fn::GetAtt"], "an SQS event polls a queue the local stack provisions"
    logical_id, attribute = queue["Fn::GetAtt"]
    assert attribute == "Arn"
    assert load_template()["Resources"][logical_id]["Type"] == "AWS::SQS::Queue"
    text = deliveries[(function, event)].description
    assert text.startswith(f"queue arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-{logical_id} ")
    assert f"batch={properties.get('BatchSize', 10)} " in text
    assert f"window={properties.get('MaximumBatchingWindowInSeconds', 0)}s" in text
    if "ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []):
        assert "ReportBatchItemFailures" in text
    concurrency = properties.get("ScalingConfig", {}).get("MaximumConcurrency")
    if concurrency is not None:  # a number, or a parameter's (!Ref ShardConcurrency: its default, locally)
        assert f"max-concurrency={local_resolver(load_template()).resolve(concurrency)}" in text


def _rules() -> list[str]:
    return sorted(k for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::Events::Rule")


@pytest.mark.parametrize("rule", _rules())
def test_every_raw_rule_feeds_a_queue_that_a_function_polls(rule: str) -> None:
    """An ``AWS::Events::Rule`` is provisioned with SQS targets only; each target queue has a consumer."""
    properties = load_template()["Resources"][rule]["Properties"]
    assert "ScheduleExpression" not in properties, "a scheduled raw rule never fires locally"
    polled = {
        event["Properties"]["Queue"]["Fn::GetAtt"][0]
        for event in template_events().values()
        if event["Type"] == "SQS" and isinstance(event["Properties"]["Queue"], dict)
    }
    targets = properties["Targets"]
    assert targets
    for target in targets:
        assert list(target["Arn"]) == ["Fn::GetAtt"], f"{rule}: targets are queues of the template"
        queue, attribute = target["Arn"]["Fn::GetAtt"]
        assert attribute == "Arn"
        assert load_template()["Resources"][queue]["Type"] == "AWS::SQS::Queue"
        assert queue in polled, f"{rule} -> {queue}: no function's SQS event polls it"
        assert not {"Input", "InputTransformer"} & set(target)


def test_the_templates_queue_mappings_are_delivered_as_the_functions_sqs_events(
    deliveries: dict[tuple[str, str], Delivery],
) -> None:
    """The SQS sources are ``AWS::Lambda::EventSourceMapping`` resources (no SAM ``SQS`` event: its managed policy
    grants every queue); the runner delivers each under SAM's event name, from the mapping's queue."""
    template = load_template()
    mappings = _mappings(template, "Arn")
    assert mappings, "the template declares its queues' mappings"
    for name, event in ((n, e) for props in _raw_functions(template) for n, e in props.items()):
        assert event["Type"] != "SQS", f"{name}: a SAM SQS event attaches AWSLambdaSQSQueueExecutionRole"
    for logical_id, mapping in mappings.items():
        function = mapping["Properties"]["FunctionName"]["Ref"]
        event = logical_id.removeprefix(function)
        queue = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        text = deliveries[(function, event)].description
        assert text.startswith(f"queue arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-{queue} ")


def test_the_templates_stream_mappings_are_delivered_as_the_functions_dynamodb_events(
    deliveries: dict[tuple[str, str], Delivery],
) -> None:
    """The DynamoDB stream sources are ``AWS::Lambda::EventSourceMapping`` resources too (no SAM ``DynamoDB`` event:
    its managed policy reads every stream); the runner delivers each under SAM's event name, from the table's stream,
    with the mapping's settings (batch size, window, retries, OnFailure queue)."""
    template = load_template()
    mappings = _mappings(template, "StreamArn")
    assert set(mappings) == {"ReconcilerFunctionDesiredStateChanged", "WarmPlannerFunctionWarmRequested"}
    for name, event in ((n, e) for props in _raw_functions(template) for n, e in props.items()):
        assert event["Type"] != "DynamoDB", f"{name}: a SAM DynamoDB event attaches AWSLambdaDynamoDBExecutionRole"
    for logical_id, mapping in mappings.items():
        props = mapping["Properties"]
        function = props["FunctionName"]["Ref"]
        table = props["EventSourceArn"]["Fn::GetAtt"][0]
        dlq = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        text = deliveries[(function, logical_id.removeprefix(function))].description
        assert text.startswith(f"stream arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-{table}/stream/")
        assert f" window={props['MaximumBatchingWindowInSeconds']}s retries={props['MaximumRetryAttempts']} " in text
        assert text.endswith(f"DLQ arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-{dlq}")


def _mappings(template: dict[str, Any], attribute: str) -> dict[str, dict[str, Any]]:
    """The template's event source mappings whose ``EventSourceArn`` is ``!GetAtt <X>.<attribute>``."""
    return {
        k: r
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["EventSourceArn"].get("Fn::GetAtt", ["", ""])[1] == attribute
    }


def _raw_functions(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        (r.get("Properties") or {}).get("Events") or {}
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    ]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            {"Fn::GetAtt": ["StateTable", "Arn"]},
            "only event source mappings of the template's queues and table streams",
        ),
        ({"Fn::GetAtt": ["WarmQueue", "StreamArn"]}, "only event source mappings of the template's queues and table"),
        ({"Ref": "WarmQueue"}, "only event source mappings of the template's queues and table streams"),
    ],
)
def test_a_mapping_the_local_stack_cannot_deliver_fails(source: dict[str, Any], error: str) -> None:
    template = copy.deepcopy(load_template())
    template["Resources"]["NewMapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {"FunctionName": {"Ref": "ReconcilerFunction"}, "EventSourceArn": source},
    }
    with pytest.raises(TemplateError, match=error):
        local_runner(template).deliveries()

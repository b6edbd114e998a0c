"""The local stack reads template.yaml: Globals applied, intrinsics resolved against local resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.local.template import (
    PhysicalResource,
    Resolver,
    TemplateError,
    implicit_roles,
    invoked_by,
    parse_template,
    resolve_functions,
)
from tests.template import ROOT, load_template

pytestmark = pytest.mark.unit

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "local",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
RESOURCES = {
    "StateTable": PhysicalResource(
        "local-StateTable",
        {
            "Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/local-StateTable",
            "StreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/local-StateTable/stream/1",
        },
    ),
    "ReconcilerDlq": PhysicalResource(
        "http://q/local-ReconcilerDlq", {"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq"}
    ),
    "WarmQueue": PhysicalResource("http://q/local-WarmQueue", {"Arn": "arn:aws:sqs:us-east-1:123456789012:warm"}),
    "WarmPlannerDlq": PhysicalResource(
        "http://q/local-WarmPlannerDlq", {"Arn": "arn:aws:sqs:us-east-1:123456789012:warm-planner-dlq"}
    ),
    "RestApi": PhysicalResource("local-api"),
}


def every_resource(template: dict[str, Any]) -> dict[str, PhysicalResource]:
    """RESOURCES, plus a plausible stand-in for every other resource (and implicit role) of ``template``."""
    names = [*template.get("Resources", {}), *implicit_roles(template)]
    stand_ins = {
        name: PhysicalResource(
            f"local-{name}", {"Arn": f"arn:aws:local:us-east-1:123456789012:{name}", "QueueName": f"local-{name}"}
        )
        for name in names
    }
    return {**stand_ins, **RESOURCES}


def resolver(template: dict[str, Any], **parameters: str) -> Resolver:
    return Resolver(template, every_resource(template), pseudo=PSEUDO, parameters=parameters)


def test_functions_of_the_real_template_resolve_with_globals_applied() -> None:
    template = load_template()
    functions = resolve_functions(template, resolver(template), ROOT)

    api = functions["ApiFunction"]
    assert api.module_file == ROOT / "functions" / "api" / "app.py"
    assert api.handler_name == "lambda_handler"
    assert api.timeout == 29
    assert api.memory_size == 512  # from Globals
    assert api.environment["TABLE_NAME"] == "local-StateTable"
    assert api.environment["POWERTOOLS_SERVICE_NAME"] == "ecrcache"  # from Globals
    assert api.environment["POWERTOOLS_LOG_LEVEL"] == "INFO"  # !Ref LogLevel -> its default

    reconciler = functions["ReconcilerFunction"]
    events = {event.name: event for event in reconciler.events}
    # the template's stream mapping ReconcilerFunctionDesiredStateChanged, read as SAM's DynamoDB event
    assert events["DesiredStateChanged"].type == "DynamoDB"
    assert events["DesiredStateChanged"].properties["Stream"] == RESOURCES["StateTable"].attributes["StreamArn"]
    assert "EventSourceArn" not in events["DesiredStateChanged"].properties
    on_failure = events["DesiredStateChanged"].properties["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Destination": RESOURCES["ReconcilerDlq"].attributes["Arn"]}
    assert events["Resync"].properties["Schedule"] == "rate(15 minutes)"
    assert reconciler.event_invoke_config["DestinationConfig"]["OnFailure"]["Destination"].startswith("arn:aws:sqs")

    planner = functions["WarmPlannerFunction"]
    assert planner.environment["WARM_QUEUE_URL"] == "http://q/local-WarmQueue"
    assert planner.environment["UPSTREAM_ENDPOINTS"] == "{}"
    assert {event.name for event in planner.events} == {"Tick", "WarmRequested"}


def test_sub_join_if_and_parameters() -> None:
    template = parse_template(
        """
Parameters:
  Stage: {Type: String, Default: prod}
  Flag: {Type: String, Default: "true"}
Conditions:
  IsOn: !Equals [!Ref Flag, "true"]
Resources: {}
"""
    )
    r = resolver(template)
    assert r.resolve({"Fn::Sub": "${AWS::StackName}-${StateTable.Arn}-${Stage}"}).endswith(
        ":table/local-StateTable-prod"
    )
    assert r.resolve({"Fn::Sub": ["${X}/${!Literal}", {"X": {"Ref": "Stage"}}]}) == "prod/${Literal}"
    assert r.resolve({"Fn::Join": ["/", ["a", {"Ref": "Stage"}]]}) == "a/prod"
    assert r.resolve({"Fn::If": ["IsOn", "yes", "no"]}) == "yes"
    assert resolver(template, Flag="false").resolve({"Fn::If": ["IsOn", "yes", "no"]}) == "no"
    assert r.resolve({"Fn::Select": [1, ["a", "b"]]}) == "b"


def test_ref_aws_novalue_removes_the_property_or_list_item_that_holds_it() -> None:
    template = parse_template(
        """
Parameters:
  Email: {Type: String, Default: ""}
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
Resources: {}
"""
    )
    subscription = {
        "DisplayName": "alerts",
        "Subscription": {
            "Fn::If": ["HasEmail", [{"Protocol": "email", "Endpoint": {"Ref": "Email"}}], {"Ref": "AWS::NoValue"}]
        },
        "Tags": ["a", {"Fn::If": ["HasEmail", "b", {"Ref": "AWS::NoValue"}]}],
    }

    assert resolver(template).resolve(subscription) == {"DisplayName": "alerts", "Tags": ["a"]}
    assert resolver(template, Email="ops@example.com").resolve(subscription) == {
        "DisplayName": "alerts",
        "Subscription": [{"Protocol": "email", "Endpoint": "ops@example.com"}],
        "Tags": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Ref": "Nope"}, "!Ref Nope"),
        ({"Fn::GetAtt": ["Nope", "Arn"]}, "Nope is not created by the local stack"),
        ({"Fn::GetAtt": ["RestApi", "RootResourceId"]}, "has no attribute RootResourceId"),
        ({"Fn::ImportValue": "x"}, "Fn::ImportValue is not supported"),
        ({"Fn::If": ["Missing", 1, 2]}, "condition 'Missing'"),
    ],
)
def test_what_cannot_be_resolved_is_named(value: Any, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        resolver({"Resources": {}}).resolve(value)


def test_a_function_without_local_code_is_refused(tmp_path: Path) -> None:
    template = parse_template(
        """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: {Bucket: b, Key: k}, Handler: app.handler, Runtime: python3.13}
"""
    )
    with pytest.raises(TemplateError, match="Fn: the local stack needs a local CodeUri"):
        resolve_functions(template, resolver(template), tmp_path)


def test_sam_gives_a_function_without_role_an_implicit_role_named_after_it() -> None:
    template = parse_template(
        """
Globals:
  Function: {Runtime: python3.13}
Resources:
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: w/, Handler: app.handler}
  OwnRoleFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: o/, Handler: app.handler, Role: arn:aws:iam::123456789012:role/mine}
  Queue:
    Type: AWS::SQS::Queue
"""
    )
    assert implicit_roles(template) == {"WorkerFunctionRole": "WorkerFunction"}


def test_the_functions_a_permission_lets_a_principal_invoke_are_found() -> None:
    template = parse_template(
        """
Resources:
  RotatorFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: r/, Handler: app.handler}
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: o/, Handler: app.handler}
  ByGetAtt:
    Type: AWS::Lambda::Permission
    Properties: {FunctionName: !GetAtt RotatorFunction.Arn, Principal: secretsmanager.amazonaws.com}
  ByRefTwice:
    Type: AWS::Lambda::Permission
    Properties: {FunctionName: !Ref RotatorFunction, Principal: secretsmanager.amazonaws.com}
  ForEvents:
    Type: AWS::Lambda::Permission
    Properties: {FunctionName: !Ref OtherFunction, Principal: events.amazonaws.com}
  NotAFunction:
    Type: AWS::Lambda::Permission
    Properties: {FunctionName: "arn:aws:lambda:us-east-1:1:function:x", Principal: secretsmanager.amazonaws.com}
"""
    )
    assert invoked_by(template, "secretsmanager.amazonaws.com") == ["RotatorFunction"]
    assert invoked_by(template, "events.amazonaws.com") == ["OtherFunction"]


def test_secrets_manager_invokes_the_rotator_function_of_the_real_template() -> None:
    """What ``make local`` registers with the embedded Secrets Manager (``RotatorInvokePermission``)."""
    assert invoked_by(load_template(), "secretsmanager.amazonaws.com") == ["RotatorFunction"]

"""SNS topics on the local stack: created in the embedded AWS from the template, ``Ref`` is the ARN.

The health check publishes its alerts to ``AlertTopic`` (``${AWS::StackName}-alerts``); locally that topic must
exist for the publish to succeed, with the template's name, and its optional e-mail subscription only when the
``AlertEmail`` condition holds (``!If [HasAlertEmail, [...], !Ref AWS::NoValue]``), as CloudFormation does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from devstack.local.provision import LocalStack, provision
from devstack.local.template import TemplateError, parse_template
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.local.conftest import reset_process_knobs

pytestmark = pytest.mark.functional

STACK = "sns-stack"
TEMPLATE = """
Parameters:
  AlertEmail: {Type: String, Default: ""}
Conditions:
  HasAlertEmail: !Not [!Equals [!Ref AlertEmail, ""]]
Resources:
  Inbox:
    Type: AWS::SQS::Queue
  AlertTopic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub ${AWS::StackName}-alerts
      DisplayName: ecrcache alerts
      Subscription: !If
        - HasAlertEmail
        - - Protocol: email
            Endpoint: !Ref AlertEmail
        - !Ref AWS::NoValue
  OtherTopic:
    Type: AWS::SNS::Topic
    Properties:
      Subscription:
        - Protocol: sqs
          Endpoint: !GetAtt Inbox.Arn
Outputs:
  AlertTopicArn:
    Value: !Ref AlertTopic
"""


def _provision(server: str, template: str = TEMPLATE, **parameters: str) -> LocalStack:
    return provision(
        parse_template(template),
        root=Path.cwd(),
        endpoint_url=server,
        stack_name=STACK,
        region=REGION,
        account_id=ACCOUNT_ID,
        api_url="http://127.0.0.1:9/v1",
        parameters=parameters,
    )


@pytest.fixture
def sns(server: str) -> Iterator[Any]:
    try:
        yield boto3.client("sns", endpoint_url=server, region_name=REGION)
    finally:
        requests.post(f"{server}/moto-api/reset", timeout=10).raise_for_status()
        reset_process_knobs()


def test_a_topic_is_created_with_its_template_name_and_ref_is_its_arn(server: str, sns: Any) -> None:
    stack = _provision(server)

    arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{STACK}-alerts"
    assert stack.resources["AlertTopic"].ref == arn
    assert stack.resources["AlertTopic"].attributes == {"TopicArn": arn, "TopicName": f"{STACK}-alerts"}
    assert stack.outputs["AlertTopicArn"] == arn
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "ecrcache alerts"
    # AND a topic without TopicName gets a stack-derived name, as CloudFormation generates one
    assert stack.resources["OtherTopic"].ref == f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{STACK}-OtherTopic"


def test_a_subscription_behind_a_false_condition_is_not_created(server: str, sns: Any) -> None:
    arn = _provision(server).resources["AlertTopic"].ref

    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []


def test_a_subscription_whose_condition_holds_is_created(server: str, sns: Any) -> None:
    arn = _provision(server, AlertEmail="ops@example.com").resources["AlertTopic"].ref

    subscriptions = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.com")]


def test_what_is_published_reaches_the_topics_subscribers(server: str, sns: Any) -> None:
    stack = _provision(server)
    sqs = boto3.client("sqs", endpoint_url=server, region_name=REGION)

    sns.publish(TopicArn=stack.resources["OtherTopic"].ref, Subject="Credential Expiring", Message="ghcr: 3 days")

    (message,) = sqs.receive_message(QueueUrl=stack.resources["Inbox"].ref, WaitTimeSeconds=2)["Messages"]
    assert json.loads(message["Body"])["Message"] == "ghcr: 3 days"


def test_a_subscription_without_an_endpoint_is_refused_by_name(server: str, sns: Any) -> None:
    broken = "Resources:\n  T:\n    Type: AWS::SNS::Topic\n    Properties:\n      Subscription: [{Protocol: sqs}]\n"

    with pytest.raises(TemplateError, match="T: every Subscription needs a Protocol and an Endpoint"):
        _provision(server, broken)

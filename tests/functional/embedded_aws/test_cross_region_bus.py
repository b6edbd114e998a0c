"""EventBridge rules whose target is the default bus of another Region (the controller's event forwarders).

EventBridge User Guide, "Sending and receiving events between AWS Regions": a rule's target may be an event bus
of another Region, with an execution role; the event arrives there as the sender's event (its ``region`` the
origin's), and an event received from another Region or account is not sent on to a further bus.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from devstack.aws import eventbridge_rules
from tests.functional.embedded_aws.conftest import EmbeddedAws

pytestmark = pytest.mark.functional

OTHER = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/ecrcache-forward"


def _forwarder(embedded_aws: EmbeddedAws, *, role: str | None = ROLE, source_region: str = OTHER) -> Any:
    """A rule in ``source_region`` forwarding ECR events to the home Region's default bus; its events client."""
    client = boto3.client("events", region_name=source_region)
    client.put_rule(Name="fwd", EventPattern=json.dumps({"source": ["aws.ecr"]}), State="ENABLED")
    bus = f"arn:aws:events:{embedded_aws.region}:{embedded_aws.account_id}:event-bus/default"
    if role:
        client.put_targets(Rule="fwd", Targets=[{"Id": "home", "Arn": bus, "RoleArn": role}])
    else:
        client.put_targets(Rule="fwd", Targets=[{"Id": "home", "Arn": bus}])
    return client


def test_a_rule_change_in_another_region_reaches_the_home_bus_as_the_original_event(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a spy on the home bus and a forwarder in another Region
    queue = embedded_aws.spy({"source": ["aws.ecr"]})
    _forwarder(embedded_aws)
    # WHEN ECR in the other Region changes
    ecr = boto3.client("ecr", region_name=OTHER)
    ecr.create_repository_creation_template(prefix="ghcr", appliedFor=["PULL_THROUGH_CACHE"])
    # THEN the home bus got the CloudTrail event of that Region, as it was (not re-put by PutEvents)
    [event] = embedded_aws.received(queue)
    assert (event["source"], event["detail-type"], event["region"], event["account"]) == (
        "aws.ecr",
        "AWS API Call via CloudTrail",
        OTHER,
        embedded_aws.account_id,
    )
    assert event["detail"]["awsRegion"] == OTHER
    assert event["detail"]["eventName"] == "CreateRepositoryCreationTemplate"
    assert event["id"] and event["time"]


def test_a_bus_target_without_a_role_gets_nothing(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a forwarder whose target has no execution role
    queue = embedded_aws.spy({"source": ["aws.ecr"]})
    _forwarder(embedded_aws, role=None)
    before = len(eventbridge_rules.undelivered)
    # WHEN ECR in the other Region changes THEN nothing reaches the home bus, and the fake says why
    boto3.client("ecr", region_name=OTHER).create_repository_creation_template(
        prefix="ghcr", appliedFor=["PULL_THROUGH_CACHE"]
    )
    assert embedded_aws.received(queue) == []
    assert len(eventbridge_rules.undelivered) == before + 1


def test_a_forwarded_event_is_not_forwarded_again(embedded_aws: EmbeddedAws) -> None:
    # GIVEN forwarders both ways between the home Region and another one, and a spy in the other Region
    home_to_other = boto3.client("events", region_name=embedded_aws.region)
    home_to_other.put_rule(Name="back", EventPattern=json.dumps({"source": ["aws.ecr"]}), State="ENABLED")
    home_to_other.put_targets(
        Rule="back",
        Targets=[
            {"Id": "o", "Arn": f"arn:aws:events:{OTHER}:{embedded_aws.account_id}:event-bus/default", "RoleArn": ROLE}
        ],
    )
    queue = embedded_aws.spy({"source": ["aws.ecr"]})
    _forwarder(embedded_aws)
    # WHEN ECR in the other Region changes
    boto3.client("ecr", region_name=OTHER).create_repository_creation_template(
        prefix="ghcr", appliedFor=["PULL_THROUGH_CACHE"]
    )
    # THEN the home bus got it once (it did not come back through the other Region and again)
    assert len(embedded_aws.received(queue)) == 1


def test_same_region_targets_of_a_forwarding_rule_still_get_the_event(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a rule in the other Region with a queue there as well as the home bus
    sqs = boto3.client("sqs", region_name=OTHER)
    url = sqs.create_queue(QueueName="local")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client = _forwarder(embedded_aws)
    client.put_targets(Rule="fwd", Targets=[{"Id": "q", "Arn": arn}])
    home = embedded_aws.spy({"source": ["aws.ecr"]})
    # WHEN ECR there changes THEN both got it
    boto3.client("ecr", region_name=OTHER).create_repository_creation_template(
        prefix="ghcr", appliedFor=["PULL_THROUGH_CACHE"]
    )
    assert len(embedded_aws.received(home)) == 1
    assert sqs.receive_message(QueueUrl=url).get("Messages")

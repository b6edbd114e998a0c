"""The daily credential health check on the local stack, fired now with ``ecrcache local fire``: its alerts reach
the stack's SNS topic (``AlertTopic``, created in the embedded AWS from the template) as they would in AWS."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import Cli, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "e2e-health-alerts"


def test_the_health_check_fired_now_publishes_its_alerts_to_the_stacks_topic(cli: Cli, applied: RunningStack) -> None:
    # GIVEN a queue subscribed to the stack's alert topic (the AlertTopicArn output)
    stack = applied.client("cloudformation").describe_stacks(StackName=applied.ready["stack"])["Stacks"][0]
    topic = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["AlertTopicArn"]
    assert topic.endswith(f":{applied.ready['stack']}-alerts")
    sqs = applied.client("sqs")
    queue = sqs.create_queue(QueueName="e2e-alert-topic")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    applied.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    # AND a credential of its own, never checked (Unknown) whichever e2e tests ran before: the GHCR stand-in's
    # user and token, so that the check finds it Healthy
    ghcr = applied.ready["ghcr"]
    cli.ok("credentials", "set", NAME, "--upstream", "github-container-registry", "--username", ghcr["username"],
           "--token-stdin", stdin=ghcr["token"] + "\n")  # fmt: skip

    try:
        # WHEN the daily schedule's event is delivered now
        fired = cli("local", "fire", "credentialhealth")

        # THEN the function ran and checked the credential with its token at the stand-in: Healthy
        assert fired.code == 0, fired.output
        assert json.loads(fired.stdout)["states"][NAME] == "Healthy"
        assert "CredentialHealthFunction <- Daily (rate(1 day))" in fired.stderr
        # AND its change (Unknown -> Healthy) was published to the topic, as the health check does in AWS
        deadline, messages = time.monotonic() + 30, list[str]()
        while time.monotonic() < deadline and not any(NAME in m for m in messages):
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages += [json.loads(m["Body"])["Message"] for m in received.get("Messages", [])]
        assert any("Credential Health Changed" in m and NAME in m for m in messages), messages
    finally:
        cli.ok("delete", "credential", NAME)

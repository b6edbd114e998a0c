"""The deployed reconciler announces a rule's condition changes on the default event bus (its own role's
credentials, the template's ``events:PutEvents`` grant), and what a user's EventBridge rule receives validates against
``docs/events/rule-condition-changed.schema.json``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import ROOT
from tests.functional.reconcile.support import Admin, Reconciler, clients

pytestmark = pytest.mark.functional

SCHEMA = ROOT / "docs" / "events" / "rule-condition-changed.schema.json"


def user_rule() -> str:
    """A user's rule on the default bus (``source: ecrcache``) delivering to a queue: its URL."""
    aws = clients()
    queue = aws.sqs.create_queue(QueueName="ecrcache-state-events")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.events.put_rule(Name="ecrcache-state-events", EventPattern=json.dumps({"source": ["ecrcache"]}))
    aws.events.put_targets(Rule="ecrcache-state-events", Targets=[{"Id": "queue", "Arn": arn}])
    return queue


def drain(queue: str) -> list[dict[str, Any]]:
    sqs, bodies = clients().sqs, []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_new_rule_going_synced_is_announced_and_the_event_matches_its_schema(
    controller: Reconciler, alice: Admin
) -> None:
    # GIVEN a user's rule on the default bus, and a new desired rule
    queue = user_rule()
    alice.put_rule("quay", {"upstream_kind": "quay"})
    # WHEN the reconciler converges it (the stream delivers the write)
    outcome = controller.deliver_stream()
    assert outcome.error is None
    # THEN the user's rule received Rule Condition Changed events: the rule is Synced, and each validates
    received = [e for e in drain(queue) if e["detail-type"] == "Rule Condition Changed"]
    synced = [e["detail"] for e in received if e["detail"]["condition"] == "Synced"]
    assert [(d["prefix"], d["status"], d["previous_status"]) for d in synced] == [("quay", True, None)]
    validator = Draft202012Validator(json.loads(SCHEMA.read_text()), format_checker=FormatChecker())
    assert {e["id"]: [err.message for err in validator.iter_errors(e)] for e in received} == {
        e["id"]: [] for e in received
    }
    # AND a run that changes nothing announces nothing
    assert alice.api.call("POST", "/v1/reconcile", body={"deep": False}).status == 202
    again = controller.deliver_stream()
    assert again.records and again.error is None
    assert [e for e in drain(queue) if e["detail-type"] == "Rule Condition Changed"] == []

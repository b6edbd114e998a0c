"""ECR's events reach the reconciler through a queue (issue 13, "Event storms and the Region lease").

Invoked once per event, a storm of CloudTrail or pull-through events was a storm of full reconciles, and
an event finding its Region's lease held failed, was retried twice by Lambda within minutes and ended in
the DLQ. Through SQS they are gathered into batches (one reconcile per Region each), and a message whose
Region is busy is reported back and delivered again after the visibility timeout -- never an error.

AWS documentation each check follows:
- Lambda Developer Guide, "Using Lambda with Amazon SQS": the execution role needs sqs:ReceiveMessage,
  sqs:DeleteMessage and sqs:GetQueueAttributes; the queue's visibility timeout at least 6 x the function's
  timeout; a batch over 10 records needs MaximumBatchingWindowInSeconds >= 1; partial batch responses need
  FunctionResponseTypes ReportBatchItemFailures; ScalingConfig.MaximumConcurrency 2..1000.
- EventBridge User Guide, "Permissions for Amazon SQS targets": a queue policy for events.amazonaws.com,
  conditioned on aws:SourceArn (the rule) against the confused deputy.
- SQS Developer Guide, "Using dead-letter queues": maxReceiveCount, retention longer than the redrive.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.services.reconcile import LEASE_SECONDS
from tests.template import functions, resources

pytestmark = pytest.mark.contract

RULES = ("ReconcilerEcrDriftRule", "ReconcilerPullThroughCacheActionRule")
QUEUE = "ReconcilerEventsQueue"
DLQ = "ReconcilerEventsDlq"


def _reconciler() -> dict[str, Any]:
    return functions()["ReconcilerFunction"]


def _source() -> dict[str, Any]:
    event: dict[str, Any] = _reconciler()["Events"]["EcrEvents"]
    return event


def _queue(logical_id: str = QUEUE) -> dict[str, Any]:
    props: dict[str, Any] = resources("AWS::SQS::Queue")[logical_id]["Properties"]
    return props


def test_no_ecr_event_invokes_the_reconciler_directly() -> None:
    # GIVEN the reconciler's event sources THEN ECR's events come only through the queue (schedules stay direct)
    kinds = {name: event["Type"] for name, event in _reconciler()["Events"].items()}
    assert "EventBridgeRule" not in kinds.values()
    assert kinds == {
        "DesiredStateChanged": "DynamoDB",
        "Resync": "Schedule",
        "DeepResync": "Schedule",
        "EcrEvents": "SQS",
    }


@pytest.mark.parametrize("rule", RULES)
def test_each_ecr_rule_targets_the_queue_with_retries_and_the_queues_own_dlq(rule: str) -> None:
    props = resources("AWS::Events::Rule")[rule]["Properties"]
    assert props["State"] == "ENABLED"
    assert props["EventPattern"]["source"] == ["aws.ecr"]
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [QUEUE, "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [DLQ, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert "Input" not in target and "InputPath" not in target  # the function reads the EventBridge envelope


def test_the_event_source_coalesces_batches_and_reports_partial_failures() -> None:
    props = _source()["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": [QUEUE, "Arn"]}
    assert props["BatchSize"] > 10
    assert props["MaximumBatchingWindowInSeconds"] >= 1  # required over 10 records; the window that coalesces
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == 2  # the lowest SQS allows: few runs contend for leases


def test_a_busy_region_comes_back_after_the_lease_and_is_dead_lettered_only_after_hours() -> None:
    queue = _queue()
    timeout = _reconciler()["Timeout"]
    # the visibility timeout: Lambda's 6 x timeout, and longer than any run holds a Region's lease
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["VisibilityTimeout"] > LEASE_SECONDS
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [DLQ, "Arn"]}
    # several deep resyncs' worth of held leases before a message is given up on ...
    assert redrive["maxReceiveCount"] * queue["VisibilityTimeout"] >= 10 * LEASE_SECONDS
    assert redrive["maxReceiveCount"] >= 5
    # ... and no message expires in the queue before that
    assert queue["MessageRetentionPeriod"] > redrive["maxReceiveCount"] * queue["VisibilityTimeout"]
    assert queue["SqsManagedSseEnabled"] is True
    assert _queue(DLQ)["MessageRetentionPeriod"] == 1209600


def test_only_the_two_rules_may_send_to_the_queue_and_its_dlq() -> None:
    (policy,) = [p for p in resources("AWS::SQS::QueuePolicy").values() if {"Ref": QUEUE} in p["Properties"]["Queues"]]
    props = policy["Properties"]
    assert props["Queues"] == [{"Ref": QUEUE}, {"Ref": DLQ}]
    (statement,) = props["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == [{"Fn::GetAtt": [QUEUE, "Arn"]}, {"Fn::GetAtt": [DLQ, "Arn"]}]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == [{"Fn::GetAtt": [r, "Arn"]} for r in RULES]


def test_the_reconciler_may_receive_and_delete_from_its_queue_only() -> None:
    statements = [s for p in _reconciler()["Policies"] for s in p["Statement"]]
    sqs = [s for s in statements if any(str(a).startswith("sqs:") for a in s["Action"])]
    assert sqs == [
        {
            "Sid": "ReconcilerEventsQueue",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": {"Fn::GetAtt": [QUEUE, "Arn"]},
        },
        # a deep run's shard tasks, to the shard queue only
        {
            "Sid": "ReconcileShardQueue",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": {"Fn::GetAtt": ["ReconcileShardQueue", "Arn"]},
        },
        # its only other SQS statement: its stream mapping's OnFailure destination, its own DLQ
        {
            "Sid": "StreamFailureDestination",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": {"Fn::GetAtt": ["ReconcilerDlq", "Arn"]},
        },
    ]


def test_the_queues_dlq_has_an_alarm() -> None:
    alarms = [a["Properties"] for a in resources("AWS::CloudWatch::Alarm").values()]
    watched = [
        a
        for a in alarms
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [DLQ, "QueueName"]}} in a.get("Dimensions", [])
    ]
    assert len(watched) == 1
    assert watched[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert watched[0]["Threshold"] == 0


def test_the_reconcilers_dlq_no_longer_takes_the_ecr_rules() -> None:
    # its dead letters are the stream's and the schedules'; the ECR rules' go to the event queue's DLQ
    policy = resources("AWS::SQS::QueuePolicy")["ReconcilerDlqPolicy"]["Properties"]["PolicyDocument"]
    sources = [a for s in policy["Statement"] for a in s["Condition"]["ArnEquals"]["aws:SourceArn"]]
    assert not [a for a in sources if a["Fn::GetAtt"][0] in RULES]

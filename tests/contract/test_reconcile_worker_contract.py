"""template.yaml <-> the deep resync's fan-out (README "Deep resync at scale"): the reconciler's shard settings, the
shard queue, its DLQ and the worker's mapping as the worker's code reads them, the fan-out's deadline against the
queue's redeliveries, the worker's ECR permissions, and the sample events it takes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from ecrcache.config import SHARD_DEADLINE_MIN, ReconcilerSettings
from ecrcache.models.shards import MAX_SHARD_SIZE, ShardTask
from tests.conftest import EVENTS
from tests.template import functions, load_template, resources

pytestmark = pytest.mark.contract

WORKER = "ReconcileWorkerFunction"
MAPPING = "ReconcileWorkerFunctionShardTasks"
QUEUE, DLQ = "ReconcileShardQueue", "ReconcileShardDlq"
SAMPLES = sorted((EVENTS / "reconcile_worker").glob("*.json"))
MALFORMED = {"sqs_malformed_body.json"}
REPOSITORIES_IN_EVERY_REGION = {"Fn::Sub": "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*"}
DAY = 86400


def _worker() -> dict[str, Any]:
    return functions()[WORKER]


def _reconciler_env() -> dict[str, Any]:
    variables: dict[str, Any] = functions()["ReconcilerFunction"]["Environment"]["Variables"]
    return variables


def _statements(logical_id: str) -> list[dict[str, Any]]:
    return [s for p in functions()[logical_id]["Policies"] if isinstance(p, dict) for s in p["Statement"]]


def _queue(logical_id: str = QUEUE) -> dict[str, Any]:
    properties: dict[str, Any] = resources("AWS::SQS::Queue")[logical_id]["Properties"]
    return properties


def test_the_worker_is_one_shard_an_invocation_at_most_shard_concurrency_at_a_time() -> None:
    mapping = resources("AWS::Lambda::EventSourceMapping")[MAPPING]["Properties"]
    assert mapping["FunctionName"] == {"Ref": WORKER}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [QUEUE, "Arn"]}
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ShardConcurrency"}}
    # Lambda's range for an SQS mapping's MaximumConcurrency (ScalingConfig: 2..1000); the default width
    parameter = load_template()["Parameters"]["ShardConcurrency"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (
        "Number",
        5,
        2,
        1000,
    )
    assert _worker()["CodeUri"] == "functions/reconcile_worker/"


def test_no_invocation_of_the_worker_runs_over_five_minutes_and_a_shard_starts_with_time_to_finish() -> None:
    from functions.reconcile_worker import app

    assert _worker()["Timeout"] <= 300  # issue 14: no single invocation over 5 minutes
    assert _worker()["Timeout"] * 1000 > app.MIN_REMAINING_MS


def test_the_shard_queue_redrives_after_the_workers_last_attempt_and_outlives_a_shard() -> None:
    from functions.reconcile_worker import app

    queue, dlq = _queue(), _queue(DLQ)
    assert queue["SqsManagedSseEnabled"] is True
    # the receive the worker treats as its last attempt is the one after which SQS dead-letters the message
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [DLQ, "Arn"]}, "maxReceiveCount": 3}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == app.MAX_RECEIVE_COUNT
    # Lambda's guidance for SQS sources: visibility at least 6 x the function's timeout
    assert queue["VisibilityTimeout"] >= 6 * _worker()["Timeout"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * DAY
    alarm = resources("AWS::CloudWatch::Alarm")["ReconcileShardDlqAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [DLQ, "QueueName"]}}]
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


def test_the_fan_out_deadline_outlasts_a_shards_attempts_and_no_message_outlives_it() -> None:
    # GIVEN the reconciler's settings as the template sets them
    env = _reconciler_env()
    settings = ReconcilerSettings.model_validate(
        {
            "table_name": "ecrcache-state",
            **{k.lower(): v for k, v in env.items() if k.startswith("SHARD_") and k != "SHARD_QUEUE_URL"},
        }
    )
    queue = _queue()
    deadline = settings.shard_deadline_seconds
    # THEN a shard's last attempt (after two visibility timeouts) can finish before its fan-out is settled ...
    last_attempt_ends = (queue["RedrivePolicy"]["maxReceiveCount"] - 1) * queue["VisibilityTimeout"] + _worker()[
        "Timeout"
    ]
    assert deadline >= last_attempt_ends
    assert deadline >= SHARD_DEADLINE_MIN
    # ... a shard waiting behind the concurrency cap is not expired from the queue before then ...
    assert queue["MessageRetentionPeriod"] >= deadline
    # ... and an abandoned fan-out is settled before the next daily deep resync (it would start none)
    assert deadline < DAY
    assert settings.shard_size == MAX_SHARD_SIZE


def test_the_reconciler_sends_shards_to_the_shard_queue_only() -> None:
    assert _reconciler_env()["SHARD_QUEUE_URL"] == {"Ref": QUEUE}
    sends = [s for s in _statements("ReconcilerFunction") if "sqs:SendMessage" in s["Action"]]
    assert {"Fn::GetAtt": [QUEUE, "Arn"]} in [s["Resource"] for s in sends]
    # the worker sends nothing: it only receives from its own queue
    assert not [s for s in _statements(WORKER) if "sqs:SendMessage" in s["Action"]]


def test_the_worker_converges_repositories_in_every_region_and_nothing_registry_level() -> None:
    ecr = [s for s in _statements(WORKER) if any(str(a).startswith("ecr:") for a in s["Action"])]
    assert [s["Resource"] for s in ecr] == [REPOSITORIES_IN_EVERY_REGION]
    assert {a for s in ecr for a in s["Action"]} == {
        "ecr:DescribeRepositories",
        "ecr:GetLifecyclePolicy",
        "ecr:PutLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
        "ecr:GetRepositoryPolicy",
        "ecr:SetRepositoryPolicy",
        "ecr:DeleteRepositoryPolicy",
        "ecr:ListTagsForResource",
        "ecr:TagResource",
        "ecr:UntagResource",
        "ecr:PutImageTagMutability",
    }
    # the same repository grants as the reconciler's, but the templates' dependent CreateRepository
    [reconciler] = [s for s in _statements("ReconcilerFunction") if s.get("Sid") == "EcrCachedRepositories"]
    assert set(reconciler["Action"]) - {a for s in ecr for a in s["Action"]} == {"ecr:CreateRepository"}
    # no role passing, no Secrets Manager, no rule or template of ECR's
    actions = {a for s in _statements(WORKER) for a in s["Action"]}
    assert not {a for a in actions if a.startswith(("iam:", "secretsmanager:", "lambda:"))}


def test_the_worker_reads_and_writes_only_the_state_table() -> None:
    table = [s for s in _statements(WORKER) if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    assert [s["Resource"] for s in table] == [
        [{"Fn::GetAtt": ["StateTable", "Arn"]}, {"Fn::Sub": "${StateTable.Arn}/index/*"}]
    ]
    assert not any(a in {"dynamodb:Scan", "dynamodb:ListStreams"} for s in table for a in s["Action"])


def test_there_are_sample_events_and_a_malformed_one() -> None:
    assert {p.name for p in SAMPLES} >= MALFORMED
    assert len(SAMPLES) > len(MALFORMED)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.stem)
def test_every_sample_event_is_an_sqs_event_of_the_shard_queue_with_a_shard_task(path: Path) -> None:
    # WHEN the sample is parsed as Powertools parses an SQS event
    event = SqsModel.model_validate(json.loads(path.read_text()))
    # THEN it comes from the shard queue, one record (the mapping's BatchSize), whose body is a shard task (but in
    # the malformed sample)
    assert len(event.Records) == 1
    for record in event.Records:
        assert record.eventSource == "aws:sqs"
        assert ":ecrcache-ReconcileShardQueue-" in record.eventSourceARN
        if path.name in MALFORMED:
            with pytest.raises(ValueError, match="sorted"):
                ShardTask.model_validate_json(str(record.body))
        else:
            assert ShardTask.model_validate_json(str(record.body)).repositories

"""template.yaml <-> the warm worker: its queue, DLQ and event source as issue 11 fixes them, its ECR
permissions, and the sample events it takes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from ecrcache.models.warm_run import RUN_DEADLINE, WARM_QUEUE_RETENTION, WarmTask
from ecrcache.services.warm_worker import task_from_body
from tests.conftest import EVENTS
from tests.template import functions, resources

pytestmark = pytest.mark.contract

WORKER = "WarmWorkerFunction"
SAMPLES = sorted((EVENTS / "warm_worker").glob("*.json"))
MALFORMED = {"sqs_malformed_body.json"}
REPOSITORIES_IN_EVERY_REGION = {"Fn::Sub": "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*"}


def _worker() -> dict[str, Any]:
    return functions()[WORKER]


def _statements() -> list[dict[str, Any]]:
    return [s for policy in _worker()["Policies"] if isinstance(policy, dict) for s in policy["Statement"]]


def test_the_worker_takes_warm_queue_batches_as_contracted() -> None:
    [event] = [e for e in _worker()["Events"].values() if e["Type"] == "SQS"]
    assert event["Properties"] == {
        "Queue": {"Fn::GetAtt": ["WarmQueue", "Arn"]},
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": 5},
    }
    assert _worker()["CodeUri"] == "functions/warm_worker/"


def test_the_warm_queue_is_encrypted_redrives_to_its_dlq_and_outlives_a_batch() -> None:
    queues = resources("AWS::SQS::Queue")
    queue, dlq = queues["WarmQueue"]["Properties"], queues["WarmDlq"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["WarmDlq", "Arn"]}, "maxReceiveCount": 3}
    # Lambda's guidance for SQS sources: visibility at least 6 x the function's timeout
    assert queue["VisibilityTimeout"] >= 6 * _worker()["Timeout"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarm = resources("AWS::CloudWatch::Alarm")["WarmDlqAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WarmDlq", "QueueName"]}}]


def test_a_runs_deadline_comes_after_its_last_task_can_arrive() -> None:
    # The run store settles a run's images as lost at its deadline: by then no task of it may be left on the
    # queue (retention), being worked on (the worker's timeout), or waiting in the stream to be planned (24 h).
    queue = resources("AWS::SQS::Queue")["WarmQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == WARM_QUEUE_RETENTION.total_seconds()
    assert WARM_QUEUE_RETENTION + timedelta(seconds=_worker()["Timeout"]) <= RUN_DEADLINE
    assert timedelta(hours=24) < RUN_DEADLINE


def test_the_worker_pulls_through_the_cache_in_every_region_and_nothing_more_in_ecr() -> None:
    ecr = [s for s in _statements() if any(str(a).startswith("ecr:") for a in s["Action"])]
    assert [s["Resource"] for s in ecr] == [REPOSITORIES_IN_EVERY_REGION]
    assert {a for s in ecr for a in s["Action"]} == {
        "ecr:BatchGetImage",
        "ecr:BatchImportUpstreamImage",
        "ecr:CreateRepository",
        "ecr:TagResource",
        "ecr:GetDownloadUrlForLayer",
        "ecr:DescribeImages",
        "ecr:UpdateImageStorageClass",
    }


def test_the_worker_reads_and_writes_only_the_state_table() -> None:
    table = [s for s in _statements() if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    assert [s["Resource"] for s in table] == [[{"Fn::GetAtt": ["StateTable", "Arn"]}]]
    # No Scan; DeleteItem and BatchWriteItem are there because the worker imports the run store, whose
    # planner paths use them (test_iam_matches_code grants what an imported adapter can call).
    assert not any(a == "dynamodb:Scan" for s in table for a in s["Action"])


def test_there_are_sample_events_and_a_malformed_one() -> None:
    assert {p.name for p in SAMPLES} >= MALFORMED
    assert len(SAMPLES) > len(MALFORMED)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.stem)
def test_every_sample_event_is_an_sqs_batch_of_warm_tasks(path: Path) -> None:
    # WHEN the sample is parsed as Powertools parses an SQS event
    event = SqsModel.model_validate(json.loads(path.read_text()))
    # THEN it comes from the warm queue, and each body is a warm task (but in the malformed sample)
    assert event.Records
    for record in event.Records:
        assert record.eventSource == "aws:sqs"
        assert ":ecrcache-WarmQueue-" in record.eventSourceARN
        task = task_from_body(str(record.body))
        if path.name in MALFORMED:
            assert task is None
        else:
            assert isinstance(task, WarmTask)
            assert task.repository.startswith(f"{task.rule}/")

"""The functions' SQS event sources are explicit mappings, and each role may receive from its own queue only.

A SAM ``SQS`` event attaches the managed policy ``AWSLambdaSQSQueueExecutionRole`` (``sqs:ReceiveMessage``,
``sqs:DeleteMessage``, ``sqs:GetQueueAttributes`` on ``Resource: "*"``) to the function's role (SAM policy
templates / "SQS" event source: the generated role). The template declares ``AWS::Lambda::EventSourceMapping``
resources instead, with the logical ids SAM gave them, and grants those three actions (Lambda Developer Guide,
"Using Lambda with Amazon SQS", execution role permissions) on the mapping's queue only. Checked on the template
as the SAM transform deploys it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from tests.contract.tools import sam_transformed
from tests.template import resources

pytestmark = pytest.mark.contract

QUEUE_RECEIVE: Final = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

# logical id -> (function, queue, BatchSize, MaximumBatchingWindowInSeconds, MaximumConcurrency)
MAPPINGS: Final[dict[str, tuple[str, str, int, int, Any]]] = {
    "ReconcilerFunctionEcrEvents": ("ReconcilerFunction", "ReconcilerEventsQueue", 100, 15, 2),
    "PullStatsFunctionPullEvents": ("PullStatsFunction", "PullEventsQueue", 1000, 30, 2),
    "WarmWorkerFunctionWarmTasks": ("WarmWorkerFunction", "WarmQueue", 10, 1, 5),
    # one shard an invocation; the fan-out's width is a parameter (the ECR rate ceiling: README "Deep resync at scale")
    "ReconcileWorkerFunctionShardTasks": (
        "ReconcileWorkerFunction",
        "ReconcileShardQueue",
        1,
        0,
        {"Ref": "ShardConcurrency"},
    ),
}


def transformed() -> dict[str, Any]:
    resources: dict[str, Any] = sam_transformed()["Resources"]
    return resources


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _roles() -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in transformed().items() if r["Type"] == "AWS::IAM::Role"}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role.get("Policies", []) for s in _as_list(policy["PolicyDocument"]["Statement"])]


def test_no_role_gets_sqs_actions_on_every_queue() -> None:
    roles = _roles()
    assert roles
    for name, role in roles.items():
        # no managed policy made for SQS event sources (AWSLambdaSQSQueueExecutionRole: Resource "*")
        managed = [json.dumps(arn) for arn in role.get("ManagedPolicyArns", [])]
        assert not [arn for arn in managed if "SQS" in arn.upper()], f"{name}: {managed}"
        # and no inline statement with an SQS action on "*"
        for statement in _statements(role):
            actions = {str(a) for a in _as_list(statement["Action"])}
            if any(a.startswith("sqs:") for a in actions):
                assert "*" not in _as_list(statement["Resource"]), f"{name}: {statement}"


def test_every_sqs_mapping_is_declared_with_its_settings() -> None:
    mappings = {
        k: r["Properties"]
        for k, r in transformed().items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and resources().get(_named(r["Properties"]["EventSourceArn"]), {}).get("Type") == "AWS::SQS::Queue"
    }
    assert set(mappings) == set(MAPPINGS)
    for logical_id, (function, queue, batch, window, concurrency) in MAPPINGS.items():
        # declared in the template itself (not made by SAM from an SQS event), with the same settings
        assert resources("AWS::Lambda::EventSourceMapping")[logical_id]["Properties"] == mappings[logical_id]
        assert mappings[logical_id] == {
            "FunctionName": {"Ref": function},
            "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
            "BatchSize": batch,
            "MaximumBatchingWindowInSeconds": window,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": concurrency},
        }


@pytest.mark.parametrize("logical_id", sorted(MAPPINGS))
def test_each_mapped_functions_role_receives_from_its_queue_only(logical_id: str) -> None:
    function, queue, *_ = MAPPINGS[logical_id]
    role = _roles()[f"{function}Role"]
    receiving = [s for s in _statements(role) if {str(a) for a in _as_list(s["Action"])} & QUEUE_RECEIVE]
    assert receiving, f"{function}: no statement lets its mapping receive from {queue}"
    for statement in receiving:
        assert statement["Effect"] == "Allow"
        assert {str(a) for a in _as_list(statement["Action"])} == QUEUE_RECEIVE
        assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": [queue, "Arn"]}]


def _named(value: Any) -> str:
    target = value["Fn::GetAtt"] if isinstance(value, dict) and "Fn::GetAtt" in value else [""]
    return str(target[0])

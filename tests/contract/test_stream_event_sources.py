"""The functions' DynamoDB stream event sources are explicit mappings, and each role reads the table's stream only.

A SAM ``DynamoDB`` event attaches the managed policy ``AWSLambdaDynamoDBExecutionRole`` (``dynamodb:DescribeStream``,
``GetRecords``, ``GetShardIterator``, ``ListStreams`` on ``Resource: "*"``: every stream of the account) to the
function's role. The template declares ``AWS::Lambda::EventSourceMapping`` resources instead, with the logical ids
SAM gave them (``<Function><Event>``: an update keeps each mapping and its position in the stream), and grants the
three stream reads on the table's stream only; ``ListStreams`` has no resource type in the Service Authorization
Reference, so it alone stays on ``"*"``. The OnFailure destination's ``sqs:SendMessage``, which SAM granted for the
event's SQS destination, is granted on that queue. Checked on the template as the SAM transform deploys it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from tests.contract.tools import sam_transformed
from tests.template import resources

pytestmark = pytest.mark.contract

STREAM_READ: Final = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
STREAM_ARN: Final = {"Fn::GetAtt": ["StateTable", "StreamArn"]}
RECONCILE_REQUESTS: Final = '{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": ["REQUEST#reconcile"]}}}}'
WARM_REQUESTS: Final = '{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": ["REQUEST#warm"]}}}}'

# The mappings SAM made from the functions' DynamoDB events before they were declared (`git show c9ba48c:template.yaml`,
# SAM-transformed): logical id -> (function, the mapping's properties).
MAPPINGS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "ReconcilerFunctionDesiredStateChanged": (
        "ReconcilerFunction",
        {
            "FunctionName": {"Ref": "ReconcilerFunction"},
            "EventSourceArn": STREAM_ARN,
            "StartingPosition": "LATEST",
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 2,
            "MaximumRetryAttempts": 10,
            "BisectBatchOnFunctionError": False,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["ReconcilerDlq", "Arn"]}}},
            "FilterCriteria": {
                "Filters": [
                    {"Pattern": '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "DESIRED#"}]}}}}'},
                    {"Pattern": RECONCILE_REQUESTS},
                ]
            },
        },
    ),
    "WarmPlannerFunctionWarmRequested": (
        "WarmPlannerFunction",
        {
            "FunctionName": {"Ref": "WarmPlannerFunction"},
            "EventSourceArn": STREAM_ARN,
            "StartingPosition": "LATEST",
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 1,
            "MaximumRetryAttempts": 5,
            "BisectBatchOnFunctionError": False,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["WarmPlannerDlq", "Arn"]}}},
            "FilterCriteria": {"Filters": [{"Pattern": WARM_REQUESTS}]},
        },
    ),
}


def transformed() -> dict[str, Any]:
    found: dict[str, Any] = sam_transformed()["Resources"]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _actions(statement: dict[str, Any]) -> set[str]:
    return {str(action) for action in _as_list(statement["Action"])}


def _roles() -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in transformed().items() if r["Type"] == "AWS::IAM::Role"}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role.get("Policies", []) for s in _as_list(policy["PolicyDocument"]["Statement"])]


def _stream_mappings() -> dict[str, dict[str, Any]]:
    return {
        k: r["Properties"]
        for k, r in transformed().items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and str(r["Properties"]["EventSourceArn"].get("Fn::GetAtt", ["", ""])[1]) == "StreamArn"
    }


def test_no_function_has_a_sam_dynamodb_event() -> None:
    # the template as written (tests.template.functions() lists the mappings as DynamoDB events, as the local stack)
    declared = resources("AWS::Serverless::Function")
    assert declared
    events = {
        f"{name}.{event}"
        for name, function in declared.items()
        for event, spec in (function["Properties"].get("Events") or {}).items()
        if spec.get("Type") == "DynamoDB"
    }
    assert events == set()


def test_no_role_reads_every_stream() -> None:
    roles = _roles()
    assert roles
    for name, role in roles.items():
        # no managed policy made for DynamoDB event sources (AWSLambdaDynamoDBExecutionRole: Resource "*")
        managed = [json.dumps(arn) for arn in role.get("ManagedPolicyArns", [])]
        assert not [arn for arn in managed if "DYNAMODB" in arn.upper()], f"{name}: {managed}"
        # and "*" for a dynamodb action only in a statement of ListStreams alone (no resource type)
        for statement in _statements(role):
            dynamodb = {a for a in _actions(statement) if a.startswith("dynamodb:")}
            if dynamodb and "*" in _as_list(statement["Resource"]):
                assert _actions(statement) == {"dynamodb:ListStreams"}, f"{name}: {statement}"


def test_every_stream_mapping_is_declared_with_the_sam_events_settings() -> None:
    mappings = _stream_mappings()
    assert set(mappings) == set(MAPPINGS)
    declared = resources("AWS::Lambda::EventSourceMapping")
    for logical_id, (_, expected) in MAPPINGS.items():
        # declared in the template itself (not made by SAM from a DynamoDB event), with the SAM event's settings
        assert declared[logical_id]["Properties"] == mappings[logical_id]
        assert mappings[logical_id] == expected


@pytest.mark.parametrize("logical_id", sorted(MAPPINGS))
def test_each_stream_functions_role_reads_the_table_stream_only(logical_id: str) -> None:
    function, expected = MAPPINGS[logical_id]
    statements = [s for s in _statements(_roles()[f"{function}Role"]) if s["Effect"] == "Allow"]
    reading = [s for s in statements if _actions(s) & STREAM_READ]
    assert reading, f"{function}: no statement lets its mapping read the stream"
    for statement in reading:
        assert _actions(statement) == STREAM_READ
        assert _as_list(statement["Resource"]) == [STREAM_ARN]
    assert [s for s in statements if "dynamodb:ListStreams" in _actions(s)], f"{function}: no dynamodb:ListStreams"
    # the OnFailure destination: Lambda sends the failed batch's description there as the function's role
    destination = expected["DestinationConfig"]["OnFailure"]["Destination"]
    assert [s for s in statements if "sqs:SendMessage" in _actions(s) and destination in _as_list(s["Resource"])], (
        f"{function}: no sqs:SendMessage on {destination}"
    )

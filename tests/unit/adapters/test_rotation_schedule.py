"""The rotation-schedule adapter's calls, checked against botocore's model (Stubber), and its failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ecrcache.adapters.rotation_schedule import SecretsManagerRotationSchedule
from ecrcache.errors import RetryableError, TerminalError

pytestmark = pytest.mark.unit

FN = "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"
NAME = "ecr-pullthroughcache/hub"


@pytest.fixture
def stubbed() -> Iterator[tuple[SecretsManagerRotationSchedule, Stubber]]:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    with Stubber(client) as stub:
        yield SecretsManagerRotationSchedule(client), stub
        stub.assert_no_pending_responses()


def described(**extra: Any) -> dict[str, Any]:
    return {"ARN": ARN, "Name": NAME, "VersionIdsToStages": {"a" * 32: ["AWSCURRENT"]}, **extra}


@pytest.mark.parametrize(
    ("answer", "schedule", "enabled"),
    [
        ({}, None, False),
        ({"RotationEnabled": True, "RotationRules": {"ScheduleExpression": "rate(30 days)"}}, "rate(30 days)", True),
        ({"RotationEnabled": True, "RotationRules": {"AutomaticallyAfterDays": 1}}, "rate(1 day)", True),
        (
            {"RotationEnabled": True, "RotationRules": {"ScheduleExpression": "cron(0 4 ? * MON *)"}},
            "cron(0 4 ? * MON *)",
            True,
        ),
    ],
)
def test_observe_reads_the_schedule_as_a_credential_writes_it(
    stubbed: tuple[SecretsManagerRotationSchedule, Stubber], answer: dict[str, Any], schedule: str | None, enabled: bool
) -> None:
    adapter, stub = stubbed
    stub.add_response("describe_secret", described(**answer), {"SecretId": NAME})
    seen = adapter.observe(NAME)
    assert seen is not None
    assert (seen.schedule, seen.enabled, seen.in_progress) == (schedule, enabled, False)


def test_observe_sees_a_rotation_in_progress(stubbed: tuple[SecretsManagerRotationSchedule, Stubber]) -> None:
    adapter, stub = stubbed
    stages = {"a" * 32: ["AWSCURRENT"], "b" * 32: ["AWSPENDING"]}
    stub.add_response("describe_secret", described(VersionIdsToStages=stages), {"SecretId": NAME})
    seen = adapter.observe(NAME)
    assert seen is not None and seen.in_progress


def test_observe_of_a_missing_secret_is_none(stubbed: tuple[SecretsManagerRotationSchedule, Stubber]) -> None:
    adapter, stub = stubbed
    stub.add_client_error("describe_secret", "ResourceNotFoundException", http_status_code=400)
    assert adapter.observe(NAME) is None


def test_set_schedule_is_rotate_secret_without_rotating_now(
    stubbed: tuple[SecretsManagerRotationSchedule, Stubber],
) -> None:
    adapter, stub = stubbed
    expected = {
        "SecretId": ARN,
        "RotationLambdaARN": FN,
        "RotationRules": {"ScheduleExpression": "rate(30 days)"},
        "RotateImmediately": False,
    }
    stub.add_response("rotate_secret", {"ARN": ARN, "Name": NAME}, expected)
    adapter.set_schedule(ARN, schedule="rate(30 days)", function_arn=FN)


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("InternalServiceError", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
def test_failures_name_the_call_and_the_code(
    stubbed: tuple[SecretsManagerRotationSchedule, Stubber], code: str, status: int, error: type[Exception]
) -> None:
    adapter, stub = stubbed
    stub.add_client_error("cancel_rotate_secret", code, http_status_code=status)
    with pytest.raises(error, match=f"CancelRotateSecret failed with {code}"):
        adapter.cancel(ARN)


def test_remove_label_takes_a_label_off_a_version(stubbed: tuple[SecretsManagerRotationSchedule, Stubber]) -> None:
    adapter, stub = stubbed
    version = "b" * 36
    stub.add_response(
        "update_secret_version_stage",
        {"ARN": ARN, "Name": NAME},
        {"SecretId": ARN, "VersionStage": "AWSPENDING", "RemoveFromVersionId": version},
    )
    adapter.remove_label(ARN, version=version, label="AWSPENDING")


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [("ThrottlingException", 400, RetryableError), ("AccessDeniedException", 400, TerminalError)],
)
def test_remove_label_failures_name_the_call_the_label_and_the_code(
    stubbed: tuple[SecretsManagerRotationSchedule, Stubber], code: str, status: int, error: type[Exception]
) -> None:
    adapter, stub = stubbed
    stub.add_client_error("update_secret_version_stage", code, http_status_code=status)
    with pytest.raises(error, match=f"UpdateSecretVersionStage \\(remove AWSPENDING\\) failed with {code}"):
        adapter.remove_label(ARN, version="b" * 36, label="AWSPENDING")

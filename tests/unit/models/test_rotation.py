"""The rotation's pure parts: Secrets Manager's invocation, the rotation template's guard, the secret's versions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ecrcache.models.rotation import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    GuardRefused,
    RotationEvent,
    RotationStep,
    SecretVersions,
    guard,
)
from tests.conftest import load_event, sample_events

pytestmark = pytest.mark.unit

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"
OLD, NEW = "a" * 36, "b" * 36


def versions(
    stages: dict[str, set[str]], *, enabled: bool = True, name: str = "ecr-pullthroughcache/hub"
) -> SecretVersions:
    return SecretVersions(ARN, name, enabled, {v: frozenset(labels) for v, labels in stages.items()})


@pytest.mark.parametrize("sample", sample_events("rotator"))
def test_every_sample_event_is_a_rotation_step(sample: str) -> None:
    event = RotationEvent.model_validate(load_event(sample))
    assert event.secret_id.endswith("ecr-pullthroughcache/docker-hub-AbCdEf")
    assert event.rotation_token is not None
    assert event.rotation_token not in repr(event)


@pytest.mark.parametrize(
    ("written", "step"),
    [
        ("createSecret", RotationStep.CREATE),
        ("create_secret", RotationStep.CREATE),
        ("finish_secret", RotationStep.FINISH),
    ],
)
def test_the_step_is_read_as_aws_sends_it_and_as_the_user_guide_writes_it(written: str, step: RotationStep) -> None:
    event = RotationEvent.model_validate({"Step": written, "SecretId": ARN, "ClientRequestToken": NEW})
    assert (event.step, event.rotation_token) == (step, None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Step": "dropSecret"}, "Step"),
        ({"ClientRequestToken": "short"}, "ClientRequestToken"),
        ({"ClientRequestToken": "x" * 65}, "ClientRequestToken"),
        ({"SecretId": ""}, "SecretId"),
        ({"RotationToken": "not a token!" * 4}, "RotationToken"),
    ],
)
def test_an_event_that_is_no_rotation_step_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    event = {"Step": "testSecret", "SecretId": ARN, "ClientRequestToken": NEW} | change
    with pytest.raises(ValidationError) as refused:
        RotationEvent.model_validate(event)
    assert {str(e["loc"][0]) for e in refused.value.errors()} == {field}


def test_the_guard_runs_a_pending_version_and_skips_a_current_one() -> None:
    found = versions({OLD: {AWSCURRENT}, NEW: {AWSPENDING}})
    assert guard(found, NEW) is False
    assert guard(found, OLD) is True
    assert guard(versions({NEW: {AWSCURRENT, AWSPENDING}}), NEW) is True


@pytest.mark.parametrize(
    ("stages", "enabled", "message"),
    [
        ({OLD: {AWSCURRENT}, NEW: {AWSPENDING}}, False, "is not enabled for rotation"),
        ({OLD: {AWSCURRENT}}, True, "has no stage for rotation"),
        ({OLD: {AWSCURRENT}, NEW: {AWSPREVIOUS}}, True, "is not AWSPENDING"),
        ({OLD: {AWSCURRENT}, NEW: set()}, True, "is not AWSPENDING"),
    ],
)
def test_the_guard_refuses_as_the_rotation_template_does(
    stages: dict[str, set[str]], enabled: bool, message: str
) -> None:
    with pytest.raises(GuardRefused, match=message):
        guard(versions(stages, enabled=enabled), NEW)


def test_a_secrets_versions_name_labels_regions_and_credential() -> None:
    found = SecretVersions(
        ARN, "ecr-pullthroughcache/hub", True, {OLD: frozenset({AWSCURRENT})}, ("eu-west-1", "us-east-1")
    )
    assert (found.labelled(AWSCURRENT), found.labelled(AWSPENDING)) == (OLD, None)
    assert found.regions == ("us-east-1", "eu-west-1")
    assert found.credential == "hub"
    assert versions({}, name="database/password").credential is None
    assert versions({}, name="ecr-pullthroughcache/").credential is None


def test_a_secrets_replicas_are_in_sync_only_when_secrets_manager_says_so() -> None:
    found = SecretVersions(
        ARN,
        "ecr-pullthroughcache/hub",
        True,
        {},
        ("eu-west-1", "eu-central-1", "ap-south-1"),
        {"eu-west-1": "InSync", "eu-central-1": "InProgress", "ap-south-1": ""},
    )
    assert found.out_of_sync(found.region) is None
    assert found.out_of_sync("eu-west-1") is None
    assert found.out_of_sync("eu-central-1") == "replica InProgress"
    assert found.out_of_sync("ap-south-1") == "replica status unknown"
    assert found.arn_in("eu-west-1") == ARN.replace(f":{found.region}:", ":eu-west-1:")
    assert found.arn_in(found.region) == ARN

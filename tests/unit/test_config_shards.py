"""The deep resync's fan-out settings (README "Deep resync at scale"): off without a shard queue, the shard size and
the deadline within their bounds, each refusal naming its field and rule; the worker's own settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecrcache.config import (
    SHARD_READ_SECONDS,
    ReconcilerSettings,
    ReconcileWorkerSettings,
    ShardFanoutSettings,
    shard_ecr_reads,
)
from ecrcache.models.shards import DEFAULT_SHARD_DEADLINE_SECONDS, MAX_SHARD_SIZE

pytestmark = pytest.mark.unit

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/ecrcache-ReconcileShardQueue-X"


def test_no_shard_queue_is_no_fan_out_and_the_defaults_are_the_models() -> None:
    settings = ShardFanoutSettings.model_validate({})
    assert not settings.fan_out
    assert (settings.shard_size, settings.shard_deadline_seconds) == (MAX_SHARD_SIZE, DEFAULT_SHARD_DEADLINE_SECONDS)


def test_a_shard_queue_turns_it_on_with_the_environments_strings() -> None:
    # GIVEN the variables as Lambda hands them (strings)
    settings = ShardFanoutSettings.model_validate(
        {"shard_queue_url": URL, "shard_size": "250", "shard_deadline_seconds": "10800"}
    )
    assert settings.fan_out
    assert (settings.shard_size, settings.shard_deadline_seconds) == (250, 10800)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("shard_queue_url", "ecrcache-shards", "SQS queue URL"),
        ("shard_size", "0", "greater than or equal to 1"),
        ("shard_size", "501", "less than or equal to 500"),
        ("shard_size", "many", "valid integer"),
        ("shard_deadline_seconds", "600", "greater than or equal to 900"),
        ("shard_deadline_seconds", "86401", "less than or equal to 86400"),
    ],
)
def test_a_bad_value_names_its_field_and_rule(field: str, value: str, rule: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ShardFanoutSettings.model_validate({"shard_queue_url": URL, field: value})
    assert field in str(raised.value)
    assert rule in str(raised.value)


def test_the_reconciler_reads_the_shard_settings_and_the_worker_only_what_planning_needs() -> None:
    assert {"shard_queue_url", "shard_size", "shard_deadline_seconds"} <= set(ReconcilerSettings.model_fields)
    assert set(ReconcileWorkerSettings.model_fields) == {
        "table_name",
        "warmer_role_arn",
        "ecr_role_path",
        "ecr_role_account",
        "ecr_request_rate",
    }


def _reconciler(**values: str) -> ReconcilerSettings:
    return ReconcilerSettings.model_validate({"table_name": "ecrcache-state", **values})


def test_a_shard_needs_1505_reads_and_is_made_smaller_when_they_would_not_fit_its_time() -> None:
    # GIVEN the reads of a full shard: 5 DescribeRepositories by name and 3 reads a repository
    assert (shard_ecr_reads(500), shard_ecr_reads(398), shard_ecr_reads(1)) == (1505, 1198, 4)
    # THEN at the template's rate (20) or without a ceiling a shard is SHARD_SIZE
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="20").shard_size_in_time == 500
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="0").shard_size_in_time == 500
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="20", shard_size="100").shard_size_in_time == 100
    # AND at a slower rate it is as large as its reads fit SHARD_READ_SECONDS
    assert SHARD_READ_SECONDS == 150
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="8").shard_size_in_time == 398
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="10.04").shard_size_in_time == 500
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="10").shard_size_in_time == 498


def test_a_rate_too_slow_for_even_one_repository_is_refused_naming_the_fields() -> None:
    with pytest.raises(ValidationError) as raised:
        _reconciler(shard_queue_url=URL, ecr_request_rate="0.02")
    message = str(raised.value)
    assert "ECR_REQUEST_RATE" in message and "SHARD_SIZE" in message
    assert "set at least 0.03, or 0 (no ceiling)" in message
    # without fan-out it is only the reconciler's own ceiling
    assert not _reconciler(ecr_request_rate="0.02").fan_out
    assert _reconciler(shard_queue_url=URL, ecr_request_rate="0.03").shard_size_in_time == 1

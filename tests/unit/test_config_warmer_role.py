"""``WARMER_ROLE_ARN``: empty (off) or a role ARN ECR takes as a pull-time update exclusion's ``principalArn``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecrcache.config import ApiSettings, PullStatsSettings, ReconcilerSettings, WarmerRoleSettings

pytestmark = pytest.mark.unit

SETTINGS: list[type[WarmerRoleSettings]] = [ReconcilerSettings, ApiSettings, PullStatsSettings]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize(
    "arn",
    [
        "",
        "arn:aws:iam::123456789012:role/ecrcache-WarmWorkerFunctionRole-AB12",
        "arn:aws:iam::123456789012:role/ecrcache/warm/worker@team=a,b.c+d_e-f",
        "arn:aws-us-gov:iam::123456789012:role/warmer",
        "arn:aws-cn:iam::123456789012:role/warmer",
    ],
)
def test_empty_or_a_role_arn_is_accepted(settings: type[ReconcilerSettings], arn: str) -> None:
    assert settings.model_validate({"table_name": "state", "warmer_role_arn": arn}).warmer_role_arn == arn


def test_unset_means_off() -> None:
    assert ReconcilerSettings.model_validate({"table_name": "state"}).warmer_role_arn == ""


@pytest.mark.parametrize(
    ("arn", "rule"),
    [
        ("arn:aws:iam::123456789012:user/warmer", "IAM role ARN"),  # the model admits users; the warmer is a role
        ("arn:aws:sts::123456789012:assumed-role/warmer/session", "IAM role ARN"),
        ("arn:aws:iam::12345678901:role/warmer", "IAM role ARN"),
        ("arn:aws:iam::123456789012:role/wärmer", "IAM role ARN"),  # \w is ASCII in ECR's pattern
        ("arn:aws:iam::123456789012:role/" + "r" * 170, "at most 200 characters"),
        ("warmer", "IAM role ARN"),
    ],
)
def test_anything_else_is_refused_naming_the_field_and_the_rule(arn: str, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        ReconcilerSettings.model_validate({"table_name": "state", "warmer_role_arn": arn})
    [error] = info.value.errors()
    assert error["loc"] == ("warmer_role_arn",)
    assert rule in error["msg"]

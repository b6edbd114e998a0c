"""``ECR_REQUEST_RATE``: the reconciler's ceiling on its ECR requests a second per Region (0: none)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecrcache.config import EcrRequestRateSettings, ReconcilerSettings

pytestmark = pytest.mark.unit


def test_unset_means_no_ceiling() -> None:
    assert ReconcilerSettings.model_validate({"table_name": "state"}).ecr_request_rate == 0.0


@pytest.mark.parametrize(("value", "rate"), [("20", 20.0), ("2.5", 2.5), ("0", 0.0), ("10000", 10_000.0)])
def test_a_rate_is_read_from_the_environment_text(value: str, rate: float) -> None:
    settings = ReconcilerSettings.model_validate({"table_name": "state", "ecr_request_rate": value})
    assert settings.ecr_request_rate == rate
    assert isinstance(settings, EcrRequestRateSettings)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("-1", "greater than or equal to 0"),
        ("10001", "less than or equal to 10000"),
        ("fast", "valid number"),
        ("nan", "finite number"),
        ("inf", "finite number"),
    ],
)
def test_a_bad_rate_is_refused_naming_the_setting(value: str, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        ReconcilerSettings.model_validate({"table_name": "state", "ecr_request_rate": value})
    assert "ecr_request_rate" in str(info.value)
    assert rule in str(info.value)

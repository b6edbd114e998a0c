"""The event forwarder settings: all three or none, each checked with an error naming the rule it breaks; the reconcile
worker's role the reconciler ignores."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecrcache.config import EventForwardSettings, ReconcileWorkerRoleSettings

ON = {
    "event_forward_rule_name": "ecrcache-fwd-4f9d2a7e-0000-4000-8000-0123456789ab",
    "event_forward_role_arn": "arn:aws:iam::123456789012:role/stack-EventForwardRole-X",
    "event_forward_ignored_roles": (
        "arn:aws:iam::123456789012:role/stack-ReconcilerFunctionRole-Y,"
        "arn:aws:iam::123456789012:role/stack-ReconcileWorkerFunctionRole-Z"
    ),
}


def test_all_three_set_is_on_and_none_is_off() -> None:
    assert EventForwardSettings.model_validate(ON).forwarding_on
    assert not EventForwardSettings.model_validate({}).forwarding_on


@pytest.mark.parametrize("missing", sorted(ON))
def test_only_some_set_is_an_error_naming_all_three(missing: str) -> None:
    with pytest.raises(ValidationError, match="set all three or none"):
        EventForwardSettings.model_validate({k: v for k, v in ON.items() if k != missing})


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("event_forward_rule_name", "has space", "EventBridge rule name"),
        ("event_forward_rule_name", "x" * 65, "at most 64"),
        ("event_forward_role_arn", "arn:aws:iam::123456789012:user/bob", "IAM role ARN"),
        ("event_forward_ignored_roles", "arn:aws:sts::123456789012:assumed-role/r/", "IAM role ARNs separated"),
        ("event_forward_ignored_roles", "arn:aws:iam::123456789012:role/r,", "IAM role ARNs separated"),
    ],
)
def test_a_malformed_value_names_its_field_and_rule(field: str, value: str, rule: str) -> None:
    with pytest.raises(ValidationError) as raised:
        EventForwardSettings.model_validate({**ON, field: value})
    assert field in str(raised.value) and rule in str(raised.value)


def test_the_ignored_roles_are_read_as_role_arns() -> None:
    assert EventForwardSettings.model_validate(ON).ignored_roles == (
        "arn:aws:iam::123456789012:role/stack-ReconcilerFunctionRole-Y",
        "arn:aws:iam::123456789012:role/stack-ReconcileWorkerFunctionRole-Z",
    )
    assert EventForwardSettings.model_validate({}).ignored_roles == ()


def test_the_reconcile_worker_role_is_an_iam_role_arn() -> None:
    # The reconciler ignores that role's CloudTrail events (RECONCILE_WORKER_ROLE_ARN: !GetAtt ...Role.Arn).
    worker = "arn:aws:iam::123456789012:role/stack-ReconcileWorkerFunctionRole-Z"
    assert ReconcileWorkerRoleSettings.model_validate({"reconcile_worker_role_arn": worker}).reconcile_worker_role_arn
    with pytest.raises(ValidationError) as raised:
        ReconcileWorkerRoleSettings.model_validate({"reconcile_worker_role_arn": "worker"})
    assert "reconcile_worker_role_arn" in str(raised.value) and "IAM role ARN" in str(raised.value)

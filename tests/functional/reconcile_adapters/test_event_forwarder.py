"""The EventBridge adapter of the event forwarders, on the embedded AWS: reads, the create/update/delete calls in
their order, and every failure path (throttling, 5xx, access denied, a target not taken) as a result or an error
that says which call failed; never a lost failure."""

from __future__ import annotations

import json
from typing import Any, cast

import boto3
import pytest
from moto.events.models import EventPattern

from ecrcache.adapters.event_forwarder import Boto3EventForwarder
from ecrcache.engine.forwarders import TARGET_ID, Forwarding, plan_forwarder
from ecrcache.engine.plan import ActionKind, PlannedAction
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.forwarder import ObservedForwarder
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile.support import FAULTS, aws_error, failing, recording

pytestmark = pytest.mark.functional

OTHER = "eu-west-1"
SETTINGS = Forwarding(
    rule_name="ecrcache-fwd-test",
    role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/forward",
    home_region=REGION,
    ignored_roles=(f"arn:aws:iam::{ACCOUNT_ID}:role/reconciler", f"arn:aws:iam::{ACCOUNT_ID}:role/worker"),
)


@pytest.fixture
def forwarder(aws: None) -> Boto3EventForwarder:
    return Boto3EventForwarder(OTHER, boto3.client("events", region_name=OTHER))


def _action(forwarder: Boto3EventForwarder, *, wanted: bool = True) -> PlannedAction:
    action = plan_forwarder(OTHER, SETTINGS, wanted=wanted, found=forwarder.observe_forwarder(SETTINGS.rule_name))
    assert action is not None
    return action


def test_create_then_read_back_is_what_was_planned(forwarder: Boto3EventForwarder) -> None:
    assert forwarder.observe_forwarder(SETTINGS.rule_name) is None
    assert forwarder.apply(_action(forwarder)).ok
    found = forwarder.observe_forwarder(SETTINGS.rule_name)
    assert found is not None and found.state == "ENABLED"
    assert json.loads(found.event_pattern or "") == json.loads(SETTINGS.rule_request(OTHER)["EventPattern"])
    assert [(t.id, t.role_arn) for t in found.targets] == [(TARGET_ID, SETTINGS.role_arn)]
    tags = forwarder.client.list_tags_for_resource(
        ResourceARN=forwarder.client.describe_rule(Name=SETTINGS.rule_name)["Arn"]
    )
    assert tags["Tags"] == []  # PutRule assigns tags on create only (API reference): none that could drift
    assert plan_forwarder(OTHER, SETTINGS, wanted=True, found=found) is None


def test_delete_removes_the_targets_first_then_the_rule(forwarder: Boto3EventForwarder) -> None:
    forwarder.apply(_action(forwarder))
    with (
        recording(forwarder.client, "remove_targets") as removed,
        recording(forwarder.client, "delete_rule") as deleted,
    ):
        assert forwarder.apply(_action(forwarder, wanted=False)).ok
    assert removed == [{"Rule": SETTINGS.rule_name, "Ids": [TARGET_ID]}]
    assert deleted == [{"Name": SETTINGS.rule_name}]
    assert forwarder.observe_forwarder(SETTINGS.rule_name) is None


def test_deleting_a_rule_someone_already_deleted_is_done(forwarder: Boto3EventForwarder) -> None:
    forwarder.apply(_action(forwarder))
    action = _action(forwarder, wanted=False)
    forwarder.client.remove_targets(Rule=SETTINGS.rule_name, Ids=[TARGET_ID])
    forwarder.client.delete_rule(Name=SETTINGS.rule_name)
    assert forwarder.apply(action).ok


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failing_read_raises_an_error_naming_the_call_and_whether_it_may_clear(
    forwarder: Boto3EventForwarder, fault: str
) -> None:
    code, _, retryable = FAULTS[fault]
    with failing(forwarder.client, "describe_rule", fault), pytest.raises((RetryableError, TerminalError)) as raised:
        forwarder.observe_forwarder(SETTINGS.rule_name)
    assert isinstance(raised.value, RetryableError) is retryable
    assert "DescribeRule" in raised.value.message and raised.value.reason == code


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("method", ["put_rule", "put_targets"])
def test_a_failing_write_is_a_failed_result_and_stops_the_calls_after_it(
    forwarder: Boto3EventForwarder, fault: str, method: str
) -> None:
    code, _, retryable = FAULTS[fault]
    with failing(forwarder.client, method, fault), recording(forwarder.client, "remove_targets") as later:
        result = forwarder.apply(_action(forwarder))
    assert (result.ok, result.code, result.retryable) == (False, code, retryable)
    assert later == []


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failing_target_removal_keeps_the_rule(forwarder: Boto3EventForwarder, fault: str) -> None:
    forwarder.apply(_action(forwarder))
    action = _action(forwarder, wanted=False)
    with failing(forwarder.client, "remove_targets", fault):
        result = forwarder.apply(action)
    assert not result.ok and result.code == FAULTS[fault][0]
    assert forwarder.observe_forwarder(SETTINGS.rule_name) is not None  # DeleteRule never ran


def test_a_target_puttargets_did_not_take_is_a_failure(forwarder: Boto3EventForwarder) -> None:
    original = forwarder.client.put_targets

    def refuse(**kwargs: Any) -> Any:
        original(**kwargs)
        return {"FailedEntryCount": 1, "FailedEntries": [{"TargetId": TARGET_ID, "ErrorCode": "ThrottlingException"}]}

    forwarder.client.put_targets = refuse  # type: ignore[method-assign]
    try:
        result = forwarder.apply(_action(forwarder))
    finally:
        del forwarder.client.put_targets
    assert (result.ok, result.code, result.retryable) == (False, "ThrottlingException", True)


def test_an_action_of_another_kind_is_refused(forwarder: Boto3EventForwarder) -> None:
    action = PlannedAction(kind=ActionKind.CREATE_RULE, region=OTHER, target="x", rule_prefix="x", reason="r")
    result = forwarder.apply(action)
    assert (result.ok, result.code) == (False, "UnsupportedAction")


def test_observed_targets_come_sorted(forwarder: Boto3EventForwarder) -> None:
    forwarder.apply(_action(forwarder))
    forwarder.client.put_targets(
        Rule=SETTINGS.rule_name, Targets=[{"Id": "a-extra", "Arn": f"arn:aws:sqs:{OTHER}:{ACCOUNT_ID}:q"}]
    )
    found = forwarder.observe_forwarder(SETTINGS.rule_name)
    assert isinstance(found, ObservedForwarder)
    assert [t.id for t in found.targets] == ["a-extra", TARGET_ID]
    action = plan_forwarder(OTHER, SETTINGS, wanted=True, found=found)
    assert action is not None and action.request["remove"] == {"Rule": SETTINGS.rule_name, "Ids": ["a-extra"]}


def test_the_sweeps_probe_finds_the_rule_by_its_name_only(forwarder: Boto3EventForwarder) -> None:
    assert forwarder.forwarder_exists(SETTINGS.rule_name) is False
    forwarder.apply(_action(forwarder))
    assert forwarder.forwarder_exists(SETTINGS.rule_name) is True


@pytest.mark.parametrize("code", ["UnrecognizedClientException", "AccessDeniedException"])
def test_a_region_not_enabled_in_the_account_holds_no_rule(
    forwarder: Boto3EventForwarder, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    # GIVEN an opt-in Region the account has not enabled: its endpoint does not know the account's credentials
    def not_enabled(**_: Any) -> Any:
        raise aws_error(
            code, "DescribeRule", status=400, message="The security token included in the request is invalid"
        )

    monkeypatch.setattr(forwarder.client, "describe_rule", not_enabled)
    # THEN the sweep reads it as holding no forwarder
    assert forwarder.forwarder_exists(SETTINGS.rule_name) is False


@pytest.mark.parametrize("fault", ["throttling", "server-error"])
def test_a_probe_that_fails_otherwise_raises(forwarder: Boto3EventForwarder, fault: str) -> None:
    with failing(forwarder.client, "describe_rule", fault), pytest.raises(RetryableError) as raised:
        forwarder.forwarder_exists(SETTINGS.rule_name)
    assert "DescribeRule" in raised.value.message


def test_an_event_forwarded_into_a_region_is_never_matched_by_its_forwarder() -> None:
    # GIVEN the forwarder of eu-west-1 (moto's pattern matcher stands in for EventBridge's)
    pattern = EventPattern.load(SETTINGS.rule_request(OTHER)["EventPattern"])
    event: dict[str, Any] = {
        "source": "aws.ecr",
        "detail-type": "ECR Pull Through Cache Action",
        "detail": {"sync-status": "SUCCESS"},
    }
    # THEN it matches its own Region's events, never one that another Region's forwarder put on its bus
    assert pattern.matches_event(cast("Any", {**event, "region": OTHER}))
    assert not pattern.matches_event(cast("Any", {**event, "region": "us-west-2"}))

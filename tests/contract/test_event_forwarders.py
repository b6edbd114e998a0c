"""The event forwarders match exactly what the stack Region's rules feed the reconciler, and their role is narrow.

A forwarder in another Region (``ecrcache.engine.forwarders``) sends that Region's ECR events to the stack
Region's default bus, where ``ReconcilerEcrDriftRule`` and ``ReconcilerPullThroughCacheActionRule`` pick them
up. Its pattern is defined in code; these tests keep it equal to the union of those two rules' patterns in
``template.yaml`` (forwarding more would cost for events nobody reads; less would leave drift to the resyncs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecrcache.engine.forwarders import CACHE_ACTION_PATTERN, canonical, drift_pattern, forward_pattern
from tests.template import functions, resources

pytestmark = pytest.mark.contract

CALLER = "arn:aws:sts::123456789012:assumed-role/stack-ReconcilerFunctionRole-X/"


def _pattern(logical_id: str) -> dict[str, Any]:
    pattern: dict[str, Any] = resources("AWS::Events::Rule")[logical_id]["Properties"]["EventPattern"]
    return pattern


def _substituted(pattern: dict[str, Any]) -> Any:
    """The drift rule's pattern with its one ``!Sub`` (the reconciler role's session prefix) as ``CALLER``."""
    text = json.dumps(pattern)
    sub = {
        "Fn::Sub": "arn:${AWS::Partition}:sts::${AWS::AccountId}:assumed-role/${ReconcilerFunctionRole}/",
    }
    assert json.dumps(sub) in text, "the drift rule no longer excludes the reconciler's role sessions"
    return json.loads(text.replace(json.dumps(sub), json.dumps(CALLER)))


def test_the_forwarder_matches_the_drift_rule_and_the_cache_action_rule_and_nothing_else() -> None:
    # GIVEN the home Region's two rules that feed the reconciler's event queue
    drift = _substituted(_pattern("ReconcilerEcrDriftRule"))
    cache = _pattern("ReconcilerPullThroughCacheActionRule")
    # THEN the code's patterns are theirs, and the forwarder's is exactly their union, for its own Region's events
    # only (the Region guard: an event forwarded into its Region keeps its origin region and is never sent on)
    assert canonical(drift_pattern(CALLER)) == canonical(drift)
    assert canonical(dict(CACHE_ACTION_PATTERN)) == canonical(cache)
    assert canonical(forward_pattern(CALLER, "eu-west-1")) == canonical(
        {"region": ["eu-west-1"], "$or": [drift, cache]}
    )


def test_the_forwarder_ignores_the_same_caller_the_reconciler_is_told_to_ignore() -> None:
    # The setting passed to the reconciler is the very !Sub the drift rule's pattern uses.
    env = functions()["ReconcilerFunction"]["Environment"]["Variables"]
    assert env["EVENT_FORWARD_IGNORED_CALLER"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sts::${AWS::AccountId}:assumed-role/${ReconcilerFunctionRole}/"
    }
    assert env["EVENT_FORWARD_ROLE_ARN"] == {"Fn::GetAtt": ["EventForwardRole", "Arn"]}
    assert (
        functions()["ApiFunction"]["Environment"]["Variables"]["EVENT_FORWARD_ROLE_ARN"]
        == env["EVENT_FORWARD_ROLE_ARN"]
    )


def test_the_forward_role_is_for_eventbridge_and_the_stacks_forwarders_only_and_puts_on_the_home_bus_only() -> None:
    # IAM User Guide, "The confused deputy problem": aws:SourceAccount / aws:SourceArn on a service principal.
    role = resources("AWS::IAM::Role")["EventForwardRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source = trust["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source[0] == "arn:${AWS::Partition}:events:*:${AWS::AccountId}:rule/ecrcache-fwd-${StackUuid}"
    [policy] = role["Policies"]
    [grant] = policy["PolicyDocument"]["Statement"]
    assert grant["Action"] == "events:PutEvents"
    assert grant["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
    }


def test_the_forwarding_rule_name_fits_eventbridges_limit() -> None:
    # EventBridge API reference, "PutRule": Name is 1-64 of [.\-_A-Za-z0-9]; a stack id's UUID is 36 characters.
    assert len("ecrcache-fwd-" + "0" * 36) <= 64

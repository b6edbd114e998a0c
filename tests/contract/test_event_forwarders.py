"""The event forwarders match exactly what the stack Region's rules feed the reconciler, and their role is narrow.

A forwarder in another Region (``ecrcache.engine.forwarders``) sends that Region's ECR events to the stack
Region's default bus, where ``ReconcilerEcrDriftRule`` and ``ReconcilerPullThroughCacheActionRule`` pick them
up. Its pattern is defined in code; these tests keep it equal to the union of those two rules' patterns in
``template.yaml`` (forwarding more would cost for events nobody reads; less would leave drift to the resyncs).
"""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.engine.forwarders import CACHE_ACTION_PATTERN, canonical, drift_pattern, forward_pattern
from tests.template import functions, resources

pytestmark = pytest.mark.contract

ROLES = {
    "ReconcilerFunctionRole": "arn:aws:iam::123456789012:role/stack-ReconcilerFunctionRole-X",
    "ReconcileWorkerFunctionRole": "arn:aws:iam::123456789012:role/stack-ReconcileWorkerFunctionRole-Y",
}
"""The roles writing ECR for the stack, as ``!GetAtt <Role>.Arn`` would return them."""


def _pattern(logical_id: str) -> dict[str, Any]:
    pattern: dict[str, Any] = resources("AWS::Events::Rule")[logical_id]["Properties"]["EventPattern"]
    return pattern


def _substituted(pattern: Any) -> Any:
    """The drift rule's pattern with its ``!GetAtt <Role>.Arn`` (the roles whose writes are left out) as ``ROLES``."""
    if isinstance(pattern, list):
        return [_substituted(item) for item in pattern]
    if not isinstance(pattern, dict):
        return pattern
    if set(pattern) == {"Fn::GetAtt"}:
        name, attribute = pattern["Fn::GetAtt"]
        assert attribute == "Arn" and name in ROLES, pattern
        return ROLES[name]
    assert not {"Fn::Sub", "Ref"} & set(pattern), f"a reference the forwarder's pattern cannot mirror: {pattern}"
    return {key: _substituted(value) for key, value in pattern.items()}


def test_the_forwarder_matches_the_drift_rule_and_the_cache_action_rule_and_nothing_else() -> None:
    # GIVEN the home Region's two rules that feed the reconciler's event queue
    drift = _substituted(_pattern("ReconcilerEcrDriftRule"))
    cache = _pattern("ReconcilerPullThroughCacheActionRule")
    roles = list(ROLES.values())
    # THEN the code's patterns are theirs, and the forwarder's is exactly their union, for its own Region's events
    # only (the Region guard: an event forwarded into its Region keeps its origin region and is never sent on)
    assert canonical(drift_pattern(roles)) == canonical(drift)
    assert canonical(dict(CACHE_ACTION_PATTERN)) == canonical(cache)
    assert canonical(forward_pattern(roles, "eu-west-1")) == canonical({"region": ["eu-west-1"], "$or": [drift, cache]})


def test_the_forwarder_ignores_the_same_roles_the_drift_rule_leaves_out() -> None:
    # The setting passed to the reconciler (and to the API, which plans the forwarders too) joins the very roles the
    # drift rule's pattern names: the reconciler's and the reconcile worker's.
    reconciler = functions()["ReconcilerFunction"]["Environment"]["Variables"]
    joined = {
        "Fn::Join": [
            ",",
            [{"Fn::GetAtt": ["ReconcilerFunctionRole", "Arn"]}, {"Fn::GetAtt": ["ReconcileWorkerFunctionRole", "Arn"]}],
        ]
    }
    assert reconciler["EVENT_FORWARD_IGNORED_ROLES"] == joined
    assert reconciler["EVENT_FORWARD_ROLE_ARN"] == {"Fn::GetAtt": ["EventForwardRole", "Arn"]}
    api = functions()["ApiFunction"]["Environment"]["Variables"]
    assert api["EVENT_FORWARD_ROLE_ARN"] == reconciler["EVENT_FORWARD_ROLE_ARN"]
    assert api["EVENT_FORWARD_IGNORED_ROLES"] == joined


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

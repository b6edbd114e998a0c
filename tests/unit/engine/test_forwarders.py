"""The event forwarders' engine: which Regions need one, the pattern, and the one action that converges each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ecrcache.engine.forwarders import (
    TARGET_ID,
    Forwarding,
    canonical,
    forward_pattern,
    forwarder_actions,
    forwarder_regions,
    forwarder_status,
    plan_forwarder,
)
from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.models.forwarder import ForwarderTarget, ObservedForwarder

HOME = "us-east-1"
OTHER = "eu-west-1"
SETTINGS = Forwarding(
    rule_name="ecrcache-fwd-1",
    role_arn="arn:aws-us-gov:iam::123456789012:role/path/forward",
    home_region=HOME,
    ignored_roles=("arn:aws-us-gov:iam::123456789012:role/reconciler", "arn:aws-us-gov:iam::123456789012:role/worker"),
)
BUS = "arn:aws-us-gov:events:us-east-1:123456789012:event-bus/default"


def _as_made(**changes: object) -> ObservedForwarder:
    """The forwarder as a create leaves it (its pattern re-serialised with other key order), then ``changes``."""
    request = SETTINGS.rule_request(OTHER)
    pattern = json.dumps(json.loads(request["EventPattern"]), sort_keys=False, indent=1)
    base = ObservedForwarder(
        name=SETTINGS.rule_name,
        state="ENABLED",
        description=request["Description"],
        event_pattern=pattern,
        targets=(ForwarderTarget(id=TARGET_ID, arn=BUS, role_arn=SETTINGS.role_arn),),
    )
    return base.model_copy(update=changes)


def test_every_region_a_rule_names_but_the_stacks_gets_a_forwarder() -> None:
    assert forwarder_regions([HOME, OTHER, "ap-south-1", OTHER], HOME) == {OTHER, "ap-south-1"}
    assert forwarder_regions([HOME], HOME) == frozenset()


def test_a_missing_forwarder_is_created_to_the_home_bus_in_the_roles_partition_and_account() -> None:
    action = plan_forwarder(OTHER, SETTINGS, wanted=True, found=None)
    assert action is not None and action.kind is ActionKind.CREATE_FORWARDER
    assert (action.region, action.target, action.rule_prefix, action.kind.scope) == (
        OTHER,
        SETTINGS.rule_name,
        "",
        "forwarder",
    )
    assert action.request["targets"] == {
        "Rule": SETTINGS.rule_name,
        "Targets": [{"Id": TARGET_ID, "Arn": BUS, "RoleArn": SETTINGS.role_arn}],
    }
    rule = action.request["rule"]
    assert isinstance(rule, dict)
    assert rule["State"] == "ENABLED" and HOME in str(rule["Description"])
    assert json.loads(str(rule["EventPattern"])) == forward_pattern(SETTINGS.ignored_roles, OTHER)
    assert "Tags" not in rule  # PutRule assigns tags on create only: none to drift


def test_a_forwarder_as_made_needs_nothing_whatever_order_its_pattern_comes_back_in() -> None:
    assert plan_forwarder(OTHER, SETTINGS, wanted=True, found=_as_made()) is None


def test_each_difference_is_an_update_naming_it() -> None:
    cases = {
        "state DISABLED": _as_made(state="DISABLED"),
        "event pattern": _as_made(event_pattern=json.dumps({"source": ["aws.ecr"]})),
        "description": _as_made(description="mine now"),
        "targets": _as_made(targets=(ForwarderTarget(id=TARGET_ID, arn=BUS),)),  # the role taken off
    }
    for words, found in cases.items():
        action = plan_forwarder(OTHER, SETTINGS, wanted=True, found=found)
        assert action is not None and action.kind is ActionKind.UPDATE_FORWARDER, words
        assert words in action.reason
        assert action.request["remove"] is None


def test_any_key_of_the_target_the_controller_does_not_set_is_a_difference() -> None:
    # GIVEN the home-bus target as EventBridge lists it, with a key added by hand (what is forwarded changes)
    entry = {"Id": TARGET_ID, "Arn": BUS, "RoleArn": SETTINGS.role_arn}
    for extra in ({"InputPath": "$.detail"}, {"Input": "{}"}, {"InputTransformer": {"InputTemplate": '"x"'}}):
        target = ForwarderTarget(id=TARGET_ID, arn=BUS, role_arn=SETTINGS.role_arn, entry={**entry, **extra})
        action = plan_forwarder(OTHER, SETTINGS, wanted=True, found=_as_made(targets=(target,)))
        # THEN it is an update putting back exactly Id, Arn and RoleArn
        assert action is not None and action.kind is ActionKind.UPDATE_FORWARDER, extra
        assert "targets" in action.reason
        request: Any = action.request
        assert request["targets"]["Targets"] == [entry]
    # AND the entry exactly as made is no difference
    exact = ForwarderTarget(id=TARGET_ID, arn=BUS, role_arn=SETTINGS.role_arn, entry=entry)
    assert plan_forwarder(OTHER, SETTINGS, wanted=True, found=_as_made(targets=(exact,))) is None


def test_an_unreadable_pattern_is_a_difference_not_an_error() -> None:
    action = plan_forwarder(OTHER, SETTINGS, wanted=True, found=_as_made(event_pattern="{not json"))
    assert action is not None and "event pattern" in action.reason


def test_a_stray_target_is_removed_by_the_update() -> None:
    extra = ForwarderTarget(id="mine", arn="arn:aws:sqs:eu-west-1:123456789012:q")
    found = _as_made(targets=(extra, *_as_made().targets))
    action = plan_forwarder(OTHER, SETTINGS, wanted=True, found=found)
    assert action is not None and action.request["remove"] == {"Rule": SETTINGS.rule_name, "Ids": ["mine"]}


def test_a_forwarder_no_longer_wanted_is_deleted_with_its_targets_first() -> None:
    action = plan_forwarder(OTHER, SETTINGS, wanted=False, found=_as_made())
    assert action is not None and action.kind is ActionKind.DELETE_FORWARDER
    assert action.request == {
        "remove": {"Rule": SETTINGS.rule_name, "Ids": [TARGET_ID]},
        "delete": {"Name": SETTINGS.rule_name},
    }
    assert plan_forwarder(OTHER, SETTINGS, wanted=False, found=None) is None


def test_actions_skip_the_home_region_and_the_regions_not_read_and_sort_after_the_rules() -> None:
    actions = forwarder_actions(
        [HOME, OTHER, "ap-south-1"], SETTINGS, wanted=frozenset({OTHER}), found={HOME: None, OTHER: None}
    )
    assert [(a.kind, a.region) for a in actions] == [(ActionKind.CREATE_FORWARDER, OTHER)]
    assert Plan(actions=tuple(actions)).summary() == {"create_forwarder": 1}


def test_canonical_ignores_the_order_of_values_and_keys_only() -> None:
    assert canonical({"a": ["y", "x"], "b": {"c": [2, 1]}}) == canonical({"b": {"c": [1, 2]}, "a": ["x", "y"]})
    assert canonical({"a": ["x"]}) != canonical({"a": ["x", "y"]})


def test_the_status_keeps_its_transition_time_while_synced_does_not_flip() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = forwarder_status(None, "n", synced=False, reason="Throttling", message="m", now=t0, run_id="r1")
    later = t0 + timedelta(minutes=15)
    again = forwarder_status(first, "n", synced=False, reason="AccessDenied", message="m2", now=later, run_id="r2")
    fixed = forwarder_status(again, "n", synced=True, reason="Forwarding", message="ok", now=later, run_id="r3")
    assert again.conditions[0].last_transition == t0 and again.conditions[0].reason == "AccessDenied"
    assert fixed.conditions[0].last_transition == later and fixed.synced
    assert not first.synced

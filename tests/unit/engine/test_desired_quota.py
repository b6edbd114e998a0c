"""ECR's rule quota counts what ECR will hold in a Region: the desired rules, and the rules ECR keeps
there that are not desired (retained, or made outside ecrcache); ECR is asked only where a write adds
a rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ecrcache.engine.desired import MAX_RULES, ResourceChange, check_integrity, regions_gaining_rules
from ecrcache.models.records import ResourceKind, WriteAction

pytestmark = pytest.mark.unit

R = ResourceKind.RULE
QUAY: dict[str, Any] = {"upstream_kind": "quay"}
HERE = "us-east-1"


def rules(count: int, **spec: Any) -> dict[ResourceKind, dict[str, Mapping[str, Any]]]:
    return {R: {f"r{i:02d}": {**QUAY, **spec} for i in range(count)}}


def kept(count: int) -> set[str]:
    return {f"kept-{i:02d}" for i in range(count)}


@pytest.mark.parametrize(
    ("desired", "held", "ok"),
    [
        (50, set(), True),
        (51, set(), False),
        (47, kept(3), True),
        (48, kept(3), False),
        # a desired rule already in ECR is one rule, not two
        (50, {f"r{i:02d}" for i in range(50)}, True),
        (49, {"r00", "kept-00"}, True),
        (49, {"r00", "kept-00", "kept-01"}, False),
    ],
)
def test_quota_counts_desired_and_held_rules_once(desired: int, held: set[str], ok: bool) -> None:
    violations = check_integrity(rules(desired), default_region=HERE, held={HERE: held})
    assert bool(violations.conflicts) is not ok, violations.conflicts


def test_quota_message_names_the_rules_ecr_holds_that_are_not_desired() -> None:
    violations = check_integrity(rules(40), default_region=HERE, held={HERE: kept(11)})
    [conflict] = violations.conflicts
    assert conflict.field == "rules"
    assert conflict.message.startswith(
        f"ECR allows at most {MAX_RULES} pull-through cache rules per registry in {HERE}; this would make 51: "
        "40 desired and 11 in ECR that are not desired (kept-00, kept-01, kept-02, kept-03, kept-04 and 6 more: "
        "retained by deletion_policy retain, or made outside ecrcache;"
    )


def test_quota_is_per_region_and_held_rules_count_where_they_are() -> None:
    state = rules(50)  # all in the stack's Region
    assert not check_integrity(state, default_region=HERE, held={"eu-west-1": kept(50)})
    violations = check_integrity(rules(1, regions=["eu-west-1"]), default_region=HERE, held={"eu-west-1": kept(50)})
    assert [c.message.split(";")[0] for c in violations.conflicts] == [
        f"ECR allows at most {MAX_RULES} pull-through cache rules per registry in eu-west-1"
    ]


def change(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, kind: ResourceKind = R) -> ResourceChange:
    action = WriteAction.DELETE if after is None else WriteAction.UPDATE if before else WriteAction.CREATE
    return ResourceChange(kind, "quay", action, before, after)


@pytest.mark.parametrize(
    ("changes", "gained"),
    [
        ([change(None, QUAY)], {HERE}),
        ([change(None, {**QUAY, "regions": ["eu-west-1", "us-west-2"]})], {"eu-west-1", "us-west-2"}),
        ([change(QUAY, {**QUAY, "description": "x"})], set()),
        ([change(QUAY, {**QUAY, "regions": [HERE, "eu-west-1"]})], {"eu-west-1"}),
        ([change({**QUAY, "regions": ["eu-west-1"]}, QUAY)], {HERE}),
        ([change(QUAY, None)], set()),
        ([change(None, {"username": "x"}, ResourceKind.CREDENTIAL)], set()),
    ],
)
def test_regions_gaining_rules(changes: list[ResourceChange], gained: set[str]) -> None:
    assert regions_gaining_rules(changes, HERE) == gained

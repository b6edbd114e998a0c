"""The reconciler's CloudTrail subscription in template.yaml and the event names its code acts on agree.

A name only in the code is never delivered (that drift is repaired by the next resync only); a
name only in the template invokes the function for an event it ignores.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.models.ecr_operations import DRIFT_EVENTS, REGISTRY_EVENTS, REPOSITORY_EVENTS, WRITE_OPERATIONS
from tests.template import resources

pytestmark = pytest.mark.contract


def _drift_pattern() -> dict[str, Any]:
    pattern: dict[str, Any] = resources("AWS::Events::Rule")["ReconcilerEcrDriftRule"]["Properties"]["EventPattern"]
    return pattern


def test_the_drift_rule_lists_exactly_the_event_names_the_trigger_reads() -> None:
    # GIVEN the reconciler's EventBridge rule for CloudTrail calls of ECR
    names = _drift_pattern()["detail"]["eventName"]
    # THEN it lists every drift event once, and nothing else
    assert sorted(names) == sorted(DRIFT_EVENTS)
    assert len(names) == len(set(names))


def test_every_write_of_the_controller_is_a_drift_event() -> None:
    # GIVEN the controller's own ECR writes THEN anyone else making the same call is seen as drift,
    # as a registry-level event (rule, template, exclusion) or a repository event (never both)
    assert WRITE_OPERATIONS <= DRIFT_EVENTS
    assert not REGISTRY_EVENTS & REPOSITORY_EVENTS

"""The planner's real requests applied by the ECR adapter on the embedded AWS converge.

A small stand-in for the reconcile service: observe, plan, apply every action, record ownership
and fingerprints in memory; then a second resync plans nothing and makes no write (and, on the
fast path, no per-repository read).
"""

from __future__ import annotations

import pytest

from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS
from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.engine.planner import plan_region
from ecrcache.models.observed import AppliedFingerprints, DesiredRule, ObservedRegion, Ownership
from ecrcache.models.rule import RuleSpec
from tests.conftest import ACCOUNT_ID
from tests.functional.reconcile_adapters.conftest import Ecr
from tests.samples import ORG_PULL

pytestmark = pytest.mark.functional

CREATION_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/ecr-ptc-creation"


class Service:
    """Just enough of the reconcile service: ownership and applied fingerprints kept in memory."""

    def __init__(self, ecr: Ecr, desired: list[DesiredRule]) -> None:
        self.ecr = ecr
        self.desired = desired
        self.rules: set[str] = set()
        self.templates: set[str] = set()
        self.applied: dict[str, AppliedFingerprints] = {}

    def observe(self, *, deep: bool) -> ObservedRegion:
        return self.ecr.registry.observe(prefixes=[d.prefix for d in self.desired], deep=deep, applied=self.applied)

    def plan(self, *, deep: bool) -> Plan:
        ownership = Ownership(rules=frozenset(self.rules), templates=frozenset(self.templates))
        return plan_region(self.desired, [], self.observe(deep=deep), ownership, deep=deep)

    def apply(self, plan: Plan) -> None:
        for action in plan.actions:
            result = self.ecr.registry.apply(action)
            assert result.ok, (action.kind, action.target, result)
            if action.kind.scope == "rule" and action.kind is not ActionKind.DELETE_RULE:
                self.rules.add(action.target)
            elif action.kind.scope == "template" and action.kind is not ActionKind.DELETE_TEMPLATE:
                self.templates.add(action.target)
            elif action.records:
                current = self.applied.get(action.target, AppliedFingerprints())
                self.applied[action.target] = action.record_onto(current)


def test_plan_apply_replan_converges_and_a_noop_resync_writes_nothing(ecr: Ecr) -> None:
    # GIVEN two desired rules and repositories ECR cached before the rules had settings
    hub_arn = ecr.secret("ecr-pullthroughcache/hub")
    quay = RuleSpec.model_validate(
        {
            "upstream_kind": "quay",
            "lifecycle": {"presets": {"keep_last": 10}},
            "repository": {"tags": {"team": "platform"}, "policy": ORG_PULL, "creation_role_arn": CREATION_ROLE},
        }
    )
    hub = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"})
    service = Service(
        ecr,
        [DesiredRule(prefix="quay", spec=quay), DesiredRule(prefix="docker-hub", spec=hub, credential_arn=hub_arn)],
    )
    for name in ("quay/argoproj/argocd", "quay/coreos/etcd", "docker-hub/library/node"):
        ecr.repository(name)
    # WHEN a deep reconcile plans and applies
    first = service.plan(deep=True)
    service.apply(first)
    # THEN it made both rules and templates, and patched the two quay repositories
    assert first.summary() == {
        "create_rule": 2,
        "create_template": 2,
        "put_lifecycle_policy": 2,
        "set_repository_policy": 2,
        "tag_repository": 2,
    }
    # AND a deep re-plan finds nothing to do
    assert service.plan(deep=True).actions == ()
    # WHEN a fast resync runs
    ecr.registry.calls.clear()
    fast = service.plan(deep=False)
    # THEN it plans nothing, and made no write and no per-repository read
    assert fast.actions == ()
    assert ecr.registry.writes == 0
    assert not PER_REPOSITORY_READS & set(ecr.registry.calls)
    assert ecr.registry.calls["DescribeRepositories"] == 1

"""DesiredStateService and ECR's rule quota: ECR is asked what it holds only in the Regions a write adds
a rule to, and what it holds counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecrcache.errors import ConflictError
from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.rule import RuleSpec
from ecrcache.services.desired_state import DesiredStateService
from tests.fakes.stores import MemorySecretStore, MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
HERE = "us-east-1"
QUAY = RuleSpec.model_validate({"upstream_kind": "quay"})


class Ecr:
    """What ECR holds per Region, and which Regions were asked."""

    def __init__(self, held: dict[str, set[str]]) -> None:
        self.held = held
        self.asked: list[str] = []

    def __call__(self, region: str) -> set[str]:
        self.asked.append(region)
        return self.held.get(region, set())


def service(ecr: Ecr) -> DesiredStateService:
    return DesiredStateService(MemoryStateStore(), MemorySecretStore(), clock=lambda: NOW, ecr_rules=ecr)


def test_a_new_rule_asks_ecr_and_counts_what_it_holds() -> None:
    ecr = Ecr({HERE: {f"kept-{i:02d}" for i in range(50)}})
    with pytest.raises(ConflictError, match="this would make 51: 1 desired and 50 in ECR"):
        service(ecr).put_rule("quay", QUAY, actor=ALICE)
    assert ecr.asked == [HERE]


def test_a_change_that_adds_no_rule_to_a_region_does_not_ask_ecr() -> None:
    ecr = Ecr({})
    desired = service(ecr)
    desired.put_rule("quay", QUAY, actor=ALICE)
    ecr.asked.clear()
    desired.put_rule("quay", QUAY.model_copy(update={"description": "v2"}), actor=ALICE)
    desired.apply_document(
        DesiredStateDocument.model_validate({"version": 1, "rules": {"quay": {"upstream_kind": "quay"}}}),
        actor=ALICE,
        prune=True,
        dry_run=True,
    )
    assert ecr.asked == []


def test_a_document_asks_each_region_it_adds_rules_to_once() -> None:
    ecr = Ecr({})
    document = DesiredStateDocument.model_validate(
        {
            "version": 1,
            "rules": {
                "quay": {"upstream_kind": "quay"},
                "k8s": {"upstream_kind": "k8s", "regions": [HERE, "eu-west-1"]},
            },
        }
    )
    service(ecr).apply_document(document, actor=ALICE, prune=False, dry_run=True)
    assert ecr.asked == ["eu-west-1", HERE]

"""PlanService's reads for desired-state writes: the ownership check (what the plan will show Blocked)
and the rules ECR holds (for the quota), on in-memory fakes."""

from __future__ import annotations

import pytest

from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import ObservedRegion, ObservedRule
from ecrcache.models.rule import RuleSpec
from ecrcache.services.plan import PlanService
from tests.fakes.ecr_registry import REGION, MemoryEcrReader
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

OTHER = "eu-west-1"
PUBLIC = RuleSpec.model_validate({"upstream_kind": "ecr-public", "regions": [REGION, OTHER]})


def hand_made(region: str, *prefixes: str) -> MemoryEcrReader:
    rules = {p: ObservedRule(prefix=p, upstream_registry_url="quay.io", upstream_registry="quay") for p in prefixes}
    return MemoryEcrReader(region, ObservedRegion(region=region, rules=rules))


@pytest.fixture
def readers() -> dict[str, MemoryEcrReader]:
    return {REGION: hand_made(REGION, "conflict2"), OTHER: hand_made(OTHER, "conflict2", "kept")}


@pytest.fixture
def status() -> MemoryStatusStore:
    return MemoryStatusStore()


@pytest.fixture
def service(readers: dict[str, MemoryEcrReader], status: MemoryStatusStore) -> PlanService:
    return PlanService(desired=MemoryStateStore(), status=status, registry=readers.__getitem__, stack_region=REGION)


def test_every_region_a_rule_names_is_checked_with_its_own_ownership(
    service: PlanService, status: MemoryStatusStore
) -> None:
    # GIVEN the hand-made rule taken over in eu-west-1 only
    status.record_owned(OTHER, "rule", "conflict2")
    # WHEN checked
    check = service.ownership_check({"conflict2": PUBLIC, "fresh": PUBLIC})
    # THEN it is Blocked in the stack's Region only; fresh is not in ECR: nothing to block
    assert [(b.region, b.prefix) for b in check.blocked] == [(REGION, "conflict2")]
    assert check.warnings == []


def test_adopt_true_is_never_blocked(service: PlanService) -> None:
    check = service.ownership_check({"conflict2": PUBLIC.model_copy(update={"adopt": True})})
    assert check.blocked == [] and check.warnings == []


def test_a_region_that_cannot_be_read_is_a_warning(service: PlanService, readers: dict[str, MemoryEcrReader]) -> None:
    readers[OTHER].observe_error = TerminalError("ECR DescribePullThroughCacheRules failed with AccessDeniedException")
    check = service.ownership_check({"conflict2": PUBLIC})
    assert [b.region for b in check.blocked] == [REGION]
    assert check.warnings == [
        f"could not check {OTHER} for rules ecrcache does not own: "
        "ECR DescribePullThroughCacheRules failed with AccessDeniedException"
    ]


def test_no_rules_reads_nothing(service: PlanService, readers: dict[str, MemoryEcrReader]) -> None:
    assert service.ownership_check({}).blocked == []
    assert sum(sum(r.calls.values()) for r in readers.values()) == 0


def test_rules_in_ecr_lists_every_rule_and_an_unreadable_ecr_is_retryable(
    service: PlanService, readers: dict[str, MemoryEcrReader]
) -> None:
    assert service.rules_in_ecr(OTHER) == {"conflict2", "kept"}
    readers[OTHER].observe_error = TerminalError("ECR DescribePullThroughCacheRules failed with AccessDeniedException")
    with pytest.raises(RetryableError, match=f"could not read ECR in {OTHER} to check its pull-through cache rule"):
        service.rules_in_ecr(OTHER)

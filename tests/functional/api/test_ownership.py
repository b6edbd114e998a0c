"""``PUT /v1/desired-state`` says what ``GET /v1/plan`` will say about rules ecrcache does not own.

A document that declares a prefix whose pull-through cache rule or creation template in ECR was
made by hand is accepted (the desired state is the user's), and the answer, dry run or not, lists
the rule as Blocked with the very entry the plan shows, until the rule says ``adopt: true``.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ecrcache.errors import RetryableError
from tests.conftest import REGION
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

DECLARED: dict[str, Any] = {"version": 1, "rules": {"conflict2": {"upstream_kind": "ecr-public"}}}


@pytest.fixture
def hand_made(api: ApiClient) -> None:
    """A Quay rule made by hand at prefix conflict2."""
    boto3.client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="conflict2", upstreamRegistryUrl="quay.io")


@pytest.mark.usefixtures("hand_made")
def test_dry_run_apply_and_plan_report_the_same_blocked_rule(api: ApiClient) -> None:
    # WHEN a document declaring the prefix with another upstream is dry-run, then applied
    dry = api.put("/v1/desired-state", DECLARED, query={"dryRun": "true"})
    real = api.put("/v1/desired-state", DECLARED)
    plan = api.get("/v1/plan")
    # THEN both answers list the rule Blocked, exactly as the plan does
    assert dry.status == real.status == plan.status == 200, (dry.text, real.text)
    assert [c["action"] for c in dry.json["changes"]] == ["create"]
    assert dry.json["blocked"] == real.json["blocked"] == plan.json["blocked"]
    [blocked] = plan.json["blocked"]
    assert (blocked["region"], blocked["prefix"]) == (REGION, "conflict2")
    assert "did not create (it points at quay.io; this rule at public.ecr.aws)" in blocked["reason"]
    assert plan.json["actions"] == []
    assert dry.json["warnings"] == real.json["warnings"] == []


@pytest.mark.usefixtures("hand_made")
def test_adopt_true_is_not_blocked(api: ApiClient) -> None:
    adopting = {"version": 1, "rules": {"conflict2": {"upstream_kind": "ecr-public", "adopt": True}}}
    answer = api.put("/v1/desired-state", adopting, query={"dryRun": "true"})
    assert answer.status == 200, answer.text
    assert answer.json["blocked"] == []
    # the stored rule says so (and a rule without it stores no adopt at all)
    assert api.put("/v1/desired-state", adopting).status == 200
    assert api.get("/v1/rules/conflict2").json["spec"]["adopt"] is True


def test_a_rule_not_in_ecr_is_not_blocked_and_only_rules_and_templates_are_read(api: ApiClient) -> None:
    from functions.api.app import registry

    before = registry(REGION).calls.copy()
    answer = api.put("/v1/desired-state", DECLARED, query={"dryRun": "true"})
    assert answer.status == 200, answer.text
    assert answer.json["blocked"] == []
    read = registry(REGION).calls - before
    assert set(read) == {"DescribePullThroughCacheRules", "DescribeRepositoryCreationTemplates"}


@pytest.mark.usefixtures("hand_made")
def test_ecr_unreadable_is_a_warning_and_the_write_stands(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.api.app import registry

    # GIVEN the rule declared, then ECR unreadable
    assert api.put("/v1/desired-state", DECLARED).status == 200

    def unreadable(**_: Any) -> Any:
        raise RetryableError("ECR DescribePullThroughCacheRules failed with ThrottlingException; try again")

    monkeypatch.setattr(registry(REGION), "observe", unreadable)
    # WHEN the rule is changed (no rule added to a Region: the quota needs no read of ECR)
    changed = {"version": 1, "rules": {"conflict2": {"upstream_kind": "ecr-public", "description": "v2"}}}
    answer = api.put("/v1/desired-state", changed)
    # THEN the write stands, and the answer says what could not be checked
    assert answer.status == 200, answer.text
    assert answer.json["blocked"] == []
    assert answer.json["warnings"] == [
        f"could not check {REGION} for rules ecrcache does not own: "
        "ECR DescribePullThroughCacheRules failed with ThrottlingException; try again"
    ]
    assert api.get("/v1/rules/conflict2").json["spec"]["description"] == "v2"


def test_a_document_that_changes_no_rule_reads_no_ecr(api: ApiClient) -> None:
    from functions.api.app import registry

    assert api.put("/v1/desired-state", DECLARED).status == 200
    before = registry(REGION).calls.copy()
    again = api.put("/v1/desired-state", DECLARED)
    assert again.status == 200 and again.json["changes"] == []
    assert registry(REGION).calls - before == {}

"""``GET /v1/plan`` shows the warm worker's pull-time update exclusion as the reconciler would plan it."""

from __future__ import annotations

from typing import Final

import boto3
import pytest

from ecrcache.config import api_settings
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

WARMER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-WarmWorkerFunctionRole-AB12"


@pytest.fixture
def warmer_api(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> ApiClient:
    from functions.api import app

    # The function passes its WARMER_ROLE_ARN setting to the planner ("" in the tests' environment: off)
    assert app.planner.warmer_role_arn == (api_settings().warmer_role_arn or None)
    monkeypatch.setattr(app.planner, "warmer_role_arn", WARMER)
    return api


def test_the_plan_lists_the_registration_of_the_warmer(warmer_api: ApiClient) -> None:
    assert warmer_api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    plan = warmer_api.get("/v1/plan")
    assert plan.status == 200, plan.text
    [action] = [a for a in plan.json["actions"] if a["kind"] == "register_exclusion"]
    assert (action["region"], action["target"], action["rule_prefix"]) == (REGION, WARMER, "")
    assert action["request"] == {"principalArn": WARMER}
    # AND reading the plan registered nothing (the API only lists exclusions)
    assert boto3.client("ecr").list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == []


def test_the_plan_reports_an_exclusion_of_the_warmer_ecrcache_did_not_register(warmer_api: ApiClient) -> None:
    boto3.client("ecr").register_pull_time_update_exclusion(principalArn=WARMER)
    assert warmer_api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    plan = warmer_api.get("/v1/plan").json
    assert [a["kind"] for a in plan["actions"]] == ["create_rule", "create_template"]
    assert [(u["kind"], u["name"]) for u in plan["unmanaged"]] == [("exclusion", WARMER)]


def test_without_a_warmer_role_the_plan_has_no_exclusion_and_lists_none(api: ApiClient) -> None:
    from functions.api import app

    assert app.planner.warmer_role_arn is None
    calls = app.planner.registry(REGION).calls  # the function's reader (made once per cold start)
    listed = calls["ListPullTimeUpdateExclusions"]
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    plan = api.get("/v1/plan").json
    assert [a["kind"] for a in plan["actions"]] == ["create_rule", "create_template"]
    assert calls["ListPullTimeUpdateExclusions"] == listed

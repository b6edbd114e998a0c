"""The API plans and imports over ECR readers: it holds no object that can write ECR."""

from __future__ import annotations

import pytest

from ecrcache.adapters.ecr_registry import Boto3EcrReader, Boto3EcrRegistry
from ecrcache.services.reconcile import ReconcileService
from tests.conftest import REGION
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional


def test_the_api_holds_no_object_that_can_write_ecr(api: ApiClient) -> None:
    from functions.api import app

    # GIVEN the API function as wired
    reader = app.planner.registry(REGION)
    # THEN its plan and its import read ECR through readers, which have no write method
    assert isinstance(reader, Boto3EcrReader)
    assert not isinstance(reader, Boto3EcrRegistry)
    assert not hasattr(reader, "apply")
    assert app.importer.registry(REGION) is reader
    # AND no reconciler or ECR registry is anywhere in the module
    assert not [name for name, value in vars(app).items() if isinstance(value, ReconcileService | Boto3EcrRegistry)]


def test_the_plan_answers_over_the_reader(api: ApiClient) -> None:
    # GIVEN a desired rule ECR does not have
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    # WHEN the plan is read
    plan = api.get("/v1/plan")
    # THEN it lists what the reconciler would do
    assert plan.status == 200, plan.text
    assert [(a["kind"], a["target"]) for a in plan.json["actions"]] == [
        ("create_rule", "quay"),
        ("create_template", "quay"),
    ]

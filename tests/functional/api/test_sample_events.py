"""Every sample event in ``events/api/`` (what ``sam local invoke`` takes) through the api handler.

Each sample runs against a table holding what it needs (a sample that deletes a credential finds
one, a sample that reads a rule's status finds a reconciled rule) and gets the documented success
it stands for - so a sample that drifts from the API fails here, not in someone's terminal.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import Enum
from functools import cache

import pytest

from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.status import ConditionType, RuleStatus
from tests.conftest import REGION, ROOT, load_event, sample_events
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional


class Needs(Enum):
    """What a sample needs in the table before it runs (each includes the ones before it)."""

    NOTHING = 0
    CREDENTIAL = 1  # the credential `dockerhub` the samples name
    RULE = 2  # and the rule `docker-hub` that uses it
    STATUS = 3  # and that rule reconciled (its status recorded)


EXPECTED: dict[str, tuple[Needs, int]] = {
    "api/delete_credential.json": (Needs.CREDENTIAL, 204),
    "api/delete_rule.json": (Needs.RULE, 204),
    "api/get_credentials.json": (Needs.CREDENTIAL, 200),
    "api/get_desired_state.json": (Needs.RULE, 200),
    "api/get_history.json": (Needs.RULE, 200),
    "api/get_openapi.json": (Needs.NOTHING, 200),
    "api/get_plan.json": (Needs.RULE, 200),
    "api/get_rule.json": (Needs.RULE, 200),
    "api/get_rule_status.json": (Needs.STATUS, 200),
    "api/get_rules.json": (Needs.RULE, 200),
    "api/get_status.json": (Needs.STATUS, 200),
    "api/get_warm_sets.json": (Needs.RULE, 200),
    "api/post_import.json": (Needs.NOTHING, 200),
    "api/post_reconcile.json": (Needs.NOTHING, 202),
    "api/put_credential.json": (Needs.NOTHING, 201),
    "api/put_desired_state.json": (Needs.NOTHING, 200),
    "api/put_rule.json": (Needs.CREDENTIAL, 201),
    "api/put_rule_nested_prefix.json": (Needs.CREDENTIAL, 201),
    "api/put_warm_set.json": (Needs.RULE, 201),
}


@cache
def documented_statuses() -> dict[tuple[str, re.Pattern[str]], frozenset[int]]:
    """(method, path pattern) -> the statuses the committed OpenAPI document gives the operation."""
    spec = json.loads((ROOT / "docs" / "openapi.json").read_text())
    return {
        (method.upper(), re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")): frozenset(map(int, op["responses"]))
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }


def documented(method: str, path: str) -> frozenset[int] | None:
    """The statuses documented for the request, or ``None`` for a path the spec does not describe (itself)."""
    for (documented_method, pattern), statuses in documented_statuses().items():
        if documented_method == method and pattern.match(path):
            return statuses
    return None


def prepare(api: ApiClient, state_table: str, needs: Needs) -> None:
    if needs.value >= Needs.CREDENTIAL.value:
        body = {"upstream_kind": "docker-hub", "username": "ci-bot", "token": "dckr_pat_EXAMPLE"}
        assert api.put("/v1/credentials/dockerhub", body).status == 201
    if needs.value >= Needs.RULE.value:
        assert api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "dockerhub"}).status == 201
    if needs.value >= Needs.STATUS.value:
        synced = RuleStatus().with_condition(
            ConditionType.SYNCED, status=True, reason="Applied", message="", now=datetime.now(UTC)
        )
        DynamoDbStatusStore(state_table).put_rule_status(REGION, "docker-hub", synced)


@pytest.mark.parametrize("sample", sample_events("api"))
def test_api_sample_event_gets_the_documented_success(api: ApiClient, state_table: str, sample: str) -> None:
    # GIVEN a sample event and the table holding what it needs
    assert sample in EXPECTED, f"{sample}: a new sample event needs its expected outcome in EXPECTED"
    needs, status = EXPECTED[sample]
    prepare(api, state_table, needs)
    event = load_event(sample)

    # WHEN the api handler is invoked with it, as API Gateway would
    response = api.handler(event, api.context)

    # THEN it answers the success the sample stands for, a status the API documents for the operation
    body = response.get("body") or ""
    assert response["statusCode"] == status, body
    statuses = documented(event["httpMethod"], event["path"])
    assert statuses is None or status in statuses, (event["httpMethod"], event["path"], sorted(statuses or ()))
    # AND a body that is JSON (none for 204)
    if status == 204:
        assert body == ""
    else:
        json.loads(body)

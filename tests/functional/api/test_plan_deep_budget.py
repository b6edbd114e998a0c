"""``GET /v1/plan?deep=true`` is bounded by the invocation's remaining time: never a 504.

API Gateway gives a REST integration 29 s; a deep read costs three ECR calls per cached repository.
The time here is simulated, never measured: each repository's deep read (its ``GetLifecyclePolicy``)
advances a fake clock by one second, and the Lambda context answers the remaining time from it.
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from ecrcache.http.routes.control import DEEP_READ_MARGIN_MS
from tests.conftest import REGION
from tests.functional.api.budget_support import (
    SECONDS_PER_READ,
    START_MS,
    SimulatedContext,
    cached_repositories,
    spending_reader,
)
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

REPOSITORIES: Final = 40


@pytest.fixture
def clocked(state_table: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ApiClient, SimulatedContext]:
    from functions.api import app

    context = SimulatedContext()
    reader = spending_reader(context)
    monkeypatch.setattr(app.planner, "registry", lambda region: reader)
    return ApiClient(context), context


def test_a_deep_plan_larger_than_the_budget_answers_in_time_and_says_it_is_partial(
    clocked: tuple[ApiClient, SimulatedContext],
) -> None:
    api, context = clocked
    # GIVEN a rule and more cached repositories than the invocation has time to read deeply
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    cached_repositories(REPOSITORIES)
    # WHEN the deep plan is asked for
    plan = api.get("/v1/plan", query={"deep": "true"})
    # THEN it answers 200 (no timeout): the simulated clock never ran out
    assert plan.status == 200, plan.text
    assert context.lowest > 0
    # AND it stopped reading at the margin, with the reads under way finished
    assert 0 < context.reads < REPOSITORIES
    assert START_MS - context.reads * SECONDS_PER_READ <= DEEP_READ_MARGIN_MS
    # AND the answer says it is partial, and how much was not read
    body = plan.json
    assert body["complete"] is False
    [note] = [n for n in body["notes"] if n["prefix"] == ""]
    assert note["region"] == REGION
    unread = REPOSITORIES - context.reads
    assert f"{unread} of {REPOSITORIES} cached repositories were not read deeply" in note["message"]


def test_a_deep_plan_within_the_budget_is_complete(clocked: tuple[ApiClient, SimulatedContext]) -> None:
    api, context = clocked
    # GIVEN fewer repositories than the time allows
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    cached_repositories(5)
    # WHEN the deep plan is asked for THEN every repository is read and the plan is complete
    plan = api.get("/v1/plan", query={"deep": "true"})
    assert plan.status == 200, plan.text
    assert context.reads == 5
    assert plan.json["complete"] is True
    assert not [n for n in plan.json["notes"] if n["prefix"] == ""]


def test_the_fast_plan_has_no_budget(clocked: tuple[ApiClient, SimulatedContext]) -> None:
    api, context = clocked
    # GIVEN an invocation already past the margin
    context.spent = START_MS
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    cached_repositories(3)
    # WHEN the plan without deep is asked for THEN it is complete and reads nothing deeply (as before)
    plan = api.get("/v1/plan")
    assert plan.status == 200, plan.text
    assert plan.json["complete"] is True
    assert context.reads == 0


def test_the_plans_eventbridge_reads_give_up_within_seconds(state_table: str) -> None:
    # GIVEN the API's EventBridge reader (the plan reads the forwarding rule of each other Region)
    from functions.api import app

    config: Any = app.event_forwarder("eu-west-3").client.meta.config
    # THEN a slow or throttled EventBridge costs seconds, not the shared retry configuration's minutes
    assert (config.connect_timeout, config.read_timeout) == (1, 2)
    assert config.retries["total_max_attempts"] == 2

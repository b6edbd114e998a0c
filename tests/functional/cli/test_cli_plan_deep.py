"""``ecrcache plan --deep`` when the API's deep read stops at its time budget: the exit codes stay honest.

The API's Lambda context is a :class:`~tests.functional.api.budget_support.SimulatedContext`: each
repository read deeply spends one simulated second of it (never the wall clock).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache_cli.commands.plan import INCOMPLETE_WARNING
from tests.conftest import REGION
from tests.functional.api.budget_support import SimulatedContext, cached_repositories, spending_reader
from tests.functional.cli.test_cli_controller import apply_rules, cli

pytestmark = pytest.mark.functional

REPOSITORIES = 40


@pytest.fixture
def lambda_context(monkeypatch: pytest.MonkeyPatch) -> SimulatedContext:
    """The API function's context (the ``endpoint`` fixture passes it to every invocation)."""
    from functions.api import app

    context = SimulatedContext()
    reader = spending_reader(context)
    monkeypatch.setattr(app.planner, "registry", lambda region: reader)
    return context


@pytest.fixture
def reconcile(state_table: str) -> Callable[[], None]:
    """One fast reconcile by the controller, in-process: ECR converges and what it applied is recorded."""
    service = ReconcileService(
        desired=DynamoDbStateStore(state_table),
        status=DynamoDbStatusStore(state_table),
        registry=lambda region: Boto3EcrRegistry(region, sleep=lambda _: None),
        clock=lambda: datetime.now(UTC),
        stack_region=REGION,
    )

    def run() -> None:
        assert service.reconcile(Scope(), RunTrigger.SCHEDULE).status is RunStatus.SUCCEEDED

    return run


def test_a_partial_deep_plan_with_actions_exits_2_and_warns(
    endpoint: str, tmp_path: Path, lambda_context: SimulatedContext
) -> None:
    # GIVEN a desired rule ECR does not have, and more cached repositories than the API has time for
    apply_rules(endpoint, tmp_path)
    cached_repositories(REPOSITORIES)
    # WHEN the deep plan is shown with --detailed-exitcode
    result = cli(endpoint, "plan", "--deep", "--detailed-exitcode")
    # THEN the actions found pend (2), and the answer says it is partial
    assert result.code == 2, result.output
    assert "create_rule" in result.stdout
    assert f"warning: {INCOMPLETE_WARNING}" in result.stderr
    assert "(registry)" in result.stdout  # the Region's note: it belongs to no one rule
    assert "were not read deeply" in result.stdout
    assert 0 < lambda_context.reads < REPOSITORIES


def test_a_partial_deep_plan_without_actions_never_says_nothing_to_do(
    endpoint: str, tmp_path: Path, lambda_context: SimulatedContext, reconcile: Callable[[], None]
) -> None:
    # GIVEN a converged rule and more cached repositories than the API has time for
    apply_rules(endpoint, tmp_path)
    cached_repositories(REPOSITORIES)
    reconcile()
    assert cli(endpoint, "plan", "--detailed-exitcode").code == 0
    # WHEN the deep plan is shown with --detailed-exitcode
    result = cli(endpoint, "plan", "--deep", "--detailed-exitcode")
    # THEN it finds no action but cannot say "nothing to do": exit 1, with the warning
    assert result.code == 1, result.output
    assert f"warning: {INCOMPLETE_WARNING}" in result.stderr
    # AND without the flag it is shown as a plan (exit 0), and its JSON says it is incomplete
    shown = cli(endpoint, "plan", "--deep", "-o", "json")
    assert shown.code == 0, shown.output
    assert json.loads(shown.stdout)["complete"] is False


def test_a_complete_deep_plan_keeps_its_exit_codes(
    endpoint: str, tmp_path: Path, lambda_context: SimulatedContext, reconcile: Callable[[], None]
) -> None:
    # GIVEN a converged rule with a few cached repositories (the budget is enough)
    apply_rules(endpoint, tmp_path)
    cached_repositories(3)
    reconcile()
    # WHEN the deep plan is shown THEN nothing to do: 0, and no warning
    result = cli(endpoint, "plan", "--deep", "--detailed-exitcode")
    assert result.code == 0, result.output
    assert "warning" not in result.stderr
    assert lambda_context.reads == 3

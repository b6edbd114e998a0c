"""``ecrcache warm NAME --wait`` and ``ecrcache status`` against the real API handler, with the real warm
planner planning the requested run (on the same moto state) and a worker recording outcomes between polls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import ImageOutcome, Outcome, RunTrigger, WarmRun
from ecrcache.services.warm_planner import WarmRequest
from tests.functional.warm.planner_support import Planner, make_queue
from tests.unit.cli.support import CliResult, run_cli

pytestmark = pytest.mark.functional

DOC = """version: 1
rules:
  quay:
    upstream_kind: quay
warm_sets:
  base:
    rule: quay
    images: [prometheus/node-exporter:v1.8.0, argoproj/argocd:v2.13.0]
"""


def cli(endpoint: str, *argv: str, sleep: object = None) -> CliResult:
    return run_cli(["--endpoint", endpoint, *argv], sleep=sleep)  # type: ignore[arg-type]


@pytest.fixture
def planner(endpoint: str, state_table: str, tmp_path: Path) -> Planner:
    document = tmp_path / "desired.yaml"
    document.write_text(DOC)
    assert cli(endpoint, "apply", "-f", str(document), "--no-wait").code == 0
    return Planner(state_table, make_queue())


def worker(planner: Planner, *, fail_last: bool) -> object:
    """Between the CLI's polls: plan the queued run (first poll), then finish one image per poll."""

    def step(_: float) -> None:
        latest = planner.latest("base")
        if latest.total == 0:
            planner.service.plan(planner.service.requested(WarmRequest(run_id=latest.run_id, warm_set="base")))
            return
        tasks = planner.runs.pending_tasks(latest.run_id) or []
        if not tasks:
            return
        task, failing = tasks[0], fail_last and len(tasks) == 1
        planner.runs.record_outcome(
            latest.run_id,
            "base",
            ImageOutcome(
                image=task.image,
                region=task.region,
                repository=task.repository,
                tag=task.tag,
                outcome=Outcome.FAILED if failing else Outcome.WARMED,
                failure_class=FailureClass.UPSTREAM_DOWN if failing else None,
                upstream_requests=3,
                finished_at=datetime(2026, 11, 29, 12, tzinfo=UTC),
            ),
        )

    return step


@pytest.mark.parametrize(("fail_last", "code", "status"), [(False, 0, "succeeded"), (True, 6, "partial")])
def test_warm_wait_follows_the_planned_run_to_its_end(
    endpoint: str, planner: Planner, fail_last: bool, code: int, status: str
) -> None:
    result = cli(endpoint, "warm", "base", "--wait", "--timeout", "60", sleep=worker(planner, fail_last=fail_last))
    assert result.code == code, result.output
    assert result.stdout.startswith("Warm run queued: ")
    assert f"status:            {status}" in result.stdout
    assert "quay/prometheus/node-exporter:v1.8.0" in result.stdout

    # AND `ecrcache status` shows the set's last run beside the rules
    shown = cli(endpoint, "status")
    assert shown.code == 0, shown.output
    lines = shown.stdout.splitlines()
    [row] = [line.split() for line in lines[lines.index("Warm sets:") + 2 :] if line.strip()]
    assert row[:3] == ["base", status, "api"]


def test_warm_without_wait_only_queues(endpoint: str, planner: Planner) -> None:
    result = cli(endpoint, "warm", "base")
    assert result.code == 0, result.output
    run_id = result.stdout.split("Warm run queued: ")[1].split()[0]
    assert planner.latest("base").run_id == run_id
    assert cli(endpoint, "warm", "nope").code == 4


def test_warm_wait_follows_its_run_when_another_run_of_the_set_starts(endpoint: str, planner: Planner) -> None:
    # GIVEN a second run of the set requested while the first is being warmed (the set's status shows it)
    ours: list[str] = []

    def step(_: float) -> None:
        if not ours:
            ours.append(planner.latest("base").run_id)
            planner.service.plan(planner.service.requested(WarmRequest(run_id=ours[0], warm_set="base")))
            later = datetime.now(UTC) + timedelta(seconds=1)
            planner.runs.request_run(WarmRun(run_id="other", warm_set="base", trigger=RunTrigger.API, created_at=later))
            return
        for task in (planner.runs.pending_tasks(ours[0]) or [])[:1]:
            planner.runs.record_outcome(
                ours[0],
                "base",
                ImageOutcome(
                    image=task.image,
                    region=task.region,
                    repository=task.repository,
                    tag=task.tag,
                    outcome=Outcome.WARMED,
                    finished_at=datetime(2026, 11, 29, 12, tzinfo=UTC),
                ),
            )

    # WHEN waiting THEN the first run is followed to its end
    result = cli(endpoint, "warm", "base", "--wait", "--timeout", "60", sleep=step)
    assert result.code == 0, result.output
    assert f"run:               {ours[0]}" in result.stdout
    assert "status:            succeeded" in result.stdout
    assert planner.latest("base").run_id == "other"

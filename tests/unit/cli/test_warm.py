"""``ecrcache warm NAME [--wait]`` and the warm sets of ``ecrcache status``, against a recording HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ecrcache_cli.commands.warm import progress_bar, run_counts
from tests.unit.cli.support import Recorded, Reply, recording_server, run_cli

pytestmark = pytest.mark.unit

QUEUED = {"run_id": "r-2", "warm_set": "base", "status": "queued"}


def status(run: dict[str, Any] | None, images: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    images = images or []
    body = {"warm_set": "base", "run": run, "pending": 0, "images": images}
    return body | {"images_total": len(images), "images_truncated": False} | extra


def run(status_: str, counts: dict[str, int], total: int = 3, run_id: str = "r-2", **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "warm_set": "base",
        "trigger": "api",
        "status": status_,
        "total": total,
        "counts": counts,
        "upstream_requests": 7,
        "budget": 100,
        "stopped_upstreams": [],
        "finished_at": "2026-11-29T12:05:00Z" if status_ in {"succeeded", "partial", "failed"} else None,
        "message": None,
        **extra,
    }


IMAGE = {
    "image": "library/node:18-alpine",
    "region": "us-east-1",
    "repository": "docker-hub/library/node",
    "tag": "18-alpine",
    "digest": "sha256:" + "a" * 64,
    "outcome": "warmed",
    "failure_class": None,
    "platforms_verified": ["linux/amd64", "linux/arm64"],
    "upstream_requests": 3,
    "message": None,
}


def server_answering(statuses: list[dict[str, Any]]) -> Any:
    """POST -> queued; each GET of the run -> the next of ``statuses`` (the last repeats)."""
    answers: Iterator[dict[str, Any]] = iter(statuses)
    last: dict[str, Any] = statuses[-1]

    def respond(request: Recorded) -> Reply:
        nonlocal last
        if request.method == "POST":
            return Reply(202, QUEUED)
        last = next(answers, last)
        return Reply(200, last)

    return recording_server(respond)


def test_progress_bar_and_counts() -> None:
    assert progress_bar(0, 4, width=8) == "[░░░░░░░░] 0/4"
    assert progress_bar(2, 4, width=8) == "[████░░░░] 2/4"
    assert progress_bar(4, 4, width=8) == "[████████] 4/4"
    assert progress_bar(0, 0, width=4) == "[████] 0/0"
    assert run_counts({"counts": {"warmed": 2, "failed": 1}}) == "2 warmed, 0 fresh, 0 skipped, 1 failed"


def test_warm_queues_a_run_and_returns_without_waiting() -> None:
    with server_answering([status(None)]) as server:
        result = run_cli(["--endpoint", server.url, "warm", "base"])
    assert result.code == 0, result.output
    assert [(r.method, r.target) for r in server.requests] == [("POST", "/v1/warm-sets/base/runs")]
    assert "Warm run queued: r-2" in result.stdout


QUEUED_RUN = run("queued", {}, total=0)


def test_warm_wait_follows_the_run_with_a_progress_bar_until_it_succeeds() -> None:
    # GIVEN the run queued (not planned yet), then planned, then running, then succeeded
    statuses = [
        status(QUEUED_RUN),
        status(run("queued", {})),
        status(run("running", {"warmed": 1, "fresh": 1})),
        status(run("succeeded", {"warmed": 2, "fresh": 1}), [IMAGE]),
    ]
    with server_answering(statuses) as server:
        result = run_cli(["--endpoint", server.url, "warm", "base", "--wait"])

    # THEN exit 0; stderr shows the progress (queued, then the bar); stdout the run and its images
    assert result.code == 0, result.output
    assert "run r-2: queued (waiting for the planner)" in result.stderr
    assert "run r-2: queued [░░░░░░░░░░░░░░░░░░░░░░░░] 0/3" in result.stderr
    assert "run r-2: running [████████████████░░░░░░░░] 2/3 (1 warmed, 1 fresh, 0 skipped, 0 failed)" in result.stderr
    assert "status:            succeeded" in result.stdout
    assert "upstream requests: 7 of a budget of 100" in result.stdout
    assert "docker-hub/library/node:18-alpine" in result.stdout
    assert "linux/amd64,linux/arm64" in result.stdout
    # AND it read its own run each time (another run of the set starting meanwhile does not matter)
    assert [r.target for r in server.requests][1:] == ["/v1/warm-sets/base/runs/r-2"] * 4


@pytest.mark.parametrize("ending", ["partial", "failed"])
def test_warm_wait_exits_6_for_a_run_that_did_not_succeed(ending: str) -> None:
    failed = {**IMAGE, "outcome": "skipped", "failure_class": "rate_limit", "message": "429"}
    final = status(run(ending, {"warmed": 1, "skipped": 2}, stopped_upstreams=["registry-1.docker.io"]), [failed])
    with server_answering([final]) as server:
        result = run_cli(["--endpoint", server.url, "warm", "base", "--wait"])
    assert result.code == 6, result.output
    assert f"error: warm run r-2 {ending}: 1 warmed, 0 fresh, 2 skipped, 0 failed" in result.stderr
    assert "rate_limit" in result.stdout
    assert "stopped upstreams: registry-1.docker.io" in result.stdout


def test_warm_wait_gives_up_at_its_timeout_with_exit_6() -> None:
    ticks = iter(range(0, 10_000, 10))
    with server_answering([status(QUEUED_RUN)]) as server:
        result = run_cli(
            ["--endpoint", server.url, "warm", "base", "--wait", "--timeout", "25"], clock=lambda: float(next(ticks))
        )
    assert result.code == 6, result.output
    assert "error: warm run r-2 did not finish within 25 s (last status: queued)" in result.stderr


def test_warm_wait_json_prints_the_final_status() -> None:
    final = status(run("succeeded", {"warmed": 3}), [IMAGE])
    with server_answering([final]) as server:
        result = run_cli(["--endpoint", server.url, "warm", "base", "--wait", "-o", "json"])
    assert result.code == 0, result.output
    assert json.loads(result.stdout) == final


def test_warm_wait_says_when_the_images_shown_are_the_first_of_more() -> None:
    failed = {**IMAGE, "outcome": "failed", "failure_class": "ours", "message": "lost: no outcome by ..."}
    final = status(
        run("partial", {"warmed": 600, "failed": 1}, total=601), [failed], images_total=601, images_truncated=True
    )
    with server_answering([final]) as server:
        result = run_cli(["--endpoint", server.url, "warm", "base", "--wait"])
    assert result.code == 6, result.output
    assert "Images (1 of 601: failed and skipped first):" in result.stdout
    assert "lost: no outcome by" in result.stdout


def test_warm_of_an_unknown_set_exits_4() -> None:
    def respond(_: Recorded) -> Reply:
        return Reply(404, {"code": "NotFound", "message": "no warm-set named 'nope'", "details": []})

    with recording_server(respond) as server:
        result = run_cli(["--endpoint", server.url, "warm", "nope", "--wait"])
    assert result.code == 4, result.output
    assert "no warm-set named 'nope'" in result.stderr


def test_status_shows_warm_sets_beside_rules() -> None:
    body = {
        "rules": [],
        "runs": [],
        "warm_sets": [
            {"warm_set": "base", "run": run("partial", {"warmed": 2, "skipped": 1})},
            {"warm_set": "nightly", "run": None},
        ],
    }
    with recording_server(lambda _: Reply(200, body)) as server:
        result = run_cli(["--endpoint", server.url, "status"])
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("Warm sets:")
    assert lines[start + 1].split() == [
        "WARM",
        "SET",
        "LAST",
        "RUN",
        "TRIGGER",
        "WARMED",
        "FRESH",
        "SKIPPED",
        "FAILED",
        "FINISHED",
    ]
    assert [line.split() for line in lines[start + 2 :] if line.strip()] == [
        ["base", "partial", "api", "2", "0", "1", "0", "2026-11-29T12:05:00Z"],
        ["nightly", "never", "-", "-", "-", "-", "-", "-"],
    ]

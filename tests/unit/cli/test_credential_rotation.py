"""``ecrcache credentials status NAME`` with the credential's ``health`` block (as the API reports it once
credentials are checked), and ``rotate --wait`` ending rolled back, against a recording HTTP server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.cli.support import Recorded, Reply, recording_server, run_cli

pytestmark = pytest.mark.unit

HEALTH = {
    "state": "Expiring",
    "checked_at": "2026-12-04T06:00:00Z",
    "message": "the token expires in 5 days",
    "evidence": None,
    "expires_at": "2026-12-09",
    "days_to_expiry": 5,
}
ROTATION: dict[str, Any] = {
    "credential": "hub",
    "rotation_id": "0d9c3f0e-0000-4000-8000-000000000001",
    "state": "rolled_back",
    "started_at": "2026-12-04T10:00:00Z",
    "updated_at": "2026-12-04T10:00:09Z",
    "finished_at": "2026-12-04T10:00:09Z",
    "promoted_at": "2026-12-04T10:00:08Z",
    "requested_by": "arn:aws:iam::123456789012:user/alice",
    "message": "rolled back: AWSCURRENT is the previous version again; ECR did not validate docker-hub (us-east-1)",
    "steps": {
        "createSecret": {"status": "succeeded", "at": "2026-12-04T10:00:01Z", "message": "copied"},
        "testSecret": {"status": "succeeded", "at": "2026-12-04T10:00:05Z", "message": "signed in"},
        "finishSecret": {"status": "failed", "at": "2026-12-04T10:00:09Z", "message": "rolled back"},
    },
}


def api(health: dict[str, Any] | None) -> Any:
    def respond(request: Recorded) -> Reply:
        if request.method == "POST":
            return Reply(202, {**ROTATION, "state": "in_progress", "steps": {}, "finished_at": None})
        if request.path.endswith("/rotations"):
            return Reply(200, {"items": [ROTATION]})
        if "/rotations/" in request.path:
            return Reply(200, ROTATION)
        body = {"name": "hub", "spec": {"upstream_kind": "docker-hub", "username": "ci"}}
        return Reply(200, {**body, **({"health": health} if health else {})})

    return respond


def test_status_prints_the_health_block_and_the_rotations() -> None:
    with recording_server(api(HEALTH)) as server:
        result = run_cli(["--endpoint", server.url, "credentials", "status", "hub"])
        asked = [r.target for r in server.requests]
    assert result.code == 0, result.output
    for text in ("Expiring", "the token expires in 5 days", "2026-12-09", "rolled_back", ROTATION["rotation_id"]):
        assert text in result.stdout
    assert "/v1/credentials/hub/rotations?limit=5" in asked


def test_status_as_json_carries_health_and_rotations() -> None:
    with recording_server(api(HEALTH)) as server:
        result = run_cli(["--endpoint", server.url, "credentials", "status", "hub", "-o", "json"])
    assert json.loads(result.stdout) == {"credential": "hub", "health": HEALTH, "rotations": [ROTATION]}


def test_status_without_a_health_block_says_so() -> None:
    with recording_server(api(None)) as server:
        result = run_cli(["--endpoint", server.url, "credentials", "status", "hub"])
    assert result.code == 0
    assert "not reported" in result.stdout


def test_rotate_wait_ending_rolled_back_exits_6_with_the_message_and_each_step() -> None:
    with recording_server(api(None)) as server:
        result = run_cli(
            ["--endpoint", server.url, "credentials", "rotate", "hub", "--token-stdin", "--wait"], input="new-token"
        )
        posted = next(r for r in server.requests if r.method == "POST")
    assert result.code == 6, result.output
    assert posted.json() == {"token": "new-token"}
    assert "rolled back: AWSCURRENT is the previous version again" in result.stderr
    for step in ("createSecret", "testSecret", "finishSecret"):
        assert step in result.stdout
    assert "new-token" not in result.output

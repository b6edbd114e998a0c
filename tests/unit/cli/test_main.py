"""The command line itself: help, version, usage errors, ``local`` delegation, and where tokens may come from."""

from __future__ import annotations

import importlib
import io
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import ecrcache
from ecrcache_cli import main as cli_main
from ecrcache_cli.commands import apply, credentials
from ecrcache_cli.output import EXIT_CODES_HELP
from tests.unit.cli.support import Recorded, Reply, recording_server, run_cli

pytestmark = pytest.mark.unit

TOKEN = "ghp_cli_unit_token_0001"


def test_help_lists_commands_and_exit_codes() -> None:
    result = run_cli(["--help"])
    assert result.code == 0
    for command in ("apply", "plan", "get", "delete", "status", "history", "reconcile", "export", "import"):
        assert f"  {command} " in result.stdout
    assert "credentials" in result.stdout and "local" in result.stdout
    for line in EXIT_CODES_HELP.splitlines()[1:]:
        assert line.strip() in result.stdout


def test_version() -> None:
    result = run_cli(["--version"])
    assert (result.code, result.stdout) == (0, f"ecrcache {ecrcache.__version__}\n")


def test_main_returns_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["ecrcache", "--version"])
    assert cli_main.main() == 0
    assert cli_main.main(["--version"]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["apply"],
        ["get", "things"],
        ["plan", "--bogus"],
        ["history", "--limit", "0"],
        ["export", "-o", "table"],
        ["credentials", "set", "x", "--token", TOKEN],
        ["credentials", "set", "x", TOKEN],
    ],
)
def test_usage_errors_exit_64(argv: list[str]) -> None:
    result = run_cli(argv)
    assert result.code == 64, result.output
    assert result.stdout == "" or argv == []


def test_tokens_are_never_accepted_on_the_command_line() -> None:
    # GIVEN the credentials set command
    result = run_cli(["credentials", "set", "--help"])
    # THEN no option takes a token value: only --token-stdin (a flag) mentions it
    options = [line.split()[0] for line in result.stdout.splitlines() if line.strip().startswith("--")]
    assert "--token-stdin" in options
    assert not [o for o in options if "token" in o and o != "--token-stdin"]


def credential_server(existing: bool) -> Any:
    def respond(request: Recorded) -> Reply:
        if request.method == "GET":
            if not existing:
                return Reply(404, {"code": "NotFound", "message": "no credential named 'gh'", "details": []})
            spec = {
                "upstream_kind": "github-container-registry",
                "username": "octo",
                "expires_at": "2027-01-01",
                "rotation": {"strategy": "manual", "schedule": None, "minting_secret_arn": None},
                "description": "kept",
            }
            return Reply(200, {"name": "gh", "version": 3, "spec": spec}, {"ETag": '"3"'})
        return Reply(200 if existing else 201, {"name": "gh", "version": 4, "secret_name": "ecr-pullthroughcache/gh"})

    return recording_server(respond)


@pytest.mark.parametrize(
    ("stdin", "sent"), [(TOKEN + "\n", TOKEN), (TOKEN + "\r\n", TOKEN), (TOKEN + "\n\n", TOKEN + "\n")]
)
def test_credentials_set_update_sends_if_match_keeps_fields_and_strips_one_newline(stdin: str, sent: str) -> None:
    with credential_server(existing=True) as server:
        result = run_cli(
            ["--endpoint", server.url, "credentials", "set", "gh", "--token-stdin", "--expires-at", "none"], input=stdin
        )
    assert result.code == 0, result.output
    put = server.requests[-1]
    assert (put.method, put.target, put.header("If-Match"), put.header("If-None-Match")) == (
        "PUT",
        "/v1/credentials/gh",
        '"3"',
        None,
    )
    assert put.json() == {
        "upstream_kind": "github-container-registry",
        "username": "octo",
        "expires_at": None,
        "rotation": {"strategy": "manual", "schedule": None, "minting_secret_arn": None},
        "description": "kept",
        "token": sent,
    }
    assert TOKEN not in result.output


def test_credentials_set_create_sends_if_none_match_and_rotation_fields() -> None:
    with credential_server(existing=False) as server:
        result = run_cli(
            [
                "--endpoint",
                server.url,
                "credentials",
                "set",
                "gh",
                "--upstream",
                "docker-hub",
                "--username",
                "ci",
                "--rotation-strategy",
                "dockerhub-pat",
                "--rotation-schedule",
                "rate(30 days)",
                "--minting-secret-arn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:dh-admin-AbCdEf",
                "--description",
                "ci bot",
                "--token-stdin",
                "-o",
                "json",
            ],
            input=TOKEN,
        )
    assert result.code == 0, result.output
    put = server.requests[-1]
    assert put.header("If-None-Match") == "*" and put.header("If-Match") is None
    assert put.json() == {
        "upstream_kind": "docker-hub",
        "username": "ci",
        "description": "ci bot",
        "rotation": {
            "strategy": "dockerhub-pat",
            "schedule": "rate(30 days)",
            "minting_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dh-admin-AbCdEf",
        },
        "token": TOKEN,
    }
    assert TOKEN not in result.output


def test_credentials_set_without_token_stdin_changes_metadata_only() -> None:
    with credential_server(existing=True) as server:
        result = run_cli(["--endpoint", server.url, "credentials", "set", "gh", "--username", "other"])
    assert result.code == 0, result.output
    body = server.requests[-1].json()
    assert "token" not in body and body["username"] == "other"
    assert result.stdout == 'Updated credential "gh" (version 4, secret ecr-pullthroughcache/gh).\n'


def test_local_delegates_every_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []
    fake = types.ModuleType("devstack.local.supervisor")

    def fake_main(argv: list[str]) -> int:
        received.append(argv)
        return 3

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "devstack.local.supervisor", fake)
    result = run_cli(["local", "--port", "3001", "--help", "-v", "extra"])
    assert result.code == 3
    assert received == [["--port", "3001", "--help", "-v", "extra"]]


def test_local_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str, package: str | None = None) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'moto'")

    monkeypatch.setattr(importlib, "import_module", missing)
    result = run_cli(["local"])
    assert result.code == 1
    assert result.stderr.splitlines()[0] == (
        "ecrcache local needs the local extra (the development world in devstack/): "
        "from an ecrcache checkout, pip install -e ./devstack -e '.[cli,local]' (or make setup)"
    )


def test_unexpected_errors_exit_1_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(apply, "load", broken)
    result = run_cli(["--endpoint", "http://127.0.0.1:9", "apply", "-f", str(tmp_path)])
    assert result.code == 1
    assert result.stderr == "error: unexpected RuntimeError: boom\n"


def test_get_history_and_status_tables_from_a_scripted_api() -> None:
    def respond(request: Recorded) -> Reply:
        if request.path == "/v1/history":
            item = {"at": "2026-06-01T12:00:00Z", "kind": "rule", "name": "quay", "action": "create", "version": 1}
            return Reply(200, {"items": [{**item, "revision": 1, "by": "arn:aws:iam::1:user/a"}], "next_token": None})
        return Reply(200, {"items": []})

    with recording_server(respond) as server:
        history = run_cli(["--endpoint", server.url, "history", "--kind", "warm_set", "--name", "w", "--limit", "5"])
    assert history.code == 0, history.output
    assert server.requests[0].target == "/v1/history?kind=warm-set&name=w&limit=5"
    assert history.stdout.splitlines()[1].split() == [
        "2026-06-01T12:00:00Z",
        "rule",
        "quay",
        "create",
        "1",
        "1",
        "arn:aws:iam::1:user/a",
    ]


def test_history_of_a_rule_strips_a_trailing_slash() -> None:
    with recording_server(lambda _: Reply(200, {"items": [], "next_token": None})) as server:
        rule = run_cli(["--endpoint", server.url, "history", "--kind", "rule", "--name", "team/quay/"])
        other = run_cli(["--endpoint", server.url, "history", "--kind", "credential", "--name", "gh/"])
    assert rule.code == 0 and other.code == 0, rule.output + other.output
    assert server.requests[0].target == "/v1/history?kind=rule&name=team%2Fquay&limit=50"
    # only a rule prefix is normalised
    assert server.requests[1].target == "/v1/history?kind=credential&name=gh%2F&limit=50"


@pytest.fixture
def no_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    def prompt() -> str:
        raise AssertionError("the token was asked for before the command could succeed")

    monkeypatch.setattr(credentials, "read_token", prompt)


def test_credentials_set_without_an_endpoint_fails_before_asking_for_the_token(no_prompt: None) -> None:
    result = run_cli(["credentials", "set", "gh", "--token-stdin"], env={"ECRCACHE_ENDPOINT": None})
    assert result.code == 64, result.output
    assert "no API endpoint" in result.stderr


def test_credentials_set_of_a_new_credential_without_its_kind_fails_before_asking_for_the_token(
    no_prompt: None,
) -> None:
    with credential_server(existing=False) as server:
        result = run_cli(["--endpoint", server.url, "credentials", "set", "gh", "--token-stdin"])
    assert result.code == 64, result.output
    assert "--upstream and --username required" in result.stderr
    assert [r.method for r in server.requests] == ["GET"]


def test_export_to_a_closed_stdout_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    errors = io.StringIO()
    monkeypatch.setattr("sys.stderr", errors)
    with recording_server(lambda _: Reply(200, "version: 1\n", {"ETag": '"2"'})) as server:
        code = cli_main.run(["--endpoint", server.url, "export"])
    assert code == 0
    assert errors.getvalue() == ""


def test_plan_shows_notes_apart_from_blocked_rules() -> None:
    # GIVEN a plan whose only rule is a ROOT rule: planned, with a note (not a block)
    note = {"region": "us-east-1", "prefix": "ROOT", "message": "existing repositories are not patched"}
    plan = {"actions": [], "unmanaged": [], "blocked": [], "notes": [note]}
    with recording_server(lambda request: Reply(200, plan)) as server:
        # WHEN planned, asking for the detailed exit code
        result = run_cli(["--endpoint", server.url, "plan", "--detailed-exitcode"])
    # THEN nothing is pending (exit 0), the note is shown under Notes, and nothing is called Blocked
    assert result.code == 0, result.output
    assert "Notes:" in result.stdout and "existing repositories are not patched" in result.stdout
    assert "Blocked" not in result.stdout


def test_plan_shows_replica_actions_for_the_credential_and_waiting_rules_apart_from_blocked_ones() -> None:
    # GIVEN a plan that replicates a secret to eu-west-1, a rule there waiting for it, and one blocked
    replicate = {
        "kind": "replicate_secret",
        "region": "eu-west-1",
        "target": "ecr-pullthroughcache/hub",
        "rule_prefix": "",
        "reason": "rules using credential 'hub' name eu-west-1",
    }
    waiting = {"region": "eu-west-1", "prefix": "docker-hub", "reason": "waiting for the replica", "pending": True}
    blocked = {"region": "us-east-1", "prefix": "ghcr", "reason": "not ecrcache's", "pending": False}
    plan = {"actions": [replicate], "unmanaged": [], "blocked": [waiting, blocked], "notes": []}
    with recording_server(lambda request: Reply(200, plan)) as server:
        result = run_cli(["--endpoint", server.url, "plan", "--detailed-exitcode"])
    # THEN the action is pending (exit 2), for the credential's rules, and the waiting rule is not called Blocked
    assert result.code == 2, result.output
    [row] = [line for line in result.stdout.splitlines() if line.startswith("replicate_secret")]
    assert "(credential)" in row and "(registry)" not in row
    blocked_part, waiting_part = result.stdout.split("Waiting (")
    assert "ghcr" in blocked_part and "docker-hub" not in blocked_part
    assert "docker-hub" in waiting_part and "waiting for the replica" in waiting_part


def test_status_shows_each_regions_event_forwarder_and_why_it_does_not_forward() -> None:
    # GIVEN a status with a forwarder that EventBridge refused to make in eu-west-1
    condition = {
        "type": "Synced",
        "status": False,
        "reason": "AccessDeniedException",
        "message": "EventBridge PutRule in eu-west-1 failed with AccessDeniedException",
        "last_transition": "2026-06-01T12:00:00Z",
    }
    forwarder = {"name": "ecrcache-fwd-x", "conditions": [condition], "last_reconciled_at": "2026-06-01T12:00:00Z"}
    body = {"rules": [], "runs": [], "warm_sets": [], "forwarders": [{"region": "eu-west-1", "status": forwarder}]}
    with recording_server(lambda _: Reply(200, body)) as server:
        result = run_cli(["--endpoint", server.url, "status", "--runs", "0"])
    # THEN the table names the Region, the rule, that it is not synced and why
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Event forwarders"))
    row = lines[header + 2].split()
    assert row[:4] == ["eu-west-1", "ecrcache-fwd-x", "no", "AccessDeniedException"]


def test_status_and_reconcile_show_a_fanned_out_runs_shards() -> None:
    # GIVEN a deep run still waiting for its shards (README "Deep resync at scale") and a fast run that did not fan out
    deep = {
        "run_id": "run-deep",
        "trigger": "schedule",
        "status": "running",
        "scope": "all",
        "started_at": "2026-06-01T03:17:00Z",
        "summary": {},
        "errors": [],
        "shards": {"total": 200, "done": 197, "failed": 1, "retrying": 2},
    }
    fast = {**deep, "run_id": "run-fast", "status": "succeeded", "shards": None}
    body = {"rules": [], "runs": [deep, fast], "warm_sets": [], "forwarders": []}

    def respond(request: Recorded) -> Reply:
        if request.path == "/v1/reconcile":
            return Reply(202, {"run_id": "run-deep", "location": "/v1/runs/run-deep"})
        if request.path == "/v1/runs/run-deep":
            return Reply(200, {**deep, "status": "partial", "finished_at": "2026-06-01T04:02:00Z"})
        return Reply(200, body)

    with recording_server(respond) as server:
        status = run_cli(["--endpoint", server.url, "status"])
        reconcile = run_cli(["--endpoint", server.url, "reconcile", "--deep"])
    # THEN the runs table counts the deep run's shards, and shows none for the other
    assert status.code == 0, status.output
    lines = status.stdout.splitlines()
    header = next(line for line in lines if line.startswith("RUN "))
    assert header.split()[-2:] == ["SHARDS", "ERRORS"]
    row = next(line for line in lines if line.startswith("run-deep"))
    assert "197/200 done, 1 failed, 2 retrying" in row
    assert "done" not in next(line for line in lines if line.startswith("run-fast"))
    # AND the run waited for says so too
    assert "shards:   197/200 done, 1 failed, 2 retrying" in reconcile.stdout

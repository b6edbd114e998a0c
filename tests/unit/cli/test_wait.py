"""Waiting for convergence (``apply --wait``) and for a run (``reconcile --wait``), on scripted API answers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from ecrcache_cli.client import Api, Response
from ecrcache_cli.main import run
from ecrcache_cli.output import ApiError, Printer
from ecrcache_cli.wait import Convergence, Waiter, convergence
from tests.unit.cli.support import Recorded, Reply, recording_server, run_cli

pytestmark = pytest.mark.unit

SINCE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BEFORE = (SINCE - timedelta(minutes=5)).isoformat()
AFTER = (SINCE + timedelta(seconds=5)).isoformat()


def condition(kind: str, status: bool, reason: str = "Applied", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "last_transition": BEFORE}


def record(prefix: str, region: str = "us-east-1", *conditions: dict[str, Any], at: str = AFTER) -> dict[str, Any]:
    return {"prefix": prefix, "region": region, "status": {"conditions": list(conditions), "last_reconciled_at": at}}


def action(target: str, kind: str = "create_rule") -> dict[str, Any]:
    return {"kind": kind, "target": target, "region": "us-east-1", "reason": "missing", "rule_prefix": target}


SYNCED = condition("Synced", True)
NOT_SYNCED = condition("Synced", False, "Pending", "waiting")
TERMINAL = condition("Terminal", True, "AccessDenied", "the role cannot create rules")


# -- convergence (pure) --------------------------------------------------------------------------------


def test_converged_when_no_actions_and_every_rule_synced() -> None:
    status = {"rules": [record("quay", "us-east-1", SYNCED), record("k8s", "us-east-1", SYNCED)]}
    state = convergence({"actions": []}, status, {"quay": (), "k8s": ()}, changed=set(), since=SINCE)
    assert state == Convergence(pending_actions=0, rules_total=2, rules_synced=2)
    assert state.done


def test_pending_actions_or_unsynced_rules_are_not_converged() -> None:
    status = {"rules": [record("quay", "us-east-1", SYNCED)]}
    state = convergence(
        {"actions": [action("k8s"), action("k8s", "create_template")]},
        status,
        {"quay": (), "k8s": ()},
        changed={"k8s"},
        since=SINCE,
    )
    assert not state.done
    assert state.describe() == "waiting for convergence: 2 actions pending, 1/2 rules synced"
    assert state.not_synced == ("k8s: not reconciled yet",)
    assert state.actions[0] == "create_rule k8s (us-east-1): missing"


def test_a_rule_with_regions_needs_synced_in_each_of_them() -> None:
    status = {"rules": [record("quay", "us-east-1", SYNCED), record("quay", "eu-west-1", NOT_SYNCED)]}
    both = convergence({}, status, {"quay": ("us-east-1", "eu-west-1")}, changed=set(), since=SINCE)
    one = convergence({}, status, {"quay": ("us-east-1",)}, changed=set(), since=SINCE)
    missing = convergence({}, status, {"quay": ("us-east-1", "ap-south-1")}, changed=set(), since=SINCE)
    assert (both.rules_synced, one.rules_synced, missing.rules_synced) == (0, 1, 0)
    assert both.not_synced == ("quay: Pending: waiting",)


def observed(found: dict[str, Any], revision: int) -> dict[str, Any]:
    found["status"]["observed_revision"] = revision
    return found


def test_a_rule_without_regions_needs_every_record_synced() -> None:
    # without a revision (or a server that does not report observed_revision): every record counts
    status = {"rules": [record("quay", "us-east-1", SYNCED), record("quay", "eu-west-1", NOT_SYNCED)]}
    assert convergence({}, status, {"quay": ()}, changed=set(), since=SINCE).rules_synced == 0
    assert convergence({}, status, {"quay": ()}, changed=set(), since=SINCE, revision=7).rules_synced == 0
    # with a revision: every record that describes it must be synced
    current = {
        "rules": [
            observed(record("quay", "us-east-1", SYNCED), 7),
            observed(record("quay", "eu-west-1", NOT_SYNCED), 7),
        ]
    }
    state = convergence({}, current, {"quay": ()}, changed=set(), since=SINCE, revision=7)
    assert state.rules_synced == 0
    assert state.not_synced == ("quay: Pending: waiting",)


def test_a_rule_without_regions_ignores_stale_records_of_regions_it_no_longer_uses() -> None:
    # GIVEN a rule that once also ran in eu-west-1: that record is never updated again
    status = {
        "rules": [
            observed(record("quay", "us-east-1", SYNCED), 7),
            observed(record("quay", "eu-west-1", NOT_SYNCED), 3),
        ]
    }
    # THEN only the record describing the applied revision counts: converged
    assert convergence({}, status, {"quay": ()}, changed={"quay"}, since=SINCE, revision=7).rules_synced == 1
    # but at least one record must describe the revision
    stale = {"rules": [observed(record("quay", "us-east-1", SYNCED), 6)]}
    state = convergence({}, stale, {"quay": ()}, changed={"quay"}, since=SINCE, revision=7)
    assert state.rules_synced == 0
    assert state.not_synced == ("quay: not reconciled yet",)


def test_terminal_stops_the_wait_unless_it_predates_a_change_to_the_rule() -> None:
    fresh = {"rules": [record("quay", "us-east-1", NOT_SYNCED, TERMINAL, at=AFTER)]}
    stale = {"rules": [record("quay", "us-east-1", NOT_SYNCED, TERMINAL, at=BEFORE)]}
    expected = ("quay (us-east-1): AccessDenied: the role cannot create rules",)
    assert convergence({}, fresh, {"quay": ()}, changed={"quay"}, since=SINCE).terminal == expected
    # reconciled before this apply changed the rule: the new spec has not been tried yet
    assert convergence({}, stale, {"quay": ()}, changed={"quay"}, since=SINCE).terminal == ()
    # the apply did not change the rule: the old verdict stands
    assert convergence({}, stale, {"quay": ()}, changed=set(), since=SINCE).terminal == expected


def test_only_records_of_the_applied_revision_count() -> None:
    def at(revision: int, *conditions: dict[str, Any]) -> dict[str, Any]:
        found = record("quay", "us-east-1", *conditions, at=BEFORE)
        found["status"]["observed_revision"] = revision
        return {"rules": [found]}

    # a Synced record of an older revision is not this apply's verdict yet
    assert convergence({}, at(6, SYNCED), {"quay": ()}, changed={"quay"}, since=SINCE, revision=7).rules_synced == 0
    assert convergence({}, at(7, SYNCED), {"quay": ()}, changed={"quay"}, since=SINCE, revision=7).rules_synced == 1
    # a Terminal record counts once it describes the apply, whatever the clocks say
    expected = ("quay (us-east-1): AccessDenied: the role cannot create rules",)
    old = at(6, NOT_SYNCED, TERMINAL)
    new = at(8, NOT_SYNCED, TERMINAL)
    assert convergence({}, old, {"quay": ()}, changed={"quay"}, since=SINCE, revision=7).terminal == ()
    assert convergence({}, new, {"quay": ()}, changed={"quay"}, since=SINCE, revision=7).terminal == expected


# -- the waiter on a fake API ---------------------------------------------------------------------------


@dataclass
class FakeApi(Api):
    """Answers GET plan / status / runs/<id> from scripted sequences (the last answer repeats)."""

    plans: list[Any] = field(default_factory=list)
    statuses: list[Any] = field(default_factory=list)
    runs: list[tuple[int, Mapping[str, Any] | None]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        allow: Iterable[int] = (),
    ) -> Response:
        self.calls.append(f"{method} {path}")
        body: Mapping[str, Any] | None
        if path == "plan":
            status, body = 200, self._next(self.plans)
        elif path == "status":
            status, body = 200, self._next(self.statuses)
        else:
            status, body = self._next(self.runs)
        if status >= 400 and status not in set(allow):
            raise ApiError(status, "NotFound", "no run")
        return Response(status, CaseInsensitiveDict(), json.dumps(body).encode() if body is not None else b"")

    @staticmethod
    def _next[T](sequence: list[T]) -> T:
        return sequence.pop(0) if len(sequence) > 1 else sequence[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def waiter(api: FakeApi, clock: FakeClock, fmt: str = "table") -> tuple[Waiter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    printer = Printer(fmt, stdout=out, stderr=err, tty=False, err_tty=False)  # type: ignore[arg-type]
    return Waiter(api, printer, sleep=clock.sleep, clock=clock, interval=1.0), out, err


def test_waiter_polls_until_converged_and_prints_progress_only_on_change() -> None:
    # GIVEN a controller that needs three polls: 2 actions, 2 actions, then done
    api = FakeApi(
        plans=[{"actions": [action("quay"), action("quay", "create_template")]}] * 2 + [{"actions": []}],
        statuses=[{"rules": []}, {"rules": []}, {"rules": [record("quay", "us-east-1", SYNCED)]}],
    )
    clock = FakeClock()
    wait, out, err = waiter(api, clock)
    # WHEN it waits
    code = wait.convergence({"quay": ()}, changed={"quay"}, since=SINCE, timeout=60)
    # THEN it exits 0 after two one-second sleeps; the progress line appears once per change
    assert code == 0
    assert clock.sleeps == [1.0, 1.0]
    assert err.getvalue().splitlines() == [
        "waiting for convergence",
        "waiting for convergence: 2 actions pending, 0/1 rules synced",
    ]
    assert out.getvalue() == "Converged: no actions pending, 1/1 rules synced.\n"


def test_waiter_stops_at_a_terminal_rule_with_exit_6() -> None:
    api = FakeApi(plans=[{"actions": []}], statuses=[{"rules": [record("quay", "us-east-1", NOT_SYNCED, TERMINAL)]}])
    wait, _, err = waiter(api, FakeClock())
    assert wait.convergence({"quay": ()}, changed=set(), since=SINCE, timeout=60) == 6
    assert "error: a rule cannot converge (Terminal):" in err.getvalue()
    assert "  - quay (us-east-1): AccessDenied: the role cannot create rules" in err.getvalue()


def test_waiter_times_out_with_exit_6_and_says_what_is_pending() -> None:
    api = FakeApi(
        plans=[{"actions": [action("quay")]}], statuses=[{"rules": [record("quay", "us-east-1", NOT_SYNCED)]}]
    )
    clock = FakeClock()
    wait, _, err = waiter(api, clock)
    assert wait.convergence({"quay": ()}, changed={"quay"}, since=SINCE, timeout=2.5) == 6
    assert clock.sleeps == [1.0, 1.0, 0.5]
    lines = err.getvalue().splitlines()
    assert "error: not converged after 2.5 s (1 action pending, 0/1 rules synced)" in lines
    assert "  - pending: create_rule quay (us-east-1): missing" in lines
    assert "  - not synced: quay: Pending: waiting" in lines


def test_run_waiter_keeps_polling_through_404_until_the_run_ends() -> None:
    # GIVEN a run not recorded yet, then running, then succeeded
    running = {"run_id": "r1", "status": "running"}
    api = FakeApi(runs=[(404, None), (404, None), (200, running), (200, {"run_id": "r1", "status": "succeeded"})])
    clock = FakeClock()
    wait, _, err = waiter(api, clock)
    code, run = wait.run("r1", timeout=60)
    assert (code, run) == (0, {"run_id": "r1", "status": "succeeded"})
    assert api.calls == ["GET runs/r1"] * 4
    assert err.getvalue().splitlines() == ["waiting for run r1: queued", "waiting for run r1: running"]


@pytest.mark.parametrize("final", ["failed", "partial"])
def test_run_waiter_exit_6_for_failed_and_partial(final: str) -> None:
    api = FakeApi(runs=[(200, {"run_id": "r1", "status": final})])
    code, _ = waiter(api, FakeClock())[0].run("r1", timeout=60)
    assert code == 6


def test_run_waiter_times_out() -> None:
    api = FakeApi(runs=[(404, None)])
    wait, _, err = waiter(api, FakeClock())
    code, run = wait.run("r1", timeout=3)
    assert (code, run) == (6, None)
    assert "error: run r1 did not finish within 3 s (last status: queued)" in err.getvalue()


# -- the whole CLI against a scripted server -------------------------------------------------------------

APPLIED = {
    "dry_run": False,
    "revision": 4,
    "changes": [
        {"kind": "rule", "name": "quay", "action": "update", "fields": ["description"], "secret_changed": False}
    ],
}


def test_apply_wait_reports_a_terminal_rule_and_exits_6(tmp_path: Path) -> None:
    # GIVEN an API that accepts the document, then shows the rule Terminal after a reconcile
    def respond(request: Recorded) -> Reply:
        if request.method == "PUT":
            return Reply(200, APPLIED)
        if request.path == "/v1/plan":
            return Reply(200, {"actions": [], "unmanaged": [], "blocked": []})
        now = datetime.now(UTC) + timedelta(minutes=1)
        return Reply(200, {"rules": [record("quay", "us-east-1", NOT_SYNCED, TERMINAL, at=now.isoformat())]})

    document = tmp_path / "r.yaml"
    document.write_text("version: 1\nrules:\n  quay:\n    upstream_kind: quay\n    description: x\n")
    with recording_server(respond) as server:
        result = run_cli(["--endpoint", server.url, "apply", "-f", str(document)])
    # THEN the change is printed, then the Terminal reason, exit 6
    assert result.code == 6, result.output
    assert "rule  quay  update  description" in result.stdout
    assert "  - quay (us-east-1): AccessDenied: the role cannot create rules" in result.stderr
    assert [r.target for r in server.requests] == ["/v1/desired-state", "/v1/plan", "/v1/status?runs=0"]


def test_apply_dry_run_never_waits(tmp_path: Path) -> None:
    document = tmp_path / "r.yaml"
    document.write_text("version: 1\nrules:\n  quay:\n    upstream_kind: quay\n")
    with recording_server(lambda _: Reply(200, {**APPLIED, "dry_run": True})) as server:
        result = run_cli(["--endpoint", server.url, "apply", "-f", str(document), "--dry-run", "--prune"])
    assert result.code == 0, result.output
    assert [r.target for r in server.requests] == ["/v1/desired-state?dryRun=true&prune=true"]
    assert result.stdout.startswith("Dry run: nothing was written.\n")


def test_reconcile_wait_through_the_cli_json_output(tmp_path: Path) -> None:
    runs = iter([Reply(404, {"code": "NotFound", "message": "no run", "details": []})])

    def respond(request: Recorded) -> Reply:
        if request.method == "POST":
            assert request.json() is None
            return Reply(202, {"run_id": "r-9", "status": "queued", "location": "/v1/runs/r-9"})
        return next(runs, Reply(200, {"run_id": "r-9", "status": "succeeded", "summary": {"create_rule": 1}}))

    with recording_server(respond) as server:
        result = run_cli(["--endpoint", server.url, "reconcile", "-o", "json"])
    assert result.code == 0, result.output
    assert '"status": "succeeded"' in result.stdout
    assert "Reconcile queued: run r-9" in result.stderr
    assert [r.target for r in server.requests] == ["/v1/reconcile", "/v1/runs/r-9", "/v1/runs/r-9"]


APPLY_DOC = "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n"


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_apply_prune_with_nothing_defined_is_refused_without_allow_empty(tmp_path: Path, extra: list[str]) -> None:
    document = tmp_path / "empty.yaml"
    document.write_text("version: 1\nrules: {}\n")
    with recording_server(lambda _: Reply(200, {**APPLIED, "changes": []})) as server:
        refused = run_cli(["--endpoint", server.url, "apply", "-f", str(document), "--prune", *extra])
        assert refused.code == 3, refused.output
        assert "would delete everything" in refused.stderr
        assert "--allow-empty" in refused.stderr
        assert server.requests == []
        allowed = run_cli(
            ["--endpoint", server.url, "apply", "-f", str(document), "--prune", "--allow-empty", "--no-wait"]
        )
    assert allowed.code == 0, allowed.output
    assert [r.target for r in server.requests] == ["/v1/desired-state?prune=true&allowEmpty=true"]


def test_apply_prune_with_an_empty_file_names_it_and_sends_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with recording_server() as server:
        result = run_cli(["--endpoint", server.url, "apply", "-f", str(empty), "--prune", "--allow-empty"])
    assert result.code == 3, result.output
    assert f"{empty}: holds no desired-state document" in result.stderr
    assert server.requests == []


def test_apply_if_revision_sends_if_match_and_a_412_is_exit_5(tmp_path: Path) -> None:
    document = tmp_path / "r.yaml"
    document.write_text(APPLY_DOC)
    stale = {"code": "PreconditionFailed", "message": "the desired state is at revision 5, not 4", "details": []}
    with recording_server() as server:
        server.replies = [Reply(200, APPLIED), Reply(412, stale)]
        ok = run_cli(["--endpoint", server.url, "apply", "-f", str(document), "--if-revision", "4", "--no-wait"])
        conflict = run_cli(["--endpoint", server.url, "apply", "-f", str(document), "--if-revision", "4", "--no-wait"])
    assert ok.code == 0, ok.output
    assert [r.header("If-Match") for r in server.requests] == ['"4"', '"4"']
    assert conflict.code == 5, conflict.output
    assert "no longer at revision 4" in conflict.stderr
    assert "export again" in conflict.stderr
    # without the flag, no precondition is sent
    with recording_server(lambda _: Reply(200, APPLIED)) as server:
        run_cli(["--endpoint", server.url, "apply", "-f", str(document), "--no-wait"])
    assert server.requests[0].header("If-Match") is None


class ClosedPipe(io.StringIO):
    """A stdout whose reader left (``ecrcache apply | true``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_apply_with_stdout_closed_still_waits_and_exits_with_its_own_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the PUT succeeds and the rule then converges, but nobody reads stdout
    def respond(request: Recorded) -> Reply:
        if request.method == "PUT":
            return Reply(200, APPLIED)
        if request.path == "/v1/plan":
            return Reply(200, {"actions": []})
        return Reply(200, {"rules": [observed(record("quay", "us-east-1", SYNCED), 4)]})

    document = tmp_path / "r.yaml"
    document.write_text(APPLY_DOC)
    closed = ClosedPipe()
    monkeypatch.setattr("sys.stdout", closed)
    with recording_server(respond) as server:
        code = run(["--endpoint", server.url, "apply", "-f", str(document)], sleep=lambda _: None)
    # THEN the wait still happens and the command's own code (0) is the exit code
    assert code == 0
    assert [r.path for r in server.requests] == ["/v1/desired-state", "/v1/plan", "/v1/status"]

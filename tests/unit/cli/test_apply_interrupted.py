"""Ctrl-C during ``ecrcache apply`` says what is known of the write and how to check (exit 130).

Before: "Aborted." whatever the phase, although the server may have committed the apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from ecrcache_cli.client import Api, EndpointOptions, Response
from ecrcache_cli.output import ExitCode
from tests.unit.cli.support import run_cli

pytestmark = pytest.mark.unit

RULES = "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n"
APPLIED = {"changes": [{"kind": "rule", "name": "quay", "action": "create"}], "dry_run": False, "revision": 4}


class InterruptedApi(Api):
    """A client whose ``interrupt_on`` request (``"PUT desired-state"``, ``"GET plan"``) is hit by Ctrl-C."""

    def __init__(self, interrupt_on: str) -> None:
        self.interrupt_on = interrupt_on
        self.calls: list[str] = []

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
        if f"{method} {path}" == self.interrupt_on:
            raise KeyboardInterrupt
        return Response(200, CaseInsensitiveDict(), json.dumps(APPLIED).encode())


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def test_ctrl_c_while_the_apply_is_in_flight_says_it_may_have_been_applied(rules: Path) -> None:
    # GIVEN Ctrl-C while the PUT is in flight
    api = InterruptedApi("PUT desired-state")
    # WHEN apply runs
    result = run_cli(["--endpoint", "http://127.0.0.1:9/v1", "apply", "-f", str(rules)], client_factory=lambda _: api)
    # THEN exit 130, saying the request was sent and may have been applied, and how to check
    assert result.code == ExitCode.INTERRUPTED
    assert int(ExitCode.INTERRUPTED) == 130
    assert api.calls == ["PUT desired-state"]
    assert "Aborted: interrupted while the apply request was in flight: the server may have applied it" in result.stderr
    assert "ecrcache export" in result.stderr
    assert "ecrcache history" in result.stderr
    assert result.stdout == ""


def test_ctrl_c_during_a_dry_run_says_nothing_was_written(rules: Path) -> None:
    api = InterruptedApi("PUT desired-state")
    result = run_cli(
        ["--endpoint", "http://127.0.0.1:9/v1", "apply", "-f", str(rules), "--dry-run"], client_factory=lambda _: api
    )
    assert result.code == 130
    assert "Aborted: interrupted during a dry run: nothing was written" in result.stderr


def test_ctrl_c_before_the_request_is_sent_says_nothing_was_applied(rules: Path) -> None:
    # GIVEN Ctrl-C before any request (while the client is being set up)
    def interrupted(_: EndpointOptions) -> Any:
        raise KeyboardInterrupt

    result = run_cli(["--endpoint", "http://127.0.0.1:9/v1", "apply", "-f", str(rules)], client_factory=interrupted)
    assert result.code == 130
    assert "Aborted: interrupted before the apply request was sent: nothing was applied" in result.stderr


def test_ctrl_c_while_waiting_says_the_apply_was_committed(rules: Path) -> None:
    # GIVEN the PUT answered (revision 4), then Ctrl-C while waiting for convergence
    api = InterruptedApi("GET plan")
    result = run_cli(["--endpoint", "http://127.0.0.1:9/v1", "apply", "-f", str(rules)], client_factory=lambda _: api)
    # THEN what was applied was printed, and the interruption says it was committed and how to follow it
    assert result.code == 130
    assert "1 change: 1 created. Desired state is at revision 4." in result.stdout
    assert "Aborted: interrupted while waiting for convergence: the apply was committed" in result.stderr
    assert "revision 4" in result.stderr
    assert "ecrcache status" in result.stderr


def test_ctrl_c_in_another_command_is_still_aborted(rules: Path) -> None:
    api = InterruptedApi("GET status")
    result = run_cli(["--endpoint", "http://127.0.0.1:9/v1", "status"], client_factory=lambda _: api)
    assert (result.code, result.stderr.strip().splitlines()[-1]) == (130, "Aborted.")

"""``ecrcache local``'s own logic: finding the template, readable function logs, port checks."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from devstack.local import supervisor
from devstack.local.supervisor import main, port_free, render_log

pytestmark = pytest.mark.unit


def test_powertools_json_logs_are_rendered_as_one_readable_line() -> None:
    line = json.dumps(
        {
            "level": "INFO",
            "location": "reconcile:42",
            "message": "reconcile finished",
            "timestamp": "2026-11-29 16:34:32,123+0000",
            "service": "ecrcache",
            "cold_start": False,
            "function_request_id": "abc",
            "run_id": "r-1",
            "summary": {"create_rule": 5},
        }
    )
    assert render_log(line) == 'INFO    reconcile finished run_id=r-1 summary={"create_rule": 5}'
    assert render_log("plain text") == "plain text"
    assert render_log("{not json") == "{not json"
    assert render_log('{"no": "message"}') == '{"no": "message"}'


def test_the_template_is_taken_from_the_flag_then_the_folder_then_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = supervisor._repo_root() / "template.yaml"
    monkeypatch.chdir(tmp_path)
    assert supervisor._find_template(None) == checkout.resolve()
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    assert supervisor._find_template(None) == (tmp_path / "template.yaml").resolve()
    assert supervisor._find_template(checkout) == checkout.resolve()
    assert supervisor._find_template(tmp_path / "missing.yaml") is None


def test_a_missing_template_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--template", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err


def test_a_non_loopback_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2  # noqa: S104 - the value under test
    assert "loopback" in capsys.readouterr().err


def test_port_free() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)

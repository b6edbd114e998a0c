"""Output: exit codes for HTTP statuses, API error parsing and printing, plain tables, JSON/YAML bodies."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest
import yaml

from ecrcache_cli.output import ApiError, CliError, ExitCode, Printer, cell, exit_code_for_status, render_plain_table

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 3),
        (413, 3),
        (415, 3),
        (422, 3),
        (404, 4),
        (409, 5),
        (412, 5),
        (423, 5),
        (401, 7),
        (403, 7),
        (429, 1),
        (500, 1),
        (502, 1),
        (503, 1),
        (418, 1),
    ],
)
def test_exit_code_for_status(status: int, code: int) -> None:
    assert exit_code_for_status(status) == code


def test_exit_code_values_are_the_documented_ones() -> None:
    assert {e.name: int(e) for e in ExitCode} == {
        "OK": 0,
        "FAILURE": 1,
        "CHANGES_PENDING": 2,
        "INVALID_INPUT": 3,
        "NOT_FOUND": 4,
        "CONFLICT": 5,
        "NOT_CONVERGED": 6,
        "UNREACHABLE": 7,
        "USAGE": 64,
        "INTERRUPTED": 130,
    }


def test_api_error_from_the_api_error_body_prints_message_code_status_and_details() -> None:
    body = {
        "code": "ValidationFailed",
        "message": "lifecycle.rules[0].selection.countUnit: required",
        "details": [
            {"field": "lifecycle.rules[0].selection.countUnit", "message": "required", "type": "missing"},
            {"field": "upstream_kind", "message": "unknown", "type": "enum"},
        ],
    }
    error = ApiError.from_body(422, json.dumps(body))
    assert error.exit_code is ExitCode.INVALID_INPUT
    assert (error.status, error.code) == (422, "ValidationFailed")
    assert error.lines() == [
        "error: lifecycle.rules[0].selection.countUnit: required (ValidationFailed, HTTP 422)",
        "  - lifecycle.rules[0].selection.countUnit: required",
        "  - upstream_kind: unknown",
    ]


def test_api_error_from_api_gateway_bodies_and_non_json() -> None:
    denied = ApiError.from_body(
        403,
        '{"Message": "User: arn:aws:iam::1:user/x is not authorized to perform: execute-api:Invoke"}',
        error_type="AccessDeniedException:http://internal.amazon.com/coral/",
    )
    missing_token = ApiError.from_body(403, '{"message": "Missing Authentication Token"}')
    html = ApiError.from_body(502, "<html>\n<body>Bad   Gateway</body></html>", reason="Bad Gateway")
    empty = ApiError.from_body(504, "", reason="Gateway Timeout")
    assert denied.lines() == [
        "error: User: arn:aws:iam::1:user/x is not authorized to perform: execute-api:Invoke "
        "(AccessDeniedException, HTTP 403)"
    ]
    assert denied.exit_code is ExitCode.UNREACHABLE
    assert missing_token.message == "Missing Authentication Token (HTTP403, HTTP 403)"
    assert html.message == "<html> <body>Bad Gateway</body></html> (HTTP502, HTTP 502)"
    assert empty.message == "Gateway Timeout (HTTP504, HTTP 504)"
    assert html.exit_code is empty.exit_code is ExitCode.FAILURE


def test_cli_error_lines() -> None:
    error = CliError("it broke", ExitCode.CONFLICT, ["one", "two"])
    assert error.lines() == ["error: it broke", "  - one", "  - two"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        ("", "-"),
        (True, "yes"),
        (False, "no"),
        ([], "-"),
        (["a", "b"], "a, b"),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        (date(2027, 1, 2), "2027-01-02"),
        ("two\nlines\there", "two lines here"),
        (3, "3"),
    ],
)
def test_cell(value: object, text: str) -> None:
    assert cell(value) == text


def test_plain_table_is_aligned_and_stable() -> None:
    text = render_plain_table(["name", "synced", "message"], [["docker-hub", True, None], ["q", False, "x y"]])
    assert text.splitlines() == [
        "NAME        SYNCED  MESSAGE",
        "docker-hub  yes     -",
        "q           no      x y",
    ]


def printer(fmt: str = "table", tty: bool = False) -> tuple[Printer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Printer(fmt, stdout=out, stderr=err, tty=tty, err_tty=tty), out, err  # type: ignore[arg-type]


def test_printer_json_and_yaml_bodies_are_the_data() -> None:
    data = {"b": [1, {"c": None}], "a": "ü"}
    as_json, out_json, _ = printer("json")
    as_yaml, out_yaml, _ = printer("yaml")
    as_table, out_table, _ = printer("table")
    assert as_json.body(data) and as_yaml.body(data)
    assert not as_table.body(data)
    assert json.loads(out_json.getvalue()) == data
    assert out_json.getvalue() == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert yaml.safe_load(out_yaml.getvalue()) == data
    assert list(yaml.safe_load(out_yaml.getvalue())) == ["b", "a"]  # the API's key order is kept
    assert out_table.getvalue() == ""


def test_printer_notes_go_to_stderr_when_stdout_carries_data() -> None:
    table, table_out, table_err = printer("table")
    data, data_out, data_err = printer("json")
    table.note("Converged.")
    data.note("Converged.")
    assert (table_out.getvalue(), table_err.getvalue()) == ("Converged.\n", "")
    assert (data_out.getvalue(), data_err.getvalue()) == ("", "Converged.\n")


def test_printer_errors_and_warnings_go_to_stderr() -> None:
    p, out, err = printer()
    p.warn("careful")
    p.error(CliError("bad", details=["x: y"]))
    assert out.getvalue() == ""
    assert err.getvalue() == "warning: careful\nerror: bad\n  - x: y\n"


def test_printer_rich_table_on_a_terminal_keeps_brackets_literal() -> None:
    p, out, _ = printer(tty=True)
    p.table(["field"], [['rules["docker-hub"]'], ["[bold]not markup[/bold]"]])
    text = out.getvalue()
    assert 'rules["docker-hub"]' in text
    assert "[bold]not markup[/bold]" in text
    assert "FIELD" in text


def test_progress_without_a_terminal_prints_a_line_only_when_the_text_changes() -> None:
    p, out, err = printer()
    with p.progress("waiting") as progress:
        for text in ["waiting", "1 pending", "1 pending", "0 pending"]:
            progress.update(text)
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == ["waiting", "1 pending", "0 pending"]


def test_progress_on_a_terminal_uses_a_spinner() -> None:
    p, _, err = printer(tty=True)
    with p.progress("waiting") as progress:
        progress.update("1 pending")
    assert "1 pending\n" not in err.getvalue().splitlines()

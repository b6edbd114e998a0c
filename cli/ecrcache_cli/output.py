"""What the ``ecrcache`` command prints: tables, JSON/YAML bodies, progress, warnings and errors.

Exit codes (the same table is in ``ecrcache --help``):

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     failure: the API answered 5xx, or something unexpected happened
2     ``plan --detailed-exitcode``: the plan has actions (changes pending)
3     invalid input: a desired-state file failed local validation, or the API answered
      400/413/415/422
4     not found (HTTP 404)
5     conflict: HTTP 409, 412 (stale ETag / revision) or 423
6     not converged: ``--wait`` timed out, a rule is Terminal, or a reconcile run failed or was partial
7     cannot reach the API or authenticate: connection error, HTTP 401/403, no AWS credentials,
      stack or stack output not found
64    usage error: bad flags or arguments
====  ==========================================================================================

Output formats (``-o``): ``table`` (default; a rich table on a terminal, plain aligned columns
otherwise, so pipes and logs get a stable rendering), ``json`` (pretty, exactly the API body) and
``yaml``. Errors, warnings and progress go to stderr; the result goes to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import IntEnum
from typing import Any, Literal, TextIO

from rich import box
from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from ecrcache.parsing import dump_yaml

__all__ = [
    "EXIT_CODES_HELP",
    "ApiError",
    "CliError",
    "ExitCode",
    "Interrupted",
    "OutputFormat",
    "Printer",
    "Progress",
    "cell",
    "exit_code_for_status",
    "render_plain_table",
    "silence",
]

OutputFormat = Literal["table", "json", "yaml"]
FORMATS: tuple[OutputFormat, ...] = ("table", "json", "yaml")


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    CHANGES_PENDING = 2
    INVALID_INPUT = 3
    NOT_FOUND = 4
    CONFLICT = 5
    NOT_CONVERGED = 6
    UNREACHABLE = 7
    USAGE = 64
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


EXIT_CODES_HELP = """\b
Exit codes:
  0   success
  1   failure (HTTP 5xx, unexpected error)
  2   plan --detailed-exitcode: changes pending
  3   invalid input (local file validation; HTTP 400/413/415/422)
  4   not found (HTTP 404)
  5   conflict (HTTP 409; 412 stale ETag or revision; 423 locked)
  6   not converged (wait timed out; a Terminal rule; a failed or partial run)
  7   cannot reach the API or authenticate (connection error; HTTP 401/403;
      no credentials; stack or its ApiUrl output not found)
  64  usage error (bad flags or arguments)
  130 interrupted (Ctrl-C); apply says whether its request was sent"""

_STATUS_EXIT: dict[int, ExitCode] = {
    400: ExitCode.INVALID_INPUT,
    401: ExitCode.UNREACHABLE,
    403: ExitCode.UNREACHABLE,
    404: ExitCode.NOT_FOUND,
    409: ExitCode.CONFLICT,
    412: ExitCode.CONFLICT,
    413: ExitCode.INVALID_INPUT,
    415: ExitCode.INVALID_INPUT,
    422: ExitCode.INVALID_INPUT,
    423: ExitCode.CONFLICT,
}


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code for an HTTP error status (any other 4xx/5xx is a plain failure)."""
    return _STATUS_EXIT.get(status, ExitCode.FAILURE)


class CliError(Exception):
    """A failure to report as ``error: <message>`` plus detail lines, ending the command with ``exit_code``."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILURE, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.details = tuple(details)

    def lines(self) -> list[str]:
        return [f"error: {self.message}", *(f"  - {d}" for d in self.details)]


class Interrupted(CliError):
    """Ctrl-C during a command that writes: what is known of the write, and how to check (exit 130)."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message, ExitCode.INTERRUPTED, details)

    def lines(self) -> list[str]:
        return [f"Aborted: {self.message}", *(f"  {d}" for d in self.details)]


class ApiError(CliError):
    """An error answer of the API: ``{"code", "message", "details": [{"field", "message", "type"}]}``."""

    def __init__(
        self, status: int, code: str, message: str, details: Sequence[Mapping[str, Any]] = (), *, method: str = ""
    ) -> None:
        lines = [f"{d.get('field') or 'body'}: {d.get('message') or ''}" for d in details]
        super().__init__(f"{message} ({code}, HTTP {status})", exit_code_for_status(status), lines)
        self.status = status
        self.code = code
        self.api_message = message
        self.field_errors = [dict(d) for d in details]
        self.method = method

    @classmethod
    def from_body(cls, status: int, text: str, *, reason: str = "", error_type: str | None = None) -> ApiError:
        """Parse the API's error body; tolerate API Gateway's own ``{"message"}`` bodies and non-JSON ones."""
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        code = f"HTTP{status}"
        if error_type:  # API Gateway: x-amzn-ErrorType: AccessDeniedException:http://...
            code = error_type.split(":")[0] or code
        message = reason or "request failed"
        details: list[Mapping[str, Any]] = []
        if isinstance(body, dict):
            code = str(body.get("code") or code)
            message = str(body.get("message") or body.get("Message") or message)
            raw = body.get("details")
            if isinstance(raw, list):
                details = [d for d in raw if isinstance(d, dict)]
        elif text.strip():
            message = " ".join(text.split())[:200]
        return cls(status, code, message, details)


# --------------------------------------------------------------------------------------------------
# cells and plain tables


def cell(value: Any) -> str:
    """One table cell: ``-`` for nothing, ``yes``/``no``, lists joined with ``, ``, one line."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return " ".join(str(value).split()) if "\n" in str(value) or "\t" in str(value) else str(value)


def render_plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns separated by two spaces, headers in capitals, no wrapping (stable for pipes and logs)."""
    header = [c.upper() for c in columns]
    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(widths[i]) for i, text in enumerate(r)).rstrip() for r in [header, *body]]
    return "\n".join(lines)


def to_yaml(data: Any) -> str:
    """YAML that ``apply -f`` (YAML 1.2 core) and any YAML 1.1 reader both read back as the same data."""
    return dump_yaml(_plain(data))


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _plain(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data


# --------------------------------------------------------------------------------------------------
# the printer


class Progress:
    """Progress while waiting: a rich spinner on a terminal, else one stderr line per change of text."""

    def __init__(self, printer: Printer) -> None:
        self._printer = printer
        self._last: str | None = None
        self._status: Status | None = None

    def attach(self, status: Status, text: str) -> None:
        """Send updates to a rich spinner (already showing ``text``) instead of stderr lines."""
        self._status = status
        self._last = text

    def update(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self._status is not None:
            self._status.update(text)
        else:
            self._printer.err(text)


class Printer:
    """Writes results to stdout and messages to stderr in the chosen format."""

    def __init__(
        self,
        fmt: OutputFormat = "table",
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        tty: bool | None = None,
        err_tty: bool | None = None,
    ) -> None:
        self.fmt = fmt
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.tty = _isatty(self.stdout) if tty is None else tty
        self.err_tty = _isatty(self.stderr) if err_tty is None else err_tty
        self.stdout_closed = False
        """The reader of stdout left (``ecrcache apply | head``): results are dropped, the command goes on."""

    # -- plain text ---------------------------------------------------------------------------------

    @contextmanager
    def _stdout_guard(self) -> Iterator[None]:
        """Stop printing results once stdout's reader is gone, instead of failing the command."""
        try:
            yield
        except BrokenPipeError:
            self.stdout_closed = True
            silence(self.stdout)

    def write(self, text: str) -> None:
        """``text`` to stdout as is (no newline added)."""
        if self.stdout_closed:
            return
        with self._stdout_guard():
            self.stdout.write(text)
            self.stdout.flush()

    def out(self, text: str = "") -> None:
        self.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def note(self, text: str) -> None:
        """A human message about the result: stdout for tables, stderr when stdout carries JSON/YAML."""
        if self.fmt == "table":
            self.out(text)
        else:
            self.err(text)

    def warn(self, text: str) -> None:
        self.err(f"warning: {text}")

    def error(self, exc: CliError) -> None:
        for line in exc.lines():
            self.err(line)

    # -- data ---------------------------------------------------------------------------------------

    def body(self, data: Any) -> bool:
        """Print ``data`` as JSON or YAML when that format was asked for; ``False`` means print a table."""
        if self.fmt == "json":
            self.out(to_json(data))
            return True
        if self.fmt == "yaml":
            self.out(to_yaml(data).rstrip("\n"))
            return True
        return False

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
        if not self.tty:
            if title:
                self.out(title)
            self.out(render_plain_table(columns, rows))
            return
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, title=title, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column.upper(), overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell(v)) for v in row))
        if self.stdout_closed:
            return
        with self._stdout_guard():
            self._console(self.stdout).print(table)

    def key_values(self, pairs: Sequence[tuple[str, Any]]) -> None:
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            self.out(f"{key + ':':<{width + 1}} {cell(value)}")

    @contextmanager
    def progress(self, text: str) -> Iterator[Progress]:
        reporter = Progress(self)
        if not self.err_tty:
            reporter.update(text)
            yield reporter
            return
        with self._console(self.stderr).status(text) as status:
            reporter.attach(status, text)
            yield reporter

    @staticmethod
    def _console(stream: TextIO) -> Console:
        return Console(file=stream, highlight=False, soft_wrap=False)


def silence(stream: TextIO) -> None:
    """Point a stream whose reader left at /dev/null (as Python's docs on SIGPIPE advise).

    Later writes, and the interpreter's final flush of what is still buffered, then succeed quietly.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

"""Helpers for the CLI tests: run ``ecrcache`` in-process, and a tiny HTTP server that records requests.

:class:`RecordingServer` answers every request with what its ``respond`` callable returns (by
default the next scripted :class:`Reply`) and keeps the request exactly as it arrived: method, the
request target (path and query as sent, percent-encoding untouched), every header and the body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from click.testing import CliRunner

from ecrcache_cli.client import ApiClient, EndpointOptions
from ecrcache_cli.main import run


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    argv: Sequence[str],
    *,
    input: str | None = None,
    env: dict[str, str | None] | None = None,
    client_factory: Callable[[EndpointOptions], Any] | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> CliResult:
    """``ecrcache ARGV`` in-process with captured stdin/stdout/stderr (not a terminal)."""
    kwargs: dict[str, Any] = {}
    if client_factory is not None:
        kwargs["client_factory"] = client_factory
    kwargs["sleep"] = sleep if sleep is not None else (lambda _: None)
    if clock is not None:
        kwargs["clock"] = clock
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        code = run(list(argv), **kwargs)
    return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[int, dict[str, str], bytes]:
        if isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode()
        elif self.body is None:
            data = b""
        else:
            data = json.dumps(self.body).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        return self.status, headers, data


class RecordingServer:
    """An HTTP server on 127.0.0.1 that records requests and replies with ``respond(request)``.

    Every reply closes its connection, so a client's pooled keep-alive connection never holds the
    server up when it stops.
    """

    def __init__(self, respond: Callable[[Recorded], Reply] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.respond = respond or self._next_reply
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, list(self.headers.items()), body)
                server.requests.append(recorded)
                status, headers, data = server.respond(recorded).encoded()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    def _next_reply(self, _: Recorded) -> Reply:
        if not self.replies:
            return Reply(500, {"code": "NoReply", "message": "the test scripted no reply", "details": []})
        return self.replies.pop(0)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def recording_server(respond: Callable[[Recorded], Reply] | None = None) -> Iterator[RecordingServer]:
    server = RecordingServer(respond).start()
    try:
        yield server
    finally:
        server.stop()


def unsigned_client(url: str, **kwargs: Any) -> ApiClient:
    return ApiClient(url, credentials=None, region="us-east-1", **kwargs)

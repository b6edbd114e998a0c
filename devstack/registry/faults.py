"""A threaded reverse proxy in front of local registries, with upstream faults on demand.

:class:`FaultProxy` listens on a loopback port and forwards every request to a registry:
either one fixed target URL, or -- given an :class:`~.upstream_map.UpstreamMap` -- the registry
mapped for the request's ``Host`` header (so one proxy can stand for ``registry-1.docker.io``,
``ghcr.io``, ... at once; requests for an unmapped host go to ``default``). ``Location`` headers
that point at the target are rewritten to point at the proxy, so pushes work through it too.

Tests arm faults with :attr:`FaultProxy.faults` (a :class:`FaultPlan`): *the next N requests*,
optionally only those whose path matches a regex (and method), are answered by the proxy itself
instead of the registry::

    proxy.faults.add(FaultKind.TOO_MANY_REQUESTS, times=3, path=r"/manifests/", retry_after=7)
    proxy.faults.add(FaultKind.TIMEOUT, delay=2.0)       # sleep past the client's timeout
    proxy.faults.add(FaultKind.UNAUTHORIZED, times=10)   # 401 even with good credentials

Everything is bounded: a fault fires at most ``times`` times, a timeout sleeps at most
``max_delay`` seconds (30 by default) and is cut short when the proxy stops.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from devstack.registry.upstream_map import UpstreamMap, normalise_host
from devstack.serving import Background, ServerThread

__all__ = [
    "MAX_FAULT_DELAY",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultProxy",
    "RecordedRequest",
]

MAX_FAULT_DELAY = 30.0
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class FaultKind(StrEnum):
    """What the proxy answers instead of forwarding."""

    TOO_MANY_REQUESTS = "429"  # TOOMANYREQUESTS with Retry-After (Docker Hub's pull limit)
    SERVER_ERROR = "500"
    BAD_GATEWAY = "502"
    UNAVAILABLE = "503"
    TIMEOUT = "timeout"  # no answer for `delay` seconds, then 504 (the client has given up by then)
    UNAUTHORIZED = "401"  # UNAUTHORIZED with a Basic challenge, whatever the credentials
    FORBIDDEN = "403"  # DENIED
    NOT_FOUND = "404"  # MANIFEST_UNKNOWN / BLOB_UNKNOWN
    RESET = "reset"  # close the connection without an answer


_STATUS: dict[FaultKind, tuple[int, str, str]] = {
    FaultKind.TOO_MANY_REQUESTS: (429, "TOOMANYREQUESTS", "You have reached your pull rate limit."),
    FaultKind.SERVER_ERROR: (500, "UNKNOWN", "internal server error (injected)"),
    FaultKind.BAD_GATEWAY: (502, "UNKNOWN", "bad gateway (injected)"),
    FaultKind.UNAVAILABLE: (503, "UNAVAILABLE", "service unavailable (injected)"),
    FaultKind.TIMEOUT: (504, "UNKNOWN", "gateway timeout (injected)"),
    FaultKind.UNAUTHORIZED: (401, "UNAUTHORIZED", "authentication required (injected)"),
    FaultKind.FORBIDDEN: (403, "DENIED", "requested access to the resource is denied (injected)"),
    FaultKind.NOT_FOUND: (404, "MANIFEST_UNKNOWN", "manifest unknown (injected)"),
}


@dataclass(slots=True)
class Fault:
    """One armed fault: fires for the next ``times`` matching requests."""

    kind: FaultKind
    times: int = 1
    path: re.Pattern[str] | None = None
    method: str | None = None
    retry_after: int | None = None
    delay: float = 0.0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or self.path.search(path) is not None

    @property
    def exhausted(self) -> bool:
        return self.fired >= self.times


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What went through the proxy (no headers: they may carry credentials)."""

    method: str
    path: str
    host: str
    status: int
    fault: FaultKind | None = None


@dataclass(slots=True)
class FaultPlan:
    """Thread-safe queue of armed faults; the first live, matching fault fires."""

    max_delay: float = MAX_FAULT_DELAY
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        kind: FaultKind | str,
        *,
        times: int = 1,
        path: str | None = None,
        method: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Arm a fault for the next ``times`` requests whose path matches ``path`` (a regex)."""
        if times < 1:
            raise ValueError("times must be at least 1")
        fault_kind = FaultKind(kind)
        if fault_kind is FaultKind.TOO_MANY_REQUESTS and retry_after is None:
            retry_after = 60
        fault = Fault(
            kind=fault_kind,
            times=times,
            path=re.compile(path) if path else None,
            method=method.upper() if method else None,
            retry_after=retry_after,
            delay=min(max(delay, 0.0), self.max_delay) if fault_kind is FaultKind.TIMEOUT else 0.0,
        )
        if fault_kind is FaultKind.TIMEOUT and fault.delay == 0.0:
            fault.delay = min(5.0, self.max_delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to fire for this request (counting it), or ``None`` to forward."""
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.matches(method, path):
                    fault.fired += 1
                    return fault
            self._faults = [f for f in self._faults if not f.exhausted]
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> int:
        """How many more requests armed faults will still answer."""
        with self._lock:
            return sum(f.times - f.fired for f in self._faults)


class FaultProxy(Background):
    """Reverse proxy on ``127.0.0.1`` to one registry (or one per ``Host`` via an :class:`UpstreamMap`)."""

    def __init__(
        self,
        target: str | UpstreamMap,
        *,
        default: str | None = None,
        port: int = 0,
        max_delay: float = MAX_FAULT_DELAY,
        upstream_timeout: float = 30.0,
    ) -> None:
        self._routes = target if isinstance(target, UpstreamMap) else None
        self._default = (target if isinstance(target, str) else default or "").rstrip("/") or None
        self._port = port
        self._upstream_timeout = upstream_timeout
        self.faults = FaultPlan(max_delay=max_delay)
        self._serving: ServerThread | None = None
        self._stopping = threading.Event()
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []

    def __repr__(self) -> str:
        return f"FaultProxy(url={self.url!r}, default={self._default!r})"

    @property
    def url(self) -> str:
        return self._serving.url if self._serving is not None else ""

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def upstream_map(self, hosts: Iterable[str] | None = None) -> UpstreamMap:
        """An :class:`UpstreamMap` sending ``hosts`` (default: the routed or all known hosts) to this proxy."""
        if hosts is None:
            return (
                UpstreamMap.all_to(self.url)
                if self._routes is None
                else UpstreamMap(dict.fromkeys(self._routes, self.url))
            )
        return UpstreamMap(dict.fromkeys(hosts, self.url))

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._serving is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler_class())
        server.daemon_threads = True
        self._serving = ServerThread(server, "ecrcache-fault-proxy").start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes up sleeping TIMEOUT faults
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(timeout=5)
        self._session.close()

    # -- routing ----------------------------------------------------------------------------------
    def target_for(self, host_header: str) -> str | None:
        if self._routes is not None:
            routed = self._routes.get(normalise_host(host_header).rsplit(":", 1)[0])
            if routed is not None:
                return routed
        return self._default

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_ProxyHandler):
            proxy = owner

        return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"
    server_version = "ecrcache-fault-proxy/1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length)) if int(length) > 0 else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return None

    def _handle(self) -> None:
        body = self._body()
        host = self.headers.get("Host", "")
        path = urlsplit(self.path).path
        fault = self.proxy.faults.take(self.command, path)
        if fault is not None:
            self._answer_fault(fault, host, path)
            return
        target = self.proxy.target_for(host)
        if target is None:
            self._send_json(502, {"errors": [{"code": "UNKNOWN", "message": f"no registry for host {host}"}]})
            self.proxy._record(RecordedRequest(self.command, path, host, 502))
            return
        self._forward(target, host, path, body)

    def _forward(self, target: str, host: str, path: str, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = self.proxy._session.request(
                self.command,
                target + self.path,
                headers=headers,
                data=body,
                allow_redirects=False,
                stream=True,
                timeout=self.proxy._upstream_timeout,
            )
        except requests.RequestException as exc:
            self._send_json(502, {"errors": [{"code": "UNKNOWN", "message": f"upstream: {type(exc).__name__}"}]})
            self.proxy._record(RecordedRequest(self.command, path, host, 502))
            return
        with upstream:
            payload = upstream.raw.read(decode_content=False) if self.command != "HEAD" else b""
            self.send_response(upstream.status_code)
            for key, value in upstream.headers.items():
                lower = key.lower()
                if lower in _HOP_BY_HOP:
                    continue
                if lower == "location" and value.startswith(target):
                    value = f"http://{host}{value[len(target) :]}" if host else value  # noqa: PLW2901
                self.send_header(key, value)
            length = upstream.headers.get("Content-Length") if self.command == "HEAD" else str(len(payload))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if payload:
                self.wfile.write(payload)
        self.proxy._record(RecordedRequest(self.command, path, host, upstream.status_code))

    def _answer_fault(self, fault: Fault, host: str, path: str) -> None:
        status, code, message = _STATUS.get(fault.kind, (0, "", ""))
        self.proxy._record(RecordedRequest(self.command, path, host, status, fault.kind))
        if fault.kind is FaultKind.RESET:
            self.close_connection = True
            self.connection.close()
            return
        if fault.kind is FaultKind.TIMEOUT:
            self.proxy._stopping.wait(fault.delay)
        extra: dict[str, str] = {}
        if fault.retry_after is not None:
            extra["Retry-After"] = str(fault.retry_after)
        if fault.kind is FaultKind.UNAUTHORIZED:
            extra["WWW-Authenticate"] = 'Basic realm="ecrcache-fault-proxy"'
        try:
            self._send_json(status, {"errors": [{"code": code, "message": message}]}, extra)
        except OSError:
            return  # the client gave up (timeout) and closed the socket

    def _send_json(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

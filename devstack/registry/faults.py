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

Two more things sit in the proxy (:mod:`.ratelimit`):

* a **rate limit like Docker Hub's** -- ``FaultProxy(..., rate_limit=RateLimit(100, 21600))`` or
  :meth:`FaultProxy.set_rate_limit` at run time: N manifest GETs per window, then ``429 TOOMANYREQUESTS``
  with ``RateLimit-Limit``/``RateLimit-Remaining``/``Retry-After``; HEADs and blobs are not counted.
  Armed faults come first (a faulted request is neither counted nor limited);
* **request counters** per repository (:meth:`FaultProxy.counters`): manifest/blob GETs and HEADs,
  other requests, Docker Hub ``pulls``, throttled / faulted / unauthorized ones, body bytes sent.

Both, and the faults, can be driven over HTTP on the proxy's own port (never a registry path):

==========================================  ===============================================================
``GET    /_ecrcache/counters``              ``{"total": {...}, "repositories": {name: {...}}}``
``DELETE /_ecrcache/counters``              reset the counters
``GET    /_ecrcache/rate-limit``            ``{"limit", "window", "remaining"}`` (``null``s when unlimited)
``PUT    /_ecrcache/rate-limit``            ``{"limit": N, "window": seconds}`` or ``{"limit": null}``; the
                                            window starts empty
``POST   /_ecrcache/faults``                ``{"kind": "429"|"500"|...|"timeout"|"reset", "times"?, "path"?,
                                            "method"?, "retryAfter"?, "delay"?}`` -> :meth:`FaultPlan.add`
``DELETE /_ecrcache/faults``                clear armed faults
``PUT    /_ecrcache/users``                 ``{"username", "password"}``: the registry's token server takes
                                            that user with that password (a token) from now on, replacing
                                            the user's previous one -- a token issued and the old one
                                            revoked; ``400`` without a token server. Answers the user name
                                            only, never the password
==========================================  ===============================================================
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from devstack.registry.ratelimit import (
    DOCKER_HUB_LIMIT_MESSAGE,
    Decision,
    RateLimit,
    RateLimiter,
    RequestCounters,
    RequestKind,
    classify,
)
from devstack.registry.upstream_map import UpstreamMap, normalise_host
from devstack.serving import Background, ServerThread

__all__ = [
    "CONTROL_PREFIX",
    "MAX_FAULT_DELAY",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultProxy",
    "RecordedRequest",
]

MAX_FAULT_DELAY = 30.0
#: The proxy's own HTTP hooks live under this path (registries serve only ``/v2/...``).
CONTROL_PREFIX = "/_ecrcache/"
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
    FaultKind.TOO_MANY_REQUESTS: (429, "TOOMANYREQUESTS", DOCKER_HUB_LIMIT_MESSAGE),
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
        rate_limit: RateLimit | None = None,
        rate_clock: Callable[[], float] | None = None,
        users: Callable[[str, str], None] | None = None,
    ) -> None:
        self._routes = target if isinstance(target, UpstreamMap) else None
        self.users = users  # a token server's set_user (PUT /_ecrcache/users), if the registry has one
        self._default = (target if isinstance(target, str) else default or "").rstrip("/") or None
        self._port = port
        self._upstream_timeout = upstream_timeout
        self.faults = FaultPlan(max_delay=max_delay)
        self.rate_limiter = RateLimiter(rate_limit, **({"clock": rate_clock} if rate_clock else {}))
        self._counters = RequestCounters()
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

    # -- rate limit and counters ------------------------------------------------------------------
    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Docker Hub-like limit on manifest GETs (``None`` removes it); the window starts empty."""
        self.rate_limiter.configure(limit)

    def counters(self) -> dict[str, Any]:
        """Requests received and bytes sent, ``{"total": {...}, "repositories": {name: {...}}}``."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()

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


@dataclass(slots=True)
class _Booking:
    """What one registry request is, for the log and the counters."""

    kind: RequestKind
    repository: str | None
    host: str
    path: str
    fault: FaultKind | None
    throttled: bool = False


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"
    server_version = "ecrcache-fault-proxy/1"
    _booking: _Booking | None = None

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
        self._booking = None
        if path.startswith(CONTROL_PREFIX):
            self._control(path, body)
            return
        kind, repository = classify(self.command, path)
        fault = self.proxy.faults.take(self.command, path)
        self._booking = _Booking(kind, repository, host, path, fault.kind if fault is not None else None)
        if fault is not None:
            self._answer_fault(fault)
            return
        decision = self.proxy.rate_limiter.decide(kind)
        if not decision.allowed:
            self._booking.throttled = True
            status, code, message = _STATUS[FaultKind.TOO_MANY_REQUESTS]
            self._send_json(status, {"errors": [{"code": code, "message": message}]}, decision.headers)
            return
        target = self.proxy.target_for(host)
        if target is None:
            self._send_json(502, {"errors": [{"code": "UNKNOWN", "message": f"no registry for host {host}"}]})
            return
        self._forward(target, host, body, decision)

    def _book(self, status: int, sent: int) -> None:
        """Log and count the request -- before the answer is flushed, so a client reading the counters
        right after its response sees it."""
        booking = self._booking
        if booking is None:
            return
        self._booking = None
        self.proxy._record(RecordedRequest(self.command, booking.path, booking.host, status, booking.fault))
        self.proxy._counters.record(
            booking.kind,
            booking.repository,
            sent,
            status=status,
            throttled=booking.throttled,
            faulted=booking.fault is not None,
        )

    def _forward(self, target: str, host: str, body: bytes | None, decision: Decision) -> None:
        """Relay the request to ``target``, adding the rate limiter's headers (a 401 gives the GET back)."""
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
            self.proxy.rate_limiter.refund(decision)
            self._send_json(502, {"errors": [{"code": "UNKNOWN", "message": f"upstream: {type(exc).__name__}"}]})
            return
        if upstream.status_code == HTTPStatus.UNAUTHORIZED:
            decision = self.proxy.rate_limiter.refund(decision)
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
            for key, value in decision.headers.items():
                self.send_header(key, value)
            length = upstream.headers.get("Content-Length") if self.command == "HEAD" else str(len(payload))
            self.send_header("Content-Length", length or "0")
            self._book(upstream.status_code, len(payload))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    def _answer_fault(self, fault: Fault) -> None:
        status, code, message = _STATUS.get(fault.kind, (0, "", ""))
        if fault.kind is FaultKind.RESET:
            self._book(status, 0)
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
        """Answer with a JSON body (booked first, when the request is a registry request)."""
        payload = json.dumps(body).encode()
        sent = len(payload) if self.command != "HEAD" else 0
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(sent))
        self._book(status, sent)
        self.end_headers()
        if sent:
            self.wfile.write(payload)

    # -- the proxy's own HTTP hooks (never counted, never faulted) ---------------------------------
    def _control(self, path: str, body: bytes | None) -> None:
        try:
            request: Any = json.loads(body or b"{}")
        except ValueError:
            self._send_json(400, {"error": "the request body must be JSON"})
            return
        if not isinstance(request, dict):
            self._send_json(400, {"error": "the request body must be a JSON object"})
            return
        handler = _CONTROL.get((self.command, path[len(CONTROL_PREFIX) :].strip("/")))
        if handler is None:
            self._send_json(404, {"error": f"no endpoint {self.command} {path}"})
            return
        try:
            answer = handler(self.proxy, request)
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, answer)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def _get_counters(proxy: FaultProxy, _: dict[str, Any]) -> dict[str, Any]:
    return proxy.counters()


def _reset_counters(proxy: FaultProxy, _: dict[str, Any]) -> dict[str, Any]:
    proxy.reset_counters()
    return {"ok": True}


def _get_rate_limit(proxy: FaultProxy, _: dict[str, Any]) -> dict[str, Any]:
    return proxy.rate_limiter.snapshot()


def _put_rate_limit(proxy: FaultProxy, request: dict[str, Any]) -> dict[str, Any]:
    if "limit" not in request:
        raise ValueError("'limit' is required: a whole number of manifest GETs per window, or null for no limit")
    if request["limit"] is None:
        proxy.set_rate_limit(None)
    else:
        proxy.set_rate_limit(RateLimit(request["limit"], request.get("window", 21600)))
    return proxy.rate_limiter.snapshot()


def _add_fault(proxy: FaultProxy, request: dict[str, Any]) -> dict[str, Any]:
    kind = request.get("kind")
    if kind not in {k.value for k in FaultKind}:
        raise ValueError(f"'kind' must be one of {', '.join(k.value for k in FaultKind)}")
    times = request.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int):
        raise ValueError("'times' must be a whole number >= 1")
    retry_after = request.get("retryAfter")
    if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int)):
        raise ValueError("'retryAfter' must be a whole number of seconds")
    fault = proxy.faults.add(
        str(kind),
        times=times,
        path=request.get("path"),
        method=request.get("method"),
        retry_after=retry_after,
        delay=float(request.get("delay", 0.0)),
    )
    return {"kind": fault.kind.value, "times": fault.times, "pending": proxy.faults.pending}


def _clear_faults(proxy: FaultProxy, _: dict[str, Any]) -> dict[str, Any]:
    proxy.faults.clear()
    return {"ok": True}


def _put_user(proxy: FaultProxy, request: dict[str, Any]) -> dict[str, Any]:
    if proxy.users is None:
        raise ValueError("this registry has no token server: it takes no users")
    for field_name in ("username", "password"):
        if not isinstance(request.get(field_name), str) or not request[field_name]:
            raise ValueError(f"'{field_name}' is required: a non-empty string")
    proxy.users(request["username"], request["password"])
    return {"username": request["username"]}  # never the password


_CONTROL: dict[tuple[str, str], Callable[[FaultProxy, dict[str, Any]], dict[str, Any]]] = {
    ("GET", "counters"): _get_counters,
    ("DELETE", "counters"): _reset_counters,
    ("GET", "rate-limit"): _get_rate_limit,
    ("PUT", "rate-limit"): _put_rate_limit,
    ("POST", "rate-limit"): _put_rate_limit,
    ("POST", "faults"): _add_fault,
    ("DELETE", "faults"): _clear_faults,
    ("PUT", "users"): _put_user,
}

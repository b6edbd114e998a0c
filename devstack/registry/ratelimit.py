"""Docker Hub's pull rate limit and per-repository request counters, for the :class:`~.faults.FaultProxy`.

**What Docker Hub does** (Docker docs, "Docker Hub pull usage and limits" and its earlier "Download rate
limit" page; ecr-facts §7.2): a pull is a ``GET`` of a manifest (``/v2/<name>/manifests/<reference>``);
``HEAD`` requests ("version checks") and blob downloads are not counted. The limit is N pulls per
window (100 or 200 per 6 hours = ``w=21600``, depending on the account), and responses to manifest
requests -- ``GET`` and ``HEAD`` -- carry ``RateLimit-Limit: 100;w=21600`` and
``RateLimit-Remaining: 76;w=21600``. Over the limit the manifest ``GET`` answers ``429`` with
``TOOMANYREQUESTS`` ("You have reached your pull rate limit. ..."). The window is reported as rolling
[obs: third-party docs]; :class:`RateLimiter` keeps a sliding window of the counted requests' times.
A ``Retry-After`` header (seconds until the oldest counted pull leaves the window) is ours: Docker
documents only the body for its 429 [?], and RFC 6585 suggests the header.

The limit is one bucket per proxy (Docker keys it by user or IP; the proxy stands for one upstream).
Requests answered by an armed fault neither consume the limit nor are limited. A manifest GET the
registry answers ``401`` (the auth challenge every Bearer client meets before its token) is given back:
it is no pull, and Docker cannot attribute it to a user [?]; any other answer (``404`` included) counts.

**Counters** (:class:`RequestCounters`): every request the proxy receives, per repository and in
total: manifest GETs / HEADs, blob GETs / HEADs, other requests, how many of them the rate limit
(``throttled``), a fault (``faulted``) or the registry's auth challenge (``unauthorized``, 401) answered,
``pulls`` -- the manifest GETs Docker Hub would count (served, not a 401) -- and the response body bytes
sent: what a test or benchmark reads to count upstream requests and bytes per repository.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Self

__all__ = [
    "DOCKER_HUB_LIMIT_MESSAGE",
    "Decision",
    "RateLimit",
    "RateLimiter",
    "RequestCounters",
    "RequestKind",
    "classify",
]

#: Docker's documented 429 body text.
DOCKER_HUB_LIMIT_MESSAGE: Final = (
    "You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: "
    "https://www.docker.com/increase-rate-limits"
)
_PATH: Final = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<reference>[^/]+)$")
_SPEC: Final = re.compile(r"^\s*(?P<limit>\d+)\s*(?:/|;\s*w=)\s*(?P<window>\d+(?:\.\d+)?)\s*(?P<unit>[smh]?)\s*$")
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


class RequestKind(StrEnum):
    MANIFEST_GET = "manifest_gets"
    MANIFEST_HEAD = "manifest_heads"
    BLOB_GET = "blob_gets"
    BLOB_HEAD = "blob_heads"
    OTHER = "other"


def classify(method: str, path: str) -> tuple[RequestKind, str | None]:
    """The kind of a registry request and its repository (``None`` for ``/v2/``, uploads, catalog ...)."""
    match = _PATH.match(path)
    verb = method.upper()
    if match is None or verb not in {"GET", "HEAD"}:
        return RequestKind.OTHER, (match.group("name") if match else None)
    manifest = match.group("kind") == "manifests"
    if verb == "GET":
        return (RequestKind.MANIFEST_GET if manifest else RequestKind.BLOB_GET), match.group("name")
    return (RequestKind.MANIFEST_HEAD if manifest else RequestKind.BLOB_HEAD), match.group("name")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` manifest GETs per ``window`` seconds."""

    limit: int
    window: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"rate limit: limit must be a whole number >= 0, not {self.limit!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int | float) or self.window <= 0:
            raise ValueError(f"rate limit: window must be a number of seconds > 0, not {self.window!r}")

    @classmethod
    def parse(cls, text: str) -> Self:
        """``100/21600``, ``100/6h``, ``10/90s`` or Docker's own ``100;w=21600`` (window in seconds)."""
        match = _SPEC.match(text)
        if match is None:
            raise ValueError(f"rate limit {text!r}: expected LIMIT/WINDOW such as 100/6h, 100/21600 or 100;w=21600")
        return cls(int(match.group("limit")), float(match.group("window")) * _UNITS[match.group("unit")])

    @property
    def window_label(self) -> str:
        """The ``w=`` value of the headers (whole seconds)."""
        return str(math.ceil(self.window))

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "window": self.window}


@dataclass(frozen=True, slots=True)
class Decision:
    """The rate limiter's answer for one manifest request: allowed or not, and the headers to send.

    ``counted`` is the time a counted GET was recorded at (give it back with :meth:`RateLimiter.refund`).
    """

    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    counted: float | None = None


class RateLimiter:
    """A sliding-window limit on manifest GETs (thread-safe; ``clock`` is injectable, monotonic seconds)."""

    def __init__(self, limit: RateLimit | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._limit = limit
        self._counted: deque[float] = deque()

    @property
    def limit(self) -> RateLimit | None:
        with self._lock:
            return self._limit

    def configure(self, limit: RateLimit | None) -> None:
        """Set (or remove, with ``None``) the limit; the window starts empty."""
        with self._lock:
            self._limit = limit
            self._counted.clear()

    def _expire(self, limit: RateLimit, now: float) -> None:
        while self._counted and self._counted[0] <= now - limit.window:
            self._counted.popleft()

    def _headers(self, limit: RateLimit, remaining: int) -> dict[str, str]:
        window = limit.window_label
        return {"RateLimit-Limit": f"{limit.limit};w={window}", "RateLimit-Remaining": f"{remaining};w={window}"}

    def decide(self, kind: RequestKind) -> Decision:
        """Count a manifest GET (or refuse it); a manifest HEAD only gets the headers; others pass untouched."""
        with self._lock:
            limit = self._limit
            if limit is None or kind not in {RequestKind.MANIFEST_GET, RequestKind.MANIFEST_HEAD}:
                return Decision(True)
            now = self._clock()
            self._expire(limit, now)
            used = len(self._counted)
            if kind is RequestKind.MANIFEST_HEAD:
                return Decision(True, self._headers(limit, max(limit.limit - used, 0)))
            if used < limit.limit:
                self._counted.append(now)
                return Decision(True, self._headers(limit, limit.limit - used - 1), counted=now)
            oldest = self._counted[0] if self._counted else now
            retry_after = max(1, math.ceil(oldest + limit.window - now))
            return Decision(False, {**self._headers(limit, 0), "Retry-After": str(retry_after)})

    def refund(self, decision: Decision) -> Decision:
        """Give back a counted GET (the registry answered 401); returns the decision with fresh headers."""
        with self._lock:
            limit = self._limit
            if decision.counted is None or limit is None:
                return decision
            with contextlib.suppress(ValueError):
                self._counted.remove(decision.counted)
            self._expire(limit, self._clock())
            return Decision(True, self._headers(limit, max(limit.limit - len(self._counted), 0)))

    def snapshot(self) -> dict[str, Any]:
        """``{"limit", "window", "remaining"}`` now (``null``s without a limit)."""
        with self._lock:
            limit = self._limit
            if limit is None:
                return {"limit": None, "window": None, "remaining": None}
            self._expire(limit, self._clock())
            return {**limit.to_json(), "remaining": max(limit.limit - len(self._counted), 0)}


def _zero() -> dict[str, int]:
    kinds = {kind.value: 0 for kind in RequestKind}
    return {**kinds, "pulls": 0, "throttled": 0, "faulted": 0, "unauthorized": 0, "bytes": 0}


class RequestCounters:
    """Requests received and body bytes sent, per repository and in total (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = _zero()
        self._repositories: dict[str, dict[str, int]] = {}

    def record(
        self,
        kind: RequestKind,
        repository: str | None,
        sent: int,
        *,
        status: int = 200,
        throttled: bool = False,
        faulted: bool = False,
    ) -> None:
        """Count one request: its kind, the body bytes sent, who answered it (``status`` = the answer's)."""
        unauthorized = status == 401 and not faulted
        pull = kind is RequestKind.MANIFEST_GET and not (throttled or faulted or unauthorized)
        with self._lock:
            rows = [self._total]
            if repository is not None:
                rows.append(self._repositories.setdefault(repository, _zero()))
            for row in rows:
                row[kind.value] += 1
                row["bytes"] += max(sent, 0)
                row["pulls"] += int(pull)
                row["throttled"] += int(throttled)
                row["faulted"] += int(faulted)
                row["unauthorized"] += int(unauthorized)

    def snapshot(self) -> dict[str, Any]:
        """``{"total": {...}, "repositories": {name: {...}}}`` (a copy)."""
        with self._lock:
            return {
                "total": dict(self._total),
                "repositories": {name: dict(row) for name, row in sorted(self._repositories.items())},
            }

    def reset(self) -> None:
        with self._lock:
            self._total = _zero()
            self._repositories.clear()

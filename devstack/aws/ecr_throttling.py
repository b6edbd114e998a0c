"""ECR's request-rate throttling: a token bucket per account, Region and operation, off unless configured.

What ECR documents (User Guide, "Troubleshooting Amazon ECR error messages", *HTTP 429: Too Many Requests or
ThrottleException*): every API operation has a rate throttle; "in each region, each account receives a bucket"
of credits for the operation, refilled at its rate (``GetAuthorizationToken``: 20 TPS, a bucket of 200). So here:
one bucket per ``(account, Region, operation)``, holding ``burst`` credits, refilled at ``tps`` a second; a call
finding the bucket empty is refused and spends nothing.

What ECR does **not** publish is the rate of most operations: Service Quotas lists ``BatchGetImage``,
``GetDownloadUrlForLayer``, ``GetAuthorizationToken``, ``PutImage`` and a few more, and nothing for the
control plane (``DescribeRepositories``, ``GetLifecyclePolicy``, ``*PullThroughCacheRule`` ...;
``shared/reference/ecr-facts.md`` §1.6). The embedded ECR therefore throttles nothing by default: a test, the
benchmark or ``make local`` says which operations to throttle and how hard (:func:`configure`, ``install(ecr_tps=...)``,
``EmbeddedAwsServer(ecr_tps=...)``, ``ecrcache-aws --ecr-tps`` / ``$ECRCACHE_EMBEDDED_ECR_TPS``,
``POST /_ecrcache/ecr/throttling``), in the form ``"DescribeRepositories=20,GetLifecyclePolicy=50:100,*=10"``:
``Operation=TPS[:BURST]``, ``*`` for every operation not named, the burst one second's worth by default (at least 1).

The answer to a throttled call is HTTP 400 with the awsJson1.1 error body
``{"__type": "ThrottlingException", "message": "Rate exceeded"}``. ECR's botocore model declares no
``ThrottlingException`` shape (it declares none for throttling at all); botocore classifies it by its code:
``botocore/retries/standard.py`` ``ThrottledRetryableChecker._THROTTLED_ERROR_CODES`` lists
``ThrottlingException`` (the standard and adaptive retry modes retry it, and the adaptive mode's client rate
limiter slows down on it), and the legacy mode's ``botocore/data/_retry.json`` defines ``throttling_exception``
as ``service_error_code: ThrottlingException`` with ``http_status_code: 400``. The message is what callers of
ECR report seeing (``An error occurred (ThrottlingException) when calling the GetAuthorizationToken operation: Rate
exceeded``: Shippable/support#2950, trek10inc/ecr-cleaner#2): reported, not documented. A throttled call never
reaches the operation, so it changes nothing and emits no CloudTrail event of ours.

The clock is ``time.monotonic`` unless a test injects one (``configure(..., clock=fake)``); it is not the
extension's wall clock (:mod:`devstack.aws.clock`), which tests move by days.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import botocore.session
from moto.ecr.responses import ECRResponse

from devstack.aws.common import patch_once

__all__ = [
    "ANY_OPERATION",
    "ENV_VAR",
    "Limit",
    "Throttle",
    "TpsSpec",
    "configure",
    "current",
    "install",
    "parse_tps",
    "reset",
]

ENV_VAR: Final = "ECRCACHE_EMBEDDED_ECR_TPS"
"""What ``ecrcache-aws`` (and so ``make local``'s embedded AWS) reads when ``--ecr-tps`` is not given."""
ANY_OPERATION: Final = "*"
THROTTLED_BODY: Final = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
_MARK: Final = "_ecrcache_throttling"


@dataclass(frozen=True, slots=True)
class Limit:
    """``tps`` credits a second into a bucket of ``burst`` credits (one a call)."""

    tps: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tps) and self.tps > 0):
            raise ValueError(f"a TPS must be a positive number, got {self.tps!r}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"a burst must be a number >= 1 (one call's credit), got {self.burst!r}")

    @classmethod
    def of(cls, tps: float, burst: float | None = None) -> Limit:
        """``burst`` defaults to one second's worth of credits (at least one call)."""
        return cls(float(tps), float(burst) if burst is not None else max(1.0, float(tps)))

    def as_dict(self) -> dict[str, float]:
        return {"tps": self.tps, "burst": self.burst}


TpsSpec = str | Mapping[str, "float | Limit"]
"""``"Op=TPS[:BURST],..."`` or ``{"Op": TPS or Limit}`` (``*`` = every operation not named)."""


@functools.cache
def _ecr_operations() -> frozenset[str]:
    """The operations of botocore's ECR model: the names a limit may take (the witness's own reference)."""
    return frozenset(botocore.session.get_session().get_service_model("ecr").operation_names)


def _operation(name: str) -> str:
    name = name.strip()
    if name != ANY_OPERATION and name not in _ecr_operations():
        raise ValueError(f"{name!r} is not an ECR operation of botocore's model (e.g. DescribeRepositories), nor '*'")
    return name


def _number(text: str, what: str, entry: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"ECR TPS entry {entry!r}: {what} {text!r} is not a number") from None


def _mapped(operation: str, value: object) -> Limit:
    if isinstance(value, Limit):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"ECR TPS of {operation!r}: {value!r} is not a number")
    try:
        return Limit.of(value)
    except ValueError as exc:
        raise ValueError(f"ECR TPS of {operation!r}: {exc}") from None


def parse_tps(spec: TpsSpec) -> dict[str, Limit]:
    """Read ``"DescribeRepositories=20,GetLifecyclePolicy=50:100,*=10"`` (or a mapping) into limits.

    Raises ``ValueError`` naming the entry and the rule it breaks (an unknown operation, a TPS <= 0, a burst < 1).
    """
    if not isinstance(spec, str):
        return {_operation(op): _mapped(op, value) for op, value in spec.items()}
    limits: dict[str, Limit] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        op, sep, value = entry.partition("=")
        if not sep:
            raise ValueError(f"ECR TPS entry {entry!r} must read Operation=TPS or Operation=TPS:BURST")
        tps_text, _, burst_text = value.partition(":")
        tps = _number(tps_text, "TPS", entry)
        burst = _number(burst_text, "burst", entry) if burst_text else None
        try:
            limits[_operation(op)] = Limit.of(tps, burst)
        except ValueError as exc:
            raise ValueError(f"ECR TPS entry {entry!r}: {exc}") from None
    return limits


class _Bucket:
    __slots__ = ("credits", "stamp")

    def __init__(self, credits: float, stamp: float) -> None:
        self.credits = credits
        self.stamp = stamp


class Throttle:
    """The token buckets of one configuration (thread-safe: moto's server answers from several threads)."""

    def __init__(
        self, limits: Mapping[str, Limit] | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits: dict[str, Limit] = dict(limits or {})
        self.clock = clock
        self.admitted: Counter[str] = Counter()
        """Calls let through per operation (only operations with a limit are counted)."""
        self.throttled: Counter[str] = Counter()
        """Calls answered ``ThrottlingException`` per operation."""
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def limit(self, operation: str) -> Limit | None:
        return self.limits.get(operation) or self.limits.get(ANY_OPERATION)

    def admit(self, account: str, region: str, operation: str) -> bool:
        """Spend a credit of the call's bucket; ``False`` (spend nothing) when it holds less than one."""
        limit = self.limit(operation)
        if limit is None:
            return True
        with self._lock:
            now = self.clock()
            key = (account, region, operation)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(limit.burst, now)  # a new bucket starts full
            else:
                elapsed = max(0.0, now - bucket.stamp)
                bucket.credits = min(limit.burst, bucket.credits + elapsed * limit.tps)
                bucket.stamp = now
            if bucket.credits < 1:
                self.throttled[operation] += 1
                return False
            bucket.credits -= 1
            self.admitted[operation] += 1
            return True

    def snapshot(self) -> dict[str, Any]:
        """The limits and the counts so far (what ``GET /_ecrcache/ecr/throttling`` answers)."""
        with self._lock:
            return {
                "limits": {op: limit.as_dict() for op, limit in sorted(self.limits.items())},
                "admitted": dict(sorted(self.admitted.items())),
                "throttled": dict(sorted(self.throttled.items())),
            }


_lock = threading.Lock()
_throttle = Throttle()


def current() -> Throttle:
    """The process-wide throttle (its counters say how many calls were refused)."""
    with _lock:
        return _throttle


def configure(spec: TpsSpec | None, *, clock: Callable[[], float] | None = None) -> Throttle:
    """Throttle the embedded ECR as ``spec`` says (``None`` or ``""``: nothing), with fresh, full buckets and counters.

    ``clock`` (seconds, monotonic) defaults to ``time.monotonic``. Returns the new process-wide throttle.
    """
    global _throttle  # noqa: PLW0603 - process-wide, like moto's backends
    limits = parse_tps(spec) if spec else {}
    throttle = Throttle(limits, clock=clock or time.monotonic)
    with _lock:
        _throttle = throttle
    return throttle


def reset() -> None:
    """Nothing throttled (test teardown)."""
    configure(None)


def _throttled_call_action(call_action: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(self: Any) -> Any:
        operation = str(self._get_action() or "")
        if current().admit(str(self.current_account), str(self.region), operation):
            return call_action(self)
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"}
        headers, body = self._enrich_response(headers, THROTTLED_BODY)  # adds x-amzn-RequestId
        return 400, headers, body

    return call


def _endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_ecrcache/ecr/throttling {"tps": "Op=TPS[:BURST],..." | {"Op": TPS} | null}``; ``GET``: the state."""
    from devstack.aws.server import EndpointError  # noqa: PLC0415 - server imports the package; avoid a cycle

    if "tps" in body:
        spec = body["tps"]
        if spec is not None and not isinstance(spec, str | dict):
            raise EndpointError("'tps' must be 'Operation=TPS[:BURST],...', an object {Operation: TPS} or null")
        try:
            configure(spec)
        except (ValueError, TypeError) as exc:
            raise EndpointError(str(exc)) from None
    return current().snapshot()


def install(ecr_tps: TpsSpec | None = None) -> None:
    """Put the throttle in front of every ECR operation (idempotent); ``ecr_tps`` given: :func:`configure` it."""
    patch_once(ECRResponse, "call_action", _throttled_call_action, mark=_MARK)
    if ecr_tps is not None:
        configure(ecr_tps)
    from devstack.aws import server  # noqa: PLC0415 - server imports the package; avoid a cycle

    server.register_endpoint("GET", "ecr/throttling", _endpoint)
    server.register_endpoint("POST", "ecr/throttling", _endpoint)

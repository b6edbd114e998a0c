"""A ceiling on one boto3 client's request rate: a token bucket in front of every HTTP attempt it makes.

Why a ceiling of our own: ECR throttles each account's calls per Region and operation (``ThrottlingException``;
User Guide, "Troubleshooting Amazon ECR error messages") and publishes no rate for the control plane the reconciler
reads (``DescribeRepositories``, ``GetLifecyclePolicy``, ``GetRepositoryPolicy``, ``ListTagsForResource``; ecr-facts
§1.6). botocore's adaptive retry mode has a client rate limiter (``botocore/retries/adaptive.py``,
``ClientRateLimiter``), but it is off until a throttling answer comes back and then cuts the rate (CUBIC): it reacts,
it keeps no ceiling. This limiter holds the rate under a configured one from the first call (the reconciler's
``ECR_REQUEST_RATE``); the adaptive retries stay the second line, for throttling that comes anyway (other callers
of the account share ECR's buckets).

The hook is botocore's ``before-send.<service>`` event: once per HTTP attempt, retries included (ECR counts those
too), registered first so that it runs before whatever may answer instead of the network (botocore's own
``before-send`` handlers, the adaptive limiter's among them; a test's stub). A limiter belongs to a client and is
shared by every thread using that client (the deep read's pool): they are spaced ``1 / rate`` apart together.

The bucket holds ``burst`` credits (1 by default: evenly spaced requests) and gains ``rate`` a second. A request
finding no credit reserves the next one and sleeps until it is due, outside the lock, so waiting threads keep
their order and never hold each other up beyond their turn.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = ["RequestRateLimiter", "request_rate_limiter"]


class RequestRateLimiter:
    """At most ``rate`` requests a second (``burst`` at once) through the clients it is attached to."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a request rate must be a positive number of requests a second, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"a burst must be at least 1 request, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._credits = self.burst
        self._stamp: float | None = None
        self.requests = 0
        """Requests let through (HTTP attempts)."""
        self.delayed = 0
        """Of those, the ones that had to wait for a credit."""
        self.waited = 0.0
        """Seconds of waiting, summed over the requests (threads wait side by side: not the wall time lost)."""

    def acquire(self) -> float:
        """Take a credit, sleeping until one is due; returns the seconds slept (0.0: at once)."""
        with self._lock:
            now = self._clock()
            if self._stamp is not None:
                self._credits = min(self.burst, self._credits + max(0.0, now - self._stamp) * self.rate)
            self._stamp = now
            self._credits -= 1
            wait = -self._credits / self.rate if self._credits < 0 else 0.0
            self.requests += 1
            if wait > 0:
                self.delayed += 1
                self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def attach(self, client: BaseClient) -> None:
        """Limit every HTTP attempt of ``client`` (idempotent for one client and limiter)."""
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register_first(
            f"before-send.{service}", self._before_send, unique_id=f"ecrcache-rate-limit-{id(self)}"
        )

    def _before_send(self, **_: Any) -> None:
        self.acquire()  # returns None: the request goes on to be sent


def request_rate_limiter(rate: float) -> RequestRateLimiter | None:
    """A limiter of ``rate`` requests a second, or ``None`` for 0 (no ceiling: a setting's "unlimited")."""
    return None if rate == 0 else RequestRateLimiter(rate)

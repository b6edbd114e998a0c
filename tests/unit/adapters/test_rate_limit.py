"""The client-side request-rate ceiling: a token bucket with reservations, on a fake clock (nothing waits)."""

from __future__ import annotations

import math
import threading

import pytest

from ecrcache.adapters.rate_limit import RequestRateLimiter, request_rate_limiter

pytestmark = pytest.mark.unit


class VirtualTime:
    """A monotonic clock whose ``sleep`` moves it forward by the time asked (one thread)."""

    def __init__(self) -> None:
        self.now = 500.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sends(limiter: RequestRateLimiter, time: VirtualTime, count: int) -> list[float]:
    """The times ``count`` requests go out, one after another."""
    out = []
    for _ in range(count):
        limiter.acquire()
        out.append(time.now)
    return out


def test_requests_are_spaced_one_over_the_rate_apart() -> None:
    time = VirtualTime()
    limiter = RequestRateLimiter(20, clock=time.clock, sleep=time.sleep)
    times = sends(limiter, time, 10)
    # the first at once, then one every 50 ms: ten requests take 450 ms, never more than 20 in a second
    assert [round(t - times[0], 9) for t in times] == [round(i * 0.05, 9) for i in range(10)]
    assert (limiter.requests, limiter.delayed) == (10, 9)
    assert math.isclose(limiter.waited, 0.45)


def test_a_burst_goes_out_at_once_then_the_rate_holds() -> None:
    time = VirtualTime()
    limiter = RequestRateLimiter(4, burst=3, clock=time.clock, sleep=time.sleep)
    times = sends(limiter, time, 6)
    assert [t - times[0] for t in times] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75]


def test_an_idle_limiter_saves_up_to_its_burst_and_no_more() -> None:
    time = VirtualTime()
    limiter = RequestRateLimiter(10, burst=2, clock=time.clock, sleep=time.sleep)
    sends(limiter, time, 5)
    time.now += 3600  # an hour idle: 36,000 credits earned, 2 kept
    start = time.now
    assert [round(t - start, 9) for t in sends(limiter, time, 4)] == [0.0, 0.0, 0.1, 0.2]


def test_in_any_window_at_most_burst_plus_rate_times_its_length_go_out() -> None:
    time = VirtualTime()
    rate, burst = 7.0, 3.0
    limiter = RequestRateLimiter(rate, burst=burst, clock=time.clock, sleep=time.sleep)
    times = sends(limiter, time, 60)
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - first) + 1e-9


def test_threads_sharing_a_limiter_reserve_successive_slots() -> None:
    """Eight threads of the deep read's pool, 10 requests each, at the same instant: one credit (the burst),
    then the k-th request is due k/rate later, whichever thread makes it (counted on a clock that stands still)."""
    slept: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            slept.append(seconds)

    limiter = RequestRateLimiter(20, clock=lambda: 0.0, sleep=record)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(10):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limiter.requests == 80
    assert sorted(round(s, 9) for s in slept) == [round(k / 20, 9) for k in range(1, 80)]


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0, 1, "a request rate must be a positive number"),
        (-5, 1, "a request rate must be a positive number"),
        (math.nan, 1, "a request rate must be a positive number"),
        (math.inf, 1, "a request rate must be a positive number"),
        (5, 0.5, "a burst must be at least 1 request"),
    ],
)
def test_a_bad_rate_or_burst_is_refused(rate: float, burst: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RequestRateLimiter(rate, burst=burst)


def test_a_rate_of_zero_means_no_ceiling() -> None:
    assert request_rate_limiter(0) is None
    limiter = request_rate_limiter(2.5)
    assert limiter is not None
    assert (limiter.rate, limiter.burst) == (2.5, 1.0)

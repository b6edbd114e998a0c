"""Docker Hub-like rate limit and request classification (pure; the clock is a number we move)."""

from __future__ import annotations

import pytest

from devstack.registry.ratelimit import RateLimit, RateLimiter, RequestCounters, RequestKind, classify

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("100/21600", 100, 21600.0),
        ("100/6h", 100, 21600.0),
        ("10/90s", 10, 90.0),
        ("5/2m", 5, 120.0),
        ("200;w=21600", 200, 21600.0),  # Docker Hub's own header form
        ("0/60", 0, 60.0),
    ],
)
def test_parse(text: str, limit: int, window: float) -> None:
    assert RateLimit.parse(text) == RateLimit(limit, window)


@pytest.mark.parametrize("text", ["100", "100/", "/60", "-1/60", "100/0", "100/6d", "a/b"])
def test_parse_rejects_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"100/6h|window must be"):
        RateLimit.parse(text)


@pytest.mark.parametrize(
    ("method", "path", "kind", "repository"),
    [
        ("GET", "/v2/library/node/manifests/18-alpine", RequestKind.MANIFEST_GET, "library/node"),
        ("HEAD", "/v2/library/node/manifests/sha256:ab", RequestKind.MANIFEST_HEAD, "library/node"),
        ("GET", "/v2/a/b/c/blobs/sha256:ab", RequestKind.BLOB_GET, "a/b/c"),
        ("HEAD", "/v2/team/app/blobs/sha256:ab", RequestKind.BLOB_HEAD, "team/app"),
        ("PUT", "/v2/team/app/manifests/v1", RequestKind.OTHER, "team/app"),
        ("POST", "/v2/team/app/blobs/uploads/", RequestKind.OTHER, None),
        ("GET", "/v2/", RequestKind.OTHER, None),
        ("GET", "/v2/team/app/tags/list", RequestKind.OTHER, None),
    ],
)
def test_classify(method: str, path: str, kind: RequestKind, repository: str | None) -> None:
    assert classify(method, path) == (kind, repository)


def test_sliding_window_counts_gets_only() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(2, 100), clock=lambda: now[0])
    assert limiter.decide(RequestKind.BLOB_GET).headers == {}
    assert limiter.decide(RequestKind.MANIFEST_GET).headers["RateLimit-Remaining"] == "1;w=100"
    now[0] = 40
    assert limiter.decide(RequestKind.MANIFEST_GET).allowed
    assert limiter.decide(RequestKind.MANIFEST_HEAD).allowed
    refused = limiter.decide(RequestKind.MANIFEST_GET)
    assert not refused.allowed
    assert refused.headers["Retry-After"] == "60"
    now[0] = 100  # the t=0 pull has left the window
    assert limiter.decide(RequestKind.MANIFEST_GET).allowed
    assert limiter.snapshot() == {"limit": 2, "window": 100, "remaining": 0}


def test_a_zero_limit_refuses_every_manifest_get_and_configure_resets() -> None:
    limiter = RateLimiter(RateLimit(0, 30), clock=lambda: 5.0)
    refused = limiter.decide(RequestKind.MANIFEST_GET)
    assert (refused.allowed, refused.headers["Retry-After"]) == (False, "30")
    limiter.configure(None)
    assert limiter.decide(RequestKind.MANIFEST_GET).allowed
    assert limiter.snapshot()["limit"] is None


def test_counters_total_and_per_repository() -> None:
    counters = RequestCounters()
    counters.record(RequestKind.MANIFEST_GET, "a/b", 100)
    counters.record(RequestKind.MANIFEST_GET, "a/b", 50, throttled=True)
    counters.record(RequestKind.OTHER, None, 2)
    snapshot = counters.snapshot()
    assert snapshot["repositories"]["a/b"]["manifest_gets"] == 2
    assert snapshot["repositories"]["a/b"]["throttled"] == 1
    assert snapshot["repositories"]["a/b"]["bytes"] == 150
    assert (snapshot["total"]["other"], snapshot["total"]["bytes"]) == (1, 152)


def test_refund_gives_a_counted_get_back() -> None:
    """A 401 challenge is no pull: the proxy gives the GET back and reports the fresh remaining count."""
    limiter = RateLimiter(RateLimit(1, 60), clock=lambda: 7.0)
    counted = limiter.decide(RequestKind.MANIFEST_GET)
    assert counted.headers["RateLimit-Remaining"] == "0;w=60"
    refunded = limiter.refund(counted)
    assert refunded.headers["RateLimit-Remaining"] == "1;w=60"
    assert limiter.decide(RequestKind.MANIFEST_GET).allowed


def test_counters_pulls_exclude_challenges_faults_and_throttles() -> None:
    counters = RequestCounters()
    counters.record(RequestKind.MANIFEST_GET, "r", 10, status=401)
    counters.record(RequestKind.MANIFEST_GET, "r", 10, status=200)
    counters.record(RequestKind.MANIFEST_GET, "r", 10, status=429, throttled=True)
    counters.record(RequestKind.MANIFEST_GET, "r", 10, status=401, faulted=True)
    counters.record(RequestKind.MANIFEST_GET, "r", 10, status=404)
    row = counters.snapshot()["repositories"]["r"]
    assert (row["manifest_gets"], row["pulls"], row["unauthorized"], row["faulted"]) == (5, 2, 1, 1)

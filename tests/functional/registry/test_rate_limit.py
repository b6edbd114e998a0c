"""The fault proxy's Docker Hub-like rate limit, its request counters and its HTTP hooks.

Docker Hub (Docker docs "Docker Hub pull usage and limits"; ecr-facts §7.2): a pull is a manifest
``GET``; ``HEAD`` and blob requests are not counted; manifest responses carry
``RateLimit-Limit: N;w=<window>`` and ``RateLimit-Remaining``; over the limit: ``429 TOOMANYREQUESTS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.registry import FaultProxy, LocalRegistry, RateLimit, SeededImage
from devstack.registry.images import ALL_MANIFEST_MEDIA_TYPES

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

ACCEPT = {"Accept": ", ".join(ALL_MANIFEST_MEDIA_TYPES)}


class FakeMonotonic:
    """The proxy's rate-limit clock, moved by hand (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tick() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def limited(registry: LocalRegistry, seeded: list[SeededImage], tick: FakeMonotonic) -> Iterator[FaultProxy]:
    """A proxy in front of the seeded registry: 2 manifest GETs per 60 s."""
    with FaultProxy(registry.url, rate_limit=RateLimit(2, 60), rate_clock=tick) as proxy:
        yield proxy


def _image(seeded: list[SeededImage], reference: str) -> SeededImage:
    return next(image for image in seeded if image.reference == reference)


def _manifest(proxy: FaultProxy, repository: str, reference: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"{proxy.url}/v2/{repository}/manifests/{reference}", headers=ACCEPT, timeout=10)


def test_manifest_gets_are_limited_heads_and_blobs_are_not(
    limited: FaultProxy, seeded: list[SeededImage], tick: FakeMonotonic
) -> None:
    """N manifest GETs per window, then 429 TOOMANYREQUESTS with Docker Hub's headers and Retry-After."""
    nginx = _image(seeded, "library/nginx:1.27")
    # WHEN two manifests are fetched THEN both pass, the remaining count going down
    first = _manifest(limited, "library/nginx", "1.27")
    tick.now += 10
    second = _manifest(limited, "library/alpine", "3.20")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["RateLimit-Limit"] == "2;w=60"
    assert (first.headers["RateLimit-Remaining"], second.headers["RateLimit-Remaining"]) == ("1;w=60", "0;w=60")
    # WHEN a HEAD (version check) and blobs are asked THEN they pass and are not counted
    head = _manifest(limited, "library/nginx", "1.27", method="HEAD")
    assert head.status_code == 200
    assert head.headers["RateLimit-Remaining"] == "0;w=60"
    blob = requests.get(f"{limited.url}/v2/library/nginx/blobs/{nginx.blob_digests[0]}", timeout=10)
    assert blob.status_code == 200
    assert "RateLimit-Limit" not in blob.headers
    # WHEN a third manifest is fetched THEN 429 until the oldest pull leaves the window
    refused = _manifest(limited, "library/nginx", "1.27")
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "pull rate limit" in refused.json()["errors"][0]["message"]
    assert refused.headers["RateLimit-Limit"] == "2;w=60"
    assert refused.headers["RateLimit-Remaining"] == "0;w=60"
    assert refused.headers["Retry-After"] == "50"  # the first pull (t=0) leaves at t=60; now t=10
    tick.now += 50
    again = _manifest(limited, "library/nginx", "1.27")
    assert again.status_code == 200
    assert again.headers["RateLimit-Remaining"] == "0;w=60"  # the t=10 pull is still in the window


def test_counters_per_repository(limited: FaultProxy, seeded: list[SeededImage]) -> None:
    """Every request received, by kind and repository, throttled ones and body bytes sent."""
    nginx = _image(seeded, "library/nginx:1.27")
    sent = 0
    for _ in range(3):  # the third is throttled
        sent += len(_manifest(limited, "library/nginx", "1.27").content)
    _manifest(limited, "library/nginx", "1.27", method="HEAD")
    blob = requests.get(f"{limited.url}/v2/library/nginx/blobs/{nginx.blob_digests[0]}", timeout=10)
    sent += len(blob.content)
    requests.get(f"{limited.url}/v2/", timeout=10)
    counters = limited.counters()
    assert counters["repositories"] == {
        "library/nginx": {
            "manifest_gets": 3,
            "manifest_heads": 1,
            "blob_gets": 1,
            "blob_heads": 0,
            "other": 0,
            "pulls": 2,  # what Docker Hub counts: the served manifest GETs
            "throttled": 1,
            "faulted": 0,
            "unauthorized": 0,
            "bytes": sent,
        }
    }
    assert counters["total"]["other"] == 1  # /v2/ belongs to no repository
    assert counters["total"]["manifest_gets"] == 3
    limited.reset_counters()
    after = limited.counters()
    assert after["repositories"] == {}
    assert set(after["total"].values()) == {0}


def test_a_faulted_request_is_counted_but_does_not_use_the_limit(
    limited: FaultProxy, seeded: list[SeededImage]
) -> None:
    """Armed faults answer first: counted as faulted, the limit untouched."""
    limited.faults.add("503", times=1, path=r"/manifests/")
    assert _manifest(limited, "library/alpine", "3.20").status_code == 503
    assert limited.rate_limiter.snapshot()["remaining"] == 2
    assert limited.counters()["repositories"]["library/alpine"]["faulted"] == 1


def _hook(proxy: FaultProxy, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.request(method, f"{proxy.url}/_ecrcache/{path}", json=body, timeout=10)


def test_http_hooks_set_the_limit_arm_faults_and_read_counters(
    fault_proxy: FaultProxy, seeded: list[SeededImage]
) -> None:
    """Run-time control over HTTP on the proxy's port; hooks are neither counted nor limited."""
    # GIVEN no limit THEN manifests pass without rate-limit headers
    assert _hook(fault_proxy, "GET", "rate-limit").json() == {"limit": None, "window": None, "remaining": None}
    assert "RateLimit-Limit" not in _manifest(fault_proxy, "library/alpine", "3.20").headers
    # WHEN a limit of 1 per hour is set at run time THEN the next GET passes and the one after is refused
    assert _hook(fault_proxy, "PUT", "rate-limit", {"limit": 1, "window": 3600}).json() == {
        "limit": 1,
        "window": 3600,
        "remaining": 1,
    }
    assert _manifest(fault_proxy, "library/alpine", "3.20").headers["RateLimit-Limit"] == "1;w=3600"
    assert _manifest(fault_proxy, "library/alpine", "3.20").status_code == 429
    # WHEN it is removed THEN manifests pass again
    assert _hook(fault_proxy, "PUT", "rate-limit", {"limit": None}).json()["limit"] is None
    assert _manifest(fault_proxy, "library/alpine", "3.20").status_code == 200
    # WHEN a fault is armed over HTTP THEN the next matching request gets it
    armed = _hook(fault_proxy, "POST", "faults", {"kind": "500", "times": 1, "path": "/manifests/"})
    assert armed.json() == {"kind": "500", "times": 1, "pending": 1}
    assert _manifest(fault_proxy, "library/alpine", "3.20").status_code == 500
    _hook(fault_proxy, "POST", "faults", {"kind": "503", "times": 5})
    assert _hook(fault_proxy, "DELETE", "faults").json() == {"ok": True}
    assert fault_proxy.faults.pending == 0
    # THEN the counters saw the four registry requests only, and reset over HTTP
    counted = _hook(fault_proxy, "GET", "counters").json()["repositories"]["library/alpine"]
    assert (counted["manifest_gets"], counted["throttled"], counted["faulted"]) == (5, 1, 1)
    _hook(fault_proxy, "DELETE", "counters")
    assert _hook(fault_proxy, "GET", "counters").json()["repositories"] == {}


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("PUT", "rate-limit", {"window": 60}, "'limit' is required"),
        ("PUT", "rate-limit", {"limit": -1, "window": 60}, "limit must be a whole number"),
        ("PUT", "rate-limit", {"limit": 5, "window": 0}, "window must be a number of seconds > 0"),
        ("POST", "faults", {"kind": "418"}, "'kind' must be one of"),
        ("POST", "faults", {"kind": "500", "times": 0}, "times must be at least 1"),
        ("GET", "nothing-here", None, "no endpoint GET /_ecrcache/nothing-here"),
    ],
)
def test_bad_hook_requests_name_the_field(
    fault_proxy: FaultProxy, method: str, path: str, body: dict[str, Any] | None, message: str
) -> None:
    response = _hook(fault_proxy, method, path, body)
    assert response.status_code in {400, 404}
    assert message in response.json()["error"]

"""The embedded ECR against a rate-limited Docker Hub stand-in (the fault proxy in front of the token registry).

What the warming budget is about (ecr-facts §3.2, §7.2, §8 #15): ECR asks the upstream for one manifest
per image it imports (plus one per child of an index), nothing for a tag it validated within 24 hours,
and only a ``HEAD`` (not a Docker Hub pull) to re-validate after 24 hours; a ``429`` becomes the
per-image failure ``UpstreamTooManyRequests``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devstack.aws import clock, upstream
from devstack.registry import FaultProxy, LocalRegistry, RateLimit, SeededImage, UpstreamMap
from tests.functional.registry.support import PullThrough

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

START = datetime(2026, 5, 1, 6, 0, 0, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(token_registry: LocalRegistry, token_seeded: list[SeededImage]) -> Iterator[FaultProxy]:
    """Docker Hub: the token registry behind a proxy allowing 3 pulls per 6 hours."""
    with (
        FaultProxy(token_registry.url, rate_limit=RateLimit(3, 21600), rate_clock=FakeMonotonic()) as proxy,
        upstream.configured(upstream_map=UpstreamMap({"registry-1.docker.io": proxy.url})),
    ):
        yield proxy


def _image(seeded: list[SeededImage], reference: str) -> SeededImage:
    return next(image for image in seeded if image.reference == reference)


def test_pulls_spend_one_manifest_per_image_and_429_is_upstream_too_many_requests(
    ptc: PullThrough, hub: FaultProxy, token_seeded: list[SeededImage]
) -> None:
    node = _image(token_seeded, "library/node:18-alpine")
    assert len(node.children) == 2  # an index of two platforms: 3 manifests
    ptc.docker_hub_rule()
    with clock.FakeClock(START) as fake:
        # WHEN the multi-platform tag is pulled through the cache THEN 1 + 2 upstream pulls
        assert ptc.pull("docker-hub/library/node", tag="18-alpine")["failures"] == []
        spent = hub.counters()["repositories"]["library/node"]
        assert (spent["pulls"], spent["throttled"]) == (3, 0)
        assert spent["unauthorized"] >= 1  # the Bearer challenge before the token: no pull
        # WHEN it is pulled again within 24 hours THEN the upstream is not asked at all
        before = hub.counters()["total"]
        ptc.pull("docker-hub/library/node", tag="18-alpine")
        assert hub.counters()["total"] == before
        # WHEN another image is pulled with the limit spent THEN a per-image UpstreamTooManyRequests
        refused = ptc.pull("docker-hub/library/alpine", tag="3.20")
        assert refused["images"] == []
        assert refused["failures"][0]["failureCode"] == "UpstreamTooManyRequests"
        assert hub.counters()["repositories"]["library/alpine"]["throttled"] == 1
        failed_actions = [a["detail"] for a in ptc.actions() if a["detail"]["sync-status"] != "SUCCESS"]
        assert [a["failure-code"] for a in failed_actions] == ["UpstreamTooManyRequests"]
        # WHEN the cached tag is pulled after 24 hours THEN ECR re-validates with a HEAD: no pull spent
        fake.advance(hours=25)
        assert ptc.pull("docker-hub/library/node", tag="18-alpine")["failures"] == []
        after = hub.counters()["repositories"]["library/node"]
        assert after["pulls"] == 3
        assert after["manifest_heads"] >= 1
        assert hub.rate_limiter.snapshot()["remaining"] == 0
    # THEN when the window is over (here: the limit lifted at run time) the refused image comes through
    hub.set_rate_limit(RateLimit(100, 21600))
    with clock.FakeClock(START + timedelta(hours=26)):
        assert ptc.pull("docker-hub/library/alpine", tag="3.20")["failures"] == []

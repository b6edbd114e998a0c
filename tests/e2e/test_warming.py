"""Warming end to end on ``ecrcache local``: from the template's events only, nothing invoked by hand.

* pull statistics: users pull through the embedded ECR (IAM users of the embedded AWS, Docker's user
  agent) -> CloudTrail ``BatchGetImage`` events -> ``PullEventsRule`` -> ``PullEventsQueue`` ->
  ``PullStatsFunction`` (30 s batching window) -> ``GET /v1/pulls`` and ``ecrcache pulls``;
* a warm run: ``ecrcache warm NAME --wait`` -> ``POST /v1/warm-sets/{name}/runs`` -> ``REQUEST#warm``
  stream record -> ``WarmPlannerFunction`` -> ``WarmQueue`` -> ``WarmWorkerFunction`` -> ECR pulls through
  the cache from the seeded registry -> ``GET /v1/warm-sets/{name}/status`` and ``ecrcache status``;
* the warmer's own pulls are neither counted nor recorded as pull times (the reconciler's pull-time
  update exclusion of the warm worker's role);
* a rate-limited upstream (the registry's limit set at run time) stops a run with a clear status.

One pull-statistics batching window is waited for, once, by the module's fixture; the rate-limit test
runs last (it leaves Docker Hub's budget blocked in this stack for the limit's window).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.e2e.conftest import Cli, CliResult, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("e2e-stack")]  # one shared stack

PLATFORMS = ["linux/amd64", "linux/arm64"]
# Seeded multi-platform images (devstack.local.supervisor._seed_images) that no other e2e test touches.
PULLED = {"library/redis:7.4": 3, "library/busybox:1.37": 2}  # pulled by users, never warmed
WARMED = ("library/golang:1.23", "library/postgres:17")  # warmed (golang by a tag pattern), never pulled by a user
LIMITED = ("library/memcached:1.6", "library/traefik:3.1", "library/httpd:2.4")  # stopped by the rate limit
PREFIX = "docker-hub"
MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]
# What Docker sends (ECR's CloudTrail records it as userAgent; the pull statistics read os/ and arch/).
DOCKER_AGENT = "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.1.0 os/linux arch/{arch} UpstreamClient(Docker)"
# The pull statistics function gathers a batch for up to 30 s (template: MaximumBatchingWindowInSeconds).
PULL_STATS_WAIT = 90.0


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    pytest.fail(f"{what} did not happen within {timeout:g} s")


def ecr_repository(image: str) -> str:
    return f"{PREFIX}/{image.split(':', maxsplit=1)[0]}"


def ecr_tag(image: str) -> str:
    return image.split(":")[1]


def reference(image: str) -> str:
    return f"{PREFIX}/{image}"


class User:
    """Someone pulling through the cache: an IAM user of the embedded AWS (not the warmer), Docker's agent."""

    def __init__(self, stack: RunningStack, name: str, arch: str) -> None:
        iam = stack.client("iam")
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self.ecr = stack.client(
            "ecr", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
        )
        agent = DOCKER_AGENT.format(arch=arch)

        def as_docker(request: Any, **_: Any) -> None:
            request.headers["User-Agent"] = agent

        self.ecr.meta.events.register("before-send.ecr", as_docker)

    def pull(self, image: str) -> str:
        """``docker pull`` of a tag's manifest (or index) through the cache; its digest."""
        answer = self.ecr.batch_get_image(
            repositoryName=ecr_repository(image),
            imageIds=[{"imageTag": ecr_tag(image)}],
            acceptedMediaTypes=MANIFEST_TYPES,
        )
        assert not answer["failures"], answer["failures"]
        return str(answer["images"][0]["imageId"]["imageDigest"])


@dataclass
class Warming:
    stack: RunningStack
    warm: CliResult
    status: dict[str, Any]
    pulls: dict[str, Any]
    pulls_cli: CliResult
    digests: dict[str, str]


def write(tmp: Path, name: str, document: dict[str, Any]) -> str:
    path = tmp / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def counted(pulls: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{item['repository']}:{item['tag']}": item for item in pulls["items"] if item.get("tag")}


@pytest.fixture(scope="module")
def warming(cli: Cli, applied: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warming]:
    """Users pull, a warm set is warmed, a user pulls once more; then one wait until that last pull is counted."""
    tmp = tmp_path_factory.mktemp("warming")
    api = applied.api
    # GIVEN two users pulling through the cache (before the warm run)
    users = [User(applied, "e2e-ci-amd64", "amd64"), User(applied, "e2e-ci-arm64", "arm64")]
    digests: dict[str, str] = {}
    for image, times in PULLED.items():
        for turn in range(times - (1 if image == "library/busybox:1.37" else 0)):
            digests[image] = users[turn % 2].pull(image)

    # WHEN a warm set of images nobody pulled is warmed: one pinned, one matched in the upstream's tag list
    # (the planner lists the local registry's tags: UPSTREAM_ENDPOINTS is the one local override)
    spec = {"rule": PREFIX, "images": [WARMED[1]], "tag_patterns": ["library/golang:1.*"], "platforms": PLATFORMS}
    document = {"version": 1, "warm_sets": {"e2e-warm": spec}}
    cli.ok("apply", "-f", write(tmp, "warm.yaml", document), "--timeout", "60")
    warm = cli("warm", "e2e-warm", "--wait", "--timeout", "120")
    status = requests.get(f"{api}/warm-sets/e2e-warm/status", timeout=30).json()

    # AND a user pulls once more after it: once that pull is counted, everything before it has been
    # (one queue, delivered in order), the warmer's pulls included -- one batching window for every test
    users[0].pull("library/busybox:1.37")

    def last_pull_counted() -> dict[str, Any] | None:
        pulls = requests.get(f"{api}/pulls", params={"rule": PREFIX, "window_days": "7"}, timeout=30).json()
        item = counted(pulls).get(reference("library/busybox:1.37"))
        return pulls if item is not None and item["pulls"] >= PULLED["library/busybox:1.37"] else None

    pulls = wait_for("the last pull in GET /v1/pulls", last_pull_counted, PULL_STATS_WAIT)
    pulls_cli = cli.ok("pulls", "--rule", PREFIX, "--window", "7")
    yield Warming(applied, warm, status, pulls, pulls_cli, digests)


# ---- pull statistics ----------------------------------------------------------------------------


def test_pulls_through_the_cache_are_counted_from_ecrs_cloudtrail_events(warming: Warming) -> None:
    items = counted(warming.pulls)
    for image, times in PULLED.items():
        item = items[reference(image)]
        assert item["pulls"] == times
        assert sorted(item["daily"]) == [0] * 6 + [times]  # one day of 7 (today, unless midnight UTC passed)
        assert item["digests"] == [warming.digests[image]]
    redis, busybox = items[reference("library/redis:7.4")], items[reference("library/busybox:1.37")]
    assert (redis["principals"], busybox["principals"]) == (2, 1)  # IAM users: counted, never named
    assert sorted(redis["platforms"]) == PLATFORMS  # from Docker's user agent
    assert "e2e-ci" not in json.dumps(warming.pulls)


def test_ecrcache_pulls_shows_the_most_pulled_tags_with_a_sparkline(warming: Warming) -> None:
    lines = warming.pulls_cli.stdout.splitlines()
    redis = next(line for line in lines if reference("library/redis:7.4") in line)
    busybox = next(line for line in lines if reference("library/busybox:1.37") in line)
    assert lines.index(redis) < lines.index(busybox)  # most pulled first
    assert redis.split()[1] == "3"
    [spark] = [word for word in redis.split() if set(word) <= set("▁▂▃▄▅▆▇█")]
    assert sorted(spark) == sorted("▁▁▁▁▁▁█")  # 7 days, pulls on one of them


# ---- a warm run ---------------------------------------------------------------------------------


def test_a_warm_run_warms_and_verifies_every_image_for_every_platform(warming: Warming) -> None:
    assert warming.warm.code == 0, warming.warm.output
    run = warming.status["run"]
    assert run["status"] == "succeeded"
    assert run["counts"] == {"warmed": len(WARMED)}
    images = {f"{i['repository']}:{i['tag']}": i for i in warming.status["images"]}
    assert set(images) == {reference(image) for image in WARMED}
    ecr = warming.stack.client("ecr")
    counters = requests.get(f"{warming.stack.ready['registry']}/_ecrcache/counters", timeout=30).json()
    for image in WARMED:
        outcome = images[reference(image)]
        assert outcome["outcome"] == "warmed", outcome
        assert outcome["platforms_verified"] == PLATFORMS
        assert outcome["platforms_missing"] == []
        # the index and its two children, each fetched from the upstream once: what the run says it spent
        upstream = counters["repositories"][image.split(":")[0]]
        assert outcome["upstream_requests"] == upstream["pulls"] == 3
        # independently: ECR holds the index and both platforms' images
        described = ecr.describe_images(repositoryName=ecr_repository(image))["imageDetails"]
        assert outcome["digest"] in {d["imageDigest"] for d in described}
        assert len(described) == 3
    assert run["upstream_requests"] == 3 * len(WARMED) + 1  # and one page of golang's tag list


def test_ecrcache_warm_and_status_show_the_run(warming: Warming, cli: Cli) -> None:
    assert "succeeded" in warming.warm.stdout
    assert reference(WARMED[0]) in warming.warm.stdout
    assert "linux/amd64,linux/arm64" in warming.warm.stdout
    status = cli.ok("status").stdout
    warm_sets = status[status.index("Warm sets:") :]
    row = next(line for line in warm_sets.splitlines() if line.startswith("e2e-warm "))
    assert "succeeded" in row
    assert row.split()[3] == str(len(WARMED))  # WARMED column


# ---- the warmer's own pulls ---------------------------------------------------------------------


def test_the_warmers_own_pulls_are_not_counted(warming: Warming) -> None:
    # the warm worker did pull through the cache (CloudTrail BatchGetImage events of its role) ...
    role = warming.stack.client("iam").get_role(RoleName="ecrcache-e2e-WarmWorkerFunction-role")["Role"]["RoleName"]
    recent = requests.get(f"{warming.stack.aws}/_ecrcache/events/recent", timeout=30).json()["events"]
    warmer_pulls = [
        e
        for e in recent
        if e.get("detail", {}).get("eventName") == "BatchGetImage"
        and f"assumed-role/{role}/" in e["detail"].get("userIdentity", {}).get("arn", "")
    ]
    assert {e["detail"]["requestParameters"]["repositoryName"] for e in warmer_pulls} >= {
        ecr_repository(image) for image in WARMED
    }
    # ... and none of them counts (counted pulls after them are there: they were delivered by now)
    items = counted(warming.pulls)
    assert [items.get(reference(image), {}).get("pulls", 0) for image in WARMED] == [0] * len(WARMED)


def test_the_reconciler_excludes_the_warmer_from_pull_times(warming: Warming) -> None:
    ecr = warming.stack.client("ecr")
    role = warming.stack.client("iam").get_role(RoleName="ecrcache-e2e-WarmWorkerFunction-role")["Role"]["Arn"]
    assert role in ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
    # so the warmer's pulls left no pull time, the users' did (what sinceImagePulled archive rules read)
    warmed = ecr.describe_images(repositoryName=ecr_repository(WARMED[0]))["imageDetails"]
    pulled = ecr.describe_images(repositoryName=ecr_repository("library/redis:7.4"))["imageDetails"]
    assert [d for d in warmed if "lastRecordedPullTime" in d] == []
    assert [d for d in pulled if "lastRecordedPullTime" in d]


# ---- a rate-limited upstream (last: Docker Hub's budget stays blocked for the limit's window) -----


def test_a_rate_limited_upstream_stops_the_run_with_a_clear_status(warming: Warming, cli: Cli, tmp_path: Path) -> None:
    registry = warming.stack.ready["registry"]
    document = {
        "version": 1,
        "warm_sets": {"e2e-limited": {"rule": PREFIX, "images": list(LIMITED), "platforms": PLATFORMS}},
    }
    cli.ok("apply", "-f", write(tmp_path, "limited.yaml", document), "--timeout", "60")
    # GIVEN the upstream allows one more manifest request this hour (set at run time, as Docker Hub's limit)
    limit = requests.put(f"{registry}/_ecrcache/rate-limit", json={"limit": 1, "window": 3600}, timeout=30)
    assert limit.json()["remaining"] == 1
    try:
        # WHEN the set is warmed
        warm = cli("warm", "e2e-limited", "--wait", "--timeout", "120")
        counters = requests.get(f"{registry}/_ecrcache/counters", timeout=30).json()
    finally:
        requests.put(f"{registry}/_ecrcache/rate-limit", json={"limit": None}, timeout=30)

    # THEN the run ends not succeeded (exit 6), the first image failed on the 429 ...
    assert warm.code == 6, warm.output
    status = requests.get(f"{warming.stack.api}/warm-sets/e2e-limited/status", timeout=30).json()
    assert status["run"]["status"] in {"failed", "partial"}
    assert status["run"]["stopped_upstreams"] == ["registry-1.docker.io"]
    outcomes = [image["outcome"] for image in status["images"]]
    assert all(image["failure_class"] == "rate_limit" for image in status["images"]), status["images"]
    assert outcomes.count("failed") == 1
    # ... and stopped the rest of the run for that upstream: skipped, never requested
    assert outcomes.count("skipped") == len(LIMITED) - 1
    assert counters["total"]["throttled"] >= 1
    requested = [name for name in counters["repositories"] if f"{name}:" in " ".join(LIMITED)]
    assert len(requested) == 1
    failed = next(image for image in status["images"] if image["outcome"] == "failed")
    assert "429" in failed["message"]
    assert "rate_limit" in warm.stdout
    assert "skipped" in warm.stdout
    assert re.search(r"stopped upstreams: +registry-1\.docker\.io", warm.stdout)

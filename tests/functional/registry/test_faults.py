"""Fault proxy and host mapping: the upstream failures ECR must classify (ecr-facts §5.2, §9.12)."""

from __future__ import annotations

import time

import pytest
import requests

from devstack.registry import (
    FaultKind,
    FaultProxy,
    LocalRegistry,
    RegistryClient,
    RegistryConnectionError,
    RegistryError,
    SeededImage,
    Seeder,
    UnmappedUpstreamError,
    UpstreamMap,
)
from devstack.registry.upstream_map import KNOWN_UPSTREAM_HOSTS

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional


def test_rate_limit_answers_the_next_n_matching_requests_then_passes(
    fault_proxy: FaultProxy, seeded: list[SeededImage]
) -> None:
    """ecr-facts §8 #15: Docker Hub `toomanyrequests` (429 + Retry-After) for the next N manifest GETs."""
    # GIVEN two 429s armed for manifest requests only
    fault_proxy.faults.add(FaultKind.TOO_MANY_REQUESTS, times=2, path=r"/manifests/", retry_after=7)
    with RegistryClient(fault_proxy.url) as client:
        # WHEN a blob is requested THEN it is not affected
        assert client.blob_exists("library/nginx", seeded[-1].blob_digests[0])
        # WHEN the manifest is requested twice THEN 429 with Retry-After, twice
        for _ in range(2):
            with pytest.raises(RegistryError) as excinfo:
                client.get_manifest("library/nginx", "1.27")
            assert excinfo.value.status == 429
            assert excinfo.value.code == "TOOMANYREQUESTS"
            assert excinfo.value.retry_after == 7
        # WHEN asked a third time THEN the fault is spent and the registry answers
        assert client.get_manifest("library/nginx", "1.27").digest == seeded[-1].digest
    assert fault_proxy.faults.pending == 0
    assert [r.fault for r in fault_proxy.requests].count(FaultKind.TOO_MANY_REQUESTS) == 2


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (FaultKind.SERVER_ERROR, 500),
        (FaultKind.BAD_GATEWAY, 502),
        (FaultKind.UNAVAILABLE, 503),
        (FaultKind.UNAUTHORIZED, 401),
        (FaultKind.FORBIDDEN, 403),
        (FaultKind.NOT_FOUND, 404),
    ],
)
def test_status_faults(fault_proxy: FaultProxy, seeded: list[SeededImage], kind: FaultKind, status: int) -> None:
    """Each injected status reaches the client as that status (401 even after answering the challenge)."""
    fault_proxy.faults.add(kind, times=2)
    with RegistryClient(fault_proxy.url, username="u", password="p") as client, pytest.raises(RegistryError) as excinfo:
        client.get_manifest("library/alpine", "3.20")
    assert excinfo.value.status == status


def test_timeout_fault_sleeps_past_the_client_timeout_and_is_bounded(
    fault_proxy: FaultProxy, seeded: list[SeededImage]
) -> None:
    """A hung upstream: the client gives up at its own timeout; the proxy's sleep is capped."""
    # GIVEN a timeout fault longer than the proxy's cap (5 s in this fixture)
    fault = fault_proxy.faults.add(FaultKind.TIMEOUT, delay=3600)
    assert fault.delay == 5.0
    started = time.monotonic()
    # WHEN a client with a short timeout asks
    with RegistryClient(fault_proxy.url, timeout=0.3) as client, pytest.raises(RegistryConnectionError) as excinfo:
        client.get_manifest("library/alpine", "3.20")
    # THEN it failed as a timeout, quickly
    assert excinfo.value.timeout
    assert time.monotonic() - started < 3


def test_connection_reset_fault(fault_proxy: FaultProxy, seeded: list[SeededImage]) -> None:
    fault_proxy.faults.add(FaultKind.RESET)
    with RegistryClient(fault_proxy.url) as client, pytest.raises(RegistryConnectionError):
        client.get_manifest("library/alpine", "3.20")


def test_pushes_work_through_the_proxy(fault_proxy: FaultProxy, unique_repo: str) -> None:
    """Upload `Location` headers point back at the proxy, so a seeder can push through it."""
    with RegistryClient(fault_proxy.url) as client:
        pushed = Seeder(client).image(unique_repo, "v1")
        assert client.get_manifest(unique_repo, "v1").digest == pushed.digest
    assert all(r.host == fault_proxy.url.removeprefix("http://") for r in fault_proxy.requests)


def test_one_proxy_routes_upstream_hosts_to_their_registries(
    registry: LocalRegistry, auth_registry: LocalRegistry, seeded: list[SeededImage]
) -> None:
    """ecr-facts §1.4 hosts: `registry-1.docker.io` and `ghcr.io` served by different local registries."""
    routes = UpstreamMap({"registry-1.docker.io": registry.url, "ghcr.io": auth_registry.url})
    with FaultProxy(routes) as proxy:
        # WHEN requests carry the upstream host in the Host header
        docker = requests.get(f"{proxy.url}/v2/", headers={"Host": "registry-1.docker.io"}, timeout=5)
        ghcr = requests.get(f"{proxy.url}/v2/", headers={"Host": "ghcr.io"}, timeout=5)
        unknown = requests.get(f"{proxy.url}/v2/", headers={"Host": "quay.io"}, timeout=5)
    # THEN each reached its own registry (anonymous 200, htpasswd 401) and unmapped hosts get 502
    assert docker.status_code == 200
    assert ghcr.status_code == 401
    assert unknown.status_code == 502


def test_upstream_map_from_env_and_patterns() -> None:
    """$ECRCACHE_UPSTREAM_MAP parsing; exact hosts win over patterns; unmapped hosts are an error."""
    mapping = UpstreamMap.from_env(
        {
            "ECRCACHE_UPSTREAM_MAP": "registry-1.docker.io=http://127.0.0.1:5000, ghcr.io=http://127.0.0.1:5001/,"
            "*.azurecr.io=http://127.0.0.1:5002,special.azurecr.io=http://127.0.0.1:5003,"
            "*.dkr.ecr.*.amazonaws.com=http://127.0.0.1:5004"
        }
    )
    assert mapping.resolve("https://registry-1.docker.io/") == "http://127.0.0.1:5000"
    assert mapping.resolve("ghcr.io") == "http://127.0.0.1:5001"
    assert mapping.resolve("myteam.azurecr.io") == "http://127.0.0.1:5002"
    assert mapping.resolve("special.azurecr.io") == "http://127.0.0.1:5003"
    assert mapping.resolve("111122223333.dkr.ecr.eu-west-1.amazonaws.com") == "http://127.0.0.1:5004"
    assert UpstreamMap.parse(mapping.to_env()).items() == mapping.items()
    with pytest.raises(UnmappedUpstreamError, match="ECRCACHE_UPSTREAM_MAP"):
        mapping.resolve("quay.io")
    with pytest.raises(ValueError, match="expected host="):
        UpstreamMap.parse("ghcr.io")
    with pytest.raises(ValueError, match="base URL"):
        UpstreamMap.parse("ghcr.io=ftp://x")
    everything = UpstreamMap.all_to("http://127.0.0.1:5000")
    assert len(everything) == len(KNOWN_UPSTREAM_HOSTS)
    assert "cgr.dev" in everything

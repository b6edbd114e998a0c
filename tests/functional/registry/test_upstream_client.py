"""The fake ECR's upstream client: auth challenges and ECR failure codes (ecr-facts §2, §5.2, §7.2, §9.12)."""

from __future__ import annotations

import pytest

from devstack.aws.ports import UpstreamAuthChecker
from devstack.aws.upstream import (
    RegistryAuthChecker,
    UpstreamAccessDenied,
    UpstreamClient,
    UpstreamCredentials,
    UpstreamFailure,
    UpstreamNotFound,
    UpstreamTooManyRequests,
    UpstreamUnavailable,
    configured,
    get_auth_checker,
    settings,
)
from devstack.registry import FaultKind, FaultProxy, LocalRegistry, SeededImage, Seeder, UpstreamMap
from tests.functional.registry.support import AUTH_CREDENTIALS

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

GOOD = UpstreamCredentials(AUTH_CREDENTIALS.username, AUTH_CREDENTIALS.password)
BAD = UpstreamCredentials(AUTH_CREDENTIALS.username, "expired-token")


def _client(url: str, creds: UpstreamCredentials | None = None, timeout: float = 5.0) -> UpstreamClient:
    return UpstreamClient("registry-1.docker.io", creds, upstream_map=UpstreamMap.all_to(url), timeout=timeout)


@pytest.mark.parametrize("registry_fixture", ["registry", "auth_registry", "token_registry"])
def test_fetches_and_verifies_an_index_and_its_children(
    request: pytest.FixtureRequest, registry_fixture: str, unique_repo: str
) -> None:
    """ecr-facts §3.3 steps 2-4, anonymous / Basic / Bearer upstreams: manifest list -> children -> blobs."""
    # GIVEN a multi-platform image in the upstream
    upstream: LocalRegistry = request.getfixturevalue(registry_fixture)
    with Seeder.for_registry(upstream) as seeder:
        image = seeder.image(unique_repo, "1.0")
    creds = GOOD if upstream.credentials else None
    # WHEN the fake ECR's client fetches it the way a pull-through does
    with _client(upstream.url, creds) as client:
        index = client.get_manifest(unique_repo, "1.0")
        children = [client.get_manifest(unique_repo, child.digest) for child in index.children]
        blobs = {d.digest: client.get_blob(unique_repo, d.digest) for child in children for d in child.blobs}
        size = client.head_blob(unique_repo, image.blob_digests[0])
    # THEN everything matches what was pushed, digests verified
    assert index.digest == image.digest
    assert index.is_index
    assert [c.digest for c in children] == list(image.child_digests)
    assert set(blobs) == set(image.blob_digests)
    assert size == len(blobs[image.blob_digests[0]])


@pytest.mark.parametrize("registry_fixture", ["auth_registry", "token_registry"])
def test_wrong_or_missing_credentials_are_access_denied(request: pytest.FixtureRequest, registry_fixture: str) -> None:
    """ecr-facts §2 "Wrong/expired credentials" -> UpstreamAccessDenied (Basic and Bearer upstreams)."""
    upstream: LocalRegistry = request.getfixturevalue(registry_fixture)
    for creds in (BAD, None):
        with _client(upstream.url, creds) as client, pytest.raises(UpstreamAccessDenied) as excinfo:
            client.get_manifest("library/node", "18-alpine")
        assert excinfo.value.failure_code == "UpstreamAccessDenied"
        assert "expired-token" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("kind", "expected", "code"),
    [
        (FaultKind.TOO_MANY_REQUESTS, UpstreamTooManyRequests, "UpstreamTooManyRequests"),
        (FaultKind.SERVER_ERROR, UpstreamUnavailable, "UpstreamUnavailable"),
        (FaultKind.BAD_GATEWAY, UpstreamUnavailable, "UpstreamUnavailable"),
        (FaultKind.UNAVAILABLE, UpstreamUnavailable, "UpstreamUnavailable"),
        (FaultKind.TIMEOUT, UpstreamUnavailable, "UpstreamUnavailable"),
        (FaultKind.RESET, UpstreamUnavailable, "UpstreamUnavailable"),
        (FaultKind.UNAUTHORIZED, UpstreamAccessDenied, "UpstreamAccessDenied"),
        (FaultKind.FORBIDDEN, UpstreamAccessDenied, "UpstreamAccessDenied"),
        (FaultKind.NOT_FOUND, UpstreamNotFound, "ImageNotFound"),
    ],
)
def test_upstream_failures_map_to_ecr_failure_codes(
    fault_proxy: FaultProxy,
    seeded: list[SeededImage],
    kind: FaultKind,
    expected: type[UpstreamFailure],
    code: str,
) -> None:
    """ecr-facts §5.2 ImageFailureCode: 401/403, 429, 5xx/timeout/reset, 404 each become their ECR code."""
    # GIVEN the upstream (behind the fault proxy) answers with the fault
    fault_proxy.faults.add(kind, times=2, retry_after=30 if kind is FaultKind.TOO_MANY_REQUESTS else None, delay=2)
    # WHEN the manifest is fetched
    with _client(fault_proxy.url, GOOD, timeout=0.5) as client, pytest.raises(expected) as excinfo:
        client.get_manifest("library/alpine", "3.20")
    # THEN the failure carries the ECR failure code (and Retry-After for 429)
    assert excinfo.value.failure_code == code
    if kind is FaultKind.TOO_MANY_REQUESTS:
        assert excinfo.value.retry_after == 30


def test_unknown_tag_and_unmapped_host() -> None:
    """404 -> ImageNotFound; a host nobody mapped -> UpstreamUnavailable naming the env variable."""
    with UpstreamClient("quay.io", upstream_map=UpstreamMap()) as client, pytest.raises(UpstreamUnavailable) as exc:
        client.get_manifest("argoproj/argocd", "v2")
    assert "ECRCACHE_UPSTREAM_MAP" in str(exc.value)


def test_missing_tag_is_image_not_found(registry: LocalRegistry, seeded: list[SeededImage]) -> None:
    with _client(registry.url) as client, pytest.raises(UpstreamNotFound) as excinfo:
        client.get_manifest("library/alpine", "0.0-does-not-exist")
    assert excinfo.value.failure_code == "ImageNotFound"


def test_a_failure_names_the_manifest_by_tag_or_by_digest(registry: LocalRegistry, seeded: list[SeededImage]) -> None:
    digest = "sha256:" + "0" * 64
    with _client(registry.url) as client:
        with pytest.raises(UpstreamNotFound) as by_tag:
            client.get_manifest("library/alpine", "0.0-does-not-exist")
        with pytest.raises(UpstreamNotFound) as by_digest:
            client.get_manifest("library/alpine", digest)
    assert "registry-1.docker.io/library/alpine:0.0-does-not-exist" in str(by_tag.value)
    # a digest is named with "@" (it read "library/alpine:sha256:..." in the warm runs' messages)
    assert f"registry-1.docker.io/library/alpine@{digest}" in str(by_digest.value)


@pytest.mark.parametrize("registry_fixture", ["auth_registry", "token_registry"])
def test_auth_checker_really_authenticates(request: pytest.FixtureRequest, registry_fixture: str) -> None:
    """ecr-facts §1.2 ValidatePullThroughCacheRule: reads the secret, connects upstream, checks auth."""
    upstream: LocalRegistry = request.getfixturevalue(registry_fixture)
    checker = RegistryAuthChecker(UpstreamMap.all_to(upstream.url), timeout=5)
    assert isinstance(checker, UpstreamAuthChecker)
    common = {
        "upstream_registry": "docker-hub",
        "upstream_registry_url": "registry-1.docker.io",
        "upstream_repository_prefix": "ROOT",
        "username": AUTH_CREDENTIALS.username,
    }
    # WHEN the right token is checked THEN valid
    assert checker.check(**common, access_token=AUTH_CREDENTIALS.password).is_valid
    # WHEN a wrong token is checked THEN invalid, with a reason that does not leak the token
    result = checker.check(**common, access_token="expired-token")
    assert not result.is_valid
    assert result.failure is not None
    assert result.failure.startswith("UpstreamAccessDenied")
    assert "expired-token" not in result.failure


def test_process_settings_are_scoped(registry: LocalRegistry) -> None:
    """`configured()` changes the process-wide map and timeout and restores them; the factory uses them."""
    before = settings()
    with configured(upstream_map=registry.upstream_map(), timeout=1.5) as current:
        assert current.timeout == 1.5
        assert settings().upstream_map.resolve("ghcr.io") == registry.url
        result = get_auth_checker().check(
            upstream_registry="github-container-registry",
            upstream_registry_url="ghcr.io",
            upstream_repository_prefix="ROOT",
            username="anyone",
            access_token="anything",
        )
        assert result.is_valid  # an anonymous registry accepts anyone
    assert settings() is before

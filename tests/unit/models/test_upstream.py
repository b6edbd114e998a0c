"""Per-kind upstream facts: URLs, credential and custom-role rules (ecr-facts §1.4)."""

from __future__ import annotations

import pytest

from ecrcache.models.upstream import (
    CREDENTIAL_KINDS,
    UPSTREAMS,
    UpstreamKind,
    allows_custom_role,
    check_url,
    default_url,
    facts,
    infer_kind,
    parse_ecr_url,
    requires_credential,
    url_matches,
)

pytestmark = pytest.mark.unit

AZURE_URL = "myregistry.azurecr.io"
ECR_URL = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"

FIXED_URLS = {
    UpstreamKind.DOCKER_HUB: "registry-1.docker.io",
    UpstreamKind.GITHUB_CONTAINER_REGISTRY: "ghcr.io",
    UpstreamKind.QUAY: "quay.io",
    UpstreamKind.GITLAB_CONTAINER_REGISTRY: "registry.gitlab.com",
    UpstreamKind.ECR_PUBLIC: "public.ecr.aws",
    UpstreamKind.K8S: "registry.k8s.io",
    UpstreamKind.CHAINGUARD: "cgr.dev",
}
VALID_URL = {**FIXED_URLS, UpstreamKind.AZURE_CONTAINER_REGISTRY: AZURE_URL, UpstreamKind.ECR: ECR_URL}
NEEDS_CREDENTIAL = {
    UpstreamKind.DOCKER_HUB,
    UpstreamKind.GITHUB_CONTAINER_REGISTRY,
    UpstreamKind.GITLAB_CONTAINER_REGISTRY,
    UpstreamKind.AZURE_CONTAINER_REGISTRY,
    UpstreamKind.CHAINGUARD,
}


def test_upstream_kind_values_are_ecrs_upstream_registry_enum() -> None:
    # GIVEN ECR's UpstreamRegistry enum (botocore model)
    ecr_enum = {
        "ecr",
        "ecr-public",
        "quay",
        "k8s",
        "docker-hub",
        "github-container-registry",
        "azure-container-registry",
        "gitlab-container-registry",
        "chainguard",
    }
    # WHEN / THEN our enum has exactly those values and the table one entry per kind
    assert {k.value for k in UpstreamKind} == ecr_enum
    assert set(UPSTREAMS) == set(UpstreamKind)
    assert all(facts(k).kind is k for k in UpstreamKind)


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_default_url_is_the_fixed_url_or_none(kind: UpstreamKind) -> None:
    # GIVEN a kind / WHEN asking its default URL
    url = default_url(kind)
    # THEN fixed-URL kinds default, azure and ecr (user's own registry) have none
    assert url == FIXED_URLS.get(kind)


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_check_url_accepts_the_kinds_url_and_lowercases_it(kind: UpstreamKind) -> None:
    # GIVEN the kind's valid URL in upper case
    url = VALID_URL[kind].upper()
    # WHEN checking it / THEN it is accepted and lowercased
    assert check_url(kind, url) == VALID_URL[kind]
    assert url_matches(kind, VALID_URL[kind])


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_check_url_rejects_another_kinds_url_naming_both_kinds(kind: UpstreamKind) -> None:
    # GIVEN the URL of a different kind
    other = UpstreamKind.QUAY if kind is not UpstreamKind.QUAY else UpstreamKind.K8S
    # WHEN checking it for kind / THEN the message names the URL's real kind and the expected one
    with pytest.raises(ValueError, match=f"is the URL of upstream_kind '{other.value}', not '{kind.value}'"):
        check_url(kind, VALID_URL[other])


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_check_url_rejects_unknown_host_with_the_expected_shape(kind: UpstreamKind) -> None:
    # GIVEN an unsupported registry host (Harbor is not an ECR upstream)
    # WHEN / THEN the error shows what the kind needs
    with pytest.raises(ValueError, match=f"upstream_kind '{kind.value}' needs upstream_url"):
        check_url(kind, "harbor.example.com")


@pytest.mark.parametrize(
    ("kind", "url", "message"),
    [
        (UpstreamKind.DOCKER_HUB, "docker.io", "registry-1.docker.io, not docker.io"),
        (UpstreamKind.DOCKER_HUB, "index.docker.io", "not index.docker.io"),
        (UpstreamKind.DOCKER_HUB, "https://registry-1.docker.io", "without a scheme"),
        (UpstreamKind.K8S, "k8s.gcr.io", "registry.k8s.io"),
        (UpstreamKind.QUAY, "quay.io/", "needs upstream_url quay.io"),
        (UpstreamKind.QUAY, "quay.io:443", "needs upstream_url quay.io"),
        (UpstreamKind.CHAINGUARD, "cgr.dev/my-org", "needs upstream_url cgr.dev"),
    ],
)
def test_check_url_explains_common_mistakes(kind: UpstreamKind, url: str, message: str) -> None:
    # GIVEN a URL people often write / WHEN checking / THEN the message says what to write
    with pytest.raises(ValueError, match=message):
        check_url(kind, url)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("myregistry.azurecr.io", True),
        ("abcde.azurecr.io", True),
        ("a" * 50 + ".azurecr.io", True),
        ("abcd.azurecr.io", False),  # registry names are 5-50 characters
        ("a" * 51 + ".azurecr.io", False),
        ("my-registry.azurecr.io", False),  # alphanumerics only
        ("myregistry.azurecr.io.evil.com", False),
        ("azurecr.io", False),
        ("myregistry.azurecr.cn", False),
    ],
)
def test_azure_url_pattern(url: str, ok: bool) -> None:
    # GIVEN an ACR login server / WHEN matched against the azure rule / THEN only <5-50 alnum>.azurecr.io passes
    assert url_matches(UpstreamKind.AZURE_CONTAINER_REGISTRY, url) is ok


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", True),
        ("123456789012.dkr.ecr.ap-southeast-4.amazonaws.com", True),
        ("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", True),
        ("12345678901.dkr.ecr.us-east-1.amazonaws.com", False),  # 11 digits
        ("1234567890123.dkr.ecr.us-east-1.amazonaws.com", False),  # 13 digits
        ("123456789012.dkr.ecr.amazonaws.com", False),  # no region
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn", False),
        ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", False),
        ("public.ecr.aws", False),
    ],
)
def test_ecr_url_pattern(url: str, ok: bool) -> None:
    # GIVEN a private ECR registry URL / WHEN matched / THEN only <12 digits>.dkr.ecr.<region>.amazonaws.com passes
    assert url_matches(UpstreamKind.ECR, url) is ok


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_infer_kind_from_url(kind: UpstreamKind) -> None:
    # GIVEN a kind's URL / WHEN inferring the kind (as ECR does without upstreamRegistry) / THEN it is found
    assert infer_kind(VALID_URL[kind]) is kind
    assert infer_kind(VALID_URL[kind].upper()) is kind


@pytest.mark.parametrize("url", ["docker.io", "gcr.io", "harbor.example.com", "", "ghcr.io/owner"])
def test_infer_kind_returns_none_for_unsupported_urls(url: str) -> None:
    # GIVEN a URL ECR does not support / WHEN / THEN no kind
    assert infer_kind(url) is None


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_requires_credential_per_kind(kind: UpstreamKind) -> None:
    # GIVEN the auth matrix of ecr-facts §1.4 / WHEN / THEN exactly the five secret-based kinds need one
    assert requires_credential(kind) is (kind in NEEDS_CREDENTIAL)
    assert (kind in CREDENTIAL_KINDS) is (kind in NEEDS_CREDENTIAL)


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_allows_custom_role_only_for_ecr(kind: UpstreamKind) -> None:
    # GIVEN any kind / WHEN / THEN only ecr takes a customRoleArn
    assert allows_custom_role(kind) is (kind is UpstreamKind.ECR)


def test_parse_ecr_url_returns_account_and_region() -> None:
    # GIVEN a private ECR URL and a non-ECR URL / WHEN parsing / THEN account and region, or None
    assert parse_ecr_url(ECR_URL) == ("210987654321", "eu-west-1")
    assert parse_ecr_url("ghcr.io") is None

"""The upstream registries ECR pull-through cache supports, and what each one requires.

One table, :data:`UPSTREAMS`, holds the per-kind facts from the ECR user guide (ecr-facts §1.4):
the fixed registry URL or the URL pattern, whether a Secrets Manager credential is required or
forbidden, and whether a ``customRoleArn`` is allowed. Everything else in the models asks this table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class UpstreamKind(StrEnum):
    """ECR's ``UpstreamRegistry`` enum, value for value."""

    DOCKER_HUB = "docker-hub"
    GITHUB_CONTAINER_REGISTRY = "github-container-registry"
    QUAY = "quay"
    GITLAB_CONTAINER_REGISTRY = "gitlab-container-registry"
    AZURE_CONTAINER_REGISTRY = "azure-container-registry"
    ECR = "ecr"
    ECR_PUBLIC = "ecr-public"
    K8S = "k8s"
    CHAINGUARD = "chainguard"


class CredentialPolicy(StrEnum):
    """Whether a rule for an upstream kind takes a Secrets Manager credential."""

    REQUIRED = "required"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class UpstreamFacts:
    """What ECR requires of a rule for one upstream kind."""

    kind: UpstreamKind
    display_name: str
    fixed_url: str | None
    """The only URL ECR accepts for this kind; ``None`` when the URL names the user's own registry."""
    url_pattern: re.Pattern[str]
    url_hint: str
    """The accepted URL shape, written for people (used in error messages)."""
    credential: CredentialPolicy
    custom_role_allowed: bool
    console_prefix: str
    """The ECR console's default repository prefix for this kind (a suggestion, nothing enforces it)."""

    @property
    def requires_credential(self) -> bool:
        return self.credential is CredentialPolicy.REQUIRED


def _fixed(url: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(url)}$")


AZURE_URL_RE: Final = re.compile(r"^([a-z0-9]{5,50})\.azurecr\.io$")
"""ACR login servers: ``<registry name>.azurecr.io``; registry names are 5-50 alphanumerics."""
ECR_URL_RE: Final = re.compile(r"^([0-9]{12})\.dkr\.ecr\.([a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2})\.amazonaws\.com$")
"""Private ECR registries: ``<12-digit account>.dkr.ecr.<region>.amazonaws.com``."""

_FACTS: Final = (
    UpstreamFacts(
        UpstreamKind.DOCKER_HUB,
        "Docker Hub",
        "registry-1.docker.io",
        _fixed("registry-1.docker.io"),
        "registry-1.docker.io",
        CredentialPolicy.REQUIRED,
        custom_role_allowed=False,
        console_prefix="docker-hub",
    ),
    UpstreamFacts(
        UpstreamKind.GITHUB_CONTAINER_REGISTRY,
        "GitHub Container Registry",
        "ghcr.io",
        _fixed("ghcr.io"),
        "ghcr.io",
        CredentialPolicy.REQUIRED,
        custom_role_allowed=False,
        console_prefix="github",
    ),
    UpstreamFacts(
        UpstreamKind.QUAY,
        "Quay",
        "quay.io",
        _fixed("quay.io"),
        "quay.io",
        CredentialPolicy.FORBIDDEN,
        custom_role_allowed=False,
        console_prefix="quay",
    ),
    UpstreamFacts(
        UpstreamKind.GITLAB_CONTAINER_REGISTRY,
        "GitLab Container Registry",
        "registry.gitlab.com",
        _fixed("registry.gitlab.com"),
        "registry.gitlab.com",
        CredentialPolicy.REQUIRED,
        custom_role_allowed=False,
        console_prefix="gitlab",
    ),
    UpstreamFacts(
        UpstreamKind.AZURE_CONTAINER_REGISTRY,
        "Azure Container Registry",
        None,
        AZURE_URL_RE,
        "<registry-name>.azurecr.io",
        CredentialPolicy.REQUIRED,
        custom_role_allowed=False,
        console_prefix="azure",
    ),
    UpstreamFacts(
        UpstreamKind.ECR,
        "Amazon ECR (private)",
        None,
        ECR_URL_RE,
        "<12-digit account>.dkr.ecr.<region>.amazonaws.com",
        CredentialPolicy.FORBIDDEN,
        custom_role_allowed=True,
        console_prefix="ecr",
    ),
    UpstreamFacts(
        UpstreamKind.ECR_PUBLIC,
        "Amazon ECR Public",
        "public.ecr.aws",
        _fixed("public.ecr.aws"),
        "public.ecr.aws",
        CredentialPolicy.FORBIDDEN,
        custom_role_allowed=False,
        console_prefix="ecr-public",
    ),
    UpstreamFacts(
        UpstreamKind.K8S,
        "Kubernetes registry",
        "registry.k8s.io",
        _fixed("registry.k8s.io"),
        "registry.k8s.io",
        CredentialPolicy.FORBIDDEN,
        custom_role_allowed=False,
        console_prefix="kubernetes",
    ),
    UpstreamFacts(
        UpstreamKind.CHAINGUARD,
        "Chainguard",
        "cgr.dev",
        _fixed("cgr.dev"),
        "cgr.dev",
        CredentialPolicy.REQUIRED,
        custom_role_allowed=False,
        console_prefix="chainguard",
    ),
)

UPSTREAMS: Final[Mapping[UpstreamKind, UpstreamFacts]] = MappingProxyType({f.kind: f for f in _FACTS})
"""Per-kind facts, one entry for every :class:`UpstreamKind`."""

CREDENTIAL_KINDS: Final = frozenset(k for k, f in UPSTREAMS.items() if f.requires_credential)
"""Kinds whose rules need a Secrets Manager credential (docker-hub, ghcr, gitlab, azure, chainguard)."""

PTC_UNSUPPORTED_REGIONS: Final = frozenset({"cn-north-1", "cn-northwest-1", "us-gov-east-1", "us-gov-west-1"})
"""Regions where ECR does not offer pull-through cache rules (ECR user guide)."""

_URL_HINTS: Final = {
    "docker.io": "Docker Hub's upstream URL is registry-1.docker.io, not docker.io",
    "index.docker.io": "Docker Hub's upstream URL is registry-1.docker.io, not index.docker.io",
    "registry.hub.docker.com": "Docker Hub's upstream URL is registry-1.docker.io",
    "k8s.gcr.io": "the Kubernetes registry's upstream URL is registry.k8s.io (k8s.gcr.io is frozen)",
}


def facts(kind: UpstreamKind) -> UpstreamFacts:
    """The facts for ``kind``."""
    return UPSTREAMS[kind]


def default_url(kind: UpstreamKind) -> str | None:
    """The URL used when a rule omits ``upstream_url``; ``None`` for azure and ecr (no default)."""
    return UPSTREAMS[kind].fixed_url


def requires_credential(kind: UpstreamKind) -> bool:
    """``True`` when rules for ``kind`` must name a credential; otherwise a credential is forbidden."""
    return UPSTREAMS[kind].requires_credential


def allows_custom_role(kind: UpstreamKind) -> bool:
    """``customRoleArn`` is accepted only for ECR-to-ECR rules."""
    return UPSTREAMS[kind].custom_role_allowed


def url_matches(kind: UpstreamKind, url: str) -> bool:
    """Whether ECR would accept ``url`` as ``upstreamRegistryUrl`` for ``kind`` (exact host, lowercase)."""
    return UPSTREAMS[kind].url_pattern.match(url) is not None


def infer_kind(url: str) -> UpstreamKind | None:
    """The kind whose URL rule ``url`` satisfies, as ECR does when ``upstreamRegistry`` is omitted."""
    return next((f.kind for f in _FACTS if f.url_pattern.match(url.lower())), None)


def check_url(kind: UpstreamKind, url: str) -> str:
    """Validate ``url`` for ``kind`` and return it lowercased; raises ``ValueError`` naming the rule.

    Host names are case-insensitive, so the URL is lowercased. Schemes, paths and ports are not part
    of ECR's ``upstreamRegistryUrl`` and are rejected rather than stripped.
    """
    candidate = url.lower()
    found = UPSTREAMS[kind]
    if found.url_pattern.match(candidate):
        return candidate
    if "://" in candidate:
        raise ValueError(f"give the registry host only, without a scheme: {found.url_hint}")
    if hint := _URL_HINTS.get(candidate):
        raise ValueError(hint)
    other = infer_kind(candidate)
    if other is not None:
        raise ValueError(f"{candidate!r} is the URL of upstream_kind {other.value!r}, not {kind.value!r}")
    raise ValueError(f"upstream_kind {kind.value!r} needs upstream_url {found.url_hint}")


def parse_ecr_url(url: str) -> tuple[str, str] | None:
    """``(account, region)`` of a private ECR registry URL, or ``None`` when it is not one.

    The service uses it to decide whether an ``ecr`` rule crosses accounts (then ``custom_role_arn``
    is needed) and to refuse a rule whose upstream is the registry itself.
    """
    match = ECR_URL_RE.match(url.lower())
    return (match.group(1), match.group(2)) if match else None


# --------------------------------------------------------------------------------------------------
# Rate limits: the default token bucket of each upstream kind (requests, window in seconds)
# --------------------------------------------------------------------------------------------------
#
# What each upstream publishes about pull rates (looked up 2026-11; a credential's `rate_limit` overrides):
# * Docker Hub: "Pull rate limit per 6 hours": Personal (authenticated) 200, unauthenticated 100 per IPv4
#   address or IPv6 /64 subnet; Pro/Team/Business unlimited under fair use
#   (https://docs.docker.com/docker-hub/usage/pulls/, docker/docs#22326; the registry answers
#   `ratelimit-limit: 100;w=21600`). A pull is a GET of a manifest, so an index and each child count.
#   ECR requires a credential for Docker Hub: the authenticated free-account figure is the default.
# * Amazon ECR Public: per-second quotas on image pulls, separate for unauthenticated (per IP) and
#   authenticated (per account) pulls, plus 500 GB a month for unauthenticated data
#   (https://docs.aws.amazon.com/AmazonECR/latest/public/public-service-quotas.html). ECR's
#   pull-through cache takes no credential for it: the unauthenticated 1 per second is the default.
# * GitHub Container Registry, Quay, registry.k8s.io, GitLab, Azure Container Registry, Chainguard: no
#   pull rate limit is published for anonymous or token pulls (GHCR: github/docs#24504 asks for it;
#   ACR throttles per SKU without published numbers for pulls through a token). A conservative
#   600 per hour is the default: a warm set of 200 images x 2 platforms fits in one hour.
# * Amazon ECR (private, ECR-to-ECR): BatchGetImage has a 2,000 per second account quota
#   (ecr-facts §1.6); the default takes 6,000 a minute, leaving the upstream account its own traffic.

RateLimitDefault = tuple[int, int]

DEFAULT_RATE_LIMITS: Final[Mapping[UpstreamKind, RateLimitDefault]] = MappingProxyType(
    {
        UpstreamKind.DOCKER_HUB: (200, 21_600),
        UpstreamKind.ECR_PUBLIC: (3_600, 3_600),
        UpstreamKind.GITHUB_CONTAINER_REGISTRY: (600, 3_600),
        UpstreamKind.QUAY: (600, 3_600),
        UpstreamKind.K8S: (600, 3_600),
        UpstreamKind.GITLAB_CONTAINER_REGISTRY: (600, 3_600),
        UpstreamKind.AZURE_CONTAINER_REGISTRY: (600, 3_600),
        UpstreamKind.CHAINGUARD: (600, 3_600),
        UpstreamKind.ECR: (6_000, 60),
    }
)
"""Requests per window (seconds) the warm planner's token bucket allows an upstream by default."""


def default_rate_limit(kind: UpstreamKind) -> RateLimitDefault:
    """``(requests, window_seconds)`` of ``kind``'s default bucket (see the sources above)."""
    return DEFAULT_RATE_LIMITS[kind]

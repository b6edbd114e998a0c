"""Probing an upstream registry with a credential: what to probe, and what the probe came to.

A probe signs in the way ECR's pull-through cache does (the registry token dance: ``GET /v2/``, the
challenge's realm with HTTP Basic, a bearer token scoped to a repository) and asks for one small, public,
long-lived image's manifest (``HEAD``). It is what the rotation function's ``testSecret`` step runs against a
pending token, and what the daily credential health check runs against the current one. No I/O here:
the adapter is :mod:`ecrcache.adapters.upstream_auth`.

**Default probe images**, one per upstream kind (looked up 2026-11; a credential's ``probe`` overrides it):

* Docker Hub ``ratelimitpreview/test:latest``: the repository Docker's rate-limit check uses; a manifest
  ``HEAD`` is not counted against the pull limit (GitLab "Dependency Proxy" docs, "Check your Docker Hub rate
  limit": ``HEAD https://registry-1.docker.io/v2/ratelimitpreview/test/manifests/latest``; ecr-facts §7.2).
* GitHub Container Registry ``actions/actions-runner:latest``: GitHub's own runner image, public, the default
  runner image of actions-runner-controller's ``gha-runner-scale-set`` chart.
* Quay ``prometheus/busybox:latest``: the base image of Prometheus' own images (``FROM quay.io/prometheus/busybox``).
* GitLab ``gitlab-org/cli:latest``: the ``glab`` image GitLab's docs give for ``release`` jobs (GitLab docs,
  "GitLab Release CLI tool (deprecated)": ``image: registry.gitlab.com/gitlab-org/cli:latest``).
* Azure Container Registry: the user's own registry, nothing public to name: the probe signs in at ``/v2/``
  only (the realm with Basic, then ``GET /v2/`` with the token), unless the credential names a repository.
* Chainguard ``chainguard/static:latest``: Chainguard's free, public minimal base image (``cgr.dev/chainguard/static``).
* Amazon ECR Public ``amazonlinux/amazonlinux:latest``: AWS's own Amazon Linux image in the ECR Public Gallery.
* registry.k8s.io ``pause:3.10``: the sandbox image kubeadm and containerd configure (tags there are immutable).
* Amazon ECR (private): authenticated with an IAM role, not a token: there is nothing to probe here.

**Outcomes** (:class:`ProbeStatus`): ``ok``; ``credential`` (``401``/``403`` after signing in, a realm refusing
the Basic credential, an unknown challenge); ``rate_limit`` (``429``, with the reset the upstream gave);
``upstream_down`` (``5xx``, timeouts, connection failures, an answer that is not a registry's); ``not_found``
(the probe image is gone: the probe's problem, not the credential's -- set the credential's ``probe``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from ecrcache.models.image_reference import ImageReference, parse_image_reference
from ecrcache.models.upstream import UpstreamKind

__all__ = [
    "DEFAULT_PROBES",
    "ProbeResult",
    "ProbeStatus",
    "ProbeTarget",
    "default_probe",
    "probe_target",
]


class ProbeStatus(StrEnum):
    """What a probe came to, in the terms a user acts on."""

    OK = "ok"
    CREDENTIAL = "credential"
    RATE_LIMIT = "rate_limit"
    UPSTREAM_DOWN = "upstream_down"
    NOT_FOUND = "not_found"


DEFAULT_PROBES: Final[Mapping[UpstreamKind, ImageReference | None]] = MappingProxyType(
    {
        UpstreamKind.DOCKER_HUB: parse_image_reference("ratelimitpreview/test:latest"),
        UpstreamKind.GITHUB_CONTAINER_REGISTRY: parse_image_reference("actions/actions-runner:latest"),
        UpstreamKind.QUAY: parse_image_reference("prometheus/busybox:latest"),
        UpstreamKind.GITLAB_CONTAINER_REGISTRY: parse_image_reference("gitlab-org/cli:latest"),
        UpstreamKind.AZURE_CONTAINER_REGISTRY: None,
        UpstreamKind.CHAINGUARD: parse_image_reference("chainguard/static:latest"),
        UpstreamKind.ECR_PUBLIC: parse_image_reference("amazonlinux/amazonlinux:latest"),
        UpstreamKind.K8S: parse_image_reference("pause:3.10"),
    }
)
"""The image each kind's probe asks for; ``None``: ``/v2/`` only. Amazon ECR (private) is not probed."""


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Where a probe goes: an upstream host (``registry-1.docker.io``) and an image there, or ``/v2/`` only."""

    upstream_url: str
    image: ImageReference | None = None

    def __str__(self) -> str:
        return f"{self.upstream_url}/{self.image}" if self.image is not None else f"{self.upstream_url}/v2/"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome; ``message`` is built from statuses and codes, never from the credential."""

    target: ProbeTarget
    status: ProbeStatus
    message: str
    retry_at: datetime | None = None
    """For ``rate_limit``: when the upstream said the limit resets, if it said."""
    authenticated: bool = False
    """Whether the upstream asked for the credential and took it (``False``: it asked for none)."""
    requests: int = 0
    """Requests sent to the registry and its token service."""

    @property
    def ok(self) -> bool:
        return self.status is ProbeStatus.OK


def default_probe(kind: UpstreamKind) -> ImageReference | None:
    """The image ``kind``'s probe asks for (``None``: ``/v2/`` only). Raises ``ValueError`` for ``ecr``."""
    if kind not in DEFAULT_PROBES:
        raise ValueError(f"upstream_kind {kind.value!r} is signed in with an IAM role: there is no token to probe")
    return DEFAULT_PROBES[kind]


def probe_target(kind: UpstreamKind, upstream_url: str, override: str | None = None) -> ProbeTarget:
    """The probe of a credential of ``kind`` at ``upstream_url``: its own ``override`` image, else the kind's."""
    image = parse_image_reference(override) if override is not None else default_probe(kind)
    return ProbeTarget(upstream_url, image)

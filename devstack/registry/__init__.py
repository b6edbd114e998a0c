"""Local stand-ins for the upstream registries ECR pull-through cache talks to.

* :mod:`.harness` -- :class:`LocalRegistry` runs Debian's ``docker-registry`` on loopback
  (anonymous, htpasswd Basic, or Bearer tokens from :mod:`.tokens`); :class:`FrontedRegistry` puts a
  fault proxy in front of one; ``ecrcache-registry`` CLI.
* :mod:`.seeder` -- :class:`Seeder` pushes synthetic images with real digests; :data:`DEFAULT_IMAGES`.
* :mod:`.images` -- media types, digests, deterministic image/index builds.
* :mod:`.oci` -- :class:`RegistryClient`, the OCI distribution client (Basic/Bearer challenges).
* :mod:`.upstream_map` -- :class:`UpstreamMap`: upstream host -> local registry URL.
* :mod:`.faults` -- :class:`FaultProxy`: reverse proxy that injects 401/429/5xx/timeouts, enforces a
  Docker Hub-like rate limit and counts requests per repository (HTTP hooks under ``/_ecrcache/``).
* :mod:`.ratelimit` -- :class:`RateLimit`, :class:`RateLimiter`, :class:`RequestCounters`.

Nothing here imports moto or boto3: the package is usable on its own (and by the embedded AWS).
"""

from __future__ import annotations

from devstack.registry.faults import FaultKind, FaultPlan, FaultProxy, RecordedRequest
from devstack.registry.harness import AuthMode, Credentials, FrontedRegistry, LocalRegistry, RegistryStartError
from devstack.registry.images import ManifestFormat, Platform, sha256_digest, verify_digest
from devstack.registry.oci import (
    FetchedManifest,
    RegistryClient,
    RegistryConnectionError,
    RegistryError,
)
from devstack.registry.ratelimit import RateLimit, RateLimiter, RequestCounters
from devstack.registry.seeder import DEFAULT_IMAGES, ImageSpec, SeededImage, SeededManifest, Seeder
from devstack.registry.upstream_map import KNOWN_UPSTREAM_HOSTS, UnmappedUpstreamError, UpstreamMap

__all__ = [
    "DEFAULT_IMAGES",
    "KNOWN_UPSTREAM_HOSTS",
    "AuthMode",
    "Credentials",
    "FaultKind",
    "FaultPlan",
    "FaultProxy",
    "FetchedManifest",
    "FrontedRegistry",
    "ImageSpec",
    "LocalRegistry",
    "ManifestFormat",
    "Platform",
    "RateLimit",
    "RateLimiter",
    "RecordedRequest",
    "RegistryClient",
    "RegistryConnectionError",
    "RegistryError",
    "RegistryStartError",
    "RequestCounters",
    "SeededImage",
    "SeededManifest",
    "Seeder",
    "UnmappedUpstreamError",
    "UpstreamMap",
    "sha256_digest",
    "verify_digest",
]

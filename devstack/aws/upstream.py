"""The fake ECR's side of the wire to upstream registries: an OCI client with ECR's failure vocabulary.

ECR pull-through cache fetches manifests and layers from the rule's upstream registry with the
rule's credentials (ecr-facts §2, §3). This module does the same against whatever the process-wide
:class:`~devstack.registry.upstream_map.UpstreamMap` says the upstream host is (a local
``docker-registry``, a :class:`~devstack.registry.faults.FaultProxy` ...):

* :class:`UpstreamClient` -- resolve the host, authenticate (``GET /v2/`` challenge: Basic, or
  Bearer ``realm/service/scope`` -> token request with Basic credentials -> ``Authorization:
  Bearer``), fetch manifests by tag or digest with every manifest ``Accept`` type, fetch/HEAD blobs,
  verify sha256 digests. The protocol itself lives in :mod:`devstack.registry.oci`.
* Failures are typed as what ECR reports (``ImageFailureCode``, ecr-facts §5.2 / §9.12):
  401/403 -> :class:`UpstreamAccessDenied`; 429 -> :class:`UpstreamTooManyRequests` (``Retry-After``
  kept); 5xx, timeouts, refused connections, an unmapped host, a digest mismatch ->
  :class:`UpstreamUnavailable`; 404 (and 400 ``NAME_UNKNOWN``-style answers) -> :class:`UpstreamNotFound`
  (``ImageNotFound``).
* :class:`RegistryAuthChecker` implements the ``UpstreamAuthChecker`` port of
  :mod:`devstack.aws.ports`, so ``ValidatePullThroughCacheRule`` makes a real
  authentication attempt; :func:`get_auth_checker` is the factory that module looks for.

Settings are process-wide (one moto server per process): :func:`configure` / :func:`configured`
set the upstream map and the request timeout; by default the map comes from
``$ECRCACHE_UPSTREAM_MAP`` and the timeout from ``$ECRCACHE_UPSTREAM_TIMEOUT`` (seconds, default 10).

Upstreams of kind ``ecr`` authenticate with an IAM role in AWS (``customRoleArn``); here they are
reached anonymously at their mapped URL -- a deliberate simplification.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Self

from devstack.aws.ports import AuthCheckResult
from devstack.registry.images import ALL_MANIFEST_MEDIA_TYPES
from devstack.registry.oci import (
    DigestMismatchError,
    FetchedManifest,
    RegistryClient,
    RegistryConnectionError,
    RegistryError,
)
from devstack.registry.upstream_map import UnmappedUpstreamError, UpstreamMap

__all__ = [
    "TIMEOUT_ENV_VAR",
    "FetchedManifest",
    "RegistryAuthChecker",
    "UpstreamAccessDenied",
    "UpstreamClient",
    "UpstreamCredentials",
    "UpstreamFailure",
    "UpstreamNotFound",
    "UpstreamSettings",
    "UpstreamTooManyRequests",
    "UpstreamUnavailable",
    "configure",
    "configured",
    "get_auth_checker",
    "settings",
    "translate",
]

TIMEOUT_ENV_VAR = "ECRCACHE_UPSTREAM_TIMEOUT"
_DEFAULT_TIMEOUT = 10.0


# -- failures ---------------------------------------------------------------------------------------


def _reference(registry: str, repository: str, reference: str) -> str:
    """``registry/repository:tag`` or ``registry/repository@sha256:...`` (a digest is named with ``@``)."""
    return f"{registry}/{repository}{'@' if ':' in reference else ':'}{reference}"


class UpstreamFailure(Exception):
    """An upstream request failed; ``failure_code`` is the ECR ``ImageFailureCode`` it becomes."""

    failure_code: ClassVar[str] = "UpstreamUnavailable"

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class UpstreamAccessDenied(UpstreamFailure):
    failure_code: ClassVar[str] = "UpstreamAccessDenied"


class UpstreamTooManyRequests(UpstreamFailure):
    failure_code: ClassVar[str] = "UpstreamTooManyRequests"


class UpstreamUnavailable(UpstreamFailure):
    failure_code: ClassVar[str] = "UpstreamUnavailable"


class UpstreamNotFound(UpstreamFailure):
    failure_code: ClassVar[str] = "ImageNotFound"


def _from_status(exc: RegistryError, what: str) -> UpstreamFailure:
    status = exc.status
    detail = f"{what}: upstream answered HTTP {status}{f' {exc.code}' if exc.code else ''}"
    if status in (401, 403):
        return UpstreamAccessDenied(f"{detail}; the authentication to the upstream registry failed", status=status)
    if status == 429:
        return UpstreamTooManyRequests(
            f"{detail}; the upstream registry is rate limiting requests", status=status, retry_after=exc.retry_after
        )
    if status in (400, 404, 410):
        return UpstreamNotFound(f"{detail}; requested image not found upstream", status=status)
    return UpstreamUnavailable(f"{detail}; the upstream registry is unavailable", status=status)


def translate(exc: Exception, what: str) -> UpstreamFailure:
    """Map a registry-client error to the ECR failure it is reported as (``what`` names the request)."""
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, RegistryError):
        return _from_status(exc, what)
    if isinstance(exc, RegistryConnectionError):
        reason = f"{what}: the upstream registry {'timed out' if exc.timeout else 'could not be reached'}"
    elif isinstance(exc, DigestMismatchError | UnmappedUpstreamError):
        reason = f"{what}: {exc}"
    else:
        reason = f"{what}: {type(exc).__name__}"
    return UpstreamUnavailable(reason)


# -- settings ---------------------------------------------------------------------------------------
def _env_timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV_VAR, _DEFAULT_TIMEOUT))
    except ValueError:
        return _DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Where upstream hosts are (``upstream_map``) and how long to wait for them (``timeout``, s)."""

    upstream_map: UpstreamMap = field(default_factory=UpstreamMap.from_env)
    timeout: float = field(default_factory=_env_timeout)


_settings_lock = threading.Lock()
_settings: UpstreamSettings | None = None


def settings() -> UpstreamSettings:
    """The process-wide settings (created from the environment on first use)."""
    global _settings  # noqa: PLW0603 - process-wide, like moto's backends
    with _settings_lock:
        if _settings is None:
            _settings = UpstreamSettings()
        return _settings


def configure(
    *, upstream_map: UpstreamMap | None = None, timeout: float | None = None, reset: bool = False
) -> UpstreamSettings:
    """Change the process-wide settings; returns the previous ones. ``reset`` re-reads the environment."""
    global _settings  # noqa: PLW0603
    previous = settings()
    base = UpstreamSettings() if reset else previous
    updated = UpstreamSettings(
        upstream_map=upstream_map if upstream_map is not None else base.upstream_map,
        timeout=timeout if timeout is not None else base.timeout,
    )
    with _settings_lock:
        _settings = updated
    return previous


@contextlib.contextmanager
def configured(*, upstream_map: UpstreamMap | None = None, timeout: float | None = None) -> Iterator[UpstreamSettings]:
    """``with configured(upstream_map=m, timeout=1.0): ...`` -- restores the previous settings on exit."""
    global _settings  # noqa: PLW0603
    previous = configure(upstream_map=upstream_map, timeout=timeout)
    try:
        yield settings()
    finally:
        with _settings_lock:
            _settings = previous


# -- client -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UpstreamCredentials:
    """The ``{"username","accessToken"}`` of a pull-through cache secret (token hidden from ``repr``)."""

    username: str
    access_token: str = field(repr=False)


class UpstreamClient:
    """One upstream registry (by its ECR ``upstreamRegistryUrl``), one set of credentials.

    Every method raises an :class:`UpstreamFailure` subclass, never a transport exception.
    """

    def __init__(
        self,
        upstream_registry_url: str,
        credentials: UpstreamCredentials | None = None,
        *,
        upstream_map: UpstreamMap | None = None,
        timeout: float | None = None,
    ) -> None:
        current = settings()
        self.upstream_registry_url = upstream_registry_url
        self._map = upstream_map if upstream_map is not None else current.upstream_map
        self._credentials = credentials
        self._timeout = timeout if timeout is not None else current.timeout
        self._client: RegistryClient | None = None

    def __repr__(self) -> str:
        return f"UpstreamClient({self.upstream_registry_url!r}, authenticated={self._credentials is not None})"

    def _registry(self) -> RegistryClient:
        if self._client is None:
            try:
                base_url = self._map.resolve(self.upstream_registry_url)
            except UnmappedUpstreamError as exc:
                raise translate(exc, f"upstream {self.upstream_registry_url}") from exc
            creds = self._credentials
            self._client = RegistryClient(
                base_url,
                username=creds.username if creds else None,
                password=creds.access_token if creds else None,
                timeout=self._timeout,
                user_agent="ecrcache-embedded-ecr-pullthroughcache/1",
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def check_auth(self) -> None:
        """``GET /v2/`` with the credentials (challenge answered); raises on any failure."""
        what = f"authentication to {self.upstream_registry_url}"
        try:
            self._registry().ping()
        except (RegistryError, RegistryConnectionError) as exc:
            raise translate(exc, what) from exc

    def get_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = ALL_MANIFEST_MEDIA_TYPES
    ) -> FetchedManifest:
        """A manifest by tag or digest, digest-verified; children/blobs parsed."""
        what = f"manifest {_reference(self.upstream_registry_url, repository, reference)}"
        try:
            return self._registry().get_manifest(repository, reference, accept)
        except (RegistryError, RegistryConnectionError, DigestMismatchError, ValueError) as exc:
            if isinstance(exc, ValueError) and not isinstance(exc, DigestMismatchError):
                raise UpstreamUnavailable(f"{what}: the upstream served an invalid manifest") from exc
            raise translate(exc, what) from exc

    def head_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = ALL_MANIFEST_MEDIA_TYPES
    ) -> tuple[str, str]:
        """``(digest, media type)`` without downloading (how a refresh checks for a newer version)."""
        what = f"manifest {_reference(self.upstream_registry_url, repository, reference)}"
        try:
            return self._registry().head_manifest(repository, reference, accept)
        except (RegistryError, RegistryConnectionError) as exc:
            raise translate(exc, what) from exc

    def get_blob(self, repository: str, digest: str) -> bytes:
        what = f"blob {self.upstream_registry_url}/{repository}@{digest}"
        try:
            return self._registry().get_blob(repository, digest)
        except (RegistryError, RegistryConnectionError, DigestMismatchError) as exc:
            raise translate(exc, what) from exc

    def head_blob(self, repository: str, digest: str) -> int:
        what = f"blob {self.upstream_registry_url}/{repository}@{digest}"
        try:
            return self._registry().head_blob(repository, digest)
        except (RegistryError, RegistryConnectionError) as exc:
            raise translate(exc, what) from exc


# -- ValidatePullThroughCacheRule port --------------------------------------------------------------
class RegistryAuthChecker:
    """``UpstreamAuthChecker`` that really authenticates against the (mapped) upstream registry."""

    def __init__(self, upstream_map: UpstreamMap | None = None, timeout: float | None = None) -> None:
        self._map = upstream_map
        self._timeout = timeout

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        creds = UpstreamCredentials(username, access_token)
        try:
            with UpstreamClient(upstream_registry_url, creds, upstream_map=self._map, timeout=self._timeout) as client:
                client.check_auth()
        except UpstreamFailure as exc:
            return AuthCheckResult(is_valid=False, failure=f"{exc.failure_code}: {exc.reason}")
        return AuthCheckResult(is_valid=True)


def get_auth_checker() -> RegistryAuthChecker:
    """Factory looked up by :func:`devstack.aws.ports.get_upstream_auth_checker`."""
    return RegistryAuthChecker()

"""Pluggable seams of the ECR extension: the upstream authentication check.

``ValidatePullThroughCacheRule`` "opens a network connection to the upstream and checks
authentication" (ecr-facts §1.2). The fake does that through an :class:`UpstreamAuthChecker`:

* tests install one with :func:`set_upstream_auth_checker` (``None`` restores the default);
* by default :func:`get_upstream_auth_checker` uses ``devstack.aws.upstream``
  when that module exists and exposes ``get_auth_checker() -> UpstreamAuthChecker`` (the real OCI
  token dance against the local or real registry);
* otherwise :class:`UnavailableChecker` answers ``isValid=false, failure="upstream check unavailable"``.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "AuthCheckResult",
    "UnavailableChecker",
    "UpstreamAuthChecker",
    "get_upstream_auth_checker",
    "set_upstream_auth_checker",
]

UPSTREAM_MODULE = "devstack.aws.upstream"
UNAVAILABLE_FAILURE = "upstream check unavailable"


@dataclass(frozen=True, slots=True)
class AuthCheckResult:
    """Outcome of one authentication attempt against an upstream registry.

    ``failure`` is free text shown to the caller as ``ValidatePullThroughCacheRule.failure``;
    it must never contain the credential itself.
    """

    is_valid: bool
    failure: str | None = None


@runtime_checkable
class UpstreamAuthChecker(Protocol):
    """Checks that ``username``/``access_token`` authenticate against an upstream registry.

    ``upstream_registry`` is the ``UpstreamRegistry`` enum value (``docker-hub``, ``ghcr`` ...),
    ``upstream_registry_url`` the rule's host (``registry-1.docker.io``), and
    ``upstream_repository_prefix`` the rule's upstream prefix (``ROOT`` = any repository), which a
    checker may use to pick a repository scope for the token request. Implementations must not
    raise for bad credentials or network errors: return ``AuthCheckResult(False, "<reason>")``.
    """

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult: ...


class AcceptingChecker:
    """For tests and benchmarks without upstream registries: every credential is valid (no network)."""

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        return AuthCheckResult(is_valid=True)


class UnavailableChecker:
    """Fallback when no real checker is installed: never claims a credential is valid."""

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        return AuthCheckResult(is_valid=False, failure=UNAVAILABLE_FAILURE)


_lock = threading.Lock()
_override: UpstreamAuthChecker | None = None


def set_upstream_auth_checker(checker: UpstreamAuthChecker | None) -> None:
    """Install a checker for the whole process (``None`` = back to the default lookup)."""
    global _override  # noqa: PLW0603 - process-wide seam, like moto's own backends
    with _lock:
        _override = checker


def get_upstream_auth_checker() -> UpstreamAuthChecker:
    """The installed checker, else the upstream module's, else :class:`UnavailableChecker`."""
    with _lock:
        if _override is not None:
            return _override
    if importlib.util.find_spec(UPSTREAM_MODULE) is not None:
        module = importlib.import_module(UPSTREAM_MODULE)
        factory = getattr(module, "get_auth_checker", None)
        if callable(factory):
            checker = factory()
            if isinstance(checker, UpstreamAuthChecker):
                return checker
    return UnavailableChecker()

"""Pluggable seams of the embedded AWS: the upstream authentication check, and the Lambda functions it invokes.

``ValidatePullThroughCacheRule`` "opens a network connection to the upstream and checks
authentication" (ecr-facts §1.2). The fake does that through an :class:`UpstreamAuthChecker`:

* tests install one with :func:`set_upstream_auth_checker` (``None`` restores the default);
* by default :func:`get_upstream_auth_checker` uses ``devstack.aws.upstream``
  when that module exists and exposes ``get_auth_checker() -> UpstreamAuthChecker`` (the real OCI
  token dance against the local or real registry);
* otherwise :class:`UnavailableChecker` answers ``isValid=false, failure="upstream check unavailable"``.

Secrets Manager's ``RotateSecret`` invokes the secret's rotation Lambda function (``devstack.aws.secrets_rotation``).
There is no Lambda service here: a :data:`LambdaInvoker` per function ARN stands in for it,

* in-process tests register a Python callable with :func:`register_lambda` (``event -> result``; raising is
  the function failing);
* a server process (the local stack) registers an :class:`HttpLambdaInvoker` -- the Lambda ``Invoke`` API of
  a local function host -- through ``POST /_ecrcache/secrets/rotation/functions {"arn", "url"}``.

An ARN with nothing registered is a function Secrets Manager cannot invoke.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import requests

__all__ = [
    "AuthCheckResult",
    "HttpLambdaInvoker",
    "LambdaFunctionError",
    "LambdaInvoker",
    "UnavailableChecker",
    "UpstreamAuthChecker",
    "clear_lambdas",
    "get_upstream_auth_checker",
    "lambda_invoker",
    "register_lambda",
    "registered_lambdas",
    "set_upstream_auth_checker",
    "unregister_lambda",
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


# -- Lambda functions ---------------------------------------------------------------------------------

LambdaInvoker = Callable[[Mapping[str, Any]], Any]
"""Runs a function once with an event (synchronously, as ``Invoke`` with ``RequestResponse``); returns its
result, raises when the function failed (an exception of any kind: :class:`LambdaFunctionError` for a remote one)."""


class LambdaFunctionError(RuntimeError):
    """The function failed (its handler raised, it timed out, or it could not be reached)."""


class HttpLambdaInvoker:
    """A function behind the Lambda ``Invoke`` API at ``url`` (``POST .../invocations``, as the local function
    host serves it): a ``200`` with ``X-Amz-Function-Error`` is the function failing, as in Lambda."""

    def __init__(self, url: str, *, timeout: float = 900.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"'url' must be an http(s) URL, not {url!r}")
        self.url = url
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpLambdaInvoker({self.url!r})"

    def __call__(self, event: Mapping[str, Any]) -> Any:
        try:
            response = requests.post(self.url, data=json.dumps(dict(event)), timeout=(5, self.timeout))
        except requests.RequestException as exc:
            raise LambdaFunctionError(f"the function could not be invoked: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise LambdaFunctionError(f"the function's host answered HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.headers.get("X-Amz-Function-Error"):
            detail = payload if isinstance(payload, dict) else {}
            raise LambdaFunctionError(f"{detail.get('errorType', 'Unhandled')}: {detail.get('errorMessage', '')}")
        return payload


_lambdas_lock = threading.Lock()
_lambdas: dict[str, LambdaInvoker] = {}


def register_lambda(function_arn: str, invoker: LambdaInvoker) -> None:
    """``function_arn`` is invoked with ``invoker`` from now on (replacing any earlier one)."""
    if not function_arn:
        raise ValueError("a function ARN is required")
    with _lambdas_lock:
        _lambdas[function_arn] = invoker


def unregister_lambda(function_arn: str) -> bool:
    """Forget ``function_arn``; whether it was registered."""
    with _lambdas_lock:
        return _lambdas.pop(function_arn, None) is not None


def lambda_invoker(function_arn: str) -> LambdaInvoker | None:
    """The invoker registered for ``function_arn``, if any."""
    with _lambdas_lock:
        return _lambdas.get(function_arn)


def registered_lambdas() -> dict[str, LambdaInvoker]:
    """Every registered function ARN and its invoker (a copy)."""
    with _lambdas_lock:
        return dict(_lambdas)


def clear_lambdas() -> None:
    """Forget every registered function (tests)."""
    with _lambdas_lock:
        _lambdas.clear()

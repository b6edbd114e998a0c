"""Talking to an upstream OCI registry: one request, its classification, and the Docker token dance.

Shared by the tag lister (:mod:`ecrcache.adapters.upstream_registry`, the warm planner's) and the
credential probe (:mod:`ecrcache.adapters.upstream_auth`, the rotator's): both sign in the same way and
must fail the same way.

Authentication follows the Docker token flow (distribution "Token Authentication Specification"): a
``401`` with ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` sends the client to the
realm with HTTP Basic credentials for a bearer token, and the request is made again with it; a ``Basic``
challenge is answered with the credential directly. The credential is never logged, stored or put in a
message, and never sent over plain HTTP to a realm of an HTTPS registry, nor to another host than the
registry's own: a ``Basic`` challenge from a host the registry redirected to is refused, and a ``Bearer``
challenge from one gets an anonymous token request (an open redirect cannot hand the credential over).

**Redirects** are followed (at most :data:`MAX_REDIRECTS`): registry.k8s.io answers ``/v2/...`` with a 307
to Artifact Registry (``us-west2-docker.pkg.dev``, kubernetes/k8s.io#6984). urllib3 follows one only with a
``Retry`` whose ``redirect`` allows it -- ``retries=False`` hands the 3xx back even with ``redirect=True``
(urllib3 2.x: ``Retry(False)`` means ``redirect=0, raise_on_redirect=False``) -- so :func:`http_pool` makes
a ``Retry`` that follows redirects and retries nothing else (every request is counted by the callers). Its
``remove_headers_on_redirect`` drops ``Authorization`` when the redirect leaves the host (scheme, host and
port: ``is_same_host``), so a token is never sent to a host it was not asked for; callers go on at the URL
they were redirected to (:func:`followed`), never from HTTPS down to plain HTTP.

A failure is a :class:`RegistryFailure`: a class a user acts on (:class:`FailureClass`) and a message built
from statuses and error codes, never from a credential. ``429`` -> ``rate_limit`` with the reset the upstream
gave (:func:`retry_at`), ``401``/``403`` from the token service -> ``credential``, ``5xx``/timeouts/connection
failures -> ``upstream_down``.

HTTP is urllib3's, which botocore already brings into the layer: no new dependency (``requests`` would add
four packages to every function's cold start for a dozen lines of use), and its ``Timeout`` and header
handling on redirects are what this needs.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import urllib3

from ecrcache.models.failure_class import FailureClass

__all__ = [
    "MAX_REDIRECTS",
    "TIMEOUT",
    "Answer",
    "RegistryFailure",
    "RegistryHttp",
    "base_url",
    "basic_authorization",
    "followed",
    "host_of",
    "http_pool",
    "normalise_endpoints",
    "retry_at",
]

TIMEOUT: Final = urllib3.Timeout(connect=3.0, read=10.0)
MAX_REDIRECTS: Final = 5
DEFAULT_USER_AGENT: Final = "ecrcache-warm-planner"
TOKEN_MAX_BYTES: Final = 1024 * 1024
"""A token service's answer is read up to this size (JWTs are a few kilobytes)."""
_CHALLENGE_PARAM: Final = re.compile(r'(\w+)="([^"]*)"')


def http_pool(timeout: urllib3.Timeout = TIMEOUT, *, user_agent: str = DEFAULT_USER_AGENT) -> urllib3.PoolManager:
    """The HTTP client: redirects followed (``Authorization`` dropped across hosts), nothing retried."""
    retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS)
    return urllib3.PoolManager(timeout=timeout, retries=retries, headers={"User-Agent": user_agent})


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    """Lowercased names."""
    body: bytes
    url: str
    """Where the answer came from: the URL asked, or the last one it was redirected to."""


class RegistryFailure(Exception):
    """A conversation with a registry ends here with this class and message (never a credential in it)."""

    def __init__(self, failure: FailureClass, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.retry_at = retry_at


def retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a 429 says the limit resets: ``Retry-After`` (seconds or an HTTP date), else ``RateLimit-Reset``
    (seconds, IETF draft) or ``X-RateLimit-Reset`` (epoch seconds, or seconds when small)."""
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    if value:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        reset = headers.get(name, "").split(";")[0].strip()
        if reset.isdigit():
            seconds = int(reset)
            return datetime.fromtimestamp(seconds, UTC) if seconds > 1_000_000_000 else now + timedelta(seconds=seconds)
    return None


def basic_authorization(username: str, token: str) -> str:
    """``Basic <base64 user:token>``: the header value holds the credential; send it, never log it."""
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()


def normalise_endpoints(endpoints: Mapping[str, str] | None) -> dict[str, str]:
    """``UPSTREAM_ENDPOINTS`` (settings) as looked up: lowercase hosts, base URLs without a trailing ``/``."""
    return {host.lower(): url.rstrip("/") for host, url in (endpoints or {}).items()}


def base_url(endpoints: Mapping[str, str], upstream_url: str) -> str:
    """Where to reach ``upstream_url``: its ``UPSTREAM_ENDPOINTS`` entry (the local stack maps hosts to local
    registries), else ``https://<host>`` (AWS: the map is empty)."""
    return endpoints.get(upstream_url.lower(), f"https://{upstream_url.lower()}")


def host_of(url: str) -> str:
    """``scheme://host:port`` of a URL: what urllib3 compares before it keeps ``Authorization`` on a redirect."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def followed(base: str, answered: str) -> str:
    """The URL a conversation goes on at (the one it was redirected to), never from HTTPS to plain HTTP."""
    if urlsplit(base).scheme == "https" and urlsplit(answered).scheme != "https":
        raise RegistryFailure(
            FailureClass.UPSTREAM_DOWN, "the upstream redirected from HTTPS to plain HTTP: not followed"
        )
    return answered


def _why(exc: urllib3.exceptions.HTTPError) -> str:
    """A failed request's reason as a message says it (the error a ``Retry`` wraps, not the wrapper)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        if isinstance(exc.reason, urllib3.exceptions.ResponseError):
            return f"more than {MAX_REDIRECTS} redirects"
        if exc.reason is not None:
            return type(exc.reason).__name__
    return type(exc).__name__


class RegistryHttp:
    """One request at a time to a registry, and signing in where a ``401`` sends the client."""

    def __init__(self, http: urllib3.PoolManager, clock: Callable[[], datetime]) -> None:
        self.http = http
        self.clock = clock
        self.sent = 0
        """Requests sent so far (the token service's included)."""

    def send(
        self, method: str, url: str, authorization: str | None, *, accept: str = "application/json", limit: int
    ) -> Answer:
        """One request; at most ``limit + 1`` bytes of the body are read (the caller judges a longer one).

        A network failure (timeout, reset, too many redirects) raises ``upstream_down`` naming the path only.
        """
        headers = {"Accept": accept}
        if authorization is not None:
            headers["Authorization"] = authorization
        self.sent += 1
        try:
            response = self.http.request(method, url, headers=headers, preload_content=False, redirect=True)
            try:
                body = response.read(limit + 1)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryFailure(
                FailureClass.UPSTREAM_DOWN, f"{method} {urlsplit(url).path} failed: {_why(exc)}"
            ) from None
        history = response.retries.history if response.retries is not None else ()
        final = next((h.redirect_location for h in reversed(history) if h.redirect_location), None) or url
        return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, body, final)

    def sign_in(
        self,
        base: str,
        answer: Answer,
        basic: Callable[[], str | None],
        *,
        subject: str,
        no_credential: str,
        scope: str | None = None,
    ) -> str:
        """The ``Authorization`` a 401's challenge asks for: a bearer token from the realm, or Basic.

        ``basic`` gives the credential's ``Basic`` header (``None``: there is none); it is asked for only when
        the challenge needs it. ``scope`` replaces the challenge's own (a ``/v2/`` challenge names none).
        """
        scheme, _, rest = answer.headers.get("www-authenticate", "").partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        if scheme.lower() == "basic":
            if urlsplit(answer.url).netloc != urlsplit(base).netloc:
                raise RegistryFailure(
                    FailureClass.CREDENTIAL,
                    f"{urlsplit(answer.url).netloc}, where the upstream redirected, asks for the credential "
                    "itself (Basic): it is sent to the upstream's own host only",
                )
            credential = basic()
            if credential is None:
                raise RegistryFailure(FailureClass.CREDENTIAL, no_credential)
            return credential
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryFailure(
                FailureClass.CREDENTIAL, f"401 with an unknown challenge ({scheme or 'none'}) for {subject}"
            )
        if scope is not None:
            params["scope"] = scope
        if urlsplit(answer.url).netloc != urlsplit(base).netloc:
            # The challenge comes from a host the upstream redirected to (registry.k8s.io -> Artifact
            # Registry): its realm gets no credential, only an anonymous token request. A credential is sent
            # only to realms the upstream's own host names, so an open redirect cannot hand it to a stranger.
            return self.bearer(answer.url, params, None)
        return self.bearer(answer.url, params, basic())

    def bearer(self, answered: str, params: Mapping[str, str], basic: str | None) -> str:
        """``Bearer <token>`` from the challenge's realm, asked with the credential (or anonymously)."""
        realm = params["realm"]
        if basic is not None and urlsplit(realm).scheme != "https" and urlsplit(answered).scheme == "https":
            raise RegistryFailure(
                FailureClass.CREDENTIAL, "the upstream's token realm is not HTTPS: the credential is not sent"
            )
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}" if query else realm
        answer = self.send("GET", url, basic, limit=TOKEN_MAX_BYTES)
        if answer.status in (401, 403):
            raise RegistryFailure(
                FailureClass.CREDENTIAL, f"{answer.status}: the upstream's token service rejected the credential"
            )
        if answer.status == 429:
            reset = retry_at(answer.headers, self.clock())
            raise RegistryFailure(
                FailureClass.RATE_LIMIT, "429 Too Many Requests from the token service", retry_at=reset
            )
        if answer.status != 200:
            raise RegistryFailure(FailureClass.UPSTREAM_DOWN, f"{answer.status} from the upstream's token service")
        try:
            data: Any = json.loads(answer.body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryFailure(FailureClass.UPSTREAM_DOWN, "the token service answered without a token")
        return f"Bearer {token}"

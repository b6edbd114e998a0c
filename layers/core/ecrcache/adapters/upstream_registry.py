"""An upstream registry's tag lists over the OCI distribution API, signed in with a rule's credential.

``GET /v2/<name>/tags/list?n=<page>`` page by page (the ``Link: <...>; rel="next"`` header, OCI
distribution-spec "Listing Tags"), at most ``max_requests`` requests to the registry (each one is taken
from the upstream's token bucket by the planner before the listing starts; token requests to the
registry's auth realm are not counted: they are not pulls).

Authentication follows the Docker token flow (distribution "Token Authentication Specification"): a
``401`` with ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` sends the client to the
realm with HTTP Basic credentials -- the rule's credential, read from Secrets Manager
(``ecr-pullthroughcache/<name>``, ``{"username", "accessToken"}``) -- for a bearer token, and the page is
asked again with it; a ``Basic`` challenge is answered with the credential directly. The credential is
never logged, stored or put in a message, and never sent over plain HTTP to a realm of an HTTPS registry.

Every answer is classified, never raised: ``429`` -> ``rate_limit`` (with the reset from ``Retry-After``
or ``RateLimit-Reset`` when the registry says it), ``401``/``403`` after signing in -> ``credential``,
``404`` -> ``not_found``, ``5xx``/timeouts/connection failures -> ``upstream_down``. Failures of AWS
(reading the secret) raise the usual classified errors, except a secret that does not exist, which is
the credential's failure.

``UPSTREAM_ENDPOINTS`` (settings) maps an upstream host to the base URL to reach it at: the local stack
points ``registry-1.docker.io`` at a local registry; in AWS it is empty and every host is ``https://<host>``.

**Redirects** are followed (at most :data:`MAX_REDIRECTS`): registry.k8s.io answers ``/v2/...`` with a 307
to Artifact Registry (``us-west2-docker.pkg.dev``, kubernetes/k8s.io#6984). urllib3 follows one only with a
``Retry`` whose ``redirect`` allows it -- ``retries=False`` hands the 3xx back even with ``redirect=True``
(urllib3 2.x: ``Retry(False)`` means ``redirect=0, raise_on_redirect=False``) -- so :func:`http_pool` makes
a ``Retry`` that follows redirects and retries nothing else (every request is counted in the budget). Its
``remove_headers_on_redirect`` drops ``Authorization`` when the redirect leaves the host (scheme, host and
port: ``is_same_host``), so a token is never sent to a host it was not asked for; the listing goes on at the
URL it was redirected to (a 401 there is answered there, the next page is resolved against it), never from
HTTPS down to plain HTTP, and a ``Basic`` challenge of another host than the registry's gets no credential.

HTTP is urllib3's, which botocore already brings into the layer: no new dependency (``requests`` would add
four packages to every function's cold start for a dozen lines of use), and its ``Timeout`` and header
handling on redirects are what this needs.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.models.credential import secret_name
from ecrcache.models.warm_inputs import TagListing
from ecrcache.models.warm_run import FailureClass

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

PAGE_SIZE: Final = 1000
MAX_PAGE_BYTES: Final = 8 * 1024 * 1024
TIMEOUT: Final = urllib3.Timeout(connect=3.0, read=10.0)
SECRET_TTL: Final = timedelta(minutes=5)
_CHALLENGE_PARAM: Final = re.compile(r'(\w+)="([^"]*)"')
_NEXT_LINK: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
USER_AGENT: Final = "ecrcache-warm-planner"
MAX_REDIRECTS: Final = 5


def http_pool(timeout: urllib3.Timeout = TIMEOUT) -> urllib3.PoolManager:
    """The adapter's HTTP client: redirects followed (``Authorization`` dropped across hosts), nothing retried."""
    retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=MAX_REDIRECTS)
    return urllib3.PoolManager(timeout=timeout, retries=retries, headers={"User-Agent": USER_AGENT})


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    """Where the answer came from: the URL asked, or the last one it was redirected to."""


class _Failed(Exception):
    """A listing ends here with this class and message (never a credential in it)."""

    def __init__(self, failure: FailureClass, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.retry_at = retry_at


def _retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
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


class OciUpstreamRegistry:
    """Implements :class:`ecrcache.ports.UpstreamTags`."""

    def __init__(
        self,
        *,
        endpoints: Mapping[str, str] | None = None,
        secrets: SecretsManagerClient | None = None,
        http: urllib3.PoolManager | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.endpoints = {host.lower(): url.rstrip("/") for host, url in (endpoints or {}).items()}
        self._secrets = secrets
        self.http = http or http_pool()
        self.clock = clock
        self.page_size = page_size
        self._credentials: dict[str, tuple[float, str]] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        """Bearer tokens by (host that asked for it, repository): reused by the next listing."""

    @property
    def client(self) -> SecretsManagerClient:
        """Secrets Manager (made on first use: a set without a credential never needs it)."""
        if self._secrets is None:
            self._secrets = secretsmanager_client()
        return self._secrets

    def base_url(self, upstream_url: str) -> str:
        return self.endpoints.get(upstream_url.lower(), f"https://{upstream_url.lower()}")

    # -- the port ------------------------------------------------------------------------------

    def list_tags(self, upstream_url: str, repository: str, *, credential: str | None, max_requests: int) -> TagListing:
        base = self.base_url(upstream_url)
        url: str | None = f"{base}/v2/{repository}/tags/list?{urlencode({'n': self.page_size})}"
        tags: list[str] = []
        spent = 0
        # The Authorization of each host, sent only to that host (a redirect may move the listing to another).
        signed = {host: token for (host, name), token in self._tokens.items() if name == repository}
        signed_in = False
        try:
            while url is not None:
                if spent >= max_requests:
                    message = f"stopped after {spent} requests (the allowance) with pages left"
                    return TagListing(repository, tuple(tags), spent, message=message, complete=False)
                spent += 1  # counted before it is sent: a request that timed out may have reached the upstream
                answer = self._get(url, signed.get(_host(url)))
                url = self._followed(base, answer.url)
                if answer.status == 401 and not signed_in:
                    signed[_host(url)] = self._sign_in(base, repository, answer, credential)
                    signed_in = True
                    continue
                page = self._page(answer, repository, signed_in=signed_in)
                tags += page
                url = self._next(url, answer.headers)
        except _Failed as failed:
            return TagListing(repository, tuple(tags), spent, failed.failure, failed.message, failed.retry_at)
        return TagListing(repository, tuple(dict.fromkeys(tags)), spent)

    # -- one request ---------------------------------------------------------------------------

    def _get(self, url: str, authorization: str | None) -> _Answer:
        headers = {"Accept": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        try:
            response = self.http.request("GET", url, headers=headers, preload_content=False, redirect=True)
            try:
                body = response.read(MAX_PAGE_BYTES + 1)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise _Failed(FailureClass.UPSTREAM_DOWN, f"GET {urlsplit(url).path} failed: {_why(exc)}") from None
        if len(body) > MAX_PAGE_BYTES:
            raise _Failed(FailureClass.OURS, f"a tag list page is over {MAX_PAGE_BYTES} bytes")
        history = response.retries.history if response.retries is not None else ()
        final = next((h.redirect_location for h in reversed(history) if h.redirect_location), None) or url
        return _Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, body, final)

    def _page(self, answer: _Answer, repository: str, *, signed_in: bool) -> list[str]:
        status = answer.status
        if status == 200:
            try:
                data: Any = json.loads(answer.body)
                found = data.get("tags") or []
                if not isinstance(found, list) or not all(isinstance(t, str) for t in found):
                    raise TypeError
            except (ValueError, TypeError, AttributeError):
                raise _Failed(FailureClass.UPSTREAM_DOWN, "the tag list is not JSON of the OCI shape") from None
            return found
        if status == 429:
            retry_at = _retry_at(answer.headers, self.clock())
            raise _Failed(FailureClass.RATE_LIMIT, f"429 Too Many Requests listing {repository}", retry_at=retry_at)
        if status in (401, 403):
            what = "rejected the credential" if signed_in else "refused anonymous access"
            raise _Failed(FailureClass.CREDENTIAL, f"{status}: the upstream {what} for {repository}")
        if status == 404:
            raise _Failed(FailureClass.NOT_FOUND, f"404: the upstream has no repository {repository}")
        raise _Failed(FailureClass.UPSTREAM_DOWN, f"{status} from the upstream listing {repository}")

    @staticmethod
    def _followed(base: str, answered: str) -> str:
        """The URL the listing goes on at (the one it was redirected to), never from HTTPS to plain HTTP."""
        if urlsplit(base).scheme == "https" and urlsplit(answered).scheme != "https":
            raise _Failed(FailureClass.UPSTREAM_DOWN, "the upstream redirected from HTTPS to plain HTTP: not followed")
        return answered

    @staticmethod
    def _next(current: str, headers: Mapping[str, str]) -> str | None:
        """The next page (``Link: <...>; rel="next"``) of the page at ``current``, on the same host."""
        match = _NEXT_LINK.search(headers.get("link", ""))
        if match is None:
            return None
        following: str = urljoin(current, str(match.group(1)))
        if urlsplit(following).netloc != urlsplit(current).netloc:
            raise _Failed(FailureClass.UPSTREAM_DOWN, "the next page link points at another host")
        return following

    # -- signing in ----------------------------------------------------------------------------

    def _sign_in(self, base: str, repository: str, answer: _Answer, credential: str | None) -> str:
        """The ``Authorization`` a 401's challenge asks for (a bearer token from the realm, or Basic)."""
        challenge = answer.headers.get("www-authenticate", "")
        scheme, _, rest = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        if scheme.lower() == "basic":
            if credential is None:
                raise _Failed(
                    FailureClass.CREDENTIAL, f"the upstream needs a credential for {repository}; the rule has none"
                )
            if urlsplit(answer.url).netloc != urlsplit(base).netloc:
                raise _Failed(
                    FailureClass.CREDENTIAL,
                    f"{urlsplit(answer.url).netloc}, where the upstream redirected, asks for the credential "
                    "itself (Basic): it is sent to the upstream's own host only",
                )
            return self._basic(credential)
        basic = self._basic(credential) if credential is not None else None
        if scheme.lower() != "bearer" or "realm" not in params:
            raise _Failed(
                FailureClass.CREDENTIAL, f"401 with an unknown challenge ({scheme or 'none'}) for {repository}"
            )
        token = self._bearer(answer.url, params, basic)
        self._tokens[(_host(answer.url), repository)] = token
        return token

    def _bearer(self, answered: str, params: Mapping[str, str], basic: str | None) -> str:
        realm = params["realm"]
        if basic is not None and urlsplit(realm).scheme != "https" and urlsplit(answered).scheme == "https":
            raise _Failed(
                FailureClass.CREDENTIAL, "the upstream's token realm is not HTTPS: the credential is not sent"
            )
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}" if query else realm
        answer = self._get(url, basic)
        if answer.status in (401, 403):
            raise _Failed(
                FailureClass.CREDENTIAL, f"{answer.status}: the upstream's token service rejected the credential"
            )
        if answer.status == 429:
            retry_at = _retry_at(answer.headers, self.clock())
            raise _Failed(FailureClass.RATE_LIMIT, "429 Too Many Requests from the token service", retry_at=retry_at)
        if answer.status != 200:
            raise _Failed(FailureClass.UPSTREAM_DOWN, f"{answer.status} from the upstream's token service")
        try:
            data: Any = json.loads(answer.body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise _Failed(FailureClass.UPSTREAM_DOWN, "the token service answered without a token")
        return f"Bearer {token}"

    def _basic(self, credential: str) -> str:
        """``Basic <base64 user:token>`` of the credential's secret (read at most every 5 minutes)."""
        now = time.monotonic()
        cached = self._credentials.get(credential)
        if cached is not None and now - cached[0] < SECRET_TTL.total_seconds():
            return cached[1]
        name = secret_name(credential)
        try:
            value = self.client.get_secret_value(SecretId=name)["SecretString"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise _Failed(FailureClass.CREDENTIAL, f"the credential's secret {name} does not exist") from None
            raise classify(exc, "Secrets Manager GetSecretValue") from None
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager GetSecretValue") from None
        try:
            data = json.loads(value)
            pair = f"{data['username']}:{data['accessToken']}"
        except (ValueError, KeyError, TypeError):
            raise _Failed(FailureClass.CREDENTIAL, f"the secret {name} is not {{username, accessToken}} JSON") from None
        basic = "Basic " + base64.b64encode(pair.encode()).decode()
        self._credentials[credential] = (now, basic)
        return basic


def _why(exc: urllib3.exceptions.HTTPError) -> str:
    """A failed request's reason as a message says it (the error a ``Retry`` wraps, not the wrapper)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        if isinstance(exc.reason, urllib3.exceptions.ResponseError):
            return f"more than {MAX_REDIRECTS} redirects"
        if exc.reason is not None:
            return type(exc.reason).__name__
    return type(exc).__name__


def _host(url: str) -> str:
    """``scheme://host:port`` of a URL: what urllib3 compares before it keeps ``Authorization`` on a redirect."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

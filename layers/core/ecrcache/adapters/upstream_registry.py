"""An upstream registry's tag lists over the OCI distribution API, signed in with a rule's credential.

``GET /v2/<name>/tags/list?n=<page>`` page by page (the ``Link: <...>; rel="next"`` header, OCI
distribution-spec "Listing Tags"), at most ``max_requests`` requests to the registry (each one is taken
from the upstream's token bucket by the planner before the listing starts; token requests to the
registry's auth realm are not counted: they are not pulls).

Signing in, redirects and the classification of failures are :mod:`ecrcache.adapters.registry_auth`'s (the
rotator's credential probe shares them). The credential is the rule's, read from Secrets Manager
(``ecr-pullthroughcache/<name>``, ``{"username", "accessToken"}``) only when a challenge asks for it; it is
never logged, stored or put in a message.

Every answer is classified, never raised: ``429`` -> ``rate_limit`` (with the reset from ``Retry-After``
or ``RateLimit-Reset`` when the registry says it), ``401``/``403`` after signing in -> ``credential``,
``404`` -> ``not_found``, ``5xx``/timeouts/connection failures -> ``upstream_down``. Failures of AWS
(reading the secret) raise the usual classified errors, except a secret that does not exist, which is
the credential's failure.

``UPSTREAM_ENDPOINTS`` (settings) maps an upstream host to the base URL to reach it at: the local stack
points ``registry-1.docker.io`` at a local registry; in AWS it is empty and every host is ``https://<host>``.

A listing redirected to another host goes on there (a 401 there is answered there, the next page is resolved
against it), and a ``Basic`` challenge of another host than the registry's gets no credential.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urljoin, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.adapters.registry_auth import (
    MAX_REDIRECTS,
    TIMEOUT,
    RegistryFailure,
    RegistryHttp,
    base_url,
    basic_authorization,
    followed,
    host_of,
    http_pool,
    normalise_endpoints,
    retry_at,
)
from ecrcache.models.credential import secret_name
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_inputs import TagListing

if TYPE_CHECKING:
    import urllib3
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from ecrcache.adapters.registry_auth import (
        Answer,
    )

__all__ = ["MAX_REDIRECTS", "TIMEOUT", "OciUpstreamRegistry", "http_pool"]

PAGE_SIZE: Final = 1000
MAX_PAGE_BYTES: Final = 8 * 1024 * 1024
SECRET_TTL: Final = timedelta(minutes=5)
_NEXT_LINK: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


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
        self.endpoints = normalise_endpoints(endpoints)
        self._secrets = secrets
        self.http = http or http_pool()
        self.clock = clock
        self.registry = RegistryHttp(self.http, clock)
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
        return base_url(self.endpoints, upstream_url)

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
                answer = self._get(url, signed.get(host_of(url)))
                url = followed(base, answer.url)
                if answer.status == 401 and not signed_in:
                    signed[host_of(url)] = self._sign_in(base, repository, answer, credential)
                    signed_in = True
                    continue
                page = self._page(answer, repository, signed_in=signed_in)
                tags += page
                url = self._next(url, answer.headers)
        except RegistryFailure as failed:
            return TagListing(repository, tuple(tags), spent, failed.failure, failed.message, failed.retry_at)
        return TagListing(repository, tuple(dict.fromkeys(tags)), spent)

    # -- one request ---------------------------------------------------------------------------

    def _get(self, url: str, authorization: str | None) -> Answer:
        answer = self.registry.send("GET", url, authorization, limit=MAX_PAGE_BYTES)
        if len(answer.body) > MAX_PAGE_BYTES:
            raise RegistryFailure(FailureClass.OURS, f"a tag list page is over {MAX_PAGE_BYTES} bytes")
        return answer

    def _page(self, answer: Answer, repository: str, *, signed_in: bool) -> list[str]:
        status = answer.status
        if status == 200:
            try:
                data: Any = json.loads(answer.body)
                found = data.get("tags") or []
                if not isinstance(found, list) or not all(isinstance(t, str) for t in found):
                    raise TypeError
            except (ValueError, TypeError, AttributeError):
                raise RegistryFailure(FailureClass.UPSTREAM_DOWN, "the tag list is not JSON of the OCI shape") from None
            return found
        if status == 429:
            reset = retry_at(answer.headers, self.clock())
            raise RegistryFailure(
                FailureClass.RATE_LIMIT, f"429 Too Many Requests listing {repository}", retry_at=reset
            )
        if status in (401, 403):
            what = "rejected the credential" if signed_in else "refused anonymous access"
            raise RegistryFailure(FailureClass.CREDENTIAL, f"{status}: the upstream {what} for {repository}")
        if status == 404:
            raise RegistryFailure(FailureClass.NOT_FOUND, f"404: the upstream has no repository {repository}")
        raise RegistryFailure(FailureClass.UPSTREAM_DOWN, f"{status} from the upstream listing {repository}")

    @staticmethod
    def _next(current: str, headers: Mapping[str, str]) -> str | None:
        """The next page (``Link: <...>; rel="next"``) of the page at ``current``, on the same host."""
        match = _NEXT_LINK.search(headers.get("link", ""))
        if match is None:
            return None
        following: str = urljoin(current, str(match.group(1)))
        if urlsplit(following).netloc != urlsplit(current).netloc:
            raise RegistryFailure(FailureClass.UPSTREAM_DOWN, "the next page link points at another host")
        return following

    # -- signing in ----------------------------------------------------------------------------

    def _sign_in(self, base: str, repository: str, answer: Answer, credential: str | None) -> str:
        """The ``Authorization`` a 401's challenge asks for; a bearer token is kept for the next listing."""
        authorization = self.registry.sign_in(
            base,
            answer,
            lambda: None if credential is None else self._basic(credential),
            subject=repository,
            no_credential=f"the upstream needs a credential for {repository}; the rule has none",
        )
        if authorization.startswith("Bearer "):
            self._tokens[(host_of(answer.url), repository)] = authorization
        return authorization

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
                raise RegistryFailure(
                    FailureClass.CREDENTIAL, f"the credential's secret {name} does not exist"
                ) from None
            raise classify(exc, "Secrets Manager GetSecretValue") from None
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager GetSecretValue") from None
        try:
            data = json.loads(value)
            basic = basic_authorization(str(data["username"]), str(data["accessToken"]))
        except (ValueError, KeyError, TypeError):
            raise RegistryFailure(
                FailureClass.CREDENTIAL, f"the secret {name} is not {{username, accessToken}} JSON"
            ) from None
        self._credentials[credential] = (now, basic)
        return basic

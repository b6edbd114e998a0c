"""A small OCI distribution client over ``requests``: auth challenges, manifests and blobs.

It speaks just enough of the OCI distribution spec (and Docker's token auth) for the seeder to
push and for the fake ECR to pull:

* ``GET /v2/`` and any ``401`` answer with ``WWW-Authenticate``: **Basic** -> resend with the
  credentials; **Bearer** ``realm=...,service=...,scope=...`` -> ask the realm for a token (Basic
  credentials if we have them, anonymous otherwise), cache it per scope, resend with
  ``Authorization: Bearer``. A second 401 is final.
* blob upload: ``POST /v2/<name>/blobs/uploads/`` then a monolithic ``PUT <location>?digest=``;
  manifest ``PUT``/``GET``/``HEAD``/``DELETE``; blob ``GET``/``HEAD``; ``tags/list``.
* every manifest and blob read is checked against its digest.

Failures raise :class:`RegistryError` with the HTTP status, the OCI error code and ``Retry-After``
kept, or :class:`RegistryConnectionError` for timeouts and refused connections. Credentials never
appear in an exception message or a ``repr``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import urljoin

import requests

from devstack.registry.images import (
    ALL_MANIFEST_MEDIA_TYPES,
    Descriptor,
    descriptors_of,
    sha256_digest,
    verify_digest,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Challenge",
    "DigestMismatchError",
    "FetchedManifest",
    "RegistryClient",
    "RegistryConnectionError",
    "RegistryError",
    "parse_challenge",
    "parse_retry_after",
]

DEFAULT_TIMEOUT = 10.0
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # ECR's imageManifest limit (ecr-facts §5.2)
_PARAM_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


class RegistryError(Exception):
    """The registry answered with an error status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        url: str = "",
    ) -> None:
        super().__init__(f"HTTP {status}{f' {code}' if code else ''}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.url = url


class RegistryConnectionError(Exception):
    """No answer: connection refused or reset, or the read timed out."""

    def __init__(self, message: str, *, timeout: bool = False, url: str = "") -> None:
        super().__init__(message)
        self.timeout = timeout
        self.url = url


class DigestMismatchError(Exception):
    """The bytes served do not hash to the digest asked for (or announced)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge."""

    scheme: str  # lower case: "basic" or "bearer"
    params: Mapping[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"`` or ``Basic realm="…"`` (first challenge only)."""
    text = header.strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if match is None or match.end() == pos:
            break
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "")
        pos = match.end()
    return Challenge(scheme.lower(), params)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form; an HTTP date is not used by registries)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def _error_from(response: requests.Response) -> RegistryError:
    code: str | None = None
    message = response.reason or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code") or "") or None
            message = str(errors[0].get("message") or message)
        elif isinstance(body.get("details"), str):
            message = body["details"]
    return RegistryError(
        response.status_code,
        message,
        code=code,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        url=response.url,
    )


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest exactly as served, with its verified digest and what it references."""

    repository: str
    reference: str
    media_type: str
    body: bytes = field(repr=False)
    digest: str
    children: tuple[Descriptor, ...]
    blobs: tuple[Descriptor, ...]

    @property
    def is_index(self) -> bool:
        return bool(self.children) and not self.blobs

    def json(self) -> dict[str, object]:
        doc = json.loads(self.body)
        if not isinstance(doc, dict):
            raise ValueError("manifest is not a JSON object")
        return doc


class RegistryClient:
    """One registry, one set of credentials; thread-safe token cache."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        user_agent: str = "ecrcache-registry-client/1",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self.timeout = timeout
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._session.headers["User-Agent"] = user_agent
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._challenge: Challenge | None = None

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r}, username={self._username!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- auth -------------------------------------------------------------------------------------
    @property
    def has_credentials(self) -> bool:
        return self._username is not None and self._password is not None

    def _basic(self) -> tuple[str, str] | None:
        if self._username is None or self._password is None:
            return None
        return (self._username, self._password)

    def fetch_token(self, challenge: Challenge, scope: str | None) -> str:
        """The Docker token dance: ``GET realm?service=&scope=`` with Basic credentials (if any)."""
        realm = challenge.realm
        if not realm:
            raise RegistryError(401, "Bearer challenge without a realm", code="UNAUTHORIZED")
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        if scope:
            params.append(("scope", scope))
        try:
            response = self._session.get(realm, params=params, auth=self._basic(), timeout=self.timeout)
        except requests.Timeout as exc:
            raise RegistryConnectionError(f"token request to {realm} timed out", timeout=True, url=realm) from exc
        except requests.RequestException as exc:
            raise RegistryConnectionError(f"token request to {realm} failed: {type(exc).__name__}", url=realm) from exc
        if response.status_code != 200:
            raise _error_from(response)
        body = response.json()
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(502, "token endpoint answered without a token", url=realm)
        return token

    def _auth_headers(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
            challenge = self._challenge
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if challenge is not None and challenge.scheme == "basic":
            return {}  # requests adds Basic through ``auth=``
        return {}

    def _authenticate(self, response: requests.Response, scope: str) -> bool:
        """React to a 401: remember the challenge and get what it asks for. False = nothing to retry."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        with self._lock:
            self._challenge = challenge
        if challenge.scheme == "basic":
            return self.has_credentials
        if challenge.scheme == "bearer":
            token = self.fetch_token(challenge, scope or challenge.params.get("scope"))
            with self._lock:
                self._tokens[scope] = token
            return True
        return False

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str = "",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """Send, answer one auth challenge, resend; raise on an unexpected status."""
        url = path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"
        response = self._send(method, url, scope=scope, headers=headers, params=params, data=data)
        if response.status_code == 401 and self._authenticate(response, scope):
            response = self._send(method, url, scope=scope, headers=headers, params=params, data=data)
        if response.status_code not in expected:
            raise _error_from(response)
        return response

    def _send(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        data: bytes | None,
    ) -> requests.Response:
        all_headers = {**self._auth_headers(scope), **(headers or {})}
        with self._lock:
            use_basic = self._challenge is not None and self._challenge.scheme == "basic"
        try:
            return self._session.request(
                method,
                url,
                headers=all_headers,
                params=params,
                data=data,
                auth=self._basic() if use_basic else None,
                timeout=self.timeout,
                allow_redirects=True,
            )
        except requests.Timeout as exc:
            raise RegistryConnectionError(
                f"{method} {url} timed out after {self.timeout}s", timeout=True, url=url
            ) from exc
        except requests.RequestException as exc:
            raise RegistryConnectionError(f"{method} {url} failed: {type(exc).__name__}", url=url) from exc

    # -- API --------------------------------------------------------------------------------------
    def ping(self) -> requests.Response:
        """``GET /v2/``, authenticating if challenged (a login check, like ``docker login``)."""
        return self.request("GET", "/v2/", scope="")

    @staticmethod
    def pull_scope(repository: str) -> str:
        return f"repository:{repository}:pull"

    @staticmethod
    def push_scope(repository: str) -> str:
        return f"repository:{repository}:pull,push"

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=self.pull_scope(repository), expected=(200, 404)
        )
        return response.status_code == 200

    def head_blob(self, repository: str, digest: str) -> int:
        """Size of the blob (``Content-Length``); :class:`RegistryError` 404 when absent."""
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=self.pull_scope(repository))
        return int(response.headers.get("Content-Length", "0"))

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=self.pull_scope(repository))
        data = response.content
        if not verify_digest(data, digest):
            raise DigestMismatchError(f"blob {digest} of {repository}: served bytes hash to {sha256_digest(data)}")
        return data

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` unless it is already there (POST + monolithic PUT); return its digest."""
        digest = sha256_digest(data)
        scope = self.push_scope(repository)
        head = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope, expected=(200, 404))
        if head.status_code == 200:
            return digest
        start = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, expected=(202,))
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(start.status_code, "upload started without a Location header", url=start.url)
        upload_url = urljoin(self.base_url + "/", location)
        self.request(
            "PUT",
            upload_url,
            scope=scope,
            params={"digest": digest},
            headers={"Content-Type": "application/octet-stream"},
            data=data,
            expected=(201,),
        )
        return digest

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; return the digest the registry computed (checked)."""
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scope=self.push_scope(repository),
            headers={"Content-Type": media_type},
            data=body,
            expected=(201,),
        )
        digest = sha256_digest(body)
        served = response.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise DigestMismatchError(f"registry computed {served} for a manifest whose sha256 is {digest}")
        return digest

    def get_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = ALL_MANIFEST_MEDIA_TYPES
    ) -> FetchedManifest:
        """GET a manifest by tag or digest, verify its digest and list what it references."""
        response = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=self.pull_scope(repository),
            headers={"Accept": ", ".join(accept)},
        )
        body = response.content
        if len(body) > _MAX_MANIFEST_BYTES:
            raise RegistryError(413, f"manifest of {repository}:{reference} is larger than 4 MiB")
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatchError(f"manifest {reference} of {repository}: served bytes hash to {digest}")
        served = response.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise DigestMismatchError(
                f"manifest {repository}:{reference}: header says {served}, bytes hash to {digest}"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        children, blobs = descriptors_of(body)
        if not media_type or media_type == "application/json":
            media_type = str(json.loads(body).get("mediaType") or media_type)
        return FetchedManifest(repository, reference, media_type, body, digest, tuple(children), tuple(blobs))

    def head_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = ALL_MANIFEST_MEDIA_TYPES
    ) -> tuple[str, str]:
        """``(digest, media type)`` of a manifest without downloading it."""
        response = self.request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=self.pull_scope(repository),
            headers={"Accept": ", ".join(accept)},
        )
        return (
            response.headers.get("Docker-Content-Digest", ""),
            response.headers.get("Content-Type", "").split(";")[0].strip(),
        )

    def delete_manifest(self, repository: str, digest: str) -> None:
        self.request(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            scope=f"repository:{repository}:delete",
            expected=(202,),
        )

    def list_tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"/v2/{repository}/tags/list", scope=self.pull_scope(repository))
        tags = response.json().get("tags") or []
        return [str(t) for t in tags]

"""A tiny Docker-style token server, so a local ``docker-registry`` behaves like Docker Hub and GHCR.

``docker-registry`` (distribution 2.8) configured with ``auth.token`` answers an unauthenticated
request with ``401`` and ``WWW-Authenticate: Bearer realm="<this server>/token",service=...,scope=...``.
The client then asks this server for a token with HTTP Basic credentials; we answer
``{"token": <JWT>, "access_token": <JWT>, "expires_in": 300}``. The JWT is RS256-signed, and its
header carries the signing certificate in ``x5c``: distribution verifies the chain against the
``rootcertbundle`` file we write (the same self-signed certificate), then checks ``iss``, ``aud``
(= ``service``), ``exp``/``nbf`` and the ``access`` claim against the requested scope
(distribution ``registry/auth/token/token.go``).

Anonymous token requests get pull-only tokens when ``allow_anonymous`` is set (Docker Hub public
images), otherwise ``401``. Wrong credentials always get ``401`` -- that is what an upstream
authentication check (``ValidatePullThroughCacheRule``) sees.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from devstack.serving import Background, ServerThread

__all__ = ["TOKEN_ISSUER", "TOKEN_SERVICE", "TokenServer"]

TOKEN_ISSUER = "ecrcache-local-token-issuer"  # noqa: S105 - a JWT issuer name, not a secret
TOKEN_SERVICE = "ecrcache-local-registry"  # noqa: S105 - the registry service name
TOKEN_TTL_SECONDS = 300


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _SigningKey:
    """An RSA key and a self-signed certificate for it (the registry's root bundle)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        start = datetime.now(UTC) - timedelta(days=1)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign_jwt(self, claims: Mapping[str, Any]) -> str:
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _parse_scope(scope: str) -> dict[str, Any] | None:
    """``repository:library/node:pull,push`` -> an ``access`` entry (names may not contain ':')."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    kind, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class TokenServer(Background):
    """Threaded HTTP token endpoint at ``http://127.0.0.1:<port>/token``."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        allow_anonymous: bool = False,
        service: str = TOKEN_SERVICE,
        issuer: str = TOKEN_ISSUER,
    ) -> None:
        self._users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self.service = service
        self.issuer = issuer
        self._key = _SigningKey()
        self._serving: ServerThread | None = None
        self._lock = threading.Lock()
        self.requests: list[tuple[str | None, list[str]]] = []  # (username or None, scopes) -- no secrets

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._serving is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._serving = ServerThread(server, "ecrcache-token-server").start()
        return self

    def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(timeout=5)

    @property
    def realm(self) -> str:
        if self._serving is None:
            raise RuntimeError("token server is not running")
        return f"{self._serving.url}/token"

    def write_root_bundle(self, path: Path) -> Path:
        path.write_bytes(self._key.cert_pem)
        return path

    # -- users ------------------------------------------------------------------------------------
    def set_user(self, username: str, password: str) -> None:
        with self._lock:
            self._users[username] = password

    def remove_user(self, username: str) -> None:
        with self._lock:
            self._users.pop(username, None)

    def _check(self, username: str, password: str) -> bool:
        with self._lock:
            expected = self._users.get(username)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    # -- tokens -----------------------------------------------------------------------------------
    def issue(self, subject: str, scopes: list[str], *, pull_only: bool = False) -> str:
        """A signed token granting ``scopes`` (pull-only for anonymous callers)."""
        access = []
        for scope in scopes:
            entry = _parse_scope(scope)
            if entry is None:
                continue
            if pull_only:
                entry["actions"] = [a for a in entry["actions"] if a == "pull"]
            access.append(entry)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + TOKEN_TTL_SECONDS,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return self._key.sign_jwt(claims)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_TokenHandler):
            token_server = owner

        return Handler

    def authenticate(self, authorization: str) -> tuple[bool, str | None]:
        """``(ok, username)`` for an ``Authorization`` header: ``(True, None)`` = anonymous."""
        if not authorization:
            return True, None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        return (True, user) if self._check(user, password) else (False, None)

    def answer(self, path: str, authorization: str) -> tuple[HTTPStatus, dict[str, Any]]:
        """The token endpoint: ``GET /token?service=...&scope=...`` (status, JSON body)."""
        url = urlsplit(path)
        if url.path != "/token":
            return HTTPStatus.NOT_FOUND, {"details": "not found"}
        scopes = [s for value in parse_qs(url.query).get("scope", []) for s in value.split(" ") if s]
        ok, username = self.authenticate(authorization)
        if not ok:
            return HTTPStatus.UNAUTHORIZED, _unauthorized("incorrect username or password")
        with self._lock:
            self.requests.append((username, scopes))
        if username is None and not self.allow_anonymous:
            return HTTPStatus.UNAUTHORIZED, _unauthorized("authentication required")
        token = self.issue(username or "anonymous", scopes, pull_only=username is None)
        return HTTPStatus.OK, {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL_SECONDS,
            "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _unauthorized(message: str) -> dict[str, Any]:
    return {"errors": [{"code": "UNAUTHORIZED", "message": message}], "details": message}


class _TokenHandler(BaseHTTPRequestHandler):
    token_server: TokenServer
    server_version = "ecrcache-token/1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read TokenServer.requests instead

    def do_GET(self) -> None:
        status, body = self.token_server.answer(self.path, self.headers.get("Authorization", ""))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", f'Basic realm="{self.token_server.service}"')
        self.end_headers()
        self.wfile.write(payload)

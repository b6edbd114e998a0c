"""The credential probe against real local registries (Debian ``docker-registry``): the Bearer token dance
(Docker Hub, GHCR, ... style), HTTP Basic, anonymous, ``/v2/``-only (ACR), and every outcome class through the
fault proxy -- a wrong token, a 429 with its reset, 5xx, timeouts, a probe image that is gone."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3
from pydantic import SecretStr

from devstack.registry import FaultKind, FaultProxy, LocalRegistry, RateLimit, Seeder
from ecrcache.adapters.registry_auth import basic_authorization, http_pool
from ecrcache.adapters.upstream_auth import RegistryAuthProbe
from ecrcache.models.credential import UpstreamLogin
from ecrcache.models.image_reference import parse_image_reference
from ecrcache.models.upstream_probe import ProbeStatus, ProbeTarget
from ecrcache.ports import UpstreamProbe
from tests.functional.registry.support import AUTH_CREDENTIALS

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

HUB = "registry-1.docker.io"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GOOD = UpstreamLogin(AUTH_CREDENTIALS.username, SecretStr(AUTH_CREDENTIALS.password))
WRONG_TOKEN = "dckr_pat_WRONGPROBECANARY_0001"
WRONG = UpstreamLogin(AUTH_CREDENTIALS.username, SecretStr(WRONG_TOKEN))


def prober(url: str, *, read_timeout: float = 5.0) -> RegistryAuthProbe:
    http = http_pool(urllib3.Timeout(connect=2.0, read=read_timeout))
    return RegistryAuthProbe(endpoints={HUB: url}, http=http, clock=lambda: NOW)


def target(image: str | None) -> ProbeTarget:
    return ProbeTarget(HUB, parse_image_reference(image) if image is not None else None)


@pytest.fixture
def probe_image(token_registry: LocalRegistry, unique_repo: str) -> str:
    """A one-platform image in the Bearer registry, the probe's target."""
    with Seeder.for_registry(token_registry) as seeder:
        seeder.image(unique_repo, "latest", platforms=("linux/amd64",))
    return f"{unique_repo}:latest"


@pytest.fixture
def proxied_token_registry(token_registry: LocalRegistry) -> Iterator[FaultProxy]:
    """A fault proxy in front of the Bearer registry (its token realm stays the token server's own)."""
    with FaultProxy(token_registry.url, max_delay=5.0) as proxy:
        yield proxy


def test_the_probe_implements_the_port() -> None:
    port: UpstreamProbe = RegistryAuthProbe()  # checked by mypy
    assert port.probe is not None


def test_a_good_token_signs_in_with_the_probe_repositorys_scope_and_finds_the_image(
    token_registry: LocalRegistry, probe_image: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a Docker-Hub-like registry (401 + Bearer challenge at /v2/, no anonymous pulls) and our loggers at DEBUG
    for name in ("urllib3", "ecrcache-test", "ecrcache"):
        caplog.set_level(logging.DEBUG, logger=name)
    assert token_registry.token_server is not None
    asked = len(token_registry.token_server.requests)

    # WHEN the credential is probed
    result = prober(token_registry.url).probe(target(probe_image), GOOD)

    # THEN ok, signed in: /v2/ (401), the token for the probe repository's pull scope, /v2/ again, the HEAD
    assert (result.status, result.authenticated, result.requests) == (ProbeStatus.OK, True, 4)
    assert "signed in with the credential and found the probe image" in result.message
    repository = probe_image.split(":", maxsplit=1)[0]
    assert token_registry.token_server.requests[asked:] == [
        (AUTH_CREDENTIALS.username, [f"repository:{repository}:pull"])
    ]
    # AND the token is in no log line and not in the result
    assert AUTH_CREDENTIALS.password not in caplog.text
    assert AUTH_CREDENTIALS.password not in repr(result)


def test_a_wrong_token_is_refused_by_the_token_service(token_registry: LocalRegistry, probe_image: str) -> None:
    result = prober(token_registry.url).probe(target(probe_image), WRONG)
    assert (result.status, result.authenticated) == (ProbeStatus.CREDENTIAL, True)
    assert result.message == "401: the upstream's token service rejected the credential"
    assert WRONG_TOKEN not in repr(result)


def test_no_token_for_a_registry_that_needs_one_is_a_credential_failure(
    token_registry: LocalRegistry, probe_image: str
) -> None:
    result = prober(token_registry.url).probe(target(probe_image), None)
    assert (result.status, result.authenticated) == (ProbeStatus.CREDENTIAL, False)


@pytest.mark.parametrize(("login", "status"), [(GOOD, ProbeStatus.OK), (WRONG, ProbeStatus.CREDENTIAL)])
def test_a_v2_only_probe_signs_in_at_the_registrys_root(
    token_registry: LocalRegistry, login: UpstreamLogin, status: ProbeStatus
) -> None:
    # GIVEN no probe image (ACR: the user's own registry) WHEN probed THEN /v2/, the realm (no scope), /v2/ again
    result = prober(token_registry.url).probe(target(None), login)
    assert result.status is status
    if status is ProbeStatus.OK:
        assert (result.requests, result.message) == (
            3,
            f"{HUB}/v2/: signed in with the credential and was let in at /v2/",
        )


@pytest.mark.parametrize(("login", "status"), [(GOOD, ProbeStatus.OK), (WRONG, ProbeStatus.CREDENTIAL)])
def test_a_basic_auth_registry_takes_the_credential_directly(
    auth_registry: LocalRegistry, unique_repo: str, login: UpstreamLogin, status: ProbeStatus
) -> None:
    with Seeder.for_registry(auth_registry) as seeder:
        seeder.image(unique_repo, "1.0", platforms=("linux/amd64",))
    result = prober(auth_registry.url).probe(target(f"{unique_repo}:1.0"), login)
    assert (result.status, result.authenticated) == (status, True)
    if status is ProbeStatus.CREDENTIAL:
        assert result.message == "401: the upstream refused the credential for /v2/"


def test_an_upstream_that_asks_for_no_credential_is_ok_and_says_the_credential_was_not_checked(
    registry: LocalRegistry, unique_repo: str
) -> None:
    with Seeder.for_registry(registry) as seeder:
        seeder.image(unique_repo, "1.0", platforms=("linux/amd64",))
    result = prober(registry.url).probe(target(f"{unique_repo}:1.0"), WRONG)
    assert (result.status, result.authenticated, result.requests) == (ProbeStatus.OK, False, 2)
    assert "asked for no credential (it was not checked)" in result.message


def test_a_probe_image_that_is_gone_is_the_probes_problem_not_the_credentials(token_registry: LocalRegistry) -> None:
    result = prober(token_registry.url).probe(target("team/no-such-image:latest"), GOOD)
    assert (result.status, result.authenticated) == (ProbeStatus.NOT_FOUND, True)
    assert "the probe's problem, not the credential's" in result.message


def test_a_429_is_a_rate_limit_with_the_upstreams_reset(proxied_token_registry: FaultProxy, probe_image: str) -> None:
    proxied_token_registry.faults.add(FaultKind.TOO_MANY_REQUESTS, times=1, path=r"/manifests/", retry_after=120)
    result = prober(proxied_token_registry.url).probe(target(probe_image), GOOD)
    assert (result.status, result.retry_at) == (ProbeStatus.RATE_LIMIT, NOW + timedelta(seconds=120))
    assert result.message == f"429 Too Many Requests for the probe image {probe_image}"


def test_the_probes_head_is_not_counted_by_a_docker_hub_like_pull_limit(
    token_registry: LocalRegistry, probe_image: str
) -> None:
    # GIVEN a pull limit of one manifest GET (a HEAD is not a pull, as on Docker Hub)
    with FaultProxy(token_registry.url, rate_limit=RateLimit(1, 21_600)) as proxy:
        # WHEN the credential is probed twice THEN both are ok: two HEADs, nothing throttled, no pull spent
        assert prober(proxy.url).probe(target(probe_image), GOOD).status is ProbeStatus.OK
        assert prober(proxy.url).probe(target(probe_image), GOOD).status is ProbeStatus.OK
        total = proxy.counters()["total"]
    assert (total["manifest_heads"], total["throttled"], total["pulls"]) == (2, 0, 0)


@pytest.mark.parametrize(
    ("fault", "path", "status", "words"),
    [
        (FaultKind.UNAVAILABLE, r"^/v2/$", ProbeStatus.UPSTREAM_DOWN, "503 from the upstream for /v2/"),
        (FaultKind.SERVER_ERROR, r"/manifests/", ProbeStatus.UPSTREAM_DOWN, "500 from the upstream for the probe"),
        (FaultKind.TIMEOUT, r"^/v2/$", ProbeStatus.UPSTREAM_DOWN, "GET /v2/ failed: ReadTimeoutError"),
        (FaultKind.RESET, r"/manifests/", ProbeStatus.UPSTREAM_DOWN, "HEAD /v2/"),
        (FaultKind.TOO_MANY_REQUESTS, r"^/v2/$", ProbeStatus.RATE_LIMIT, "429 Too Many Requests for /v2/"),
        (FaultKind.UNAUTHORIZED, r"/manifests/", ProbeStatus.CREDENTIAL, "401: the upstream refused the credential"),
        (FaultKind.FORBIDDEN, r"/manifests/", ProbeStatus.CREDENTIAL, "403: the upstream refused the credential"),
    ],
)
def test_upstream_faults_are_classified(
    *,
    proxied_token_registry: FaultProxy,
    probe_image: str,
    fault: FaultKind,
    path: str,
    status: ProbeStatus,
    words: str,
) -> None:
    # GIVEN the upstream answers one request with the fault (after signing in, for the manifest ones)
    proxied_token_registry.faults.add(fault, times=1, path=path, delay=2.0)
    # WHEN probed with a good token THEN the outcome class, and a message that says where
    result = prober(proxied_token_registry.url, read_timeout=0.5).probe(target(probe_image), GOOD)
    assert result.status is status
    assert words in result.message


# --------------------------------------------------------------------------------------------------
# redirects (registry.k8s.io answers /v2/... with a 307 to Artifact Registry, another host)


class _Recorded(BaseHTTPRequestHandler):
    """Records each request's method, path and Authorization on its server."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.server.requests.append(  # type: ignore[attr-defined]
            (self.command, urlsplit(self.path).path, self.headers.get("Authorization"))
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Origin(_Recorded):
    def do_GET(self) -> None:
        self.answer(307, Location=f"{self.server.target}{self.path}")  # type: ignore[attr-defined]

    do_HEAD = do_GET


class _Target(_Recorded):
    """Artifact Registry's part: a bearer token of its own realm for the right Basic credential."""

    def do_GET(self) -> None:
        port = self.server.server_address[1]  # type: ignore[index]
        if self.path.startswith("/token"):
            if self.headers.get("Authorization") == basic_authorization(GOOD.username, AUTH_CREDENTIALS.password):
                self.answer(200, json.dumps({"token": "target-token"}).encode())
            else:
                self.answer(401)
        elif self.headers.get("Authorization") != "Bearer target-token":
            self.answer(401, WWW_Authenticate=f'Bearer realm="http://127.0.0.1:{port}/token",service="target"')
        else:
            self.answer(200, b"{}")

    do_HEAD = do_GET


def _serve(handler: type[BaseHTTPRequestHandler], **attributes: Any) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def redirected() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    target = _serve(_Target)
    origin = _serve(_Origin, target=f"http://127.0.0.1:{target.server_address[1]}")
    try:
        yield origin, target
    finally:
        for server in (origin, target):
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("login", [GOOD, WRONG])
def test_a_host_redirected_to_gets_no_credential_neither_does_the_origin(
    redirected: tuple[ThreadingHTTPServer, ThreadingHTTPServer], login: UpstreamLogin
) -> None:
    # GIVEN registry.k8s.io-like redirects to a host with its own token realm, which wants a credential
    origin, target = redirected
    probe = RegistryAuthProbe(endpoints={"registry.k8s.io": f"http://127.0.0.1:{origin.server_address[1]}"})
    # WHEN probed
    result = probe.probe(ProbeTarget("registry.k8s.io", parse_image_reference("pause:3.10")), login)
    # THEN the target's realm was asked anonymously (a credential goes only to realms the upstream's own host
    # names: an open redirect cannot hand it over), so it refused; the origin never saw an Authorization either
    assert result.status is ProbeStatus.CREDENTIAL
    assert {authorization for _, _, authorization in origin.requests} == {None}  # type: ignore[attr-defined]
    assert [a for _, path, a in target.requests if path.startswith("/token")] == [None]  # type: ignore[attr-defined]

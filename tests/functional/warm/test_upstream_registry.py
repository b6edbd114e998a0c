"""Listing an upstream's tags against real local registries (Debian ``docker-registry``): the Docker token
dance with the rule's credential from Secrets Manager, Basic auth, anonymous, and every failure class
through the fault proxy. Pagination is checked against a small server that pages: ``docker-registry``
2.8 ignores ``n`` on ``tags/list`` (observed: every tag in one answer, no ``Link``)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import urllib3

from devstack.registry import FaultKind, FaultProxy, LocalRegistry, Seeder
from ecrcache.adapters.upstream_registry import MAX_REDIRECTS, OciUpstreamRegistry, http_pool
from ecrcache.errors import TerminalError
from ecrcache.models.failure_class import FailureClass
from ecrcache.ports import UpstreamTags
from tests.conftest import REGION
from tests.functional.registry.support import AUTH_CREDENTIALS
from tests.functional.warm.support import raiser

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

HUB = "registry-1.docker.io"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TAGS = ("1.0", "1.1", "2.0")


@pytest.fixture
def secrets(aws: None) -> Any:
    client = boto3.client("secretsmanager", region_name=REGION)
    for name, token in (("hub", AUTH_CREDENTIALS.password), ("expired", "expired-token")):
        value = json.dumps({"username": AUTH_CREDENTIALS.username, "accessToken": token})
        client.create_secret(Name=f"ecr-pullthroughcache/{name}", SecretString=value)
    return client


def seed(registry: LocalRegistry, repository: str) -> None:
    with Seeder.for_registry(registry) as seeder:
        for tag in TAGS:
            seeder.image(repository, tag, platforms=("linux/amd64",))


def adapter(url: str, secrets: Any = None, *, read_timeout: float = 5.0) -> OciUpstreamRegistry:
    http = http_pool(urllib3.Timeout(connect=2.0, read=read_timeout))  # the adapter's own client, shorter timeouts
    return OciUpstreamRegistry(endpoints={HUB: url}, secrets=secrets, http=http, clock=lambda: NOW)


def test_the_adapter_implements_the_port() -> None:
    port: UpstreamTags = OciUpstreamRegistry()  # checked by mypy
    assert port.list_tags is not None


def test_a_bearer_registry_is_listed_with_a_token_got_with_the_credential(
    token_registry: LocalRegistry, unique_repo: str, secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a Docker-Hub-like registry (401 + Bearer challenge; no anonymous pulls) with three tags
    seed(token_registry, unique_repo)
    registry = adapter(token_registry.url, secrets)
    for name in ("urllib3", "ecrcache-test", "ecrcache"):  # HTTP and our own loggers (not botocore's wire debug)
        caplog.set_level(logging.DEBUG, logger=name)

    # WHEN its tags are listed with the rule's credential
    listing = registry.list_tags(HUB, unique_repo, credential="hub", max_requests=5)

    # THEN every tag, for 2 registry requests (the challenge and the page); the token server was asked once
    assert (sorted(listing.tags), listing.requests, listing.failure, listing.complete) == (sorted(TAGS), 2, None, True)
    assert token_registry.token_server is not None
    assert [user for user, _ in token_registry.token_server.requests][-1] == AUTH_CREDENTIALS.username
    # AND the next listing of the repository reuses the token: one request
    assert registry.list_tags(HUB, unique_repo, credential="hub", max_requests=5).requests == 1
    # AND the credential appears in no log
    assert AUTH_CREDENTIALS.password not in caplog.text


def test_a_rejected_credential_is_a_credential_failure_without_the_token(
    token_registry: LocalRegistry, unique_repo: str, secrets: Any
) -> None:
    seed(token_registry, unique_repo)
    listing = adapter(token_registry.url, secrets).list_tags(HUB, unique_repo, credential="expired", max_requests=5)
    assert (listing.failure, listing.tags, listing.requests) == (FailureClass.CREDENTIAL, (), 1)
    assert "rejected the credential" in (listing.message or "")
    assert "expired-token" not in repr(listing)


def test_a_missing_secret_is_a_credential_failure(token_registry: LocalRegistry, secrets: Any) -> None:
    listing = adapter(token_registry.url, secrets).list_tags(HUB, "library/node", credential="gone", max_requests=5)
    assert listing.failure is FailureClass.CREDENTIAL
    assert "ecr-pullthroughcache/gone does not exist" in (listing.message or "")


def test_secrets_manager_refusing_is_raised_classified(token_registry: LocalRegistry, secrets: Any) -> None:
    secrets.get_secret_value = raiser("AccessDeniedException", 400)
    with pytest.raises(TerminalError, match="Secrets Manager GetSecretValue failed with AccessDeniedException"):
        adapter(token_registry.url, secrets).list_tags(HUB, "library/node", credential="hub", max_requests=5)


def test_a_basic_auth_registry_is_listed_with_the_credential(
    auth_registry: LocalRegistry, unique_repo: str, secrets: Any
) -> None:
    seed(auth_registry, unique_repo)
    listing = adapter(auth_registry.url, secrets).list_tags(HUB, unique_repo, credential="hub", max_requests=5)
    assert (sorted(listing.tags), listing.requests) == (sorted(TAGS), 2)


def test_a_credential_needed_but_absent_is_a_credential_failure(auth_registry: LocalRegistry) -> None:
    listing = adapter(auth_registry.url).list_tags(HUB, "library/node", credential=None, max_requests=5)
    assert listing.failure is FailureClass.CREDENTIAL
    assert "the rule has none" in (listing.message or "")


def test_an_anonymous_registry_is_listed_in_one_request(registry: LocalRegistry, unique_repo: str) -> None:
    seed(registry, unique_repo)
    listing = adapter(registry.url).list_tags(HUB, unique_repo, credential=None, max_requests=1)
    assert (sorted(listing.tags), listing.requests, listing.complete) == (sorted(TAGS), 1, True)


def test_an_unknown_repository_is_not_found(registry: LocalRegistry) -> None:
    listing = adapter(registry.url).list_tags(HUB, "no/such-repository", credential=None, max_requests=3)
    assert (listing.failure, listing.requests) == (FailureClass.NOT_FOUND, 1)


@pytest.mark.parametrize(
    ("fault", "failure", "words"),
    [
        (FaultKind.SERVER_ERROR, FailureClass.UPSTREAM_DOWN, "500"),
        (FaultKind.UNAVAILABLE, FailureClass.UPSTREAM_DOWN, "503"),
        (FaultKind.TIMEOUT, FailureClass.UPSTREAM_DOWN, "ReadTimeoutError"),
        (FaultKind.RESET, FailureClass.UPSTREAM_DOWN, "failed"),
        (FaultKind.FORBIDDEN, FailureClass.CREDENTIAL, "403"),
        (FaultKind.NOT_FOUND, FailureClass.NOT_FOUND, "404"),
    ],
)
def test_upstream_faults_are_classified(
    fault_proxy: FaultProxy, seeded: Any, fault: FaultKind, failure: FailureClass, words: str
) -> None:
    fault_proxy.faults.add(fault, times=1, path=r"/tags/list", delay=2.0)
    listing = adapter(fault_proxy.url, read_timeout=0.5).list_tags(
        HUB, "library/alpine", credential=None, max_requests=3
    )
    assert (listing.failure, listing.requests) == (failure, 1)
    assert words in (listing.message or "")


def test_a_429_is_a_rate_limit_with_the_upstreams_reset(fault_proxy: FaultProxy, seeded: Any) -> None:
    fault_proxy.faults.add(FaultKind.TOO_MANY_REQUESTS, times=1, path=r"/tags/list", retry_after=120)
    listing = adapter(fault_proxy.url).list_tags(HUB, "library/alpine", credential=None, max_requests=3)
    assert (listing.failure, listing.retry_at) == (FailureClass.RATE_LIMIT, NOW + timedelta(seconds=120))


def test_a_credential_rejected_after_signing_in_is_a_credential_failure(
    fault_proxy: FaultProxy, seeded: Any, secrets: Any
) -> None:
    # GIVEN the upstream answers 401 (Basic challenge) even with the credential
    fault_proxy.faults.add(FaultKind.UNAUTHORIZED, times=2, path=r"/tags/list")
    listing = adapter(fault_proxy.url, secrets).list_tags(HUB, "library/alpine", credential="hub", max_requests=3)
    assert (listing.failure, listing.requests) == (FailureClass.CREDENTIAL, 2)
    assert "rejected the credential" in (listing.message or "")


# --------------------------------------------------------------------------------------------------
# pagination (a server that pages, like distribution 3 and Docker Hub)


class _Paging(BaseHTTPRequestHandler):
    tags: ClassVar[list[str]] = [f"v{i}" for i in range(7)]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        size = int(query.get("n", ["100"])[0])
        last = query.get("last", [None])[0]
        start = self.tags.index(last) + 1 if last else 0
        page = self.tags[start : start + size]
        body = json.dumps({"name": "team/app", "tags": page}).encode()
        self.send_response(200)
        if start + size < len(self.tags):
            self.send_header("Link", f'</v2/team/app/tags/list?n={size}&last={page[-1]}>; rel="next"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def paging() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Paging)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pages_are_followed_one_request_each(paging: str) -> None:
    registry = OciUpstreamRegistry(endpoints={HUB: paging}, page_size=3)
    listing = registry.list_tags(HUB, "team/app", credential=None, max_requests=10)
    assert (listing.tags, listing.requests, listing.complete) == (tuple(_Paging.tags), 3, True)


def test_the_listing_stops_at_its_allowance_with_what_it_read(paging: str) -> None:
    registry = OciUpstreamRegistry(endpoints={HUB: paging}, page_size=3)
    listing = registry.list_tags(HUB, "team/app", credential=None, max_requests=2)
    assert (listing.tags, listing.requests, listing.complete, listing.failure) == (
        tuple(_Paging.tags[:6]),
        2,
        False,
        None,
    )


# --------------------------------------------------------------------------------------------------
# redirects (registry.k8s.io answers /v2/... with a 307 to Artifact Registry)


class _Recorded(BaseHTTPRequestHandler):
    """Records every request's path and Authorization header on its server."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def record(self) -> str | None:
        authorization = self.headers.get("Authorization")
        self.server.requests.append((urlsplit(self.path).path, authorization))  # type: ignore[attr-defined]
        return authorization

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Target(_Recorded):
    """Artifact Registry's part: tags for a bearer token from its own realm; a 401 Bearer challenge without."""

    def do_GET(self) -> None:
        authorization = self.record()
        port = self.server.server_address[1]  # type: ignore[index]
        if self.path.startswith("/token"):
            self.answer(200, json.dumps({"token": "target-token"}).encode())
        elif self.server.needs_basic:  # type: ignore[attr-defined]
            self.answer(401, WWW_Authenticate='Basic realm="target"')
        elif self.server.needs_token and authorization != "Bearer target-token":  # type: ignore[attr-defined]
            realm = f"http://127.0.0.1:{port}/token"
            self.answer(401, WWW_Authenticate=f'Bearer realm="{realm}",service="target",scope="pull"')
        else:
            self.answer(200, json.dumps({"name": "team/app", "tags": list(TAGS)}).encode())


class _Redirecting(_Recorded):
    """registry.k8s.io's part: every request is a 307 to the same path on the target (another port)."""

    def do_GET(self) -> None:
        self.record()
        self.answer(307, Location=f"{self.server.target}{self.path}")  # type: ignore[attr-defined]


class _Loop(_Recorded):
    def do_GET(self) -> None:
        self.record()
        self.answer(307, Location=self.path)


def _serve(handler: type[BaseHTTPRequestHandler], **attributes: Any) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def redirected() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    """(the registry answering 307, the target it redirects to) on two ports of 127.0.0.1."""
    target = _serve(_Target, needs_token=False, needs_basic=False)
    registry = _serve(_Redirecting, target=_url(target))
    try:
        yield registry, target
    finally:
        for server in (registry, target):
            server.shutdown()
            server.server_close()


def test_a_redirect_to_another_host_is_followed(redirected: tuple[ThreadingHTTPServer, ThreadingHTTPServer]) -> None:
    registry, target = redirected
    listing = OciUpstreamRegistry(endpoints={"registry.k8s.io": _url(registry)}).list_tags(
        "registry.k8s.io", "team/app", credential=None, max_requests=3
    )
    assert (listing.tags, listing.requests, listing.failure) == (TAGS, 1, None)
    assert [path for path, _ in target.requests] == ["/v2/team/app/tags/list"]  # type: ignore[attr-defined]


def test_a_token_is_asked_for_and_sent_where_the_redirect_led_and_never_to_another_host(
    redirected: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    # GIVEN the target asks for a bearer token of its own realm
    registry, target = redirected
    target.needs_token = True  # type: ignore[attr-defined]
    upstream = OciUpstreamRegistry(endpoints={"registry.k8s.io": _url(registry)})

    # WHEN the tags are listed twice
    first = upstream.list_tags("registry.k8s.io", "team/app", credential=None, max_requests=3)
    second = upstream.list_tags("registry.k8s.io", "team/app", credential=None, max_requests=3)

    # THEN each lists every tag: redirected, challenged there, then asked again there with the token
    assert (first.tags, first.requests, first.failure) == (TAGS, 2, None)
    assert (second.tags, second.failure) == (TAGS, None)
    assert ("/v2/team/app/tags/list", "Bearer target-token") in target.requests  # type: ignore[attr-defined]
    # AND the registry that redirected never saw the target's token (nor any Authorization)
    assert {authorization for _, authorization in registry.requests} == {None}  # type: ignore[attr-defined]


def test_the_credential_is_not_sent_to_another_host_that_asks_for_it_directly(
    redirected: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    # GIVEN the host the registry redirects to answers with a Basic challenge
    registry, target = redirected
    target.needs_basic = True  # type: ignore[attr-defined]
    listing = OciUpstreamRegistry(endpoints={HUB: _url(registry)}).list_tags(
        HUB, "team/app", credential="hub", max_requests=3
    )
    # THEN the listing fails as a credential problem, and the credential is neither read nor sent
    assert (listing.failure, listing.requests) == (FailureClass.CREDENTIAL, 1)
    assert "sent to the upstream's own host only" in (listing.message or "")
    assert {authorization for _, authorization in target.requests} == {None}  # type: ignore[attr-defined]


def test_a_token_realm_named_by_a_host_redirected_to_gets_no_credential(
    redirected: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    # GIVEN a rule with a credential, and the host the registry redirects to asking for a bearer token
    registry, target = redirected
    target.needs_token = True  # type: ignore[attr-defined]
    listing = OciUpstreamRegistry(endpoints={HUB: _url(registry)}).list_tags(
        HUB, "team/app", credential="hub", max_requests=3
    )
    # THEN its token is asked for anonymously (the credential is neither read nor sent), and the tags listed
    assert (listing.tags, listing.failure) == (TAGS, None)
    token_requests = [authorization for path, authorization in target.requests if path == "/token"]  # type: ignore[attr-defined]
    assert token_requests == [None]


def test_an_authorization_is_dropped_when_a_redirect_leaves_the_host(
    redirected: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    # urllib3's Retry.remove_headers_on_redirect, checked: another port is another host
    registry, target = redirected
    http_pool().request("GET", f"{_url(registry)}/v2/", headers={"Authorization": "Bearer for-the-registry"})
    assert registry.requests == [("/v2/", "Bearer for-the-registry")]  # type: ignore[attr-defined]
    assert target.requests == [("/v2/", None)]  # type: ignore[attr-defined]


def test_a_redirect_loop_is_an_upstream_failure_after_a_few_hops() -> None:
    server = _serve(_Loop)
    try:
        listing = OciUpstreamRegistry(endpoints={HUB: _url(server)}).list_tags(
            HUB, "team/app", credential=None, max_requests=3
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (listing.failure, listing.requests) == (FailureClass.UPSTREAM_DOWN, 1)
    assert f"more than {MAX_REDIRECTS} redirects" in (listing.message or "")
    assert len(server.requests) == MAX_REDIRECTS + 1  # type: ignore[attr-defined]

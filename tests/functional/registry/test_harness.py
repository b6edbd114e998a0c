"""The local registry harness: start, auth modes, stop without leaking a process (tooling.md §4)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from devstack.registry import AuthMode, Credentials, LocalRegistry, RegistryClient, RegistryError
from devstack.registry.faults import FaultProxy
from devstack.registry.harness import FrontedRegistry, RegistryStartError, find_registry_binary
from tests.functional.registry.support import AUTH_CREDENTIALS

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); our Popen.wait() reaps it, so treat "Z" as gone too.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_registry_starts_answers_v2_and_stops_without_leaking() -> None:
    """tooling.md §4: `docker-registry serve` on loopback, `/v2/` 200, gone after stop."""
    # GIVEN a registry started by the harness
    registry = LocalRegistry().start()
    pid, data_dir = registry.pid, registry.root_dir
    assert pid is not None
    try:
        # WHEN the API root is requested
        response = requests.get(f"{registry.url}/v2/", timeout=5)
        # THEN it answers like a distribution registry, on 127.0.0.1 only
        assert response.status_code == 200
        assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        assert registry.url.startswith("http://127.0.0.1:")
    finally:
        registry.stop()
    # THEN the process is gone and its temporary data removed
    assert not _alive(pid)
    assert not data_dir.exists()
    assert not registry.running


def test_registry_is_stopped_when_the_block_raises() -> None:
    """No leaked process even when the code using the registry fails."""
    pid = None
    # GIVEN a registry used as a context manager  WHEN the block raises
    with pytest.raises(RuntimeError, match="boom"), LocalRegistry() as registry:
        pid = registry.pid
        raise RuntimeError("boom")
    # THEN the process was stopped anyway
    assert pid is not None
    assert not _alive(pid)


def test_htpasswd_registry_requires_basic_credentials(auth_registry: LocalRegistry) -> None:
    """tooling.md §4: htpasswd (bcrypt) -- anonymous 401, right credentials 200, wrong 401."""
    # GIVEN the htpasswd registry
    # WHEN it is called anonymously THEN it challenges with Basic
    anonymous = requests.get(f"{auth_registry.url}/v2/", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    # WHEN the client logs in with the right credentials THEN it gets in
    with RegistryClient(
        auth_registry.url, username=AUTH_CREDENTIALS.username, password=AUTH_CREDENTIALS.password
    ) as client:
        assert client.ping().status_code == 200
    # WHEN the password is wrong THEN 401
    with (
        RegistryClient(auth_registry.url, username=AUTH_CREDENTIALS.username, password="wrong") as bad,
        pytest.raises(RegistryError) as excinfo,
    ):
        bad.ping()
    assert excinfo.value.status == 401


def test_token_registry_uses_the_bearer_token_dance(token_registry: LocalRegistry) -> None:
    """ecr-facts §7.2 "generic OCI check": 401 Bearer realm/service -> token with Basic creds -> Bearer."""
    # GIVEN the token-auth registry
    anonymous = requests.get(f"{token_registry.url}/v2/", timeout=5)
    # THEN an anonymous call gets a Bearer challenge naming our token server
    assert anonymous.status_code == 401
    challenge = anonymous.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert token_registry.token_server is not None
    assert token_registry.token_server.realm in challenge
    # WHEN a client with the right credentials pushes and pulls
    with RegistryClient(
        token_registry.url, username=AUTH_CREDENTIALS.username, password=AUTH_CREDENTIALS.password
    ) as client:
        digest = client.push_blob("team/token-check", b"bearer works")
        # THEN the registry accepted our signed token for push and pull scopes
        assert client.get_blob("team/token-check", digest) == b"bearer works"
    scopes = [scope for _, requested in token_registry.token_server.requests for scope in requested]
    assert "repository:team/token-check:pull,push" in scopes
    # WHEN the password is wrong THEN the token server refuses (401)
    with (
        RegistryClient(token_registry.url, username=AUTH_CREDENTIALS.username, password="wrong") as bad,
        pytest.raises(RegistryError) as excinfo,
    ):
        bad.ping()
    assert excinfo.value.status == 401


def test_a_fronted_token_registry_takes_a_new_token_set_at_run_time_over_http(fault_proxy: FaultProxy) -> None:
    """``PUT /_ecrcache/users``: a token issued (and the user's old one revoked) while the registry runs."""
    # GIVEN a token registry behind its proxy, as the local stack's ghcr.io stand-in
    with FrontedRegistry(auth=AuthMode.TOKEN, credentials=AUTH_CREDENTIALS) as fronted:
        users = f"{fronted.control_url}/users"
        # WHEN the user's token is replaced over HTTP
        answer = requests.put(users, json={"username": AUTH_CREDENTIALS.username, "password": "new-tok"}, timeout=5)
        # THEN the answer names the user only, the new token signs in and the old one is refused
        assert (answer.status_code, answer.json()) == (200, {"username": AUTH_CREDENTIALS.username})
        with RegistryClient(fronted.url, username=AUTH_CREDENTIALS.username, password="new-tok") as client:
            client.ping()
        with (
            RegistryClient(fronted.url, username=AUTH_CREDENTIALS.username, password=AUTH_CREDENTIALS.password) as old,
            pytest.raises(RegistryError) as excinfo,
        ):
            old.ping()
        assert excinfo.value.status == 401
        # AND a request without a password is refused, naming the field
        missing = requests.put(users, json={"username": "someone"}, timeout=5)
        assert (missing.status_code, missing.json()["error"]) == (400, "'password' is required: a non-empty string")
    # AND a registry without a token server takes no users
    anonymous = requests.put(f"{fault_proxy.url}/_ecrcache/users", json={"username": "u", "password": "p"}, timeout=5)
    assert (anonymous.status_code, "no token server" in anonymous.json()["error"]) == (400, True)


def test_auth_modes_need_credentials() -> None:
    """Bad harness input is a clear ValueError, before anything is started."""
    with pytest.raises(ValueError, match="needs credentials"):
        LocalRegistry(auth=AuthMode.HTPASSWD)
    with pytest.raises(ValueError, match="user:password"):
        Credentials.parse("no-colon")
    assert "dckr" not in repr(AUTH_CREDENTIALS)


def test_missing_binary_is_reported_with_the_install_hint() -> None:
    """A machine without docker-registry gets told what to install."""
    with pytest.raises(RegistryStartError, match="apt-get install docker-registry"):
        find_registry_binary("ecrcache-no-such-registry-binary")


def test_command_line_runs_in_foreground_until_interrupted() -> None:
    """`ecrcache-registry --port 0 --seed --rate-limit 1/1h` serves behind the proxy, seeds, stops on Ctrl-C."""
    # GIVEN the command started in its own process
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from devstack.registry.harness import main; sys.exit(main())",
            "--port",
            "0",
            "--seed",
            "--rate-limit",
            "1/1h",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers/core")])},
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not (seen and seen[-1].startswith("Ctrl-C")) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.5))
            assert process.poll() is None or not lines.empty(), f"exited early: {seen}"
        # THEN it printed its URL, the seeded images and the upstream map
        assert seen and seen[-1].startswith("Ctrl-C"), seen
        url = next(line for line in seen if line.startswith("registry: ")).split()[1]
        assert url.startswith("http://127.0.0.1:")
        assert any(line.startswith("seeded library/node:18-alpine sha256:") for line in seen)
        assert any(f"registry-1.docker.io={url}" in line for line in seen)
        assert requests.get(f"{url}/v2/library/alpine/tags/list", timeout=5).json()["tags"] == ["3.20"]
        # THEN the rate limit holds from the start: one manifest GET per hour, seeding not counted
        assert "rate limit: 1 manifest GETs per 3600 s" in seen
        manifest = f"{url}/v2/library/alpine/manifests/3.20"
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        assert requests.get(manifest, headers=accept, timeout=5).status_code == 200
        assert requests.get(manifest, headers=accept, timeout=5).status_code == 429
        counters = requests.get(f"{url}/_ecrcache/counters", timeout=5).json()["repositories"]
        assert list(counters) == ["library/alpine"]
        assert (counters["library/alpine"]["manifest_gets"], counters["library/alpine"]["throttled"]) == (2, 1)
        # WHEN it is interrupted THEN it exits cleanly
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0, seen
    finally:
        if process.poll() is None:  # a failed assertion: stop it cleanly (SIGTERM), kill only if stuck
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
    # THEN the registry it started is gone too
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/", timeout=2)

"""Run Debian's ``docker-registry`` (distribution 2.8) on loopback as a stand-in upstream registry.

:class:`LocalRegistry` writes a config like tooling.md §4 (data in a temporary folder, deletes
enabled), starts ``docker-registry serve <config>`` on a free ``127.0.0.1`` port, waits for
``/v2/`` and stops it with SIGTERM (then SIGKILL). Three auth modes:

* ``anonymous`` -- no auth, like ``public.ecr.aws`` or ``quay.io`` public images;
* ``htpasswd`` -- HTTP Basic against a bcrypt htpasswd file (distribution accepts only bcrypt);
* ``token`` -- Docker-style Bearer tokens from our :class:`~.tokens.TokenServer` (how Docker Hub,
  GHCR and most hosted registries behave): ``401 WWW-Authenticate: Bearer realm=...``.

No process outlives us: every started registry is stopped by ``stop()``/the context manager, by
an ``atexit`` hook, and -- when started from the main thread -- by the kernel
(``PR_SET_PDEATHSIG``) if the Python process dies without cleaning up.

:class:`FrontedRegistry` puts a :class:`~.faults.FaultProxy` in front of a :class:`LocalRegistry`:
clients talk to the proxy (``url``), so a Docker Hub-like rate limit, faults and request counters apply
and can be changed at run time over HTTP (``/_ecrcache/...`` on the same port, see :mod:`.faults`);
seeding goes to the registry itself and is not counted.

Command line (the ``ecrcache-registry`` entry point)::

    ecrcache-registry [--port 5000] [--auth user:password] [--token] [--seed] [--rate-limit 100/6h]

runs one fronted registry in the foreground until Ctrl-C and prints the ``ECRCACHE_UPSTREAM_MAP`` line
that maps every known upstream host to it. ``--rate-limit LIMIT/WINDOW`` (``100/21600``, ``100/6h``,
``100;w=21600``) limits manifest GETs from the start; ``PUT /_ecrcache/rate-limit`` changes it later,
``GET /_ecrcache/counters`` reads the manifest/blob requests and bytes served per repository.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import requests
import yaml

from devstack.registry.faults import CONTROL_PREFIX, FaultProxy
from devstack.registry.ratelimit import RateLimit
from devstack.registry.tokens import TokenServer
from devstack.registry.upstream_map import UpstreamMap
from devstack.serving import Background

__all__ = [
    "DEFAULT_BINARY",
    "AuthMode",
    "Credentials",
    "FrontedRegistry",
    "LocalRegistry",
    "RegistryStartError",
    "find_registry_binary",
    "free_port",
    "main",
]

DEFAULT_BINARY = "docker-registry"
_READY_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_START_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1

_live: weakref.WeakSet[LocalRegistry] = weakref.WeakSet()
_live_lock = threading.Lock()


class RegistryStartError(RuntimeError):
    """The registry binary is missing, exited, or never answered ``/v2/``."""


class AuthMode(StrEnum):
    ANONYMOUS = "anonymous"
    HTPASSWD = "htpasswd"
    TOKEN = "token"  # noqa: S105 - an auth mode name, not a secret


@dataclass(frozen=True, slots=True)
class Credentials:
    """Upstream registry credentials (the password is hidden from ``repr``)."""

    username: str
    password: str

    @classmethod
    def parse(cls, text: str) -> Credentials:
        username, sep, password = text.partition(":")
        if not sep or not username or not password:
            raise ValueError("credentials must look like user:password")
        return cls(username, password)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


def find_registry_binary(binary: str = DEFAULT_BINARY) -> str:
    """Absolute path of ``docker-registry``; :class:`RegistryStartError` with the install hint if absent."""
    path = shutil.which(binary)
    if path is None:
        raise RegistryStartError(
            f"{binary!r} not found on PATH: install Debian's package (apt-get install docker-registry, or `make setup`)"
        )
    return path


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    except OSError:
        return None


_LIBC = _load_libc()  # loaded here: the child must not load libraries between fork and exec


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_all_live() -> None:
    with _live_lock:
        registries = list(_live)
    for registry in registries:
        with contextlib.suppress(Exception):
            registry.stop()


atexit.register(_stop_all_live)


class LocalRegistry(Background):
    """One ``docker-registry serve`` process on ``127.0.0.1``; use as a context manager."""

    def __init__(
        self,
        *,
        port: int = 0,
        auth: AuthMode | str = AuthMode.ANONYMOUS,
        credentials: Credentials | None = None,
        allow_anonymous_pull: bool = False,
        root_dir: Path | None = None,
        binary: str = DEFAULT_BINARY,
        log_level: str = "warn",
    ) -> None:
        self.auth = AuthMode(auth)
        if self.auth is not AuthMode.ANONYMOUS and credentials is None:
            raise ValueError(f"auth={self.auth.value} needs credentials")
        self.credentials = credentials
        self.allow_anonymous_pull = allow_anonymous_pull
        self._requested_port = port
        self._binary = binary
        self._log_level = log_level
        self._own_root = root_dir is None
        self._root_dir = root_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None
        self.port = 0
        self.token_server: TokenServer | None = None

    def __repr__(self) -> str:
        return f"LocalRegistry(url={self.url!r}, auth={self.auth.value!r}, running={self.running})"

    # -- properties -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.port else ""

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` (what a docker/skopeo reference would use)."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def root_dir(self) -> Path:
        if self._root_dir is None:
            raise RuntimeError("registry not started")
        return self._root_dir

    @property
    def log_path(self) -> Path | None:
        return self._log_file

    def log_tail(self, lines: int = 20) -> str:
        if self._log_file is None or not self._log_file.exists():
            return ""
        return "\n".join(self._log_file.read_text(errors="replace").splitlines()[-lines:])

    def upstream_map(self) -> UpstreamMap:
        """Every known upstream host mapped to this registry."""
        return UpstreamMap.all_to(self.url)

    # -- config -----------------------------------------------------------------------------------
    def _write_config(self, port: int) -> Path:
        root = self.root_dir
        (root / "data").mkdir(parents=True, exist_ok=True)
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": self._log_level, "fields": {"service": "registry"}, "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"127.0.0.1:{port}",
                "secret": secrets.token_hex(16),  # upload state signing; a random one per instance
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.auth is AuthMode.HTPASSWD:
            assert self.credentials is not None
            import bcrypt  # noqa: PLC0415 - only htpasswd mode needs it (dev dependency)

            hashed = bcrypt.hashpw(self.credentials.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd = root / "htpasswd"
            htpasswd.write_text(f"{self.credentials.username}:{hashed}\n")
            htpasswd.chmod(0o600)
            config["auth"] = {"htpasswd": {"realm": "ecrcache-local", "path": str(htpasswd)}}
        elif self.auth is AuthMode.TOKEN:
            assert self.credentials is not None
            token_server = self.token_server
            assert token_server is not None
            bundle = token_server.write_root_bundle(root / "token-root.pem")
            config["auth"] = {
                "token": {
                    "realm": token_server.realm,
                    "service": token_server.service,
                    "issuer": token_server.issuer,
                    "rootcertbundle": str(bundle),
                }
            }
        path = root / "config.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        if self.running:
            return self
        binary = find_registry_binary(self._binary)
        if self._root_dir is None:
            self._root_dir = Path(tempfile.mkdtemp(prefix="ecrcache-registry-"))
        if self.auth is AuthMode.TOKEN and self.token_server is None:
            assert self.credentials is not None
            self.token_server = TokenServer(
                {self.credentials.username: self.credentials.password}, allow_anonymous=self.allow_anonymous_pull
            ).start()
        last_error: Exception | None = None
        attempts = 1 if self._requested_port else _START_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or free_port()
            try:
                self._spawn(binary, port)
                self._wait_ready()
            except RegistryStartError as exc:  # port taken between free_port() and bind, or a bad config
                last_error = exc
                self._terminate()
                continue
            with _live_lock:
                _live.add(self)
            return self
        self.stop()
        raise RegistryStartError(f"docker-registry did not start: {last_error}")

    def _spawn(self, binary: str, port: int) -> None:
        config = self._write_config(port)
        self.port = port
        self._log_file = self.root_dir / "registry.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "OTEL_"))}
        in_main_thread = threading.current_thread() is threading.main_thread()
        with self._log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary path and arguments
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
                preexec_fn=_die_with_parent if in_main_thread and _LIBC is not None else None,  # noqa: PLW1509 - prctl only
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        delay = 0.01
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                raise RegistryStartError(
                    f"exited with code {process.returncode if process else '?'}: {self.log_tail()}"
                )
            try:
                response = requests.get(f"{self.url}/v2/", timeout=1.0)
            except requests.RequestException:
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            if response.status_code in (200, 401) and "Docker-Distribution-Api-Version" in response.headers:
                return
            time.sleep(delay)
        raise RegistryStartError(f"no answer from {self.url}/v2/ within {_READY_TIMEOUT:.0f}s: {self.log_tail()}")

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; stop the token server; remove our temporary data."""
        self._terminate()
        with _live_lock:
            _live.discard(self)
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        if self._own_root and self._root_dir is not None:
            shutil.rmtree(self._root_dir, ignore_errors=True)
            self._root_dir = None


class FrontedRegistry(Background):
    """A :class:`LocalRegistry` on a private loopback port behind a :class:`FaultProxy` on ``port``.

    ``url`` is the proxy's: what clients and the embedded ECR use. ``rate_limit`` is the proxy's
    limit from the start (change it with ``proxy.set_rate_limit`` or ``PUT /_ecrcache/rate-limit``).
    With token auth, ``PUT /_ecrcache/users`` sets a user's password (token) at the token server at run time.
    Other keyword arguments go to :class:`LocalRegistry` (``auth``, ``credentials``, ``log_level`` ...).
    """

    def __init__(self, *, port: int = 0, rate_limit: RateLimit | None = None, **registry_options: Any) -> None:
        self.registry = LocalRegistry(port=0, **registry_options)
        self._port = port
        self._rate_limit = rate_limit
        self.proxy: FaultProxy | None = None

    def __repr__(self) -> str:
        return f"FrontedRegistry(url={self.url!r}, registry={self.registry!r})"

    @property
    def url(self) -> str:
        return self.proxy.url if self.proxy is not None else ""

    @property
    def control_url(self) -> str:
        """Base URL of the proxy's HTTP hooks (``<url>/_ecrcache``)."""
        return f"{self.url}{CONTROL_PREFIX}".rstrip("/")

    @property
    def credentials(self) -> Credentials | None:
        return self.registry.credentials

    @property
    def running(self) -> bool:
        return self.proxy is not None and self.registry.running

    @property
    def pid(self) -> int | None:
        return self.registry.pid

    def upstream_map(self) -> UpstreamMap:
        """Every known upstream host mapped to the proxy."""
        return UpstreamMap.all_to(self.url)

    def log_tail(self, lines: int = 20) -> str:
        return self.registry.log_tail(lines)

    def start(self) -> Self:
        if self.proxy is not None:
            return self
        self.registry.start()
        try:
            token_server = self.registry.token_server
            self.proxy = FaultProxy(
                self.registry.url,
                port=self._port,
                rate_limit=self._rate_limit,
                users=token_server.set_user if token_server is not None else None,
            ).start()
        except OSError as exc:
            self.registry.stop()
            raise RegistryStartError(f"the proxy could not listen on 127.0.0.1:{self._port}: {exc}") from exc
        return self

    def stop(self) -> None:
        proxy, self.proxy = self.proxy, None
        if proxy is not None:
            proxy.stop()
        self.registry.stop()


# -- command line ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecrcache-registry",
        description="Run a local OCI registry (Debian docker-registry) as a stand-in for Docker Hub, GHCR, ...",
    )
    parser.add_argument("--port", type=int, default=5000, help="loopback port (0 = any free port; default 5000)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require these credentials (htpasswd, HTTP Basic)")
    parser.add_argument(
        "--token",
        action="store_true",
        help="with --auth: Bearer token auth through a local token server (like Docker Hub) instead of Basic",
    )
    parser.add_argument("--seed", action="store_true", help="push the synthetic images users pull first")
    parser.add_argument(
        "--rate-limit",
        metavar="LIMIT/WINDOW",
        type=_rate_limit,
        help="Docker Hub-like limit: LIMIT manifest GETs per WINDOW (100/6h, 100/21600, 100;w=21600), "
        "then 429 TOOMANYREQUESTS; change it at run time with PUT <url>/_ecrcache/rate-limit",
    )
    return parser


def _rate_limit(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _print_hooks(registry: FrontedRegistry, limit: RateLimit | None) -> None:
    if limit is not None:
        print(f"rate limit: {limit.limit} manifest GETs per {limit.window_label} s", flush=True)
    print(
        f"hooks: GET {registry.control_url}/counters, PUT {registry.control_url}/rate-limit, "
        f"POST {registry.control_url}/faults",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    credentials = Credentials.parse(args.auth) if args.auth else None
    if args.token and credentials is None:
        print("ecrcache-registry: --token needs --auth user:password", file=sys.stderr)
        return 2
    mode = AuthMode.ANONYMOUS if credentials is None else AuthMode.TOKEN if args.token else AuthMode.HTPASSWD
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with FrontedRegistry(
            port=args.port, rate_limit=args.rate_limit, auth=mode, credentials=credentials, log_level="info"
        ) as registry:
            print(f"registry: {registry.url} (auth: {mode.value}, data: {registry.registry.root_dir})", flush=True)
            _print_hooks(registry, args.rate_limit)
            if args.seed:
                from devstack.registry.seeder import Seeder  # noqa: PLC0415 - only when asked

                with Seeder.for_registry(registry.registry) as seeder:  # direct: seeding is not counted
                    for record in seeder.seed_defaults():
                        print(f"seeded {record.reference} {record.digest} ({record.media_type})", flush=True)
            print(f"export ECRCACHE_UPSTREAM_MAP='{registry.upstream_map().to_env()}'", flush=True)
            print("Ctrl-C to stop", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(0.5):
                    if not registry.running:
                        print(f"registry exited:\n{registry.log_tail()}", file=sys.stderr)
                        return 1
    except RegistryStartError as exc:
        print(f"ecrcache-registry: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""End-to-end fixtures: ``ecrcache local`` running as users run it, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

START_TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOKEN = "e2e-token-0123456789abcdef"


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    ``ecrcache local`` binds its ports seconds after they are chosen (after seeding and provisioning). A port
    from ``bind(0)`` is an ephemeral one, the kind every outgoing connection takes its source port from: in
    between, a connection (the stack's own to its embedded AWS included) could take it, and the stack failed
    with "Port ... is in use". Below the range only an explicit bind can take it (a random pick, probed free).
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:  # not Linux: the IANA range starts higher still
        low = 32768
    for _ in range(200):
        port = random.randrange(10_000, max(low, 10_001))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port between 10000 and {low}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is gone for our purposes (its parent has not reaped it yet)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class RunningStack:
    """A started ``ecrcache local``: its endpoints (the ready file) and its process."""

    process: subprocess.Popen[bytes]
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return str(self.ready["api"])

    @property
    def aws(self) -> str:
        return str(self.ready["aws"])

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, service: str, **kwargs: Any) -> Any:
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.aws,
            region_name=self.ready["region"],
            config=Config(retries={"mode": "standard"}, account_id_endpoint_mode="disabled"),
            **kwargs,
        )

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)


def start_stack(tmp: Path, *extra: str) -> RunningStack:
    ready_path = tmp / "ready.json"
    log_path = tmp / "local.log"
    argv = [
        sys.executable, "-m", "ecrcache_cli", "local",
        "--aws-port", str(free_port()), "--api-port", str(free_port()), "--registry-port", str(free_port()),
        "--ready-file", str(ready_path), *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    stack = RunningStack(process=process, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready_path.exists():
            stack.ready = json.loads(ready_path.read_text(encoding="utf-8"))
            return stack
        if process.poll() is not None:
            pytest.fail(f"ecrcache local exited {process.returncode}:\n{stack.log()[-4000:]}")
        time.sleep(0.2)
    stack.stop()
    pytest.fail(f"ecrcache local was not ready in {START_TIMEOUT} s:\n{stack.log()[-4000:]}")


# The shared stack and what is built on it live as long as the e2e package's tests (package scope), not the whole
# session: the stack's processes (embedded AWS, API, registry, schedules, queue pollers) would otherwise keep
# running beside every later test, and be stopped only at the very end. Under xdist its users are one group
# (``xdist_group("e2e-stack")`` in test_cli.py and test_warming.py), so one worker starts it, on free ports.
@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One ``ecrcache local`` for the e2e tests (stack name ``ecrcache-e2e``)."""
    stack = start_stack(tmp_path_factory.mktemp("local"), "--stack-name", "ecrcache-e2e")
    yield stack
    stack.stop()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """Runs ``ecrcache`` as a user would (a subprocess), against one endpoint."""

    def __init__(self, endpoint: str, cwd: Path) -> None:
        self.endpoint = endpoint
        self.cwd = cwd

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None, endpoint: bool = True
    ) -> CliResult:
        full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
        if endpoint:
            full_env["ECRCACHE_ENDPOINT"] = self.endpoint
        else:
            full_env.pop("ECRCACHE_ENDPOINT", None)
        done = subprocess.run(
            [sys.executable, "-m", "ecrcache_cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=self.cwd,
            timeout=240,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, stdin: str | None = None, codes: Sequence[int] = (0,)) -> CliResult:
        result = self(*args, stdin=stdin)
        assert result.code in codes, f"ecrcache {' '.join(args)} -> {result.code}\n{result.output}"
        return result


@pytest.fixture(scope="package")
def cli(local_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(local_stack.api, tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="package")
def applied(cli: Cli, local_stack: RunningStack) -> RunningStack:
    """The examples applied and converged (credentials first: a new credential needs its token; GHCR's stand-in
    takes only its own user and token, the ready file's)."""
    ghcr = local_stack.ready["ghcr"]
    for name, kind, username, token in (
        ("dockerhub", "docker-hub", "ecrcache-demo", TOKEN),
        ("ghcr", "github-container-registry", ghcr["username"], ghcr["token"]),
    ):
        cli.ok("credentials", "set", name, "--upstream", kind, "--username", username, "--token-stdin",
               stdin=token + "\n")  # fmt: skip
    cli.ok("apply", "-f", str(EXAMPLES), "--timeout", "120")
    return local_stack

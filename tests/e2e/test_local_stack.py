"""``ecrcache local`` itself: busy ports, what it starts, and that Ctrl-C stops every process it started;
and ``make demo``'s tour, end to end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import free_port, pid_alive, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flag", ["--api-port", "--aws-port", "--registry-port"])
def test_a_busy_port_is_reported_before_anything_starts(flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ports = {"--api-port": free_port(), "--aws-port": free_port(), "--registry-port": free_port(), flag: port}
        argv = [sys.executable, "-m", "ecrcache_cli", "local"]
        for name, value in ports.items():
            argv += [name, str(value)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 3
    assert f"{port} ({flag})" in done.stderr
    assert "already in use" in done.stderr


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    # GIVEN a running local stack
    stack = start_stack(tmp_path, "--stack-name", "ecrcache-stop")
    pids = dict(stack.ready["pids"])
    assert {"local", "aws", "registry", "ApiFunction", "ReconcilerFunction", "ReconcileWorkerFunction"} <= set(pids)
    assert requests.get(f"{stack.api}/openapi.json", timeout=10).status_code == 200
    assert requests.get(f"{stack.ready['registry']}/v2/", timeout=10).status_code == 200
    log = stack.log()
    # every function event of the template is wired (the runner logs each delivery at start)
    for event in ("DesiredStateChanged", "Resync", "DeepResync", "EcrEvents", "ApiProxy"):
        assert event in log
    # and the warming path's: pull events (SQS), the planner's tick and requests, the worker's tasks
    warming = (
        "PullStatsFunction <- PullEvents (SQS)",
        "WarmPlannerFunction <- Tick (Schedule)",
        "WarmPlannerFunction <- WarmRequested (DynamoDB)",
        "WarmWorkerFunction <- WarmTasks (SQS)",
        # the deep resync's shards (README "Deep resync at scale")
        "ReconcileWorkerFunction <- ShardTasks (SQS)",
    )
    for event in warming:
        assert event in log

    # WHEN it gets Ctrl-C
    code = stack.stop()

    # THEN it exits 0, every child is gone and every port is free again
    assert code == 0, stack.log()[-3000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
    for url in (stack.api, stack.aws, stack.ready["registry"]):
        port = int(url.split(":")[2].split("/")[0])
        with socket.socket() as probe:
            # as a new `ecrcache local` binds (SO_REUSEADDR): a listener left behind still fails here, the
            # TIME_WAIT of a connection the embedded AWS closed (it answers "Connection: close") does not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    assert "stopped" in stack.log()


def test_make_demo_tour_passes() -> None:
    # `make demo` runs exactly this module (after `make setup`)
    done = subprocess.run(
        [sys.executable, "-m", "devstack.local.demo", "--timeout", "120"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "demo passed" in done.stdout
    # the warming chapter: pulls counted, a warm run verified every platform, a 429 stopped the next one
    assert "linux/amd64,linux/arm64" in done.stdout
    assert "stopped upstreams: registry-1.docker.io" in done.stdout
    assert "demo-token-not-a-secret" not in done.stdout + done.stderr
    # the credentials chapter: a wrong token refused, a new one promoted, an expiring credential alerted
    assert "state:        refused" in done.stdout
    assert "state:        promoted" in done.stdout
    assert "Credential Expiring from ecrcache" in done.stdout
    assert "health:         Expiring" in done.stdout
    for token in ("ghcr-demo-token", "not-the-ghcr-token"):  # the stand-in's tokens (the new one starts with it)
        assert token not in done.stdout + done.stderr


def test_a_part_that_dies_stops_the_whole_stack_with_an_error(tmp_path: Path) -> None:
    # GIVEN a running local stack
    stack = start_stack(tmp_path, "--stack-name", "ecrcache-crash", "--no-seed")
    pids = dict(stack.ready["pids"])

    # WHEN a function host dies on its own
    os.kill(pids["ReconcilerFunction"], signal.SIGKILL)

    # THEN the stack says so, stops everything else and exits 1
    assert stack.process.wait(timeout=30) == 1
    assert "ReconcilerFunction exited unexpectedly" in stack.log()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []

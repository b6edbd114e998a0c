"""Shared fixtures.

Environment first, then ``import moto``, then anything that creates boto3 clients: a client made
before moto is imported is not mocked (tooling.md, gotchas 9).
"""

from __future__ import annotations

import os

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_SERVICE_NAME": "ecrcache-test",
        "POWERTOOLS_METRICS_NAMESPACE": "ecrcache-test",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "TABLE_NAME": "ecrcache-state-test",
        "ROTATOR_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator",
        # template.yaml's default EcrRolePath: the functions under test pass only roles under it, as deployed.
        "ECR_ROLE_PATH": "/ecrcache/",
        # ... and the stack's account: a role of another account (or partition) is refused as deployed.
        "ECR_ROLE_ACCOUNT": "123456789012",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import moto
import pytest


@functools.cache
def shared_loader(data_path: str | None = None) -> botocore.loaders.Loader:
    """One botocore data loader per data path for the whole run.

    A loader caches the service models it parsed (``load_service_model``, endpoints, partitions), but each
    botocore session makes its own, and ``mock_aws()`` gives every test a new default session: without
    this, each test parsed the JSON models of every client it made again (about 70 ms a client, most of
    a functional test's set-up). The files are read-only, so one loader serves every session as it
    serves every client of one session.
    """
    return botocore.loaders.create_loader(data_path)


botocore.session.create_loader = shared_loader

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


@dataclass
class FakeLambdaContext:
    function_name: str = "ecrcache-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:ecrcache-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/ecrcache-test"
    log_stream_name: str = "test"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def load_event(relative: str) -> dict[str, Any]:
    """Load a sample event from ``events/`` (the same files ``sam local invoke`` takes)."""
    data: dict[str, Any] = json.loads((EVENTS / relative).read_text())
    return data


@pytest.fixture
def aws() -> Iterator[None]:
    """Every AWS call inside the test goes to the embedded AWS (moto + the ECR extension), in-process."""
    from devstack.aws import install

    install()
    with moto.mock_aws():
        yield


def sample_events(folder: str) -> list[str]:
    """The sample events of one folder of ``events/``, named as :func:`load_event` takes them."""
    return sorted(path.relative_to(EVENTS).as_posix() for path in (EVENTS / folder).glob("*.json"))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n N --dist loadgroup`` (``make test``): a test marked ``xdist_group(name)`` runs on the worker of
    its group, every other test on the worker of its file (xdist's own loadgroup sends ungrouped tests one by one).

    Whole files keep module-scoped fixtures (one ``sam build``, one fuzz run, one registry seeding) built once,
    not once per worker; the group keeps the e2e tests of the shared ``ecrcache local`` on one stack.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            # xdist appends "@<group>" to the ids of grouped tests under --dist loadgroup (a parameter's id
            # may hold an "@" too: it ends with "]")
            head, _, group = nodeid.rpartition("@")
            if head and not group.endswith("]"):
                return group
            return nodeid.split("::", 1)[0]

    return FileOrGroupScheduling(config, log)

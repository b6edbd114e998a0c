"""The cold-start benchmark's third-party floor (:func:`bench.cold_start.floor_code`): what importing a handler loads
that is not ecrcache's, and the clients it makes, replayed after the goal's baseline without any of ecrcache's code."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from bench.cold_start import BASELINE, FUNCTIONS, THIRD_PARTY_PROBE, child_env, floor_code

pytestmark = pytest.mark.functional

FLOOR_RUN = "import sys\n{code}\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'ecrcache')))"


def _listed(code: str, loop: str) -> list[object]:
    """The literal list a ``for ... in [...]:`` line of the floor's code iterates over."""
    line = next(line for line in code.splitlines() if line.startswith(loop))
    listed = ast.literal_eval(line.removeprefix(loop).removesuffix(":"))
    assert isinstance(listed, list)
    return listed


def test_the_floor_replays_the_handler_s_third_party_imports_and_clients_without_ecrcache() -> None:
    # GIVEN the pull statistics function, which parses with pydantic and makes a DynamoDB client at import
    cwd, env = FUNCTIONS / "pull_stats", child_env(FUNCTIONS / "pull_stats")

    # WHEN its floor is derived, then run in a fresh interpreter as the benchmark runs it
    code = floor_code(cwd, env)
    done = subprocess.run(
        [sys.executable, "-c", FLOOR_RUN.format(code=code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    # THEN it starts with the goal's baseline, lists pydantic and Powertools' parser but none of ecrcache's modules
    # nor the handler, replays the handler's client, and imports nothing of ecrcache's when it runs
    assert code.startswith(BASELINE)
    modules = _listed(code, "for name in ")
    assert "pydantic.main" in modules
    assert "aws_lambda_powertools.utilities.parser" in modules
    assert [m for m in modules if str(m).split(".")[0] in ("app", "ecrcache")] == []
    assert _listed(code, "for service, region in ") == [["dynamodb", None]]  # the default Region, as the handler's
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_probe_records_the_clients_with_their_region() -> None:
    # GIVEN the probe's patch of botocore's client creation WHEN a client is made with a Region after it
    code = THIRD_PARTY_PROBE.replace("import app\n", "import boto3\nboto3.client('sqs', region_name='eu-west-1')\n")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=FUNCTIONS / "pull_stats",
        env=child_env(FUNCTIONS / "pull_stats"),
        capture_output=True,
        text=True,
        check=False,
    )

    # THEN the client is recorded with its service and Region
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"clients": [["sqs", "eu-west-1"]]' in done.stdout

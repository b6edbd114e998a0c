"""The cold-start benchmark's third-party floor (:func:`bench.cold_start.floor_code`): what importing a handler loads
that is not ecrcache's, and the clients it makes, replayed after the goal's baseline without any of ecrcache's code;
and its side-by-side comparison with another revision's build (``--against``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cold_start import BASELINE, FUNCTIONS, THIRD_PARTY_PROBE, built_function, child_env, floor_code, main

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


def test_another_build_s_function_is_found_by_its_logical_id(tmp_path: Path) -> None:
    # GIVEN a sam build output: each function under its logical ID, the layer beside them
    for logical_id in ("ApiFunction", "ReconcilerFunction", "ReconcileWorkerFunction", "CoreLayer"):
        (tmp_path / logical_id).mkdir()
        if logical_id != "CoreLayer":
            (tmp_path / logical_id / "app.py").write_text("")

    # WHEN functions/<name> is looked up there THEN it is <Name>Function, and a function the build lacks is refused
    assert built_function(tmp_path, "reconcile_worker") == tmp_path / "ReconcileWorkerFunction"
    assert built_function(tmp_path, "reconciler") == tmp_path / "ReconcilerFunction"
    assert built_function(tmp_path, "api") == tmp_path / "ApiFunction"
    with pytest.raises(SystemExit, match="no built function directory for rotator"):
        built_function(tmp_path, "rotator")


def test_against_needs_a_layer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # WHEN another build is named without --layer THEN the command line is refused before anything is measured
    with pytest.raises(SystemExit):
        main(["--against", str(tmp_path), "rotator"])
    assert "--against needs --layer" in capsys.readouterr().err

"""``pip install '.[cli]'`` gives a working ``ecrcache`` without the development world.

A fresh venv (the same Python) gets a wheel of the checkout with only the ``cli`` extra, pinned by
``requirements/dev.lock``: moto, croniter and ``devstack`` cannot be imported there, ``ecrcache
--help`` works, ``ecrcache local`` says what to install (exit 1), and ``ecrcache get rules`` talks to
the session's ``ecrcache local`` (started from the development venv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 240


def _environment() -> dict[str, str]:
    """This process's environment without anything that could put the checkout or a venv on the path."""
    hidden = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "ECRCACHE_ENDPOINT"}
    return {k: v for k, v in os.environ.items() if k not in hidden} | {"NO_COLOR": "1", "COLUMNS": "200"}


@dataclass(frozen=True)
class CliOnlyVenv:
    bin: Path
    cwd: Path  # outside the checkout: nothing is importable from the working directory

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            env=_environment(),
            cwd=self.cwd,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def cli_only(tmp_path_factory: pytest.TempPathFactory) -> CliOnlyVenv:
    where = tmp_path_factory.mktemp("cli-only")
    venv = where / "venv"
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert python.is_file(), f"no base interpreter at {python}"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # This venv's pip installs into the new one (`--python`): the pip `make setup` pins, and no ensurepip.
    # Not editable: a wheel built from the checkout, as a user installs it.
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
            "--quiet", "--disable-pip-version-check", "-c", str(ROOT / "requirements" / "dev.lock"), f"{ROOT}[cli]",
        ],
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=where,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return CliOnlyVenv(venv / "bin", where)


@pytest.mark.parametrize("module", ["moto", "croniter", "devstack"])
def test_the_development_world_is_not_installed(cli_only: CliOnlyVenv, module: str) -> None:
    done = cli_only.run("python", "-c", f"import {module}")
    assert done.returncode == 1
    assert f"ModuleNotFoundError: No module named '{module}'" in done.stderr


def test_the_command_and_the_product_are(cli_only: CliOnlyVenv) -> None:
    done = cli_only.run("python", "-c", "import ecrcache, ecrcache_cli")
    assert done.returncode == 0, done.stderr
    help_ = cli_only.run("ecrcache", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "Usage: ecrcache" in help_.stdout


def test_ecrcache_local_says_what_to_install(cli_only: CliOnlyVenv) -> None:
    done = cli_only.run("ecrcache", "local")
    assert done.returncode == 1
    assert "ecrcache local needs the local extra" in done.stderr
    assert "pip install -e ./devstack" in done.stderr
    assert "Traceback" not in done.stderr


def test_get_rules_against_the_local_api(cli_only: CliOnlyVenv, local_stack: RunningStack) -> None:
    table = cli_only.run("ecrcache", "--endpoint", local_stack.api, "get", "rules")
    assert table.returncode == 0, table.stdout + table.stderr
    as_json = cli_only.run("ecrcache", "--endpoint", local_stack.api, "get", "rules", "-o", "json")
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    json.loads(as_json.stdout)

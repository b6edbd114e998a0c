"""Run the template tools of the tool venv (``.venv-tools``, installed by ``make setup``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
TEMPLATE = ROOT / "template.yaml"


def tool(name: str) -> Path:
    """Path of a tool in the tool venv. Missing is a failure, not a skip: CI must run these checks."""
    path = TOOLS_BIN / name
    assert path.is_file(), f"{path} is missing; `make setup` creates the tool venv (.venv-tools)"
    return path


def tool_env(path_prefix: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def show(result: subprocess.CompletedProcess[str]) -> str:
    """Everything a failed tool said, for the assertion message."""
    return (
        f"$ {' '.join(result.args)}\nexit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


_SAM_TRANSFORM = """
import json, sys
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

template, problems = decode(sys.argv[1])
assert not problems, problems
for resource in template["Resources"].values():
    for key in ("CodeUri", "ContentUri"):
        if key in resource.get("Properties", {}):
            resource["Properties"][key] = "s3://bucket/key"  # sam build's job; the transform wants S3

class NoManagedPolicies:
    def load(self):
        return {}

print(json.dumps(transform(template, {}, NoManagedPolicies())))
"""


@cache
def _sam_transformed_text() -> str:
    result = run(
        [tool("python"), "-c", _SAM_TRANSFORM, TEMPLATE],
        cwd=ROOT,
        env=tool_env() | {"AWS_DEFAULT_REGION": "us-east-1"},
        timeout=120,
    )
    assert result.returncode == 0, show(result)
    return result.stdout.strip().splitlines()[-1]


def sam_transformed() -> dict[str, Any]:
    """``template.yaml`` as the SAM transform deploys it (SAM's generated resources: roles, rules, event source
    mappings ...), transformed once per test session in the tool venv (a fresh copy each call)."""
    found: dict[str, Any] = json.loads(_sam_transformed_text())
    return found


def python313_bin_dir() -> Path:
    """Directory of a real ``python3.13`` for ``sam build`` (BuildMethod python3.13).

    A pyenv shim only resolves inside the repo (``.python-version``), and sam build runs elsewhere,
    so the interpreter is asked for its real path: ``shutil.which``, then ``pyenv which``.
    """
    candidates: list[str] = []
    if found := shutil.which("python3.13"):
        candidates.append(found)
    if pyenv := shutil.which("pyenv"):
        which = run([pyenv, "which", "python3.13"], cwd=ROOT, env=dict(os.environ), timeout=30)
        if which.returncode == 0 and which.stdout.strip():
            candidates.append(which.stdout.strip())
    for candidate in candidates:
        probe = run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13)); print(sys.executable)"],
            cwd=ROOT,
            env=dict(os.environ),
            timeout=30,
        )
        lines = probe.stdout.split()
        if probe.returncode == 0 and len(lines) == 2 and lines[0] == "True":
            return Path(lines[1]).parent
    msg = f"no python3.13 found (tried {candidates or 'PATH and pyenv'}); `pyenv install 3.13` or put it on PATH"
    raise AssertionError(msg)

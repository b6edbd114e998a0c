"""The reconcile benchmark end to end at a tiny size, with ``--no-fanout``, in a subprocess.

``python -m bench.reconcile_bench --rules 2 --repos 20 --repeat 1 --heavy-repeat 1 --no-fanout`` on the embedded
AWS: its checks pass (they hold at any size), it writes its own section and leaves the fan-out section (another
command's, here) as it was, and its command line says ``--no-fanout``. Only the report's structure is asserted,
never time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.support import read_section, write_section
from tests.conftest import ROOT

pytestmark = [pytest.mark.functional, pytest.mark.slow]

FANOUT = "bench/fanout_bench.py"
FANOUT_SECTION = "## Deep resync fanned out\n\nnumbers measured by another command\n"


def _section(text: str, generator: str) -> str:
    found = read_section(text, generator)
    assert found is not None, f"no section of {generator}"
    return found


def test_the_reconcile_bench_without_fanout_writes_only_its_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    write_section(out, FANOUT, FANOUT_SECTION)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    arguments = ["--rules", "2", "--repos", "20", "--repeat", "1", "--heavy-repeat", "1", "--no-fanout"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.reconcile_bench", *arguments, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert _section(text, FANOUT) == FANOUT_SECTION.strip()
    report = _section(text, "bench/reconcile_bench.py")
    assert "python -m bench.reconcile_bench --rules 2 --repos 20 --repeat 1 --no-fanout --out" in report
    assert "--workers" not in report
    assert "runs no fan-out scenario" in report
    checks = [line for line in report.splitlines() if line.startswith(("- pass: ", "- **FAIL**: "))]
    assert checks and all(line.startswith("- pass: ") for line in checks), "\n".join(checks)
    assert "wrote the reconcile section of" in done.stderr

"""The warming benchmark end to end at a tiny size: what ``make bench`` runs, in a subprocess.

``python -m bench.warm_bench --images 2 --repeat 1 --events 300`` on the real local registry and the
embedded AWS. Checked: the warming goals hold (they hold at any size: nothing reaches the upstream for
fresh images, no blob byte passes through the warmer), the report is written into its own section of
the file and leaves another generator's section as it was, and the exit code says whether a goal was
missed. Only counts and the report's structure are asserted, never time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.support import HEADER, read_section, write_section
from tests.conftest import ROOT

pytestmark = [pytest.mark.functional, pytest.mark.slow]

OTHER = "bench/reconcile_bench.py"
OTHER_SECTION = "## Reconcile\n\nnumbers measured by another generator\n"


def _section(text: str, generator: str) -> str:
    found = read_section(text, generator)
    assert found is not None, f"no section of {generator}"
    return found


def test_the_tiny_warm_bench_meets_the_warming_goals_and_writes_only_its_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    write_section(out, OTHER, OTHER_SECTION)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.warm_bench",
            "--images",
            "2",
            "--repeat",
            "1",
            "--events",
            "300",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    text = out.read_text()
    assert text.startswith(HEADER)
    assert _section(text, OTHER) == OTHER_SECTION.strip()
    report = _section(text, "bench/warm_bench.py")
    assert text.count("<!-- BEGIN bench/warm_bench.py -->") == 1
    assert report.startswith("## Warming")
    checks = [line for line in report.splitlines() if line.startswith(("- pass: ", "- **FAIL**: "))]
    warming = [line for line in checks if "pull statistics" not in line]
    # 4 scenarios x (upstream requests, bytes share, no blob bytes)
    assert len(warming) == 12  # repeat 1: one run of each scenario
    assert all(line.startswith("- pass: ") for line in warming), "\n".join(warming)
    assert any(
        "warm: upstream manifest requests per run at most 0 (2 fresh images): 0 (GET 0, HEAD 0)" in c for c in checks
    )
    pulls = [line for line in checks if "pull statistics" in line]
    assert len(pulls) == 2  # the template's setting, one and five batches gathering
    # the exit code tells whether a goal was missed, and the log names it
    failed = [line for line in checks if line.startswith("- **FAIL**")]
    assert done.returncode == (1 if failed else 0)
    assert done.stderr.count("GOAL MISSED") == len(failed)


def test_a_section_is_replaced_in_place_and_the_others_kept(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    write_section(out, "bench/a.py", "## A\n\nfirst")
    write_section(out, "bench/b.py", "## B\n\nsecond")
    write_section(out, "bench/a.py", "## A\n\nagain")
    text = out.read_text()
    assert text.startswith(HEADER)
    assert (_section(text, "bench/a.py"), _section(text, "bench/b.py")) == ("## A\n\nagain", "## B\n\nsecond")
    assert text.index("bench/a.py -->") < text.index("bench/b.py -->")  # a stays where it was
    assert text.endswith("<!-- END bench/b.py -->\n")

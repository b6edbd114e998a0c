"""The layer's bytecode covers what a cold start imports.

``layers/core/prune_layer.py`` leaves the modules matching ``NOT_COMPILED`` without bytecode, on the claim that no
function imports them: Lambda's ``/opt`` is read only, so such a module would be compiled again on every cold
start. Each function's handler module is imported here in a fresh interpreter (as Lambda's init does) and what
it loaded is checked against the patterns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.contract

FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
PROBE = """
import importlib, json, os, sys
sys.path[:0] = [{layer!r}, {root!r}]
from prune_layer import NOT_COMPILED
importlib.import_module("functions.{name}.app")
files = {{m: getattr(mod, "__file__", None) for m, mod in list(sys.modules.items())}}
print(json.dumps(sorted(m for m, f in files.items() if f and NOT_COMPILED.search(f.replace(os.sep, "/")))))
"""


@pytest.mark.parametrize("name", FUNCTIONS)
def test_no_module_a_function_imports_at_init_is_left_without_bytecode(name: str) -> None:
    env = {**os.environ, "WARM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/warm"}
    probe = PROBE.format(layer=str(ROOT / "layers" / "core"), root=str(ROOT), name=name)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []

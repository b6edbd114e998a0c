"""The identity of the planning code this function runs: part of every Region's quiet digest.

A new release may plan the same inputs differently (a new repository setting, a changed comparison): a digest
recorded by the former code must not vouch for the new one's plan (:mod:`ecrcache.engine.quiet`). The package's
version alone changes too rarely for that, so the identity is a hash of the source files of the planning engine and
the models it plans with, read once per execution environment, when the first digest is computed (not at import:
cold starts do not pay for it).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import ecrcache
import ecrcache.engine
import ecrcache.models

__all__ = ["planner_code"]


@functools.cache
def planner_code() -> str:
    """The SHA-256 (hex, 16 characters) of the version and of ``ecrcache/engine/*.py`` and ``ecrcache/models/*.py``."""
    digest = hashlib.sha256(ecrcache.__version__.encode())
    for package in (ecrcache.engine, ecrcache.models):
        folder = Path(package.__file__ or "").parent
        for path in sorted(folder.glob("*.py")):
            digest.update(f"\n{package.__name__}.{path.stem}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

"""Waiting for an event runner's log line: the runner logs an invocation after it has deleted (or
retried) the batch, so the line may come just after what a test waited for."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

WAIT_SECONDS = 10.0


def logged(logs: Sequence[str], matches: Callable[[str], bool], timeout: float = WAIT_SECONDS) -> bool:
    """Whether a line of ``logs`` (appended to by the runner's thread) matches within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not any(matches(line) for line in list(logs)):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True

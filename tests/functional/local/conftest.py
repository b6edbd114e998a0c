"""What the local stack's tests share: one embedded AWS server per module, and the process-wide knobs
of the embedded AWS (event faults, recent events, the clock) reset around it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.aws import clock, events
from devstack.aws.server import EmbeddedAwsServer


def reset_process_knobs() -> None:
    events.faults.clear()
    events.clear_recent()
    clock.reset()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    reset_process_knobs()
    aws = EmbeddedAwsServer("127.0.0.1", 0).start()
    try:
        yield aws.endpoint_url
    finally:
        aws.stop()
        reset_process_knobs()

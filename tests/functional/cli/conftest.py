"""The CLI against the real API handler in-process: HTTP -> API Gateway proxy event -> ``lambda_handler``.

One local gateway serves the whole session (stopping one waits out werkzeug's 0.5 s poll); each
test points it at the api function running on that test's moto state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.local.gateway import ApiGateway
from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient

CALLER = "arn:aws:iam::123456789012:user/ecrcache-local"

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


class _Switch:
    """The gateway's ``invoke``: forwards to the current test's handler."""

    def __init__(self) -> None:
        self.target: Invoke | None = None

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.target is None:
            raise RuntimeError("no API handler for this test")
        return self.target(event)


@pytest.fixture(scope="session")
def _gateway() -> Iterator[tuple[str, _Switch]]:
    switch = _Switch()
    with ApiGateway(switch, port=0) as gateway:
        yield gateway.endpoint_url, switch


@pytest.fixture
def endpoint(
    _gateway: tuple[str, _Switch],
    state_table: str,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The API base URL (``http://127.0.0.1:<port>/v1``) of the api function on this test's moto state."""
    from functions.api import app as api_app

    # The handler runs in the gateway's thread while the CLI's stdout is captured: its EMF metrics
    # (printed to stdout) would land in the CLI's output.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = api_app.lambda_handler(event, lambda_context)
        return answer

    url, switch = _gateway
    switch.target = invoke
    try:
        yield f"{url}/v1"
    finally:
        switch.target = None


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext) -> ApiClient:
    """The handler called directly, to check what the CLI did (bypassing the CLI)."""
    return ApiClient(lambda_context)

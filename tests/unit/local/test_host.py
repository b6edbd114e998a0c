"""How :meth:`HostProcess.invoke` reports failures: a timeout is a function error, no host is not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.local.host import HostProcess
from devstack.local.invoke import FunctionError, FunctionTimeout, InvokeError

pytestmark = pytest.mark.unit


def _host(timeout: float = 3.0) -> HostProcess:
    return HostProcess(
        "ReconcilerFunction",
        code_uri=Path("functions/reconciler"),
        handler="app.lambda_handler",
        timeout=timeout,
        memory=512,
        env={},
        output=lambda _name, _lines: None,
    )


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/2015-03-31/functions/ReconcilerFunction/invocations"


def test_no_answer_within_the_timeout_is_a_function_timeout(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(timeout=3)
    host.url = silent_server
    post = host._session.post

    def quick_post(url: str, *, data: Any, timeout: tuple[float, float]) -> Any:
        assert timeout == (5, 8)  # the function's timeout, plus a grace period
        return post(url, data=data, timeout=(1, 0.2))  # the same read timeout, without the wait

    monkeypatch.setattr(host._session, "post", quick_post)
    with pytest.raises(FunctionTimeout) as caught:
        host.invoke({})
    error = caught.value
    assert isinstance(error, FunctionError)
    assert not isinstance(error, InvokeError)
    assert error.error_type == "Sandbox.Timedout"
    assert error.message == "Task timed out after 3.00 seconds"
    assert error.function == "ReconcilerFunction"


def test_a_host_that_refuses_connections_is_an_invoke_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    host = _host()
    host.url = f"http://127.0.0.1:{port}/2015-03-31/functions/ReconcilerFunction/invocations"
    with pytest.raises(InvokeError, match="unreachable") as caught:
        host.invoke({})
    assert not isinstance(caught.value, FunctionError)


def test_a_host_that_is_not_running_is_an_invoke_error() -> None:
    with pytest.raises(InvokeError, match="not running"):
        _host().invoke({})


def test_a_connect_timeout_is_an_invoke_error_not_a_function_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    host = _host()
    host.url = "http://127.0.0.1:9/2015-03-31/functions/ReconcilerFunction/invocations"

    def no_connection(url: str, **_: Any) -> Any:
        raise requests.ConnectTimeout(f"connecting to {url} timed out")

    monkeypatch.setattr(host._session, "post", no_connection)
    with pytest.raises(InvokeError, match="unreachable") as caught:
        host.invoke({})
    assert not isinstance(caught.value, FunctionError)

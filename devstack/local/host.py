"""A function host: one process that plays one warm Lambda sandbox of one function.

``python -m devstack.local.host --name ApiFunction --code-uri functions/api --handler
app.lambda_handler --timeout 29 --memory 512`` imports the handler module from its ``CodeUri`` (the
``ecrcache`` library stands in for the layer: it is installed in the same environment), then serves
the Lambda ``Invoke`` API on a loopback port::

    POST /2015-03-31/functions/<name>/invocations   body: the event (JSON)
      -> 200, the handler's return value (JSON)
      -> 200 + ``X-Amz-Function-Error: Unhandled`` + ``{"errorType", "errorMessage", "stackTrace"}``
         when the handler raises (what Lambda answers)

Invocations run one at a time, as in one sandbox, with a Lambda context (request id, function
name and ARN, memory, remaining time). The process environment is the function's (the
supervisor sets the template's variables, the embedded AWS endpoint and the function role's
credentials). The first line on stdout is ``ecrcache-host: ready <port>``.

:class:`HostProcess` starts one from the supervisor; :meth:`HostProcess.invoke` is an
:data:`~devstack.local.invoke.Invoke`-style call that raises
:class:`~devstack.local.invoke.FunctionError` (the handler raised),
:class:`~devstack.local.invoke.FunctionTimeout` (no answer within the function's timeout: a
function error, ``Sandbox.Timedout``, as in Lambda) or :class:`~devstack.local.invoke.InvokeError`
(the host is not running or cannot be connected to). Unlike Lambda, a handler that runs past its
timeout is not killed: the caller stops waiting and the host finishes the invocation before taking
the next one.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Final

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.local.invoke import FunctionError, FunctionTimeout, InvokeError
from devstack.serving import QuietRequestHandler, ServerThread

__all__ = ["READY_PREFIX", "HostProcess", "LambdaContext", "main", "terminate"]

READY_PREFIX: Final = "ecrcache-host: ready "
_START_TIMEOUT: Final = 60.0


class LambdaContext:
    """The context object a Python Lambda handler receives."""

    def __init__(self, name: str, memory: int, timeout: float, region: str, account: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load_handler(code_uri: Path, handler: str) -> Callable[[Any, Any], Any]:
    module_name, _, function_name = handler.rpartition(".")
    sys.path.insert(0, str(code_uri))
    module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SystemExit(f"ecrcache-host: {handler} is not a function in {code_uri}")
    return function  # type: ignore[no-any-return]


def _serve(args: argparse.Namespace) -> int:
    handler = _load_handler(Path(args.code_uri), args.handler)
    region = os.environ.get("AWS_REGION", "us-east-1")
    account = os.environ.get("ECRCACHE_ACCOUNT_ID", "123456789012")
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if request.method != "POST" or not request.path.endswith("/invocations"):
            return Response("not found", status=404)(environ, start_response)
        try:
            event = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            return Response('{"message": "the event must be JSON"}', status=400)(environ, start_response)
        with lock:
            context = LambdaContext(args.name, args.memory, args.timeout, region, account)
            try:
                result = handler(event, context)
                body, headers = json.dumps(result, default=str), {}
            except Exception as exc:  # the handler's failure is the answer, as in Lambda
                body = json.dumps(
                    {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_exception(exc)[-5:],
                    }
                )
                headers = {"X-Amz-Function-Error": "Unhandled"}
                print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        response = Response(body, status=200, mimetype="application/json", headers=headers)
        return response(environ, start_response)

    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=QuietRequestHandler)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = ServerThread(server, f"ecrcache-host-{args.name}").start()
    print(f"{READY_PREFIX}{serving.port}", flush=True)
    while not stop.wait(0.5):
        pass
    serving.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecrcache-host", description="Serve one function's lambda_handler.")
    parser.add_argument("--name", required=True)
    parser.add_argument("--code-uri", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--port", type=int, default=0)
    return _serve(parser.parse_args(argv))


class HostProcess:
    """A running function host, started by the supervisor (``start``), invoked over loopback HTTP."""

    def __init__(
        self,
        name: str,
        *,
        code_uri: Path,
        handler: str,
        timeout: float,
        memory: int,
        env: Mapping[str, str],
        output: Callable[[str, Iterable[str]], None],
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._argv = [
            sys.executable, "-m", "devstack.local.host",
            "--name", name, "--code-uri", str(code_uri), "--handler", handler,
            "--timeout", str(timeout), "--memory", str(memory),
        ]  # fmt: skip
        self._env = dict(env)
        self._output = output
        self._preexec_fn = preexec_fn
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self._session = requests.Session()

    def start(self) -> HostProcess:
        """Start the process and wait for its ready line (``InvokeError`` if it dies first)."""
        self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            self._argv,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=self._preexec_fn,  # noqa: PLW1509 - set PDEATHSIG only
        )
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        threading.Thread(target=self._output, args=(self.name, self._process.stderr), daemon=True).start()
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                port = int(line[len(READY_PREFIX) :].strip())
                self.url = f"http://127.0.0.1:{port}/2015-03-31/functions/{self.name}/invocations"
                threading.Thread(target=self._output, args=(self.name, self._process.stdout), daemon=True).start()
                return self
            self._output(self.name, [line])
        self.stop()
        raise InvokeError(f"{self.name}: the function host did not start (see its log above)")

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """Run the handler once with ``event``; its result, or FunctionError / FunctionTimeout / InvokeError."""
        if not self.url:
            raise InvokeError(f"{self.name}: the function host is not running")
        try:
            response = self._session.post(self.url, data=json.dumps(event), timeout=(5, self.timeout + 5))
        except requests.ReadTimeout as exc:  # connected, no answer in time: the function timed out
            raise FunctionTimeout(self.name, self.timeout) from exc
        except requests.RequestException as exc:  # incl. ConnectTimeout: the host is not there
            raise InvokeError(f"{self.name}: the function host is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise InvokeError(f"{self.name}: the function host answered HTTP {response.status_code}")
        payload = response.json()
        if response.headers.get("X-Amz-Function-Error"):
            raise FunctionError(self.name, str(payload.get("errorType")), str(payload.get("errorMessage")))
        return payload

    def stop(self) -> None:
        process, self._process = self._process, None
        self.url = ""
        if process is not None:
            terminate(process)


def terminate(process: subprocess.Popen[str], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())

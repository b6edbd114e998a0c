"""The REST API on ``http://127.0.0.1:3000/v1``: HTTP requests in, API Gateway proxy events out.

:class:`ApiGateway` does locally what API Gateway's REST API does in the cloud: it turns each HTTP
request into the Lambda proxy event (payload format 1.0) of a REST API with ``AWS_IAM``
authorisation, invokes the API function with it and turns the function's answer back into HTTP.
The event is the one API Gateway sends:

* ``path`` keeps its percent-encoding (``/v1/rules/docker-hub%2Flibrary``), as API Gateway does;
* ``resource`` / ``pathParameters`` follow the API's routes (``/v1`` and ``/v1/{proxy+}``, taken
  from the function's ``Api`` events in ``template.yaml``);
* headers and query strings come both single- and multi-valued;
* the body is text (``isBase64Encoded: false``) unless its ``Content-Type`` matches one of the
  template's ``BinaryMediaTypes`` (exactly, ``type/*`` or ``*/*``): then it is base64 with
  ``isBase64Encoded: true``. A base64 answer (``isBase64Encoded: true``) is decoded only when the
  request's first ``Accept`` type matches one; otherwise its text passes as it is. That is API
  Gateway's REST conversion for Lambda proxy integrations without ``contentHandling``
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-payload-encodings-workflow.html);
  the template sets no binary media types, so every body reaches the function as text;
* ``requestContext.identity.userArn`` is the caller: API Gateway takes it from the SigV4
  signature; locally it is the ``X-Ecrcache-Caller-Arn`` header, or ``default_caller``. Signatures
  are not checked locally (the endpoint binds loopback only).

Like a Lambda integration: a function that raises (or a host that cannot be reached) gives
``502 {"message": "Internal server error"}``; one that runs past its timeout (the API function's is
API Gateway's 29 s integration limit) gives ``504``; bodies over 10 MB get ``413``. Requests are
handed to the function one at a time (one warm sandbox).

Paths under ``/_ecrcache/`` (never an API route: those are under ``/v1``) go to ``control`` when one is given:
the local stack's run-time controls (:mod:`devstack.local.control`), not the API function.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Self
from urllib.parse import unquote

from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.local.invoke import FunctionError, FunctionTimeout, InvokeError
from devstack.serving import Background, QuietRequestHandler, ServerThread

__all__ = ["CALLER_ARN_HEADER", "CONTROL_PREFIX", "DEFAULT_CALLER", "ApiGateway", "Control", "Route"]

CALLER_ARN_HEADER: Final = "X-Ecrcache-Caller-Arn"
DEFAULT_CALLER: Final = "arn:aws:iam::123456789012:user/ecrcache-local"
MAX_BODY_BYTES: Final = 10 * 1024 * 1024

ApiInvoke = Callable[[dict[str, Any]], Any]
Control = Callable[[str, str], tuple[int, dict[str, Any]]]
"""``(method, path) -> (status, JSON body)``: the local stack's own endpoints under ``/_ecrcache/``."""
CONTROL_PREFIX: Final = "/_ecrcache/"


class Route:
    """One ``Api`` event route: ``/v1`` (exact) or ``/v1/{proxy+}`` (greedy), with its method."""

    def __init__(self, path: str, method: str = "ANY") -> None:
        self.resource = path
        self.method = method.upper()
        self.greedy = path.endswith("{proxy+}")
        self.prefix = path.removesuffix("{proxy+}").rstrip("/")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``METHOD path`` (decoded segments not needed) takes this route."""
        if self.method not in {"ANY", method}:
            return None
        if self.greedy:
            if path.startswith(self.prefix + "/") and len(path) > len(self.prefix) + 1:
                return {"proxy": unquote(path[len(self.prefix) + 1 :])}
            return None
        return {} if path.rstrip("/") == self.prefix else None


DEFAULT_ROUTES: Final = (Route("/v1"), Route("/v1/{proxy+}"))


class ApiGateway(Background):
    """HTTP on a loopback port -> ``invoke(event)`` -> HTTP (``port=0`` picks a free port)."""

    def __init__(
        self,
        invoke: ApiInvoke,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        stage: str = "prod",
        account_id: str = "123456789012",
        default_caller: str = DEFAULT_CALLER,
        routes: Sequence[Route] = DEFAULT_ROUTES,
        binary_media_types: Sequence[str] = (),
        log: Callable[[str], None] | None = None,
        control: Control | None = None,
    ) -> None:
        self.invoke = invoke
        self.control = control
        self.host = host
        self.port = port
        self.stage = stage
        self.account_id = account_id
        self.default_caller = default_caller
        self.routes = tuple(routes)
        self.binary_media_types = tuple(t.lower() for t in binary_media_types)
        self.log = log
        self._lock = threading.Lock()
        self._serving: ServerThread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` (the API base is this plus ``/v1``)."""
        if self._serving is None:
            raise RuntimeError("the gateway is not running; call start() first")
        return self._serving.url

    def start(self) -> Self:
        """Bind (``OSError`` if the port is taken) and serve in a daemon thread."""
        server = make_server(self.host, self.port, self._wsgi, threaded=True, request_handler=QuietRequestHandler)
        self._serving = ServerThread(server, "ecrcache-gateway").start()
        return self

    def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()

    # ---- requests -----------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        if self.control is not None and _raw_path(environ).startswith(CONTROL_PREFIX):
            response = _json(*self.control(request.method, _raw_path(environ)))
        else:
            response = self._handle(request, environ)
        if self.log is not None:
            caller = request.headers.get(CALLER_ARN_HEADER) or self.default_caller
            elapsed = time.monotonic() - started
            self.log(f"{request.method} {_raw_path(environ)} {response.status_code} {elapsed:.2f}s caller={caller}")
        return response(environ, start_response)

    def _handle(self, request: Request, environ: dict[str, Any]) -> Response:
        path = _raw_path(environ)
        for route in self.routes:
            params = route.match(request.method, path)
            if params is not None:
                break
        else:
            return _json(404, {"message": f"no route for {request.method} {path}; the API is under /v1"})
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _json(413, {"message": "Request Too Long"})
        event = self.event_for(request, path, route, params)
        try:
            with self._lock:
                result = self.invoke(event)
        except FunctionTimeout:
            # The API function's timeout is API Gateway's integration limit (29 s): API Gateway answers 504.
            return _json(504, {"message": "Endpoint request timed out"})
        except FunctionError:
            return _json(502, {"message": "Internal server error"})
        except InvokeError:
            return _json(502, {"message": "Internal server error"})
        return _response_from(result, decode_base64=self.is_binary(_first_accept(request.headers.get("Accept"))))

    def event_for(self, request: Request, path: str, route: Route, params: dict[str, str]) -> dict[str, Any]:
        """The proxy event API Gateway would send for ``request``."""
        body_bytes = request.get_data(cache=False)
        binary = bool(body_bytes) and self.is_binary(request.headers.get("Content-Type"))
        body: str | None
        if not body_bytes:
            body = None
        elif binary:
            body = base64.b64encode(body_bytes).decode("ascii")
        else:
            body = body_bytes.decode("utf-8", errors="replace")
        headers = _single(request.headers)
        multi_headers = _multi(request.headers)
        query = {k: request.args.getlist(k)[-1] for k in request.args}
        multi_query = {k: request.args.getlist(k) for k in request.args}
        caller = request.headers.get(CALLER_ARN_HEADER) or self.default_caller
        now = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self.account_id,
                "resourceId": "local",
                "stage": self.stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "identity": {
                    "userArn": caller,
                    "caller": caller.rsplit("/", 1)[-1],
                    "user": caller.rsplit("/", 1)[-1],
                    "accountId": _account_of(caller) or self.account_id,
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("User-Agent", ""),
                    "accessKey": None,
                },
                "resourcePath": route.resource,
                "httpMethod": request.method,
                "path": f"/{self.stage}{path}",
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "domainName": request.host,
                "apiId": "local",
            },
            "body": body,
            "isBase64Encoded": binary,
        }

    def is_binary(self, media_type: str | None) -> bool:
        """Whether ``media_type`` (parameters ignored) matches a binary media type: exactly, ``type/*`` or ``*/*``."""
        if not media_type:
            return False
        essence = media_type.split(";", 1)[0].strip().lower()
        main = essence.split("/", 1)[0]
        return any(t in {essence, f"{main}/*", "*/*"} for t in self.binary_media_types)


def _raw_path(environ: dict[str, Any]) -> str:
    """The request path exactly as sent (percent-encoding kept), without the query string."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/")
    return raw.split("?", 1)[0] or "/"


def _single(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        out[key] = value  # the last value wins, as in API Gateway's single-value map
    return out


def _multi(headers: Headers) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in headers.items():
        out.setdefault(key, []).append(value)
    return out


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def _first_accept(accept: str | None) -> str | None:
    """API Gateway looks at the first media type of ``Accept`` only."""
    return accept.split(",", 1)[0] if accept else None


def _response_from(result: Any, *, decode_base64: bool) -> Response:
    """The HTTP response of a proxy integration result (a malformed one is a 502, as in API Gateway)."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return _json(502, {"message": "Internal server error"})
    body = result.get("body") or ""
    decode = bool(result.get("isBase64Encoded")) and decode_base64
    data = base64.b64decode(body) if decode else str(body).encode("utf-8")
    response = Response(data, status=result["statusCode"])
    response.headers.clear()
    for key, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(key, str(value))
    for key, value in (result.get("headers") or {}).items():
        response.headers[key] = str(value)
    response.headers.setdefault("Content-Type", "application/json")
    response.headers["Content-Length"] = str(len(data))
    return response


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")

"""The embedded AWS endpoint over HTTP: moto's server with the ECR extension and ``/_ecrcache/`` hooks.

:class:`EmbeddedAwsServer` serves moto's WSGI app (every moto service; the ECR extension installed)
on a loopback address, in a background thread. Point boto3 at it with ``endpoint_url`` or the AWS
CLI with ``--endpoint-url``; any credentials are accepted.

Extra endpoints, all JSON, all under ``/_ecrcache/`` (never an AWS path):

=========================================  ==============================================================
``GET  /_ecrcache/health``                 ``{"status": "ok", "now": ...}``
``GET  /_ecrcache/clock``                  ``{"now": "<ISO-8601>"}`` -- the injectable clock
``POST /_ecrcache/clock/advance``          ``{"seconds": N}`` -> moves the clock forward, returns ``now``
``POST /_ecrcache/clock/reset``            back to the system clock
``POST /_ecrcache/lifecycle/evaluate``     ``{"repositoryName": ..., "accountId"?, "region"?}`` -> applies the
                                           repository's lifecycle policy now: ``{"actions": [...]}``
``POST /_ecrcache/lifecycle/settings``     ``{"previewDelaySeconds": N}`` -> previews stay IN_PROGRESS N s
``POST /_ecrcache/events/faults``          ``{"action": "drop"|"duplicate"|"delay", "count"?: 1 (null =
                                           always), "detailType"?, "eventName"?, "delaySeconds"?}``
``DELETE /_ecrcache/events/faults``        clear faults and held events
``POST /_ecrcache/events/flush``           deliver every delayed event now
``GET  /_ecrcache/events/recent``          the last delivered event envelopes
``GET  /_ecrcache/ecr/throttling``        ECR's throttle: ``{"limits": {op: {"tps", "burst"}}, "admitted": {op: n},
                                           "throttled": {op: n}}`` (calls refused with ``ThrottlingException``)
``POST /_ecrcache/ecr/throttling``         ``{"tps": "Op=TPS[:BURST],..." | {"Op": TPS} | null}`` -> new limits, full
                                           buckets, counts from zero (``null``/``""``: nothing throttled)
=========================================  ==============================================================

``accountId`` defaults to moto's default account (or ``$MOTO_ACCOUNT_ID``), ``region`` to
``$AWS_DEFAULT_REGION`` or ``us-east-1``. Other modules add their own endpoints with
:func:`register_endpoint`: the pull-through data plane ``pullthrough/layers/{complete,pending}`` and
``pullthrough/settings``; the archive storage class (``ecr_storage``) ``images/restores/{complete,pending}``
and ``images/settings`` (``{"restoreDelaySeconds": N}``; a restore takes 20 minutes by default, as in ECR);
Secrets Manager's replicas (``secrets_replication``) ``secrets/replication/{complete,pending}`` and
``secrets/replication/settings`` (``{"delaySeconds": N}``: how long a new replica stays ``InProgress``; 0 by
default); Secrets Manager's rotation (``secrets_rotation``) ``secrets/rotation/functions`` (``POST {"arn", "url",
"timeoutSeconds"?}`` registers a rotation function's Lambda ``Invoke`` URL, ``DELETE {"arn"}``, ``GET``),
``GET secrets/rotation/runs`` and ``secrets/rotation/settings`` (``{"retries": N, "retryDelaySeconds": S}``).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Self

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.aws import clock, ecr_lifecycle, ecr_throttling, events, install
from devstack.serving import Background, ServerThread

if TYPE_CHECKING:
    from devstack.aws.ecr_throttling import TpsSpec

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "PREFIX",
    "EmbeddedAwsServer",
    "EndpointError",
    "PortBusyError",
    "register_endpoint",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 4566
PREFIX: Final = "/_ecrcache/"

Handler = Callable[[dict[str, Any]], dict[str, Any]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PortBusyError(OSError):
    """The requested port is already bound by another process."""


class EndpointError(Exception):
    """A bad request to an ``/_ecrcache/`` endpoint (HTTP 400 with ``{"error": message}``)."""


_endpoints: dict[tuple[str, str], Handler] = {}
_endpoints_lock = threading.Lock()


def register_endpoint(method: str, path: str, handler: Handler) -> None:
    """Serve ``handler(body_and_query) -> json`` at ``METHOD /_ecrcache/<path>`` (path without the prefix)."""
    with _endpoints_lock:
        _endpoints[(method.upper(), path.strip("/"))] = handler


def _account(body: dict[str, Any]) -> str:
    return str(body.get("accountId") or os.environ.get("MOTO_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID)


def _region(body: dict[str, Any]) -> str:
    return str(body.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EndpointError(f"'{key}' must be a non-negative number")
    return float(value)


def _health(_: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "now": clock.now().isoformat()}


def _clock(_: dict[str, Any]) -> dict[str, Any]:
    return {"now": clock.now().isoformat()}


def _advance(body: dict[str, Any]) -> dict[str, Any]:
    return {"now": clock.advance(timedelta(seconds=_number(body, "seconds"))).isoformat()}


def _reset_clock(_: dict[str, Any]) -> dict[str, Any]:
    clock.reset()
    return {"now": clock.now().isoformat()}


def _evaluate(body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("repositoryName")
    if not isinstance(name, str) or not name:
        raise EndpointError("'repositoryName' is required")
    actions = ecr_lifecycle.evaluate_lifecycle_now(_account(body), _region(body), name)
    return {
        "repositoryName": name,
        "actions": [
            {
                "imageDigest": a.image.digest,
                "imageTags": list(a.image.tags),
                "action": a.action,
                "appliedRulePriority": a.rule_priority,
            }
            for a in actions
        ],
    }


def _lifecycle_settings(body: dict[str, Any]) -> dict[str, Any]:
    ecr_lifecycle.settings.preview_delay = timedelta(seconds=_number(body, "previewDelaySeconds"))
    return {"previewDelaySeconds": ecr_lifecycle.settings.preview_delay.total_seconds()}


def _add_fault(body: dict[str, Any]) -> dict[str, Any]:
    action = body.get("action")
    count = body.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise EndpointError("'count' must be a positive integer or null (always)")
    detail_type, event_name = body.get("detailType"), body.get("eventName")
    if action == "drop":
        events.faults.drop(count, detail_type=detail_type, event_name=event_name)
    elif action == "duplicate":
        events.faults.duplicate(count, detail_type=detail_type, event_name=event_name)
    elif action == "delay":
        delay = timedelta(seconds=_number(body, "delaySeconds"))
        events.faults.delay(delay, count, detail_type=detail_type, event_name=event_name)
    else:
        raise EndpointError("'action' must be one of drop, duplicate, delay")
    return {"ok": True}


def _clear_faults(_: dict[str, Any]) -> dict[str, Any]:
    events.faults.clear()
    return {"ok": True}


def _flush(_: dict[str, Any]) -> dict[str, Any]:
    return {"delivered": events.faults.flush()}


def _recent(_: dict[str, Any]) -> dict[str, Any]:
    return {"events": events.recent_events()}


for _method, _path, _handler in (
    ("GET", "health", _health),
    ("GET", "clock", _clock),
    ("POST", "clock/advance", _advance),
    ("POST", "clock/reset", _reset_clock),
    ("POST", "lifecycle/evaluate", _evaluate),
    ("POST", "lifecycle/settings", _lifecycle_settings),
    ("POST", "events/faults", _add_fault),
    ("DELETE", "events/faults", _clear_faults),
    ("POST", "events/flush", _flush),
    ("GET", "events/recent", _recent),
):
    register_endpoint(_method, _path, _handler)


class EcrcacheEndpoints:
    """WSGI middleware: ``/_ecrcache/...`` here, everything else to moto."""

    def __init__(self, moto_app: WsgiApp) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(PREFIX):
            return self.moto_app(environ, start_response)
        response = self._handle(Request(environ))
        return response(environ, start_response)

    @staticmethod
    def _handle(request: Request) -> Response:
        key = (request.method.upper(), request.path[len(PREFIX) :].strip("/"))
        with _endpoints_lock:
            handler = _endpoints.get(key)
        if handler is None:
            return _json(404, {"error": f"no endpoint {key[0]} {request.path}"})
        try:
            body: Any = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            return _json(400, {"error": "the request body must be JSON"})
        if not isinstance(body, dict):
            return _json(400, {"error": "the request body must be a JSON object"})
        params = {**request.args.to_dict(), **body}
        try:
            return _json(200, handler(params))
        except EndpointError as exc:
            return _json(400, {"error": str(exc)})
        except Exception as exc:  # a hook failing must answer, not kill the server thread
            code = getattr(exc, "code", None)
            message = getattr(exc, "message", None) or str(exc)
            return _json(400 if isinstance(code, str) else 500, {"error": message, "code": code or type(exc).__name__})


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload, default=str), status=status, mimetype="application/json")


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to bind {host!r}: the embedded AWS endpoint has no authentication; use 127.0.0.1")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortBusyError(
                errno.EADDRINUSE, f"port {port} on {host} is already in use (another ecrcache-aws?)"
            ) from exc
        raise
    return listener


class EmbeddedAwsServer(Background):
    """moto + the ECR extension over HTTP on a loopback address (``port=0`` = pick a free port).

    ``ecr_tps`` throttles its ECR as :func:`devstack.aws.install` takes it (``"DescribeRepositories=20,*=50"``;
    :mod:`devstack.aws.ecr_throttling`); ``None``: left as it is (off unless configured). It is checked here, so a
    bad value fails before anything starts.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, ecr_tps: TpsSpec | None = None) -> None:
        _check_loopback(host)
        if ecr_tps:
            ecr_throttling.parse_tps(ecr_tps)  # a ValueError naming the bad entry, before anything starts
        self.host = host
        self.port = port
        self.ecr_tps = ecr_tps
        self._serving: ServerThread | None = None

    @property
    def endpoint_url(self) -> str:
        if self._serving is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._serving.url

    def start(self) -> Self:
        """Bind (raising :class:`PortBusyError` if taken) and serve in a daemon thread."""
        install(ecr_tps=self.ecr_tps)
        app = EcrcacheEndpoints(DomainDispatcherApplication(create_backend_app))
        # Bind ourselves: werkzeug prints and calls sys.exit(1) when the port is taken.
        listener = _bind(self.host, self.port)
        try:
            server = make_server(
                self.host,
                listener.getsockname()[1],
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # werkzeug duplicated the descriptor
        self._serving = ServerThread(server, "ecrcache-aws").start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop()

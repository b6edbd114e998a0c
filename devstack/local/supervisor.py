"""``ecrcache local`` / ``make local``: the whole controller on one machine, in the foreground.

It starts, in this order, and stops in reverse on Ctrl-C (SIGINT) or SIGTERM:

1. a seeded upstream registry (Debian's ``docker-registry``) at ``127.0.0.1:5000``, mapped in for
   every public registry ECR can cache from (``registry-1.docker.io``, ``quay.io``, ``public.ecr.aws``,
   ``registry.k8s.io`` ...), anonymous; and, for ``ghcr.io``, a second one that requires a token as GHCR
   does (a Bearer realm taking HTTP Basic ``--ghcr-user`` / ``--ghcr-token``, by default ``ecrcache-demo`` /
   ``ghcr-demo-token``, printed at start and written to ``--ready-file``);
2. the embedded AWS (moto + the ECR extension) at ``http://127.0.0.1:4566``;
3. the stack's resources from ``template.yaml`` (table, queues, EventBridge rules, function roles,
   a stack record);
4. a function host per function (the same ``lambda_handler``s the cloud runs); a function the template lets
   Secrets Manager invoke (an ``AWS::Lambda::Permission`` for ``secretsmanager.amazonaws.com``: the rotation
   function) is registered with the embedded Secrets Manager under its ARN, so ``RotateSecret`` runs its steps;
5. the REST API at ``http://127.0.0.1:3000/v1`` (API Gateway proxy events to the API function);
6. the event runner: DynamoDB stream, SQS queues, EventBridge rules and schedules, wired from each
   function's ``Events`` in ``template.yaml``.

A schedule's event can be delivered now, on the running stack: ``ecrcache local fire FUNCTION [EVENT]`` (or
``POST /_ecrcache/schedules/{Function}/{Event}/fire`` on the API port; :mod:`devstack.local.control`).

Logs are one readable line each, prefixed by where they come from (the functions' Powertools JSON
logs are rendered as ``LEVEL message key=value``). Every port is a flag; a busy port is reported
before anything starts (exit 3). ``--ready-file`` writes the endpoints as JSON once everything is
up (for scripts: ``make demo`` and the end-to-end tests). State lives in memory: it is gone when
the stack stops.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

import requests

from devstack.local.control import Controls, fire_main
from devstack.local.gateway import ApiGateway, Route
from devstack.local.host import HostProcess, terminate
from devstack.local.invoke import InvokeError
from devstack.local.provision import LocalStack, provision
from devstack.local.template import TemplateError, binary_media_types, invoked_by, load_template

__all__ = ["EXIT_FAILED", "EXIT_PORT_BUSY", "main"]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_PORT_BUSY: Final = 3
ACCOUNT_ID: Final = "123456789012"
_AWS_READY: Final = "ecrcache-aws: ready at "
_ACCESS_LOG: Final = re.compile(r'"[A-Z]+ \S+ HTTP/1\.[01]" \d{3}')
_STANDARD_LOG_KEYS: Final = frozenset({
    "level", "location", "message", "timestamp", "service", "cold_start", "function_name",
    "function_memory_size", "function_arn", "function_request_id", "xray_trace_id", "sampling_rate",
    "correlation_id", "exception_name", "stack_trace",
})  # fmt: skip
_PR_SET_PDEATHSIG: Final = 1
GHCR_HOST: Final = "ghcr.io"
GHCR_USER: Final = "ecrcache-demo"
GHCR_TOKEN: Final = "ghcr-demo-token"  # noqa: S105 - the local stand-in's documented demo token
SECRETS_MANAGER: Final = "secretsmanager.amazonaws.com"


@dataclass(frozen=True)
class GhcrStandIn:
    """The registry standing in for ``ghcr.io`` and the credential it takes (a demo token, printed)."""

    url: str
    username: str
    token: str

    def as_json(self) -> dict[str, str]:
        return {"registry": self.url, "username": self.username, "token": self.token}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


class Console:
    """Serialised, prefixed, readable log lines on stdout."""

    def __init__(self, stream: TextIO = sys.stdout, *, verbose: bool = False) -> None:
        self.stream = stream
        self.verbose = verbose
        self._lock = threading.Lock()

    def line(self, source: str, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._lock:
            for part in text.rstrip("\n").splitlines() or [""]:
                self.stream.write(f"{stamp} {source:<10} | {part}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        self.line("local", text)

    def follow(self, source: str, lines: Iterable[str]) -> None:
        """Print every line of a child's output (until EOF), JSON logs rendered readably."""
        with contextlib.suppress(ValueError, OSError):  # the pipe closed under us at shutdown
            for raw in lines:
                text = raw.rstrip("\n")
                if not text:
                    continue
                if not self.verbose and _ACCESS_LOG.search(text):
                    continue
                self.line(source, render_log(text))


def render_log(text: str) -> str:
    """A Powertools JSON log line as ``LEVEL message key=value ...``; other lines unchanged."""
    if not text.startswith("{"):
        return text
    try:
        record = json.loads(text)
    except ValueError:
        return text
    if not isinstance(record, dict) or "message" not in record:
        return text
    level = str(record.get("level", "INFO"))
    message = record["message"]
    if not isinstance(message, str):
        message = json.dumps(message, default=str)
    extras = []
    for key, value in record.items():
        if key in _STANDARD_LOG_KEYS:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        extras.append(f"{key}={shown[:200]}")
    if record.get("exception_name"):
        extras.append(f"exception={record['exception_name']}")
    return " ".join([f"{level:<7}", message, *extras])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecrcache local",
        description="Run the whole ecrcache controller on this machine (embedded AWS, API, event runner, registry).",
        epilog="`ecrcache local fire FUNCTION [EVENT]` delivers a function's Schedule event now on the running "
        "stack (`ecrcache local fire --help`).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for every endpoint (default %(default)s)")
    parser.add_argument("--aws-port", type=int, default=4566, help="embedded AWS endpoint (default %(default)s)")
    parser.add_argument("--api-port", type=int, default=3000, help="REST API (default %(default)s)")
    parser.add_argument(
        "--registry-port", type=int, default=5000, help="seeded upstream registry (default %(default)s)"
    )
    parser.add_argument("--no-registry", action="store_true", help="do not start the upstream registry")
    parser.add_argument(
        "--registry-rate-limit",
        default=None,
        metavar="N/WINDOW",
        help="the registry answers 429 after N manifest GETs per window, as Docker Hub does (e.g. 100/6h; "
        "default: no limit; change it at run time with PUT <registry>/_ecrcache/rate-limit)",
    )
    parser.add_argument("--no-seed", action="store_true", help="start the registry empty")
    parser.add_argument(
        "--ghcr-user", default=GHCR_USER, help="the user the ghcr.io stand-in takes (default %(default)s)"
    )
    parser.add_argument(
        "--ghcr-token", default=GHCR_TOKEN, help="the token the ghcr.io stand-in takes (default %(default)s)"
    )
    parser.add_argument("--stack-name", default="ecrcache-local", help="local stack name (default %(default)s)")
    parser.add_argument("--region", default="us-east-1", help="the stack's Region (default %(default)s)")
    parser.add_argument(
        "--template", type=Path, default=None, help="the SAM template (default: ./template.yaml, else the checkout's)"
    )
    parser.add_argument(
        "--schedule-speed",
        type=float,
        default=1.0,
        help="run schedules this many times faster (60: a 15-minute rate fires every 15 s; default %(default)s)",
    )
    parser.add_argument("--ready-file", type=Path, default=None, help="write the endpoints here as JSON when ready")
    parser.add_argument("--verbose", action="store_true", help="also show every embedded AWS request")
    return parser


class LocalRun:
    """Everything ``ecrcache local`` started, stopped in reverse order."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.template: dict[str, Any] = {}
        self.pids: dict[str, int] = {}
        self._alive: list[tuple[str, Callable[[], bool]]] = []
        # UPSTREAM_ENDPOINTS for the functions that declare it: every upstream host -> its local registry.
        self.upstream_endpoints = "{}"
        self.ghcr: GhcrStandIn | None = None
        self.controls = Controls()  # /_ecrcache/ on the API port; the runner is plugged in once it runs

    def _started(self, name: str, stop: Callable[[], None], alive: Callable[[], bool] | None = None) -> None:
        self._stops.append((name, stop))
        if alive is not None:
            self._alive.append((name, alive))

    def dead(self) -> list[str]:
        """The parts that exited on their own (the stack is broken without them)."""
        return [name for name, alive in self._alive if not alive()]

    def stop(self) -> None:
        for name, stop in reversed(self._stops):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                self.console.say(f"stopping {name} failed: {exc}")
        self._stops.clear()

    # ---- the parts --------------------------------------------------------------------------------

    def start_registry(self) -> str:
        from devstack.registry.harness import FrontedRegistry  # noqa: PLC0415 - optional part
        from devstack.registry.ratelimit import RateLimit  # noqa: PLC0415
        from devstack.registry.seeder import Seeder  # noqa: PLC0415

        limit = RateLimit.parse(self.args.registry_rate_limit) if self.args.registry_rate_limit else None
        registry = FrontedRegistry(port=self.args.registry_port, rate_limit=limit).start()
        self._started("registry", registry.stop, lambda: registry.running)
        if registry.pid is not None:
            self.pids["registry"] = registry.pid
        limited = f", {limit.limit} manifest GETs per {limit.window_label} s" if limit else ""
        self.console.line("registry", f"docker-registry at {registry.url}{limited}")
        upstreams = registry.upstream_map()
        if not self.args.no_seed:
            # Seeded straight into the registry behind the proxy: seeding is not counted or rate limited.
            with Seeder.for_registry(registry.registry) as seeder:
                for record in seeder.seed(_seed_images()):
                    self.console.line("registry", f"seeded {record.reference} ({record.media_type})")
        self.ghcr = self.start_ghcr()
        upstreams.set(GHCR_HOST, self.ghcr.url)
        self.upstream_endpoints = json.dumps(dict(upstreams.items()), sort_keys=True)
        return str(upstreams.to_env())

    def start_ghcr(self) -> GhcrStandIn:
        """``ghcr.io``'s stand-in: a registry behind a token realm that takes only ``--ghcr-user``/``--ghcr-token``
        (anonymous token requests are refused, as GHCR refuses them for private images), seeded with GHCR's images."""
        from devstack.registry.harness import AuthMode, Credentials, FrontedRegistry  # noqa: PLC0415
        from devstack.registry.seeder import Seeder  # noqa: PLC0415

        credentials = Credentials(self.args.ghcr_user, self.args.ghcr_token)
        registry = FrontedRegistry(port=0, auth=AuthMode.TOKEN, credentials=credentials).start()
        self._started("ghcr registry", registry.stop, lambda: registry.running)
        if registry.pid is not None:
            self.pids["ghcr-registry"] = registry.pid
        stand_in = GhcrStandIn(registry.url, credentials.username, credentials.password)
        self.console.line(
            "registry",
            f"{GHCR_HOST} stand-in at {stand_in.url}: token auth, user {stand_in.username!r}, token "
            f"{stand_in.token!r} (--ghcr-user/--ghcr-token change them)",
        )
        if not self.args.no_seed:
            with Seeder.for_registry(registry.registry) as seeder:
                for record in seeder.seed(_ghcr_images()):
                    self.console.line("registry", f"seeded {GHCR_HOST} {record.reference} ({record.media_type})")
        return stand_in

    def start_aws(self, upstream_map: str | None) -> str:
        env = {
            **os.environ,
            "AWS_DEFAULT_REGION": self.args.region,
            "MOTO_ACCOUNT_ID": ACCOUNT_ID,
            "PYTHONUNBUFFERED": "1",
        }
        if upstream_map:
            env["ECRCACHE_UPSTREAM_MAP"] = upstream_map
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            [
                sys.executable,
                "-m",
                "devstack.aws.aws_server",
                "--host",
                self.args.host,
                "--port",
                str(self.args.aws_port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads hold locks the child needs
        )
        self._started("embedded AWS", lambda: terminate(process), lambda: process.poll() is None)
        self.pids["aws"] = process.pid
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(_AWS_READY):
                url = line[len(_AWS_READY) :].strip()
                self.console.line("aws", f"embedded AWS at {url}")
                threading.Thread(target=self.console.follow, args=("aws", process.stdout), daemon=True).start()
                return url
            self.console.line("aws", line)
        raise RuntimeError("the embedded AWS did not start (see its output above)")

    def provision(self, endpoint_url: str, api_url: str) -> LocalStack:
        template_path: Path = self.args.template
        self.template = template = load_template(template_path)
        stack = provision(
            template,
            root=template_path.parent,
            endpoint_url=endpoint_url,
            stack_name=self.args.stack_name,
            region=self.args.region,
            account_id=ACCOUNT_ID,
            api_url=api_url,
        )
        for logical_id, resource in stack.resources.items():
            if resource.attributes:
                self.console.line("stack", f"{logical_id}: {resource.ref}")
        return stack

    def _local_overrides(self, environment: Mapping[str, str]) -> dict[str, str]:
        """What differs here from AWS: upstream hosts resolve to the local registry (``{}`` in AWS)."""
        return {"UPSTREAM_ENDPOINTS": self.upstream_endpoints} if "UPSTREAM_ENDPOINTS" in environment else {}

    def start_functions(self, stack: LocalStack) -> dict[str, HostProcess]:
        hosts: dict[str, HostProcess] = {}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
        for logical_id, function in stack.functions.items():
            env = {
                **base,
                **function.environment,
                **self._local_overrides(function.environment),
                **stack.credentials.get(logical_id, {}),
                "AWS_ENDPOINT_URL": stack.endpoint_url,
                "AWS_REGION": stack.region,
                "AWS_DEFAULT_REGION": stack.region,
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_LAMBDA_FUNCTION_NAME": stack.resources[logical_id].ref,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                "ECRCACHE_ACCOUNT_ID": stack.account_id,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "PYTHONUNBUFFERED": "1",
                # Powertools warns on every invocation that published no metric (they are disabled here).
                "PYTHONWARNINGS": "ignore:No application metrics to publish:UserWarning",
            }
            host = HostProcess(
                logical_id,
                code_uri=function.code_uri,
                handler=function.handler,
                timeout=function.timeout,
                memory=function.memory_size,
                env=env,
                output=lambda name, lines: self.console.follow(_short(name), lines),
                preexec_fn=_die_with_parent,
            )
            host.start()
            self._started(logical_id, host.stop, host.running)
            if host.pid is not None:
                self.pids[logical_id] = host.pid
            self.console.line(_short(logical_id), f"{function.handler} from {function.code_uri} ready")
            hosts[logical_id] = host
        return hosts

    def register_rotation(self, stack: LocalStack, hosts: dict[str, HostProcess]) -> None:
        """Each function the template lets Secrets Manager invoke, registered with the embedded Secrets Manager
        under its ARN: ``RotateSecret`` then invokes its host for each step (``/_ecrcache/secrets/rotation``)."""
        for logical_id in invoked_by(self.template, SECRETS_MANAGER):
            host = hosts.get(logical_id)
            if host is None:
                continue
            arn = stack.resources[logical_id].attributes["Arn"]
            answer = requests.post(
                f"{stack.endpoint_url}/_ecrcache/secrets/rotation/functions",
                json={"arn": arn, "url": host.url, "timeoutSeconds": host.timeout + 5},
                timeout=10,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"registering {logical_id} with Secrets Manager failed: {answer.text}")
            self.console.line(_short(logical_id), f"Secrets Manager invokes {arn} for rotation steps")

    def start_gateway(self, stack: LocalStack, hosts: dict[str, HostProcess]) -> ApiGateway:
        targets: dict[tuple[str, str], str] = {}
        routes: list[Route] = []
        for logical_id, function in stack.functions.items():
            for event in function.events:
                if event.type != "Api":
                    continue
                route = Route(str(event.properties["Path"]), str(event.properties.get("Method", "ANY")))
                routes.append(route)
                targets[(route.resource, route.method)] = logical_id
        if not routes:
            raise TemplateError("no function has an Api event: nothing to serve on the API port")

        def invoke(event: dict[str, Any]) -> Any:
            key = (str(event["resource"]), str(event["httpMethod"]))
            target = targets.get(key) or targets[(key[0], "ANY")]
            return hosts[target].invoke(event)

        gateway = ApiGateway(
            invoke,
            host=self.args.host,
            port=self.args.api_port,
            stage=_parameter_default(self.template, "Stage", "prod"),
            account_id=stack.account_id,
            routes=routes,
            binary_media_types=binary_media_types(self.template),
            log=lambda text: self.console.line("api", text),
            control=self.controls.handle,
        ).start()
        self._started("API gateway", gateway.stop)
        return gateway

    def start_runner(self, stack: LocalStack, hosts: dict[str, HostProcess]) -> None:
        from devstack.local.runner import EventRunner  # noqa: PLC0415 - heavy imports (moto) only here

        def invoke(function: str, event: dict[str, Any]) -> Any:
            host = hosts.get(function)
            if host is None:
                raise InvokeError(f"no function {function}")
            return host.invoke(event)

        runner = EventRunner(
            stack.functions,
            endpoint_url=stack.endpoint_url,
            region=stack.region,
            stack_name=stack.name,
            invoke=invoke,
            schedule_speed=self.args.schedule_speed,
            account_id=stack.account_id,
            log=lambda text: self.console.line("events", text),
        )
        for delivery in runner.deliveries():
            self.console.line(
                "events", f"{delivery.function} <- {delivery.event} ({delivery.type}): {delivery.description}"
            )
        runner.setup()
        runner.start()
        self.controls.runner = runner
        self._started("event runner", runner.stop)


def _ready(run: LocalRun, stack: LocalStack, api_base: str, aws_url: str) -> dict[str, Any]:
    """The endpoints, written to ``--ready-file`` when asked (atomically: a poller never reads half of it)."""
    args = run.args
    endpoints: dict[str, Any] = {
        "api": api_base,
        "aws": aws_url,
        "registry": f"http://127.0.0.1:{args.registry_port}" if not args.no_registry else "",
        "ghcr": run.ghcr.as_json() if run.ghcr is not None else None,
        "stack": stack.name,
        "region": stack.region,
        "table": stack.outputs.get("StateTableName", ""),
        "pids": {"local": os.getpid(), **run.pids},
    }
    if args.ready_file is not None:
        partial = args.ready_file.with_name(f".{args.ready_file.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(endpoints, indent=2) + "\n", encoding="utf-8")
        partial.replace(args.ready_file)
    return endpoints


def _find_template(given: Path | None) -> Path | None:
    """``--template``, else ``./template.yaml``, else the checkout's (``None`` if there is none)."""
    candidates = [given] if given is not None else [Path.cwd() / "template.yaml", _repo_root() / "template.yaml"]
    return next((path.resolve() for path in candidates if path.is_file()), None)


def _seed_images() -> tuple[Any, ...]:
    from devstack.registry.images import ManifestFormat  # noqa: PLC0415
    from devstack.registry.seeder import DEFAULT_IMAGES, ImageSpec  # noqa: PLC0415

    return (
        *DEFAULT_IMAGES,
        # ECR Public's Docker official images, registry.k8s.io, Quay and GHCR, for the example rules.
        ImageSpec("docker/library/node", "18-alpine"),
        ImageSpec("pause", "3.10"),
        ImageSpec("prometheus/node-exporter", "v1.8.2", platforms=("linux/amd64",), index=False),
        # Docker Hub's rate-limit check repository: the rotation function's and the health check's probe image.
        ImageSpec("ratelimitpreview/test", "latest", platforms=("linux/amd64",), index=False),
        # Multi-platform Docker Hub images for warming (make demo, tests/e2e): pulled by users, warmed by
        # warm sets, or stopped by a rate limit. A pull (ECR's import) or a warm makes an image fresh for
        # 24 h, so each scenario has images of its own that nothing else touches first.
        ImageSpec("library/golang", "1.23"),
        ImageSpec("library/redis", "7.4", fmt=ManifestFormat.OCI),
        ImageSpec("library/postgres", "17"),
        ImageSpec("library/busybox", "1.37", fmt=ManifestFormat.OCI),
        ImageSpec("library/memcached", "1.6"),
        ImageSpec("library/traefik", "3.1"),
        ImageSpec("library/httpd", "2.4", fmt=ManifestFormat.OCI),
    )


def _ghcr_images() -> tuple[Any, ...]:
    """GHCR's images: the example rule's, and the rotation function's probe image (``actions/actions-runner``)."""
    from devstack.registry.seeder import ImageSpec  # noqa: PLC0415

    return (
        ImageSpec("ecrcache/demo", "1.0", platforms=("linux/amd64",), index=False),
        ImageSpec("actions/actions-runner", "latest", platforms=("linux/amd64",), index=False),
    )


def _parameter_default(template: dict[str, Any], name: str, fallback: str) -> str:
    return str(template.get("Parameters", {}).get(name, {}).get("Default", fallback))


def _short(logical_id: str) -> str:
    return logical_id.removesuffix("Function").lower() or logical_id


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _preflight(args: argparse.Namespace) -> int | None:
    """What must hold before anything starts (``args.template`` resolved); an exit code if it does not."""
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        print("ecrcache local: --host must be a loopback address (nothing here is authenticated)", file=sys.stderr)
        return EXIT_USAGE
    given = args.template
    args.template = _find_template(given)
    if args.template is None:
        where = f"{given}: no such file" if given else "no template.yaml here or in the ecrcache checkout"
        print(f"ecrcache local: {where}; pass --template PATH", file=sys.stderr)
        return EXIT_USAGE
    ports = {"--aws-port": args.aws_port, "--api-port": args.api_port}
    if not args.no_registry:
        ports["--registry-port"] = args.registry_port
    busy = [f"{port} ({flag})" for flag, port in ports.items() if port and not port_free(args.host, port)]
    if busy:
        print(
            f"ecrcache local: port {', '.join(busy)} on {args.host} is already in use -- is another "
            "`make local` running? Stop it, or choose other ports with the flags named.",
            file=sys.stderr,
        )
        return EXIT_PORT_BUSY
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fire"]:  # ecrcache local fire FUNCTION [EVENT]: a client of the running stack
        return fire_main(argv[1:])
    args = _parser().parse_args(argv)
    console = Console(verbose=args.verbose)
    refused = _preflight(args)
    if refused is not None:
        return refused
    # Everything here talks to the embedded AWS with its own keys: a profile of the user's (maybe one
    # that needs an SSO login) must not be read by any client this process or its children create.
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(variable, None)
    stop = threading.Event()
    run = LocalRun(args, console)
    with _signals(stop):
        try:
            upstream_map = None if args.no_registry else run.start_registry()
            aws_url = run.start_aws(upstream_map)
            api_base = f"http://{args.host}:{args.api_port}/v1"
            stack = run.provision(aws_url, api_base)
            hosts = run.start_functions(stack)
            run.register_rotation(stack, hosts)
            gateway = run.start_gateway(stack, hosts)
            api_base = f"{gateway.endpoint_url}/v1"
            run.start_runner(stack, hosts)
        except Exception as exc:
            console.say(f"failed to start: {type(exc).__name__}: {exc}")
            run.stop()
            return EXIT_FAILED
        endpoints = _ready(run, stack, api_base, aws_url)
        console.say(f"ready: API {api_base}  |  AWS {aws_url}  |  registry {endpoints['registry'] or '-'}")
        if run.ghcr is not None:
            console.say(f"ghcr:  {GHCR_HOST} takes user {run.ghcr.username!r} with token {run.ghcr.token!r}")
        console.say(f"try:   ECRCACHE_ENDPOINT={api_base} ecrcache get rules     (Ctrl-C stops everything)")
        code = 0
        while not stop.wait(0.5):
            if dead := run.dead():
                console.say(f"{', '.join(dead)} exited unexpectedly (see the log above); stopping everything")
                code = EXIT_FAILED
                break
        console.say("stopping ...")
        run.stop()
        if args.ready_file is not None:
            with contextlib.suppress(OSError):
                args.ready_file.unlink()
        console.say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())

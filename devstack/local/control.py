"""Run-time controls of the running local stack, and ``ecrcache local fire``: a schedule's event, delivered now.

A daily schedule (the credential health check's ``rate(1 day)``) never fires during a demo or a manual test, and
``--schedule-speed`` speeds every schedule up at once. So the local stack answers, on its API port, under
``/_ecrcache/`` (never an API route: API Gateway's are under the stage, ``/v1``; the same prefix the registry's
and the embedded AWS's run-time hooks use):

=========================================================  ========================================================
``GET  /_ecrcache/schedules``                              ``{"schedules": [{"function", "event", "expression",
                                                           "rule", "enabled"}]}`` -- every ``Schedule`` event
``POST /_ecrcache/schedules/{Function}/{Event}/fire``      deliver that schedule's event now: exactly the event
                                                           the event runner builds when the schedule fires (the
                                                           ``Input``, else EventBridge's ``Scheduled Event`` with
                                                           the rule's ARN), with the same asynchronous retries and
                                                           dead-lettering; answers when it was delivered:
                                                           ``200 {"function", "event", "status": "ok", "result"}``,
                                                           ``502 {..., "status": "failed", "error"}`` when every
                                                           attempt failed, ``404`` for an unknown schedule, ``400``
                                                           for an event that is not a ``Schedule``
=========================================================  ========================================================

A fire is delivered even while the schedule is disabled (``--schedule-speed`` or ``aws events disable-rule``
pause the clock's fires, not a fire asked for by name). The command line is ``ecrcache local fire FUNCTION
[EVENT]`` (:func:`fire_main`): ``FUNCTION`` is the logical id (``CredentialHealthFunction``) or its short log
name (``credentialhealth``); ``EVENT`` may be left out when the function has one schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

import requests

from devstack.local.gateway import CONTROL_PREFIX
from devstack.local.invoke import FunctionError

if TYPE_CHECKING:
    from devstack.local.runner import EventRunner

__all__ = ["CONTROL_PREFIX", "Controls", "fire_main"]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

Answer = tuple[int, dict[str, Any]]


class Controls:
    """The ``/_ecrcache/`` endpoints of the API port; :attr:`runner` is set once the event runner runs."""

    def __init__(self, runner: EventRunner | None = None) -> None:
        self.runner = runner

    def handle(self, method: str, path: str) -> Answer:
        """The answer to ``method path`` (a path under :data:`CONTROL_PREFIX`, percent-encoding kept)."""
        parts = [unquote(part) for part in path[len(CONTROL_PREFIX) :].strip("/").split("/")]
        if parts[0] != "schedules":
            return 404, {"message": f"no control {method} {path}; try GET {CONTROL_PREFIX}schedules"}
        if self.runner is None:
            return 503, {"message": "the event runner is not running yet"}
        if len(parts) == 1 and method in {"GET", "HEAD"}:
            return 200, {"schedules": self.schedules()}
        if len(parts) == 4 and parts[3] == "fire" and method == "POST":
            return self.fire(parts[1], parts[2])
        return 404, {
            "message": f"no control {method} {path}: GET {CONTROL_PREFIX}schedules or "
            f"POST {CONTROL_PREFIX}schedules/{{Function}}/{{Event}}/fire"
        }

    def schedules(self) -> list[dict[str, Any]]:
        assert self.runner is not None
        return [
            {
                "function": s.function,
                "event": s.event,
                "expression": s.expression,
                "rule": s.rule_name,
                "enabled": s.enabled,
            }
            for s in self.runner.schedules()
        ]

    def fire(self, function: str, event: str) -> Answer:
        """Deliver the schedule's event now (blocking until delivered or given up, as the runner's fire does)."""
        assert self.runner is not None
        answer: dict[str, Any] = {"function": function, "event": event}
        try:
            result = self.runner.fire(function, event)
        except KeyError:
            return 404, {**answer, "message": f"{function} has no Schedule event {event!r}"}
        except ValueError as exc:
            return 400, {**answer, "message": str(exc)}
        except Exception as exc:  # every attempt failed: the runner logged it and dead-lettered it if configured
            return 502, {**answer, "status": "failed", "error": _error(exc)}
        return 200, {**answer, "status": "ok", "result": result}


def _error(exc: Exception) -> dict[str, str]:
    if isinstance(exc, FunctionError):
        return {"type": exc.error_type, "message": exc.message}
    return {"type": type(exc).__name__, "message": str(exc)}


# ---- ecrcache local fire ----------------------------------------------------------------------------------


def _fire_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecrcache local fire",
        description="Deliver a function's Schedule event now on the running local stack (the event EventBridge "
        "would send), and print what the function returned. Exit 0 when it succeeded, 1 otherwise.",
    )
    parser.add_argument("function", help="the function's logical id (CredentialHealthFunction) or short name")
    parser.add_argument("event", nargs="?", help="its Schedule event (may be left out if it has one)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--api-port", type=int, default=None, help="the local stack's API port (default 3000)")
    where.add_argument("--ready-file", type=Path, default=None, help="the local stack's --ready-file")
    where.add_argument(
        "--endpoint", default=None, help="the local stack's API (default: $ECRCACHE_ENDPOINT, else :3000)"
    )
    parser.add_argument("--timeout", type=float, default=960.0, help="seconds to wait (default %(default)s)")
    return parser


def control_base(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """``http://host:port`` of the local stack's API port, from the flags, ``ECRCACHE_ENDPOINT`` or the default."""
    if args.api_port is not None:
        return f"http://127.0.0.1:{args.api_port}"
    endpoint = args.endpoint
    if args.ready_file is not None:
        endpoint = json.loads(args.ready_file.read_text(encoding="utf-8"))["api"]
    endpoint = endpoint or environ.get("ECRCACHE_ENDPOINT") or "http://127.0.0.1:3000"
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _pick(schedules: Sequence[Mapping[str, Any]], function: str, event: str | None) -> Mapping[str, Any] | str:
    """The one schedule ``function``/``event`` names, or why there is none."""
    wanted = function.lower().removesuffix("function")
    mine = [s for s in schedules if str(s["function"]).lower().removesuffix("function") == wanted]
    if not mine:
        known = sorted({str(s["function"]) for s in schedules})
        return f"no function {function!r} with a Schedule event; functions with one: {', '.join(known) or 'none'}"
    if event is not None:
        found = [s for s in mine if str(s["event"]).lower() == event.lower()]
        if found:
            return found[0]
    elif len(mine) == 1:
        return mine[0]
    names = ", ".join(f"{s['event']} ({s['expression']})" for s in mine)
    what = f"no Schedule event {event!r}" if event is not None else "more than one Schedule event: name one"
    return f"{mine[0]['function']} has {what}; its schedules: {names}"


def fire_main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """``ecrcache local fire FUNCTION [EVENT]``: the exit status."""
    args = _fire_parser().parse_args(argv)
    base = control_base(args, os.environ if environ is None else environ)
    try:
        listing = requests.get(f"{base}{CONTROL_PREFIX}schedules", timeout=30)
    except requests.RequestException as exc:
        print(f"ecrcache local fire: no local stack at {base} ({type(exc).__name__}); is make local running?",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    if listing.status_code != 200:
        print(f"ecrcache local fire: {base}: {listing.status_code} {listing.text.strip()}", file=sys.stderr)
        return EXIT_FAILED
    picked = _pick(listing.json()["schedules"], args.function, args.event)
    if isinstance(picked, str):
        print(f"ecrcache local fire: {picked}", file=sys.stderr)
        return EXIT_USAGE
    print(f"delivering {picked['function']} <- {picked['event']} ({picked['expression']}) now ...", file=sys.stderr)
    answer = requests.post(
        f"{base}{CONTROL_PREFIX}schedules/{picked['function']}/{picked['event']}/fire", timeout=args.timeout
    )
    body = answer.json()
    print(json.dumps(body.get("result") if answer.status_code == 200 else body, indent=2, default=str))
    return 0 if answer.status_code == 200 else EXIT_FAILED

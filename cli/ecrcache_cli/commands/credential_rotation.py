"""``ecrcache credentials rotate NAME --token-stdin [--wait]`` and ``ecrcache credentials status NAME``.

``rotate`` posts the new token (read from stdin only, as ``credentials set`` reads it) to
``POST /v1/credentials/{name}/rotations``: the API stages it and starts Secrets Manager's rotation, whose function
tests it against the upstream, makes it current and validates every rule using it (rolling back if ECR refuses
it). ``--wait`` polls ``GET /v1/credentials/{name}/rotations/{id}``: exit 0 only when the rotation is
``promoted``; 6 (not converged) when it was refused, rolled back or failed -- the previous token stayed or became
current again, the message says which -- or did not end within ``--timeout``.

``status`` shows the credential's health (when the API reports it) and its latest rotations, step by step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import click

from ecrcache_cli.app import App, output_option, pass_app, wait_options
from ecrcache_cli.client import Api, enc
from ecrcache_cli.commands.credentials import read_token
from ecrcache_cli.output import ExitCode, OutputFormat, Printer

__all__ = ["credentials_rotate_cmd", "credentials_status_cmd"]

STEPS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")
IN_PROGRESS: Final = "in_progress"
STATUS_ROTATIONS: Final = 5
"""Rotations ``credentials status`` shows (the newest)."""


def _step_rows(rotation: Mapping[str, Any]) -> list[list[Any]]:
    steps = rotation.get("steps") or {}
    rows = []
    for name in STEPS:
        step = steps.get(name)
        if isinstance(step, Mapping):
            rows.append([name, step.get("status"), step.get("at"), step.get("message")])
    return rows


def _show_rotation(printer: Printer, rotation: Mapping[str, Any]) -> None:
    printer.key_values(
        [
            ("rotation", rotation.get("rotation_id")),
            ("state", rotation.get("state")),
            ("requested by", rotation.get("requested_by")),
            ("started", rotation.get("started_at")),
            ("promoted", rotation.get("promoted_at")),
            ("finished", rotation.get("finished_at")),
            ("message", rotation.get("message")),
        ]
    )
    rows = _step_rows(rotation)
    if rows:
        printer.out("")
        printer.table(["step", "status", "at", "message"], rows, title="Steps:")


def _wait(
    api: Api, printer: Printer, app: App, path: str, rotation: Mapping[str, Any], *, timeout: float, interval: float
) -> tuple[int, Mapping[str, Any]]:
    """Poll the rotation until it ends (0 promoted, 6 otherwise) or time is up (6); the last answer read."""
    deadline = app.clock() + timeout
    rotation_id = rotation.get("rotation_id")
    with printer.progress(f"rotation {rotation_id}: {rotation.get('state')}") as progress:
        while rotation.get("state") == IN_PROGRESS:
            remaining = deadline - app.clock()
            if remaining <= 0:
                printer.err(
                    f"error: rotation {rotation_id} did not end within {timeout:g} s (last state: in_progress); "
                    "follow it: ecrcache credentials status"
                )
                return ExitCode.NOT_CONVERGED, rotation
            app.sleep(min(interval, remaining))
            rotation = api.get(path).json() or {}
            done = [name for name, step in (rotation.get("steps") or {}).items() if isinstance(step, Mapping)]
            progress.update(f"rotation {rotation_id}: {rotation.get('state')} ({', '.join(done) or 'no step yet'})")
    return (ExitCode.OK if rotation.get("state") == "promoted" else ExitCode.NOT_CONVERGED), rotation


@click.command("rotate")
@click.argument("name")
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the new token from stdin (one trailing newline is dropped); prompts without echo on a terminal.",
)
@click.option("--username", metavar="USER", help="A new user name to go with the token (default: the credential's).")
@wait_options(
    "the rotation", wait=False, interval=2.0, wait_help="Wait for the rotation to end (exit 6 if not promoted)."
)
@output_option()
@pass_app
def credentials_rotate_cmd(
    app: App,
    *,
    name: str,
    token_stdin: bool,
    username: str | None,
    wait: bool,
    timeout: float,
    interval: float,
    fmt: OutputFormat,
) -> int:
    """Rotate credential NAME's token: tested upstream before it is current, rolled back if ECR refuses it."""
    if not token_stdin:
        raise click.UsageError("the new token is read from stdin only: pass --token-stdin (and pipe the token in)")
    printer = Printer(fmt)
    api = app.api()
    api.get(f"credentials/{enc(name)}")  # unknown credential: exit 4 before the token is asked for
    body: dict[str, Any] = {"token": read_token(), **({"username": username} if username else {})}
    rotation = api.post(f"credentials/{enc(name)}/rotations", body).json() or {}
    path = f"credentials/{enc(name)}/rotations/{enc(str(rotation.get('rotation_id')))}"
    code: int = ExitCode.OK
    if wait:
        printer.note(f"Rotation started: {rotation.get('rotation_id')}")
        code, rotation = _wait(api, printer, app, path, rotation, timeout=timeout, interval=interval)
    if printer.body(rotation):
        pass
    elif wait:
        _show_rotation(printer, rotation)
    else:
        printer.out(
            f"Rotation {rotation.get('rotation_id')} of credential {name!r}: {rotation.get('state')} "
            f"(follow it: ecrcache credentials status {name})"
        )
    if wait and rotation.get("state") not in {"promoted", IN_PROGRESS}:
        printer.err(f"error: rotation {rotation.get('rotation_id')} {rotation.get('state')}: {rotation.get('message')}")
    return code


def _rotation_rows(rotations: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for rotation in rotations:
        steps = rotation.get("steps") or {}
        statuses = [(steps.get(name) or {}).get("status") for name in STEPS]
        rows.append(
            [
                rotation.get("rotation_id"),
                rotation.get("state"),
                rotation.get("started_at"),
                *statuses,
                rotation.get("requested_by"),
                rotation.get("message"),
            ]
        )
    return rows


@click.command("status")
@click.argument("name")
@output_option()
@pass_app
def credentials_status_cmd(app: App, *, name: str, fmt: OutputFormat) -> int:
    """Credential NAME's health (when checked) and its latest rotations, step by step."""
    printer = Printer(fmt)
    api = app.api()
    credential = api.get(f"credentials/{enc(name)}").json() or {}
    query = {"limit": STATUS_ROTATIONS}
    rotations = (api.get(f"credentials/{enc(name)}/rotations", query=query).json() or {}).get("items") or []
    health = credential.get("health")
    if printer.body({"credential": name, "health": health, "rotations": rotations}):
        return ExitCode.OK
    if isinstance(health, Mapping):
        printer.key_values(
            [
                ("credential", name),
                ("health", health.get("state")),
                ("checked", health.get("checked_at")),
                ("message", health.get("message")),
                ("evidence", health.get("evidence")),
                ("expires", health.get("expires_at")),
                ("days to expiry", health.get("days_to_expiry")),
            ]
        )
    else:
        printer.key_values([("credential", name), ("health", "not reported by this API")])
    printer.out("")
    if not rotations:
        printer.out("No rotations yet (start one: ecrcache credentials rotate NAME --token-stdin).")
        return ExitCode.OK
    printer.table(
        ["rotation", "state", "started", *STEPS, "requested by", "message"],
        _rotation_rows(rotations),
        title="Rotations (newest first):",
    )
    return ExitCode.OK

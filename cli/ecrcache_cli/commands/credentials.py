"""``ecrcache credentials set``: create or update an upstream credential; the token only ever comes from stdin."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Mapping
from typing import Any, Final

import click

from ecrcache.models.credential import RotationStrategy
from ecrcache.models.upstream import CREDENTIAL_KINDS, UPSTREAMS
from ecrcache_cli.app import App, output_option, pass_app
from ecrcache_cli.client import enc
from ecrcache_cli.output import CliError, ExitCode, OutputFormat, Printer

__all__ = ["UPSTREAM_KINDS", "credentials_group", "credentials_set_cmd", "read_token"]

UPSTREAM_KINDS: Final = tuple(kind.value for kind in UPSTREAMS if kind in CREDENTIAL_KINDS)
"""The upstream kinds a credential can be for (the API's own list: the others need no credential)."""
ROTATION_STRATEGIES: Final = tuple(strategy.value for strategy in RotationStrategy)


@click.group("credentials")
def credentials_group() -> None:
    """Upstream registry credentials (the token is write-only and read from stdin)."""


@credentials_group.command("set")
@click.argument("name")
@click.option("--username", metavar="USER", help="User name (required for a new credential).")
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the token from stdin (one trailing newline is dropped); prompts without echo on a terminal.",
)
@click.option(
    "--upstream",
    type=click.Choice(UPSTREAM_KINDS),
    metavar="KIND",
    help="Upstream kind (required for a new credential): " + ", ".join(UPSTREAM_KINDS) + ".",
)
@click.option("--expires-at", metavar="DATE", help="When the token expires (YYYY-MM-DD), or `none`.")
@click.option("--description", metavar="TEXT", help="Free text (at most 256 characters).")
@click.option("--rotation-strategy", type=click.Choice(ROTATION_STRATEGIES), help="How the token is renewed.")
@click.option("--rotation-schedule", metavar="EXPR", help="Rotation schedule, e.g. 'rate(30 days)' (dockerhub-pat).")
@click.option("--minting-secret-arn", metavar="ARN", help="dockerhub-pat: the secret allowed to mint tokens.")
@output_option()
@pass_app
def credentials_set_cmd(
    app: App,
    *,
    name: str,
    username: str | None,
    token_stdin: bool,
    upstream: str | None,
    expires_at: str | None,
    description: str | None,
    rotation_strategy: str | None,
    rotation_schedule: str | None,
    minting_secret_arn: str | None,
    fmt: OutputFormat,
) -> int:
    """Create or update credential NAME; the token comes from stdin, never from the command line."""
    printer = Printer(fmt)
    # The endpoint, and whether the credential exists, before the token: no prompt for a command that fails anyway.
    api = app.api()
    path = f"credentials/{enc(name)}"
    current = api.get(path, allow=(404,))
    if current.status == 404:
        missing = [flag for flag, value in (("--upstream", upstream), ("--username", username)) if not value]
        if missing:
            raise click.UsageError(f"credential {name!r} does not exist yet: {' and '.join(missing)} required")
        spec: dict[str, Any] = {}
        headers = {"If-None-Match": "*"}
    else:
        spec = dict((current.json() or {}).get("spec") or {})
        headers = {"If-Match": current.etag} if current.etag else {}
    token = read_token() if token_stdin else None
    updates = {"upstream_kind": upstream, "username": username, "description": description}
    spec.update({k: v for k, v in updates.items() if v is not None})
    if expires_at is not None:
        spec["expires_at"] = None if expires_at.strip().lower() in {"", "none"} else expires_at.strip()
    rotation = _rotation(
        spec.get("rotation") or {},
        strategy=rotation_strategy,
        schedule=rotation_schedule,
        minting_secret_arn=minting_secret_arn,
    )
    if rotation:
        spec["rotation"] = rotation
    body = {**spec, **({"token": token} if token is not None else {})}
    response = api.put(path, body, headers=headers)
    result = response.json() or {}
    if not printer.body(result):
        verb = "Created" if response.status == 201 else "Updated"
        token_note = "; token stored" if token is not None else ""
        printer.out(
            f'{verb} credential "{name}" (version {result.get("version")}, secret {result.get("secret_name")})'
            f"{token_note}."
        )
    return ExitCode.OK


def _rotation(
    current: Mapping[str, Any], *, strategy: str | None, schedule: str | None, minting_secret_arn: str | None
) -> dict[str, Any]:
    """The rotation settings: the current ones with the flags given (``manual`` drops the schedule and secret)."""
    rotation = dict(current)
    if strategy is not None:
        rotation["strategy"] = strategy
        if strategy == "manual":
            rotation.pop("schedule", None)
            rotation.pop("minting_secret_arn", None)
    if schedule is not None:
        rotation["schedule"] = schedule
    if minting_secret_arn is not None:
        rotation["minting_secret_arn"] = minting_secret_arn
    return rotation


def read_token() -> str:
    """The token from stdin: prompted without echo on a terminal, else read whole (one trailing newline dropped)."""
    stdin = sys.stdin
    if stdin.isatty():
        token = getpass.getpass("Token: ", stream=sys.stderr)
    else:
        token = stdin.read()
        token = token.removesuffix("\n").removesuffix("\r") if token.endswith("\n") else token
    if not token:
        raise CliError("the token read from stdin is empty", ExitCode.INVALID_INPUT)
    return token

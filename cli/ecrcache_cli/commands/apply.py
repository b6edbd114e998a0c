"""``ecrcache apply``: validate desired-state files locally, PUT them, and wait for convergence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ecrcache_cli.app import App, output_option, pass_app, wait_options
from ecrcache_cli.client import Api, Response
from ecrcache_cli.commands.plan import print_blocked
from ecrcache_cli.documents import load
from ecrcache_cli.output import ApiError, CliError, ExitCode, Interrupted, OutputFormat, Printer
from ecrcache_cli.wait import Waiter

__all__ = ["apply_cmd", "print_changes"]


@click.command("apply")
@click.option(
    "-f",
    "--file",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="A YAML/JSON desired-state file, or a directory of them (repeatable).",
)
@click.option("--prune", is_flag=True, help="Delete rules, credentials and warm sets the files omit.")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Allow --prune with files that define nothing (deletes everything); the API requires it too.",
)
@click.option(
    "--if-revision",
    type=click.IntRange(min=0),
    metavar="N",
    help="Apply only if the desired state is still at revision N (the ETag `export` shows); else exit 5.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would change; write nothing.")
@wait_options("convergence")
@output_option()
@pass_app
def apply_cmd(
    app: App,
    *,
    paths: tuple[Path, ...],
    prune: bool,
    allow_empty: bool,
    if_revision: int | None,
    dry_run: bool,
    wait: bool,
    timeout: float,
    interval: float,
    fmt: OutputFormat,
) -> int:
    """Apply desired-state files (validated locally first; nothing is sent if any is invalid).

    Ctrl-C says what is known: nothing sent, the request in flight (it may have been applied: check
    with ``export`` / ``history``), or applied and no longer waited for (exit 130 in each case).
    """
    printer = Printer(fmt)
    try:
        files = load(paths)
        if prune and files.is_empty and not allow_empty:
            raise CliError(
                "refusing --prune: the files define no rules, credentials or warm sets, so it would delete "
                "everything (pass --allow-empty if that is what you want)",
                ExitCode.INVALID_INPUT,
            )
        for warning in files.warnings:
            printer.warn(warning)
        api = app.api()
    except KeyboardInterrupt:
        raise Interrupted("interrupted before the apply request was sent: nothing was applied") from None
    since = datetime.now(UTC)
    result = _send(api, files.body, dry_run=dry_run, prune=prune, allow_empty=allow_empty, if_revision=if_revision)
    changes: list[dict[str, Any]] = result.get("changes") or []
    _print_result(printer, result, changes)
    if dry_run or not wait:
        return ExitCode.OK
    rules = {prefix.removesuffix("/"): tuple(spec.get("regions") or ()) for prefix, spec in _rules(files.body)}
    changed = {str(c["name"]).removesuffix("/") for c in changes if c.get("kind") == "rule"}
    waiter = Waiter(api, printer, sleep=app.sleep, clock=app.clock, interval=interval)
    revision = result.get("revision")
    try:
        return waiter.convergence(
            rules,
            changed=changed,
            since=since,
            timeout=timeout,
            revision=revision if isinstance(revision, int) and not isinstance(revision, bool) else None,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted while waiting for convergence: the apply was committed (desired state at revision "
            f"{revision}); the reconciler carries on without the wait",
            ["follow it with: ecrcache status (conditions per rule) or ecrcache plan (what is left to do)"],
        ) from None


def _print_result(printer: Printer, result: Mapping[str, Any], changes: Sequence[Mapping[str, Any]]) -> None:
    """What the apply changed (or would), the rules it leaves Blocked, and the server's warnings."""
    if not printer.body(result):
        print_changes(printer, changes, dry_run=bool(result.get("dry_run")), revision=result.get("revision"))
        if blocked := [b for b in result.get("blocked") or [] if isinstance(b, Mapping)]:
            printer.out("")
            print_blocked(printer, blocked)
    for warning in result.get("warnings") or []:
        printer.warn(str(warning))


def _send(
    api: Api, body: Mapping[str, Any], *, dry_run: bool, prune: bool, allow_empty: bool, if_revision: int | None
) -> dict[str, Any]:
    """The apply's one write, and what Ctrl-C while it is in flight means: it may have been applied."""
    try:
        result = _put(api, body, dry_run=dry_run, prune=prune, allow_empty=allow_empty, if_revision=if_revision).json()
    except KeyboardInterrupt:
        if dry_run:
            raise Interrupted("interrupted during a dry run: nothing was written") from None
        raise Interrupted(
            "interrupted while the apply request was in flight: the server may have applied it "
            "(an apply writes all of its changes or none)",
            [
                "check with: ecrcache export (the desired state and its revision), "
                "or ecrcache history --limit 10 (the latest changes, who and when)"
            ],
        ) from None
    return result if isinstance(result, dict) else {}


def _put(
    api: Api, body: Mapping[str, Any], *, dry_run: bool, prune: bool, allow_empty: bool, if_revision: int | None
) -> Response:
    """``PUT /v1/desired-state``; with ``--if-revision``, a 412 means someone else applied since (exit 5).

    ``--allow-empty`` is passed on (``allowEmpty=true``) with ``--prune``: the API refuses a prune of a
    document that declares nothing without it, as the CLI does before sending anything.
    """
    headers = {"If-Match": f'"{if_revision}"'} if if_revision is not None else {}
    try:
        return api.put(
            "desired-state",
            body,
            query={"dryRun": dry_run or None, "prune": prune or None, "allowEmpty": (prune and allow_empty) or None},
            headers=headers,
        )
    except ApiError as exc:
        if exc.status == 412 and if_revision is not None:
            raise CliError(
                f"the desired state is no longer at revision {if_revision} (someone else applied since); "
                "nothing was applied: export again, review, and re-apply",
                ExitCode.CONFLICT,
                exc.details,
            ) from None
        raise


def _rules(body: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(p, s if isinstance(s, Mapping) else {}) for p, s in (body.get("rules") or {}).items()]


def print_changes(printer: Printer, changes: Sequence[Mapping[str, Any]], *, dry_run: bool, revision: Any) -> None:
    if dry_run:
        printer.out("Dry run: nothing was written.")
    if not changes:
        printer.out("No changes.")
        return
    rows = []
    for change in changes:
        # A create changes every field; listing them all says nothing.
        fields = "" if change.get("action") == "create" else ", ".join(change.get("fields") or [])
        if change.get("secret_changed"):
            fields = f"{fields} (new token)" if fields else "(new token)"
        rows.append([change.get("kind"), change.get("name"), change.get("action"), fields])
    printer.table(["kind", "name", "action", "fields"], rows)
    counts: dict[str, int] = {}
    for change in changes:
        counts[str(change.get("action"))] = counts.get(str(change.get("action")), 0) + 1
    summary = ", ".join(f"{n} to {a}" if dry_run else f"{n} {a}d" for a, n in counts.items())
    noun = "change" if len(changes) == 1 else "changes"
    printer.out(
        f"{len(changes)} {noun}: {summary}." + ("" if dry_run else f" Desired state is at revision {revision}.")
    )

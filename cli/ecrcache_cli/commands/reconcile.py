"""``ecrcache reconcile``: queue a reconcile of every rule, and wait for the run to finish."""

from __future__ import annotations

import click

from ecrcache_cli.app import App, output_option, pass_app, wait_options
from ecrcache_cli.commands.status import run_shards, run_summary
from ecrcache_cli.output import ExitCode, OutputFormat, Printer
from ecrcache_cli.wait import Waiter

__all__ = ["reconcile_cmd"]


@click.command("reconcile")
@click.option("--deep", is_flag=True, help="Read every cached repository's settings (slower).")
@wait_options("the run to finish")
@output_option()
@pass_app
def reconcile_cmd(app: App, *, deep: bool, wait: bool, timeout: float, interval: float, fmt: OutputFormat) -> int:
    """Queue a reconcile of every rule now (and wait for the run)."""
    printer = Printer(fmt)
    api = app.api()
    accepted = api.post("reconcile", {"deep": True} if deep else None).json() or {}
    run_id = str(accepted.get("run_id"))
    if not wait:
        if not printer.body(accepted):
            printer.out(f"Reconcile queued: run {run_id}")
        return ExitCode.OK
    printer.note(f"Reconcile queued: run {run_id}")
    waiter = Waiter(api, printer, sleep=app.sleep, clock=app.clock, interval=interval)
    code, run = waiter.run(run_id, timeout=timeout)
    if run is None:
        return code
    if not printer.body(run):
        printer.key_values(
            [
                ("run", run.get("run_id")),
                ("status", run.get("status")),
                ("trigger", run.get("trigger")),
                ("scope", run.get("scope")),
                ("started", run.get("started_at")),
                ("finished", run.get("finished_at")),
                ("summary", run_summary(run.get("summary") or {})),
                *([("shards", shards)] if (shards := run_shards(run.get("shards"))) else []),
            ]
        )
    if run.get("status") in {"failed", "partial"}:
        printer.err(f"error: run {run_id} {run.get('status')}")
        for error in run.get("errors") or []:
            printer.err(f"  - {error}")
    return code

"""``ecrcache warm NAME [--wait]``: warm a warm set now, and (with ``--wait``) follow its run to the end.

``POST /v1/warm-sets/{name}/runs`` queues the run; ``--wait`` polls ``GET /v1/warm-sets/{name}/runs/{run_id}``
(that run, even when another run of the set starts meanwhile) until it finishes, with a progress bar on
stderr (images with an outcome / images in the run). Exit
codes follow the other commands (``reconcile --wait``): 0 when the run succeeded (every image warmed or
fresh), 6 when it ended partial or failed, or did not end within ``--timeout``; 4 for an unknown set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import click

from ecrcache_cli.app import App, output_option, pass_app, wait_options
from ecrcache_cli.client import Api, enc
from ecrcache_cli.output import ExitCode, OutputFormat, Printer
from ecrcache_cli.wait import RUN_DONE

__all__ = ["progress_bar", "run_counts", "warm_cmd"]

BAR_WIDTH: Final = 24
OUTCOMES: Final = ("warmed", "fresh", "skipped", "failed")


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[████████░░░░░░░░]  4/12``: a text bar that works on a spinner line and on plain stderr alike."""
    filled = width if total <= 0 else min(width, done * width // total)
    return f"[{'█' * filled}{'░' * (width - filled)}] {done}/{total}"


def run_counts(run: Mapping[str, Any]) -> str:
    """``3 warmed, 1 fresh, 0 skipped, 1 failed``."""
    counts = run.get("counts") or {}
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in OUTCOMES)


def _describe(run_id: str, run: Mapping[str, Any] | None) -> str:
    if run is None or (run.get("status") == "queued" and not run.get("total")):
        return f"run {run_id}: queued (waiting for the planner)"
    counts = run.get("counts") or {}
    done = sum(int(v) for v in counts.values())
    return f"run {run_id}: {run.get('status')} {progress_bar(done, int(run.get('total') or 0))} ({run_counts(run)})"


def _wait(
    api: Api, printer: Printer, app: App, name: str, run_id: str, *, timeout: float, interval: float
) -> tuple[int, Mapping[str, Any]]:
    """Poll the run until it ends (0 / 6) or time is up (6); the last answer read."""
    deadline = app.clock() + timeout
    body: Mapping[str, Any] = {}
    with printer.progress(_describe(run_id, None)) as progress:
        while True:
            body = api.get(f"warm-sets/{enc(name)}/runs/{enc(run_id)}").json() or {}
            run = body.get("run") if isinstance(body.get("run"), Mapping) else None
            if run is not None and run.get("status") in RUN_DONE:
                return (ExitCode.OK if run.get("status") == "succeeded" else ExitCode.NOT_CONVERGED), body
            progress.update(_describe(run_id, run))
            remaining = deadline - app.clock()
            if remaining <= 0:
                state = run.get("status") if run is not None else "queued"
                printer.err(f"error: warm run {run_id} did not finish within {timeout:g} s (last status: {state})")
                return ExitCode.NOT_CONVERGED, body
            app.sleep(min(interval, remaining))


def _image_rows(images: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for image in images:
        reference = image.get("tag") or f"@{str(image.get('digest') or '')[:19]}"
        rows.append(
            [
                f"{image.get('repository')}:{reference}"
                if image.get("tag")
                else f"{image.get('repository')}{reference}",
                image.get("region"),
                image.get("outcome"),
                image.get("failure_class"),
                ",".join(image.get("platforms_verified") or []) or None,
                image.get("upstream_requests"),
                image.get("message"),
            ]
        )
    return rows


def _show(printer: Printer, body: Mapping[str, Any]) -> None:
    run = body.get("run") or {}
    printer.key_values(
        [
            ("run", run.get("run_id")),
            ("status", run.get("status")),
            ("images", f"{run.get('total')} ({run_counts(run)})"),
            ("upstream requests", f"{run.get('upstream_requests')} of a budget of {run.get('budget')}"),
            ("stopped upstreams", ", ".join(run.get("stopped_upstreams") or []) or None),
            ("finished", run.get("finished_at")),
            ("message", run.get("message")),
        ]
    )
    images = body.get("images") or []
    if images:
        printer.out("")
        title = "Images:"
        if body.get("images_truncated"):
            title = f"Images ({len(images)} of {body.get('images_total')}: failed and skipped first):"
        printer.table(
            ["image", "region", "outcome", "class", "platforms", "requests", "message"],
            _image_rows(images),
            title=title,
        )


@click.command("warm")
@click.argument("name")
@wait_options(
    "the run", wait=False, timeout=900.0, interval=2.0, wait_help="Wait for the run to finish (exit 6 if not)."
)
@output_option()
@pass_app
def warm_cmd(app: App, *, name: str, wait: bool, timeout: float, interval: float, fmt: OutputFormat) -> int:
    """Warm a warm set now: pull its images through the cache within its budget (and wait for the run)."""
    printer = Printer(fmt)
    api = app.api()
    accepted = api.post(f"warm-sets/{enc(name)}/runs").json() or {}
    run_id = str(accepted.get("run_id"))
    if not wait:
        if not printer.body(accepted):
            printer.out(f"Warm run queued: {run_id} (follow it: ecrcache warm {name} --wait, or ecrcache status)")
        return ExitCode.OK
    printer.note(f"Warm run queued: {run_id}")
    code, body = _wait(api, printer, app, name, run_id, timeout=timeout, interval=interval)
    if not printer.body(body):
        _show(printer, body)
    run = body.get("run") or {}
    if run.get("status") in {"failed", "partial"}:
        printer.err(f"error: warm run {run_id} {run.get('status')}: {run_counts(run)}")
    return code

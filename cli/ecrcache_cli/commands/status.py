"""``ecrcache status`` (conditions per rule and Region, recent runs, warm sets' last runs) and ``ecrcache history``
(who changed what)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import click

from ecrcache_cli.app import App, output_option, pass_app
from ecrcache_cli.commands.kinds import KINDS
from ecrcache_cli.output import ExitCode, OutputFormat, Printer
from ecrcache_cli.wait import conditions_by_type

__all__ = ["history_cmd", "run_shards", "run_summary", "status_cmd"]


@click.command("status")
@click.option("--runs", type=click.IntRange(0, 50), default=10, show_default=True, help="How many recent runs.")
@output_option()
@pass_app
def status_cmd(app: App, *, runs: int, fmt: OutputFormat) -> int:
    """Conditions of every rule per Region, the recent reconcile runs, and every warm set's last run."""
    printer = Printer(fmt)
    body = app.api().get("status", query={"runs": runs}).json() or {}
    if printer.body(body):
        return ExitCode.OK
    records = body.get("rules") or []
    if records:
        printer.table(
            [
                "rule",
                "region",
                "synced",
                "terminal",
                "recoverable",
                "upstream",
                "validation",
                "reason",
                "message",
                "reconciled",
                "repos",
            ],
            [_status_row(r) for r in records],
        )
    else:
        printer.out("No rule status yet (nothing has been reconciled).")
    recent = body.get("runs") or []
    if recent:
        printer.out("")
        rows = [
            [
                r.get("run_id"),
                r.get("trigger"),
                r.get("status"),
                r.get("scope"),
                r.get("started_at"),
                r.get("finished_at"),
                run_summary(r.get("summary") or {}),
                run_shards(r.get("shards")),
                len(r.get("errors") or []),
            ]
            for r in recent
        ]
        printer.table(
            ["run", "trigger", "status", "scope", "started", "finished", "summary", "shards", "errors"],
            rows,
            title="Recent runs:",
        )
    _forwarders(printer, body.get("forwarders") or [])
    warm_sets = body.get("warm_sets") or []
    if warm_sets:
        printer.out("")
        printer.table(
            ["warm set", "last run", "trigger", "warmed", "fresh", "skipped", "failed", "finished"],
            [_warm_row(w) for w in warm_sets],
            title="Warm sets:",
        )
    return ExitCode.OK


def _forwarders(printer: Printer, records: list[Mapping[str, Any]]) -> None:
    """The event forwarders of the other Regions rules name: whether each forwards, and why not."""
    if not records:
        return
    rows = []
    for record in records:
        status = record.get("status") or {}
        synced = conditions_by_type(record).get("Synced") or {}
        rows.append(
            [
                record.get("region"),
                status.get("name"),
                synced.get("status"),
                synced.get("reason"),
                synced.get("message"),
                status.get("last_reconciled_at"),
            ]
        )
    printer.out("")
    printer.table(
        ["region", "forwarder", "synced", "reason", "message", "reconciled"],
        rows,
        title="Event forwarders (ECR events of other Regions to the stack's):",
    )


def _warm_row(entry: Mapping[str, Any]) -> list[Any]:
    """A warm set and its last run: status, trigger, counts by outcome, when it finished."""
    run = entry.get("run") or {}
    counts = run.get("counts") or {}
    outcomes = [counts.get(name, 0) if run else None for name in ("warmed", "fresh", "skipped", "failed")]
    return [entry.get("warm_set"), run.get("status") or "never", run.get("trigger"), *outcomes, run.get("finished_at")]


def _status_row(record: Mapping[str, Any]) -> list[Any]:
    status = record.get("status") or {}
    conditions = conditions_by_type(record)

    def flag(kind: str) -> Any:
        condition = conditions.get(kind)
        return None if condition is None else bool(condition.get("status"))

    return [
        record.get("prefix"),
        record.get("region"),
        flag("Synced"),
        flag("Terminal"),
        flag("Recoverable"),
        _upstream(conditions.get("UpstreamHealthy")),
        _validation(status.get("validation") or {}),
        *_shown(conditions),
        status.get("last_reconciled_at"),
        status.get("cached_repositories"),
    ]


_FAILING: Final = (("Terminal", True), ("Recoverable", True), ("Synced", False), ("UpstreamHealthy", False))
"""The conditions whose reason the table shows first, with the status that means trouble."""


def _shown(conditions: Mapping[str, Mapping[str, Any]]) -> tuple[Any, Any]:
    """The reason and message to show: a failure first (terminal, recoverable, not synced, upstream), else Synced."""
    for kind, failing in _FAILING:
        condition = conditions.get(kind)
        if condition is not None and condition.get("status") is failing:
            return condition.get("reason"), condition.get("message")
    synced = conditions.get("Synced") or {}
    return synced.get("reason"), synced.get("message")


def _upstream(condition: Mapping[str, Any] | None) -> str | None:
    """``ok``, the reason it is not (``RateLimited``, ...), or nothing: no pull or validation seen yet."""
    if condition is None:
        return None
    return "ok" if condition.get("status") is True else str(condition.get("reason") or "failing")


def _validation(validation: Mapping[str, Any]) -> str | None:
    """The last ValidatePullThroughCacheRule answer: ``valid``, ``invalid``, ``unknown`` (ECR could not
    be asked), or nothing (never validated: rules without a credential are not)."""
    if not validation.get("checked_at"):
        return None
    valid = validation.get("is_valid")
    return "unknown" if valid is None else ("valid" if valid else "invalid")


def run_summary(summary: Mapping[str, Any]) -> str:
    """A run's summary on one line: ``created=1 updated=2``."""
    return " ".join(f"{k}={v}" for k, v in summary.items())


def run_shards(shards: Mapping[str, Any] | None) -> str | None:
    """A fanned-out deep run's shards on one line (``198/200 done, 1 failed, 1 retrying``); nothing for a run that
    did not fan out (README "Deep resync at scale")."""
    if not shards:
        return None
    text = f"{shards.get('done', 0)}/{shards.get('total', 0)} done"
    for name in ("failed", "retrying"):
        if shards.get(name):
            text += f", {shards[name]} {name}"
    return text


@click.command("history")
@click.option(
    "--kind",
    type=click.Choice(["rule", "credential", "warm-set", "warm_set"], case_sensitive=False),
    help="Only this kind of resource.",
)
@click.option("--name", metavar="NAME", help="Only this resource (needs --kind).")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True, help="Entries per page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow next_token to the oldest entry.")
@output_option()
@pass_app
def history_cmd(app: App, *, kind: str | None, name: str | None, limit: int, all_pages: bool, fmt: OutputFormat) -> int:
    """Every change to the desired state, newest first: who, when, what."""
    if name is not None and kind is None:
        raise click.UsageError("--name needs --kind")
    printer = Printer(fmt)
    kind = KINDS[kind.lower()] if kind else None
    if kind == "rule" and name is not None:
        name = name.removesuffix("/")  # `team/quay/` and `team/quay` are the same rule
    query: dict[str, Any] = {"kind": kind, "name": name, "limit": limit}
    items: list[Any] = []
    token: str | None = None
    while True:
        page = app.api().get("history", query={**query, "next_token": token}).json() or {}
        items.extend(page.get("items") or [])
        token = page.get("next_token")
        if not token or not all_pages:
            break
    if printer.body({"items": items, "next_token": token}):
        return ExitCode.OK
    if not items:
        printer.out("No history.")
        return ExitCode.OK
    rows = [
        [i.get("at"), i.get("kind"), i.get("name"), i.get("action"), i.get("version"), i.get("revision"), i.get("by")]
        for i in items
    ]
    printer.table(["at", "kind", "name", "action", "version", "revision", "by"], rows)
    if token:
        printer.out("(older entries: use --all)")
    return ExitCode.OK

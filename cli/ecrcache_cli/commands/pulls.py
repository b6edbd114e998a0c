"""``ecrcache pulls``: the most pulled images of a rule (or of every rule), with a sparkline per day."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import click

from ecrcache_cli.app import App, output_option, pass_app
from ecrcache_cli.output import ExitCode, OutputFormat, Printer

__all__ = ["NO_PULLS", "SPARKS", "image_name", "pulls_cmd", "sparkline"]

SPARKS: Final = "▁▂▃▄▅▆▇█"
NO_PULLS: Final = SPARKS[0]
"""A day without pulls is the baseline ``▁``; a day with any pull is at least ``▂``, so the two never look
alike, and the column stays one solid line (a blank would read as the table's padding)."""
LEVELS: Final = SPARKS[1:]
SHORT_DIGEST: Final = 12


def sparkline(daily: Sequence[int]) -> str:
    """One character per day, oldest first: ``▁`` for no pulls, else ``▂``..``█`` relative to the busiest day."""
    peak = max(daily, default=0)
    return "".join(
        NO_PULLS if count <= 0 else LEVELS[min(len(LEVELS), math.ceil(count * len(LEVELS) / peak)) - 1]
        for count in daily
    )


def image_name(item: Mapping[str, Any]) -> str:
    """``repository:tag``, or ``repository@sha256:<first 12 hex>`` for a pull by digest (``-o json`` has it whole)."""
    repository = str(item.get("repository"))
    if item.get("tag") is not None:
        return f"{repository}:{item['tag']}"
    algorithm, _, hex_digest = str(item.get("digest")).partition(":")
    return f"{repository}@{algorithm}:{hex_digest[:SHORT_DIGEST]}"


@click.command("pulls")
@click.option("--rule", metavar="PREFIX", help="Only this rule's images (its ECR prefix, or ROOT).")
@click.option("--top", type=click.IntRange(1, 100), default=20, show_default=True, help="How many images.")
@click.option(
    "--window",
    type=click.IntRange(1, 90),
    default=14,
    show_default=True,
    metavar="DAYS",
    help="Days counted, ending today (UTC).",
)
@output_option()
@pass_app
def pulls_cmd(app: App, *, rule: str | None, top: int, window: int, fmt: OutputFormat) -> int:
    """The most pulled images through the cache, with their pulls per day (the warmer's own pulls not counted)."""
    printer = Printer(fmt)
    body = app.api().get("pulls", query={"rule": rule, "top": top, "window_days": window}).json() or {}
    if printer.body(body):
        return ExitCode.OK
    items = body.get("items") or []
    if not items:
        scope = f" of rule {body.get('rule') or rule}" if rule else ""
        printer.out(f"No pulls{scope} in the last {window} days.")
        return ExitCode.OK
    rows = [
        [
            image_name(item),
            item.get("pulls"),
            sparkline(item.get("daily") or []),
            item.get("last_pulled_at"),
            item.get("platforms"),
            item.get("principals"),
        ]
        for item in items
    ]
    printer.table(["image", "pulls", f"last {window} days", "last pulled", "platforms", "principals"], rows)
    return ExitCode.OK

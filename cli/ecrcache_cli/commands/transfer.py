"""``ecrcache export`` (the whole desired state, re-appliable) and ``ecrcache import`` (adopt rules found in ECR)."""

from __future__ import annotations

from pathlib import Path

import click

from ecrcache_cli.app import App, output_option, pass_app
from ecrcache_cli.output import CliError, ExitCode, OutputFormat, Printer, to_json

__all__ = ["export_cmd", "import_cmd"]


@click.command("export")
@output_option("yaml", "json", default="yaml")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write to this file instead of stdout.",
)
@pass_app
def export_cmd(app: App, *, fmt: OutputFormat, path: Path | None) -> int:
    """Export the whole desired state (re-appliable with `apply -f`; tokens are never included)."""
    printer = Printer(fmt)
    api = app.api()
    if fmt == "yaml":
        response = api.get("desired-state", query={"format": "yaml"})
        text = response.text
    else:
        response = api.get("desired-state")
        text = to_json(response.json())
    if not text.endswith("\n"):
        text += "\n"
    if path is None:
        printer.write(text)
        return ExitCode.OK
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", ExitCode.FAILURE) from None
    revision = (response.etag or "").strip('"') or "?"
    printer.err(f"Wrote {path} (revision {revision}).")
    return ExitCode.OK


@click.command("import")
@click.option("--region", "regions", multiple=True, metavar="REGION", help="A Region to read (repeatable).")
@click.option("--dry-run", is_flag=True, help="Only report what would be imported.")
@output_option()
@pass_app
def import_cmd(app: App, *, regions: tuple[str, ...], dry_run: bool, fmt: OutputFormat) -> int:
    """Adopt pull-through cache rules already in ECR into the desired state (deletion_policy: retain)."""
    printer = Printer(fmt)
    body = {"regions": list(regions)} if regions else None
    result = app.api().post("import", body, query={"dryRun": dry_run or None}).json() or {}
    if printer.body(result):
        return ExitCode.OK
    rules = result.get("rules") or []
    if rules:
        rows = [[r.get("prefix"), r.get("region"), r.get("imported"), r.get("reason")] for r in rules]
        printer.table(["prefix", "region", "imported", "reason"], rows)
    else:
        printer.out("No pull-through cache rules found in ECR.")
    imported = sum(1 for r in rules if r.get("imported"))
    if result.get("dry_run"):
        printer.out(f"Dry run: nothing was imported ({imported} would be).")
    elif result.get("revision") is not None:
        noun = "rule" if imported == 1 else "rules"
        printer.out(f"Imported {imported} {noun}; desired state is at revision {result['revision']}.")
    return ExitCode.OK

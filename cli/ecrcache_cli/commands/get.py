"""``ecrcache get`` and ``ecrcache delete``: one rule, credential or warm set, or the list of a kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import click

from ecrcache_cli.app import App, output_option, pass_app
from ecrcache_cli.client import enc
from ecrcache_cli.commands.kinds import COLLECTIONS, KIND_CHOICE, KINDS, NAME_FIELD
from ecrcache_cli.output import ExitCode, OutputFormat, Printer, to_yaml

__all__ = ["LIST_VIEWS", "delete_cmd", "get_cmd", "print_item"]


@click.command("get")
@click.argument("kind", type=KIND_CHOICE, metavar="rules|credentials|warm-sets")
@click.argument("name", required=False)
@output_option()
@pass_app
def get_cmd(app: App, *, kind: str, name: str | None, fmt: OutputFormat) -> int:
    """List rules, credentials or warm sets, or show one by NAME (a rule's NAME is its prefix)."""
    printer = Printer(fmt)
    kind = KINDS[kind.lower()]
    collection = COLLECTIONS[kind]
    if name is None:
        body = app.api().get(collection).json() or {}
        if not printer.body(body):
            items = body.get("items") or []
            if not items:
                printer.out(f"No {collection.replace('-', ' ')}.")
            else:
                columns, rows = LIST_VIEWS[kind](items)
                printer.table(columns, rows)
        return ExitCode.OK
    response = app.api().get(f"{collection}/{enc(name)}")
    item = response.json() or {}
    if not printer.body(item):
        print_item(printer, kind, item, response.etag)
    return ExitCode.OK


def _rule_rows(items: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for item in items:
        spec = item.get("spec") or {}
        rows.append(
            [
                item.get("prefix"),
                spec.get("upstream_kind"),
                spec.get("upstream_url"),
                spec.get("credential"),
                spec.get("regions") or "(stack)",
                bool(spec.get("lifecycle")),
                spec.get("deletion_policy"),
                item.get("version"),
                item.get("updated_at"),
            ]
        )
    columns = ["prefix", "upstream", "upstream url", "credential", "regions", "lifecycle", "on delete", "version"]
    return [*columns, "updated"], rows


def _credential_rows(items: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for item in items:
        spec = item.get("spec") or {}
        rows.append(
            [
                item.get("name"),
                spec.get("upstream_kind"),
                spec.get("username"),
                spec.get("expires_at"),
                (spec.get("rotation") or {}).get("strategy"),
                item.get("referenced_by") or [],
                item.get("version"),
                item.get("updated_at"),
            ]
        )
    return ["name", "upstream", "username", "expires", "rotation", "used by", "version", "updated"], rows


def _warm_set_rows(items: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for item in items:
        spec = item.get("spec") or {}
        rows.append(
            [
                item.get("name"),
                spec.get("rule"),
                len(spec.get("images") or []),
                len(spec.get("tag_patterns") or []),
                spec.get("platforms") or [],
                spec.get("schedule"),
                item.get("version"),
                item.get("updated_at"),
            ]
        )
    return ["name", "rule", "images", "tag patterns", "platforms", "schedule", "version", "updated"], rows


LIST_VIEWS: Final[dict[str, Callable[[Sequence[Mapping[str, Any]]], tuple[list[str], list[list[Any]]]]]] = {
    "rule": _rule_rows,
    "credential": _credential_rows,
    "warm-set": _warm_set_rows,
}


def print_item(printer: Printer, kind: str, item: Mapping[str, Any], etag: str | None) -> None:
    pairs: list[tuple[str, Any]] = [(NAME_FIELD[kind], item.get(NAME_FIELD[kind])), ("kind", kind)]
    pairs += [("version", item.get("version")), ("etag", etag)]
    if kind == "credential":
        pairs += [
            ("secret", item.get("secret_name")),
            ("secret arn", item.get("secret_arn")),
            ("used by", item.get("referenced_by") or []),
        ]
    pairs += [("created", item.get("created_at")), ("updated", item.get("updated_at"))]
    pairs += [("updated by", item.get("updated_by"))]
    printer.key_values(pairs)
    printer.out("spec:")
    for line in to_yaml(item.get("spec") or {}).rstrip("\n").splitlines():
        printer.out(f"  {line}")
    if kind == "rule":
        printer.out("(-o yaml shows the rendered ECR creation template and lifecycle policy)")


@click.command("delete")
@click.argument("kind", type=KIND_CHOICE, metavar="rule|credential|warm-set")
@click.argument("name")
@click.option("--if-match", metavar="ETAG", help="Delete only this version (the ETag `get` shows).")
@pass_app
def delete_cmd(app: App, *, kind: str, name: str, if_match: str | None) -> int:
    """Delete one rule, credential or warm set (conditional on the version read)."""
    printer = Printer()
    kind = KINDS[kind.lower()]
    path = f"{COLLECTIONS[kind]}/{enc(name)}"
    api = app.api()
    etag = if_match
    if etag is None:
        etag = api.get(path).etag
    headers = {"If-Match": etag} if etag else {}
    api.delete(path, headers=headers)
    version = (etag or "").strip().strip('"').removeprefix('W/"') or "?"
    printer.out(f'Deleted {kind} "{name}" (version {version}).')
    return ExitCode.OK

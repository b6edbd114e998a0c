"""``ecrcache``: the command-line tool for the ecrcache REST API.

Synopsis (global options go before the command)::

    ecrcache [--endpoint URL] [--stack NAME] [--profile NAME] [--region REGION] [--caller-arn ARN] COMMAND ...
    ecrcache apply -f PATH [-f PATH ...] [--prune [--allow-empty]] [--if-revision N] [--dry-run]
                   [--wait/--no-wait] [--timeout SECONDS] [-o FORMAT]
    ecrcache plan [--deep] [--region REGION] [--detailed-exitcode] [-o FORMAT]
    ecrcache get rules|credentials|warm-sets [NAME] [-o FORMAT]
    ecrcache delete rule|credential|warm-set NAME [--if-match ETAG]
    ecrcache status [--runs N] [-o FORMAT]
    ecrcache history [--kind rule|credential|warm-set] [--name NAME] [--limit N] [--all] [-o FORMAT]
    ecrcache reconcile [--deep] [--wait/--no-wait] [--timeout SECONDS] [-o FORMAT]
    ecrcache export [-o yaml|json] [--file PATH]
    ecrcache import [--region REGION ...] [--dry-run] [-o FORMAT]
    ecrcache credentials set NAME [--username USER] [--token-stdin] [--upstream KIND] [--expires-at DATE|none]
                                  [--description TEXT] [--rotation-strategy manual|dockerhub-pat]
                                  [--rotation-schedule EXPR] [--minting-secret-arn ARN] [-o FORMAT]
    ecrcache local ...                      (the local embedded stack; needs the `local` extra)

``FORMAT`` is ``table`` (default), ``json`` or ``yaml``. Exit codes: see :mod:`ecrcache_cli.output`
(0 ok, 1 failure, 2 plan has changes, 3 invalid input, 4 not found, 5 conflict, 6 not converged,
7 unreachable/unauthenticated, 64 usage).
"""

from __future__ import annotations

import getpass
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from ecrcache import __version__
from ecrcache_cli.client import Api, EndpointOptions, enc, open_client
from ecrcache_cli.documents import load
from ecrcache_cli.output import (
    EXIT_CODES_HELP,
    FORMATS,
    ApiError,
    CliError,
    ExitCode,
    OutputFormat,
    Printer,
    silence,
    to_json,
    to_yaml,
)

__all__ = ["cli", "main", "run"]

KINDS: Final = {
    "rule": "rule",
    "rules": "rule",
    "credential": "credential",
    "credentials": "credential",
    "warm-set": "warm-set",
    "warm-sets": "warm-set",
    "warm_set": "warm-set",
    "warm_sets": "warm-set",
}
COLLECTIONS: Final = {"rule": "rules", "credential": "credentials", "warm-set": "warm-sets"}
NAME_FIELD: Final = {"rule": "prefix", "credential": "name", "warm-set": "name"}
RUN_DONE: Final = frozenset({"succeeded", "failed", "partial"})
UPSTREAM_KINDS: Final = (
    "docker-hub",
    "github-container-registry",
    "quay",
    "gitlab-container-registry",
    "azure-container-registry",
    "ecr",
    "ecr-public",
    "k8s",
    "chainguard",
)
LOCAL_EXTRA_MESSAGE: Final = (
    "ecrcache local needs the local extra (the development world in devstack/): "
    "from an ecrcache checkout, pip install -e ./devstack -e '.[cli,local]' (or make setup)"
)


@dataclass
class App:
    """What every command shares: the global options, the client (made on first use) and the clock."""

    client_factory: Callable[[EndpointOptions], Api] = open_client
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    options: EndpointOptions = field(default_factory=EndpointOptions)
    _client: Api | None = None

    def api(self) -> Api:
        if self._client is None:
            self._client = self.client_factory(self.options)
        return self._client


pass_app = click.make_pass_decorator(App, ensure=True)


def output_option(*choices: OutputFormat, default: OutputFormat = "table") -> Callable[..., Any]:
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(choices or FORMATS),
        default=default,
        show_default=True,
        help="Output format.",
    )


def wait_options(noun: str) -> Callable[..., Any]:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = click.option("--interval", type=click.FloatRange(min=0.0), default=1.0, hidden=True)(function)
        function = click.option(
            "--timeout",
            type=click.FloatRange(min=0.0),
            default=300.0,
            show_default=True,
            metavar="SECONDS",
            help=f"How long --wait waits for {noun}.",
        )(function)
        return click.option(
            "--wait/--no-wait", default=True, show_default=True, help=f"Wait for {noun} (exit 6 if it does not come)."
        )(function)

    return decorate


# --------------------------------------------------------------------------------------------------
# the group


@click.group(
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option("--endpoint", metavar="URL", help="API URL (the stack's ApiUrl output); else $ECRCACHE_ENDPOINT.")
@click.option("--stack", metavar="NAME", help="Read the API URL from this CloudFormation stack's ApiUrl output.")
@click.option("--profile", metavar="NAME", help="AWS profile for signing and for --stack.")
@click.option("--region", metavar="REGION", help="AWS Region for --stack and signing (default: the URL's).")
@click.option(
    "--caller-arn", metavar="ARN", help="Act as this IAM ARN (X-Ecrcache-Caller-Arn; honoured by the local stack only)."
)
@click.version_option(__version__, "--version", prog_name="ecrcache", message="%(prog)s %(version)s")
@pass_app
def cli(
    app: App,
    *,
    endpoint: str | None,
    stack: str | None,
    profile: str | None,
    region: str | None,
    caller_arn: str | None,
) -> None:
    """Manage ecrcache: Amazon ECR pull-through cache rules, credentials and warm sets as desired state.

    Requests go to the API of an ecrcache stack, signed with your AWS credentials (SigV4).
    """
    app.options = EndpointOptions(endpoint=endpoint, stack=stack, profile=profile, region=region, caller_arn=caller_arn)


# --------------------------------------------------------------------------------------------------
# apply


@cli.command("apply")
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
@click.option("--allow-empty", is_flag=True, help="Allow --prune with files that define nothing (deletes everything).")
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
    """Apply desired-state files (validated locally first; nothing is sent if any is invalid)."""
    printer = Printer(fmt)
    files = load(paths)
    if prune and files.is_empty and not allow_empty:
        raise CliError(
            "refusing --prune: the files define no rules, credentials or warm sets, so it would delete everything "
            "(pass --allow-empty if that is what you want)",
            ExitCode.INVALID_INPUT,
        )
    for warning in files.warnings:
        printer.warn(warning)
    api = app.api()
    since = datetime.now(UTC)
    headers = {"If-Match": f'"{if_revision}"'} if if_revision is not None else {}
    try:
        response = api.put(
            "desired-state",
            files.body,
            query={"dryRun": dry_run or None, "prune": prune or None},
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
    result = response.json() or {}
    changes: list[dict[str, Any]] = result.get("changes") or []
    if not printer.body(result):
        print_changes(printer, changes, dry_run=bool(result.get("dry_run")), revision=result.get("revision"))
    if dry_run or not wait:
        return ExitCode.OK
    rules = {prefix.removesuffix("/"): tuple(spec.get("regions") or ()) for prefix, spec in _rules(files.body)}
    changed = {str(c["name"]).removesuffix("/") for c in changes if c.get("kind") == "rule"}
    waiter = Waiter(api, printer, sleep=app.sleep, clock=app.clock, interval=interval)
    revision = result.get("revision")
    return waiter.convergence(
        rules,
        changed=changed,
        since=since,
        timeout=timeout,
        revision=revision if isinstance(revision, int) and not isinstance(revision, bool) else None,
    )


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


# --------------------------------------------------------------------------------------------------
# waiting


@dataclass(frozen=True)
class Convergence:
    pending_actions: int
    rules_total: int
    rules_synced: int
    terminal: tuple[str, ...] = ()
    not_synced: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.pending_actions == 0 and self.rules_synced == self.rules_total

    def describe(self) -> str:
        noun = "action" if self.pending_actions == 1 else "actions"
        return (
            f"waiting for convergence: {self.pending_actions} {noun} pending, "
            f"{self.rules_synced}/{self.rules_total} rules synced"
        )


def _conditions(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = record.get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _describes(record: Mapping[str, Any], revision: int | None) -> bool | None:
    """Whether a status record reflects desired-state ``revision`` (``None``: the server does not say)."""
    observed = (record.get("status") or {}).get("observed_revision")
    if revision is None or not isinstance(observed, int) or isinstance(observed, bool):
        return None
    return observed >= revision


def _wanted_regions(regions: Sequence[str], current: Mapping[str, bool | None]) -> list[str]:
    """The Regions whose records must be synced: the rule's ``regions``, else those its records name.

    Without ``regions``, the record of a Region the rule no longer uses is never updated again: when
    the records say which revision they describe, only those describing this apply count.
    """
    if regions:
        return list(regions)
    if any(describes is not None for describes in current.values()):
        return [region for region, describes in current.items() if describes]
    return list(current)


def convergence(
    plan: Mapping[str, Any],
    status: Mapping[str, Any],
    rules: Mapping[str, tuple[str, ...]],
    *,
    changed: set[str],
    since: datetime,
    revision: int | None = None,
) -> Convergence:
    """Where convergence stands, from ``GET /v1/plan`` and ``GET /v1/status`` (pure; the waiter polls).

    A rule counts as synced when it has a status record with ``Synced`` true in each of its Regions
    (or, without ``regions``, in every Region whose record describes this apply's ``revision``, at
    least one, since the record of a Region the rule no longer uses is never updated again; with no
    revision known, in every Region it has a record for). A ``Terminal`` condition stops
    the wait. A record only counts once it describes this apply: its ``observed_revision`` is at least
    the ``revision`` the apply answered. A server that does not report ``observed_revision`` is judged
    by time instead: a ``Terminal`` condition recorded before this apply changed the rule is ignored
    (the reconciler has not looked at the new spec yet).
    """
    actions = [a for a in plan.get("actions") or [] if isinstance(a, Mapping)]
    records: dict[str, list[Mapping[str, Any]]] = {}
    for record in status.get("rules") or []:
        if isinstance(record, Mapping):
            records.setdefault(str(record.get("prefix")), []).append(record)
    synced = 0
    terminal: list[str] = []
    not_synced: list[str] = []
    for prefix, regions in sorted(rules.items()):
        found = records.get(prefix, [])
        current = {str(r.get("region")): _describes(r, revision) for r in found}
        by_region = {str(r.get("region")): _conditions(r) for r in found}
        wanted = _wanted_regions(regions, current)
        ok = bool(wanted) and all(
            current.get(r) is not False and bool((by_region.get(r) or {}).get("Synced", {}).get("status"))
            for r in wanted
        )
        synced += ok
        for record in found:
            condition = _conditions(record).get("Terminal")
            if not condition or condition.get("status") is not True:
                continue
            describes = _describes(record, revision)
            if describes is False:
                continue
            reconciled = _parse_time((record.get("status") or {}).get("last_reconciled_at"))
            if describes is None and prefix in changed and (reconciled is None or reconciled < since):
                continue
            text = f"{prefix} ({record.get('region')}): {condition.get('reason')}: {condition.get('message') or ''}"
            terminal.append(text.rstrip(": "))
        if not ok:
            reason = "not reconciled yet"
            for region in wanted:
                condition = (by_region.get(region) or {}).get("Synced")
                if condition and not condition.get("status"):
                    reason = f"{condition.get('reason')}: {condition.get('message') or ''}".rstrip(": ")
                    break
            not_synced.append(f"{prefix}: {reason}")
    described = tuple(f"{a.get('kind')} {a.get('target')} ({a.get('region')}): {a.get('reason')}" for a in actions)
    return Convergence(
        pending_actions=len(actions),
        rules_total=len(rules),
        rules_synced=synced,
        terminal=tuple(terminal),
        not_synced=tuple(not_synced),
        actions=described,
    )


@dataclass
class Waiter:
    api: Api
    printer: Printer
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    interval: float = 1.0

    def convergence(
        self,
        rules: Mapping[str, tuple[str, ...]],
        *,
        changed: set[str],
        since: datetime,
        timeout: float,
        revision: int | None = None,
    ) -> int:
        """Poll the plan and the status until converged (0), a rule is Terminal or time is up (6)."""
        deadline = self.clock() + timeout
        with self.printer.progress("waiting for convergence") as progress:
            while True:
                plan = self.api.get("plan").json() or {}
                status = self.api.get("status", query={"runs": 0}).json() or {}
                state = convergence(plan, status, rules, changed=changed, since=since, revision=revision)
                if state.terminal:
                    self.printer.err("error: a rule cannot converge (Terminal):")
                    for line in state.terminal:
                        self.printer.err(f"  - {line}")
                    return ExitCode.NOT_CONVERGED
                if state.done:
                    break
                progress.update(state.describe())
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self._timed_out(state, timeout)
                    return ExitCode.NOT_CONVERGED
                self.sleep(min(self.interval, remaining))
        self.printer.note(f"Converged: no actions pending, {state.rules_synced}/{state.rules_total} rules synced.")
        return ExitCode.OK

    def _timed_out(self, state: Convergence, timeout: float) -> None:
        self.printer.err(f"error: not converged after {timeout:g} s ({state.describe().split(': ', 1)[1]})")
        for line in state.actions[:10]:
            self.printer.err(f"  - pending: {line}")
        if len(state.actions) > 10:
            self.printer.err(f"  - … and {len(state.actions) - 10} more actions")
        for line in state.not_synced:
            self.printer.err(f"  - not synced: {line}")

    def run(self, run_id: str, *, timeout: float) -> tuple[int, Mapping[str, Any] | None]:
        """Poll ``GET /v1/runs/{id}`` until the run ends (404 means not recorded yet: keep polling)."""
        deadline = self.clock() + timeout
        run: Mapping[str, Any] | None = None
        with self.printer.progress(f"waiting for run {run_id}: queued") as progress:
            while True:
                response = self.api.get(f"runs/{enc(run_id)}", allow=(404,))
                if response.status != 404:
                    run = response.json() or {}
                    if run.get("status") in RUN_DONE:
                        break
                state = (run or {}).get("status") or "queued"
                progress.update(f"waiting for run {run_id}: {state}")
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self.printer.err(f"error: run {run_id} did not finish within {timeout:g} s (last status: {state})")
                    return ExitCode.NOT_CONVERGED, run
                self.sleep(min(self.interval, remaining))
        return (ExitCode.OK if run.get("status") == "succeeded" else ExitCode.NOT_CONVERGED), run


# --------------------------------------------------------------------------------------------------
# plan


@cli.command("plan")
@click.option("--deep", is_flag=True, help="Read every cached repository's settings (slower).")
@click.option("--region", "plan_region", metavar="REGION", help="Only this Region.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there is nothing to do, 2 when actions pend.")
@output_option()
@pass_app
def plan_cmd(app: App, *, deep: bool, plan_region: str | None, detailed_exitcode: bool, fmt: OutputFormat) -> int:
    """Show what the reconciler would do now (ECR against the desired state)."""
    printer = Printer(fmt)
    plan = app.api().get("plan", query={"deep": deep or None, "region": plan_region}).json() or {}
    actions = plan.get("actions") or []
    if not printer.body(plan):
        print_plan(printer, plan)
    return ExitCode.CHANGES_PENDING if detailed_exitcode and actions else ExitCode.OK


def print_plan(printer: Printer, plan: Mapping[str, Any]) -> None:
    actions = plan.get("actions") or []
    unmanaged = plan.get("unmanaged") or []
    blocked = plan.get("blocked") or []
    if actions:
        rows = [
            [a.get("kind"), a.get("region"), a.get("target"), a.get("rule_prefix"), a.get("reason")] for a in actions
        ]
        printer.table(["action", "region", "target", "rule", "reason"], rows)
        counts: dict[str, int] = {}
        for action in actions:
            counts[str(action.get("kind"))] = counts.get(str(action.get("kind")), 0) + 1
        noun = "action" if len(actions) == 1 else "actions"
        printer.out(f"Plan: {len(actions)} {noun} ({', '.join(f'{k} {n}' for k, n in counts.items())}).")
    else:
        printer.out("No changes. ECR matches the desired state.")
    if unmanaged:
        printer.out("")
        rows = [[u.get("kind"), u.get("region"), u.get("name"), u.get("reason")] for u in unmanaged]
        printer.table(["kind", "region", "name", "reason"], rows, title="Unmanaged (reported, never changed):")
    if blocked:
        printer.out("")
        rows = [[b.get("region"), b.get("prefix"), b.get("reason")] for b in blocked]
        printer.table(["region", "rule", "reason"], rows, title="Blocked (not planned):")


# --------------------------------------------------------------------------------------------------
# get / delete

KIND_CHOICE = click.Choice(sorted(KINDS), case_sensitive=False)


@cli.command("get")
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


@cli.command("delete")
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


# --------------------------------------------------------------------------------------------------
# status / history


@cli.command("status")
@click.option("--runs", type=click.IntRange(0, 50), default=10, show_default=True, help="How many recent runs.")
@output_option()
@pass_app
def status_cmd(app: App, *, runs: int, fmt: OutputFormat) -> int:
    """Conditions of every rule per Region, and the recent reconcile runs."""
    printer = Printer(fmt)
    body = app.api().get("status", query={"runs": runs}).json() or {}
    if printer.body(body):
        return ExitCode.OK
    records = body.get("rules") or []
    if records:
        printer.table(
            ["rule", "region", "synced", "terminal", "recoverable", "reason", "message", "reconciled", "repos"],
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
                _summary(r.get("summary") or {}),
                len(r.get("errors") or []),
            ]
            for r in recent
        ]
        printer.table(
            ["run", "trigger", "status", "scope", "started", "finished", "summary", "errors"],
            rows,
            title="Recent runs:",
        )
    return ExitCode.OK


def _status_row(record: Mapping[str, Any]) -> list[Any]:
    status = record.get("status") or {}
    conditions = _conditions(record)

    def flag(kind: str) -> Any:
        condition = conditions.get(kind)
        return None if condition is None else bool(condition.get("status"))

    shown = next(
        (conditions[k] for k in ("Terminal", "Recoverable") if conditions.get(k, {}).get("status") is True),
        conditions.get("Synced") or {},
    )
    return [
        record.get("prefix"),
        record.get("region"),
        flag("Synced"),
        flag("Terminal"),
        flag("Recoverable"),
        shown.get("reason"),
        shown.get("message"),
        status.get("last_reconciled_at"),
        status.get("cached_repositories"),
    ]


def _summary(summary: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in summary.items())


@cli.command("history")
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


# --------------------------------------------------------------------------------------------------
# reconcile / import / export


@cli.command("reconcile")
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
                ("summary", _summary(run.get("summary") or {})),
            ]
        )
    if run.get("status") in {"failed", "partial"}:
        printer.err(f"error: run {run_id} {run.get('status')}")
        for error in run.get("errors") or []:
            printer.err(f"  - {error}")
    return code


@cli.command("export")
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


@cli.command("import")
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


# --------------------------------------------------------------------------------------------------
# credentials


@cli.group("credentials")
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
@click.option("--rotation-strategy", type=click.Choice(["manual", "dockerhub-pat"]), help="How the token is renewed.")
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
    rotation = dict(spec.get("rotation") or {})
    if rotation_strategy is not None:
        rotation["strategy"] = rotation_strategy
        if rotation_strategy == "manual":
            rotation.pop("schedule", None)
            rotation.pop("minting_secret_arn", None)
    if rotation_schedule is not None:
        rotation["schedule"] = rotation_schedule
    if minting_secret_arn is not None:
        rotation["minting_secret_arn"] = minting_secret_arn
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


# --------------------------------------------------------------------------------------------------
# local


@cli.command(
    "local",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def local_cmd(args: tuple[str, ...]) -> int:
    """Run the local embedded stack (moto + the API + the event runner); `ecrcache local --help` for more."""
    try:
        supervisor = importlib.import_module("devstack.local.supervisor")
    except ImportError as exc:
        click.echo(LOCAL_EXTRA_MESSAGE, err=True)
        click.echo(f"({exc})", err=True)
        return ExitCode.FAILURE
    entry: Callable[[list[str]], int | None] = supervisor.main
    return int(entry(list(args)) or 0)


# --------------------------------------------------------------------------------------------------
# entry points


def run(
    argv: Sequence[str] | None = None,
    *,
    client_factory: Callable[[EndpointOptions], Api] = open_client,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run one command; every failure becomes a message on stderr and a documented exit code."""
    app = App(client_factory=client_factory, sleep=sleep, clock=clock)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="ecrcache", standalone_mode=False, obj=app)
    except Exception as exc:
        return _report(exc)
    return int(result or 0)


def _report(exc: Exception) -> int:
    """The message and exit code of a failure (click's usage errors become 64)."""
    if isinstance(exc, CliError):
        Printer().error(exc)
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        exc.show()
        is_usage = isinstance(exc, click.UsageError) or exc.exit_code == 2  # click exits 2 on usage
        return ExitCode.USAGE if is_usage else exc.exit_code
    if isinstance(exc, click.Abort):  # Ctrl-C
        click.echo("Aborted.", err=True)
        return 130
    if isinstance(exc, BrokenPipeError):  # a pipe the printer does not guard: the reader left; say nothing more
        silence(sys.stdout)
        return ExitCode.FAILURE
    if os.environ.get("ECRCACHE_DEBUG"):
        traceback.print_exception(exc)
    click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
    return ExitCode.FAILURE


def main(argv: list[str] | None = None) -> int:
    """The ``ecrcache`` console script."""
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())

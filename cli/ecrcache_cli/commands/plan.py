"""``ecrcache plan``: what the reconciler would do now, and what it leaves alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from ecrcache_cli.app import App, output_option, pass_app
from ecrcache_cli.output import ExitCode, OutputFormat, Printer

__all__ = [
    "BLOCKED_TITLE",
    "CREDENTIAL_RULES",
    "INCOMPLETE_WARNING",
    "REGISTRY_RULE",
    "WAITING_TITLE",
    "plan_cmd",
    "print_blocked",
    "print_plan",
]

BLOCKED_TITLE = "Blocked (not planned: nothing is changed in ECR for these rules until you act):"
WAITING_TITLE = "Waiting (planned once what they wait for is ready, e.g. a secret replica; nothing to do):"
REGISTRY_RULE = "(registry)"
"""Shown in the ``rule`` column for an action that belongs to no one rule (``rule_prefix`` ``""``: the
warm worker's pull-time update exclusion, kept for every rule of the Region)."""
CREDENTIAL_RULES = "(credential)"
"""Shown in the ``rule`` column for a secret replica action: it is for every rule of the Region that
uses the credential (the target is the secret's name)."""
INCOMPLETE_WARNING = (
    "the deep read stopped at the API's time budget: some repositories were compared on the fast path "
    "(see Notes); run it per Region (--region) for a full deep plan"
)
_REPLICA_KINDS = frozenset({"replicate_secret", "retry_replica", "remove_replica"})
EVENT_FORWARDER = "(event forwarder)"
"""Shown in the ``rule`` column for an event forwarder action: the Region's ECR events, for every rule there
(the target is the forwarding rule's name)."""
_FORWARDER_KINDS = frozenset({"create_forwarder", "update_forwarder", "delete_forwarder"})


def _rule_column(action: Mapping[str, Any]) -> str:
    if action.get("rule_prefix"):
        return str(action["rule_prefix"])
    if action.get("kind") in _FORWARDER_KINDS:
        return EVENT_FORWARDER
    return CREDENTIAL_RULES if action.get("kind") in _REPLICA_KINDS else REGISTRY_RULE


@click.command("plan")
@click.option("--deep", is_flag=True, help="Read every cached repository's settings (slower).")
@click.option("--region", "plan_region", metavar="REGION", help="Only this Region.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 2 when actions pend (1 when a --deep read was cut short and found none).",
)
@output_option()
@pass_app
def plan_cmd(app: App, *, deep: bool, plan_region: str | None, detailed_exitcode: bool, fmt: OutputFormat) -> int:
    """Show what the reconciler would do now (ECR against the desired state)."""
    printer = Printer(fmt)
    plan = app.api().get("plan", query={"deep": deep or None, "region": plan_region}).json() or {}
    actions = plan.get("actions") or []
    if not printer.body(plan):
        print_plan(printer, plan)
    complete = plan.get("complete", True) is not False
    if not complete:
        printer.warn(INCOMPLETE_WARNING)
    if detailed_exitcode and actions:
        return ExitCode.CHANGES_PENDING
    # An incomplete deep plan with no action cannot say "nothing to do": --detailed-exitcode never answers 0 then.
    return ExitCode.FAILURE if detailed_exitcode and not complete else ExitCode.OK


def print_plan(printer: Printer, plan: Mapping[str, Any]) -> None:
    actions = plan.get("actions") or []
    unmanaged = plan.get("unmanaged") or []
    blocked = plan.get("blocked") or []
    if actions:
        rows = [[a.get("kind"), a.get("region"), a.get("target"), _rule_column(a), a.get("reason")] for a in actions]
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
        print_blocked(printer, blocked)
    if notes := plan.get("notes") or []:
        printer.out("")
        rows = [[n.get("region"), n.get("prefix") or REGISTRY_RULE, n.get("message")] for n in notes]
        printer.table(["region", "rule", "note"], rows, title="Notes:")


def print_blocked(printer: Printer, blocked: Sequence[Mapping[str, Any]]) -> None:
    """The Blocked entries of a plan (or of an apply: the same entries, the same tables): those that wait
    for something under way (``pending``) apart from those that need someone to act."""
    waiting = [b for b in blocked if b.get("pending")]
    stuck = [b for b in blocked if not b.get("pending")]
    for title, entries in ((BLOCKED_TITLE, stuck), (WAITING_TITLE, waiting)):
        if not entries:
            continue
        if title is WAITING_TITLE and stuck:
            printer.out("")
        rows = [[b.get("region"), b.get("prefix"), b.get("reason")] for b in entries]
        printer.table(["region", "rule", "reason"], rows, title=title)

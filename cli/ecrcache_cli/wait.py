"""Waiting: ``apply --wait`` polls for convergence, ``reconcile --wait`` for the end of a run.

:func:`convergence` judges where convergence stands from one plan and one status answer (pure, table-tested);
the :class:`Waiter` polls the API with the :class:`~ecrcache_cli.app.App`'s clock and sleep, and says on
stderr why it gave up (exit 6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ecrcache_cli.client import Api, enc
from ecrcache_cli.output import ExitCode, Printer

__all__ = ["RUN_DONE", "Convergence", "Waiter", "conditions_by_type", "convergence"]

RUN_DONE: Final = frozenset({"succeeded", "failed", "partial"})


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


def conditions_by_type(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The conditions of a status record, by type (``Synced``, ``Terminal``, ``Recoverable``)."""
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


def _records_by_prefix(status: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    records: dict[str, list[Mapping[str, Any]]] = {}
    for record in status.get("rules") or []:
        if isinstance(record, Mapping):
            records.setdefault(str(record.get("prefix")), []).append(record)
    return records


def _all_synced(
    wanted: Sequence[str],
    current: Mapping[str, bool | None],
    by_region: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> bool:
    """Whether every wanted Region has a record that describes this apply with ``Synced`` true."""
    return bool(wanted) and all(
        current.get(r) is not False and bool((by_region.get(r) or {}).get("Synced", {}).get("status")) for r in wanted
    )


def _terminal_lines(
    prefix: str,
    found: Sequence[Mapping[str, Any]],
    *,
    revision: int | None,
    changed: bool,
    since: datetime,
) -> list[str]:
    """The ``Terminal`` conditions of a rule's records that describe this apply (``changed``: it changed the rule).

    Without ``observed_revision``, a ``Terminal`` recorded before ``since`` on a rule this apply changed is
    about the old spec: it is ignored.
    """
    lines: list[str] = []
    for record in found:
        condition = conditions_by_type(record).get("Terminal")
        if not condition or condition.get("status") is not True:
            continue
        describes = _describes(record, revision)
        if describes is False:
            continue
        reconciled = _parse_time((record.get("status") or {}).get("last_reconciled_at"))
        if describes is None and changed and (reconciled is None or reconciled < since):
            continue
        text = f"{prefix} ({record.get('region')}): {condition.get('reason')}: {condition.get('message') or ''}"
        lines.append(text.rstrip(": "))
    return lines


def _not_synced_reason(wanted: Sequence[str], by_region: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Why a rule is not synced: the first wanted Region's ``Synced`` false condition, else not reconciled yet."""
    for region in wanted:
        condition = (by_region.get(region) or {}).get("Synced")
        if condition and not condition.get("status"):
            return f"{condition.get('reason')}: {condition.get('message') or ''}".rstrip(": ")
    return "not reconciled yet"


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
    records = _records_by_prefix(status)
    synced = 0
    terminal: list[str] = []
    not_synced: list[str] = []
    for prefix, regions in sorted(rules.items()):
        found = records.get(prefix, [])
        current = {str(r.get("region")): _describes(r, revision) for r in found}
        by_region = {str(r.get("region")): conditions_by_type(r) for r in found}
        wanted = _wanted_regions(regions, current)
        ok = _all_synced(wanted, current, by_region)
        synced += ok
        terminal += _terminal_lines(prefix, found, revision=revision, changed=prefix in changed, since=since)
        if not ok:
            not_synced.append(f"{prefix}: {_not_synced_reason(wanted, by_region)}")
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

"""The deep resync's fan-out, as values: which repositories go to shards, what a shard reports, what its failures
mean for the rules' statuses, and the finished run (the I/O is :mod:`ecrcache.services.reconcile_shards`').

* :func:`managed_repositories` - the repositories of a Region whose per-repository work a deep read plans: each
  under the rule the planner gives it (the longest prefix among every rule known there: desired, retired and ECR's),
  kept when that rule is desired and could be planned (not blocked). :func:`shards_of` sorts and chunks them.
* :func:`repository_work` / :func:`without_repositories` - the repositories a fast run's plan changes in ECR, and the
  plan without them: when they are more than one shard, the run sends them to shard workers instead of applying them.
* :func:`shard_report` - what one shard's apply and verify came to (counts, failures per rule, a few errors).
* :func:`failed_by_rule` / :func:`repositories_failed_status` - a finished run's shard failures per Region and rule,
  and a rule's status saying so (``Synced`` false, reason ``RepositoriesFailed``).
* :func:`finished_run` - the coordinating run's record with its shards' counts, errors and final status.

Pure: no I/O, no clock (``now`` is passed in), no environment.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from ecrcache.engine.plan import ActionKind
from ecrcache.engine.status import APPLYING
from ecrcache.engine.upstream_reasons import owning_prefix
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.shards import ShardRecord, ShardReport, ShardState, ShardTask
from ecrcache.models.status import ConditionType, RunStatus

if TYPE_CHECKING:
    from datetime import datetime

    from ecrcache.engine.plan import Plan
    from ecrcache.engine.status import Failure
    from ecrcache.models.observed import DesiredRule, ObservedRegion
    from ecrcache.models.status import ReconcileRun, RuleStatus

__all__ = [
    "REPOSITORIES_FAILED",
    "failed_by_rule",
    "finished_run",
    "folded_status",
    "managed_repositories",
    "repositories_failed_status",
    "repository_work",
    "shard_report",
    "shards_of",
    "unaccounted",
    "without_repositories",
]

REPOSITORIES_FAILED: Final = "RepositoriesFailed"
"""The ``Synced`` reason of a rule some of whose repositories a deep resync's shards could not converge."""
_KINDS: Final = frozenset(kind.value for kind in ActionKind)


def managed_repositories(
    observed: ObservedRegion, plan: Plan, desired: Sequence[DesiredRule], retired: Sequence[DesiredRule]
) -> dict[str, str]:
    """Repository name -> the desired rule it is under, for the repositories a deep read of ``observed`` would plan
    (``plan``: the Region's plan, whose blocked rules plan nothing for their repositories)."""
    blocked = {b.prefix for b in plan.blocked if b.region == observed.region}
    wanted = {rule.prefix for rule in desired} - blocked - {ROOT_PREFIX}
    known = {rule.prefix for rule in (*desired, *retired)} | set(observed.rules)
    return {
        name: owner
        for name in sorted(observed.repositories)
        if (owner := owning_prefix(name, known)) is not None and owner in wanted
    }


def repository_work(plan: Plan) -> dict[str, str]:
    """Repository name -> its rule, for the repositories ``plan`` changes in ECR (an action that calls ECR on it):
    the per-repository work a fast run fans out when it is more than one shard."""
    return {
        action.target: action.rule_prefix
        for action in plan.actions
        if action.kind.scope == "repository" and action.kind.calls_aws
    }


def without_repositories(plan: Plan, names: Collection[str]) -> Plan:
    """``plan`` less every per-repository action on ``names`` (left to shard workers, which plan them again)."""
    if not names:
        return plan
    gone = set(names)
    kept = tuple(a for a in plan.actions if not (a.kind.scope == "repository" and a.target in gone))
    return plan.model_copy(update={"actions": kept})


def shards_of(
    managed: Mapping[str, str],
    *,
    run_id: str,
    region: str,
    size: int,
    revision: int | None,
    known: Collection[str] = (),
    deep: bool = True,
) -> list[tuple[ShardTask, ShardRecord]]:
    """``managed`` (name -> rule) sorted by name and cut into shards of ``size``: each shard's task (the message,
    with the ``known`` prefixes its repositories are under; ``deep`` false: a fast run's shards) and its record
    (``queued``, with how many of its repositories each rule has)."""
    names = sorted(managed)
    candidates = sorted(set(known) - {ROOT_PREFIX})
    shards: list[tuple[ShardTask, ShardRecord]] = []
    for index, start in enumerate(range(0, len(names), size)):
        chunk = tuple(names[start : start + size])
        rules = Counter(managed[name] for name in chunk)
        prefixes = tuple(p for p in candidates if any(name.startswith(p + "/") for name in chunk))
        task = ShardTask(
            run_id=run_id,
            region=region,
            index=index,
            repositories=chunk,
            revision=revision,
            prefixes=prefixes,
            deep=deep,
        )
        record = ShardRecord(run_id=run_id, region=region, index=index, state=ShardState.QUEUED, rules=dict(rules))
        shards.append((task, record))
    return shards


def shard_report(
    task: ShardTask,
    *,
    found: int,
    applied: Mapping[ActionKind, int],
    failures: Mapping[str, Sequence[Failure]],
    left: Plan,
) -> ShardReport:
    """What a shard's run came to: the actions applied by kind, the failed ones, what verify left, and per rule the
    repositories not brought to its settings (a failed action or one left after verify; counted once each)."""
    unsettled: dict[str, set[str]] = defaultdict(set)
    for prefix, failed in failures.items():
        unsettled[prefix].update(action.target for action, _ in failed)
    for action in left.actions:
        unsettled[action.rule_prefix].add(action.target)
    errors = [
        f"{action.kind} {action.target}: {result.code}: {result.message}"
        for _, failed in sorted(failures.items())
        for action, result in failed
    ]
    errors += [f"{action.kind} {action.target} still planned after apply: {action.reason}" for action in left.actions]
    return ShardReport(
        repositories=len(task.repositories),
        found=found,
        applied={kind.value: n for kind, n in applied.items()},
        failed_actions=sum(len(f) for f in failures.values()),
        left_after_verify=len(left.actions),
        failures={prefix: len(names) for prefix, names in sorted(unsettled.items())},
        errors=tuple(errors),
    )


def failed_by_rule(records: Iterable[ShardRecord]) -> dict[str, dict[str, int]]:
    """Region -> rule prefix -> repositories its shards did not converge: a done shard's reported failures, and
    every repository of a failed shard."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        if record.state is ShardState.DONE and record.report is not None:
            found[record.region].update(record.report.failures)
        elif record.state is ShardState.FAILED:
            found[record.region].update(record.rules)
    return {region: {p: n for p, n in sorted(counts.items()) if p and n} for region, counts in sorted(found.items())}


def unaccounted(records: Iterable[ShardRecord], regions: Mapping[str, int]) -> set[str]:
    """The Regions of a finished run some of whose shards say nothing of their repositories: never recorded (fewer
    records than the run counted), or failed without their rules (recorded failed when the coordinator could not
    record them)."""
    found = Counter(record.region for record in records)
    blind = {record.region for record in records if record.state is ShardState.FAILED and not record.rules}
    return blind | {region for region, count in regions.items() if found[region] < count}


def repositories_failed_status(current: RuleStatus, failed: int | None, *, run_id: str, now: datetime) -> RuleStatus:
    """A rule's status once a fanned-out run's shards could not converge ``failed`` of its repositories (``None``:
    how many is not known, shards were never recorded): not ``Synced`` (reason :data:`REPOSITORIES_FAILED`); its
    other conditions as the coordinating run recorded them."""
    count = f"{failed} cached repositories" if failed is not None else "Cached repositories"
    message = (
        f"{count} of this rule were not brought to its settings by the shards of run {run_id} (actions failed, "
        f"left after verify, or their shard failed or was never recorded): see the run (GET /v1/runs/{run_id}); the "
        "next reconcile that finds them unconverged tries them again, the next deep resync at the latest"
    )
    return current.with_condition(
        ConditionType.SYNCED, status=False, reason=REPOSITORIES_FAILED, message=message, now=now
    )


def folded_status(
    current: RuleStatus, failed: int, *, run_id: str, now: datetime, accounted: bool = True
) -> RuleStatus | None:
    """A rule's status once fanned-out run ``run_id`` finished, ``None`` when the run's end does not change it: not
    ``Synced`` when its shards did not converge ``failed`` of its repositories (:func:`repositories_failed_status`);
    when the run left its repositories' changes to its shards (reason ``Applying``, recorded by the run itself: a
    later run recorded what it found since), ``Synced`` if they converged all of them, which only shards that all
    say what became of their repositories can tell (``accounted``; else not ``Synced``, how many unknown)."""
    if failed:
        return repositories_failed_status(current, failed, run_id=run_id, now=now)
    synced = current.condition(ConditionType.SYNCED)
    if synced is None or synced.reason != APPLYING or current.last_run_id != run_id:
        return None
    if not accounted:
        return repositories_failed_status(current, None, run_id=run_id, now=now)
    return current.with_condition(ConditionType.SYNCED, status=True, reason="Converged", message="", now=now)


def finished_run(
    run: ReconcileRun, records: Sequence[ShardRecord], *, regions: Mapping[str, int], now: datetime
) -> ReconcileRun:
    """The run finished: the coordinating run's summary and errors with every shard's (the actions applied, failed
    and left; a failed shard, and a shard never recorded, as an error), its status from all of them (succeeded
    without an error, else partial if anything was applied, else failed)."""
    summary: Counter[str] = Counter(run.summary)
    errors = list(run.errors)
    for record in sorted(records, key=lambda r: (r.region, r.index)):
        where = f"{record.region}: shard {record.index}"
        if record.state is ShardState.FAILED:
            reason = record.error or "it did not report"
            errors.append(f"{where} ({record.repositories} repositories) failed: {reason}")
        if record.report is None:
            continue
        summary.update(record.report.applied)
        summary["failed_actions"] += record.report.failed_actions
        summary["left_after_verify"] += record.report.left_after_verify
        errors.extend(f"{where}: {line}" for line in record.report.errors)
    recorded = Counter(record.region for record in records)
    errors.extend(
        f"{region}: {count - recorded[region]} shard(s) never recorded (the coordinating run stopped): counted failed"
        for region, count in sorted(regions.items())
        if count > recorded[region]
    )
    applied = sum(n for key, n in summary.items() if key in _KINDS)
    status = RunStatus.SUCCEEDED if not errors else RunStatus.PARTIAL if applied else RunStatus.FAILED
    counts = run.shards.model_copy(update={"retrying": 0}) if run.shards is not None else None
    return run.model_copy(
        update={
            "finished_at": now,
            "status": status,
            "summary": {key: n for key, n in summary.items() if n or key == "left_after_verify"},
            "errors": tuple(errors),
            "shards": counts,
        }
    )

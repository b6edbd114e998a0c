"""Reconcile benchmark: API calls and time per reconcile, beside a naive baseline, in one run.

``python -m bench.reconcile_bench [--rules 50] [--repos 2000] [--repeat 3] [--heavy-repeat 1] [--out FILE]
[--no-fanout]`` (and bench/fanout_bench.py's options: its scenarios run after these, unless ``--no-fanout``)

Everything runs in this process on the embedded AWS (moto + the ECR extension, as the functional
tests use it); nothing here can reach a real AWS account (fake credentials are forced below).

The fleet: ``--rules`` desired rules written through :class:`DesiredStateService` (a few Docker Hub
and GHCR rules with credentials, the rest upstreams that take none), each with lifecycle presets,
a repository policy and tags; ``--repos`` repositories spread evenly over the rule prefixes,
created in bulk in the embedded ECR's backend (they stand for repositories already cached).

Scenarios (each one: ECR calls by operation, DynamoDB calls by operation, wall time):

* ``full create``: the first reconcile, from nothing (every repetition in a fresh embedded AWS);
* ``no-op fast resync``: converged, fast path (the frequent schedule);
* ``no-op deep resync``: converged, every repository read (the daily schedule);
* ``one rule changed``: one rule's ``keep_last`` preset changed, then a fast reconcile;
* the naive baseline: a pile of one-off scripts that puts everything again on every run (delete +
  create every rule, update-or-create every template, put every repository's lifecycle policy,
  repository policy and tags), first on a fresh embedded AWS (from nothing), then again on the
  converged one.

``--repeat`` runs the quick scenarios (and the converged naive run) that many times, and
``--heavy-repeat`` the ones that take tens of seconds (full create, deep resync, naive first run);
the report gives the median time. Ratios are ecrcache / naive, both measured in this run. The
benchmark exits non-zero (and writes no report) when a check fails: the no-op fast resync makes an
ECR write or a per-repository read, or reads the repository list in other than
``ceil(repositories / page size)`` pages per observe pass; the deep no-op writes; the changed rule
writes more than its template and its repositories' lifecycle policies.
"""

from __future__ import annotations

# First, before boto3, Powertools and ecrcache are imported: fake credentials, the embedded AWS only.
import bench.environment  # noqa: F401

# isort: split
import argparse
import math
import os
import re
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError

from bench import fanout_bench
from bench.reconcile_world import (
    ACTOR,
    MAX_RULES,
    REGION,
    TABLE,
    BenchError,
    Fleet,
    create_repositories,
    embedded_aws,
    log,
    write_desired,
)
from bench.support import Check, machine, write_section
from ecrcache.adapters import ecr_registry
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS, WRITE_OPERATIONS, Boto3EcrRegistry, ecr_client
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.observed import AppliedFingerprints, ObservedRegion
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.observability import metrics
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.template import functions

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import TagTypeDef

GENERATOR: Final = "bench/reconcile_bench.py"
DEFAULT_REPEAT: Final = 3
DEFAULT_HEAVY_REPEAT: Final = 1
LATENCIES_MS: Final = (20, 100)
"""Per-call ECR latencies of the (labelled) estimate of the time on AWS."""
DYNAMODB_LATENCY_MS: Final = 10
X: Final = "\u00d7"  # the multiplication sign, in the report


# --------------------------------------------------------------------------------------------------
# Counting and timing


class CallLog:
    """Operations a boto3 client makes (botocore ``before-call``: once per call and per page, retries
    not counted), the time spent inside them (botocore + the embedded AWS; summed over threads) and,
    for DynamoDB, the items they returned."""

    def __init__(self, client: Any, service: str) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0
        self.items = 0
        self._lock = threading.Lock()
        self._started = threading.local()
        hooks = client.meta.events
        hooks.register(f"before-call.{service}", self._before, unique_id=f"bench-before-{id(self)}")
        hooks.register(f"after-call.{service}", self._after, unique_id=f"bench-after-{id(self)}")
        hooks.register(f"after-call-error.{service}", self._after, unique_id=f"bench-error-{id(self)}")

    def _before(self, model: Any, **_: Any) -> None:
        self._started.at = time.perf_counter()
        with self._lock:
            self.calls[str(model.name)] += 1

    def _after(self, parsed: Any = None, **_: Any) -> None:
        spent = time.perf_counter() - getattr(self._started, "at", time.perf_counter())
        returned = 0
        if isinstance(parsed, dict):
            returned = len(parsed.get("Items", ())) + (1 if "Item" in parsed else 0)
        with self._lock:
            self.seconds += spent
            self.items += returned

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.seconds = 0.0
            self.items = 0


class CountingRegistry(Boto3EcrRegistry):
    """The production adapter (it counts its calls), also counting observe passes (plan, verify)."""

    def __init__(self, region: str, client: ECRClient) -> None:
        super().__init__(region, client)
        self.passes = 0

    def observe(
        self,
        *,
        prefixes: Sequence[str],
        deep: bool | Collection[str],
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
    ) -> ObservedRegion:
        self.passes += 1
        return super().observe(prefixes=prefixes, deep=deep, applied=applied, stop=stop)


@dataclass(frozen=True)
class Sample:
    """What one run of a scenario did."""

    ecr: Counter[str]
    seconds: float
    dynamodb: Counter[str] = field(default_factory=Counter)
    dynamodb_seconds: float = 0.0
    dynamodb_items: int = 0
    passes: int = 0

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.ecr.items() if op in WRITE_OPERATIONS)

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.ecr.items() if op not in WRITE_OPERATIONS)

    @property
    def per_repository_reads(self) -> int:
        return sum(n for op, n in self.ecr.items() if op in PER_REPOSITORY_READS)

    @property
    def ecr_calls(self) -> int:
        return sum(self.ecr.values())

    @property
    def dynamodb_calls(self) -> int:
        return sum(self.dynamodb.values())


@dataclass
class Result:
    """All repetitions of one scenario: counts from the first (checked equal in all), times as medians."""

    name: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, metric: Callable[[Sample], float]) -> float:
        return statistics.median(metric(s) for s in self.samples)

    @property
    def seconds(self) -> float:
        return self.median(lambda s: s.seconds)

    @property
    def first(self) -> Sample:
        return self.samples[0]

    @property
    def stable(self) -> bool:
        """Every repetition made exactly the same calls."""
        return all(s.ecr == self.first.ecr and s.dynamodb == self.first.dynamodb for s in self.samples)


# --------------------------------------------------------------------------------------------------
# An embedded AWS with the fleet in it, and the controller


@dataclass
class World:
    fleet: Fleet
    desired: DesiredStateService
    reconciler: ReconcileService
    registry: CountingRegistry
    ecr_log: CallLog
    dynamodb_log: CallLog

    def reconcile(self, scope: Scope) -> Sample:
        """One reconcile, counted and timed; fails unless it succeeded and verify found nothing left."""
        self.registry.calls.clear()
        self.registry.passes = 0
        self.ecr_log.reset()
        self.dynamodb_log.reset()
        start = time.perf_counter()
        run = self.reconciler.reconcile(scope, RunTrigger.SCHEDULE)
        seconds = time.perf_counter() - start
        metrics.clear_metrics()
        if run.status is not RunStatus.SUCCEEDED or run.summary.get("left_after_verify"):
            raise BenchError(f"reconcile {scope.describe()} ended {run.status}: {run.summary} {run.errors[:3]}")
        if self.registry.calls != self.ecr_log.calls:
            raise BenchError(f"the adapter counted {self.registry.calls}, the bench {self.ecr_log.calls}")
        return Sample(
            ecr=Counter(self.registry.calls),
            seconds=seconds,
            dynamodb=Counter(self.dynamodb_log.calls),
            dynamodb_seconds=self.dynamodb_log.seconds,
            dynamodb_items=self.dynamodb_log.items,
            passes=self.registry.passes,
        )

    def change_keep_last(self, prefix: str, keep_last: int) -> None:
        spec = dict(self.desired.get(ResourceKind.RULE, prefix).spec)
        lifecycle = dict(spec["lifecycle"])
        lifecycle["presets"] = {**lifecycle["presets"], "keep_last": keep_last}
        spec["lifecycle"] = lifecycle
        self.desired.put_rule(prefix, RuleSpec.model_validate(spec), actor=ACTOR)
        metrics.clear_metrics()


@contextmanager
def ecrcache_world(fleet: Fleet) -> Iterator[World]:
    """The fleet's desired state, its repositories, and the controller wired as deployed (in-process)."""
    with embedded_aws():
        desired = write_desired(fleet)
        create_repositories(fleet.repository_names())
        metrics.clear_metrics()

        dynamodb = boto3.client("dynamodb", region_name=REGION)  # the controller's own: counted
        ecr = ecr_client(REGION)
        registry = CountingRegistry(REGION, ecr)
        reconciler = ReconcileService(
            desired=DynamoDbStateStore(TABLE, dynamodb),
            status=DynamoDbStatusStore(TABLE, dynamodb),
            registry=lambda _region: registry,
            clock=lambda: datetime.now(UTC),
            stack_region=REGION,
        )
        yield World(fleet, desired, reconciler, registry, CallLog(ecr, "ecr"), CallLog(dynamodb, "dynamodb"))


# --------------------------------------------------------------------------------------------------
# The naive baseline


class NaiveScripts:
    """What a pile of one-off scripts does: put everything again on every run, read only the list.

    Every rule is deleted and created again (its upstream fields cannot be updated, so scripts
    recreate it), every template updated (created when missing), and every repository under a rule
    prefix gets its lifecycle policy, repository policy and tags put again. The requests are the
    ones ecrcache renders from the same desired state; the repository list is read with boto3's
    default page size, as ``aws ecr describe-repositories`` reads it.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.ecr = boto3.client("ecr", region_name=REGION)
        self.log = CallLog(self.ecr, "ecr")
        secrets = boto3.client("secretsmanager", region_name=REGION)
        self.rules = {prefix: RuleSpec.model_validate(spec) for prefix, spec in fleet.desired().items()}
        self.arns = {
            name: secrets.create_secret(
                Name=f"ecr-pullthroughcache/{name}",
                SecretString=f'{{"username":"ecrcache-puller","accessToken":"token-for-{name}"}}',
            )["ARN"]
            for name in fleet.credentials()
        }

    def run(self) -> Sample:
        self.log.reset()
        start = time.perf_counter()
        for prefix, spec in self.rules.items():
            self._put_rule(prefix, spec)
            self._put_template(prefix, spec)
        for page in self.ecr.get_paginator("describe_repositories").paginate():
            for repository in page["repositories"]:
                name = repository["repositoryName"]
                owner = next((p for p in self.rules if name.startswith(f"{p}/")), None)
                if owner is not None:
                    self._put_repository(name, repository["repositoryArn"], self.rules[owner])
        seconds = time.perf_counter() - start
        return Sample(ecr=Counter(self.log.calls), seconds=seconds)

    def _put_rule(self, prefix: str, spec: RuleSpec) -> None:
        try:
            self.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "PullThroughCacheRuleNotFoundException":
                raise
        arn = self.arns[spec.credential] if spec.credential else None
        self.ecr.create_pull_through_cache_rule(**spec.pull_through_cache_rule_request(prefix, arn))

    def _put_template(self, prefix: str, spec: RuleSpec) -> None:
        request = spec.creation_template_request(prefix)
        try:
            self.ecr.update_repository_creation_template(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TemplateNotFoundException":
                raise
            self.ecr.create_repository_creation_template(**request)

    def _put_repository(self, name: str, arn: str, spec: RuleSpec) -> None:
        if spec.lifecycle is not None:
            self.ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=spec.lifecycle.render_text())
        if (policy := spec.repository.policy_text()) is not None:
            self.ecr.set_repository_policy(repositoryName=name, policyText=policy)
        if spec.repository.tags:
            tags: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in sorted(spec.repository.tags.items())]
            self.ecr.tag_resource(resourceArn=arn, tags=tags)


@contextmanager
def naive_world(fleet: Fleet) -> Iterator[NaiveScripts]:
    with embedded_aws():
        create_repositories(fleet.repository_names())
        yield NaiveScripts(fleet)


# --------------------------------------------------------------------------------------------------
# Running the scenarios


FULL_CREATE: Final = "full create"
NOOP_FAST: Final = "no-op fast resync"
NOOP_DEEP: Final = "no-op deep resync"
ONE_RULE: Final = "one rule changed"
NAIVE_FIRST: Final = "naive, first run"
NAIVE_AGAIN: Final = "naive, converged"
SCENARIOS: Final = (FULL_CREATE, NOOP_FAST, NOOP_DEEP, ONE_RULE)
BASELINE: Final = {FULL_CREATE: NAIVE_FIRST, NOOP_FAST: NAIVE_AGAIN, NOOP_DEEP: NAIVE_AGAIN, ONE_RULE: NAIVE_AGAIN}


def run_scenarios(fleet: Fleet, repeat: int, heavy_repeat: int) -> dict[str, Result]:
    results = {name: Result(name) for name in (*SCENARIOS, NAIVE_FIRST, NAIVE_AGAIN)}

    def measure(name: str, times: int, run: Callable[[int], Sample]) -> None:
        for index in range(times):
            results[name].samples.append(run(index))
        log(f"  {name}: {results[name].seconds:.3f} s (median of {len(results[name].samples)})")

    for world_index in range(heavy_repeat):
        log(f"ecrcache world {world_index + 1}/{heavy_repeat}: {fleet.rules} rules, {fleet.repositories} repos")
        with ecrcache_world(fleet) as world:
            measure(FULL_CREATE, 1, lambda _: world.reconcile(Scope()))
            if world_index == 0:  # the converged scenarios, all their repetitions in this world
                measure(NOOP_FAST, repeat, lambda _: world.reconcile(Scope()))
                measure(NOOP_DEEP, heavy_repeat, lambda _: world.reconcile(Scope(deep=True)))

                def one_rule(index: int) -> Sample:
                    world.change_keep_last(fleet.changed_prefix, 100 + index)
                    return world.reconcile(Scope())

                measure(ONE_RULE, repeat, one_rule)
    for world_index in range(heavy_repeat):
        log(f"naive world {world_index + 1}/{heavy_repeat}")
        with naive_world(fleet) as naive:
            measure(NAIVE_FIRST, 1, lambda _: naive.run())
            if world_index == 0:
                measure(NAIVE_AGAIN, repeat, lambda _: naive.run())
    return results


# --------------------------------------------------------------------------------------------------
# Checks (the benchmark fails when one does not hold)


NOOP_FAST_DYNAMODB_GOAL: Final = 5
"""Issue 14: a no-op fast resync costs at most this many DynamoDB calls, whatever the number of rules."""
LISTING_READS: Final = frozenset({"DescribePullThroughCacheRules", "DescribeRepositoryCreationTemplates"})
"""The per-Region reads a fast resync may make beside the repository list's pages (one of each per pass)."""


def _list_only(sample: Sample) -> bool:
    """Nothing but ``DescribeRepositories`` pages and one read of the rules and of the templates per pass."""
    others = set(sample.ecr) - LISTING_READS - {"DescribeRepositories"}
    return not others and all(sample.ecr[op] == sample.passes for op in LISTING_READS)


def checks(fleet: Fleet, results: Mapping[str, Result]) -> list[Check]:
    page_size = ecr_registry.REPOSITORIES_PAGE_SIZE
    pages = math.ceil(fleet.repositories / page_size)
    out: list[Check] = []
    for sample in results[NOOP_FAST].samples:
        listed = sample.ecr["DescribeRepositories"]
        out += [
            Check(f"{NOOP_FAST}: zero ECR writes", sample.writes == 0, f"{sample.writes} writes"),
            Check(
                f"{NOOP_FAST}: zero per-repository reads",
                sample.per_repository_reads == 0,
                f"{sample.per_repository_reads} per-repository reads",
            ),
            Check(
                f"{NOOP_FAST}: DescribeRepositories paginated, ceil({fleet.repositories:,} / {page_size}) = "
                f"{pages} page(s) per observe pass",
                sample.passes > 0 and listed == pages * sample.passes,
                f"{listed} DescribeRepositories call(s) in {sample.passes} observe pass(es)",
            ),
            Check(
                f"{NOOP_FAST}: at most {NOOP_FAST_DYNAMODB_GOAL} DynamoDB calls whatever the number of rules "
                "(issue 14's goal)",
                sample.dynamodb_calls <= NOOP_FAST_DYNAMODB_GOAL,
                f"{sample.dynamodb_calls} DynamoDB calls ({_ops(sample.dynamodb)})",
            ),
            Check(
                f"{NOOP_FAST}: ECR calls are the paginated repository list and the Region's rule and template "
                "reads only (issue 14's goal)",
                _list_only(sample),
                _ops(sample.ecr),
            ),
        ]
    for sample in results[NOOP_DEEP].samples:
        out.append(Check(f"{NOOP_DEEP}: zero ECR writes", sample.writes == 0, f"{sample.writes} writes"))
    own = len(fleet.repositories_of(fleet.changed_prefix))
    expected = Counter({"UpdateRepositoryCreationTemplate": 1, "PutLifecyclePolicy": own})
    for sample in results[ONE_RULE].samples:
        writes = Counter({op: n for op, n in sample.ecr.items() if op in WRITE_OPERATIONS})
        out.append(
            Check(
                f"{ONE_RULE}: writes only for that rule (its template, its {own} repositories' lifecycle policies)",
                writes == expected,
                ", ".join(f"{op} {n}" for op, n in sorted(writes.items())) or "no writes",
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# The report


def _ratio(ours: float, theirs: float) -> str:
    if theirs == 0:
        return "n/a"
    value = ours / theirs
    return "0" if value == 0 else f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def _time(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _ops(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{op} {n:,}" for op, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _spread(result: Result) -> str:
    times = [s.seconds for s in result.samples]
    if len(times) == 1:
        return "1 run"
    return f"{min(times):.2f}-{max(times):.2f} s ({len(times)} runs)"


def _relative_spread(result: Result) -> float:
    times = [s.seconds for s in result.samples]
    return (max(times) - min(times)) / statistics.median(times)


def estimate_seconds(sample: Sample, latency_ms: int, *, parallel_reads: int) -> float:
    """An ESTIMATE of the time on AWS from the call counts: every ECR call takes ``latency_ms`` and
    every DynamoDB call :data:`DYNAMODB_LATENCY_MS`, one after the other, except the per-repository
    reads, made ``parallel_reads`` at a time."""
    ecr = sample.ecr_calls - sample.per_repository_reads + sample.per_repository_reads / parallel_reads
    return (ecr * latency_ms + sample.dynamodb_calls * DYNAMODB_LATENCY_MS) / 1000


def _scenario_table(result: Result, baseline: Result) -> list[str]:
    ours, theirs = result.first, baseline.first
    counts: list[tuple[str, float, float]] = [
        ("ECR reads: rules, templates, repository list", ours.reads - ours.per_repository_reads, theirs.reads),
        ("ECR reads: per repository", ours.per_repository_reads, theirs.per_repository_reads),
        ("ECR writes", ours.writes, theirs.writes),
        ("ECR calls, total", ours.ecr_calls, theirs.ecr_calls),
        ("DynamoDB calls (state table)", ours.dynamodb_calls, theirs.dynamodb_calls),
        ("DynamoDB items read (Query, GetItem)", ours.dynamodb_items, theirs.dynamodb_items),
    ]
    lines = [
        f"| {result.name} | ecrcache | naive ({baseline.name}) | ratio ecrcache / naive |",
        "|---|--:|--:|--:|",
    ]
    lines += [f"| {label} | {a:,.0f} | {b:,.0f} | {_ratio(a, b)} |" for label, a, b in counts]
    lines += [
        f"| median wall time, embedded AWS | {_time(result.seconds)} | {_time(baseline.seconds)} "
        f"| {_ratio(result.seconds, baseline.seconds)} |",
        f"| wall times, fastest-slowest | {_spread(result)} | {_spread(baseline)} | |",
        f"| median time inside DynamoDB calls, embedded AWS | {_time(result.median(lambda s: s.dynamodb_seconds))} "
        "| - | |",
    ]
    lines += [
        "",
        f"Runs: ecrcache {len(result.samples)}, naive {len(baseline.samples)}"
        + (
            "; the call counts were the same in every run."
            if result.stable and baseline.stable
            else "; the call counts differed between runs, the table shows the first."
        ),
        f"ecrcache ECR operations ({ours.passes} observe passes): {_ops(ours.ecr)}.",
        f"ecrcache DynamoDB operations: {_ops(ours.dynamodb)}.",
        f"Naive ECR operations: {_ops(theirs.ecr)}.",
    ]
    return lines


@dataclass(frozen=True)
class RunInfo:
    command: str
    repeat: int
    heavy_repeat: int
    elapsed: float
    load_before: float
    load_after: float
    fanout: bool = True
    """The run also ran the fan-out scenarios (``--no-fanout``: not)."""


def render(fleet: Fleet, results: Mapping[str, Result], found: Sequence[Check], info: RunInfo) -> str:
    per_rule = len(fleet.repositories_of(fleet.changed_prefix))
    credentialed = sum(1 for spec in fleet.desired().values() if "credential" in spec)
    lowered = info.heavy_repeat < info.repeat
    out = [
        "## Reconcile: API calls and time per reconcile",
        "",
        f"<!-- Generated by python -m bench.reconcile_bench: change {GENERATOR} and run it again. -->",
        "",
        f"The ECR and DynamoDB calls and the wall time of one reconcile for **{fleet.rules} rules {X} "
        f"{fleet.repositories:,} cached repositories**, in four scenarios, beside a naive baseline measured in "
        "the same run. Everything runs in one process on the embedded AWS (moto + the ECR extension, as the "
        "functional tests use it): the controller is `ReconcileService` wired with the production adapters "
        "(`Boto3EcrRegistry`, `DynamoDbStateStore`, `DynamoDbStatusStore`).",
        "",
        f"- **Fleet.** {fleet.rules} desired rules written through `DesiredStateService`: {credentialed} Docker "
        f"Hub / GHCR rules with credentials (secrets in Secrets Manager) and {fleet.rules - credentialed} Quay, "
        "ECR Public, Kubernetes and ECR-to-ECR rules without; each with lifecycle presets "
        "(`expire_untagged_after_days`, `keep_last`), a repository policy, two resource tags and a creation role. "
        f"{fleet.repositories:,} repositories spread evenly over the rule prefixes ({per_rule} per rule), created "
        "in the embedded ECR's backend in bulk (the state `CreateRepository` leaves, without a request each: "
        "setup, not measured): they stand for repositories already cached.",
        f"- **{FULL_CREATE}**: the first reconcile, from nothing (each run in a fresh embedded AWS).",
        f"- **{NOOP_FAST}**: converged; the fast path (the `Resync` schedule, {schedule('Resync')}): no "
        "per-repository reads; the Region's quiet digest, recorded by the run that converged it, stands for the "
        "applied fingerprints in the state table (read only when it no longer matches).",
        f"- **{NOOP_DEEP}**: converged; every repository's lifecycle policy, policy and tags read, the check "
        f"for drift made behind the controller's back (the `DeepResync` schedule, {schedule('DeepResync')}).",
        f"- **{ONE_RULE}**: `keep_last` of rule `{fleet.changed_prefix}` changed, then a fast reconcile.",
        "- **Naive baseline**: a pile of one-off scripts, with boto3 on the same embedded AWS, that does the "
        "whole job on every run whatever changed: delete + create every rule, update (or create) every template, "
        "put every repository's lifecycle policy, repository policy and tags, with the requests ecrcache renders "
        "from the same desired state. It reads only the repository list (boto3's default page size, as "
        f"`aws ecr describe-repositories` does). Its first run (from nothing) is the baseline of *{FULL_CREATE}*, "
        "a run on the converged registry the baseline of the others.",
        "- **Counting.** ECR calls by the adapter's own counter (botocore `before-call`: once per call and per "
        "page, retries not counted), split as `WRITE_OPERATIONS` and `PER_REPOSITORY_READS` define them. "
        "DynamoDB calls by a `before-call` hook on the controller's DynamoDB client (the setup's desired-state "
        "writes are not counted). Time with `time.perf_counter` around one `reconcile()` or one naive run; "
        "the time inside calls from `before-call` to `after-call` (botocore and the embedded AWS).",
        f"- **Repetitions.** {info.repeat} runs of *{NOOP_FAST}*, *{ONE_RULE}* and the converged naive run; "
        f"{info.heavy_repeat} of *{FULL_CREATE}*, *{NOOP_DEEP}* and the naive first run, which take tens of "
        "seconds each and, for a full create or a naive first run, a fresh embedded AWS"
        + (" (fewer runs, to keep these scenarios short on this machine)" if lowered else "")
        + ". Times are medians; the call counts are exact and were checked equal in every run.",
        "",
        f"Command (these scenarios took {info.elapsed:.0f} s of it on the machine below, setup included"
        + (
            "; it also runs the fan-out scenarios of the next section, which give their own time):"
            if info.fanout
            else "; with `--no-fanout` it runs no fan-out scenario: the next section is another command's):"
        ),
        "",
        "```",
        info.command,
        "```",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in machine().items()],
        f"| date | {datetime.now(UTC):%Y-%m-%d} |",
        f"| 1-minute load average, before / after the run | {info.load_before:.2f} / {info.load_after:.2f} "
        "(other work on the machine shows up in the times, not in the counts) |",
        "",
        "### Summary",
        "",
        "| scenario | ECR reads (of which per repository) | ECR writes | DynamoDB calls | median time, "
        "embedded AWS | ratio to naive: ECR calls | ECR writes | time |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in SCENARIOS:
        ours, base = results[name], results[BASELINE[name]]
        s, b = ours.first, base.first
        out.append(
            f"| {name} | {s.reads:,} ({s.per_repository_reads:,}) | {s.writes:,} | {s.dynamodb_calls:,} "
            f"| {_time(ours.seconds)} | {_ratio(s.ecr_calls, b.ecr_calls)} | {_ratio(s.writes, b.writes)} "
            f"| {_ratio(ours.seconds, base.seconds)} |"
        )
    for name in (NAIVE_FIRST, NAIVE_AGAIN):
        s = results[name].first
        out.append(
            f"| *{name} (baseline)* | {s.reads:,} ({s.per_repository_reads:,}) | {s.writes:,} "
            f"| {s.dynamodb_calls:,} | {_time(results[name].seconds)} | | | |"
        )
    out += ["", "### Checks (the benchmark exits non-zero when one fails)", ""]
    claims: dict[str, list[Check]] = {}
    for check in found:
        claims.setdefault(check.claim, []).append(check)
    for claim, items in claims.items():
        status = "pass" if all(c.ok for c in items) else "**FAIL**"
        out.append(f"- {status}: {claim}: {'; '.join(sorted({c.detail for c in items}))} ({len(items)} run(s)).")
    for name in SCENARIOS:
        out += ["", f"### {name}", "", *_scenario_table(results[name], results[BASELINE[name]])]
    out += ["", *estimate(results), "", *interpretation(fleet, results)]
    return "\n".join(out) + "\n"


def estimate(results: Mapping[str, Result]) -> list[str]:
    workers = ecr_registry.DEEP_READ_WORKERS
    lines = [
        "### Time on AWS: an ESTIMATE from the call counts, not a measurement",
        "",
        "Computed, not measured: every ECR call taken to last the latency in the column heading and every "
        f"DynamoDB call {DYNAMODB_LATENCY_MS} ms, the calls made one after the other except the per-repository "
        f"reads, which the adapter makes {workers} at a time (the naive scripts make every call in turn). It "
        "leaves out the controller's own CPU time and ECR's throttling: its control-plane APIs have no "
        "published rate limits, and thousands of writes in a burst will meet `ThrottlingException` and retries.",
        "",
        "| scenario (ESTIMATE) | "
        + " | ".join(f"ecrcache @ {ms} ms/call | naive @ {ms} ms/call" for ms in LATENCIES_MS)
        + " |",
        "|---|" + "--:|" * (2 * len(LATENCIES_MS)),
    ]
    for name in SCENARIOS:
        ours, base = results[name].first, results[BASELINE[name]].first
        cells: list[str] = []
        for ms in LATENCIES_MS:
            cells += [
                _time(estimate_seconds(ours, ms, parallel_reads=workers)),
                _time(estimate_seconds(base, ms, parallel_reads=1)),
            ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def schedule(name: str) -> str | None:
    """The ``Schedule`` expression of one of the reconciler's schedules in ``template.yaml``."""
    try:
        return str(functions()["ReconcilerFunction"]["Events"][name]["Properties"]["Schedule"])
    except (KeyError, TypeError):
        return None


def runs_per_day(expression: str | None) -> int | None:
    """Runs a day of ``rate(N minutes|hours)`` or of a ``cron(M H * * ? *)`` that fires once a day."""
    if expression is None:
        return None
    if match := re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression):
        minutes = int(match[1]) * (60 if match[2].startswith("hour") else 1)
        return (24 * 60) // minutes
    if re.fullmatch(r"cron\(\d+ \d+ \* \* \? \*\)", expression):
        return 1
    return None


def day(fleet: Fleet, results: Mapping[str, Result]) -> list[str]:
    """A converged day at the template's schedules (computed from the counts above)."""
    fast_expr, deep_expr = schedule("Resync"), schedule("DeepResync")
    fast_runs, deep_runs = runs_per_day(fast_expr), runs_per_day(deep_expr)
    if fast_runs is None or deep_runs is None:
        return []
    fast, deep, naive = results[NOOP_FAST].first, results[NOOP_DEEP].first, results[NAIVE_AGAIN].first
    ours_calls = fast_runs * fast.ecr_calls + deep_runs * deep.ecr_calls
    ours_writes = fast_runs * fast.writes + deep_runs * deep.writes
    theirs_calls = (fast_runs + deep_runs) * naive.ecr_calls
    theirs_writes = (fast_runs + deep_runs) * naive.writes
    return [
        f"- **A converged day** at the template's schedules (`Resync` {fast_expr}, {fast_runs} fast runs; "
        f"`DeepResync` {deep_expr}, {deep_runs} deep run(s)) costs ecrcache {ours_calls:,} ECR calls and "
        f"{ours_writes:,} writes; the naive scripts run as often would make {theirs_calls:,} calls, "
        f"{theirs_writes:,} of them writes (computed from the counts above).",
    ]


def interpretation(fleet: Fleet, results: Mapping[str, Result]) -> list[str]:
    page_size = ecr_registry.REPOSITORIES_PAGE_SIZE
    pages = math.ceil(fleet.repositories / page_size)
    fast, deep, one = results[NOOP_FAST], results[NOOP_DEEP].first, results[ONE_RULE].first
    create, again, first = results[FULL_CREATE].first, results[NAIVE_AGAIN].first, results[NAIVE_FIRST].first
    f = fast.first
    inside_dynamodb = fast.median(lambda s: s.dynamodb_seconds)
    # The wording follows the numbers, should the code change.
    observes = "once to plan and once to verify" if f.passes == 2 else f"in {f.passes} observe pass(es)"
    where = "mostly" if inside_dynamodb > fast.seconds / 2 else "partly"
    repeated = [r for r in results.values() if len(r.samples) > 1]
    noisiest = max(repeated, key=_relative_spread, default=None)
    per_rule_status = f.dynamodb["GetItem"] >= fleet.rules and f.dynamodb["UpdateItem"] >= fleet.rules
    dynamodb_ms = f.dynamodb_calls * DYNAMODB_LATENCY_MS
    share = "most" if all(dynamodb_ms > f.ecr_calls * ms for ms in LATENCIES_MS) else "a large part"
    twice = (
        " A verify pass after a plan with nothing to apply reads everything a second time."
        if deep.passes > 1 and deep.writes == 0
        else ""
    )
    return [
        "### Interpretation",
        "",
        "- **The call counts are what transfers to AWS; the times do not.** The embedded AWS answers in-process, "
        "in about a millisecond a call, so the wall times above are mostly Python: botocore, moto and the "
        "planner. On AWS every call is a network round trip of roughly 20-100 ms, so call counts dominate and "
        "their ratio is the better guide to the ratio of times (the table above is an estimate of that, "
        "labelled as one).",
        f"- **No-op fast resync: {f.writes} ECR writes, {f.per_repository_reads} per-repository reads.** It "
        f"reads the rules, the templates and the repository list, {observes} "
        f"({pages} page(s) of up to {page_size} per pass for {fleet.repositories:,} repositories), and the "
        f"Regions' statuses and quiet digests from the state table: {f.ecr_calls} ECR calls against "
        f"{again.ecr_calls:,} for the "
        f"naive run ({_ratio(f.ecr_calls, again.ecr_calls)}{X}). `DescribeRepositories` lists every repository "
        "in the registry, cached or not, so a registry with many repositories of its own adds pages.",
        f"- **Its in-process time is {where} DynamoDB on moto**: {_time(inside_dynamodb)} of "
        f"{_time(fast.seconds)} inside {f.dynamodb_calls} DynamoDB calls, which returned "
        f"{f.dynamodb_items:,} items ({_ops(f.dynamodb)}); moto serialises large Query results slowly. On AWS, "
        f"those are {f.dynamodb_calls} calls of about {DYNAMODB_LATENCY_MS} ms, which would take {share} of the "
        f"no-op's time beside its {f.ecr_calls} ECR calls (estimate)"
        + (
            f": at least one GetItem and one UpdateItem per rule ({fleet.rules} rules), the rules' status."
            if per_rule_status
            else "."
        ),
        f"- **No-op deep resync: {deep.writes} ECR writes** but {deep.per_repository_reads:,} per-repository "
        f"reads ({deep.passes} observe pass(es) {X} {len(PER_REPOSITORY_READS)} reads {X} {fleet.repositories:,} "
        "repositories), "
        f"{_ratio(deep.ecr_calls, again.ecr_calls)}{X} the naive run's calls. It is the drift check for changes "
        "made behind the controller's back, run rarely; its reads go "
        f"{ecr_registry.DEEP_READ_WORKERS} at a time and, unlike the naive writes, change nothing and emit no "
        f"CloudTrail events.{twice}",
        f"- **One rule changed: {one.writes} ECR writes** (its template and its "
        f"{len(fleet.repositories_of(fleet.changed_prefix))} repositories' lifecycle policies), against "
        f"{again.writes:,} for the naive run, which cannot tell what changed.",
        f"- **Full create: {create.writes:,} ECR writes** against {first.writes:,} for the naive first run: the "
        "same work, since everything is missing (the naive count includes the deletes and updates that fail "
        "with *not found*). ecrcache also validates the rules with credentials and reads back every repository "
        f"it wrote (verify), so it makes more calls in all ({_ratio(create.ecr_calls, first.ecr_calls)}{X}): the "
        "price of knowing that the result converged.",
        "- **The naive baseline costs more than its calls:** deleting and creating a pull-through cache rule "
        "again leaves a window in which pulls through its prefix fail, and each of its writes is a CloudTrail "
        "event (a flood for anything watching for drift).",
        *day(fleet, results),
        *(
            [
                f"- **Time on this machine is noisy:** repeated runs of *{noisiest.name}* took "
                f"{_spread(noisiest)}, a spread of {_relative_spread(noisiest):.0%} of their median; the time "
                "ratios are no more precise than that, and the scenarios measured once are the least certain. "
                "The call counts are exact."
            ]
            if noisiest is not None
            else []
        ),
    ]


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, fanout_bench.Settings]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reconcile_bench", description="Reconcile benchmark (see the module docstring)."
    )
    parser.add_argument("--rules", type=int, default=50, help=f"desired rules, 1-{MAX_RULES} (default 50)")
    parser.add_argument("--repos", type=int, default=2000, help="cached repositories (default 2000)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help=f"runs of the quick scenarios (default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--heavy-repeat",
        type=int,
        default=DEFAULT_HEAVY_REPEAT,
        help=f"runs of full create, deep resync and the naive first run (default {DEFAULT_HEAVY_REPEAT})",
    )
    parser.add_argument("--out", type=Path, help="write the markdown report here (default: standard output)")
    parser.add_argument(
        "--no-fanout",
        action="store_true",
        help="run only these scenarios, not bench/fanout_bench.py's (its section of --out is left as it is)",
    )
    fanout_bench.add_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.rules <= MAX_RULES:
        parser.error(f"--rules must be 1-{MAX_RULES} (ECR allows {MAX_RULES} pull-through cache rules)")
    if args.repos < 1:
        parser.error("--repos must be at least 1")
    if args.repeat < 1 or args.heavy_repeat < 1:
        parser.error("--repeat and --heavy-repeat must be at least 1")
    return args, fanout_bench.settings_from(parser, args)


def _command(args: argparse.Namespace, settings: fanout_bench.Settings) -> str:
    command = ["python -m bench.reconcile_bench", f"--rules {args.rules}", f"--repos {args.repos}"]
    if args.repeat != DEFAULT_REPEAT:
        command.append(f"--repeat {args.repeat}")
    if args.heavy_repeat != DEFAULT_HEAVY_REPEAT:
        command.append(f"--heavy-repeat {args.heavy_repeat}")
    command += ["--no-fanout"] if args.no_fanout else fanout_bench.command_options(settings)
    if args.out:
        command.append(f"--out {args.out}")
    return " ".join(command)


def main(argv: Sequence[str] | None = None) -> int:
    """The reconcile scenarios, then the fan-out's (bench/fanout_bench.py; not with ``--no-fanout``): each writes its
    own section, and neither is written when a check of either fails."""
    args, settings = parse_args(argv)
    fleet = Fleet(rules=args.rules, repositories=args.repos)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        results = run_scenarios(fleet, args.repeat, args.heavy_repeat)
        elapsed, load_between = time.perf_counter() - start, os.getloadavg()[0]
        fanned = None if args.no_fanout else fanout_bench.run(args.rules, args.repos, settings)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    found = checks(fleet, results)
    command = _command(args, settings)
    repeats = (args.repeat, args.heavy_repeat)
    info = RunInfo(command, *repeats, elapsed, load_before, load_between, fanout=fanned is not None)
    report = render(fleet, results, found, info)
    fanout_report, fanned_checks = "", []
    if fanned is not None:
        fanout_info = fanout_bench.RunInfo(
            command, time.perf_counter() - start - elapsed, load_between, os.getloadavg()[0]
        )
        fanout_report = fanout_bench.render(fanned[0], fanned[1], fanout_info)
        fanned_checks = list(fanned[1])
    failed = [c for c in (*found, *fanned_checks) if not c.ok]
    if failed or not args.out:
        sys.stdout.write(report + "\n" + fanout_report)
    for check in failed:
        log(f"CHECK FAILED: {check.claim}: {check.detail}")
    if failed:
        log("no report written")
        return 1
    if args.out:
        write_section(args.out, GENERATOR, report)
        if fanout_report:
            write_section(args.out, fanout_bench.GENERATOR, fanout_report)
        written = "reconcile and fan-out sections" if fanout_report else "reconcile section"
        log(f"wrote the {written} of {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

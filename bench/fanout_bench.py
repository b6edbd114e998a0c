"""Fan-out benchmark: the deep resync split into shards, with 1 and with N workers, under ECR throttling.

``python -m bench.fanout_bench [--rules 50] [--repos 2000] [--workers 1,2,4,8] [--ecr-tps 100]
[--worker-rate 60] [--latency-ms 20] [--fit-repos 2000,10000] [--out FILE]``, and run by
``python -m bench.reconcile_bench`` after its own scenarios with the same options (one command, both sections).

Everything runs in this process on the embedded AWS (moto + the ECR extension): nothing can reach a real account.

* **The fleet** is the reconcile benchmark's (:class:`bench.reconcile_world.Fleet`); it grows through the sizes
  measured (``--fit-repos``, then ``--repos``): the repositories are created in bulk in the embedded ECR's backend,
  and each step is converged once by a fast reconcile without fan-out, throttling or latency (setup: timed and
  reported, not measured as a scenario).
* **A fan-out run** is what the deployed stack does on its ``DeepResync`` schedule: the coordinator
  (``ReconcileService`` deep run with a :class:`ShardFanout` on an in-memory shard queue) writes the run's shards
  and sends them; then ``N`` threads drain the queue, each a :class:`ShardWorkerService` with its own ECR and
  DynamoDB clients (one concurrent Lambda invocation of the worker, ``MaximumConcurrency`` = N). A shard that
  raised is delivered again (as SQS does after its visibility timeout; here at once), its last delivery
  (``ApproximateReceiveCount`` = maxReceiveCount, 3) told so. The run is over when the run record is finished.
* **Throttling** is the embedded ECR's: ``--ecr-tps`` requests a second per operation, beyond which it answers
  ``ThrottlingException`` as ECR does; every invocation's ECR client is also held to ``--worker-rate`` requests a
  second (the reconciler's ``ECR_REQUEST_RATE``), so the aggregate is ``workers x worker-rate`` until the ceiling.
* **Network**: every ECR request (retries too) sleeps ``--latency-ms`` on the client side (a botocore
  ``before-send`` hook): the round trip to ECR, which the in-process embedded AWS does not have. It is what lets
  N worker threads overlap in one Python process on a 2-core machine: they wait on the "network", not the CPU.
"""

from __future__ import annotations

# First, before boto3, Powertools and ecrcache are imported: fake credentials, the embedded AWS only.
import bench.environment  # noqa: F401

# isort: split
import argparse
import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3

from bench import reconcile_world as rw
from bench.scaling import (
    Fit,
    Row,
    X,
    ceiling_per_second,
    duration,
    expected_seconds,
    fanout_table,
    fit_line,
    fit_lines,
    parse_counts,
    shard_sizes,
    tps_spec,
)
from bench.shard_drain import MAX_RECEIVES, Drain, MemoryShardQueue, drain
from bench.support import Check, machine, write_section
from devstack.aws import ecr_throttling
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS, WRITE_OPERATIONS, Boto3EcrRegistry, ecr_client
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.shards import DEFAULT_SHARD_DEADLINE_SECONDS, DEFAULT_SHARD_SIZE
from ecrcache.models.status import ReconcileRun, RunStatus, RunTrigger
from ecrcache.observability import metrics
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.reconcile_shards import ShardFanout, ShardWorkerService
from tests.template import load_template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient

GENERATOR: Final = "bench/fanout_bench.py"
DEFAULT_WORKERS: Final = "1,2,4,8"
DEFAULT_TPS: Final = "*=100"
DEFAULT_WORKER_RATE: Final = 60.0
DEFAULT_LATENCY_MS: Final = 20.0
TARGET_REPOS: Final = 100_000
"""ECR's registered repositories per registry: the size issue 14 asks about."""
BUDGET_SECONDS: Final = 20 * 60
"""Issue 14: measure 100,000 if the machine can in under 20 minutes, else project it."""
SHARD_GOAL_SECONDS: Final = 5 * 60
"""Issue 14: no single invocation over 5 minutes."""

THROTTLED: Final = frozenset({"ThrottlingException"})
ASSUMED_CONCURRENCY: Final = (5, 10)
"""Worker concurrencies the report computes the template's rate for when the template has no ShardConcurrency."""
CPU_BOUND: Final = 0.7
"""A run whose process CPU time passes this share of its wall time was (partly) held up by the machine."""


# --------------------------------------------------------------------------------------------------
# Counting, and the simulated network


class Meter:
    """Calls (botocore ``before-call``: once per call), attempts (``before-send``: retries too) and the
    ``ThrottlingException`` answers (``response-received``, every attempt) of every client attached, summed over
    threads; and the simulated round trip, slept in ``before-send`` before the embedded AWS answers."""

    def __init__(self, latency_ms: float) -> None:
        self.latency = latency_ms / 1000
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.throttled = 0
        self._lock = threading.Lock()

    def attach(self, client: Any, service: str, *, network: bool) -> None:
        hooks = client.meta.events
        hooks.register(f"before-call.{service}", self._call, unique_id=f"fanout-call-{id(self)}")
        hooks.register(f"response-received.{service}", self._answer, unique_id=f"fanout-answer-{id(self)}")
        # First in line, before moto's own before-send handler answers the request in-process.
        hooks.register_first(
            f"before-send.{service}", self._send if network else self._count, unique_id=f"fanout-send-{id(self)}"
        )

    def _call(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[str(model.name)] += 1

    def _count(self, request: Any = None, **kwargs: Any) -> None:
        name = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
        with self._lock:
            self.attempts[name] += 1

    def _send(self, request: Any = None, **kwargs: Any) -> None:
        self._count(request, **kwargs)
        time.sleep(self.latency)

    def _answer(self, parsed_response: Any = None, **_: Any) -> None:
        code = parsed_response.get("Error", {}).get("Code") if isinstance(parsed_response, dict) else None
        if code in THROTTLED:
            with self._lock:
                self.throttled += 1

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.attempts.clear()
            self.throttled = 0

    @property
    def retries(self) -> int:
        return sum(self.attempts.values()) - sum(self.calls.values())


# --------------------------------------------------------------------------------------------------
# Settings, the growing world, one measured run


@dataclass(frozen=True)
class Settings:
    workers: tuple[int, ...]
    ecr_tps: str
    """The embedded ECR's limits, as :func:`devstack.aws.ecr_throttling.parse_tps` reads them (``*=100``)."""
    worker_rate: float
    latency_ms: float
    shard_size: int = DEFAULT_SHARD_SIZE
    fit_repos: tuple[int, ...] = ()
    target: int = TARGET_REPOS
    budget_seconds: float = BUDGET_SECONDS

    @property
    def per_operation(self) -> dict[str, float]:
        """The requests a second of each per-repository read (those the throttle limits)."""
        limits = ecr_throttling.Throttle(ecr_throttling.parse_tps(self.ecr_tps))
        return {op: limit.tps for op in PER_REPOSITORY_READS if (limit := limits.limit(op)) is not None}

    @property
    def ceiling(self) -> float | None:
        """Repositories a second the throttle lets through (one call of each per-repository read a repository)."""
        return ceiling_per_second(self.per_operation, dict.fromkeys(PER_REPOSITORY_READS, 1))


@dataclass(frozen=True)
class Setup:
    """Growing the fleet to ``repositories``: the bulk creation of the new ones and their first (converging)
    reconcile."""

    repositories: int
    added: int
    create_seconds: float
    converge_seconds: float


@dataclass
class Measured:
    row: Row
    run: ReconcileRun
    ecr: Counter[str]
    dynamodb: Counter[str]
    cpu_seconds: float
    drain: Drain
    queue_requests: int
    largest_body: int


class FanoutWorld:
    """One embedded AWS whose fleet grows through the sizes measured, and the fan-out runs on it."""

    def __init__(self, rules: int, settings: Settings) -> None:
        self.rules = rules
        self.settings = settings
        self.repositories = 0
        self.desired = rw.write_desired(rw.Fleet(rules=rules, repositories=0))
        self.ecr_meter = Meter(settings.latency_ms)
        self.dynamodb_meter = Meter(0)

    # -- setup ------------------------------------------------------------------------------------

    def grow(self, repositories: int) -> Setup:
        """Add repositories up to ``repositories`` (the fleet's names, so a size is the same fleet however it was
        reached) and converge them with one fast reconcile (no fan-out, no latency, no throttling)."""
        names = rw.Fleet(rules=self.rules, repositories=repositories).repository_names()[self.repositories :]
        created = rw.create_repositories(names)
        dynamodb = boto3.client("dynamodb", region_name=rw.REGION)
        registry = Boto3EcrRegistry(rw.REGION, ecr_client(rw.REGION))
        converger = ReconcileService(
            desired=DynamoDbStateStore(rw.TABLE, dynamodb),
            status=DynamoDbStatusStore(rw.TABLE, dynamodb),
            registry=lambda _region: registry,
            clock=lambda: datetime.now(UTC),
            stack_region=rw.REGION,
        )
        start = time.perf_counter()
        run = converger.reconcile(Scope(), RunTrigger.SCHEDULE)
        converged = time.perf_counter() - start
        metrics.clear_metrics()
        if run.status is not RunStatus.SUCCEEDED or run.summary.get("left_after_verify"):
            raise rw.BenchError(f"converging {repositories:,} repositories ended {run.status}: {run.errors[:3]}")
        added, self.repositories = repositories - self.repositories, repositories
        return Setup(repositories, added, created, converged)

    # -- the controller, as deployed ----------------------------------------------------------------

    def _ecr(self) -> ECRClient:
        """An invocation's ECR client as the reconciler builds it (held to ``ECR_REQUEST_RATE``), counted, and each
        request sent over the simulated network (after the rate limiter let it go: both are ``before-send``
        handlers, called in the order they were registered)."""
        client = ecr_client(rw.REGION, request_rate=self.settings.worker_rate)
        self.ecr_meter.attach(client, "ecr", network=True)
        return client

    def _dynamodb(self) -> DynamoDBClient:
        client = boto3.client("dynamodb", region_name=rw.REGION)
        self.dynamodb_meter.attach(client, "dynamodb", network=False)
        return client

    def coordinator(self, shards: MemoryShardQueue) -> ReconcileService:
        registry = Boto3EcrRegistry(rw.REGION, self._ecr())
        dynamodb = self._dynamodb()
        return ReconcileService(
            desired=DynamoDbStateStore(rw.TABLE, dynamodb),
            status=DynamoDbStatusStore(rw.TABLE, dynamodb),
            registry=lambda _region: registry,
            clock=lambda: datetime.now(UTC),
            stack_region=rw.REGION,
            shards=ShardFanout(
                shards, shard_size=self.settings.shard_size, deadline_seconds=DEFAULT_SHARD_DEADLINE_SECONDS
            ),
        )

    def worker(self) -> ShardWorkerService:
        registry = Boto3EcrRegistry(rw.REGION, self._ecr())
        dynamodb = self._dynamodb()
        return ShardWorkerService(
            desired=DynamoDbStateStore(rw.TABLE, dynamodb),
            status=DynamoDbStatusStore(rw.TABLE, dynamodb),
            registry=lambda _region: registry,
            clock=lambda: datetime.now(UTC),
            stack_region=rw.REGION,
        )

    # -- one measured run ---------------------------------------------------------------------------

    def measure(self, workers: int) -> Measured:
        """One deep resync fanned out to ``workers`` workers, from the coordinator's start to the run's finish."""
        shards = MemoryShardQueue()
        coordinator = self.coordinator(shards)
        services = [self.worker() for _ in range(workers)]  # clients made here: boto3's session is not thread-safe
        self.ecr_meter.reset()
        self.dynamodb_meter.reset()
        with throttled(self.settings.ecr_tps) as throttle:
            cpu, start = time.process_time(), time.perf_counter()
            run = coordinator.reconcile(Scope(deep=True), RunTrigger.SCHEDULE)
            coordinated = time.perf_counter() - start
            stats = drain(shards, services)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        if sum(throttle.throttled.values()) != self.ecr_meter.throttled:
            raise rw.BenchError(
                f"the embedded ECR throttled {sum(throttle.throttled.values())} calls, the clients saw "
                f"{self.ecr_meter.throttled} ThrottlingException answers"
            )
        metrics.clear_metrics()
        final = DynamoDbStatusStore(rw.TABLE, boto3.client("dynamodb", region_name=rw.REGION)).get_run(run.run_id)
        if final is None:
            raise rw.BenchError(f"the run record of {run.run_id} is gone")
        ecr = Counter(self.ecr_meter.calls)
        row = Row(
            repositories=self.repositories,
            workers=workers,
            seconds=seconds,
            coordinator_seconds=coordinated,
            reads=sum(n for op, n in ecr.items() if op not in WRITE_OPERATIONS),
            per_repository_reads=sum(n for op, n in ecr.items() if op in PER_REPOSITORY_READS),
            writes=sum(n for op, n in ecr.items() if op in WRITE_OPERATIONS),
            throttled=self.ecr_meter.throttled,
            retries=self.ecr_meter.retries,
            dynamodb_calls=sum(self.dynamodb_meter.calls.values()),
            shards=shards.sent,
            redeliveries=stats.redeliveries,
            longest_shard=max(stats.shard_seconds, default=0.0),
            expected=expected_seconds(
                shard_sizes(self.repositories, self.settings.shard_size),
                workers=workers if shards.sent else 1,  # a Region of one shard is read in process
                worker_rate=self.settings.worker_rate,
                calls_per_repository=len(PER_REPOSITORY_READS),
                ceiling=self.ceiling,
            ),
        )
        return Measured(
            row, final, ecr, Counter(self.dynamodb_meter.calls), cpu, stats, shards.requests, shards.largest_body
        )

    @property
    def ceiling(self) -> float | None:
        return self.settings.ceiling


@contextmanager
def fanout_world(rules: int, settings: Settings) -> Iterator[FanoutWorld]:
    with rw.embedded_aws():
        yield FanoutWorld(rules, settings)


# --------------------------------------------------------------------------------------------------
# The embedded ECR's throttling


@contextmanager
def throttled(spec: str) -> Iterator[ecr_throttling.Throttle]:
    """The embedded ECR answers ``ThrottlingException`` beyond ``spec``'s rates (fresh, full buckets), then
    throttles nothing again."""
    throttle = ecr_throttling.configure(spec)
    try:
        yield throttle
    finally:
        ecr_throttling.reset()


# --------------------------------------------------------------------------------------------------
# Running the sizes, deciding on the target, checks


@dataclass
class Results:
    settings: Settings
    rules: int
    repositories: int
    setups: list[Setup] = field(default_factory=list)
    runs: list[Measured] = field(default_factory=list)
    target_cost: float | None = None
    """Projected seconds to grow to the target and measure it (when it was not measured)."""

    @property
    def rows(self) -> list[Row]:
        return [m.row for m in self.runs]

    def fit(self, workers: int) -> Fit | None:
        points = [(m.row.repositories, m.row.seconds) for m in self.runs if m.row.workers == workers]
        return fit_line(points) if len({x for x, _ in points}) >= 2 else None


def log(message: str) -> None:
    rw.log(message)


def run_all(rules: int, repositories: int, settings: Settings) -> Results:
    results = Results(settings, rules, repositories)
    top = max(settings.workers)
    sizes = sorted({*(n for n in settings.fit_repos if n < repositories), repositories})
    with fanout_world(rules, settings) as world:
        for size in sizes:
            results.setups.append(setup := world.grow(size))
            log(
                f"fan-out: {size:,} repositories ({duration(setup.create_seconds)} to create the new ones, "
                f"{duration(setup.converge_seconds)} to converge them)"
            )
            for workers in settings.workers if size == repositories else (top,):
                results.runs.append(measured := world.measure(workers))
                log(
                    f"  {workers} worker(s): {duration(measured.row.seconds)}, "
                    f"longest shard {duration(measured.row.longest_shard)}"
                )
        if settings.target > repositories:
            cost = target_cost(results, top)
            if cost is not None and cost <= settings.budget_seconds:
                log(f"fan-out: {settings.target:,} repositories (projected to take {duration(cost)}: measured)")
                results.setups.append(world.grow(settings.target))
                results.runs.append(world.measure(top))
            else:
                results.target_cost = cost
    return results


def target_cost(results: Results, workers: int) -> float | None:
    """Seconds to grow the fleet to the target and measure it with ``workers`` workers, from the lines through
    the setup's and the runs' times (``None`` with fewer than two sizes)."""
    target, top = results.settings.target, results.repositories
    runs = results.fit(workers)
    points = [(s.added, s.create_seconds + s.converge_seconds) for s in results.setups]
    if runs is None or len({x for x, _ in points}) < 2:
        return None
    return fit_line(points).predict(target - top) + runs.predict(target)


def checks(results: Results) -> list[Check]:
    """Per measured run (the claims are the same for every run; each detail names its run)."""
    out: list[Check] = []
    size = results.settings.shard_size
    for m in results.runs:
        r, counts = m.row, m.run.shards
        where = f"{r.repositories:,} {X} {r.workers}"
        # A Region of one shard or fewer is read in process by the coordinator: no shards.
        want = math.ceil(r.repositories / size) if r.repositories > size else 0
        shards_ok = counts is None if want == 0 else counts is not None and counts.done == counts.total == want
        out += [
            Check(
                "fan-out: the run finished, every shard done (ceil(repositories / shard size) shards)",
                m.run.status is RunStatus.SUCCEEDED and shards_ok,
                f"{where}: {m.run.status}, {_counts(m.run)}",
            ),
            Check("fan-out: zero ECR writes (converged)", r.writes == 0, f"{where}: {r.writes}"),
            Check(
                f"fan-out: every repository read ({len(PER_REPOSITORY_READS)} reads each)",
                r.per_repository_reads >= len(PER_REPOSITORY_READS) * r.repositories,
                f"{where}: {r.per_repository_reads:,}",
            ),
            Check(
                f"fan-out: no invocation (coordinator, longest shard) over {duration(SHARD_GOAL_SECONDS)} (issue 14)",
                max(r.longest_shard, r.coordinator_seconds) < SHARD_GOAL_SECONDS,
                f"{where}: {duration(r.coordinator_seconds)}, {duration(r.longest_shard)}",
            ),
        ]
    return out


# --------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class RunInfo:
    command: str
    elapsed: float
    load_before: float
    load_after: float


def _ops(counter: Counter[str]) -> str:
    return ", ".join(f"{op} {n:,}" for op, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def render(results: Results, found: Sequence[Check], info: RunInfo) -> str:
    s, top = results.settings, max(results.settings.workers)
    ceiling = s.ceiling
    per_repo = len(PER_REPOSITORY_READS)
    reads = ", ".join(f"`{op}`" for op in sorted(PER_REPOSITORY_READS))
    sizes = sorted({m.row.repositories for m in results.runs})
    out = [
        "## Deep resync fanned out: shard workers under ECR throttling",
        "",
        f"<!-- Generated by python -m bench.fanout_bench (also run by python -m bench.reconcile_bench): change "
        f"{GENERATOR} and run it again. -->",
        "",
        f"The deep resync (the `DeepResync` schedule) of **{results.rules} rules {X} {results.repositories:,} "
        f"repositories** fanned out to shard workers as the deployed stack does it, with "
        f"{', '.join(map(str, s.workers))} worker(s), under the embedded ECR's throttling"
        + (
            f"; {', '.join(f'{n:,}' for n in sizes if n != results.repositories)} repositories measured too "
            f"({top} workers), for the projection to {s.target:,}."
            if len(sizes) > 1
            else "."
        ),
        "",
        "- **How.** The coordinator is `ReconcileService`'s deep run with a `ShardFanout` "
        f"(shards of {s.shard_size}) on an in-memory shard queue (the tasks go through their JSON body, 10 a "
        "`SendMessageBatch` request); then N threads drain the queue, each a `ShardWorkerService` with its own ECR "
        "and DynamoDB clients: one concurrent invocation of the worker function (the event source mapping's "
        "`MaximumConcurrency` = N). A shard that raised is delivered again at once (SQS would wait out the "
        f"visibility timeout first), its delivery number {MAX_RECEIVES} told it is the last (`maxReceiveCount` "
        f"{MAX_RECEIVES}). The wall time runs from the coordinator's start until the last shard reported.",
        f"- **Throttling.** The embedded ECR answers `ThrottlingException` beyond its configured rates (`{s.ecr_tps}`: "
        f"{_limits(s)}), a token bucket per operation as ECR documents its throttling; every invocation's ECR client "
        f"holds itself to {s.worker_rate:g} requests a second (the reconciler's `ECR_REQUEST_RATE`), botocore's "
        f"adaptive retries behind it. A repository needs one call of each of {reads}, so the ceiling is "
        f"**{_rate(ceiling)} repositories a second** (the slowest of their rates over 1 call each) whatever the number "
        f"of workers; N workers ask for N {X} {s.worker_rate:g} / {per_repo} = {s.worker_rate / per_repo:,.1f} N "
        f"repositories a second, so the ceiling binds from {_binds(ceiling, s.worker_rate / per_repo)} workers. "
        "No run can beat the column *lower bound from the limits*: the larger of the repositories over the ceiling "
        "and the time N workers take for the shards at that rate (a shard is one worker's, taken from the queue "
        "in turn: 40 shards on 8 workers are 5 rounds).",
        f"- **Network.** Every ECR request (a retry too) waits {s.latency_ms:g} ms on the client side before the "
        "embedded ECR answers it (a botocore `before-send` hook): the network's round trip to ECR, which the "
        "in-process embedded AWS does not have; it models the network, not ECR. It is also what lets N worker "
        f"threads overlap in one Python process on this {machine()['CPUs (nproc)']}-core machine: they wait on the "
        "simulated network, not on the CPU. DynamoDB calls get no added latency.",
        "- **Fleet.** The reconcile benchmark's, grown through the sizes measured: repositories created in bulk in "
        "the embedded ECR's backend, each step converged once by a fast reconcile without fan-out, latency or "
        "throttling (setup, timed below; not in any measurement).",
        "- **Counting.** ECR calls by botocore `before-call` (once per call and per page), attempts by "
        "`before-send` (retries = attempts - calls), `ThrottlingException` answers by `response-received` (every "
        "answer, retried or not); DynamoDB calls of the coordinator and every worker. The process's CPU time "
        "(`time.process_time`, all threads) beside the wall time: when it nears the wall time, the machine set "
        "the pace, not the limits.",
        "",
        f"Command ({duration(info.elapsed)} on the machine below, setup included):",
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
        "### Deep resync, fanned out",
        "",
        *fanout_table(results.rows, ceiling),
        "",
        *[_details(m) for m in results.runs],
        "",
        "### Checks (the benchmark exits non-zero when one fails)",
        "",
        *_check_lines(found),
        "",
        "### Setup: growing the fleet",
        "",
        "| repositories | added | bulk creation in the backend | first reconcile (converges the new ones) |",
        "|--:|--:|--:|--:|",
        *[
            f"| {u.repositories:,} | {u.added:,} | {duration(u.create_seconds)} | {duration(u.converge_seconds)} |"
            for u in results.setups
        ],
        "",
        *target_section(results, ceiling),
        "",
        *interpretation(results, ceiling),
    ]
    return "\n".join(out) + "\n"


def _limits(settings: Settings) -> str:
    rates = settings.per_operation
    if not rates:
        return "none of the per-repository reads throttled"
    return ", ".join(f"{op} {tps:g}" for op, tps in sorted(rates.items())) + " requests a second"


def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "no limit"


def _binds(ceiling: float | None, per_worker: float) -> str:
    if ceiling is None or per_worker <= 0:
        return "no number of"
    return f"{math.ceil(ceiling / per_worker)}"


def _counts(run: ReconcileRun) -> str:
    if run.shards is None:
        return "none (read in process)"
    return ", ".join(f"{key} {value}" for key, value in run.shards.model_dump().items())


def _details(m: Measured) -> str:
    r = m.row
    failures = "; shard failures " + _ops(m.drain.failures) if m.drain.failures else ""
    return (
        f"- {r.repositories:,} {X} {r.workers}: process CPU {duration(m.cpu_seconds)} of {duration(r.seconds)} wall; "
        f"ECR {_ops(m.ecr)}; DynamoDB {_ops(m.dynamodb)}; {m.queue_requests} `SendMessageBatch` request(s), the "
        f"largest message {m.largest_body:,} bytes; run record {m.run.status}, shards {_counts(m.run)}{failures}."
    )


def _check_lines(found: Sequence[Check]) -> list[str]:
    claims: dict[str, list[Check]] = {}
    for check in found:
        claims.setdefault(check.claim, []).append(check)
    return [
        f"- {'pass' if all(c.ok for c in items) else '**FAIL**'}: {claim}: "
        + "; ".join(c.detail if c.ok else f"**{c.detail}**" for c in items)
        + "."
        for claim, items in claims.items()
    ]


def target_section(results: Results, ceiling: float | None) -> list[str]:
    s, top = results.settings, max(results.settings.workers)
    lines = [f"### {s.target:,} repositories", ""]
    measured = [m.row for m in results.runs if m.row.repositories == s.target]
    fit = results.fit(top)
    if measured:
        r = measured[0]
        lines.append(
            f"Measured (the projection said it would fit in {duration(s.budget_seconds)}): {duration(r.seconds)} "
            f"with {r.workers} workers, longest shard {duration(r.longest_shard)}."
        )
    elif fit is None:
        lines.append(
            f"Neither measured nor projected: the run measured one size only (`--fit-repos` adds sizes, "
            f"measured with {top} workers, for a line through them)."
        )
    else:
        cost = results.target_cost
        lines += [
            f"Not measured: growing the fleet to {s.target:,} and measuring it would take about "
            f"{duration(cost) if cost is not None else 'an unknown time'} on this machine (the lines through the "
            f"setup's and the runs' times), over the {duration(s.budget_seconds)} allowed. Projected instead:",
            "",
            f"- **Method**: a least-squares line of wall time against repositories through the {len(fit.points)} "
            f"sizes measured with {top} workers; residuals say how far each measured point is from the line.",
            *fit_lines(f"{top} workers", fit, [s.target]),
        ]
    if ceiling:
        lines.append(
            f"- Whatever the machine: at the ceiling of {_rate(ceiling)} repositories a second, {s.target:,} "
            f"repositories take at least {duration(s.target / ceiling)}."
        )
    return lines


def interpretation(results: Results, ceiling: float | None) -> list[str]:
    s = results.settings
    main = [m for m in results.runs if m.row.repositories == results.repositories]
    one = next((m.row for m in main if m.row.workers == 1), None)
    lines = ["### Interpretation", ""]
    for m in main:
        r = m.row
        if one is None or r is one:
            continue
        ideal = one.expected / r.expected if one.expected and r.expected else float(r.workers)
        idle = f"; only {r.shards} shards for {r.workers} workers" if r.shards < r.workers else ""
        lines.append(
            f"- **{r.workers} workers**: {one.seconds / r.seconds:.2f}{X} the speed of one (the limits allow "
            f"{ideal:.2f}{X}{idle}), {r.throttled:,} `ThrottlingException` answers, {r.retries:,} retries; the "
            f"process used {m.cpu_seconds / r.seconds:.0%} of a CPU."
        )
    busy = [m.row for m in results.runs if m.cpu_seconds > CPU_BOUND * m.row.seconds]
    if busy:
        lines.append(
            "- **The machine, not the limits, may have set the pace** of "
            + ", ".join(f"{r.repositories:,} {X} {r.workers}" for r in busy)
            + f": the process's CPU time was over {CPU_BOUND:.0%} of the wall time (one Python process: botocore, "
            "moto and the controller share one interpreter lock)."
        )
    longest = max((r.longest_shard for r in results.rows), default=0.0)
    reads = len(PER_REPOSITORY_READS) * s.shard_size
    lines += [
        f"- **The longest shard took {duration(longest)}** (goal: under {duration(SHARD_GOAL_SECONDS)} an "
        f"invocation). A shard is at most {s.shard_size} repositories, {reads:,} per-repository reads, at most "
        f"{s.worker_rate:g} requests a second: at least {duration(reads / s.worker_rate)}, whatever the size of the "
        "registry.",
        *deployed_defaults(s),
        "- **On AWS** ECR publishes no rate for these reads; the ceiling here is the configured one "
        f"({_limits(s)}). With a ceiling of C repositories a second, a deep resync of {s.target:,} repositories "
        f"takes at least {s.target:,} / C seconds however many workers run; the worker concurrency "
        "(`ShardConcurrency`) times `EcrRequestRate` should stay under it, so that throttling stays the exception "
        "botocore's adaptive retries absorb: above it, their client-side rate limiter cuts a throttled client's "
        "rate, and the run gets slower than at the ceiling.",
    ]
    return lines


def deployed_defaults(settings: Settings) -> list[str]:
    """What the template's defaults allow (computed, not measured): its ``EcrRequestRate`` a worker, and its
    ``ShardConcurrency`` workers (or a few concurrencies, when this branch's template has no such parameter)."""
    parameters = load_template().get("Parameters", {})
    rate = parameters.get("EcrRequestRate", {}).get("Default")
    concurrency = parameters.get("ShardConcurrency", {}).get("Default")
    if rate is None or float(rate) <= 0:
        return []
    per_worker = float(rate) / len(PER_REPOSITORY_READS)
    reads = len(PER_REPOSITORY_READS) * settings.shard_size
    counts = [int(concurrency)] if concurrency is not None else list(ASSUMED_CONCURRENCY)
    named = "`ShardConcurrency` (its default)" if concurrency is not None else "N concurrent workers"
    cases = "; ".join(
        f"{n} workers: {n * per_worker:,.1f} repositories a second, {settings.target:,} in at least "
        f"{duration(settings.target / (n * per_worker))}"
        for n in counts
    )
    return [
        f"- **With the template's defaults** (computed, not measured): `EcrRequestRate` {rate} requests a second a "
        f"worker is {per_worker:,.1f} repositories a second, a shard at least {duration(reads / float(rate))}; "
        f"for {named}: {cases} (under the ceiling; the fan-out's default deadline is "
        f"{duration(DEFAULT_SHARD_DEADLINE_SECONDS)})."
    ]


# --------------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fan-out's options (``python -m bench.reconcile_bench`` takes them too)."""
    parser.add_argument(
        "--workers",
        default=DEFAULT_WORKERS,
        help=f"worker counts to measure, must include 1 (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--ecr-tps",
        default=DEFAULT_TPS,
        help="the embedded ECR's requests a second per operation: a number (every operation), or "
        f"'Operation=TPS[:BURST],...,*=TPS' (default {DEFAULT_TPS})",
    )
    parser.add_argument(
        "--worker-rate",
        type=float,
        default=DEFAULT_WORKER_RATE,
        help=f"each invocation's ECR requests a second, ECR_REQUEST_RATE (default {DEFAULT_WORKER_RATE:g})",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=DEFAULT_LATENCY_MS,
        help=f"simulated network round trip per ECR request, client side (default {DEFAULT_LATENCY_MS:g})",
    )
    parser.add_argument(
        "--fit-repos",
        default="",
        help="smaller fleet sizes also measured (with the most workers) for the projection, e.g. 2000,10000",
    )


def settings_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    try:
        workers = parse_counts(args.workers, name="--workers")
        fit = parse_counts(args.fit_repos, name="--fit-repos") if args.fit_repos.strip() else ()
    except ValueError as exc:
        parser.error(str(exc))
    if 1 not in workers:
        parser.error("--workers must include 1: the speedups are measured against one worker")
    if small := [n for n in fit if n <= DEFAULT_SHARD_SIZE]:
        parser.error(
            f"--fit-repos: {small[0]} is not above the shard size ({DEFAULT_SHARD_SIZE}): a Region of one shard is "
            "read in process, not fanned out, and would not be on the same line"
        )
    spec = tps_spec(args.ecr_tps)
    try:
        ecr_throttling.parse_tps(spec)
    except ValueError as exc:
        parser.error(f"--ecr-tps: {exc}")
    if args.worker_rate <= 0:
        parser.error("--worker-rate must be above 0")
    if args.latency_ms < 0:
        parser.error("--latency-ms must be 0 or more")
    return Settings(workers, spec, args.worker_rate, args.latency_ms, fit_repos=fit)


def _shell_word(text: str) -> str:
    return text if all(c.isalnum() or c in "=:,._-" for c in text) else f"'{text}'"


def command_options(settings: Settings) -> list[str]:
    """The fan-out's options as given on a command line (all of them: the report says what was run)."""
    out = [
        f"--workers {','.join(map(str, settings.workers))}",
        f"--ecr-tps {_shell_word(settings.ecr_tps)}",
        f"--worker-rate {settings.worker_rate:g}",
        f"--latency-ms {settings.latency_ms:g}",
    ]
    if settings.fit_repos:
        out.append(f"--fit-repos {','.join(map(str, settings.fit_repos))}")
    return out


def run(rules: int, repositories: int, settings: Settings) -> tuple[Results, list[Check]]:
    results = run_all(rules, repositories, settings)
    return results, checks(results)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout_bench", description="Fan-out benchmark (see the module docstring)."
    )
    parser.add_argument("--rules", type=int, default=50, help=f"desired rules, 1-{rw.MAX_RULES} (default 50)")
    parser.add_argument("--repos", type=int, default=2000, help="repositories (default 2000)")
    parser.add_argument("--out", type=Path, help="write the markdown report here (default: standard output)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.rules <= rw.MAX_RULES:
        parser.error(f"--rules must be 1-{rw.MAX_RULES} (ECR allows {rw.MAX_RULES} pull-through cache rules)")
    if args.repos < 1:
        parser.error("--repos must be at least 1")
    return args, settings_from(parser, args)


def main(argv: Sequence[str] | None = None) -> int:
    args, settings = parse_args(argv)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        results, found = run(args.rules, args.repos, settings)
    except rw.BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    command = ["python -m bench.fanout_bench", f"--rules {args.rules}", f"--repos {args.repos}"]
    command += command_options(settings) + ([f"--out {args.out}"] if args.out else [])
    info = RunInfo(" ".join(command), time.perf_counter() - start, load_before, os.getloadavg()[0])
    report = render(results, found, info)
    failed = [c for c in found if not c.ok]
    if failed or not args.out:
        sys.stdout.write(report)
    for check in failed:
        log(f"CHECK FAILED: {check.claim}: {check.detail}")
    if failed:
        log("no report written")
        return 1
    if args.out:
        write_section(args.out, GENERATOR, report)
        log(f"wrote the fan-out section of {args.out} in {info.elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

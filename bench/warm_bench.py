"""Warming benchmark: upstream requests, bytes through the warmer, and pull-statistics writes, beside a naive loop.

``python -m bench.warm_bench [--images 50] [--repeat 2] [--minutes 60] [--events N] [--out docs/benchmarks.md]``

``python -m bench.warm_bench --pull-stats-only [--minutes 60]`` runs only the pull-statistics loads and prints
their part of the report (with their checks) on standard output.

Everything runs in this process: the embedded AWS (moto + the ECR extension, as the functional tests
install it; fake credentials are forced below, nothing can reach a real account) and a real local
``docker-registry`` with Bearer-token auth (the Docker Hub stand-in) behind the counting proxy of
:class:`~devstack.registry.FrontedRegistry`, seeded with ``--images`` synthetic two-platform images
(:mod:`bench.warm_world`).

Warming, in two worlds on the same upstream, each a fresh embedded AWS:

* **ecrcache** -- the production services and adapters, wired as the functions wire them: a warm set of
  the images x ``linux/amd64`` + ``linux/arm64`` through a Docker Hub rule (credential in Secrets
  Manager), a run requested as the API does, planned by the warm planner, its tasks drained from the
  warm queue into the warm worker;
* **naive** -- a scheduled ``docker pull`` of every image and platform through ECR, every run, every blob
  downloaded.

Scenarios, in each world: **cold** (nothing cached), **warm** (right after: everything fresh), **stale**
(the embedded clock 25 hours on: ECR re-validates every tag, nothing changed upstream), **stale, one
image changed upstream** (a new version of one image published, then 25 hours on). Cold runs once (it
needs a fresh world); the others ``--repeat`` times (each stale repetition 25 more hours on, each changed
one a new version). Counts are per run, times the median.

Pull statistics (:mod:`bench.pull_load`): ``--minutes`` of ``docker pull`` traffic over the same images (Zipf
popularity) at 1,000,000 and at 100,000 pulls a day, streamed and batched as Lambda's SQS event source would
with the template's settings (one batch gathering at a time, and five), through the production
pull-statistics service, its two stores and its compaction on moto, the service's clock each batch's
invocation time: DynamoDB items, requests and (estimated) write request units per 10,000 events, by kind,
with the counters checked against the traffic.

The goals of issue 11 are checked (pass/fail lines in the report); the report is written either way
and the benchmark exits non-zero when a goal is missed. A run that does not do what it should (an image
not warmed, a download short of bytes) stops the benchmark without a report: its numbers would mean nothing.
"""

from __future__ import annotations

# First, before boto3, Powertools and ecrcache are imported: fake credentials, the embedded AWS only.
import bench.environment  # noqa: F401

# isort: split
import argparse
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import moto

from bench import pull_load
from bench import warm_world as ww
from bench.support import Check, machine, write_section
from devstack.aws import clock
from devstack.registry.ratelimit import RequestKind
from ecrcache.services.pull_compaction import DEFAULT_INTERVAL

GENERATOR: Final = "bench/warm_bench.py"
COLD: Final = "cold"
WARM: Final = "warm"
STALE: Final = "stale"
CHANGED: Final = "stale, one image changed upstream"
SCENARIOS: Final = (COLD, WARM, STALE, CHANGED)
DESCRIPTIONS: Final = {
    COLD: "nothing cached in ECR",
    WARM: "right after the cold run: every image verified within 24 h",
    STALE: "the embedded clock 25 h on: ECR re-validates every tag; nothing changed upstream",
    CHANGED: "a new version of one image published upstream, then 25 h on",
}
STALE_AFTER: Final = timedelta(hours=25)
DEFAULT_REPEAT: Final = 2
BYTES_GOAL: Final = 0.01
WRITES_GOAL: Final = 200
PER_EVENTS: Final = pull_load.PER_EVENTS
GOAL_PULLS_PER_DAY: Final = 1_000_000
"""The traffic the writes goal is checked at."""
QUIET_PULLS_PER_DAY: Final = 100_000
DEFAULT_MINUTES: Final = 60
X: Final = "\u00d7"


class BenchError(Exception):
    """A run did not do what it is supposed to (its numbers would mean nothing)."""


def log(message: str) -> None:
    print(f"[warm bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Running the worlds


@dataclass
class Results:
    images: int
    image_bytes: int
    ours: dict[str, list[ww.Sample]] = field(default_factory=dict)
    naive: dict[str, list[ww.Sample]] = field(default_factory=dict)
    loads: list[pull_load.LoadResult] = field(default_factory=list)


def _expect(name: str, sample: ww.Sample, images: Sequence[ww.BenchImage], changed: str | None) -> None:
    """An ecrcache run must have done its job: every image warmed (or fresh), no blob through the warmer."""
    outcome = "fresh" if name == WARM else "warmed"
    if sample.outcomes != Counter({outcome: len(images)}):
        raise BenchError(f"ecrcache {name}: expected {len(images)} {outcome}, got {dict(sample.outcomes)}")
    if changed is not None:
        repository, generation = changed.split("#")
        image = next(i for i in images if i.ecr_repository == repository)
        wanted = ww.build_bench_index(image.repository, image.tag, int(generation)).digest
        if sample.digests.get(repository) != wanted:
            raise BenchError(f"ecrcache {name}: {repository} verified {sample.digests.get(repository)}, not {wanted}")


def _expect_naive(name: str, sample: ww.Sample) -> None:
    if sample.layer_bytes == 0 or sample.served_blob_bytes != sample.layer_bytes:
        raise BenchError(
            f"naive {name}: downloaded {sample.layer_bytes} blob bytes, ECR's URLs served {sample.served_blob_bytes}"
        )


def _world(
    up: ww.Upstream, images: Sequence[ww.BenchImage], repeat: int, run: Callable[[str, str | None], ww.Sample]
) -> dict[str, list[ww.Sample]]:
    """Every scenario in one world (``run(scenario, changed)`` is one counted run)."""
    samples: dict[str, list[ww.Sample]] = {name: [] for name in SCENARIOS}
    samples[COLD].append(run(COLD, None))
    for _ in range(repeat):
        samples[WARM].append(run(WARM, None))
    for _ in range(repeat):
        clock.advance(STALE_AFTER)
        samples[STALE].append(run(STALE, None))
    changed = images[0]
    for generation in range(1, repeat + 1):
        up.publish(changed, generation)
        clock.advance(STALE_AFTER)
        samples[CHANGED].append(run(CHANGED, f"{changed.ecr_repository}#{generation}"))
    return samples


def run_ecrcache(up: ww.Upstream, images: Sequence[ww.BenchImage], repeat: int) -> dict[str, list[ww.Sample]]:
    with ww.embedded_aws(up.proxy_url):
        warming = ww.EcrcacheWarming(up, images)

        def run(name: str, changed: str | None) -> ww.Sample:
            sample, _ = warming.run()
            _expect(name, sample, images, changed)
            log(f"  ecrcache {name}: {sample.seconds:.2f} s, {sample.upstream.manifest_requests} manifest requests")
            return sample

        try:
            return _world(up, images, repeat, run)
        finally:
            up.publish(images[0], 0)


def run_naive(up: ww.Upstream, images: Sequence[ww.BenchImage], repeat: int) -> dict[str, list[ww.Sample]]:
    with ww.embedded_aws(up.proxy_url):
        loop = ww.NaiveLoop(up, images)

        def run(name: str, _changed: str | None) -> ww.Sample:
            sample = loop.run()
            _expect_naive(name, sample)
            log(f"  naive {name}: {sample.seconds:.2f} s, {sample.layer_bytes / 2**20:.1f} MiB downloaded")
            return sample

        try:
            return _world(up, images, repeat, run)
        finally:
            up.publish(images[0], 0)


def event_sources(template: pull_load.EventSource) -> list[pull_load.EventSource]:
    """The template's setting: one batch gathering at a time, and five, as Lambda starts its pollers."""
    return [template, pull_load.EventSource(template.batch_size, template.window_seconds, 5)]


def pull_loads(images: int, minutes: float, events: int | None) -> list[tuple[pull_load.Load, pull_load.EventSource]]:
    """Each traffic level (the goal's, then the quieter one) under each of :func:`event_sources`."""
    sources = event_sources(pull_load.template_event_source())
    return [
        (pull_load.Load(minutes=minutes, pulls_per_day=per_day, images=images, events=events), source)
        for per_day in (GOAL_PULLS_PER_DAY, QUIET_PULLS_PER_DAY)
        for source in sources
    ]


def run_pull_stats(images: int, minutes: float, events: int | None = None) -> list[pull_load.LoadResult]:
    """Every load of :func:`pull_loads` through the production pull-statistics path, each in a fresh table."""
    results: list[pull_load.LoadResult] = []
    with moto.mock_aws():
        for index, (load, source) in enumerate(pull_loads(images, minutes, events)):
            try:
                result = pull_load.run_load(load, source, index=index)
            except pull_load.LoadError as exc:
                raise BenchError(
                    f"pull statistics ({load.pulls_per_day:,} pulls a day, {source.describe()}): {exc}"
                ) from exc
            log(
                f"  pull statistics, {load.pulls_per_day:,} pulls a day, {source.describe()}: "
                f"{result.events:,} events, {result.final.total:,} items "
                f"({result.per(result.final.total):,.0f} per {PER_EVENTS:,}) in {result.seconds:.0f} s"
            )
            results.append(result)
    return results


def run_all(images_count: int, repeat: int, minutes: float, events: int | None) -> Results:
    images = ww.bench_images(images_count)
    log(f"seeding {images_count} images {X} {len(ww.PLATFORMS)} platforms")
    with ww.Upstream(images) as up:
        results = Results(images_count, up.image_bytes)
        log("ecrcache world")
        results.ours = run_ecrcache(up, images, repeat)
        log("naive world")
        results.naive = run_naive(up, images, repeat)
    log(f"pull statistics: {minutes:g} minutes of traffic" + (f", at most {events:,} events" if events else ""))
    results.loads = run_pull_stats(images_count, minutes, events)
    return results


# --------------------------------------------------------------------------------------------------
# Checks (the goals of issue 11)


def manifest_bound(name: str, images: int) -> int:
    """The goal's upstream manifest requests for a run: 0 for fresh images, else 1 + one per child each."""
    return 0 if name == WARM else images * (1 + len(ww.PLATFORMS))


def upstream_checks(results: Results) -> list[Check]:
    out: list[Check] = []
    for name in SCENARIOS:
        bound = manifest_bound(name, results.images)
        what = (
            f"{results.images} fresh images"
            if name == WARM
            else f"{results.images} stale images {X} (1 + {len(ww.PLATFORMS)} children)"
        )
        for sample in results.ours[name]:
            up = sample.upstream
            out.append(
                Check(
                    f"{name}: upstream manifest requests per run at most {bound} ({what})",
                    up.manifest_requests <= bound,
                    f"{up.manifest_requests} (GET {up.count(RequestKind.MANIFEST_GET)}, "
                    f"HEAD {up.count(RequestKind.MANIFEST_HEAD)})",
                )
            )
    return out


def bytes_checks(results: Results) -> list[Check]:
    """Each ecrcache run against the naive loop's smallest run of the scenario."""
    out: list[Check] = []
    for name in SCENARIOS:
        theirs = min(s.process_bytes for s in results.naive[name])
        for sample in results.ours[name]:
            ours = sample.process_bytes
            out.append(
                Check(
                    f"{name}: bytes through the warming process under {BYTES_GOAL:.0%} of the naive loop's "
                    f"(its smallest run: {_bytes(theirs)})",
                    ours < BYTES_GOAL * theirs,
                    f"{_bytes(ours)}: {_percent(ours, theirs)}",
                )
            )
            out.append(
                Check(
                    f"{name}: manifests only, no blob byte through the warmer",
                    sample.served_blob_bytes == 0,
                    f"{sample.served_blob_bytes} blob bytes served by ECR's download URLs during the run",
                )
            )
    return out


def writes_checks(results: Results) -> list[Check]:
    """The goal at its traffic, with the template's setting (one and five batches gathering), counting the
    compaction that folds what the traffic left pending (an upper bound: see :func:`pull_stats_text`)."""
    out: list[Check] = []
    for load in results.loads:
        if load.load.pulls_per_day != GOAL_PULLS_PER_DAY:
            continue
        per = load.per(load.final.total)
        out.append(
            Check(
                f"pull statistics, {GOAL_PULLS_PER_DAY:,} pulls a day, template setting ({load.source.describe()}): "
                f"DynamoDB items written per {PER_EVENTS:,} pull events under {WRITES_GOAL}",
                per < WRITES_GOAL,
                f"{per:,.0f} items with the compaction of the {load.pending_deltas} deltas left pending "
                f"({load.per(load.during.total):,.0f} without it; {load.per(load.final.requests):,.0f} write requests)",
            )
        )
    return out


def checks(results: Results) -> list[Check]:
    return [*upstream_checks(results), *bytes_checks(results), *writes_checks(results)]


# --------------------------------------------------------------------------------------------------
# The report


def _bytes(value: float) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"


def _percent(ours: float, theirs: float) -> str:
    if theirs == 0:
        return "n/a"
    share = 100 * ours / theirs
    return f"{share:.3f} %" if share < 1 else f"{share:.1f} %"


def _time(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _median(samples: Sequence[ww.Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def _spread(samples: Sequence[ww.Sample]) -> str:
    times = [s.seconds for s in samples]
    return "1 run" if len(times) == 1 else f"{min(times):.2f}-{max(times):.2f} s, {len(times)} runs"


def _ops(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{op} {n:,}" for op, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _stable(samples: Sequence[ww.Sample]) -> bool:
    first = samples[0]
    return all(
        (s.upstream.manifest_requests, s.ecr, s.layer_gets)
        == (first.upstream.manifest_requests, first.ecr, first.layer_gets)
        for s in samples
    )


def _row(name: str, who: str, samples: Sequence[ww.Sample], naive: Sequence[ww.Sample]) -> str:
    s, up = samples[0], samples[0].upstream
    through = _bytes(s.process_bytes)
    if who == "ecrcache":
        through += f" ({_percent(s.process_bytes, naive[0].process_bytes)})"
    state = f"{sum(s.dynamodb.values()):,} + {sum(s.sqs.values()):,}" if who == "ecrcache" else "-"
    return (
        f"| {name if who == 'ecrcache' else ''} | {who} | {up.manifest_requests:,} "
        f"({up.count(RequestKind.MANIFEST_GET):,} / {up.count(RequestKind.MANIFEST_HEAD):,}) "
        f"| {up.count(RequestKind.BLOB_GET):,} | {_bytes(up.bytes_sent)} | {through} | {_bytes(s.manifest_bytes)} "
        f"| {sum(s.ecr.values()):,} | {state} | {_time(_median(samples))} |"
    )


def summary(results: Results) -> list[str]:
    lines = [
        "| scenario | who | upstream manifest requests (GET / HEAD) | upstream blob GETs | upstream bytes sent "
        "| bytes through the warming process (share of naive) | of which manifests | ECR calls "
        "| DynamoDB + SQS calls | median time, embedded AWS |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in SCENARIOS:
        lines.append(_row(name, "ecrcache", results.ours[name], results.naive[name]))
        lines.append(_row(name, "naive", results.naive[name], results.naive[name]))
    return lines


def details(results: Results) -> list[str]:
    lines: list[str] = []
    for name in SCENARIOS:
        ours, naive = results.ours[name], results.naive[name]
        s, n = ours[0], naive[0]
        per_image = s.upstream.manifest_requests_by_repository()
        most = max(per_image.values(), default=0)
        same = (
            "the same in every run"
            if _stable(ours) and _stable(naive)
            else "not the same in every run (the table shows the first)"
        )
        lines += [
            f"- **{name}** ({DESCRIPTIONS[name]}). Runs: ecrcache {len(ours)} ({_spread(ours)}), naive {len(naive)} "
            f"({_spread(naive)}); the counts were {same}. "
            f"ecrcache ECR: {_ops(s.ecr)}; DynamoDB: {_ops(s.dynamodb)}; SQS: {_ops(s.sqs)}; the run recorded "
            f"{s.recorded_upstream_requests} upstream requests, the registry answered {s.upstream.manifest_requests} "
            f"manifest requests; at most {most} for one image"
            + (f" ({', '.join(f'{r} {c}' for r, c in per_image.most_common(1))})" if most > 1 else "")
            + f". Naive ECR: {_ops(n.ecr)}, {n.layer_gets:,} blob downloads. Bearer challenges (401) the registry "
            f"answered before a token: ecrcache {s.upstream.challenges:,}, naive {n.upstream.challenges:,}.",
        ]
    return lines


def _label(load: pull_load.LoadResult) -> str:
    gatherers = load.source.gatherers
    return f"{load.load.pulls_per_day:,} pulls/day, {gatherers} batch{'es' if gatherers > 1 else ''} gathering"


def _per(load: pull_load.LoadResult, value: float) -> str:
    return f"{value:,} ({load.per(value):,.0f})"


def pull_stats_table(results: Results) -> list[str]:
    """Two tables: the runs (traffic, batches, compactions), then the writes by kind."""
    kinds = pull_load.WRITE_KINDS
    lines = [
        "| traffic | SQS event source of `PullStatsFunction` (template.yaml) | events (docker pulls) "
        "| minutes of traffic | batches | records per batch | largest invocation payload "
        "| compactions during the traffic | deltas left pending (their events) | time |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for load in results.loads:
        lines.append(
            f"| {load.load.pulls_per_day:,} pulls a day | {load.source.describe()} | {load.events:,} "
            f"({load.events // pull_load.EVENTS_PER_PULL:,}) | {load.traffic_seconds / 60:,.1f} | {load.batches:,} "
            f"| {load.smallest_batch:,}-{load.largest_batch:,} | {_bytes(load.largest_payload)} | {load.during.runs} "
            f"| {load.pending_deltas:,} ({load.pending_events:,}) | {load.seconds:,.0f} s |"
        )
    lines += [
        "",
        f"Items written, with the compaction of the deltas left pending (per {PER_EVENTS:,} events in brackets):",
        "",
        "| traffic, setting | "
        + " | ".join(kinds)
        + " | items | without the final compaction | write requests | est. write request units |",
        "|---|" + "--:|" * (len(kinds) + 4),
    ]
    for load in results.loads:
        final = load.final
        lines.append(
            f"| {_label(load)} | "
            + " | ".join(f"{final.items[kind]:,}" for kind in kinds)
            + f" | **{_per(load, final.total)}** | {_per(load, load.during.total)} | {_per(load, final.requests)} "
            f"| {_per(load, final.total_units)} |"
        )
    return lines


def _per_run(load: pull_load.LoadResult, kind: str) -> float:
    return load.final.items[kind] / max(1, load.final.runs)


def _per_day(load: pull_load.LoadResult) -> float:
    """Items a day at this load's rate: 2 per batch (its put, its delete), and 96 runs a day (one per interval)
    at the measured items per run (counters, seen ids, lease)."""
    batches_a_day = load.batches * 86_400 / max(1.0, load.traffic_seconds)
    runs_a_day = timedelta(days=1) / DEFAULT_INTERVAL
    per_run = sum(_per_run(load, k) for k in (pull_load.COUNTER_WRITES, pull_load.SEEN_ITEMS, pull_load.LEASE_WRITES))
    return 2 * batches_a_day + runs_a_day * per_run


def _units_each(load: pull_load.LoadResult, kind: str) -> float:
    return load.final.units[kind] / max(1, load.final.items[kind])


def _pull_stats_method(results: Results) -> list[str]:
    goal, quiet = results.loads[0], results.loads[-1]
    load = goal.load
    capped = f" (at most {load.events:,} events: a quick run)" if load.events is not None else ""
    interval = DEFAULT_INTERVAL.total_seconds() / 60
    return [
        f"- **Load.** {load.minutes:g} minutes of `docker pull` traffic{capped} over the {load.images} images (Zipf "
        f"popularity, s = {load.zipf}; {pull_load.ARM_SHARE:.0%} arm64; {pull_load.PRINCIPALS} roles), at "
        f"{goal.load.pulls_per_day:,} pulls a day ({goal.events:,} CloudTrail events, {goal.pulls:,} pulls counted: a "
        f"tag and a digest each) and at {quiet.load.pulls_per_day:,} ({quiet.events:,} events). Each pull is "
        f"{pull_load.EVENTS_PER_PULL} events: `BatchGetImage` by tag, `BatchGetImage` by the platform's digest, "
        "`GetDownloadUrlForLayer` for the config and 2 layers. The events are generated lazily in time order and "
        "never all held; records are the project's sample event (`events/pull_stats/`) with fresh ids, times, "
        f"callers and parameters: {goal.record_bytes:,.0f} bytes each on average in the invocation payload.",
        "- **Batches** as Lambda's SQS poller forms them (Lambda developer guide: a batch is sent when it holds "
        "`BatchSize` records, when `MaximumBatchingWindowInSeconds` has passed, or at the 6 MB invocation payload; "
        '"Lambda starts processing five batches at a time"), arrival at the queue taken as the event\'s time, '
        "formed as the records stream past; each batch is invoked at the time its poller closes it.",
        "- **Path.** Each batch through Powertools' `SqsModel` and `PullStatsService` wired as "
        "`functions/pull_stats/app.py` wires it: `DynamoDbPullStatsStore`, and a `PullCompaction` over "
        "`DynamoDbPullCompactionStore` on the same client, on moto; the service's clock is the batch's invocation "
        "time. A batch writes one delta item (`PutItem`). The batch after which a compaction is due (the first "
        f"batch, then the first one {interval:g} minutes after the last run finished) runs it: it takes the lease "
        "(a lease write), writes the ids it counted as a seen-id item per minute of events (`BatchWriteItem`), "
        "adds to each counter its deltas touch, once (`UpdateItem`), deletes the deltas (`BatchWriteItem`) and "
        "frees the lease (a second lease write).",
        "- **Counting.** Items and requests are the two stores' own counters (`write_items`, `write_requests`); the "
        "kinds are the same writes seen through botocore's hooks on their client, which must add up to the stores' "
        "counts. Write request units are an estimate per write from the sizes of the items written (1 unit per "
        "KB, rounded up, of the larger of the item before and after a put or update, of the deleted item for a "
        "delete): a put item's size from its parameters, an updated item read back after the update (outside the "
        "counts).",
        "- **Exactness.** At the end the deltas still pending are counted (the next compaction would fold them), "
        f"then folded by one more run at the last batch's time + {interval:g} minutes, as the next batch would run "
        "it. Before that run (the API's answer: the stored counters plus the pending deltas) and after it (the "
        "counters alone, and the layer requests stored per repository), the pulls of every tag and digest that "
        "`PullStatsService.pulls` answers equal the traffic's, counter by counter; the benchmark stops otherwise.",
    ]


def pull_stats_text(results: Results) -> list[str]:
    loads = results.loads
    goal = [load for load in loads if load.load.pulls_per_day == GOAL_PULLS_PER_DAY]
    quiet = [load for load in loads if load.load.pulls_per_day != GOAL_PULLS_PER_DAY]
    one, five = goal[0], goal[-1]
    counters, seen = pull_load.COUNTER_WRITES, pull_load.SEEN_ITEMS
    return [
        *_pull_stats_method(results),
        "",
        *pull_stats_table(results),
        "",
        "- **What the writes are.** Per batch, two items: its delta put, and its delete by the run that folds it. "
        "Per compaction run, each counter its deltas touch, once: at most the day's counters, "
        f"{one.counters} here ({one.load.images} tag counters, a digest counter per image and platform pulled, "
        f"{one.load.images} layer counters); a seen-id item per minute of events (two for a minute whose deltas two "
        f"runs fold); two lease writes. At {GOAL_PULLS_PER_DAY:,} pulls a day with one batch gathering: "
        f"{one.batches:,} batches of up to {one.largest_batch:,} records, {one.final.runs} runs (the last the final "
        f"one) of {_per_run(one, counters):,.0f} counter writes, {_per_run(one, seen):,.0f} seen-id items and "
        f"{_per_run(one, pull_load.DELTA_DELETES):,.0f} delta deletes each on average; with five gathering, batches "
        f"cut by the {one.source.window_seconds} s window hold {five.smallest_batch:,}-{five.largest_batch:,} "
        f"records, so {five.batches:,} delta puts and as many deletes. (The largest setting the event source "
        "allows, BatchSize 10,000 and a 300 s window, is no longer measured: the batch size only changes the 2 items "
        "per batch, as these rows show, not what the compaction writes.)",
        f"- **The goal (under {WRITES_GOAL} items per {PER_EVENTS:,} events at {GOAL_PULLS_PER_DAY:,} pulls a day, "
        f"template setting):** {one.per(one.final.total):,.0f} with one batch gathering, "
        f"{five.per(five.final.total):,.0f} with five. These count the run that folds the "
        f"{one.pending_deltas} / {five.pending_deltas} deltas the traffic left pending; without it, "
        f"{one.per(one.during.total):,.0f} / {five.per(five.during.total):,.0f}. " + _steady(one),
        *_quiet_text(loads, quiet),
        f"- **Write request units** (estimate) per {PER_EVENTS:,} events at {GOAL_PULLS_PER_DAY:,} pulls a day: "
        f"{one.per(one.final.total_units):,.0f} with one batch gathering, {five.per(five.final.total_units):,.0f} "
        f"with five. The delta items weigh most: {_units_each(one, pull_load.DELTA_PUTS):,.0f} units each for "
        f"{one.largest_batch:,} events (compressed), paid at the put and again at the delete; then the seen-id "
        f"items, {_units_each(one, seen):,.0f} units each (a minute's ids); a counter write is "
        f"{_units_each(one, counters):,.1f}. Write requests: {one.per(one.final.requests):,.0f} per "
        f"{PER_EVENTS:,} events (one `PutItem` per batch; the runs' `UpdateItem`s and 25-item `BatchWriteItem`s).",
    ]


def _steady(load: pull_load.LoadResult) -> str:
    """Where a steady flow's figure lies: the traffic paid for the runs of its intervals (the first at the
    first batch), and left the deltas of the last for the next run."""
    runs = load.during.runs
    intervals = load.traffic_seconds / DEFAULT_INTERVAL.total_seconds()
    said = f"The traffic itself ran {runs} compaction{'s' if runs != 1 else ''} (the first at the first batch"
    if abs(intervals - round(intervals)) < 0.01 and runs == round(intervals):
        return (
            f"{said}, then one per {DEFAULT_INTERVAL.total_seconds() / 60:g} minutes: as many as a steady flow runs in "
            f"{load.traffic_seconds / 60:.0f} minutes) but left the last interval's deltas unfolded, so a steady "
            "flow's figure lies between the two: the checked one is its upper bound."
        )
    return f"{said}) over {intervals:.1f} intervals: only whole intervals of traffic give a steady flow's figure."


def _quiet_text(loads: Sequence[pull_load.LoadResult], quiet: Sequence[pull_load.LoadResult]) -> list[str]:
    if not quiet:
        return []
    low = quiet[0]
    figures = ", ".join(f"{q.per(q.final.total):,.0f} ({q.source.gatherers} gathering)" for q in quiet)
    days = "; ".join(f"{_label(load)}: ~{_per_day(load):,.0f}" for load in loads)
    return [
        f"- **Quieter traffic ({low.load.pulls_per_day:,} pulls a day):** {figures} items per {PER_EVENTS:,} "
        f"events: above {WRITES_GOAL}, because the writes no longer follow the events. Batches close at the "
        f"{low.source.window_seconds} s window before they fill ({low.smallest_batch:,}-{low.largest_batch:,} "
        "records with one gathering), and a run still writes nearly every counter of the day "
        f"({_per_run(low, pull_load.COUNTER_WRITES):,.0f} of the {low.counters} per run on average). The writes "
        f"are bounded per day instead: 2 per batch, at most one batch per gatherer per {low.source.window_seconds} s "
        "while traffic is low, and "
        f"{timedelta(days=1) / DEFAULT_INTERVAL:.0f} runs a day of at most the day's counters, the seen-id items of "
        f"their minutes and 2 lease writes. Items a day at the measured rates (2 per batch, plus the measured "
        f"items per run {X} {timedelta(days=1) / DEFAULT_INTERVAL:.0f}): {days}.",
    ]


def _same_upstream(results: Results, name: str) -> bool:
    ours, theirs = results.ours[name][0].upstream, results.naive[name][0].upstream
    kinds = (RequestKind.MANIFEST_GET, RequestKind.MANIFEST_HEAD, RequestKind.BLOB_GET)
    return all(ours.count(k) == theirs.count(k) for k in kinds)


def interpretation(results: Results) -> list[str]:
    cold, warm, stale, changed = (results.ours[n][0] for n in SCENARIOS)
    naive_warm, naive_stale = results.naive[WARM][0], results.naive[STALE][0]
    same = all(_same_upstream(results, n) for n in SCENARIOS)
    per_image = sum(stale.ecr.values()) / results.images
    most_changed = max(changed.upstream.manifest_requests_by_repository().values(), default=0)
    mismatched = {
        n: (s.recorded_upstream_requests, s.upstream.manifest_requests)
        for n in SCENARIOS
        for s in results.ours[n]
        if s.recorded_upstream_requests != s.upstream.manifest_requests
    }
    return [
        "- **ECR's 24-hour window already spares the upstream; ecrcache spares everything else.** "
        + (
            "Through the pull-through cache, the naive loop reached the upstream with exactly as many manifest "
            "and blob requests as ecrcache in every scenario"
            if same
            else "The naive loop's manifest requests differ from ecrcache's in some scenario (see the table)"
        )
        + f": ECR itself re-validates a tag at most once in 24 hours ({stale.upstream.manifest_requests} HEADs for "
        f"{results.images} stale images, none when fresh). What the naive loop pays on every run is the bytes -- "
        f"{_bytes(naive_stale.process_bytes)} of blobs through the process against ecrcache's "
        f"{_bytes(stale.process_bytes)} of API answers ({_percent(stale.process_bytes, naive_stale.process_bytes)}) "
        f"-- and the calls: {sum(naive_warm.ecr.values()):,} ECR calls when everything is fresh, where ecrcache "
        f"makes {sum(warm.ecr.values())} (the planner skips fresh images from its own records: "
        f"{sum(warm.dynamodb.values())} DynamoDB calls, {_time(_median(results.ours[WARM]))}). Pointed at Docker "
        "Hub directly (`skopeo copy` without ECR; not measured here), the same loop would also pull every manifest "
        "and blob from the upstream on every run.",
        f"- **Cold:** {'the same' if _same_upstream(results, COLD) else 'not the same'} upstream traffic for both "
        f"(ecrcache: {cold.upstream.manifest_requests} manifest GETs: "
        f"{results.images} indexes and their {len(ww.PLATFORMS)} children; {cold.upstream.count(RequestKind.BLOB_GET)} "
        "blob GETs by ECR's layer import). The warmer asks ECR for the layer URLs only, so ECR imports the layers "
        "and none passes through it.",
        f"- **Stale:** {stale.upstream.manifest_requests} manifest requests for {results.images} images "
        f"({stale.upstream.count(RequestKind.MANIFEST_HEAD)} HEADs, {stale.upstream.count(RequestKind.MANIFEST_GET)} "
        "GETs: ECR re-validates each tag; nothing changed, nothing imported). The worker still verifies every "
        f"platform: {per_image:.0f} ECR calls per image "
        f"({_ops({k: v // results.images for k, v in stale.ecr.items()})}), against "
        f"{sum(naive_stale.ecr.values()) / results.images:.0f} for the naive loop -- "
        + ("more" if sum(stale.ecr.values()) > sum(naive_stale.ecr.values()) else "not more")
        + " calls, but no blob download.",
        f"- **One image changed upstream:** {changed.upstream.manifest_requests} manifest requests, "
        f"{most_changed} of them for the changed image: the embedded ECR re-validates with a HEAD, then GETs the new "
        f"index and its {len(ww.PLATFORMS)} children (within the goal's bound for the run; per image, one more than "
        "1 + children, which is how the embedded ECR refreshes: ECR documents no count).",
        (
            "- **The run's own count matches the registry's:** the upstream requests each run recorded (what "
            "`ecrcache warm` shows) equal the manifest requests the registry answered, in every run."
            if not mismatched
            else "- **The run's own count is an estimate:** it differs from the manifest requests the registry "
            "answered in "
            + "; ".join(f"*{n}* (recorded {r}, answered {a})" for n, (r, a) in mismatched.items())
            + ". The worker counts a tag whose digest changed as its index and children; the embedded ECR "
            "spends a HEAD on the re-validation first."
        ),
        f"- **Bytes are conservative for ecrcache:** the synthetic layers are {_bytes(ww.LAYER_BYTES[0])}-"
        f"{_bytes(ww.LAYER_BYTES[1])} ({_bytes(results.image_bytes / results.images)} an image, both platforms); "
        "real images are tens of MB, which the naive loop downloads and ecrcache does not, so the share would be "
        "smaller still.",
        f"- **Times are the embedded AWS's, in one process.** A cold run is mostly the layer import through the "
        f"proxy, the same for both. In a stale run ecrcache took {_time(_median(results.ours[STALE]))} and the naive "
        f"loop {_time(_median(results.naive[STALE]))}: ecrcache's run includes {sum(stale.dynamodb.values()):,} "
        f"DynamoDB calls ({sum(stale.dynamodb.values()) / results.images:.0f} per image: the run, the image's "
        "outcome, its freshness, the upstream budget) on moto, slow at transactions, while the naive loop's "
        f"{_bytes(naive_stale.layer_bytes)} of downloads cost little over loopback. Neither transfers to AWS, where "
        "every call is a network round trip and the naive loop's bytes cross the network on every run.",
    ]


@dataclass(frozen=True)
class RunInfo:
    command: str
    repeat: int
    elapsed: float
    load_before: float
    load_after: float


def intro(results: Results, info: RunInfo) -> list[str]:
    layers = f"{ww.LAYERS_PER_IMAGE} layers of {_bytes(ww.LAYER_BYTES[0])}-{_bytes(ww.LAYER_BYTES[1])}"
    return [
        "## Warming: upstream requests, bytes through the warmer, pull-statistics writes",
        "",
        f"<!-- Generated by python -m bench.warm_bench: change {GENERATOR} and run it again. -->",
        "",
        f"Issue 11's goals for a warm set of **{results.images} images {X} {len(ww.PLATFORMS)} platforms**, measured "
        "in one run beside the naive baseline a team would write (a scheduled `docker pull` of every image, every "
        "run). One process: the embedded AWS (moto + the ECR extension, as the functional tests install it) and a "
        "real local `docker-registry` with Bearer-token auth (the Docker Hub stand-in) behind the counting proxy of "
        "`FrontedRegistry`, mapped in for `registry-1.docker.io`.",
        "",
        f"- **Images.** {results.images} synthetic Docker manifest lists (`library/bench-NN:1.0`, "
        f"{' + '.join(ww.PLATFORMS)}), each platform a config and {layers} (log-uniform, random bytes): "
        f"{_bytes(results.image_bytes)} of blobs in all, pushed once into the registry.",
        "- **ecrcache**: `WarmRunsService` (what `POST /v1/warm-sets/{name}/runs` calls), `WarmPlannerService` "
        "(for the request, as on its stream record), SQS on moto drained ten messages at a time (the worker's "
        "`BatchSize`) into `WarmWorkerService.handle`, with the production adapters (`DynamoDbWarmRunStore`, "
        "`DynamoDbUpstreamBudget`, `SqsWarmQueue`, `OciUpstreamRegistry`, `DynamoDbPullStatsStore`, "
        "`Boto3EcrWarmer`). Desired state through `DesiredStateService`: a Docker Hub rule `docker-hub` with its "
        "credential in Secrets Manager (the registry's user), a warm set of the images for both platforms, budget "
        f"{results.images} {X} 3 upstream requests per run; the ECR rule created with the secret's ARN.",
        "- **Naive**: per image and platform, every run, what `docker pull --platform` does through ECR: "
        "`BatchGetImage` by tag, `BatchGetImage` of the platform's child by digest, then `GetDownloadUrlForLayer` "
        "and a `GET` of the URL for the config and each layer (a runner without a layer cache; every blob's bytes "
        "pass through the process). No freshness, no budget. Its own fresh embedded AWS on the same registry.",
        f"- **Scenarios**: {'; '.join(f'*{n}*: {DESCRIPTIONS[n]}' for n in SCENARIOS)}. The changed image is "
        "`library/bench-00` (a new generation: new index, children and layers); the registry is put back as "
        "seeded between the worlds.",
        "- **Counting.** *Upstream requests*: the proxy's request log, manifest GET / HEAD and blob GET by path, "
        "answered by the registry; its 401 Bearer challenges are counted apart (the embedded ECR meets one per "
        "connection before its token; the token server is not behind the proxy). *Upstream bytes sent*: response "
        "bytes the proxy sent. *Bytes through the warming process*: the HTTP response bodies of every ECR call "
        "the process makes (botocore `after-call`, `len(http_response.content)`: the warm worker's client; the "
        "naive loop's client) plus every blob downloaded from ECR's download URLs (the embedded ECR's URL endpoint "
        "counts what it serves: ecrcache's runs must see 0). *Of which manifests*: the `imageManifest` strings of "
        "`BatchGetImage` answers. ecrcache's DynamoDB and SQS answers (its state and queue) are not image bytes and "
        "not in that column. *Calls*: botocore `before-call` per client (retries not counted); setup writes not "
        "counted. *Time*: `time.perf_counter` around request + plan + drain, or one naive loop.",
        f"- **Repetitions.** Cold once per world (it needs a fresh one); warm, stale and changed {info.repeat} times "
        "each (each stale or changed run 25 more hours on). Times are medians; the counts are per run.",
        "",
        f"Command ({info.elapsed:.0f} s on the machine below, setup and pull statistics included):",
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
    ]


def render(results: Results, found: Sequence[Check], info: RunInfo) -> str:
    out = [*intro(results, info), "", "### Summary", "", *summary(results)]
    out += ["", "### Checks: the goals of issue 11 (the benchmark exits non-zero when one fails)", ""]
    claims: dict[str, list[Check]] = {}
    for check in found:
        claims.setdefault(check.claim, []).append(check)
    for claim, items in claims.items():
        status = "pass" if all(c.ok for c in items) else "**FAIL**"
        out.append(f"- {status}: {claim}: {'; '.join(dict.fromkeys(c.detail for c in items))} ({len(items)} run(s)).")
    out += ["", "### Scenarios", "", *details(results)]
    out += ["", "### Interpretation", "", *interpretation(results)]
    out += ["", f"### Pull statistics: DynamoDB writes per {PER_EVENTS:,} pull events", "", *pull_stats_text(results)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.warm_bench", description="Warming benchmark (see the module docstring)."
    )
    parser.add_argument("--images", type=int, default=ww.IMAGE_COUNT, help="images in the warm set (default 50)")
    parser.add_argument(
        "--repeat", type=int, default=DEFAULT_REPEAT, help=f"runs of warm, stale and changed (default {DEFAULT_REPEAT})"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=DEFAULT_MINUTES,
        help=f"minutes of pull traffic per pull-statistics load (default {DEFAULT_MINUTES}: "
        f"{DEFAULT_MINUTES / (DEFAULT_INTERVAL.total_seconds() / 60):g} compaction intervals)",
    )
    parser.add_argument(
        "--events", type=int, help="at most this many pull events per load (a quick run; default: all of --minutes)"
    )
    parser.add_argument(
        "--pull-stats-only",
        action="store_true",
        help="run only the pull-statistics loads; print their part of the report (with its checks) to standard output",
    )
    parser.add_argument("--out", type=Path, help="write the report's section here (default: standard output)")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 200:
        parser.error("--images must be 1-200 (a warm set lists at most 200 images)")
    if args.repeat < 1 or (args.events is not None and args.events < 1) or args.minutes <= 0:
        parser.error("--repeat and --events must be at least 1, --minutes above 0")
    if args.pull_stats_only and args.out:
        parser.error("--pull-stats-only prints a part of the section: it cannot replace the section in --out")
    return args


def _finish(found: Sequence[Check]) -> int:
    failed = [c for c in found if not c.ok]
    for check in failed:
        log(f"GOAL MISSED: {check.claim}: {check.detail}")
    return 1 if failed else 0


def pull_stats_only(args: argparse.Namespace) -> int:
    """``--pull-stats-only``: the pull-statistics loads alone, their report part and checks on standard output."""
    start = time.perf_counter()
    try:
        results = Results(args.images, 0, loads=run_pull_stats(args.images, args.minutes, args.events))
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    found = writes_checks(results)
    lines = [f"### Pull statistics: DynamoDB writes per {PER_EVENTS:,} pull events", "", *pull_stats_text(results), ""]
    lines += [f"- {'pass' if c.ok else '**FAIL**'}: {c.claim}: {c.detail}." for c in found]
    sys.stdout.write("\n".join(lines) + "\n")
    log(f"pull statistics in {time.perf_counter() - start:.0f} s")
    return _finish(found)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pull_stats_only:
        return pull_stats_only(args)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        results = run_all(args.images, args.repeat, args.minutes, args.events)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    found = checks(results)
    command = ["python -m bench.warm_bench", f"--images {args.images}", f"--repeat {args.repeat}"]
    command += [f"--minutes {args.minutes:g}"] + ([f"--events {args.events}"] if args.events else [])
    command += [f"--out {args.out}"] if args.out else []
    info = RunInfo(" ".join(command), args.repeat, time.perf_counter() - start, load_before, os.getloadavg()[0])
    report = render(results, found, info)
    if args.out:
        write_section(args.out, GENERATOR, report)
        log(f"wrote the warming section of {args.out} in {info.elapsed:.0f} s")
    else:
        sys.stdout.write(report)
    return _finish(found)


if __name__ == "__main__":
    sys.exit(main())

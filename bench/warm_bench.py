"""Warming benchmark: upstream requests, bytes through the warmer, and pull-statistics writes, beside a naive loop.

``python -m bench.warm_bench [--images 50] [--repeat 3] [--events 10000] [--out docs/benchmarks.md]``

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

Pull statistics (:mod:`bench.pull_load`): ``--events`` CloudTrail pull events of a 1M-pulls/day account
over the same images (Zipf popularity), batched as Lambda's SQS event source would with the template's
settings (and with others, for comparison), through the production pull-statistics service and store on
moto: DynamoDB items and requests written per 10,000 events.

The goals of issue 11 are checked (pass/fail lines in the report); the report is written either way
and the benchmark exits non-zero when a goal is missed. A run that does not do what it should (an image
not warmed, a download short of bytes) stops the benchmark without a report: its numbers would mean nothing.
"""

from __future__ import annotations

# First, before boto3, Powertools and ecrcache are imported: fake credentials, the embedded AWS only.
import bench.environment  # noqa: F401

# isort: split
import argparse
import math
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
from bench.support import machine, one_rollback_copy_per_table, write_section
from devstack.aws import clock
from devstack.registry.ratelimit import RequestKind

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
PER_EVENTS: Final = 10_000
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
    record_bytes: float = 0.0


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
    """The template's setting (one batch gathering at a time, and five as Lambda starts), then the largest
    the event source allows (BatchSize 10,000, window 300 s), for comparison."""
    largest = pull_load.EventSource(pull_load.MAX_BATCH_SIZE, pull_load.MAX_WINDOW_SECONDS)
    return [
        template,
        pull_load.EventSource(template.batch_size, template.window_seconds, 5),
        largest,
        pull_load.EventSource(largest.batch_size, largest.window_seconds, 5),
    ]


def run_pull_stats(images: int, events: int) -> tuple[list[pull_load.LoadResult], float]:
    records = pull_load.EventFactory(pull_load.Load(events=events, images=images)).records()
    average = statistics.fmean(r.size for r in records)
    results: list[pull_load.LoadResult] = []
    with moto.mock_aws(), one_rollback_copy_per_table():
        for index, source in enumerate(event_sources(pull_load.template_event_source())):
            result = pull_load.run_load(records, source, index=index)
            if result.failed or result.dropped:
                raise BenchError(
                    f"pull statistics ({source.describe()}): {result.failed} failed, {result.dropped} dropped"
                )
            log(f"  pull statistics, {source.describe()}: {result.write_items} items in {result.batches} batches")
            results.append(result)
    return results, average


def run_all(images_count: int, repeat: int, events: int) -> Results:
    images = ww.bench_images(images_count)
    log(f"seeding {images_count} images {X} {len(ww.PLATFORMS)} platforms")
    with ww.Upstream(images) as up:
        results = Results(images_count, up.image_bytes)
        log("ecrcache world")
        results.ours = run_ecrcache(up, images, repeat)
        log("naive world")
        results.naive = run_naive(up, images, repeat)
    log(f"pull statistics: {events:,} events")
    results.loads, results.record_bytes = run_pull_stats(images_count, events)
    return results


# --------------------------------------------------------------------------------------------------
# Checks (the goals of issue 11)


@dataclass(frozen=True)
class Check:
    claim: str
    ok: bool
    detail: str


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
    out: list[Check] = []
    for load in results.loads[:2]:  # the template's setting, one and five batches gathering
        per = load.per(load.write_items)
        out.append(
            Check(
                f"pull statistics, template setting ({load.source.describe()}): DynamoDB items written per "
                f"{PER_EVENTS:,} pull events under {WRITES_GOAL}",
                per < WRITES_GOAL,
                f"{per:,.0f} items ({load.per(load.write_requests):,.0f} TransactWriteItems requests)",
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


def pull_stats_table(results: Results) -> list[str]:
    lines = [
        "| SQS event source of `PullStatsFunction` | batches | records per batch | largest invocation payload "
        f"| items written | per {PER_EVENTS:,} events | TransactWriteItems | estimated write request units "
        "| counters + minutes touched per batch (mean) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for i, load in enumerate(results.loads):
        label = load.source.describe() + (" (template.yaml)" if i < 2 else " (the largest the event source allows)")
        lines.append(
            f"| {label} | {load.batches:,} | {min(load.batch_sizes):,}-{max(load.batch_sizes):,} "
            f"| {_bytes(load.largest_payload)} | {load.write_items:,} | {load.per(load.write_items):,.0f} "
            f"| {load.write_requests:,} | {load.write_units:,} | {sum(load.touched.values()) / load.batches:,.0f} |"
        )
    return lines


def _meets(results: Results, records_cap: int, floor_batches: int, digests: float) -> str:
    """Which event-source setting, if any, meets the writes goal, and what bounds the writes."""
    template, largest = results.loads[0], results.loads[2]
    meeting = [load for load in results.loads if load.per(load.write_items) < WRITES_GOAL]
    bound = (
        f"The largest setting (BatchSize 10,000, window 300 s) is capped by the 6 MB payload at about "
        f"{records_cap:,} records of {results.record_bytes:,.0f} bytes, so {template.events:,} events need at least "
        f"{floor_batches} batch(es), each touching most of the {template.distinct_counters} counters: "
        f"{largest.per(largest.write_items):,.0f} items measured"
        + (
            f" (the {template.events:,} events last {_traffic_seconds(template):,.0f} s, less than its window: the "
            "last batches close at the end of the sample)."
            if _traffic_seconds(template) < pull_load.MAX_WINDOW_SECONDS
            else "."
        )
    )
    if meeting:
        return (
            f"- **Settings that meet the goal of under {WRITES_GOAL}:** "
            + "; ".join(f"{m.source.describe()} ({m.per(m.write_items):,.0f})" for m in meeting)
            + f". {bound}"
        )
    return (
        f"- **No event-source setting meets the goal of under {WRITES_GOAL} for this traffic.** {bound} Under "
        f"{WRITES_GOAL} items per {PER_EVENTS:,} events would need each counter written less than about once per "
        f"{PER_EVENTS:,} events: counting across batches (e.g. buffering in the function between invocations, "
        "which gives up the exactly-once writes), or fewer counters per pull (the per-digest counters are "
        f"{digests:.0%} of the items)."
    )


def _traffic_seconds(load: pull_load.LoadResult) -> float:
    rate = pull_load.Load().pull_rate * (2 + pull_load.BLOBS_PER_PULL)
    return load.events / rate


def pull_stats_text(results: Results) -> list[str]:
    template, gathering = results.loads[0], results.loads[1]
    load = pull_load.Load()
    per_pull = 2 + pull_load.BLOBS_PER_PULL
    events_per_day = load.pulls_per_day * per_pull
    records_cap = pull_load.PAYLOAD_LIMIT // max(1, math.ceil(results.record_bytes))
    floor_batches = math.ceil(template.events / records_cap)
    touched = template.touched
    digests = touched["digest"] / max(1, template.write_items)
    return [
        f"- **Load.** {template.events:,} CloudTrail pull events: `docker pull` runs of the {results.images} images "
        f"(Zipf popularity, s = {load.zipf}; {pull_load.ARM_SHARE:.0%} arm64; {pull_load.PRINCIPALS} roles) at "
        f"{load.pulls_per_day:,} pulls a day, each pull {per_pull} events: `BatchGetImage` by tag, `BatchGetImage` "
        f"by the platform's digest, `GetDownloadUrlForLayer` for the config and 2 layers "
        f"({template.events // per_pull:,} docker pulls, {template.pulls:,} pulls counted: a tag and a digest each; "
        f"{_traffic_seconds(template):,.0f} s of traffic). Records "
        f"are the project's sample event (`events/pull_stats/`) with fresh ids, times, callers and parameters: "
        f"{results.record_bytes:,.0f} bytes each on average in the invocation payload.",
        "- **Batches** as Lambda's SQS poller forms them (Lambda developer guide: a batch is sent when it holds "
        "`BatchSize` records, when `MaximumBatchingWindowInSeconds` has passed, or at the 6 MB invocation payload; "
        '"Lambda starts processing five batches at a time", and with `MaximumConcurrency` set it does not go '
        "below five), arrival at the queue taken as the event's time; then through Powertools' `SqsModel`, "
        "`PullStatsService` and `DynamoDbPullStatsStore` on moto, as `functions/pull_stats` runs them. Items and "
        "requests are the store's own counters (`write_items`, `write_requests`); write request units are an "
        "estimate from the items' sizes before and after each batch (2 units per KB of the larger, transactional).",
        "",
        *pull_stats_table(results),
        "",
        f"- **What drives the writes: distinct counters per batch {X} batches.** One transaction action per "
        "counter a batch touches and per minute of its events, whatever the number of events: a batch writes each "
        f"image's tag counter, a digest counter per platform pulled and the repository's layer counter. With the "
        f"template's setting a batch of {max(template.batch_sizes):,} records touched on average "
        f"{sum(touched.values()) / template.batches:,.0f} of them ({touched['tag']:,} tag, {touched['digest']:,} "
        f"digest, {touched['layer']:,} layer counters and {touched['minute']:,} minute item(s) over "
        f"{template.batches} batch(es); the digest counters are {digests:.0%} of the items): "
        f"{template.per(template.write_items):,.0f} items per {PER_EVENTS:,} events, "
        f"{gathering.per(gathering.write_items):,.0f} with five batches gathering at once (smaller batches, cut "
        "by the window). The table holds "
        f"{template.distinct_counters} counters for the day, so a batch can never write more than that plus its "
        "minutes.",
        _meets(results, records_cap, floor_batches, digests),
        f"- **Requests, not items, are few:** {template.per(template.write_requests):,.0f} `TransactWriteItems` "
        f"per {PER_EVENTS:,} events with the template's setting, one batch gathering (one or two per batch); at "
        f"{load.pulls_per_day:,} pulls a day "
        f"({events_per_day:,} events) that is about {template.per(template.write_requests, events_per_day):,.0f} "
        f"requests but {template.per(template.write_items, events_per_day):,.0f} items and ~"
        f"{template.per(template.write_units, events_per_day):,.0f} write request units a day (estimate). The "
        f"minute's seen-id item grows to {_bytes(template.largest_seen_item)} and is rewritten by every batch of that "
        "minute, which the units include.",
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
    parser.add_argument("--events", type=int, default=PER_EVENTS, help="pull events (default 10000)")
    parser.add_argument("--out", type=Path, help="write the report's section here (default: standard output)")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 200:
        parser.error("--images must be 1-200 (a warm set lists at most 200 images)")
    if args.repeat < 1 or args.events < 1:
        parser.error("--repeat and --events must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        results = run_all(args.images, args.repeat, args.events)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    found = checks(results)
    command = ["python -m bench.warm_bench", f"--images {args.images}", f"--repeat {args.repeat}"]
    command += [f"--events {args.events}"] + ([f"--out {args.out}"] if args.out else [])
    info = RunInfo(" ".join(command), args.repeat, time.perf_counter() - start, load_before, os.getloadavg()[0])
    report = render(results, found, info)
    if args.out:
        write_section(args.out, GENERATOR, report)
        log(f"wrote the warming section of {args.out} in {info.elapsed:.0f} s")
    else:
        sys.stdout.write(report)
    failed = [c for c in found if not c.ok]
    for check in failed:
        log(f"GOAL MISSED: {check.claim}: {check.detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

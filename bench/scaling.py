"""The fan-out benchmark's arithmetic and tables (bench/fanout_bench.py): pure, no AWS, clock or I/O.

What the report claims rests on these: the throttling ceiling (the embedded ECR's configured TPS over the
calls each repository needs of that operation), the speedup of N workers over one, a least-squares line
through (repositories, seconds) points and its residuals (the projection to sizes not measured), and the
rows of the report's tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

X: Final = "\u00d7"  # the multiplication sign, in the report


def parse_counts(text: str, *, name: str, minimum: int = 1) -> tuple[int, ...]:
    """``"1,2,4,8"`` -> ``(1, 2, 4, 8)``: sorted, duplicates dropped; a clear error naming ``name`` otherwise."""
    parts = [p.strip().replace("_", "") for p in text.split(",") if p.strip()]
    if not parts:
        msg = f"{name} must list at least one number (e.g. 1,2,4)"
        raise ValueError(msg)
    values: set[int] = set()
    for part in parts:
        if not part.isdigit():
            msg = f"{name}: {part!r} is not a whole number"
            raise ValueError(msg)
        value = int(part)
        if value < minimum:
            msg = f"{name}: {value} is below {minimum}"
            raise ValueError(msg)
        values.add(value)
    return tuple(sorted(values))


def tps_spec(text: str) -> str:
    """``--ecr-tps``: a bare number is every operation's rate (``"100"`` -> ``"*=100"``); anything else is the
    embedded ECR's own form (``"Operation=TPS[:BURST],...,*=TPS"``), left for it to check."""
    text = text.strip()
    try:
        float(text)
    except ValueError:
        return text
    return f"*={text}"


def ceiling_per_second(tps: Mapping[str, float], per_repository: Mapping[str, float]) -> float | None:
    """Repositories a second the throttled API lets through: each operation has its own bucket of ``tps[op]``
    requests a second (an operation missing from ``tps`` is not throttled), so the operation that runs out first
    sets the pace (``tps / calls of it per repository``). ``None`` when nothing needed per repository is throttled."""
    rates = [tps[op] / calls for op, calls in per_repository.items() if calls > 0 and op in tps]
    return min(rates) if rates else None


def shard_sizes(repositories: int, shard_size: int) -> list[int]:
    """The shards a coordinator makes of ``repositories`` (sorted names, chunked): all full but the last."""
    full, rest = divmod(repositories, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


def makespan(shards: Sequence[int], workers: int, per_second: float) -> float:
    """Seconds until ``workers`` workers, each taking the next shard from the queue when free and doing
    ``per_second`` repositories a second, have done every shard (in queue order)."""
    free = [0.0] * max(1, workers)
    for size in shards:
        index = free.index(min(free))
        free[index] += size / per_second
    return max(free)


def expected_seconds(
    shards: Sequence[int],
    *,
    workers: int,
    worker_rate: float | None,
    calls_per_repository: float,
    ceiling: float | None,
) -> float | None:
    """The least time the per-repository work can take: no less than the ``shards`` over the throttling
    ceiling, nor than ``workers`` workers take for them at ``worker_rate`` requests a second each, a shard being
    one worker's (taken from the queue in turn). ``None`` when neither limit is set (only the machine bounds it)."""
    bounds: list[float] = []
    if ceiling:
        bounds.append(sum(shards) / ceiling)
    if worker_rate and calls_per_repository > 0:
        bounds.append(makespan(shards, workers, worker_rate / calls_per_repository))
    return max(bounds) if bounds else None


def speedup(one_worker: float, seconds: float) -> float:
    return one_worker / seconds if seconds > 0 else math.inf


@dataclass(frozen=True)
class Fit:
    """The least-squares line ``seconds = intercept + slope x repositories`` through ``points``."""

    slope: float
    intercept: float
    points: tuple[tuple[float, float], ...]

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x

    @property
    def residuals(self) -> tuple[float, ...]:
        """Observed minus fitted, point by point (zero for two points: a line goes through both)."""
        return tuple(y - self.predict(x) for x, y in self.points)

    @property
    def r_squared(self) -> float | None:
        """The share of the variance the line explains; ``None`` when every time is the same."""
        mean = sum(y for _, y in self.points) / len(self.points)
        total = sum((y - mean) ** 2 for _, y in self.points)
        if total == 0:
            return None
        return 1 - sum(r * r for r in self.residuals) / total


def fit_line(points: Sequence[tuple[float, float]]) -> Fit:
    """Ordinary least squares through ``(x, y)`` points; at least two distinct ``x`` (else ValueError)."""
    if len({x for x, _ in points}) < 2:
        msg = "a line needs points at two different sizes at least"
        raise ValueError(msg)
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return Fit(slope=slope, intercept=mean_y - slope * mean_x, points=tuple((float(x), float(y)) for x, y in points))


# --------------------------------------------------------------------------------------------------
# Formatting


def duration(seconds: float) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s`` (a minute and more), ``1 h 02 min`` (an hour and more)."""
    if seconds < 10:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 60:
        return f"{seconds:,.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min"


def signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + duration(abs(seconds))


@dataclass(frozen=True)
class Row:
    """One measured fan-out: a deep resync of ``repositories`` with ``workers`` shard workers."""

    repositories: int
    workers: int
    seconds: float
    """Wall time: the coordinator's run and the drain of its shards, until the run record is finished."""
    coordinator_seconds: float
    reads: int
    per_repository_reads: int
    writes: int
    throttled: int
    """``ThrottlingException`` answers the embedded ECR gave (attempts, retried or not)."""
    retries: int
    """Attempts beyond the first of each call (botocore's retries)."""
    dynamodb_calls: int
    shards: int
    redeliveries: int
    longest_shard: float
    expected: float | None = None
    """:func:`expected_seconds` for this row (a lower bound from the configured limits)."""


def fanout_table(rows: Sequence[Row], ceiling: float | None) -> list[str]:
    """The measured rows, the speedup of each over the one-worker row of the same size."""
    ones = {r.repositories: r.seconds for r in rows if r.workers == 1}
    ceiling_cell = f"{ceiling:,.0f} repos/s" if ceiling else "none"
    lines = [
        "| repositories | workers | wall time | of it, coordinator | lower bound from the limits | speedup vs 1 worker "
        "| ECR reads (of which per repository) | ECR writes | ThrottlingExceptions / retries | DynamoDB calls "
        "| shards (redelivered) | longest shard | repositories a second (ceiling) |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        one = ones.get(r.repositories)
        gain = f"{speedup(one, r.seconds):.2f}{X}" if one is not None else "-"
        bound = duration(r.expected) if r.expected is not None else "-"
        rate = r.repositories / r.seconds if r.seconds > 0 else math.inf
        lines.append(
            f"| {r.repositories:,} | {r.workers} | {duration(r.seconds)} | {duration(r.coordinator_seconds)} "
            f"| {bound} | {gain} | {r.reads:,} ({r.per_repository_reads:,}) | {r.writes:,} "
            f"| {r.throttled:,} / {r.retries:,} | {r.dynamodb_calls:,} | {r.shards} ({r.redeliveries}) "
            f"| {duration(r.longest_shard)} | {rate:,.0f} ({ceiling_cell}) |"
        )
    return lines


def fit_lines(label: str, fit: Fit, targets: Sequence[int]) -> list[str]:
    """The fitted line, its residuals point by point, and the projection to ``targets``."""
    r2 = fit.r_squared
    lines = [
        f"- **{label}**: seconds = {fit.intercept:,.1f} + {fit.slope * 1000:,.3f} {X} (repositories / 1,000)"
        + (f", R{chr(0xB2)} = {r2:.4f}" if r2 is not None else "")
        + f", through {len(fit.points)} points.",
        "  Residuals (measured - fitted): "
        + "; ".join(f"{x:,.0f}: {signed(res)}" for (x, _), res in zip(fit.points, fit.residuals, strict=True))
        + ".",
    ]
    if len(fit.points) < 3:
        lines.append("  Two points only: a line goes through both, so the residuals say nothing of its fit.")
    lines += [f"  Projected at {t:,} repositories: **{duration(fit.predict(t))}** (not measured)." for t in targets]
    return lines

"""The fan-out benchmark's arithmetic and tables (bench/scaling.py).

The report's projection to 100,000 repositories is a least-squares line through measured points, its
speedups are ratios to the one-worker row of the same size, and its ceiling is the configured TPS over the
calls a repository needs: each of these is checked against values worked out by hand.
"""

from __future__ import annotations

import math

import pytest

from bench.scaling import (
    Row,
    ceiling_per_second,
    duration,
    expected_seconds,
    fanout_table,
    fit_line,
    fit_lines,
    makespan,
    parse_counts,
    shard_sizes,
    speedup,
    tps_spec,
)

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------------------------------
# Parsing the command line's lists


def test_parse_counts_sorts_and_drops_duplicates() -> None:
    assert parse_counts("8, 1,2,4,2", name="--workers") == (1, 2, 4, 8)
    assert parse_counts("2_000,10000", name="--fit-repos") == (2000, 10000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--workers must list at least one number"),
        ("1,two", "--workers: 'two' is not a whole number"),
        ("0,1", "--workers: 0 is below 1"),
        ("1,-2", "--workers: '-2' is not a whole number"),
    ],
)
def test_parse_counts_names_the_option_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_counts(text, name="--workers")


def test_tps_spec_reads_a_bare_number_as_every_operation() -> None:
    assert tps_spec(" 100 ") == "*=100"
    assert tps_spec("2.5") == "*=2.5"
    assert tps_spec("GetLifecyclePolicy=50:100,*=10") == "GetLifecyclePolicy=50:100,*=10"


# --------------------------------------------------------------------------------------------------
# Ceiling, lower bound, speedup


def test_ceiling_is_set_by_the_operation_that_runs_out_first() -> None:
    reads = {"GetLifecyclePolicy": 1, "GetRepositoryPolicy": 1, "ListTagsForResource": 1}
    # One call of each per-repository read: 50 TPS each lets 50 repositories a second through.
    assert ceiling_per_second(dict.fromkeys(reads, 50.0), reads) == 50
    # The slowest bucket sets the pace; an operation without a limit does not count.
    assert ceiling_per_second({"GetLifecyclePolicy": 80.0, "GetRepositoryPolicy": 20.0}, reads) == 20
    # An operation needed twice per repository halves its rate; one not needed (0 calls) does not count.
    assert (
        ceiling_per_second(
            {"GetLifecyclePolicy": 50.0, "TagResource": 1.0}, {"GetLifecyclePolicy": 2, "TagResource": 0}
        )
        == 25
    )
    assert ceiling_per_second({}, reads) is None


def test_shard_sizes_are_full_but_the_last() -> None:
    assert shard_sizes(1200, 500) == [500, 500, 200]
    assert shard_sizes(1000, 500) == [500, 500]
    assert shard_sizes(300, 500) == [300]


def test_makespan_takes_shards_in_turn() -> None:
    # 10 shards of 500 at 20 repositories/s (25 s each) on 4 workers: rounds of 4, 4, 2 -> 75 s.
    assert makespan([500] * 10, 4, 20.0) == 75.0
    # 500, 500, 200 on 2 workers: the 200 goes to whichever is free first -> 25 + 10 s.
    assert makespan([500, 500, 200], 2, 20.0) == 35.0
    assert makespan([500, 500, 200], 1, 20.0) == 60.0


def test_expected_seconds_is_the_larger_of_the_ceiling_and_the_workers_schedule() -> None:
    shards = shard_sizes(20_000, 500)  # 40 shards
    # 2 workers x 60 requests/s over 3 calls = 20 repositories/s each: 20 rounds of 25 s, under a ceiling of 100.
    assert expected_seconds(shards, workers=2, worker_rate=60, calls_per_repository=3, ceiling=100) == 500
    # 8 workers could do 5 rounds of 25 s = 125 s, but the ceiling lets 100 repositories a second through: 200 s.
    assert expected_seconds(shards, workers=8, worker_rate=60, calls_per_repository=3, ceiling=100) == 200
    # No worker rate: the ceiling alone; neither: no bound.
    assert expected_seconds(shards, workers=1, worker_rate=None, calls_per_repository=3, ceiling=40) == 500
    assert expected_seconds(shards, workers=1, worker_rate=None, calls_per_repository=3, ceiling=None) is None


def test_speedup() -> None:
    assert speedup(100.0, 25.0) == 4.0
    assert speedup(100.0, 0.0) == math.inf


# --------------------------------------------------------------------------------------------------
# The least-squares line


def test_fit_line_recovers_an_exact_line_with_zero_residuals() -> None:
    fit = fit_line([(2000, 14.0), (10000, 54.0), (20000, 104.0)])  # 4 + 0.005 x
    assert fit.slope == pytest.approx(0.005)
    assert fit.intercept == pytest.approx(4.0)
    assert all(r == pytest.approx(0.0, abs=1e-9) for r in fit.residuals)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.predict(100_000) == pytest.approx(504.0)


def test_fit_line_matches_the_normal_equations_on_noisy_points() -> None:
    points = [(1.0, 1.0), (2.0, 2.0), (3.0, 2.0), (4.0, 5.0)]
    fit = fit_line(points)
    # By hand: mean x 2.5, mean y 2.5, Sxx 5, Sxy 6 -> slope 1.2, intercept -0.5.
    assert fit.slope == pytest.approx(1.2)
    assert fit.intercept == pytest.approx(-0.5)
    assert fit.residuals == pytest.approx((0.3, 0.1, -1.1, 0.7))
    # Residuals of a least-squares line sum to zero; SSres 1.8 of SStot 9 -> R^2 0.8.
    assert sum(fit.residuals) == pytest.approx(0.0, abs=1e-9)
    assert fit.r_squared == pytest.approx(0.8)


def test_fit_line_needs_two_sizes() -> None:
    with pytest.raises(ValueError, match="two different sizes"):
        fit_line([(2000, 10.0), (2000, 11.0)])


def test_fit_of_constant_times_has_no_r_squared() -> None:
    assert fit_line([(1, 5.0), (2, 5.0)]).r_squared is None


# --------------------------------------------------------------------------------------------------
# Rendering


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250 ms"), (12.34, "12.3 s"), (245.0, "4 min 05 s"), (3725.0, "1 h 02 min")],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def _row(repositories: int, workers: int, seconds: float, *, expected: float | None = None) -> Row:
    return Row(
        repositories=repositories,
        workers=workers,
        seconds=seconds,
        coordinator_seconds=1.0,
        reads=3 * repositories + 10,
        per_repository_reads=3 * repositories,
        writes=0,
        throttled=7,
        retries=9,
        dynamodb_calls=40,
        shards=repositories // 500,
        redeliveries=0,
        longest_shard=20.0,
        expected=expected,
    )


def test_fanout_table_gives_each_row_its_speedup_over_one_worker_of_the_same_size() -> None:
    rows = [_row(2000, 1, 80.0, expected=66.7), _row(2000, 4, 20.0), _row(10_000, 4, 100.0)]
    lines = fanout_table(rows, ceiling=100.0)
    assert len(lines) == 2 + len(rows)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0][:6] == ["2,000", "1", "1 min 20 s", "1,000 ms", "1 min 07 s", "1.00\u00d7"]
    assert cells[1][5] == "4.00\u00d7"
    assert cells[2][5] == "-"  # no one-worker row at 10,000 repositories
    assert cells[0][6] == "6,010 (6,000)"
    assert cells[0][8] == "7 / 9"
    assert cells[2][12] == "100 (100 repos/s)"
    assert all(len(c) == len(cells[0]) for c in cells)


def test_fit_lines_say_two_points_prove_nothing() -> None:
    text = "\n".join(fit_lines("2 workers", fit_line([(400, 20.0), (1200, 60.0)]), [100_000]))
    assert "Two points only" in text


def test_fit_lines_state_the_line_the_residuals_and_the_projection() -> None:
    fit = fit_line([(2000, 14.0), (10000, 54.0), (20000, 105.0)])
    text = "\n".join(fit_lines("8 workers", fit, [100_000]))
    assert "seconds = " in text and "(repositories / 1,000)" in text
    assert "2,000: " in text and "10,000: " in text and "20,000: " in text
    assert f"Projected at 100,000 repositories: **{duration(fit.predict(100_000))}** (not measured)" in text
    assert "Two points only" not in text

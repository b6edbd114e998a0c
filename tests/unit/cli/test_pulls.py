"""``ecrcache pulls``: the query it sends, its table with a sparkline per day, JSON as the API answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ecrcache_cli.commands.pulls import image_name, sparkline
from tests.unit.cli.support import Reply, recording_server, run_cli

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "0123456789abcdef" * 4
BODY: dict[str, Any] = {
    "window_days": 7,
    "rule": "docker-hub",
    "items": [
        {
            "repository": "docker-hub/library/node",
            "tag": "18-alpine",
            "pulls": 12,
            "daily": [0, 1, 2, 0, 4, 0, 5],
            "last_pulled_at": "2026-11-29T12:31:07Z",
            "digests": [],
            "platforms": ["linux/amd64", "linux/arm64"],
            "principals": 3,
            "regions": ["us-east-1"],
        },
        {
            "repository": "docker-hub/library/node",
            "digest": DIGEST,
            "pulls": 1,
            "daily": [0, 0, 0, 0, 0, 0, 1],
            "last_pulled_at": "2026-11-29T12:31:08Z",
            "digests": [DIGEST],
            "platforms": [],
            "principals": 1,
            "regions": ["us-east-1"],
        },
    ],
}


@pytest.mark.parametrize(
    ("daily", "line"),
    [
        ([0, 1, 2, 0, 4, 0, 5], "▁▃▄▁▇▁█"),
        ([1, 7, 14, 21, 28, 35, 42, 49], "▂▂▃▄▅▆▇█"),
        ([3, 3, 3], "███"),
        ([0, 0, 0], "▁▁▁"),
        ([1, 1000], "▂█"),  # a day with a pull is never the no-pull baseline, however small next to the busiest
        ([], ""),
    ],
)
def test_sparkline_is_one_character_per_day_relative_to_the_busiest(daily: list[int], line: str) -> None:
    assert sparkline(daily) == line
    assert len(sparkline(daily)) == len(daily)


def test_image_names_show_the_tag_or_a_short_digest() -> None:
    assert image_name(BODY["items"][0]) == "docker-hub/library/node:18-alpine"
    assert image_name(BODY["items"][1]) == "docker-hub/library/node@sha256:0123456789ab"


def test_pulls_sends_the_query_and_prints_a_table_with_sparklines() -> None:
    with recording_server(lambda _: Reply(200, BODY)) as server:
        result = run_cli(["--endpoint", server.url, "pulls", "--rule", "docker-hub", "--top", "5", "--window", "7"])
    assert result.code == 0, result.output
    assert server.requests[0].method == "GET"
    assert server.requests[0].target == "/v1/pulls?rule=docker-hub&top=5&window_days=7"
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["IMAGE", "PULLS", "LAST", "7", "DAYS", "LAST", "PULLED", "PLATFORMS", "PRINCIPALS"]
    assert first.split("  ")[0] == "docker-hub/library/node:18-alpine"
    assert first.split()[1:3] == ["12", "▁▃▄▁▇▁█"] and "linux/amd64, linux/arm64" in first
    assert second.split()[:3] == ["docker-hub/library/node@sha256:0123456789ab", "1", "▁▁▁▁▁▁█"]


def test_pulls_defaults_and_json_is_the_apis_body() -> None:
    with recording_server(lambda _: Reply(200, BODY)) as server:
        result = run_cli(["--endpoint", server.url, "pulls", "-o", "json"])
    assert result.code == 0, result.output
    assert server.requests[0].target == "/v1/pulls?top=20&window_days=14"
    assert json.loads(result.stdout) == BODY


def test_pulls_says_when_nothing_was_pulled() -> None:
    empty = {"window_days": 14, "rule": "quay", "items": []}
    with recording_server(lambda _: Reply(200, empty)) as server:
        result = run_cli(["--endpoint", server.url, "pulls", "--rule", "quay"])
    assert (result.code, result.stdout) == (0, "No pulls of rule quay in the last 14 days.\n")


def test_pulls_of_an_unknown_rule_exits_4_with_the_apis_message() -> None:
    error = {"code": "NotFound", "message": "no rule 'ghcr': pulls are kept per desired rule", "details": []}
    with recording_server(lambda _: Reply(404, error)) as server:
        result = run_cli(["--endpoint", server.url, "pulls", "--rule", "ghcr"])
    assert result.code == 4
    assert "no rule 'ghcr'" in result.stderr


@pytest.mark.parametrize("argv", [["--top", "0"], ["--top", "101"], ["--window", "0"], ["--window", "91"]])
def test_out_of_range_options_are_usage_errors(argv: list[str]) -> None:
    assert run_cli(["--endpoint", "http://127.0.0.1:9", "pulls", *argv]).code == 64

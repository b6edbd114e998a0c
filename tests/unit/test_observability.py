"""``count_by`` / ``measure_by``: a metric with a dimension of its own, off where Powertools' metrics are off."""

from __future__ import annotations

import json

import pytest

from ecrcache.observability import count_by

pytestmark = pytest.mark.unit


def test_a_count_with_a_dimension_is_one_emf_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    count_by("ApiRequests", dimension="status_class", value="2xx", count=1)
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines() if '"ApiRequests"' in text]
    assert (line["ApiRequests"], line["status_class"]) == ([1.0], "2xx")


@pytest.mark.parametrize("env", [{"POWERTOOLS_METRICS_DISABLED": "true"}, {"POWERTOOLS_DEV": "true"}])
def test_a_count_with_a_dimension_is_not_printed_where_metrics_are_disabled(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # an API handler run in-process under a captured stdout (the CLI's tests) must not print EMF into it
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    count_by("ApiRequests", dimension="status_class", value="2xx", count=1)
    assert "ApiRequests" not in capsys.readouterr().out

"""The deep plan's time budget against the API function's timeout in the template.

API Gateway's REST integration timeout is 29 s by default ("50 milliseconds - 29 seconds for all
integration types", Amazon API Gateway quotas); the API function's own timeout is set no higher, and
``GET /v1/plan?deep=true`` stops reading with :data:`DEEP_READ_MARGIN_MS` left of the function's time.
If the function's timeout grew past API Gateway's, or the margin past the function's time, a deep plan
could again end in a 504 (or never read a repository at all).
"""

from __future__ import annotations

import pytest

from ecrcache.http.routes.control import DEEP_READ_HARD_MARGIN_MS, DEEP_READ_MARGIN_MS, deep_read_budget
from tests.conftest import FakeLambdaContext
from tests.template import functions

pytestmark = pytest.mark.contract

API_GATEWAY_INTEGRATION_TIMEOUT_S = 29


def test_the_api_function_times_out_no_later_than_api_gateway() -> None:
    assert functions()["ApiFunction"]["Timeout"] <= API_GATEWAY_INTEGRATION_TIMEOUT_S


def test_the_deep_read_margin_leaves_most_of_the_functions_time_for_reading() -> None:
    timeout_ms = functions()["ApiFunction"]["Timeout"] * 1000
    # The margin covers the reads under way, planning, the response and a cold start; the rest reads.
    assert 0 < DEEP_READ_MARGIN_MS <= timeout_ms // 2


def test_the_reads_under_way_are_abandoned_after_the_last_read_starts_and_before_the_end() -> None:
    # The hard margin (planning, response, cold start) is inside the soft one: a read started just before the
    # soft margin has the difference to finish, a throttled one is abandoned with time left to answer.
    assert 0 < DEEP_READ_HARD_MARGIN_MS < DEEP_READ_MARGIN_MS


class _Context(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def test_the_deep_read_budget_counts_from_the_invocations_remaining_time() -> None:
    budget = deep_read_budget(_Context())
    assert budget is not None
    assert budget.seconds_left() == (20_000 - DEEP_READ_MARGIN_MS) / 1000
    assert budget.hard_seconds_left() == (20_000 - DEEP_READ_HARD_MARGIN_MS) / 1000
    assert deep_read_budget(object()) is None

"""``functions.warm_planner.app.lambda_handler`` on moto: the sample events (the schedule's tick, a warm
request from the stream) each plan their run; a redelivered request is planned once; a malformed one is
skipped; an unknown event shape is refused."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from pydantic import ValidationError

from ecrcache.models.warm_run import RunStatus, RunTrigger, WarmRun
from tests.conftest import FakeLambdaContext, load_event, sample_events
from tests.functional.warm.planner_support import Planner, make_queue

pytestmark = pytest.mark.functional

REQUEST_ID = "9b2d6c1e-5a3f-4e8b-8c7d-1f2e3a4b5c6d"
IMAGES = ["library/node:18-alpine", "library/python:3.12-slim"]


@pytest.fixture
def planner(state_table: str) -> Planner:
    return Planner(state_table, make_queue())


@pytest.fixture
def app(planner: Planner, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The function module (imported once: its settings name the fixed test queue), on this test's moto."""
    monkeypatch.setenv("WARM_QUEUE_URL", planner.queue_url)
    monkeypatch.setenv("UPSTREAM_ENDPOINTS", "{}")
    from functions.warm_planner import app as module

    assert module.settings.warm_queue_url == planner.queue_url
    monkeypatch.setattr(module.service, "tags", planner.tags)
    yield module


def invoke(app: ModuleType, event: dict[str, Any]) -> Any:
    return app.lambda_handler(copy.deepcopy(event), FakeLambdaContext())


def queue_request(planner: Planner) -> None:
    planner.hub_rule()
    planner.warm_set(images=IMAGES)
    planner.runs.request_run(
        WarmRun(
            run_id=REQUEST_ID,
            warm_set="ci",
            trigger=RunTrigger.API,
            requested_by="arn:aws:iam::123456789012:user/alice",
            created_at=datetime.now(UTC),
        )
    )


@pytest.mark.parametrize("sample", sample_events("warm_planner"))
def test_warm_planner_sample_event_plans_its_run(app: ModuleType, planner: Planner, sample: str) -> None:
    # GIVEN the desired state the sample is about: a due set "ci", and the run the request names
    queue_request(planner)
    event = load_event(sample)

    # WHEN the function is invoked with the sample
    response = invoke(app, event)

    # THEN one run of "ci" is planned, its two images on the warm queue
    if "Records" in event:
        assert response == {"batchItemFailures": []}
        run = planner.runs.get_run("ci", REQUEST_ID)
        assert run is not None and run.requested_by == "arn:aws:iam::123456789012:user/alice"
    else:
        [planned] = [p for p in response["planned"] if not p.get("resent")]
        run = planner.runs.get_run("ci", planned["run_id"])
        assert response["failed"] == []
        assert run is not None and run.trigger is RunTrigger.SCHEDULE
    assert (run.total, run.status) == (2, RunStatus.QUEUED)
    assert sorted(t.image for t in planner.sent() if t.run_id == run.run_id) == IMAGES


def test_a_redelivered_request_is_planned_once(app: ModuleType, planner: Planner) -> None:
    queue_request(planner)
    event = load_event("warm_planner/stream_warm_request.json")
    assert invoke(app, event) == {"batchItemFailures": []}
    first = planner.sent()
    assert invoke(app, event) == {"batchItemFailures": []}
    assert len(first) == 2
    assert planner.sent() == []  # the completed planning is not run again (Powertools idempotency)


def test_a_malformed_request_is_skipped_and_other_records_are_not_blocked(app: ModuleType, planner: Planner) -> None:
    queue_request(planner)
    good = load_event("warm_planner/stream_warm_request.json")["Records"][0]
    bad = copy.deepcopy(good)
    del bad["dynamodb"]["NewImage"]["warm_set"]
    other = copy.deepcopy(good)
    other["dynamodb"]["Keys"]["pk"] = {"S": "DESIRED#rule"}
    assert invoke(app, {"Records": [bad, other, good]}) == {"batchItemFailures": []}
    assert len(planner.sent()) == 2


def test_a_request_that_cannot_be_planned_now_is_reported_for_retry(
    app: ModuleType, planner: Planner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecrcache.errors import RetryableError

    queue_request(planner)

    def unavailable(*_: Any) -> Any:
        raise RetryableError("DynamoDB Query failed with InternalServerError; try again")

    monkeypatch.setattr(app.service, "plan", unavailable)
    request = load_event("warm_planner/stream_warm_request.json")["Records"][0]
    other = copy.deepcopy(request)
    other["dynamodb"]["Keys"]["pk"] = {"S": "DESIRED#rule"}
    other["dynamodb"]["SequenceNumber"] = "212"

    # WHEN a batch holds the request and another item THEN only the request is reported for retry
    assert invoke(app, {"Records": [request, other]}) == {"batchItemFailures": [{"itemIdentifier": "211"}]}
    # AND a batch whose every record fails is an error of the invocation: Lambda delivers it again
    with pytest.raises(BatchProcessingError, match="All records failed"):
        invoke(app, {"Records": [request]})


def test_an_unknown_event_is_refused(app: ModuleType) -> None:
    with pytest.raises(ValidationError, match="tick"):
        invoke(app, {"resync": "fast"})

"""Every sample event in ``events/warm_worker/`` through ``functions.warm_worker.app.lambda_handler``.

The function runs as deployed -- Powertools' batch processor, the real ECR warm adapter on the embedded
ECR pulling from the local registries -- except the warm run store and the upstream budget, whose
DynamoDB adapters are the planner branch's: the in-memory fakes stand in (``app.service`` is replaced).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from ecrcache.errors import RetryableError
from ecrcache.models.warm_run import Outcome, WarmTask
from tests.conftest import FakeLambdaContext, load_event, sample_events
from tests.functional.registry.support import PullThrough
from tests.functional.warm_worker.support import Warming

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

MALFORMED = {"warm_worker/sqs_malformed_body.json"}


def tasks_of(event: dict[str, Any]) -> list[WarmTask]:
    return [WarmTask.model_validate_json(record["body"]) for record in event["Records"]]


@pytest.fixture
def worker(ptc: PullThrough, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warming]:
    """The function's module with its service on the embedded ECR and the in-memory stores."""
    from functions.warm_worker import app

    warming = Warming()
    ptc.docker_hub_rule()
    ptc.anonymous_rule()
    monkeypatch.setattr(app, "service", lambda: warming.service)
    yield warming


class WorkerContext(FakeLambdaContext):
    """The worker's deployed timeout is 300 s."""

    def get_remaining_time_in_millis(self) -> int:
        return 295_000


def invoke(event: dict[str, Any], context: FakeLambdaContext | None = None) -> dict[str, Any]:
    from functions.warm_worker import app

    response: dict[str, Any] = dict(app.lambda_handler(event, context or WorkerContext()))
    return response


@pytest.mark.parametrize("sample", sample_events("warm_worker"))
def test_warm_worker_sample_event(worker: Warming, sample: str, token_seeded: list[Any]) -> None:
    event = load_event(sample)
    if sample in MALFORMED:
        # WHEN a body that is not a warm task arrives THEN it is dropped (not an item failure), nothing warmed
        assert invoke(event) == {"batchItemFailures": []}
        assert worker.store.images == {}
        assert worker.warmer.calls == {}
        return
    # GIVEN the run the planner made for the sample's tasks
    tasks = tasks_of(event)
    worker.plan(*tasks)
    # WHEN the batch is handled THEN no record fails and every image is warmed and verified
    assert invoke(event) == {"batchItemFailures": []}
    for task in tasks:
        outcome = worker.store.outcome(task.run_id, task.key)
        assert outcome is not None, task.key
        assert outcome.outcome is Outcome.WARMED, outcome.message
        if len(task.platforms) > 1:
            assert outcome.platforms_verified == task.platforms


def test_a_record_that_raises_is_reported_alone_and_delivered_again(worker: Warming) -> None:
    # GIVEN a batch of two images and a state table that throttles the first outcome's write
    event = load_event("warm_worker/sqs_warm_tasks_batch.json")
    first, second = tasks_of(event)
    worker.plan(first, second)
    worker.store.fail_record_outcome.append(RetryableError("DynamoDB throttled after retries"))
    # WHEN the batch is handled THEN only the first record is reported for redelivery
    assert invoke(event) == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert worker.store.outcome(second.run_id, second.key) is not None
    # WHEN SQS delivers it again THEN it is recorded; the second is not warmed twice
    calls = worker.warmer.calls["BatchGetImage"]
    retry = {"Records": [event["Records"][0]]}
    assert invoke(retry) == {"batchItemFailures": []}
    assert worker.run(first.run_id).done == 2
    assert worker.warmer.calls["BatchGetImage"] == calls + 1


def test_a_record_is_not_started_without_enough_time_left(worker: Warming) -> None:
    # GIVEN an invocation with 30 s left (less than a slow upstream may take)
    event = load_event("warm_worker/sqs_warm_tasks_batch.json")
    worker.plan(*tasks_of(event))
    # WHEN the batch comes THEN no record is started; every record failing, Powertools fails the
    # invocation and SQS delivers the whole batch again
    with pytest.raises(BatchProcessingError):
        invoke(event, FakeLambdaContext())
    assert worker.warmer.calls == {}
    assert worker.store.images.get(tasks_of(event)[0].run_id, {}) == {}


def test_the_function_keeps_one_warmer_per_region() -> None:
    from functions.warm_worker import app

    warmer = app.warmer("eu-west-1")
    assert (warmer.region, warmer.client.meta.region_name) == ("eu-west-1", "eu-west-1")
    assert app.warmer("eu-west-1") is warmer

"""Warm runs through the real api ``lambda_handler``: ``POST /v1/warm-sets/{name}/runs`` queues a run (the
run and its ``REQUEST#warm`` item in one transaction), ``GET /v1/warm-sets/{name}/status`` shows the last
run image by image, ``GET /v1/warm-sets/{name}/runs/{run_id}`` one run whatever came after it (images capped,
failed first), and ``GET /v1/status`` lists every set's last run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import RUN_DEADLINE, ImageOutcome, Outcome, RunStatus, RunTrigger, WarmRun, WarmTask
from tests.conftest import REGION
from tests.functional.api.assertions import assert_error
from tests.functional.api.client import ALICE, ApiClient
from tests.functional.warm.support import raiser

pytestmark = pytest.mark.functional

WARM: dict[str, Any] = {"rule": "quay", "images": ["prometheus/node-exporter:v1.8.0", "argoproj/argocd:v2.13.0"]}
AT = datetime(2026, 11, 29, 5, tzinfo=UTC)
DIGEST = "sha256:" + "d" * 64


@pytest.fixture
def warm(api: ApiClient) -> ApiClient:
    """The API with a quay rule and the warm set ``base`` pulling through it."""
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    assert api.put("/v1/warm-sets/base", WARM).status == 201
    return api


def request_item(table: str, run_id: str) -> dict[str, Any]:
    found = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=table, Key={"pk": {"S": "REQUEST#warm"}, "sk": {"S": run_id}}
    )
    return dict(found.get("Item", {}))


def test_warm_now_queues_a_run_for_the_planner(warm: ApiClient, state_table: str) -> None:
    # WHEN Alice asks to warm the set now
    accepted = warm.call("POST", "/v1/warm-sets/base/runs")

    # THEN 202 with the run id; the request item the planner's stream picks up names the set and Alice
    assert accepted.status == 202, accepted.text
    body = accepted.json
    assert set(body) == {"run_id", "warm_set", "status"}
    assert (body["warm_set"], body["status"]) == ("base", "queued")
    item = request_item(state_table, body["run_id"])
    assert (item["warm_set"], item["requested_by"]) == ({"S": "base"}, {"S": ALICE})

    # AND the status shows the run queued, nothing pending yet (the planner has not counted the images)
    status = warm.get("/v1/warm-sets/base/status").json
    assert status["run"]["run_id"] == body["run_id"]
    assert (status["run"]["status"], status["run"]["trigger"], status["run"]["requested_by"]) == (
        "queued",
        "api",
        ALICE,
    )
    assert (status["pending"], status["images"]) == (0, [])


def test_warm_now_of_an_unknown_set_is_404_and_writes_nothing(api: ApiClient, state_table: str) -> None:
    assert_error(api.call("POST", "/v1/warm-sets/nope/runs"), 404, "NotFound")
    items = boto3.client("dynamodb", region_name=REGION).query(
        TableName=state_table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "REQUEST#warm"}},
    )["Items"]
    assert items == []


def test_status_before_any_run_has_no_run(warm: ApiClient) -> None:
    assert warm.get("/v1/warm-sets/base/status").json == {
        "warm_set": "base",
        "run": None,
        "pending": 0,
        "images": [],
        "images_total": 0,
        "images_truncated": False,
    }


def test_status_of_an_unknown_set_is_404(api: ApiClient) -> None:
    assert_error(api.get("/v1/warm-sets/nope/status"), 404, "NotFound")


def test_a_bad_name_is_refused_naming_the_rule(api: ApiClient) -> None:
    response = api.call("POST", "/v1/warm-sets/Bad_Name/runs")
    assert response.status == 422, response.text


def test_status_shows_every_image_of_the_last_run(warm: ApiClient, state_table: str) -> None:
    # GIVEN a planned run of two images: one warmed by the worker, one still pending
    store = DynamoDbWarmRunStore(state_table)
    run = WarmRun(run_id="r-1", warm_set="base", trigger=RunTrigger.SCHEDULE, created_at=AT, total=3)
    tasks = [
        WarmTask(
            run_id="r-1",
            warm_set="base",
            region=REGION,
            rule="quay",
            upstream="quay.io",
            repository=f"quay/{name}",
            image=f"{name}:v1",
            tag="v1",
            platforms=("linux/amd64", "linux/arm64"),
            reserved_requests=3,
            bucket_capacity=200,
            bucket_window_seconds=21_600,
        )
        for name in ("prometheus/node-exporter", "argoproj/argocd")
    ]
    failed = ImageOutcome(
        image="library/node@" + DIGEST,
        region=REGION,
        repository="quay/library/node",
        digest=DIGEST,
        outcome=Outcome.FAILED,
        failure_class=FailureClass.NOT_FOUND,
        message="digest only",
        finished_at=AT,
    )
    store.create_run(run, [failed], tasks)
    store.record_outcome(
        "r-1",
        "base",
        ImageOutcome(
            image=tasks[0].image,
            region=REGION,
            repository=tasks[0].repository,
            tag="v1",
            digest=DIGEST,
            outcome=Outcome.WARMED,
            platforms_verified=("linux/amd64", "linux/arm64"),
            upstream_requests=3,
            finished_at=AT,
        ),
    )

    # WHEN the status is read
    status = warm.get("/v1/warm-sets/base/status").json

    # THEN the run with its counts, one image pending, and each finished image's outcome
    assert (status["run"]["status"], status["run"]["total"], status["run"]["counts"]) == (
        "running",
        3,
        {"failed": 1, "warmed": 1},
    )
    assert status["run"]["upstream_requests"] == 3
    assert status["pending"] == 1
    images = {i["repository"]: i for i in status["images"]}
    assert images["quay/prometheus/node-exporter"]["platforms_verified"] == ["linux/amd64", "linux/arm64"]
    assert (images["quay/library/node"]["outcome"], images["quay/library/node"]["failure_class"]) == (
        "failed",
        "not_found",
    )


def test_the_controller_status_lists_every_warm_sets_last_run(warm: ApiClient) -> None:
    assert warm.put("/v1/warm-sets/nightly", WARM).status == 201
    run_id = warm.call("POST", "/v1/warm-sets/nightly/runs").json["run_id"]
    sets = warm.get("/v1/status").json["warm_sets"]
    assert [(s["warm_set"], (s["run"] or {}).get("run_id")) for s in sets] == [("base", None), ("nightly", run_id)]


def test_a_failing_table_is_a_retryable_answer_and_queues_nothing(
    warm: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.api.app import warm_runs

    monkeypatch.setattr(warm_runs.client, "transact_write_items", raiser("ProvisionedThroughputExceededException", 400))
    response = warm.call("POST", "/v1/warm-sets/base/runs")
    assert response.status == 503, response.text
    assert warm.get("/v1/warm-sets/base/status").json["run"] is None


def test_a_run_is_followed_by_its_id_after_another_run_starts(warm: ApiClient) -> None:
    # GIVEN a run requested, then another
    first = warm.call("POST", "/v1/warm-sets/base/runs").json["run_id"]
    second = warm.call("POST", "/v1/warm-sets/base/runs").json["run_id"]

    # WHEN the first is read by its id THEN it is the first (the status shows the second)
    body = warm.get(f"/v1/warm-sets/base/runs/{first}").json
    assert (body["warm_set"], body["run"]["run_id"], body["run"]["status"]) == ("base", first, "queued")
    assert (body["pending"], body["images"], body["images_total"], body["images_truncated"]) == (0, [], 0, False)
    assert warm.get("/v1/warm-sets/base/status").json["run"]["run_id"] == second
    # AND it shows when it is settled if it is not planned by then (a day and an hour)
    created = datetime.fromisoformat(body["run"]["created_at"])
    assert datetime.fromisoformat(body["run"]["deadline"]) - created == RUN_DEADLINE


def test_an_unknown_run_or_a_run_of_another_set_is_404(warm: ApiClient) -> None:
    assert warm.put("/v1/warm-sets/nightly", WARM).status == 201
    run_id = warm.call("POST", "/v1/warm-sets/nightly/runs").json["run_id"]
    assert_error(warm.get(f"/v1/warm-sets/base/runs/{run_id}"), 404, "NotFound")
    assert_error(warm.get("/v1/warm-sets/base/runs/0b7f2a4e-nope"), 404, "NotFound")
    assert_error(warm.get(f"/v1/warm-sets/nope/runs/{run_id}"), 404, "NotFound")
    assert warm.get(f"/v1/warm-sets/base/runs/{'x' * 129}").status == 422


def image(name: str, outcome: Outcome, failure: FailureClass | None = None) -> ImageOutcome:
    return ImageOutcome(
        image=f"{name}:v1",
        region=REGION,
        repository=f"quay/{name}",
        tag="v1",
        outcome=outcome,
        failure_class=failure,
        finished_at=AT,
    )


def test_a_large_runs_images_are_capped_failed_and_skipped_first(warm: ApiClient, state_table: str) -> None:
    # GIVEN a finished run of 520 images: 510 warmed, 6 skipped, 4 failed
    outcomes = [image(f"w{i:03}", Outcome.WARMED) for i in range(510)]
    outcomes += [image(f"s{i}", Outcome.SKIPPED, FailureClass.RATE_LIMIT) for i in range(6)]
    outcomes += [image(f"f{i}", Outcome.FAILED, FailureClass.NOT_FOUND) for i in range(4)]
    run = WarmRun(
        run_id="r-big",
        warm_set="base",
        trigger=RunTrigger.SCHEDULE,
        created_at=AT,
        total=520,
        status=RunStatus.PARTIAL,
        finished_at=AT,
    )
    DynamoDbWarmRunStore(state_table).create_run(run, outcomes, [])

    # WHEN it is read (by id, and as the last run)
    for path in ("/v1/warm-sets/base/runs/r-big", "/v1/warm-sets/base/status"):
        body = warm.get(path).json

        # THEN 500 images: the failed, then the skipped, then warmed ones; the counts exact
        assert (len(body["images"]), body["images_total"], body["images_truncated"]) == (500, 520, True)
        assert [i["outcome"] for i in body["images"][:10]] == ["failed"] * 4 + ["skipped"] * 6
        assert body["run"]["counts"] == {"warmed": 510, "skipped": 6, "failed": 4}

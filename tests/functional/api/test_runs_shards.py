"""``GET /v1/runs/{run_id}`` of a deep resync fanned out to shard workers: its shard counts, as they move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.shards import ShardRecord, ShardState
from ecrcache.models.status import ReconcileRun, RunTrigger
from tests.conftest import REGION
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

NOW = datetime.now(UTC)


def test_a_fanned_out_run_shows_its_shards(api: ApiClient, state_table: str) -> None:
    # GIVEN a deep run that sent 2 shards, one of which reported
    store = DynamoDbStatusStore(state_table, boto3.client("dynamodb", region_name=REGION))
    run = ReconcileRun(run_id="run-deep", trigger=RunTrigger.SCHEDULE, scope="all:deep", started_at=NOW)
    store.put_run(run)
    shards = [ShardRecord(run_id="run-deep", region=REGION, index=i, state=ShardState.QUEUED) for i in range(2)]
    assert store.start_fanout(run, REGION, shards, deadline=NOW + timedelta(hours=1)) is None
    assert store.report_shard("run-deep", REGION, 0, expected=ShardState.QUEUED, state=ShardState.DONE)
    # WHEN the run is read through the API
    answer = api.get("/v1/runs/run-deep")
    # THEN it is running, with its counts
    assert answer.status == 200
    assert answer.json["status"] == "running"
    assert answer.json["shards"] == {"total": 2, "done": 1, "failed": 0, "retrying": 0}
    # AND a run that did not fan out says none
    store.put_run(run.model_copy(update={"run_id": "run-fast"}))
    assert api.get("/v1/runs/run-fast").json["shards"] is None

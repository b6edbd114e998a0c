"""``GET /v1/status`` reads every Region's item once: the rule statuses and the event forwarder records are
attributes of the same items (issue 14), so one Query of the stack Region's partition gives both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.engine.forwarders import forwarder_status
from ecrcache.models.status import RuleStatus
from tests.conftest import REGION
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OTHER = "eu-west-1"
REGION_ITEMS = f"Query APPLIED#{REGION} #STATUS#"
"""The Query of every Region's item (the stack Region's partition, status items only)."""
DESIRED_SNAPSHOT = ["GetItem META", "Query DESIRED#rule", "Query DESIRED#credential", "Query DESIRED#warm-set"]
"""The warm sets' last runs start from the desired state's snapshot."""


def _described(params: dict[str, Any], model: Any) -> str:
    """A DynamoDB call as ``<operation> <partition or index>`` (the sort key condition's value too)."""
    if "IndexName" in params:
        return f"{model.name} {params['IndexName']}"
    if "Key" in params:
        return f"{model.name} {params['Key']['pk']['S']}"
    values = params.get("ExpressionAttributeValues", {})
    return " ".join([str(model.name), *(v["S"] for v in values.values() if "S" in v)])


@pytest.fixture
def calls(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The DynamoDB calls the api function makes (its adapters share one client), from a cold start (its status
    store has not yet seen whether the former layout is migrated)."""
    from functions.api import app

    monkeypatch.setattr(app.status, "migrated", False)
    made: list[str] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        made.append(_described(params, model))

    events = app.status.client.meta.events
    events.register("before-parameter-build.dynamodb", record, unique_id="status-reads")
    try:
        yield made
    finally:
        events.unregister("before-parameter-build.dynamodb", unique_id="status-reads")


@pytest.fixture
def recorded(state_table: str) -> DynamoDbStatusStore:
    """Rule statuses in two Regions and an event forwarder record in the other one."""
    store = DynamoDbStatusStore(state_table)
    store.write_statuses(REGION, {"quay": RuleStatus(cached_repositories=2), "ghcr": RuleStatus()}, version=0)
    store.write_statuses(OTHER, {"quay": RuleStatus(drift_corrected=1)}, version=0)
    forwarder = forwarder_status(
        None, "ecrcache-fwd-x", synced=True, reason="Converged", message="", now=NOW, run_id="run-1"
    )
    store.put_forwarder_status(OTHER, forwarder)
    return store


@pytest.mark.parametrize("migrated", [True, False], ids=["migrated", "former layout not migrated yet"])
def test_get_status_reads_the_regions_items_once(
    api: ApiClient, calls: list[str], recorded: DynamoDbStatusStore, state_table: str, migrated: bool
) -> None:
    if migrated:
        recorded.migrate_legacy()
    calls.clear()
    # WHEN the controller's status is read
    response = api.get("/v1/status", query={"runs": "5"})
    # THEN every Region's item was read with one Query (twice before: once for the rules, once for the
    # forwarders); the former layout's two partitions are read only until it is migrated
    assert response.status == 200, response.text
    legacy = [] if migrated else ["Query STATUS", "Query FORWARDER"]
    assert calls == [REGION_ITEMS, *legacy, "Query gsi1", *DESIRED_SNAPSHOT]
    assert calls.count(REGION_ITEMS) == 1
    # AND the answer is what the store's separate reads give
    fresh = DynamoDbStatusStore(state_table)
    body = response.json
    assert body["rules"] == [r.model_dump(mode="json") for r in fresh.all_status()]
    assert body["forwarders"] == [f.model_dump(mode="json") for f in fresh.forwarder_statuses()]
    assert [(r["region"], r["prefix"]) for r in body["rules"]] == [(OTHER, "quay"), (REGION, "ghcr"), (REGION, "quay")]
    assert [f["region"] for f in body["forwarders"]] == [OTHER]

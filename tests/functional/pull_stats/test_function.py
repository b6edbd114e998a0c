"""The pull_stats function on moto: sample events, a batch's partial response, failures answered for retry."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from tests.conftest import load_event, sample_events
from tests.functional.api.client import ApiClient
from tests.pull_events import NODE, REGION, WARMER_ROLE, pull_body, sqs_batch

pytestmark = pytest.mark.functional

DAY = "PULLS#2026-11-29"


def counter(table: str, sk: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": DAY}, "sk": {"S": sk}}).get("Item") or {}
    )
    return found


@pytest.mark.parametrize("sample", sample_events("pull_stats"))
def test_pull_stats_sample_event_is_counted(sample: str, rules: ApiClient, invoke: Any, state_table: str) -> None:
    # GIVEN the sample batch: a docker pull of node:18-alpine, a layer request and an import
    event = load_event(sample)

    # WHEN the function is invoked with it
    response = invoke(event)

    # THEN no record is sent back, and each is counted where the contract says
    assert response == {"batchItemFailures": []}
    tag = counter(state_table, f"{REGION}#{NODE}:18-alpine")
    assert (tag["pulls"], tag["imports"], tag["platforms"]) == ({"N": "1"}, {"N": "1"}, {"SS": ["linux/arm64"]})
    assert counter(state_table, f"{REGION}#{NODE}")["layer_requests"] == {"N": "1"}
    # AND the API lists the pull
    [item] = rules.get("/v1/pulls", query={"rule": "docker-hub", "window_days": "1"}).json["items"]
    assert (item["repository"], item["tag"], item["pulls"]) == (NODE, "18-alpine", 1)
    # AND delivered again, nothing more is counted
    assert invoke(event) == {"batchItemFailures": []}
    assert counter(state_table, f"{REGION}#{NODE}:18-alpine")["pulls"] == {"N": "1"}


def test_dropped_records_are_not_sent_back_and_the_warmers_pulls_do_not_count(
    rules: ApiClient, invoke: Any, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.pull_stats import app

    monkeypatch.setattr(app.service, "warmer_role_arn", WARMER_ROLE)
    response = invoke(sqs_batch("{not json", pull_body("w1", role=WARMER_ROLE), pull_body("u1", repository="ghcr/x/y")))
    assert response == {"batchItemFailures": []}
    assert counter(state_table, f"{REGION}#{NODE}:18-alpine") == {}


def test_records_that_could_not_be_counted_are_sent_back(
    rules: ApiClient, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB refusing the function's write of the batch's delta (its role lost the permission)
    from botocore.exceptions import ClientError

    from functions.pull_stats import app

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem")

    store: Any = app.service.store
    monkeypatch.setattr(store.client, "put_item", denied)
    # WHEN a batch of two pulls and a malformed record arrives
    response = invoke(sqs_batch(pull_body("e1"), pull_body("e2", tag="20"), "[]"))
    # THEN both pulls are sent back for redelivery (then the DLQ); the malformed one is not
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]}


def test_an_invocation_that_is_not_an_sqs_batch_fails(invoke: Any) -> None:
    with pytest.raises(ValidationError):
        invoke(load_event("reconciler/pull_through_cache_action.json"))

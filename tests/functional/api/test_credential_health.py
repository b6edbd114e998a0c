"""`health` on `/v1/credentials` and `/v1/credentials/{name}`: ``Unknown`` before any check, then what the health
store holds (a check's verdict, or a mark made elsewhere with its evidence), with the days to ``expires_at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.engine.credential_health import Findings, decide, marked
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

TOKEN = "dckr_pat_credential_health_0001"


def test_a_credential_not_checked_yet_is_unknown_with_its_days_to_expiry(api: ApiClient) -> None:
    expires = datetime.now(UTC).date() + timedelta(days=30)
    api.put(
        "/v1/credentials/hub",
        {"upstream_kind": "docker-hub", "username": "ci", "token": TOKEN, "expires_at": str(expires)},
    )

    health = api.get("/v1/credentials/hub").json["health"]

    assert health == {
        "state": "Unknown",
        "checked_at": None,
        "message": None,
        "evidence": None,
        "expires_at": expires.isoformat(),
        "days_to_expiry": 30,
    }


def test_the_stored_health_is_shown_by_the_item_and_the_list(api: ApiClient, state_table: str) -> None:
    api.put("/v1/credentials/hub", {"upstream_kind": "docker-hub", "username": "ci", "token": TOKEN})
    api.put("/v1/credentials/gh", {"upstream_kind": "github-container-registry", "username": "octo", "token": TOKEN})
    store = DynamoDbCredentialHealthStore(state_table)
    at = datetime(2027, 3, 1, 6, tzinfo=UTC)
    checked = decide("gh", None, Findings(at, passed=("signed in",)), expires_at=None, now=at).health
    assert store.save(checked, seen=None)
    store.mark_invalid(marked("hub", message="a pull failed on the credential", evidence="ECR event e1", at=at))

    one = api.get("/v1/credentials/hub").json["health"]
    listed = {item["name"]: item["health"] for item in api.get("/v1/credentials").json["items"]}

    assert one["state"] == "Invalid"
    assert one["evidence"] == "ECR event e1"
    assert one["checked_at"].startswith("2027-03-01T06:00:00")
    assert listed["hub"] == one
    assert listed["gh"]["state"] == "Healthy"
    assert listed["gh"]["message"] == "signed in"
    assert listed["gh"]["expires_at"] is None and listed["gh"]["days_to_expiry"] is None

"""Through the API: values ECR would refuse or store badly are a 422 naming the field, never sent on.

Before: ``keep_last: 10**130`` was stored and sent to ECR, descriptions carried NUL/ESC/CR into ECR
and Secrets Manager, ``expires_at`` in the past was accepted, and ``GET /v1/plan?region=mars-1``
answered 200 with an empty plan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.api.assertions import assert_error, fields
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

HUGE = 10**130


def _yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def _next_year() -> str:
    return (datetime.now(UTC).date() + timedelta(days=365)).isoformat()


def _hub(**extra: Any) -> dict[str, Any]:
    return {"upstream_kind": "docker-hub", "username": "ci-bot", "token": "dckr_pat_bounds_0001", **extra}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/rules/quay", {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": HUGE}}}, "lifecycle"),
        (
            "/v1/rules/quay",
            {
                "upstream_kind": "quay",
                "lifecycle": {
                    "rules": [
                        {
                            "rulePriority": HUGE,
                            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                            "action": {"type": "expire"},
                        }
                    ]
                },
            },
            "lifecycle.rules[0].rulePriority",
        ),
        ("/v1/rules/quay", {"upstream_kind": "quay", "description": "nul\x00byte"}, "description"),
        ("/v1/rules/quay", {"upstream_kind": "quay", "description": "esc\x1b[31mred"}, "description"),
        ("/v1/credentials/hub", _hub(description="carriage\rreturn"), "description"),
        ("/v1/warm-sets/base", {"rule": "quay", "images": ["a/b:1"], "description": "x\x00"}, "description"),
    ],
    ids=["keep-last-huge", "rule-priority-huge", "nul", "esc", "cr-credential", "nul-warm-set"],
)
def test_put_refuses_what_ecr_would_not_take(api: ApiClient, path: str, body: dict[str, Any], field: str) -> None:
    # GIVEN a body with an out-of-range integer or a control character
    # WHEN it is PUT
    response = api.put(path, body)

    # THEN a 422 names the field, and nothing is stored
    assert_error(response, 422, "ValidationFailed")
    assert any(f.startswith(field) for f in fields(response)), fields(response)
    assert api.get(path).status == 404


def test_put_credential_refuses_an_expiry_in_the_past(api: ApiClient) -> None:
    # GIVEN a credential whose expires_at is yesterday
    # WHEN it is PUT THEN a 422 names expires_at
    response = api.put("/v1/credentials/hub", _hub(expires_at=_yesterday()))
    assert_error(response, 422, "ValidationFailed")
    assert fields(response) == ["expires_at"]
    # THEN nothing was stored; a date ahead is fine
    assert api.get("/v1/credentials/hub").status == 404
    assert api.put("/v1/credentials/hub", _hub(expires_at=_next_year())).status == 201


def test_put_desired_state_refuses_an_expiry_in_the_past(api: ApiClient) -> None:
    # GIVEN a document with a credential that expired yesterday
    document = {"version": 1, "credentials": {"hub": _hub(expires_at=_yesterday())}}
    # WHEN it is applied THEN a 422 names the credential's expires_at
    response = api.put("/v1/desired-state", document)
    assert_error(response, 422, "ValidationFailed")
    assert fields(response) == ["credentials.hub.expires_at"]


@pytest.mark.parametrize(
    ("region", "fragment"),
    [
        ("mars-1", "must be an AWS Region code"),
        ("us-east-9", "not a Region with Amazon ECR"),
        ("cn-north-1", "aws-cn partition"),
    ],
)
def test_plan_for_a_region_that_is_not_one_is_a_422(api: ApiClient, region: str, fragment: str) -> None:
    # GIVEN a Region that does not exist, has no ECR, or is in another partition than the stack's
    # WHEN the plan is asked for it
    response = api.get("/v1/plan", query={"region": region})
    # THEN a 422 names `region`, not an empty plan
    body = assert_error(response, 422, "ValidationFailed")
    assert fields(response) == ["region"]
    assert fragment in body["details"][0]["message"]


def test_plan_for_a_real_region_is_answered(api: ApiClient) -> None:
    assert api.get("/v1/plan", query={"region": "eu-west-1"}).status == 200

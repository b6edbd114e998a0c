from __future__ import annotations

import pytest

from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext) -> ApiClient:
    """The api function in-process, on moto's DynamoDB and Secrets Manager."""
    return ApiClient(lambda_context)


@pytest.fixture(autouse=True)
def _rotate_secret_as_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """``POST /v1/credentials/{name}/rotations`` calls ``RotateSecret``: as AWS does it (no function runs here)."""
    from functions.api import app as api_app
    from tests.functional.api.aws_support import rotate_secret_as_aws

    monkeypatch.setattr(api_app.rotations.secrets.client, "rotate_secret", rotate_secret_as_aws)  # type: ignore[attr-defined]

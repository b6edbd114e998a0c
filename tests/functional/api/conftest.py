from __future__ import annotations

import pytest

from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext) -> ApiClient:
    """The api function in-process, on moto's DynamoDB and Secrets Manager."""
    return ApiClient(lambda_context)

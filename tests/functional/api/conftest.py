from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext) -> ApiClient:
    """The api function in-process, on moto's DynamoDB and Secrets Manager."""
    return ApiClient(lambda_context)


@pytest.fixture(autouse=True)
def _rotation_function() -> Iterator[None]:
    """``POST /v1/credentials/{name}/rotations`` calls the embedded Secrets Manager's ``RotateSecret``, which invokes
    the stack's rotation function: registered here (Secrets Manager could not invoke an unknown function), but these
    tests never run a rotation's steps, so every invocation fails and the rotation stays in progress (the empty
    ``AWSPENDING`` version). The rotation tests run the steps (``tests/functional/rotation``)."""
    from functions.api import app as api_app
    from tests.functional.api.aws_support import HeldRotationFunction

    function = HeldRotationFunction(api_app.rotations.function_arn)
    try:
        yield
    finally:
        function.close()

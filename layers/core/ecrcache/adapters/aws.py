"""boto3 session and client construction, with botocore's adaptive retry mode everywhere."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.errors import EcrcacheError, RetryableError, TerminalError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=3, read_timeout=10)

# Error codes that clear by themselves: botocore already retried them; if they still come back,
# the caller may retry later (HTTP 503), everything else is terminal.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "InternalServerError",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
        "ServerException",
    }
)


@cache
def dynamodb_client(region: str | None = None) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name=region, config=RETRY_CONFIG)


@cache
def secretsmanager_client(region: str | None = None) -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=region, config=RETRY_CONFIG)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def classify(exc: Exception, what: str) -> EcrcacheError:
    """Turn a botocore failure into a domain error; the message names the call, never its input."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status: Any = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in RETRYABLE_CODES or (isinstance(status, int) and status >= 500):
            return RetryableError(f"{what} failed with {code}; try again", reason=code)
        return TerminalError(f"{what} failed with {code}", reason=code)
    if isinstance(exc, BotoCoreError):
        return RetryableError(f"{what} failed: {type(exc).__name__}; try again")
    return TerminalError(f"{what} failed: {type(exc).__name__}")

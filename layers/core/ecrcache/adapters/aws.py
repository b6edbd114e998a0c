"""boto3 session and client construction, with botocore's adaptive retry mode everywhere.

botocore's standard and adaptive modes count ``LimitExceededException`` among the throttling errors:
they retry it (4 times here, with exponential backoff) and the adaptive mode slows the client's
every later call. For services where that code means a quota (ECR's 50 rules per Region), nothing
will change by waiting: :func:`fail_fast` makes such codes raise at the first answer.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import TYPE_CHECKING, Any, Final, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.errors import RetryableError, TerminalError

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

    from ecrcache.errors import EcrcacheError

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


ECR_TERMINAL_CODES: Final = frozenset({"LimitExceededException"})
"""ECR codes botocore retries as throttling that are quotas ("would exceed a service limit"): terminal."""


def fail_fast(client: BaseClient, codes: Collection[str]) -> None:
    """Make ``client`` raise the modeled error for ``codes`` at the first answer: no botocore retry,
    and no slowdown of the adaptive rate limiter (which runs after this handler on ``needs-retry``).

    Every other error keeps botocore's standard handling (throttling, transient and 5xx retried).
    """
    service = client.meta.service_model.service_id.hyphenize()
    terminal = frozenset(codes)

    def stop(response: Any = None, operation: Any = None, **_: Any) -> None:
        if response is None or operation is None:
            return  # a connection error: botocore's retry decides
        parsed = response[1]
        code = str((parsed.get("Error") or {}).get("Code") or "")
        if code in terminal:
            modeled = cast("type[ClientError]", client.exceptions.from_code(code))
            raise modeled(parsed, operation.name)

    client.meta.events.register_first(f"needs-retry.{service}", stop, unique_id=f"ecrcache-fail-fast-{id(client)}")


@cache
def dynamodb_client(region: str | None = None) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name=region, config=RETRY_CONFIG)


@cache
def secretsmanager_client(region: str | None = None) -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=region, config=RETRY_CONFIG)


@cache
def sqs_client(region: str | None = None) -> SQSClient:
    return boto3.client("sqs", region_name=region, config=RETRY_CONFIG)


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

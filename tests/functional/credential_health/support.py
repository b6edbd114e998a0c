"""Helpers of the credential health tests (a plain module: test modules and the conftest import it).

:class:`HealthWorld` is the embedded AWS (moto + the ECR extension) with credential ``hub`` (Docker Hub, its
secret holding :data:`TOKEN`), a pull-through cache rule ``docker-hub`` using it, the state table, an
EventBridge rule on the default bus sending every ``source: ecrcache`` event to a queue (as a user's rule
would), the alert topic with a queue subscribed, and the service wired to them. The upstream is the rotation
tests' stand-in (it accepts the tokens in ``upstream.accepted``); ECR's validation checks the token in the
secret against ``validation.accepted``. ``clock`` is the service's: tests move it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.credential_health import CredentialHealth
from ecrcache.models.upstream import UpstreamKind
from ecrcache.services.credential_health import CredentialHealthService, CredentialMarks
from ecrcache.services.desired_state import DesiredStateService
from tests.functional.rotation.support import EcrValidation, UpstreamStandIn

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

TOKEN = "dckr_pat_HEALTHCANARY_00000000000001"
CANARY = "HEALTHCANARY"
"""Part of the token: found anywhere but Secrets Manager, the token leaked."""
USERNAME = "ci-bot"
START = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The service's clock: ``now`` moves only when a test moves it (by a little each reading, like time)."""

    now: datetime = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def days(self, count: int) -> None:
        self.now += timedelta(days=count)


@dataclass
class HealthWorld:
    service: CredentialHealthService
    marks: CredentialMarks
    store: DynamoDbCredentialHealthStore
    budget: DynamoDbUpstreamBudget
    desired: DesiredStateService
    upstream: UpstreamStandIn
    validation: EcrValidation
    clock: Clock
    sm: SecretsManagerClient
    ecr: ECRClient
    sqs: SQSClient
    dynamodb: DynamoDBClient
    table: str
    events_queue: str
    alerts_queue: str
    secret_arn: str
    received: list[dict[str, Any]] = field(default_factory=list)
    alerted: list[dict[str, Any]] = field(default_factory=list)

    def expire_in(self, days: int) -> None:
        """Credential ``hub``'s ``expires_at``: ``days`` after the clock's day (a metadata-only PUT)."""
        spec = CredentialSpec(
            upstream_kind=UpstreamKind.DOCKER_HUB,
            username=USERNAME,
            expires_at=(self.clock.now + timedelta(days=days)).date(),
        )
        self.desired.put_credential("hub", spec, None, actor="arn:aws:iam::123456789012:user/alice")

    def health(self, credential: str = "hub") -> CredentialHealth:
        found = self.store.health(credential)
        assert found is not None, f"no health recorded for {credential}"
        return found

    def events(self) -> list[dict[str, Any]]:
        """Every event the default bus delivered to the user's rule so far (the full EventBridge envelopes)."""
        self.received.extend(json.loads(body) for body in self._drain(self.events_queue))
        return self.received

    def alerts(self) -> list[dict[str, Any]]:
        """Every message the alert topic delivered (SNS envelopes: ``Subject``, ``Message``)."""
        self.alerted.extend(json.loads(body) for body in self._drain(self.alerts_queue))
        return self.alerted

    def detail_types(self) -> list[str]:
        return [event["detail-type"] for event in self.events()]

    def items(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=self.table)["Items"])

    def _drain(self, url: str) -> list[str]:
        bodies: list[str] = []
        while True:
            out = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = out.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def value_of(token: str, username: str = USERNAME) -> str:
    return json.dumps({"username": username, "accessToken": token})

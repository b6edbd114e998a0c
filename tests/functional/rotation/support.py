"""Helpers of the rotation tests (a plain module: test modules and the conftest import it).

Secrets Manager's ``RotateSecret`` is played by hand: moto 5.2.5 cannot run a rotation function without
Docker, and after invoking one it makes the new (empty) version ``AWSCURRENT`` itself (tooling.md §2). What
AWS does before it calls ``createSecret`` is what :meth:`RotationWorld.begin` does: rotation enabled, and the
``ClientRequestToken`` a version labelled ``AWSPENDING`` -- empty for a scheduled rotation ("When rotation is
unsuccessful, the AWSPENDING staging label might be attached to an empty secret version", RotateSecret API
reference), or holding the operator's new value when the rotation was staged first (``PutSecretValue`` with
``VersionStages=["AWSPENDING"]``). Both are moto backend state set directly, the way moto's own
``rotate_secret`` sets it (``moto/secretsmanager/models.py``). The steps then run in-process, in order.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from moto.secretsmanager.models import FakeSecret, secretsmanager_backends
from pydantic import SecretStr

from devstack.aws.ports import AuthCheckResult
from ecrcache.adapters.rotation_store import DynamoDbRotationStore
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential import UpstreamLogin
from ecrcache.models.rotation import RotationEvent, RotationRecord, RotationStep
from ecrcache.models.upstream_probe import ProbeResult, ProbeStatus, ProbeTarget
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.rotation import RotationService
from tests.conftest import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

USERNAME = "ci-bot"
OLD_TOKEN = "dckr_pat_OLDCANARY_0000000000000001"
NEW_TOKEN = "dckr_pat_NEWCANARY_0000000000000002"
BAD_TOKEN = "dckr_pat_BADCANARY_0000000000000003"
CANARY = "CANARY_0000000000"
"""Part of every token above: found anywhere but Secrets Manager, a token leaked."""
STEPS = tuple(RotationStep)


def value_of(token: str, username: str = USERNAME) -> str:
    return json.dumps({"username": username, "accessToken": token})


class UpstreamStandIn:
    """The upstream as the probe would find it: it accepts exactly the tokens in ``accepted``."""

    def __init__(self, accepted: Iterable[str]) -> None:
        self.accepted = set(accepted)
        self.probed: list[ProbeTarget] = []
        self.answer: tuple[ProbeStatus, str, datetime | None] | None = None
        """Set: every probe comes to this (a rate limit, the upstream down, the probe image gone)."""

    def probe(self, target: ProbeTarget, login: UpstreamLogin | None) -> ProbeResult:
        self.probed.append(target)
        if self.answer is not None:
            return ProbeResult(target, *self.answer)
        if login is not None and login.token.get_secret_value() in self.accepted:
            return ProbeResult(target, ProbeStatus.OK, f"{target}: signed in", authenticated=True)
        return ProbeResult(
            target,
            ProbeStatus.CREDENTIAL,
            "401: the upstream's token service rejected the credential",
            authenticated=True,
        )


class EcrValidation:
    """The upstream check behind the embedded ECR's ``ValidatePullThroughCacheRule``: the tokens it accepts."""

    def __init__(self, accepted: Iterable[str]) -> None:
        self.accepted = set(accepted)
        self.checked: list[str] = []

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        self.checked.append(access_token)
        if access_token in self.accepted:
            return AuthCheckResult(is_valid=True)
        return AuthCheckResult(is_valid=False, failure="UpstreamAccessDenied: 401 Unauthorized from the upstream")


@dataclass
class RotationWorld:
    """The embedded AWS with a credential ``hub`` (desired state + secret), a rule using it, and the service."""

    service: RotationService
    desired: DesiredStateService
    records: DynamoDbRotationStore
    sm: SecretsManagerClient
    ecr: ECRClient
    upstream: UpstreamStandIn
    validation: EcrValidation
    secret_arn: str
    credential: str = "hub"
    failures: list[EcrcacheError] = field(default_factory=list)

    @property
    def region(self) -> str:
        return REGION

    @property
    def secret(self) -> str:
        return f"ecr-pullthroughcache/{self.credential}"

    # -- Secrets Manager's part ------------------------------------------------------------------

    def enable_rotation(self, *, enabled: bool = True) -> None:
        self.enable_rotation_of(self.secret, enabled=enabled)

    @staticmethod
    def enable_rotation_of(name: str, *, enabled: bool = True) -> None:
        """``RotateSecret``'s rotation configuration (``DescribeSecret`` then says ``RotationEnabled``)."""
        secret = _moto_secret(name)
        secret.rotation_requested = True
        secret.rotation_enabled = enabled
        secret.rotation_lambda_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:ecrcache-rotator"
        secret.auto_rotate_after_days = 30

    def begin(self, value: str | None = None, *, secret: str | None = None) -> str:
        """What ``RotateSecret`` leaves before ``createSecret``: a new version ``AWSPENDING``, holding ``value``
        when an operator staged it first (``PutSecretValue``), empty for a scheduled rotation."""
        name = secret or self.secret
        self.enable_rotation_of(name)
        token = str(uuid.uuid4())
        if value is not None:
            self.sm.put_secret_value(
                SecretId=name, ClientRequestToken=token, SecretString=value, VersionStages=["AWSPENDING"]
            )
            return token
        moto_secret = _moto_secret(name)
        moto_secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        moto_secret.versions[token] = {
            "createdate": int(time.time()),
            "version_id": token,
            "version_stages": ["AWSPENDING"],
        }
        return token

    # -- the function's part ---------------------------------------------------------------------

    def step(self, step: RotationStep, token: str, *, secret_id: str | None = None) -> str:
        """One step as Secrets Manager invokes it (``SecretId``: the credential ``hub``'s ARN by default)."""
        event = RotationEvent.model_validate(
            {"Step": step.value, "SecretId": secret_id or self.secret_arn, "ClientRequestToken": token}
        )
        return self.service.handle(event)

    def rotate(self, token: str) -> list[str]:
        """The four steps in order, as Secrets Manager calls them; the first failure is raised."""
        return [self.step(step, token) for step in STEPS]

    # -- what there is ---------------------------------------------------------------------------

    def stages(self) -> dict[str, set[str]]:
        described = self.sm.describe_secret(SecretId=self.secret)["VersionIdsToStages"]
        return {version: set(labels) for version, labels in described.items() if labels}

    def labelled(self, label: str) -> str | None:
        return next((version for version, labels in self.stages().items() if label in labels), None)

    def current_token(self) -> str:
        """The token a reader of the secret gets: a plain GetSecretValue (AWSCURRENT), as ECR reads it."""
        value = self.sm.get_secret_value(SecretId=self.secret)["SecretString"]
        return str(json.loads(value)["accessToken"])

    def record(self, token: str) -> RotationRecord:
        found = self.records.get(self.credential, token)
        assert found is not None, f"no record of rotation {token}"
        return found


def failing(
    method: Callable[..., Any], when: Callable[[dict[str, Any]], bool], code: str, status: int
) -> Callable[..., Any]:
    """``method``, except that calls whose keyword arguments satisfy ``when`` fail as botocore raises them after
    its retries (throttling, access denied)."""
    response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}

    def call(*args: Any, **kwargs: Any) -> Any:
        if when(kwargs):
            raise ClientError(response, "injected")
        return method(*args, **kwargs)

    return call


def _moto_secret(name: str) -> FakeSecret:
    secret = secretsmanager_backends[ACCOUNT_ID][REGION].secrets[name]
    assert isinstance(secret, FakeSecret), f"{name} is a replica here"
    return secret


def now() -> datetime:
    return datetime.now(UTC)


def login_of(token: str) -> UpstreamLogin:
    return UpstreamLogin(USERNAME, SecretStr(token))

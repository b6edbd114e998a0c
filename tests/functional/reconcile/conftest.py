"""The reconciler on the embedded AWS: moto + the ECR extension, the state table from the template.

* ``world`` -- the desired-state service and a reconcile service wired in-process (no Lambda).
* ``controller`` -- the deployed shape: ``functions.reconciler.app.lambda_handler`` running with the
  credentials of its own IAM role session (an STS ``AssumeRole`` in moto, as Lambda gives it), fed by
  the state table's stream and by EventBridge rules with the template's patterns
  (:class:`~tests.functional.reconcile.support.Reconciler`).
* ``bob`` -- an IAM user with his own access key: his ECR calls are drift made out of band, and
  the embedded AWS names him in their CloudTrail events.
* ``api`` / ``alice`` -- the REST API handler in-process (``ApiClient``), and desired-state writes through it.
* ``look`` -- read-only views of ECR and of what the reconciler recorded in the state table.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import botocore.session
import pytest

from devstack.aws import clock, events, install, ports, secrets_replication
from devstack.aws.ports import AuthCheckResult
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.identity import caller_arn
from ecrcache.adapters.secret_replication import SecretsManagerReplication
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.status import ReconcileRun, RunTrigger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.conftest import REGION, FakeLambdaContext
from tests.functional.api.client import ApiClient
from tests.functional.reconcile.support import (
    GOOD_TOKEN,
    RECONCILE_WORKER_ROLE,
    RECONCILER_ROLE,
    RECONCILER_SESSION,
    Admin,
    EventInbox,
    Look,
    Principal,
    Reconciler,
    StateStream,
    clients,
    reconciler_test_session,
    share_loader,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

ALICE = "arn:aws:iam::123456789012:user/alice"


@dataclass
class World:
    desired: DesiredStateService
    reconciler: ReconcileService
    registries: dict[str, Boto3EcrRegistry]
    ecr: ECRClient
    replicas: SecretsManagerReplication

    def reconcile(self, scope: Scope | None = None, trigger: RunTrigger = RunTrigger.SCHEDULE) -> ReconcileRun:
        return self.reconciler.reconcile(scope or Scope(), trigger)


class _TokenChecker:
    """The upstream auth check behind ``ValidatePullThroughCacheRule``: only :data:`GOOD_TOKEN` is valid."""

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        if access_token == GOOD_TOKEN:
            return AuthCheckResult(is_valid=True)
        return AuthCheckResult(is_valid=False, failure="upstream rejected the credential (401)")


def _reset_embedded_knobs() -> None:
    events.faults.clear()
    events.clear_recent()
    clock.reset()
    secrets_replication.reset()


def _sleep_on_the_embedded_clock(seconds: float) -> None:
    """The wait for a new secret replica passes on the embedded AWS's clock (its replication delay's)."""
    clock.advance(timedelta(seconds=seconds))


@pytest.fixture
def world(state_table: str) -> Iterator[World]:
    install()
    _reset_embedded_knobs()
    ports.set_upstream_auth_checker(_TokenChecker())

    aws = clients()
    store = DynamoDbStateStore(state_table, aws.dynamodb)
    registries: dict[str, Boto3EcrRegistry] = {}

    def registry(region: str) -> Boto3EcrRegistry:
        if region not in registries:
            client = reconciler_test_session().client("ecr", region_name=region)  # its own: a registry counts its calls
            registries[region] = Boto3EcrRegistry(region, client, sleep=lambda _: None)
        return registries[region]

    def clock_now() -> datetime:
        return datetime.now(UTC)

    desired = DesiredStateService(store, SecretsManagerStore(aws.secretsmanager), clock_now)
    replicas = SecretsManagerReplication(aws.secretsmanager)
    reconciler = ReconcileService(
        desired=store,
        status=DynamoDbStatusStore(state_table, aws.dynamodb),
        registry=registry,
        clock=clock_now,
        stack_region=REGION,
        replicas=replicas,
        sleep=_sleep_on_the_embedded_clock,
    )
    try:
        yield World(desired, reconciler, registries, aws.ecr, replicas)
    finally:
        ports.set_upstream_auth_checker(None)
        _reset_embedded_knobs()


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext) -> ApiClient:
    """The api function in-process (desired-state writes land on the table's stream)."""
    return ApiClient(lambda_context)


def _fresh_session() -> boto3.Session:
    """A new boto3 session: credentials from the environment, resolved on first use."""
    return share_loader(boto3.Session(botocore_session=botocore.session.get_session(), region_name=REGION))


@pytest.fixture
def controller(
    world: World, state_table: str, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Reconciler]:
    """The reconciler function as deployed: its own role session's credentials, the template's triggers."""
    from functions.reconciler import app

    session = clients().sts.assume_role(RoleArn=RECONCILER_ROLE, RoleSessionName=RECONCILER_SESSION)["Credentials"]
    # Lambda hands the function its role session through these variables.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", session["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", session["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", session["SessionToken"])
    # A cold start: a new default boto3 session (reads those variables), no registry (ECR client)
    # and no cached identity from an earlier test.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", _fresh_session())
    monkeypatch.setattr(app, "_registries", {})
    # As deployed, it is told the reconcile worker's role (RECONCILE_WORKER_ROLE_ARN): that role's writes are its own.
    monkeypatch.setattr(
        app, "settings", app.settings.model_copy(update={"reconcile_worker_role_arn": RECONCILE_WORKER_ROLE})
    )
    monkeypatch.setattr(app, "Boto3EcrRegistry", functools.partial(Boto3EcrRegistry, sleep=lambda _: None))
    caller_arn.cache_clear()
    stream = StateStream(state_table)
    inbox = EventInbox()
    unfiltered = EventInbox("reconciler-inbox-unfiltered", own_calls_filtered=False)
    try:
        # An invocation's time at its start: the function's Timeout (300 s).
        context = dataclasses.replace(lambda_context, remaining_millis=300_000)
        yield Reconciler(context, stream, inbox, app.lambda_handler, app.registry, app.service, unfiltered=unfiltered)
    finally:
        caller_arn.cache_clear()


@pytest.fixture
def bob(aws: None) -> Principal:
    """An IAM user with an access key of his own: ECR changes made behind the controller's back."""
    iam = clients().iam
    user = iam.create_user(UserName="bob")["User"]
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    ecr = reconciler_test_session().client(
        "ecr",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    return Principal(arn=user["Arn"], ecr=ecr)


@pytest.fixture
def alice(api: ApiClient) -> Admin:
    """Desired-state changes through the REST API."""
    return Admin(api)


@pytest.fixture
def look(state_table: str) -> Look:
    return Look(state_table)

"""The credential health service on the embedded AWS: see :mod:`tests.functional.credential_health.support`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from pydantic import SecretStr

from devstack.aws import install, ports
from ecrcache.adapters.alert_topic import SnsAlerts
from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.health_events import EventBridgeHealthNotifier
from ecrcache.adapters.secret_rotation import SecretsManagerRotation
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.upstream import UpstreamKind
from ecrcache.services.credential_health import CredentialHealthService, CredentialMarks
from ecrcache.services.desired_state import DesiredStateService
from tests.conftest import REGION
from tests.functional.credential_health.support import TOKEN, USERNAME, Clock, HealthWorld
from tests.functional.rotation.support import EcrValidation, UpstreamStandIn

ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture
def world(state_table: str) -> Iterator[HealthWorld]:
    install()
    validation = EcrValidation({TOKEN})
    ports.set_upstream_auth_checker(validation)
    sm = boto3.client("secretsmanager", region_name=REGION)
    ecr = boto3.client("ecr", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    clock = Clock()
    store = DynamoDbStateStore(state_table, dynamodb)
    desired = DesiredStateService(store, SecretsManagerStore(sm), lambda: clock.now)
    spec = CredentialSpec(upstream_kind=UpstreamKind.DOCKER_HUB, username=USERNAME)
    desired.put_credential("hub", spec, SecretStr(TOKEN), actor=ALICE)
    arn = sm.describe_secret(SecretId="ecr-pullthroughcache/hub")["ARN"]
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
    )
    # A user's rule on the default bus: every ecrcache event to a queue.
    events_queue = sqs.create_queue(QueueName="ecrcache-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ecrcache-health", EventPattern=json.dumps({"source": ["ecrcache"]}))
    events.put_targets(Rule="ecrcache-health", Targets=[{"Id": "queue", "Arn": events_arn}])
    # The alert topic, a queue subscribed to it (as an e-mail subscription would be).
    topic = sns.create_topic(Name="ecrcache-alerts")["TopicArn"]
    alerts_queue = sqs.create_queue(QueueName="ecrcache-alerts")["QueueUrl"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn)
    registries: dict[str, Boto3EcrRegistry] = {}

    def registry(region: str) -> Boto3EcrRegistry:
        if region not in registries:
            registries[region] = Boto3EcrRegistry(region, boto3.client("ecr", region_name=region), sleep=lambda _: None)
        return registries[region]

    upstream = UpstreamStandIn({TOKEN})
    health = DynamoDbCredentialHealthStore(state_table, dynamodb)
    budget = DynamoDbUpstreamBudget(state_table, dynamodb, sleep=lambda _: None)
    notifier = EventBridgeHealthNotifier(events, alerts=SnsAlerts(topic, sns))
    service = CredentialHealthService(
        desired=store,
        secrets=SecretsManagerRotation(sm),
        probe=upstream,
        budget=budget,
        ecr=registry,
        store=health,
        notifier=notifier,
        clock=clock,
    )
    marks = CredentialMarks(store=health, notifier=notifier, clock=clock)
    try:
        yield HealthWorld(
            service,
            marks,
            health,
            budget,
            desired,
            upstream,
            validation,
            clock,
            sm,
            ecr,
            sqs,
            dynamodb,
            state_table,
            events_queue,
            alerts_queue,
            arn,
        )
    finally:
        ports.set_upstream_auth_checker(None)

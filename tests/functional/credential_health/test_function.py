"""``functions/credential_health/app.py`` as Lambda runs it, on the embedded AWS, with the real probe signing in at
a local Docker-Hub-like registry with token auth (``UPSTREAM_ENDPOINTS``, as the local stack sets it): the sample
schedule event runs the daily check; the health is recorded and announced on the bus and the alert topic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from devstack.registry import LocalRegistry, Seeder
from ecrcache.config import CredentialHealthSettings
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.credential_health import HealthState
from ecrcache.models.upstream import UpstreamKind
from tests.conftest import REGION, FakeLambdaContext, load_event, sample_events
from tests.functional.credential_health.support import HealthWorld
from tests.functional.registry.support import AUTH_CREDENTIALS

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

SAMPLES = sample_events("credential_health")


@pytest.fixture
def deployed(
    world: HealthWorld,
    token_registry: LocalRegistry,
    unique_repo: str,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[HealthWorld]:
    """Besides ``hub`` (a token the registry refuses), credential ``docker-hub`` with the registry's own credentials,
    its probe an image of that registry; the handler's settings map Docker Hub to the registry and name the topic."""
    from functions.credential_health import app

    with Seeder.for_registry(token_registry) as seeder:
        seeder.image(unique_repo, "latest", platforms=("linux/amd64",))
    spec = CredentialSpec(
        upstream_kind=UpstreamKind.DOCKER_HUB, username=AUTH_CREDENTIALS.username, probe=f"{unique_repo}:latest"
    )
    world.desired.put_credential(
        "docker-hub", spec, SecretStr(AUTH_CREDENTIALS.password), actor="arn:aws:iam::123456789012:user/alice"
    )
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="ecrcache-alerts")["TopicArn"]  # the same one
    settings = CredentialHealthSettings.model_validate(
        {
            "table_name": state_table,
            "upstream_endpoints": json.dumps({"registry-1.docker.io": token_registry.url}),
            "alert_topic_arn": topic,
        }
    )
    monkeypatch.setattr(app, "settings", settings)
    app.service.cache_clear()
    try:
        yield world
    finally:
        app.service.cache_clear()


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_sample_schedule_runs_the_daily_check(
    deployed: HealthWorld, lambda_context: FakeLambdaContext, sample: str
) -> None:
    from functions.credential_health import app

    answer: dict[str, Any] = app.lambda_handler(load_event(sample), lambda_context)

    # the registry took docker-hub's token, and refused hub's
    assert answer == {"states": {"docker-hub": "Healthy", "hub": "Invalid"}, "not_recorded": []}
    healthy = deployed.health("docker-hub")
    assert healthy.message is not None and "signed in with the credential and found the probe image" in healthy.message
    refused = deployed.health("hub")
    assert refused.state is HealthState.INVALID
    assert refused.message is not None and "the upstream refused the token" in refused.message
    announced = {(e["detail"]["credential"], e["detail"]["state"]) for e in deployed.events()}
    assert announced == {("docker-hub", "Healthy"), ("hub", "Invalid")}
    assert len(deployed.alerts()) == 2


def test_an_event_that_is_not_an_eventbridge_event_is_refused_by_the_parser(lambda_context: FakeLambdaContext) -> None:
    from aws_lambda_powertools.utilities.parser import ValidationError

    from functions.credential_health import app

    with pytest.raises(ValidationError):
        app.lambda_handler({"resync": "deep"}, lambda_context)

"""What a credential probe asks for, per upstream kind, and the secret shape it signs in with."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ecrcache.models.credential import UpstreamLogin
from ecrcache.models.upstream import CREDENTIAL_KINDS, UpstreamKind
from ecrcache.models.upstream_probe import DEFAULT_PROBES, ProbeTarget, default_probe, probe_target

pytestmark = pytest.mark.unit

TOKEN = "ghp_PROBECANARY_0123456789"


def test_every_kind_that_takes_a_token_has_a_default_probe_entry() -> None:
    # GIVEN the kinds whose rules take a Secrets Manager credential THEN each has an entry (ACR: /v2/ only)
    assert set(DEFAULT_PROBES) >= CREDENTIAL_KINDS
    assert default_probe(UpstreamKind.AZURE_CONTAINER_REGISTRY) is None
    # AND every other entry is an image with a tag
    assert all(image.tag for kind, image in DEFAULT_PROBES.items() if image is not None)


def test_the_anonymous_upstreams_have_probes_for_the_health_check_but_private_ecr_has_none() -> None:
    assert {UpstreamKind.QUAY, UpstreamKind.ECR_PUBLIC, UpstreamKind.K8S} <= set(DEFAULT_PROBES)
    with pytest.raises(ValueError, match="signed in with an IAM role"):
        default_probe(UpstreamKind.ECR)


def test_a_credentials_probe_replaces_the_kinds_default() -> None:
    assert str(probe_target(UpstreamKind.DOCKER_HUB, "registry-1.docker.io")) == (
        "registry-1.docker.io/ratelimitpreview/test:latest"
    )
    own = probe_target(UpstreamKind.AZURE_CONTAINER_REGISTRY, "team.azurecr.io", "apps/web:1.2")
    assert (own.image.repository if own.image else None, str(own)) == ("apps/web", "team.azurecr.io/apps/web:1.2")
    assert str(ProbeTarget("team.azurecr.io")) == "team.azurecr.io/v2/"


def test_a_login_is_read_from_the_secret_shape_and_hides_its_token() -> None:
    login = UpstreamLogin.from_secret_string(SecretStr(f'{{"username": "ci-bot", "accessToken": "{TOKEN}"}}'))
    assert (login.username, login.token.get_secret_value()) == ("ci-bot", TOKEN)
    assert TOKEN not in f"{login!r} {login!s}"


@pytest.mark.parametrize(
    "value",
    [
        TOKEN,  # not JSON
        f'{{"user": "ci-bot", "accessToken": "{TOKEN}"}}',  # a key missing
        f'{{"username": "", "accessToken": "{TOKEN}"}}',  # empty
        f'{{"username": 7, "accessToken": "{TOKEN}"}}',  # not a string
        f'["ci-bot", "{TOKEN}"]',  # not an object
    ],
)
def test_a_malformed_secret_is_refused_without_its_value(value: str) -> None:
    with pytest.raises(ValueError, match="username") as refused:
        UpstreamLogin.from_secret_string(SecretStr(value))
    assert TOKEN not in str(refused.value)
    # AND no chained exception (a JSON error, a KeyError) that a traceback would print with it
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None or refused.value.__suppress_context__

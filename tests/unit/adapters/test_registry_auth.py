"""The shared registry conversation's rules that no local registry can exercise (ours are all plain HTTP):
a credential is never sent to a plain-HTTP realm of an HTTPS registry, a redirect never goes from HTTPS down
to HTTP, and a 429's reset is read from each header upstreams use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3

from ecrcache.adapters.registry_auth import (
    Answer,
    RegistryFailure,
    RegistryHttp,
    basic_authorization,
    followed,
    retry_at,
)
from ecrcache.models.failure_class import FailureClass

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TOKEN = "ghp_REGISTRYAUTHCANARY_0001"


class NoNetwork(urllib3.PoolManager):
    """A pool that fails the test if anything is sent."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"nothing may be sent, got {args!r}")


def test_the_credential_is_not_sent_to_a_plain_http_realm_of_an_https_registry() -> None:
    registry = RegistryHttp(NoNetwork(), lambda: NOW)
    basic = basic_authorization("octo", TOKEN)
    with pytest.raises(RegistryFailure) as refused:
        registry.bearer("https://ghcr.io/v2/", {"realm": "http://ghcr.io/token", "service": "ghcr.io"}, basic)
    assert (refused.value.failure, refused.value.message) == (
        FailureClass.CREDENTIAL,
        "the upstream's token realm is not HTTPS: the credential is not sent",
    )


def test_a_basic_challenge_from_another_host_gets_no_credential() -> None:
    registry = RegistryHttp(NoNetwork(), lambda: NOW)
    answer = Answer(401, {"www-authenticate": 'Basic realm="elsewhere"'}, b"", "https://elsewhere.example/v2/")

    def never() -> str:
        raise AssertionError("the credential was asked for")

    with pytest.raises(RegistryFailure, match="it is sent to the upstream's own host only"):
        registry.sign_in("https://registry.k8s.io", answer, never, subject="pause:3.10", no_credential="none")


def test_an_unknown_challenge_is_a_credential_failure_naming_the_scheme() -> None:
    registry = RegistryHttp(NoNetwork(), lambda: NOW)
    answer = Answer(401, {"www-authenticate": 'Negotiate realm="x"'}, b"", "https://quay.io/v2/")
    with pytest.raises(RegistryFailure, match=r"401 with an unknown challenge \(Negotiate\) for probe"):
        registry.sign_in("https://quay.io", answer, lambda: None, subject="probe", no_credential="none")


def test_a_redirect_from_https_down_to_http_is_not_followed() -> None:
    assert followed("https://ghcr.io", "https://pkg-containers.githubusercontent.com/x") == (
        "https://pkg-containers.githubusercontent.com/x"
    )
    with pytest.raises(RegistryFailure, match="from HTTPS to plain HTTP"):
        followed("https://ghcr.io", "http://ghcr.io/v2/")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "120"}, NOW + timedelta(seconds=120)),
        ({"retry-after": "Sun, 29 Nov 2026 13:00:00 GMT"}, datetime(2026, 11, 29, 13, 0, tzinfo=UTC)),
        ({"ratelimit-reset": "60;w=21600"}, NOW + timedelta(seconds=60)),
        ({"x-ratelimit-reset": "1795000000"}, datetime.fromtimestamp(1795000000, UTC)),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_a_429s_reset_is_read_from_the_header_the_upstream_uses(
    headers: dict[str, str], expected: datetime | None
) -> None:
    assert retry_at(headers, NOW) == expected

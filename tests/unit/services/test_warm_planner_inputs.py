"""What the warm planner reads besides its ports: warm requests from the stream, the tick, its settings,
and the default rate limit of every upstream kind."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecrcache.config import WarmPlannerSettings
from ecrcache.models.upstream import UpstreamKind, default_rate_limit
from ecrcache.services.warm_planner import TickInput, WarmRequest, parse_request

pytestmark = pytest.mark.unit


def test_a_warm_request_is_read_from_its_stream_keys_and_image() -> None:
    keys = {"pk": "REQUEST#warm", "sk": "run-1"}
    image = {**keys, "warm_set": "base", "requested_by": "arn:aws:iam::123456789012:user/alice"}
    assert parse_request(keys, image) == WarmRequest(run_id="run-1", warm_set="base")


@pytest.mark.parametrize(
    ("keys", "image"),
    [
        ({"pk": "REQUEST#reconcile", "sk": "run-1"}, {"deep": True}),  # the reconciler's
        ({"pk": "DESIRED#rule", "sk": "quay"}, {"spec": "{}"}),
        ({"pk": "REQUEST#warm", "sk": "run-1"}, None),  # its TTL removal: no new image
    ],
)
def test_other_records_are_not_warm_requests(keys: dict[str, object], image: dict[str, object] | None) -> None:
    assert parse_request(keys, image) is None


def test_a_malformed_warm_request_names_the_field() -> None:
    with pytest.raises(ValueError, match="a warm request with invalid warm_set"):
        parse_request({"pk": "REQUEST#warm", "sk": "run-1"}, {"pk": "REQUEST#warm"})


def test_the_tick_is_exactly_its_input() -> None:
    assert TickInput.model_validate({"tick": True}).tick is True
    for event in ({"tick": False}, {"tick": "yes"}, {"tick": True, "extra": 1}, {"resync": "fast"}):
        with pytest.raises(ValidationError):
            TickInput.model_validate(event)


def test_settings_read_the_upstream_endpoints_as_json() -> None:
    settings = WarmPlannerSettings.model_validate(
        {
            "table_name": "state",
            "warm_queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/warm",
            "upstream_endpoints": '{"Registry-1.Docker.io": "http://127.0.0.1:5000/"}',
        }
    )
    assert settings.upstream_endpoints == {"registry-1.docker.io": "http://127.0.0.1:5000"}
    empty = WarmPlannerSettings.model_validate(
        {"table_name": "state", "warm_queue_url": "q", "upstream_endpoints": "{}"}
    )
    assert empty.upstream_endpoints == {}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('{"registry-1.docker.io": "ftp://x"}', "http(s) base URL"),
        ('{"a/b": "http://x"}', "http(s) base URL"),
        ("not json", "Invalid JSON"),
        ('["http://x"]', "valid dictionary"),
    ],
)
def test_bad_upstream_endpoints_are_refused(value: str, words: str) -> None:
    with pytest.raises(ValidationError, match="upstream_endpoints") as exc:
        WarmPlannerSettings.model_validate({"table_name": "state", "warm_queue_url": "q", "upstream_endpoints": value})
    assert words in str(exc.value)


def test_every_upstream_kind_has_a_default_rate_limit() -> None:
    for kind in UpstreamKind:
        requests, window = default_rate_limit(kind)
        assert requests >= 1 and window >= 1
    assert default_rate_limit(UpstreamKind.DOCKER_HUB) == (200, 21_600)  # Docker Hub: 200 per 6 h, authenticated

"""Every event the health check and the marks send validates against its JSON Schema in ``docs/events/`` (the
schemas users write their EventBridge rules and consumers against), and each schema's example does too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from ecrcache.engine.credential_errors import CredentialError
from ecrcache.engine.credential_health import EVENT_SOURCE, EXPIRING_DETAIL_TYPE, HEALTH_CHANGED_DETAIL_TYPE
from tests.conftest import ROOT
from tests.functional.credential_health.support import HealthWorld

pytestmark = pytest.mark.functional

SCHEMAS = {
    HEALTH_CHANGED_DETAIL_TYPE: ROOT / "docs" / "events" / "credential-health-changed.schema.json",
    EXPIRING_DETAIL_TYPE: ROOT / "docs" / "events" / "credential-expiring.schema.json",
}


def validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def errors_of(event: dict[str, Any]) -> list[str]:
    return [error.message for error in validator(SCHEMAS[event["detail-type"]]).iter_errors(event)]


@pytest.mark.parametrize("detail_type", sorted(SCHEMAS))
def test_each_schema_is_valid_and_its_examples_validate(detail_type: str) -> None:
    schema = json.loads(SCHEMAS[detail_type].read_text())
    assert schema["properties"]["detail-type"]["const"] == detail_type
    assert schema["properties"]["source"]["const"] == EVENT_SOURCE
    assert schema["examples"]
    for example in schema["examples"]:
        assert errors_of(example) == []


def test_every_event_sent_validates_against_its_schema(world: HealthWorld) -> None:
    # GIVEN a credential that goes Healthy, Expiring (with every alert), Invalid by a mark, and Invalid by a check
    world.expire_in(15)
    for _ in range(17):
        world.service.check_all()
        world.clock.days(1)
    world.marks.mark([CredentialError("hub", "a pull failed on the credential", "event e1", world.clock())])
    world.upstream.accepted.clear()
    world.service.check_all()
    events = world.events()
    # THEN both kinds were sent, and each validates
    assert {event["detail-type"] for event in events} == set(SCHEMAS)
    assert len(events) >= 7
    assert {json.dumps(event["detail"]): errors_of(event) for event in events} == {
        json.dumps(event["detail"]): [] for event in events
    }


def test_a_schema_refuses_an_event_that_breaks_it() -> None:
    # The check above cannot pass vacuously: a detail with a token-like extra field, or a bad state, is refused.
    event = {
        "source": "ecrcache",
        "detail-type": HEALTH_CHANGED_DETAIL_TYPE,
        "detail": {
            "credential": "hub",
            "state": "Broken",
            "previous_state": "Unknown",
            "checked_at": "2027-03-01T06:00:00+00:00",
            "message": None,
            "expires_at": None,
            "days_to_expiry": None,
            "accessToken": "x",
        },
    }
    assert len(errors_of(event)) == 2

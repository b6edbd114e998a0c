"""The token the health check reads reaches the upstream and nothing else: not a log line (the Powertools logger at
DEBUG), a log record, an exception, a health item or any other item of the state table, an event on the bus, a
message on the alert topic, nor the check's answer -- whichever way the check goes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ecrcache.engine.credential_errors import CredentialError
from tests.functional.credential_health.support import CANARY, TOKEN, USERNAME, HealthWorld
from tests.functional.rotation.support import failing
from tests.leaks import PowertoolsLogTap, leaks

pytestmark = pytest.mark.functional


def healthy(world: HealthWorld) -> None:
    world.service.check_all()


def revoked(world: HealthWorld) -> None:
    world.upstream.accepted.clear()
    world.validation.accepted.clear()
    world.service.check_all()


def malformed(world: HealthWorld) -> None:
    world.sm.put_secret_value(SecretId="ecr-pullthroughcache/hub", SecretString=f"{TOKEN} pasted alone")
    world.service.check_all()
    world.sm.put_secret_value(
        SecretId="ecr-pullthroughcache/hub", SecretString=json.dumps({"user": USERNAME, "token": TOKEN})
    )
    world.service.check_all()


def expiring(world: HealthWorld) -> None:
    world.expire_in(2)
    for _ in range(4):
        world.service.check_all()
        world.clock.days(1)


def marked(world: HealthWorld) -> None:
    world.service.check_all()
    world.marks.mark([CredentialError("hub", "a pull failed on the credential", "event e1", world.clock())])


def aws_refusing(world: HealthWorld) -> None:
    put = world.dynamodb.put_item
    world.dynamodb.put_item = failing(put, lambda _: True, "AccessDeniedException", 400)  # type: ignore[method-assign]
    try:
        world.service.check_all()
    finally:
        world.dynamodb.put_item = put  # type: ignore[method-assign]


SCENARIOS: dict[str, Callable[[HealthWorld], None]] = {
    "healthy": healthy,
    "revoked": revoked,
    "malformed secret": malformed,
    "expiring": expiring,
    "marked elsewhere": marked,
    "AWS refusing": aws_refusing,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_token_leaks_whichever_way_a_check_goes(
    world: HealthWorld, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, scenario: str
) -> None:
    # GIVEN our logger at DEBUG, its lines and records kept
    caplog.set_level("DEBUG", logger="ecrcache-test")
    exceptions: list[BaseException] = []
    with PowertoolsLogTap() as tap:
        # WHEN the check goes this way
        try:
            SCENARIOS[scenario](world)
        except Exception as exc:  # what Lambda would log
            exceptions.append(exc)
    # THEN the scenario did run (health recorded, or the failure raised)
    assert world.store.all_health() or exceptions
    assert tap.lines.getvalue()
    # AND the token is nowhere but in Secrets Manager
    captured = capsys.readouterr()
    published = [json.dumps(event) for event in world.events()] + [json.dumps(alert) for alert in world.alerts()]
    found = leaks(
        CANARY,
        lines=[*tap.lines.getvalue().splitlines(), *captured.out.splitlines(), *captured.err.splitlines(), *published],
        records=caplog.records,
        exceptions=exceptions,
        items=world.items(),
    )
    assert found == []
    assert CANARY in TOKEN  # the canary is what a leak would show

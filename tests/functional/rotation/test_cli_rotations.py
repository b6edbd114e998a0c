"""``ecrcache credentials rotate NAME --token-stdin [--wait]`` and ``ecrcache credentials status NAME`` against the
real API handler (in-process behind the local gateway), on the embedded Secrets Manager's ``RotateSecret``: the
rotation function's steps (:class:`~tests.functional.rotation.api_support.Rotator`) run between the CLI's polls."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.functional.rotation.api_support import Rotator
from tests.functional.rotation.support import BAD_TOKEN, CANARY, NEW_TOKEN, OLD_TOKEN, RotationWorld
from tests.unit.cli.support import CliResult, run_cli

pytestmark = pytest.mark.functional


def cli(endpoint: str, *argv: str, input: str | None = None, sleep: Callable[[float], None] | None = None) -> CliResult:
    return run_cli(["--endpoint", endpoint, *argv], input=input, sleep=sleep)


def steps_between_polls(rotator: Rotator) -> Callable[[float], None]:
    """The CLI's sleep: Secrets Manager invokes the steps while the CLI waits."""
    return lambda _: rotator.run()


def test_rotate_wait_exits_0_when_the_new_token_is_promoted(
    world: RotationWorld, rotator: Rotator, endpoint: str
) -> None:
    result = cli(
        endpoint,
        "credentials",
        "rotate",
        "hub",
        "--token-stdin",
        "--wait",
        input=f"{NEW_TOKEN}\n",
        sleep=steps_between_polls(rotator),
    )
    assert result.code == 0, result.output
    assert "promoted" in result.stdout
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        assert step in result.stdout
    assert world.current_token() == NEW_TOKEN
    assert CANARY not in result.output


def test_rotate_wait_exits_6_when_the_upstream_refuses_and_the_old_token_stays(
    world: RotationWorld, rotator: Rotator, endpoint: str
) -> None:
    result = cli(
        endpoint,
        "credentials",
        "rotate",
        "hub",
        "--token-stdin",
        "--wait",
        input=BAD_TOKEN,
        sleep=steps_between_polls(rotator),
    )
    assert result.code == 6, result.output
    assert "refused" in result.output
    assert "did not accept the new token" in result.stderr
    assert "testSecret" in result.stdout
    assert world.current_token() == OLD_TOKEN
    assert CANARY not in result.output


def test_rotate_wait_exits_6_when_the_rotation_does_not_end_in_time(
    world: RotationWorld, rotator: Rotator, endpoint: str
) -> None:
    result = cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", "--wait", "--timeout", "0", input=NEW_TOKEN)
    assert result.code == 6, result.output
    assert "did not end within 0 s" in result.stderr


def test_rotate_without_wait_prints_the_id_and_state(world: RotationWorld, rotator: Rotator, endpoint: str) -> None:
    result = cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", "-o", "json", input=NEW_TOKEN)
    assert result.code == 0, result.output
    body = json.loads(result.stdout)
    assert body["state"] == "in_progress"
    assert body["rotation_id"] == rotator.calls[0]["ClientRequestToken"]


def test_rotate_while_another_is_in_progress_exits_5(world: RotationWorld, rotator: Rotator, endpoint: str) -> None:
    assert cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", input=NEW_TOKEN).code == 0
    again = cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", input=BAD_TOKEN)
    assert again.code == 5, again.output
    assert "in progress" in again.stderr


def test_rotate_needs_the_token_on_stdin_and_a_known_credential(
    world: RotationWorld, rotator: Rotator, endpoint: str
) -> None:
    assert cli(endpoint, "credentials", "rotate", "hub").code == 64
    assert cli(endpoint, "credentials", "rotate", "nope", "--token-stdin", input=NEW_TOKEN).code == 4
    assert cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", input="").code == 3
    assert rotator.calls == []


def test_status_shows_the_latest_rotations_with_their_steps(
    world: RotationWorld, rotator: Rotator, endpoint: str
) -> None:
    cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", input=BAD_TOKEN)
    rotator.run()
    cli(endpoint, "credentials", "rotate", "hub", "--token-stdin", input=NEW_TOKEN)
    rotator.run()
    table = cli(endpoint, "credentials", "status", "hub")
    assert table.code == 0, table.output
    assert table.stdout.index("promoted") < table.stdout.index("refused")
    body = json.loads(cli(endpoint, "credentials", "status", "hub", "-o", "json").stdout)
    assert [r["state"] for r in body["rotations"]] == ["promoted", "refused"]
    assert body["rotations"][1]["steps"]["testSecret"]["status"] == "failed"
    assert set(body) == {"credential", "health", "rotations"}
    assert cli(endpoint, "credentials", "status", "nope").code == 4

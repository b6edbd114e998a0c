"""The tokens a rotation handles -- the current one, an operator's new one, a bad one -- reach Secrets Manager and
the upstream, nothing else: not a log line (the Powertools logger at DEBUG), a log record, an exception as a
traceback prints it, the step's answer, nor any item of the state table, whichever way the rotation goes.
(The probe's own HTTP, urllib3's DEBUG lines included, is scanned in ``test_upstream_probe.py``.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from ecrcache.models.rotation import RotationStep
from tests.functional.api.aws_support import scan
from tests.functional.rotation.support import (
    BAD_TOKEN,
    CANARY,
    NEW_TOKEN,
    OLD_TOKEN,
    STEPS,
    RotationWorld,
    failing,
    value_of,
)
from tests.leaks import PowertoolsLogTap, leaks

pytestmark = pytest.mark.functional


@dataclass
class Watched:
    """The world, with every step's answer and every exception a step raised kept for the scan."""

    world: RotationWorld
    answers: list[str] = field(default_factory=list)
    exceptions: list[BaseException] = field(default_factory=list)

    def rotate(self, token: str) -> None:
        for step in STEPS:
            try:
                self.answers.append(self.world.step(step, token))
            except Exception as exc:  # a failed step: what Secrets Manager records and Lambda logs
                self.exceptions.append(exc)
                return


def promoted(w: Watched) -> None:
    w.rotate(w.world.begin(value_of(NEW_TOKEN)))


def scheduled(w: Watched) -> None:
    w.rotate(w.world.begin())


def refused(w: Watched) -> None:
    w.rotate(w.world.begin(value_of(BAD_TOKEN)))


def malformed(w: Watched) -> None:
    w.rotate(w.world.begin(f"{BAD_TOKEN} pasted alone"))
    w.rotate(w.world.begin(json.dumps({"username": "ci-bot", "token": BAD_TOKEN})))


def rolled_back(w: Watched) -> None:
    w.world.validation.accepted = {OLD_TOKEN}
    w.rotate(w.world.begin(value_of(NEW_TOKEN)))


def aws_refuses(w: Watched) -> None:
    sm = w.world.sm
    token = w.world.begin()
    put, update = sm.put_secret_value, sm.update_secret_version_stage
    sm.put_secret_value = failing(put, lambda _: True, "AccessDeniedException", 400)  # type: ignore[method-assign]
    w.rotate(token)
    sm.put_secret_value = put  # type: ignore[method-assign]
    token = w.world.begin(value_of(NEW_TOKEN))
    w.world.validation.accepted = {OLD_TOKEN}
    sm.update_secret_version_stage = failing(  # type: ignore[method-assign]
        update,
        lambda kw: kw.get("VersionStage") == "AWSCURRENT" and kw.get("RemoveFromVersionId") == token,
        "ThrottlingException",
        400,
    )
    w.rotate(token)  # promoted, not validated, the roll-back refused: the new token stays current
    sm.update_secret_version_stage = update  # type: ignore[method-assign]


def retried(w: Watched) -> None:
    token = w.world.begin(value_of(BAD_TOKEN))
    w.rotate(token)
    w.rotate(token)  # Secrets Manager's retries meet the guard


SCENARIOS: dict[str, Callable[[Watched], None]] = {
    "promoted": promoted,
    "scheduled re-test": scheduled,
    "refused at testSecret": refused,
    "malformed value": malformed,
    "rolled back": rolled_back,
    "AWS refusing": aws_refuses,
    "retried after a refusal": retried,
}


@pytest.fixture
def watched(world: RotationWorld) -> Iterator[Watched]:
    yield Watched(world)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_token_leaks_whichever_way_a_rotation_goes(
    watched: Watched,
    state_table: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    scenario: str,
) -> None:
    # GIVEN our logger at DEBUG, its lines and records kept
    caplog.set_level("DEBUG", logger="ecrcache-test")
    with PowertoolsLogTap() as tap:
        # WHEN the rotation goes this way
        SCENARIOS[scenario](watched)
    # THEN the scenario did run (steps answered or failed, records written)
    assert watched.answers or watched.exceptions
    assert any(item["pk"]["S"].startswith("ROTATION#") for item in scan(state_table))
    # AND no token is anywhere but in Secrets Manager
    captured = capsys.readouterr()
    found = leaks(
        CANARY,
        lines=[
            *tap.lines.getvalue().splitlines(),
            *captured.out.splitlines(),
            *captured.err.splitlines(),
            *watched.answers,
        ],
        records=caplog.records,
        exceptions=watched.exceptions,
        items=scan(state_table),
    )
    assert not found, "a token leaked:\n" + "\n".join(found)


def test_the_scan_would_see_a_token_in_a_log_line_an_exception_or_an_item(
    watched: Watched, state_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The scan itself must find a leak (so the test above cannot pass vacuously).
    from ecrcache.observability import logger

    caplog.set_level("DEBUG", logger="ecrcache-test")
    with PowertoolsLogTap() as tap:
        logger.debug("oops", extra={"value": NEW_TOKEN})
    try:
        raise ValueError("wrapped") from KeyError(BAD_TOKEN)
    except ValueError as exc:
        chained = exc
    item = {"pk": {"S": "ROTATION#hub"}, "sk": {"S": "x"}, "message": {"S": OLD_TOKEN}}
    found = leaks(CANARY, lines=tap.lines.getvalue().splitlines(), exceptions=[chained], items=[item])
    assert [f.split(":")[0] for f in found] == ["log line", "exception KeyError", "DynamoDB item ROTATION#hub x"]
    assert RotationStep.TEST in STEPS

"""Which credential secrets get their rotation schedule set or removed (the pure plan)."""

from __future__ import annotations

import pytest

from ecrcache.engine.rotation_schedule import ObservedRotation, ScheduleAction, ScheduleChange, plan_schedules

pytestmark = pytest.mark.unit

FN = "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator"
OTHER_FN = "arn:aws:lambda:us-east-1:123456789012:function:someone-elses"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"


def seen(
    *, enabled: bool = True, schedule: str | None = None, fn: str | None = FN, busy: bool = False
) -> ObservedRotation:
    return ObservedRotation(arn=ARN, enabled=enabled, schedule=schedule, function_arn=fn, in_progress=busy)


@pytest.mark.parametrize(
    ("wanted", "observed", "expected"),
    [
        (
            "rate(30 days)",
            seen(enabled=False, fn=None),
            ScheduleAction("hub", ARN, ScheduleChange.SET, "rate(30 days)"),
        ),
        (
            "rate(30 days)",
            seen(schedule="rate(7 days)"),
            ScheduleAction("hub", ARN, ScheduleChange.SET, "rate(30 days)"),
        ),
        (
            "rate(30 days)",
            seen(schedule="rate(30 days)", fn=OTHER_FN),
            ScheduleAction("hub", ARN, ScheduleChange.SET, "rate(30 days)"),
        ),
        ("rate(30 days)", seen(schedule="rate(30 days)"), None),
        (None, seen(schedule="rate(30 days)"), ScheduleAction("hub", ARN, ScheduleChange.CANCEL)),
        (None, seen(schedule=None), None),  # enabled by a rotation started through the API: nothing scheduled
        (None, seen(enabled=False, fn=None), None),
    ],
)
def test_the_plan_converges_the_schedule(
    wanted: str | None, observed: ObservedRotation, expected: ScheduleAction | None
) -> None:
    actions, waiting = plan_schedules({"hub": wanted}, {"hub": observed}, function_arn=FN)
    assert actions == ([expected] if expected else [])
    assert waiting == []


@pytest.mark.parametrize(("wanted", "schedule"), [("rate(30 days)", None), (None, "rate(30 days)")])
def test_nothing_is_changed_while_a_rotation_is_in_progress(wanted: str | None, schedule: str | None) -> None:
    actions, waiting = plan_schedules({"hub": wanted}, {"hub": seen(schedule=schedule, busy=True)}, function_arn=FN)
    assert actions == []
    assert waiting == ["hub"]


def test_a_credential_without_a_secret_is_left_alone() -> None:
    assert plan_schedules({"hub": "rate(1 day)"}, {}, function_arn=FN) == ([], [])

"""The deep plan's Deadline: expiry, the grace for reads under way, and each Region's share (a test clock)."""

from __future__ import annotations

import pytest

from ecrcache.engine.deadline import Deadline

pytestmark = pytest.mark.unit


def test_a_deadline_expires_when_no_time_is_left_and_keeps_its_grace_for_the_work_under_way() -> None:
    clock = {"left": 2.0}
    deadline = Deadline(lambda: clock["left"], grace=5.0)
    assert (deadline(), deadline.expired(), deadline.hard_seconds_left()) == (False, False, 7.0)
    clock["left"] = 0.0
    assert (deadline(), deadline.hard_seconds_left()) == (True, 5.0)


def test_a_share_keeps_the_rest_for_the_parts_after_it_and_follows_the_clock() -> None:
    clock = {"left": 30.0}
    share = Deadline(lambda: clock["left"], grace=5.0).share(3)
    assert (share.seconds_left(), share.grace) == (10.0, 5.0)
    clock["left"] = 21.0  # 9 s spent
    assert share.seconds_left() == 1.0
    assert share.expired() is False
    clock["left"] = 19.0
    assert share.expired() is True


@pytest.mark.parametrize("parts", [1, 0])
def test_a_single_share_is_the_whole_deadline(parts: int) -> None:
    deadline = Deadline(lambda: 4.0)
    assert deadline.share(parts) is deadline


def test_a_share_of_a_spent_deadline_is_spent() -> None:
    assert Deadline(lambda: -3.0).share(2).seconds_left() == -3.0

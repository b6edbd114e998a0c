"""Injectable clock for the embedded AWS fake ("fake time").

Everything in the ECR extension that depends on time -- rule ``createdAt``/``updatedAt``, image
``imagePushedAt`` (set by our ``PutImage`` wrapper), the 24-hour pull-through refresh window,
lifecycle ``since*`` ages, preview completion delays, EventBridge ``time`` -- reads
:func:`now` instead of the system clock, so tests and the local stack can move time forward.

Three ways to control it:

* :func:`advance` -- move the current clock (system or fake) forward by a ``timedelta``. Works
  in-process and, in server mode, through ``POST /_ecrcache/clock/advance {"seconds": N}``.
* :func:`set_clock` -- install any ``() -> datetime`` function (``None`` restores the system clock).
* :class:`FakeClock` -- a frozen, manually driven clock, usable as a context manager::

      with FakeClock(datetime(2026, 1, 1, tzinfo=UTC)) as fake:
          ...                       # now() == 2026-01-01T00:00:00Z
          fake.advance(days=1)      # now() == 2026-01-02T00:00:00Z

  ``fake_clock`` below is a module-level instance for convenience.

The clock is process-wide (one moto server, one fake registry); it is guarded by a lock because
moto's server serves requests from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

__all__ = [
    "FakeClock",
    "advance",
    "epoch_seconds",
    "fake_clock",
    "now",
    "reset",
    "set_clock",
]

ClockFn = Callable[[], datetime]

_lock = threading.RLock()


def _system_now() -> datetime:
    return datetime.now(UTC)


_source: ClockFn = _system_now
_offset: timedelta = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    """The current time: UTC, timezone-aware (source clock + any :func:`advance` offset)."""
    with _lock:
        return _as_utc(_source()) + _offset


def epoch_seconds() -> float:
    """:func:`now` as a POSIX timestamp (what ECR's JSON timestamps carry)."""
    return now().timestamp()


def set_clock(fn: ClockFn | None) -> None:
    """Replace the clock source (``None`` = system clock) and clear any :func:`advance` offset."""
    global _source, _offset  # noqa: PLW0603 - the module *is* the process-wide clock
    with _lock:
        _source = fn if fn is not None else _system_now
        _offset = timedelta(0)


def advance(delta: timedelta) -> datetime:
    """Move time forward by ``delta`` (must not be negative) and return the new :func:`now`."""
    global _offset  # noqa: PLW0603
    if delta < timedelta(0):
        raise ValueError("the clock only moves forward: delta must be >= 0")
    with _lock:
        _offset += delta
        return now()


def reset() -> None:
    """Back to the system clock with no offset (test teardown)."""
    set_clock(None)


class FakeClock:
    """A manually driven clock. ``with FakeClock(start) as c:`` installs it, exit restores the previous one.

    Nested use is supported; entering an already-active instance again is not.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _as_utc(start) if start is not None else _system_now().replace(microsecond=0)
        self._saved: list[tuple[ClockFn, timedelta]] = []

    def __call__(self) -> datetime:
        with _lock:
            return self._now

    def now(self) -> datetime:
        return self()

    def set(self, value: datetime) -> None:
        """Jump to an absolute time (may go backwards -- a test's choice)."""
        with _lock:
            self._now = _as_utc(value)

    def advance(
        self, delta: timedelta | None = None, *, days: float = 0, hours: float = 0, seconds: float = 0
    ) -> datetime:
        """Move this fake clock forward; returns the new time."""
        step = (delta or timedelta(0)) + timedelta(days=days, hours=hours, seconds=seconds)
        if step < timedelta(0):
            raise ValueError("advance() takes a non-negative step; use set() to go back")
        with _lock:
            self._now += step
            return self._now

    def install(self) -> None:
        """Make this the process clock (remembering the previous one for :meth:`uninstall`)."""
        global _source, _offset  # noqa: PLW0603
        with _lock:
            self._saved.append((_source, _offset))
            _source = self
            _offset = timedelta(0)

    def uninstall(self) -> None:
        global _source, _offset
        with _lock:
            if self._saved:
                _source, _offset = self._saved.pop()

    def __enter__(self) -> Self:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()


#: A ready-made instance: ``with clock.fake_clock: ...`` (starts at the time of import).
fake_clock = FakeClock()

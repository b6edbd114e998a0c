"""A time budget on an injected clock: when to stop starting work, and when to abandon the work under way.

A deep plan (``GET /v1/plan?deep=true``) reads every cached repository within the API's time. It is given a
:class:`Deadline` (built by the API from the Lambda's remaining time): once :meth:`Deadline.expired` no new
repository read starts (the ``stop`` the readers ask before each one), and once :meth:`Deadline.hard_seconds_left`
reaches zero the reads still under way are abandoned: a throttled ``GetLifecyclePolicy`` under botocore's retries
(5 attempts, 10 s read timeout) could otherwise push the answer past API Gateway's 29 s into a 504.

Pure: the clock is the ``seconds_left`` function given (the Lambda context's remaining time, or a test's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Deadline"]


@dataclass(frozen=True, slots=True)
class Deadline:
    """``seconds_left``: seconds until no new work may start (<= 0: past it); ``grace``: seconds more the work
    already under way may take before it is abandoned.

    A ``Deadline`` is a ``stop`` (``Callable[[], bool]``): calling it tells whether it has expired."""

    seconds_left: Callable[[], float]
    grace: float = 0.0

    def __call__(self) -> bool:
        return self.expired()

    def expired(self) -> bool:
        """True once no new work may start."""
        return self.seconds_left() <= 0

    def hard_seconds_left(self) -> float:
        """Seconds until the work under way is abandoned (``seconds_left`` plus the grace)."""
        return self.seconds_left() + self.grace

    def share(self, parts: int) -> Deadline:
        """The first of ``parts`` equal shares of the time left now, with the same grace.

        Each of several Regions planned one after the other takes ``share(regions still to plan)`` at its start:
        a Region that finishes early leaves its unused time to the ones after it, and no Region finds the budget
        spent by those before it (each gets at least its fair share of what was left)."""
        if parts <= 1:
            return self
        left = self.seconds_left()
        later = max(0.0, left) * (parts - 1) / parts  # kept for the Regions after this one
        outer = self.seconds_left
        return Deadline(lambda: outer() - later, self.grace)

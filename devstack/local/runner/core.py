"""What every delivery thread of the runner shares: the stop signal, its threads, backoff, logging, invoking.

:class:`Runtime` is handed to each delivery (streams, rules, schedules, the async invoker). A delivery
loop calls :meth:`Runtime.sleep` between steps: it raises :class:`Stopped` once the runner stops, so
the loop ends there; :meth:`Runtime.timed_invoke` refuses to start an invocation after that.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from devstack.local.invoke import FunctionError, Invoke, InvokeError

__all__ = ["Outcome", "Runtime", "Stopped", "error_text", "iso", "records_text", "seconds_text"]

STOP_JOIN_SECONDS: Final = 1.2
# AWS errors a retried call gives up on at once (retrying cannot make them pass).
PERMANENT_ERRORS: Final = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ValidationException",
        "InvalidParameterValue",
        "AccessDenied",
        "AccessDeniedException",
    }
)


@dataclass
class Outcome:
    status: str  # ok | dead-lettered | discarded | not-accepted | stopped | undeliverable
    result: Any = None
    error: Exception | None = None


class Stopped(Exception):
    """The runner is stopping: abandon the current work."""


def error_text(exc: BaseException) -> str:
    if isinstance(exc, FunctionError):
        return f"{exc.error_type}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def records_text(count: int) -> str:
    return f"{count} record" if count == 1 else f"{count} records"


def seconds_text(value: float) -> str:
    return f"{value:.1f}s" if value >= 0.1 else f"{value:.2g}s"


class Runtime:
    """The runner's threads, stop signal, invoke callable, log and backoff (one per :class:`EventRunner`)."""

    def __init__(
        self,
        invoke: Invoke,
        *,
        log: Callable[[str], None],
        poll_interval: float,
        retry_backoff: float,
        max_backoff: float,
    ) -> None:
        self.poll_interval = poll_interval
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self._invoke = invoke
        self._log_sink = log
        self._stop = threading.Event()
        self.lock = threading.RLock()
        self._threads: list[threading.Thread] = []

    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if the runner is stopping."""
        return self._stop.wait(seconds)

    def spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(name, target, *args), name=name, daemon=True)
        with self.lock:  # started under the lock: stop() never sees a thread it cannot join
            if self._stop.is_set():
                return
            self._threads.append(thread)
            thread.start()

    def _guarded(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Run a poller until stop(); an unexpected exception is logged and the loop restarts."""
        failures = 0
        while not self._stop.is_set():
            try:
                target(*args)
                return
            except Stopped:
                return
            except Exception as exc:
                failures += 1
                delay = self.backoff(failures)
                self.log(f"{name}: {error_text(exc)}; restarting in {seconds_text(delay)}")
                self._stop.wait(delay)

    def log(self, line: str) -> None:
        with contextlib.suppress(Exception):
            self._log_sink(line)

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.retry_backoff * 2.0 ** max(0, attempt - 1))

    def sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Stopped

    def call(self, what: str, operation: Callable[[], Any]) -> Any:
        """An AWS call retried until it works or the runner stops (the embedded AWS may restart)."""
        failures = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") in PERMANENT_ERRORS:
                    raise
                failures += 1
                delay = self.backoff(failures)
                if failures == 1 or failures % 10 == 0:
                    self.log(f"{what}: {error_text(exc)}; retrying in {seconds_text(delay)}")
                self.sleep(delay)

    def timed_invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, float]:
        if self._stop.is_set():  # stop() lets a running invocation finish, but none starts after it
            raise Stopped
        started = time.monotonic()
        try:
            return self._invoke(function, event), time.monotonic() - started
        except (FunctionError, InvokeError):
            raise
        except Exception as exc:  # a broken Invoke callable is reported like a host failure
            raise InvokeError(f"invoking {function}: {error_text(exc)}") from exc

    def stop(self) -> list[threading.Thread]:
        """Signal every thread to stop and wait up to about 1.2 s; returns those still finishing."""
        self._stop.set()
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        with self.lock:
            threads = list(self._threads)  # kept: threads() reports those that have not ended yet
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]

    def threads(self) -> Iterator[str]:
        """Names of the delivery threads that have not ended (after :meth:`stop`: those still finishing)."""
        with self.lock:
            yield from (t.name for t in self._threads if t.is_alive())

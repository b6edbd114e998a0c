"""The :class:`EventRunner`: every function event of the template, wired to the delivery that runs it.

It plans the sources from the template (:mod:`.plan`), creates what they need in the embedded AWS
(:meth:`EventRunner.setup`) and runs one thread per source (:meth:`EventRunner.start`): the DynamoDB
streams (:mod:`.stream`), SQS queues (:mod:`.queues`), EventBridge rules through SQS (:mod:`.rules`)
and schedules (:mod:`.schedules`), the last two through asynchronous invocation
(:mod:`.async_invoke`). The behaviour is described in the package docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from devstack.local.invoke import Invoke, InvokeError
from devstack.local.runner.async_invoke import AsyncInvoker
from devstack.local.runner.aws import Aws
from devstack.local.runner.core import Runtime
from devstack.local.runner.plan import (
    Delivery,
    Planner,
    QueueSource,
    RuleSource,
    ScheduleSource,
    Source,
    StreamSource,
)
from devstack.local.runner.queues import QueueDelivery
from devstack.local.runner.rules import RuleDelivery
from devstack.local.runner.schedules import ScheduleDelivery
from devstack.local.runner.stream import StreamDelivery
from devstack.local.template import FunctionSpec, TemplateError

__all__ = ["EventRunner"]


class EventRunner:
    """Delivers the stream records, queue messages, EventBridge events and schedules of ``functions``.

    See the package docstring.
    """

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        endpoint_url: str,
        region: str,
        stack_name: str,
        invoke: Invoke,
        schedule_speed: float = 1.0,
        log: Callable[[str], None] = print,
        poll_interval: float = 0.2,
        retry_backoff: float = 0.5,
        max_backoff: float = 5.0,
        account_id: str | None = None,
    ) -> None:
        if schedule_speed <= 0:
            raise ValueError("schedule_speed must be positive")
        self.functions = dict(functions)
        self.endpoint_url = endpoint_url
        self.region = region
        self.stack_name = stack_name
        self.schedule_speed = float(schedule_speed)
        self.runtime = Runtime(
            invoke, log=log, poll_interval=poll_interval, retry_backoff=retry_backoff, max_backoff=max_backoff
        )
        self.aws = Aws(endpoint_url=endpoint_url, region=region, stack_name=stack_name, account_id=account_id)
        invoker = AsyncInvoker(self.runtime, self.aws)
        self._streams = StreamDelivery(self.runtime, self.aws)
        self._queues = QueueDelivery(self.runtime, self.aws)
        self._rules = RuleDelivery(self.runtime, self.aws, invoker)
        self._schedules = ScheduleDelivery(self.runtime, self.aws, invoker, speed=self.schedule_speed)
        self._sources: list[Source] | None = None
        self._setup_done = False
        self._started = False

    # ---- what is delivered --------------------------------------------------------------------

    def _plan(self) -> list[Source]:
        if self._sources is None:
            sources: list[Source] = []
            for logical_id, spec in self.functions.items():
                if spec.logical_id != logical_id:
                    raise TemplateError(f"function {logical_id}: its spec is for {spec.logical_id}")
                sources.extend(Planner(self.stack_name, spec, event).plan() for event in spec.events)
            self._sources = sources
        return self._sources

    def deliveries(self) -> list[Delivery]:
        """One :class:`Delivery` per function event (``Api`` included); no AWS calls.

        Raises :class:`UnsupportedEventError` for an event (type or property) with no local delivery.
        """
        return [Delivery(s.function, s.event, s.type, s.description()) for s in self._plan()]

    def _source(self, function: str, event: str) -> Source:
        for source in self._plan():
            if source.function == function and source.event == event:
                return source
        raise KeyError(f"{function} has no event {event!r}")

    # ---- the embedded AWS ---------------------------------------------------------------------

    @property
    def account_id(self) -> str:
        return self.aws.account_id

    def function_arn(self, function: str) -> str:
        return self.aws.function_arn(function)

    def setup(self) -> None:
        """Create the rules, queues and targets in the embedded AWS and position the stream iterators.

        Checks that every enabled ``SQS`` event's queue exists. Idempotent: a second call changes
        nothing (stream positions already taken are kept).
        """
        for source in self._plan():
            if isinstance(source, QueueSource) and source.enabled:
                self._queues.setup(source)
            elif isinstance(source, RuleSource):
                self._rules.setup(source)
            elif isinstance(source, ScheduleSource):
                self._schedules.setup(source)
            elif isinstance(source, StreamSource) and source.enabled:
                self._streams.setup(source)
        self._setup_done = True

    # ---- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background threads (stream and queue pollers, schedulers); sets up first if needed."""
        with self.runtime.lock:
            if self._started:
                return
            if self.runtime.stopped():
                raise RuntimeError("this EventRunner was stopped; create a new one to run again")
            if not self._setup_done:
                self.setup()
            self._schedules.restart_clock()
            self._started = True
        for source in self._plan():
            self._spawn(source)

    def _spawn(self, source: Source) -> None:
        """The delivery thread of one source (none for a disabled one or an event delivered elsewhere)."""
        if isinstance(source, RuleSource):
            self.runtime.spawn(f"rule {source.label}", self._rules.run, source)
            return
        if not isinstance(source, StreamSource | QueueSource | ScheduleSource):
            return
        if not source.enabled:
            what = "not scheduled" if isinstance(source, ScheduleSource) else "not polled"
            self.runtime.log(f"{source.label} ({source.type}) is disabled in the template: {what}")
        elif isinstance(source, StreamSource):
            self.runtime.spawn(f"stream {source.label}", self._streams.run, source)
        elif isinstance(source, QueueSource):
            self.runtime.spawn(f"queue {source.label}", self._queues.run, source)
        else:
            self.runtime.spawn(f"schedule {source.label}", self._schedules.run, source)

    def stop(self) -> None:
        """Stop every thread; returns within about 1.2 s.

        When nothing is being invoked, every thread has ended when this returns. A thread in the
        middle of an invocation is not waited for: it finishes that invocation (its outcome is
        logged, and a destination record sent if it was the last attempt), starts no further
        invocation, and ends. :meth:`threads` lists it until then.
        """
        busy = self.runtime.stop()
        with self.runtime.lock:
            self._started = False
        if busy:
            self.runtime.log(f"event runner stopped; still finishing: {', '.join(t.name for t in busy)}")

    def __enter__(self) -> EventRunner:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- schedules ------------------------------------------------------------------------------

    def virtual_now(self) -> datetime:
        """The schedules' clock: start + real elapsed x ``schedule_speed`` (UTC)."""
        return self._schedules.virtual_now()

    def schedules(self) -> list[ScheduleSource]:
        """Every ``Schedule`` event of the template (disabled ones too), in template order; no AWS calls."""
        return [source for source in self._plan() if isinstance(source, ScheduleSource)]

    def fire(self, function: str, event: str) -> Any:
        """Run the ``Schedule`` event ``event`` of ``function`` now, with its retries and dead-lettering.

        Returns what the function returned; raises the last error when every attempt failed (after
        dead-lettering), ``KeyError`` for an unknown event, ``ValueError`` for a non-schedule event.
        """
        source = self._source(function, event)
        if not isinstance(source, ScheduleSource):
            raise ValueError(f"{function} event {event} is a {source.type} event, not a Schedule")
        outcome = self._schedules.fire(source, self.virtual_now())
        if outcome.status == "ok":
            return outcome.result
        if outcome.error is not None:
            raise outcome.error
        raise InvokeError(f"{source.label}: not delivered ({outcome.status})")

    # ---- introspection (tests, `ecrcache local status`) ---------------------------------------

    def threads(self) -> Iterator[str]:
        """Names of the delivery threads that have not ended (after :meth:`stop`: those still finishing)."""
        return self.runtime.threads()

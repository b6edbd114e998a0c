"""``Schedule`` events on a virtual clock (package docstring): ``rate(...)`` and ``cron(...)``, sped up.

Virtual now = start + real elapsed x ``schedule_speed``; a schedule fires when virtual now passes its
next fire time. Each schedule also gets its rule in the embedded AWS (no target: moto never fires
schedules), so ``aws events disable-rule`` pauses it locally as in AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack.local.runner.async_invoke import AsyncInvoker
from devstack.local.runner.aws import Aws
from devstack.local.runner.core import Outcome, Runtime
from devstack.local.runner.plan import ScheduleSource

__all__ = ["ScheduleDelivery"]


def _iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ScheduleDelivery:
    """Every ``Schedule`` event: its rule at setup, a scheduler thread each when running, :meth:`fire` now."""

    def __init__(self, runtime: Runtime, aws: Aws, invoker: AsyncInvoker, *, speed: float) -> None:
        self.runtime = runtime
        self.aws = aws
        self.invoker = invoker
        self.speed = speed
        self._virtual_origin = (time.time(), time.monotonic())

    def restart_clock(self) -> None:
        """Virtual now starts again from real now (when the runner starts)."""
        self._virtual_origin = (time.time(), time.monotonic())

    def setup(self, source: ScheduleSource) -> None:
        # The rule carries no target (moto never fires schedules): it makes the schedule visible and
        # lets `aws events disable-rule` pause it, as in AWS.
        self.aws.events.put_rule(
            Name=source.rule_name,
            ScheduleExpression=source.expression,
            State="ENABLED" if source.enabled else "DISABLED",
            Description=f"ecrcache local: {source.function} event {source.event}",
        )

    def virtual_now(self) -> datetime:
        """The schedules' clock: start + real elapsed x ``schedule_speed`` (UTC)."""
        wall, mono = self._virtual_origin
        return datetime.fromtimestamp(wall + (time.monotonic() - mono) * self.speed, UTC)

    def run(self, source: ScheduleSource) -> None:
        next_fire = source.schedule.next_after(self.virtual_now())
        while not self.runtime.stopped():
            if next_fire is None:
                self.runtime.log(f"{source.label} (Schedule) {source.expression} has no further fire times")
                return
            now = self.virtual_now()
            if now < next_fire:
                remaining = (next_fire - now).total_seconds() / self.speed
                self.runtime.sleep(min(self.runtime.poll_interval, max(remaining, 0.001)))
                continue
            if self._rule_enabled(source):
                outcome = self.fire(source, next_fire)
                if outcome.status == "stopped":
                    return
            else:
                self.runtime.log(f"{source.label} (Schedule) skipped: rule {source.rule_name} is disabled")
            following = source.schedule.next_after(next_fire)
            now = self.virtual_now()
            if following is not None and following <= now:
                following = source.schedule.next_after(now)  # coalesce fire times missed meanwhile
            next_fire = following

    def _rule_enabled(self, source: ScheduleSource) -> bool:
        try:
            return self.aws.events.describe_rule(Name=source.rule_name).get("State", "ENABLED") != "DISABLED"
        except Exception:  # the rule is informational: the template decides when it cannot be read
            return source.enabled

    def _schedule_event(self, source: ScheduleSource, fire_time: datetime) -> Any:
        if source.input is not None:
            return json.loads(source.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.aws.account_id,
            "time": _iso_seconds(fire_time),
            "region": self.aws.region,
            "resources": [self.aws.rule_arn(source.rule_name)],
            "detail": {},
        }

    def fire(self, source: ScheduleSource, fire_time: datetime) -> Outcome:
        event = self._schedule_event(source, fire_time)
        return self.invoker.deliver(source, event, time.time(), self.aws.rule_arn(source.rule_name))

"""``EventBridgeRule`` events: a rule with an SQS target in the embedded AWS, the queue polled (package docstring).

The embedded AWS matches events against the rule's pattern and puts them on the rule's queue;
:class:`RuleDelivery` receives them, applies ``Input``/``InputPath`` and hands each to the
:class:`~devstack.local.runner.async_invoke.AsyncInvoker`. A message is deleted once its event was
delivered or dead-lettered, and made visible again when the runner stops first.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, cast

from devstack.local.runner.async_invoke import AsyncInvoker
from devstack.local.runner.aws import Aws
from devstack.local.runner.core import Runtime, Stopped, error_text
from devstack.local.runner.plan import RuleSource

__all__ = ["RuleDelivery"]

# A received rule message stays invisible while the runner works on it (it is deleted when done,
# made visible again when the runner stops first).
_IN_FLIGHT_VISIBILITY: Final = 43_200


def _parse_time(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _json_path(event: Mapping[str, Any], path: str) -> Any:
    """The part of ``event`` an ``InputPath`` (``$``, ``$.detail``, ``$.detail.name``) selects."""
    if path == "$":
        return event
    value: Any = event
    for part in path[2:].split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


class RuleDelivery:
    """Every ``EventBridgeRule`` event: its rule, queue and target at setup, a queue poller when running."""

    def __init__(self, runtime: Runtime, aws: Aws, invoker: AsyncInvoker) -> None:
        self.runtime = runtime
        self.aws = aws
        self.invoker = invoker

    def setup(self, source: RuleSource) -> None:
        url = self.aws.sqs.create_queue(QueueName=source.queue_name)["QueueUrl"]
        arn = self.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.aws.remember_queue(arn, url)
        self.aws.events.put_rule(
            Name=source.rule_name,
            EventPattern=json.dumps(source.pattern),
            EventBusName=source.bus,
            State=cast("Any", source.state),  # one of RULE_STATES (checked by the planner)
            Description=f"ecrcache local: {source.function} event {source.event}",
        )
        self.aws.events.put_targets(
            Rule=source.rule_name, EventBusName=source.bus, Targets=[{"Id": "ecrcache-local-runner", "Arn": arn}]
        )

    def run(self, source: RuleSource) -> None:
        url = self.runtime.call(
            f"{source.label} (EventBridgeRule): queue",
            lambda: self.aws.sqs.get_queue_url(QueueName=source.queue_name)["QueueUrl"],
        )
        failures = 0
        while not self.runtime.stopped():
            try:
                messages = self.aws.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=_IN_FLIGHT_VISIBILITY,
                    MessageSystemAttributeNames=["SentTimestamp"],
                ).get("Messages", [])
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    self.runtime.log(f"{source.label} (EventBridgeRule): receive failed: {error_text(exc)}; retrying")
                self.runtime.sleep(self.runtime.backoff(failures))
                continue
            failures = 0
            if not messages:
                self.runtime.sleep(self.runtime.poll_interval)
                continue
            for message in messages:
                try:
                    self._handle_message(source, url, dict(message))
                except Stopped:
                    self._release(url, str(message.get("ReceiptHandle")), 0)
                    return
                except Exception as exc:  # deliver it again later rather than lose it
                    self.runtime.log(f"{source.label} (EventBridgeRule): {error_text(exc)}; the event is retried later")
                    self._release(url, str(message.get("ReceiptHandle")), math.ceil(self.runtime.max_backoff))

    def _handle_message(self, source: RuleSource, url: str, message: dict[str, Any]) -> None:
        receipt = str(message.get("ReceiptHandle"))
        if self.runtime.stopped():
            self._release(url, receipt, 0)
            return
        try:
            envelope = json.loads(str(message.get("Body")))
        except ValueError:
            self.runtime.log(f"{source.label} (EventBridgeRule): dropped a message that is not JSON")
            self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)
            return
        sent = _parse_time(message.get("Attributes", {}).get("SentTimestamp"))
        event_time = _parse_time(envelope.get("time") if isinstance(envelope, Mapping) else None)
        if event_time is None:
            event_time = sent / 1000 if sent is not None else time.time()
        if source.input is not None:
            event: Any = json.loads(source.input)
        elif source.input_path is not None:
            event = _json_path(envelope, source.input_path)
        else:
            event = envelope
        outcome = self.invoker.deliver(source, event, event_time, self.aws.rule_arn(source.rule_name, source.bus))
        if outcome.status in {"ok", "dead-lettered", "discarded"}:
            self.runtime.call(
                f"{source.label} (EventBridgeRule): delete message",
                lambda: self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt),
            )
        else:  # stopped, or the dead-letter queue itself failed: deliver it again later
            self._release(url, receipt, 0 if outcome.status == "stopped" else math.ceil(self.runtime.max_backoff))

    def _release(self, url: str, receipt: str, seconds: int) -> None:
        with contextlib.suppress(Exception):
            self.aws.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds)

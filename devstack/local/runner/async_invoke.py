"""Asynchronous invocation, as EventBridge and Lambda do it for rules and schedules (package docstring).

Two layers of retries: EventBridge retries an invoke that was not accepted (``RetryPolicy``, then
``DeadLetterConfig``); Lambda retries a handler that failed (``EventInvokeConfig``, then its
``OnFailure`` destination; ``OnSuccess`` gets the success record).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from devstack.local.invoke import FunctionError, InvokeError
from devstack.local.runner.aws import Aws
from devstack.local.runner.core import Outcome, Runtime, Stopped, error_text, iso, seconds_text
from devstack.local.runner.plan import RuleSource, ScheduleSource

__all__ = ["AsyncInvoker"]


class AsyncInvoker:
    """Delivers one event of a rule or schedule to its function, with AWS's retries and destinations."""

    def __init__(self, runtime: Runtime, aws: Aws) -> None:
        self.runtime = runtime
        self.aws = aws

    def deliver(self, source: RuleSource | ScheduleSource, event: Any, event_time: float, rule_arn: str) -> Outcome:
        """EventBridge's delivery to Lambda (RetryPolicy, DeadLetterConfig) around Lambda's async retries."""
        policy = source.policy
        label = f"{source.label} ({source.type})"
        retries = 0
        while True:
            if self.runtime.stopped():
                return Outcome("stopped")
            age = time.time() - event_time
            if age > policy.eventbridge_max_age:
                return self._eventbridge_dead_letter(
                    source,
                    event,
                    rule_arn=rule_arn,
                    condition="MaximumEventAgeInSeconds",
                    error=None,
                    retries=retries,
                    reason=f"event is {age:.0f}s old",
                )
            outcome = self._lambda_async(source, event, event_time)
            if outcome.status != "not-accepted":
                return outcome
            retries += 1
            if retries > policy.eventbridge_retries:
                return self._eventbridge_dead_letter(
                    source,
                    event,
                    rule_arn=rule_arn,
                    condition="MaximumRetryAttempts",
                    error=outcome.error,
                    retries=retries - 1,
                    reason=None,
                )
            delay = self.runtime.backoff(retries)
            reason = error_text(outcome.error) if outcome.error else "not delivered"
            self.runtime.log(
                f"{label} not delivered: {reason}; "
                f"retry {retries}/{policy.eventbridge_retries} in {seconds_text(delay)}"
            )
            if self.runtime.wait(delay):
                return Outcome("stopped", error=outcome.error)

    def _lambda_async(self, source: RuleSource | ScheduleSource, event: Any, event_time: float) -> Outcome:
        policy = source.policy
        label = f"{source.label} ({source.type})"
        attempt = 0
        while True:
            attempt += 1
            try:
                result, elapsed = self.runtime.timed_invoke(source.function, event)
            except Stopped:
                return Outcome("stopped")
            except InvokeError as exc:
                if attempt == 1:
                    return Outcome("not-accepted", error=exc)
                error: Exception = exc
            except FunctionError as exc:
                error = exc
            else:
                self.runtime.log(f"{label} ok {elapsed:.2f}s")
                if policy.on_success_arn:
                    self._async_record(
                        source,
                        event,
                        attempts=attempt,
                        condition="Success",
                        response_payload=result,
                        error=None,
                        arn=policy.on_success_arn,
                    )
                return Outcome("ok", result=result)
            too_old = time.time() - event_time > policy.function_max_age
            if attempt > policy.function_retries or too_old:
                condition = "EventAgeExceeded" if too_old else "RetriesExhausted"
                return self._async_failure(source, event, attempt, condition, error)
            delay = self.runtime.backoff(attempt)
            self.runtime.log(
                f"{label} failed: {error_text(error)}; "
                f"retry {attempt}/{policy.function_retries} in {seconds_text(delay)}"
            )
            if self.runtime.wait(delay):
                return Outcome("stopped", error=error)

    def _async_failure(
        self, source: RuleSource | ScheduleSource, event: Any, attempts: int, condition: str, error: Exception
    ) -> Outcome:
        label = f"{source.label} ({source.type})"
        arn = source.policy.on_failure_arn
        if arn is None:
            self.runtime.log(
                f"{label} failed: {error_text(error)}; discarded after {attempts} attempts (no on-failure destination)"
            )
            return Outcome("discarded", error=error)
        payload = (
            {"errorType": error.error_type, "errorMessage": error.message}
            if isinstance(error, FunctionError)
            else {"errorType": type(error).__name__, "errorMessage": str(error)}
        )
        try:
            queue = self._async_record(
                source, event, attempts=attempts, condition=condition, response_payload=payload, error=error, arn=arn
            )
        except Exception as exc:
            self.runtime.log(
                f"{label} failed: {error_text(error)}; on-failure destination {arn} failed: {error_text(exc)}"
            )
            return Outcome("undeliverable", error=error)
        self.runtime.log(
            f"{label} failed: {error_text(error)}; {condition} after {attempts} attempts, dead-lettered to {queue}"
        )
        return Outcome("dead-lettered", error=error)

    def _async_record(
        self,
        source: RuleSource | ScheduleSource,
        event: Any,
        *,
        attempts: int,
        condition: str,
        response_payload: Any,
        error: Exception | None,
        arn: str,
    ) -> str:
        """Lambda's asynchronous invocation record (destinations), sent to ``arn``."""
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            response["functionError"] = "Unhandled"
        record = {
            "version": "1.0",
            "timestamp": iso(time.time()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{self.aws.function_arn(source.function)}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": response,
            "responsePayload": response_payload,
        }
        return self.aws.send(arn, record)

    def _eventbridge_dead_letter(
        self,
        source: RuleSource | ScheduleSource,
        event: Any,
        *,
        rule_arn: str,
        condition: str,
        error: Exception | None,
        retries: int,
        reason: str | None,
    ) -> Outcome:
        """EventBridge's dead-letter message: the event, with its error attributes."""
        label = f"{source.label} ({source.type})"
        text = reason or (error_text(error) if error else "not delivered")
        arn = source.policy.dead_letter_arn
        if arn is None:
            self.runtime.log(f"{label} not delivered: {text}; dropped ({condition}, no DeadLetterConfig)")
            return Outcome("discarded", error=error)
        attributes: dict[str, str | int] = {
            "RULE_ARN": rule_arn,
            "TARGET_ARN": self.aws.function_arn(source.function),
            "ERROR_CODE": "SDK_CLIENT_ERROR" if error is not None else "EVENT_EXPIRED",
            "ERROR_MESSAGE": text[:256],
            "EXHAUSTED_RETRY_CONDITION": condition,
            "RETRY_ATTEMPTS": retries,
        }
        try:
            queue = self.aws.send(arn, event if isinstance(event, Mapping) else {"event": event}, attributes)
        except Exception as exc:
            self.runtime.log(f"{label} not delivered: {text}; dead-letter queue {arn} failed: {error_text(exc)}")
            return Outcome("undeliverable", error=error)
        self.runtime.log(f"{label} not delivered: {text}; dead-lettered to {queue}")
        return Outcome("dead-lettered", error=error)

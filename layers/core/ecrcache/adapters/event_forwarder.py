"""The stack's event forwarding rule in one Region, on EventBridge (:mod:`ecrcache.engine.forwarders`).

Reads: ``DescribeRule`` (``ResourceNotFoundException``: no rule) and ``ListTargetsByRule`` on the default bus.
Writes, one planned action at a time: ``PutRule`` then ``PutTargets`` (both overwrite what they name, so a
create and an update are the same calls, and a retried create is harmless), ``RemoveTargets`` of stray targets;
a delete is ``RemoveTargets`` then ``DeleteRule`` ("Before you can delete the rule, you must remove all targets",
EventBridge API reference, "DeleteRule"); a rule already gone is a success.

Clients use :data:`~ecrcache.adapters.aws.RETRY_CONFIG`, as the ECR adapter does: botocore's adaptive mode
retries throttling and 5xx first. What still fails comes back as a failed :class:`ActionResult` (retryable for
throttling and 5xx, terminal for the rest, e.g. ``AccessDeniedException``), or, for a read, as an
:class:`~ecrcache.errors.EcrcacheError` the reconciler records on the Region's forwarder status.
``PutTargets`` / ``RemoveTargets`` answer 200 with ``FailedEntryCount`` for the targets they did not take
(API reference): such an entry is a failure too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from ecrcache.adapters.aws import RETRY_CONFIG, RETRYABLE_CODES, classify, error_code
from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.models.forwarder import ForwarderTarget, ObservedForwarder

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

    from ecrcache.engine.plan import PlannedAction

__all__ = ["PLAN_READ_CONFIG", "READ_OPERATIONS", "Boto3EventForwarder", "events_client", "partition_regions"]

READ_OPERATIONS: Final = frozenset({"DescribeRule", "ListTargetsByRule"})
"""The calls :meth:`Boto3EventForwarder.observe_forwarder` makes (all a read-only plan needs)."""
PLAN_READ_CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=1, read_timeout=2
)
"""The API's reads (``GET /v1/plan``): at most two attempts in all (botocore's ``total_max_attempts`` counts the first)
of a few seconds each per call, so that a Region whose
EventBridge is slow costs the answer seconds, not :data:`~ecrcache.adapters.aws.RETRY_CONFIG`'s minutes (API
Gateway answers 504 after 29 s)."""
_GONE: Final = "ResourceNotFoundException"
_NOT_ENABLED: Final = frozenset({"UnrecognizedClientException", "AccessDeniedException", "AccessDenied"})
"""What a Region not enabled in the account (an opt-in Region) answers: the account's credentials are not
known there ("Managing AWS Regions", AWS Account Management guide). The sweep reads it as "no rule there"."""
_MAX_MESSAGE: Final = 512


def _json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-only copy of a ``ListTargetsByRule`` entry (kept whole: every key counts as drift)."""
    out: dict[str, Any] = json.loads(json.dumps(entry, default=str))
    return out


def partition_regions(partition: str) -> tuple[str, ...]:
    """Every Region of ``partition`` with EventBridge, from botocore's endpoint data (no call is made)."""
    return tuple(boto3.Session().get_available_regions("events", partition_name=partition))


def events_client(region: str, config: Config = RETRY_CONFIG) -> EventBridgeClient:
    """An EventBridge client for ``region`` (by default with the shared retry configuration)."""
    return boto3.client("events", region_name=region, config=config)


class _EntryFailedError(Exception):
    """A PutTargets / RemoveTargets entry the call did not take."""

    def __init__(self, operation: str, out: Mapping[str, Any]) -> None:
        entries = out.get("FailedEntries") or []
        self.code = str(entries[0].get("ErrorCode") or "FailedEntry") if entries else "FailedEntry"
        message = str(entries[0].get("ErrorMessage") or "") if entries else ""
        super().__init__(f"{operation} did not take {out.get('FailedEntryCount')} target(s): {self.code} {message}")


def _failed(operation: str, exc: Exception) -> ActionResult:
    """A failed call as a result: retryable for throttling and 5xx (and connection errors), terminal otherwise."""
    if isinstance(exc, _EntryFailedError):
        return ActionResult.failure(exc.code, str(exc)[:_MAX_MESSAGE], retryable=exc.code in RETRYABLE_CODES)
    if isinstance(exc, ParamValidationError):
        return ActionResult.failure("ParamValidationError", f"{operation} request is invalid", retryable=False)
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status: Any = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = str(exc.response.get("Error", {}).get("Message", "")) or code
        retryable = code in RETRYABLE_CODES or (isinstance(status, int) and status >= 500)
        return ActionResult.failure(
            code, f"{operation} failed with {code}: {detail}"[:_MAX_MESSAGE], retryable=retryable
        )
    return ActionResult.failure(
        type(exc).__name__, f"{operation} failed: {type(exc).__name__}; try again", retryable=True
    )


class Boto3EventForwarder:
    """Implements :class:`ecrcache.ports.ForwarderRegistry` in one Region."""

    def __init__(self, region: str, client: EventBridgeClient | None = None) -> None:
        self.region = region
        self.client = client or events_client(region)
        self._handlers: dict[ActionKind, Callable[[PlannedAction], ActionResult]] = {
            ActionKind.CREATE_FORWARDER: self._put,
            ActionKind.UPDATE_FORWARDER: self._put,
            ActionKind.DELETE_FORWARDER: self._delete,
        }

    def observe_forwarder(self, name: str) -> ObservedForwarder | None:
        try:
            rule = self.client.describe_rule(Name=name)
            listed = self.client.list_targets_by_rule(Rule=name)
        except ClientError as exc:
            if error_code(exc) == _GONE:
                return None
            raise classify(exc, f"EventBridge DescribeRule/ListTargetsByRule in {self.region}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"EventBridge DescribeRule/ListTargetsByRule in {self.region}") from exc
        targets = tuple(
            ForwarderTarget(id=t["Id"], arn=t["Arn"], role_arn=t.get("RoleArn"), entry=_json(t))
            for t in listed.get("Targets", [])
        )
        return ObservedForwarder(
            name=name,
            state=rule.get("State"),
            description=rule.get("Description"),
            event_pattern=rule.get("EventPattern"),
            targets=tuple(sorted(targets, key=lambda t: t.id)),
        )

    def forwarder_exists(self, name: str) -> bool:
        """``DescribeRule`` only (:class:`ecrcache.ports.ForwarderProbe`)."""
        try:
            self.client.describe_rule(Name=name)
        except ClientError as exc:
            if error_code(exc) == _GONE or error_code(exc) in _NOT_ENABLED:
                return False
            raise classify(exc, f"EventBridge DescribeRule in {self.region}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"EventBridge DescribeRule in {self.region}") from exc
        return True

    def apply(self, action: PlannedAction) -> ActionResult:
        handler = self._handlers.get(action.kind)
        if handler is None:
            return ActionResult.failure(
                "UnsupportedAction", f"the EventBridge adapter cannot apply {action.kind.value}", retryable=False
            )
        return handler(action)

    def _put(self, action: PlannedAction) -> ActionResult:
        request: Mapping[str, Any] = action.request
        steps: list[tuple[str, Callable[[], object]]] = [
            ("PutRule", lambda: self.client.put_rule(**request["rule"])),
            ("PutTargets", lambda: self._entries("PutTargets", self.client.put_targets(**request["targets"]))),
        ]
        if request.get("remove"):
            steps.append(
                (
                    "RemoveTargets",
                    lambda: self._entries("RemoveTargets", self.client.remove_targets(**request["remove"])),
                )
            )
        return self._run(steps)

    def _delete(self, action: PlannedAction) -> ActionResult:
        request: Mapping[str, Any] = action.request
        steps: list[tuple[str, Callable[[], object]]] = []
        if request["remove"].get("Ids"):
            steps.append(
                (
                    "RemoveTargets",
                    lambda: self._entries("RemoveTargets", self.client.remove_targets(**request["remove"])),
                )
            )
        steps.append(("DeleteRule", lambda: self.client.delete_rule(**request["delete"])))
        return self._run(steps, gone_is_done=True)

    @staticmethod
    def _entries(operation: str, out: Mapping[str, Any]) -> object:
        if out.get("FailedEntryCount", 0):
            raise _EntryFailedError(operation, out)
        return out

    def _run(self, steps: list[tuple[str, Callable[[], object]]], *, gone_is_done: bool = False) -> ActionResult:
        """Make the calls in order; the first failure stops them (the next reconcile starts over: every call
        overwrites or removes, so running them again is harmless)."""
        for operation, call in steps:
            try:
                call()
            except ClientError as exc:
                if gone_is_done and error_code(exc) == _GONE:
                    continue
                return _failed(f"EventBridge {operation} in {self.region}", exc)
            except (BotoCoreError, _EntryFailedError) as exc:
                return _failed(f"EventBridge {operation} in {self.region}", exc)
        return ActionResult.success()

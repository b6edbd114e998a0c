"""EventBridge events of the ECR fake: service events and CloudTrail-shaped API-call events.

**Emitting.** :func:`emit` puts one event on moto's *default* event bus of an account/Region, through
moto's events backend: every rule on that bus is matched with moto's own pattern matcher and the
matching targets (SQS queues, log groups, archives, other buses) receive the event exactly as
they would after ``PutEvents`` -- so a test observes ECR events by creating a rule with the documented
pattern and an SQS target, then reading the queue. :func:`recent_events` additionally keeps the last
few hundred delivered envelopes for debugging.

**CloudTrail.** :func:`cloudtrail_event` builds the ``detail`` of an ``AWS API Call via CloudTrail``
event; :func:`emit_api_call` derives the caller from a moto request and emits it with
``source=aws.ecr``. ECR delivers these only when a trail is enabled (ecr-facts §6.3); the fake
assumes one is. Write calls are emitted with ``readOnly: false``; the read-only calls a pull makes
(``BatchGetImage``, ``GetDownloadUrlForLayer``) with ``readOnly: true`` -- and those reach only rules in
state ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` (:mod:`.eventbridge_rules`). Other read-only
calls (``Describe*``, ``List*``, ``Get*`` other than the layer URL) emit nothing.

**Caller identity** (:func:`caller_identity`), in priority order:

1. the request header ``X-Ecrcache-Caller-Arn: <arn>`` (explicit override, for tools and tests);
2. the request's access key: STS assumed-role credentials minted by moto's ``AssumeRole`` give
   ``arn:aws:sts::<acct>:assumed-role/<role>/<session>`` (type ``AssumedRole``), a moto IAM user's key
   gives ``arn:aws:iam::<acct>:user/<name>`` (type ``IAMUser``);
3. otherwise moto's default identity ``arn:aws:sts::<acct>:user/moto``.

This is exactly what moto's ``sts:GetCallerIdentity`` returns for the same credentials, so the
controller recognises its own calls by comparing ``detail.userIdentity.arn`` with its
``GetCallerIdentity().Arn`` -- the same check that works against real CloudTrail for a Lambda role
session (``assumed-role/<role>/<function>``).

**Faults** (ecr-facts §9.16: events are best effort). The module-level :data:`faults` drops,
duplicates (same event ``id``, like an at-least-once redelivery) or delays matching events::

    from devstack.aws.events import faults
    faults.drop(count=1, detail_type="AWS API Call via CloudTrail")
    faults.duplicate(count=1, event_name="CreatePullThroughCacheRule")
    faults.delay(timedelta(minutes=5))           # held until the injectable clock passes the release time
    faults.release_due()                          # deliver what is due (also done on every emit)
    faults.flush()                                # deliver every held event now
    faults.clear()
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

import jsonpath_ng.ext
from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser
from moto.sts.models import sts_backends

from devstack.aws import clock, eventbridge_rules
from devstack.aws.eventbridge_rules import CLOUDTRAIL_DETAIL_TYPE

__all__ = [
    "CALLER_ARN_HEADER",
    "CLOUDTRAIL_DETAIL_TYPE",
    "CallerIdentity",
    "EventFaults",
    "caller_identity",
    "cloudtrail_event",
    "emit",
    "emit_api_call",
    "faults",
    "install",
    "partition_for",
    "principal_arn",
    "recent_events",
    "request_identity",
]

CALLER_ARN_HEADER: Final = "X-Ecrcache-Caller-Arn"
ECR_EVENT_SOURCE: Final = "ecr.amazonaws.com"
DEFAULT_PRINCIPAL_ID: Final = "AKIAIOSFODNN7EXAMPLE"  # moto's default GetCallerIdentity UserId
_RECENT_LIMIT: Final = 500

FaultAction = Literal["drop", "duplicate", "delay"]


# moto 5.2.5's default target template drops the envelope's "account" field, which EventBridge
# always delivers; install() restores it (affects every moto EventBridge target without an
# InputTransformer -- an upstreamable fix).
_DEFAULT_TEMPLATE_WITH_ACCOUNT: Final = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)


def install() -> None:
    """Patch moto's EventBridge (idempotent): targets keep ``account``; rule states (``eventbridge_rules``)."""
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _DEFAULT_TEMPLATE_WITH_ACCOUNT
    _remember_parsed_input_paths()
    eventbridge_rules.install()


def _remember_parsed_input_paths() -> None:
    """moto 5.2.5's ``EventTemplateParser.parse`` parses each input path of the target's template again for every
    event it delivers (``from jsonpath_ng.ext import parse`` at each call: about 1 ms each, nine paths an event).
    A parsed path is an immutable expression, so the same few paths are parsed once and kept (idempotent)."""
    parse = jsonpath_ng.ext.parse  # type: ignore[attr-defined]  # re-exported from jsonpath_ng.ext.parser
    if not hasattr(parse, "cache_info"):
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=512)(parse)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# Caller identity
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """The ``userIdentity`` of a CloudTrail record."""

    type: str
    principal_id: str
    arn: str
    account_id: str
    access_key_id: str | None = None

    def to_user_identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "type": self.type,
            "principalId": self.principal_id,
            "arn": self.arn,
            "accountId": self.account_id,
        }
        if self.access_key_id:
            identity["accessKeyId"] = self.access_key_id
        if self.type == "AssumedRole":
            # sessionContext.sessionIssuer names the role (CloudTrail userIdentity element docs).
            role_arn = _role_arn_from_assumed(self.arn)
            identity["sessionContext"] = {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": self.principal_id.split(":", 1)[0],
                    "arn": role_arn,
                    "accountId": self.account_id,
                    "userName": role_arn.rsplit("/", 1)[-1],
                },
                "attributes": {"mfaAuthenticated": "false"},
            }
        return identity


def identity_type_for(arn: str) -> str:
    """CloudTrail ``userIdentity.type`` for an ARN (``AssumedRole``, ``IAMUser``, ``Root`` ...)."""
    resource = arn.split(":", 5)[-1]
    if resource.startswith("assumed-role/"):
        return "AssumedRole"
    if resource == "root":
        return "Root"
    if resource.startswith("role/"):
        return "AssumedRole"
    if resource.startswith("federated-user/"):
        return "FederatedUser"
    return "IAMUser"


def _role_arn_from_assumed(arn: str) -> str:
    head, _, resource = arn.rpartition(":")
    parts = resource.split("/")
    if parts[0] == "assumed-role" and len(parts) >= 2:
        partition = arn.split(":")[1]
        account = arn.split(":")[4]
        return f"arn:{partition}:iam::{account}:role/{parts[1]}"
    return f"{head}:{resource}"


def partition_for(region: str) -> str:
    """The ARN partition of a Region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    return _partition(region)


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def caller_identity(
    account_id: str, region: str, access_key: str | None, headers: Mapping[str, Any] | None = None
) -> CallerIdentity:
    """Who made a request (see the module docstring for the precedence)."""
    header_arn = _header(headers, CALLER_ARN_HEADER)
    if header_arn:
        parts = header_arn.split(":")
        return CallerIdentity(
            type=identity_type_for(header_arn),
            principal_id=access_key or DEFAULT_PRINCIPAL_ID,
            arn=header_arn,
            account_id=parts[4] if len(parts) > 5 and parts[4] else account_id,
            access_key_id=access_key,
        )
    user_id, arn, acct = _moto_caller(account_id, region, access_key or "")
    return CallerIdentity(
        type=identity_type_for(arn),
        principal_id=user_id,
        arn=arn,
        account_id=acct,
        access_key_id=access_key,
    )


def request_identity(response: Any) -> CallerIdentity:
    """The caller of a request handled by a moto response object (``current_account``, ``region``, headers)."""
    return caller_identity(
        str(response.current_account),
        str(response.region),
        getattr(response, "access_key", None),
        getattr(response, "headers", None),
    )


def principal_arn(identity: CallerIdentity) -> str:
    """The IAM principal behind a caller: the role ARN for an assumed-role session, else the ARN itself.

    An assumed-role session ARN (``arn:aws:sts::<acct>:assumed-role/<role>/<session>``) does not carry the
    role's path, so the role ARN is ``arn:aws:iam::<acct>:role/<role>`` -- the ``sessionIssuer.arn``
    this module reports, which is also path-less.
    """
    if identity.type == "AssumedRole":
        return _role_arn_from_assumed(identity.arn)
    return identity.arn


def _moto_caller(account_id: str, region: str, access_key: str) -> tuple[str, str, str]:
    """The same answer moto's ``sts:GetCallerIdentity`` gives for this access key."""
    try:
        backend = sts_backends[account_id][_partition(region)]
        user_id, arn, acct = backend.get_caller_identity(access_key, region)
        return str(user_id), str(arn), str(acct)
    except Exception:  # identity is best effort; fall back to moto's default
        return DEFAULT_PRINCIPAL_ID, f"arn:{_partition(region)}:sts::{account_id}:user/moto", account_id


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if str(key).lower() == lowered:
                value = candidate
                break
    return str(value) if value else None


# --------------------------------------------------------------------------------------------------
# CloudTrail detail
# --------------------------------------------------------------------------------------------------


def cloudtrail_time(value: datetime) -> str:
    """CloudTrail's ``eventTime`` format: ``2026-01-01T00:00:00Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def response_time(value: datetime) -> str:
    """How CloudTrail renders timestamps *inside* ECR ``responseElements``.

    Not documented as a format; the CloudTrail examples in the ECR User Guide ("Logging Amazon ECR
    actions with AWS CloudTrail", CreateRepository example) show Java's ``MMM d, yyyy h:mm:ss a``
    (``"Jul 11, 2018 10:14:43 PM"``). Treat it as opaque text.
    """
    return f"{value:%b} {value.day}, {value.year} {(value.hour % 12) or 12}:{value:%M:%S %p}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return response_time(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return value


def cloudtrail_event(  # noqa: PLR0917 - positional signature is the documented interface
    account_id: str,
    region: str,
    event_name: str,
    request_parameters: Mapping[str, Any] | None,
    response_elements: Mapping[str, Any] | None,
    user_arn: str,
    error_code: str | None = None,
    error_message: str | None = None,
    *,
    identity: CallerIdentity | None = None,
    user_agent: str = "aws-cli/2 ecrcache-embedded",
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    event_source: str = ECR_EVENT_SOURCE,
    read_only: bool = False,
    resources: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The ``detail`` of an ``AWS API Call via CloudTrail`` event (ecr-facts §6.3).

    ``user_arn`` is used when ``identity`` is not given (``type`` inferred from the ARN).
    Timestamps inside ``responseElements`` are rendered with :func:`response_time`. ``resources`` is
    CloudTrail's list of ``{"ARN", "accountId"}`` the call touched (the ECR User Guide's pull example,
    "Logging Amazon ECR actions with AWS CloudTrail", carries the repository there); omitted when empty.
    """
    ident = identity or CallerIdentity(
        type=identity_type_for(user_arn),
        principal_id=DEFAULT_PRINCIPAL_ID,
        arn=user_arn,
        account_id=account_id,
    )
    detail: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": ident.to_user_identity(),
        "eventTime": cloudtrail_time(clock.now()),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": _jsonable(dict(request_parameters)) if request_parameters is not None else None,
        "responseElements": _jsonable(dict(response_elements)) if response_elements is not None else None,
        "requestID": request_id or str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    }
    if resources:
        detail["resources"] = [dict(r) for r in resources]
    if error_code is not None:
        detail["errorCode"] = error_code
        detail["errorMessage"] = error_message or ""
        detail["responseElements"] = None
    return detail


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _FaultRule:
    action: FaultAction
    remaining: int | None  # None = every matching event
    detail_type: str | None
    event_name: str | None
    delay: timedelta = timedelta(0)
    copies: int = 2

    def matches(self, envelope: Mapping[str, Any]) -> bool:
        if self.detail_type is not None and envelope.get("detail-type") != self.detail_type:
            return False
        if self.event_name is not None:
            detail = envelope.get("detail")
            if not isinstance(detail, Mapping) or detail.get("eventName") != self.event_name:
                return False
        return True


@dataclass(slots=True)
class _Held:
    release_at: datetime
    account_id: str
    region: str
    envelope: dict[str, Any]


@dataclass
class EventFaults:
    """Drop / duplicate / delay events on their way to the bus (ecr-facts §9.16).

    Rules apply in the order added; the first matching rule with budget left decides.
    ``count=None`` means "every matching event until :meth:`clear`".
    """

    _rules: list[_FaultRule] = field(default_factory=list)
    _held: list[_Held] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    dropped: int = 0
    duplicated: int = 0

    def drop(self, count: int | None = 1, *, detail_type: str | None = None, event_name: str | None = None) -> None:
        with self._lock:
            self._rules.append(_FaultRule("drop", count, detail_type, event_name))

    def duplicate(
        self,
        count: int | None = 1,
        *,
        copies: int = 2,
        detail_type: str | None = None,
        event_name: str | None = None,
    ) -> None:
        with self._lock:
            self._rules.append(_FaultRule("duplicate", count, detail_type, event_name, copies=copies))

    def delay(
        self,
        by: timedelta,
        count: int | None = 1,
        *,
        detail_type: str | None = None,
        event_name: str | None = None,
    ) -> None:
        with self._lock:
            self._rules.append(_FaultRule("delay", count, detail_type, event_name, delay=by))

    def clear(self) -> None:
        """Remove every rule and discard held events."""
        with self._lock:
            self._rules.clear()
            self._held.clear()
            self.dropped = 0
            self.duplicated = 0

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def _decide(self, envelope: Mapping[str, Any]) -> _FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.matches(envelope):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
            return None

    def _hold(self, item: _Held) -> None:
        with self._lock:
            self._held.append(item)

    def release_due(self) -> int:
        """Deliver held events whose release time the (injectable) clock has passed."""
        current = clock.now()
        with self._lock:
            due = [h for h in self._held if h.release_at <= current]
            self._held = [h for h in self._held if h.release_at > current]
        for item in due:
            _deliver(item.account_id, item.region, item.envelope)
        return len(due)

    def flush(self) -> int:
        """Deliver every held event now, whatever its release time."""
        with self._lock:
            due, self._held = self._held, []
        for item in due:
            _deliver(item.account_id, item.region, item.envelope)
        return len(due)


#: The process-wide fault settings (see the module docstring).
faults = EventFaults()

_recent: deque[dict[str, Any]] = deque(maxlen=_RECENT_LIMIT)
_recent_lock = threading.Lock()


def recent_events() -> list[dict[str, Any]]:
    """Envelopes delivered to a bus so far (newest last; bounded). Cleared by :func:`clear_recent`."""
    with _recent_lock:
        return [copy.deepcopy(e) for e in _recent]


def clear_recent() -> None:
    with _recent_lock:
        _recent.clear()


# --------------------------------------------------------------------------------------------------
# Emit
# --------------------------------------------------------------------------------------------------


def emit(
    account_id: str,
    region: str,
    *,
    source: str,
    detail_type: str,
    detail: Mapping[str, Any],
    resources: list[str] | None = None,
) -> str:
    """Put one event on the default bus of ``account_id``/``region``; returns the event ``id``.

    The envelope is EventBridge's (``version``, ``id``, ``detail-type``, ``source``, ``account``,
    ``time``, ``region``, ``resources``, ``detail``); delivery goes through moto's events backend.
    Faults configured in :data:`faults` apply.
    """
    envelope: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account_id,
        # moto's targets expect epoch seconds here and format it (e.g. ISO-8601 for SQS).
        "time": clock.epoch_seconds(),
        "region": region,
        "resources": list(resources or []),
        "detail": json.loads(json.dumps(dict(detail), default=str)),
    }
    faults.release_due()
    rule = faults._decide(envelope)
    if rule is None:
        _deliver(account_id, region, envelope)
    elif rule.action == "drop":
        with faults._lock:
            faults.dropped += 1
    elif rule.action == "duplicate":
        with faults._lock:
            faults.duplicated += 1
        for _ in range(max(1, rule.copies)):
            _deliver(account_id, region, envelope)
    else:
        faults._hold(_Held(clock.now() + rule.delay, account_id, region, envelope))
    return str(envelope["id"])


def _deliver(account_id: str, region: str, envelope: Mapping[str, Any]) -> None:
    backend = events_backends[account_id][region]
    bus = backend.describe_event_bus("default")
    for bus_rule in list(bus.rules.values()):
        # Read-only management events reach only rules in ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
        # (eventbridge_rules; install() also makes moto's Rule.send_to_targets check this).
        if not eventbridge_rules.receives(getattr(bus_rule, "state", "ENABLED"), envelope):
            continue
        message = copy.deepcopy(dict(envelope))
        message["ingestion-time"] = clock.epoch_seconds()
        bus_rule.send_to_targets(cast("Any", message))
    with _recent_lock:
        _recent.append(copy.deepcopy(dict(envelope)))


def emit_api_call(
    response: Any,
    event_name: str,
    request_parameters: Mapping[str, Any] | None,
    response_elements: Mapping[str, Any] | None,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    read_only: bool = False,
    resources: list[dict[str, str]] | None = None,
    identity: CallerIdentity | None = None,
) -> str:
    """Emit the CloudTrail event of an ECR call handled by a moto ``ECRResponse`` (``response``).

    ``read_only`` marks a read-only management event (``BatchGetImage``, ``GetDownloadUrlForLayer``):
    only rules in state ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` receive it.
    """
    account_id = str(response.current_account)
    region = str(response.region)
    headers = getattr(response, "headers", None)
    identity = identity or caller_identity(account_id, region, getattr(response, "access_key", None), headers)
    user_agent = _header(headers, "User-Agent") or "aws-sdk"
    source_ip = _header(headers, "X-Forwarded-For") or "127.0.0.1"
    detail = cloudtrail_event(
        account_id,
        region,
        event_name,
        request_parameters,
        response_elements,
        identity.arn,
        error_code,
        error_message,
        identity=identity,
        user_agent=user_agent,
        source_ip=source_ip.split(",")[0].strip(),
        read_only=read_only,
        resources=resources,
    )
    return emit(account_id, region, source="aws.ecr", detail_type=CLOUDTRAIL_DETAIL_TYPE, detail=detail)

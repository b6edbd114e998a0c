"""What the reconciler reports: per-rule status (ACK conditions) and reconcile run records.

* :class:`RuleStatus` - the status of one desired rule in one Region, in the ACK vocabulary:
  ``Synced`` (ECR holds what the rule asks for), ``Terminal`` (a failure that will not clear without
  a change of input or permissions), ``Recoverable`` (a failure that should clear on a later try);
  and ``UpstreamHealthy``, whether pulls through the rule reach its upstream, as ECR last reported
  it (a pull-through cache event, or a ``ValidatePullThroughCacheRule`` answer: :class:`UpstreamHealth`).
  ``Synced`` says what the controller made of ECR; ``UpstreamHealthy`` what ECR makes of the upstream.
  Each :class:`Condition` keeps the time its status last *changed*; :meth:`RuleStatus.with_condition`
  keeps that time when only the reason or message changes (as Kubernetes does).
* :class:`ReconcileRun` - one reconcile: what triggered it, its scope, when it ran, how it ended,
  action counts and the errors it met. The store expires run records after a retention period.
* :class:`ReconcileRequest` - a reconcile asked for through ``POST /v1/reconcile``, as the state
  table's stream delivers its request item (partition :data:`REQUEST_PARTITION`) back to the reconciler.

Messages are for people. They come from ECR error messages and the planner and never hold a secret
value (ECR requests carry secret ARNs, never secret values). Long texts are cut to a fixed length so
that a record always fits in one DynamoDB item; a Region's statuses share one item (400 KB), so the
store also fits each status into a byte budget (:meth:`RuleStatus.within_bytes`,
:meth:`UpstreamHealth.within_bytes`: messages cut further, by their encoded size, only when needed).

Pure: no I/O, no clock (every time is passed in), no environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool

from ecrcache.models.condition_type import ConditionType
from ecrcache.models.shards import ShardCounts

__all__ = [
    "MAX_HEALTH_BYTES",
    "MAX_MESSAGE_LENGTH",
    "MAX_RUN_ERRORS",
    "MAX_STATUS_BYTES",
    "REQUEST_PARTITION",
    "STAMP_FIELDS",
    "Condition",
    "ConditionType",
    "FanoutProgress",
    "ForwarderStatus",
    "ForwarderStatusRecord",
    "ReconcileRequest",
    "ReconcileRun",
    "RegionStamp",
    "RuleStatus",
    "RuleStatusRecord",
    "RuleValidation",
    "RunStatus",
    "RunTrigger",
    "UpstreamCheck",
    "UpstreamCheckSource",
    "UpstreamHealth",
    "same_status",
]

MAX_MESSAGE_LENGTH: Final = 1024
"""Longer messages (conditions, validation failures, run errors) are cut to this many characters."""

MAX_RUN_ERRORS: Final = 50
"""A run record keeps at most this many errors; the last entry then says how many were left out."""

MAX_STATUS_BYTES: Final = 2400
"""A rule's status as stored (JSON, UTF-8, without its upstream health) takes at most this many bytes.

A Region's statuses share one DynamoDB item (400 KB = 409,600 bytes, names included). At most 50 rules are
desired per Region (ECR's quota) and as many former rules may keep a status while their deletion is pending:
100 x (2,400 + 1,200 + ~110 bytes of attribute names and the observation time) = 371 KB, and the ownership
sets (100 rules and templates of at most 30 characters, a few principal ARNs) and the stamp about 8 KB more.
A status with one message of 1,024 ASCII characters (and short others) fits as it is; several long messages,
or non-ASCII or JSON-escaped text (up to six bytes a character), are cut further (:meth:`RuleStatus.within_bytes`)."""

MAX_HEALTH_BYTES: Final = 1200
"""A rule's upstream health as stored (JSON, UTF-8) takes at most this many bytes (see :data:`MAX_STATUS_BYTES`)."""

_ELLIPSIS: Final = "…"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 1] + _ELLIPSIS


def _cut_optional(text: str | None) -> str | None:
    return None if text is None else _cut(text)


def _cut_errors(errors: tuple[str, ...]) -> tuple[str, ...]:
    cut = tuple(_cut(e) for e in errors)
    if len(cut) <= MAX_RUN_ERRORS:
        return cut
    left_out = len(cut) - (MAX_RUN_ERRORS - 1)
    return (*cut[: MAX_RUN_ERRORS - 1], f"... and {left_out} more errors")


def _cut_to(text: str, chars: int) -> str:
    return text if len(text) <= chars else (text[: chars - 1] + _ELLIPSIS if chars else "")


def _json_bytes(model: BaseModel) -> int:
    return len(model.model_dump_json().encode())


def _fit[M: BaseModel](model: M, max_bytes: int, cut: Callable[[M, int], M], what: str) -> M:
    """``model`` with its messages cut to the most characters (the same for each) that keep its JSON within
    ``max_bytes`` (binary search: the size grows with the characters kept); unchanged when it fits already."""
    if _json_bytes(model) <= max_bytes:
        return model
    low, high = 0, MAX_MESSAGE_LENGTH  # invariant: ``low`` characters fit (checked below for 0)
    if _json_bytes(cut(model, 0)) > max_bytes:
        msg = f"{what} takes more than {max_bytes} bytes even without its messages"
        raise ValueError(msg)
    while low < high:
        middle = (low + high + 1) // 2
        if _json_bytes(cut(model, middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return cut(model, low)


Message = Annotated[str, AfterValidator(_cut)]
OptionalMessage = Annotated[str | None, AfterValidator(_cut_optional)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# Rule status


class Condition(_Frozen):
    """One condition: its type, whether it holds, why (a CamelCase reason) and what to do (message)."""

    type: ConditionType
    status: bool
    reason: str = Field(max_length=128, examples=["Applied", "AccessDenied", "Throttled"])
    message: Message = ""
    last_transition: AwareDatetime = Field(description="When ``status`` last changed.")


class RuleValidation(_Frozen):
    """The last ``ValidatePullThroughCacheRule`` answer; ``is_valid`` ``None`` means not checked yet."""

    is_valid: bool | None = None
    failure: OptionalMessage = None
    checked_at: AwareDatetime | None = None


class UpstreamCheckSource(StrEnum):
    """What told the upstream's health: a pull through the cache (ECR's event), or a validation."""

    PULL = "pull"
    VALIDATION = "validation"


class UpstreamCheck(_Frozen):
    """The latest observation of a rule's upstream: when, from what, and what failed (if anything)."""

    source: UpstreamCheckSource
    observed_at: AwareDatetime = Field(description="When ECR observed it (the event's time, or the validation's).")
    healthy: bool
    failure_code: str | None = Field(
        default=None, max_length=128, description="ECR's failure code, e.g. UpstreamTooManyRequests."
    )
    repository: str | None = Field(default=None, max_length=256, description="The cache repository pulled.")
    image: str | None = Field(default=None, max_length=300, description="The image tag (or digest) pulled.")


class UpstreamHealth(_Frozen):
    """The ``UpstreamHealthy`` condition with the observation behind it (recorded together, newest wins)."""

    condition: Condition
    check: UpstreamCheck

    def cut_messages(self, chars: int) -> UpstreamHealth:
        """A copy with the condition's message cut to ``chars`` characters."""
        condition = self.condition.model_copy(update={"message": _cut_to(self.condition.message, chars)})
        return self.model_copy(update={"condition": condition})

    def within_bytes(self, max_bytes: int = MAX_HEALTH_BYTES) -> UpstreamHealth:
        """This health, its message cut until its JSON takes at most ``max_bytes`` bytes (see
        :meth:`RuleStatus.within_bytes`)."""
        return _fit(self, max_bytes, UpstreamHealth.cut_messages, "an upstream health")


class RuleStatus(_Frozen):
    """The status of one rule in one Region (the store keys it by Region and prefix)."""

    conditions: tuple[Condition, ...] = ()
    last_reconciled_at: AwareDatetime | None = None
    drift_corrected: int = Field(default=0, ge=0, description="Cumulative count of drift corrections.")
    cached_repositories: int = Field(default=0, ge=0)
    last_run_id: str | None = None
    observed_revision: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The desired-state revision this status describes (like ACK's observedGeneration): after an "
            "apply that answered revision R, a status with observed_revision >= R reflects that apply."
        ),
    )
    validation: RuleValidation = RuleValidation()
    upstream: UpstreamCheck | None = Field(
        default=None, description="The observation behind the UpstreamHealthy condition (none yet: unknown)."
    )

    def condition(self, kind: ConditionType) -> Condition | None:
        """The condition of that type, if set."""
        return next((c for c in self.conditions if c.type is kind), None)

    def with_condition(
        self, kind: ConditionType, *, status: bool, reason: str, message: str, now: datetime
    ) -> RuleStatus:
        """A copy with the condition set; ``last_transition`` moves only when ``status`` changes."""
        current = self.condition(kind)
        transition = current.last_transition if current is not None and current.status == status else now
        updated = Condition(type=kind, status=status, reason=reason, message=message, last_transition=transition)
        others = tuple(c for c in self.conditions if c.type is not kind)
        ordered = sorted((*others, updated), key=lambda c: list(ConditionType).index(c.type))
        return self.model_copy(update={"conditions": tuple(ordered)})

    @property
    def synced(self) -> bool:
        condition = self.condition(ConditionType.SYNCED)
        return condition is not None and condition.status

    @property
    def upstream_health(self) -> UpstreamHealth | None:
        """The ``UpstreamHealthy`` condition and its observation, when both are known."""
        condition = self.condition(ConditionType.UPSTREAM_HEALTHY)
        if condition is None or self.upstream is None:
            return None
        return UpstreamHealth(condition=condition, check=self.upstream)

    def cut_messages(self, chars: int) -> RuleStatus:
        """A copy with every message (conditions, validation failure) cut to ``chars`` characters."""
        validation = self.validation
        if validation.failure is not None:
            validation = validation.model_copy(update={"failure": _cut_to(validation.failure, chars)})
        conditions = tuple(c.model_copy(update={"message": _cut_to(c.message, chars)}) for c in self.conditions)
        return self.model_copy(update={"conditions": conditions, "validation": validation})

    def within_bytes(self, max_bytes: int = MAX_STATUS_BYTES) -> RuleStatus:
        """This status, its messages cut (the same number of characters each) until its JSON takes at most
        ``max_bytes`` bytes; ``ValueError`` when even no message would not do (the other fields are bounded)."""
        return _fit(self, max_bytes, RuleStatus.cut_messages, "a rule status")

    def with_upstream_health(self, health: UpstreamHealth | None) -> RuleStatus:
        """A copy with the ``UpstreamHealthy`` condition and its observation replaced (``None``: removed)."""
        others = tuple(c for c in self.conditions if c.type is not ConditionType.UPSTREAM_HEALTHY)
        if health is None:
            return self.model_copy(update={"conditions": others, "upstream": None})
        ordered = sorted((*others, health.condition), key=lambda c: list(ConditionType).index(c.type))
        return self.model_copy(update={"conditions": tuple(ordered), "upstream": health.check})


class RuleStatusRecord(_Frozen):
    """A :class:`RuleStatus` with the Region and rule prefix it belongs to (``StatusStore.all_status``)."""

    region: str
    prefix: str
    status: RuleStatus


STAMP_FIELDS: Final = frozenset({"last_reconciled_at", "last_run_id", "observed_revision"})
"""The fields of a :class:`RuleStatus` every run moves: kept once per Region (:class:`RegionStamp`), not per rule."""


class RegionStamp(_Frozen):
    """The last run that reconciled a Region: every rule status there was true as of it (the store keeps it
    once per Region, so that a run that changes nothing writes one stamp, not a status per rule)."""

    run_id: str
    at: AwareDatetime
    revision: int = Field(ge=0)

    def stamp(self, status: RuleStatus) -> RuleStatus:
        """``status`` as of this run, when the run is newer than the status' own stamp."""
        if status.last_reconciled_at is not None and status.last_reconciled_at > self.at:
            return status
        return status.model_copy(
            update={"last_reconciled_at": self.at, "last_run_id": self.run_id, "observed_revision": self.revision}
        )


def same_status(a: RuleStatus | None, b: RuleStatus | None) -> bool:
    """The two statuses say the same, their run stamps (:data:`STAMP_FIELDS`) aside."""
    if a is None or b is None:
        return a is b
    return a.model_dump(exclude=set(STAMP_FIELDS)) == b.model_dump(exclude=set(STAMP_FIELDS))


class ForwarderStatus(_Frozen):
    """How the forwarder of one Region was last reconciled: its ``Synced`` condition and when."""

    name: str = Field(description="The forwarding rule's name (the stack's EventForwardRuleName).")
    conditions: tuple[Condition, ...] = ()
    last_reconciled_at: AwareDatetime | None = None
    last_run_id: str | None = None

    @property
    def synced(self) -> bool:
        return any(c.type is ConditionType.SYNCED and c.status for c in self.conditions)


class ForwarderStatusRecord(_Frozen):
    """A :class:`ForwarderStatus` with its Region (``StatusStore.forwarders``)."""

    region: str
    status: ForwarderStatus


# --------------------------------------------------------------------------------------------------
# Reconcile runs


class RunTrigger(StrEnum):
    """What started a reconcile."""

    API = "api"
    STREAM = "stream"
    SCHEDULE = "schedule"
    CLOUDTRAIL = "cloudtrail"
    CACHE_EVENT = "cache_event"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"


class ReconcileRun(_Frozen):
    """One reconcile run. ``scope`` says what it covered, e.g. ``all`` or ``us-east-1:docker-hub``."""

    run_id: str = Field(min_length=1, max_length=128)
    trigger: RunTrigger
    scope: str = Field(default="all", max_length=1024)
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    status: RunStatus = RunStatus.RUNNING
    summary: dict[str, int] = Field(default_factory=dict, description="Counts, e.g. actions by kind.")
    errors: Annotated[tuple[str, ...], AfterValidator(_cut_errors)] = ()
    shards: ShardCounts | None = Field(
        default=None,
        description=(
            "A deep run whose per-repository work was fanned out to shard workers: its shards sent, done, failed "
            "and retrying. The run stays running until every shard reported (done + failed == total)."
        ),
    )


class FanoutProgress(_Frozen):
    """A fanned-out run as its record says now: the run (with its shard counts), whether its coordinating run is
    still at work (the run cannot finish before it has sent every Region's shards), the latest deadline of its
    fan-outs, and how many shards each Region was given."""

    run: ReconcileRun
    coordinating: bool
    deadline: AwareDatetime | None
    regions: Mapping[str, int]


# --------------------------------------------------------------------------------------------------
# Reconcile requests

REQUEST_PARTITION: Final = "REQUEST#reconcile"
"""``pk`` of the request items ``POST /v1/reconcile`` writes, one per run (``sk`` is the run id).

The status store writes them; the reconciler's trigger parser reads them back from the stream. It is
defined here because that parser is a service, which may not import the store (an adapter: boto3)."""


class ReconcileRequest(_Frozen):
    """A reconcile request item read back from the state table's stream: the run it queued, and its depth."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str = Field(min_length=1)
    deep: StrictBool = False  # the item holds a DynamoDB BOOL; a string "yes" is not a request for depth

    @classmethod
    def from_stream_image(
        cls, keys: Mapping[str, object], new_image: Mapping[str, object] | None
    ) -> ReconcileRequest | None:
        """The request a stream record carries (keys and new image already deserialised from DynamoDB
        JSON), or ``None``: another item, or the request's removal (TTL: no new image)."""
        if keys.get("pk") != REQUEST_PARTITION or new_image is None:
            return None
        return cls.model_validate({"run_id": keys.get("sk"), "deep": new_image.get("deep", False)})

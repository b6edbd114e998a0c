"""Event forwarders: the EventBridge rules ecrcache keeps in other Regions so that their ECR events reach it.

* :class:`ObservedForwarder` - what ``DescribeRule`` and ``ListTargetsByRule`` returned for the forwarding
  rule in one Region (the server-set fields, ``Arn`` / ``CreatedBy``, are not compared);
* :class:`ForwarderTarget` - one of its targets;
* :class:`ForwarderStatus` / :class:`ForwarderStatusRecord` (defined in :mod:`ecrcache.models.status`, beside
  the Region statuses that carry them; re-exported here) - how the last reconcile of the forwarder of a
  Region went (``Synced`` with a reason and message, the ACK vocabulary rules use), shown by ``GET /v1/status``
  and ``ecrcache status``. A record also tells the reconciler where it made a forwarder: a Region keeps being
  reconciled while it has one, so the forwarder is deleted there once no desired rule names the Region.

Pure values; why forwarders exist and what they match is in :mod:`ecrcache.engine.forwarders`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ecrcache.models.status import ForwarderStatus, ForwarderStatusRecord

__all__ = ["ForwarderStatus", "ForwarderStatusRecord", "ForwarderTarget", "ObservedForwarder"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForwarderTarget(_Frozen):
    """One target of the forwarding rule (``ListTargetsByRule``: ``Id``, ``Arn``, ``RoleArn``), and the entry as
    EventBridge returned it (``entry``), every key kept: a key the controller never sets (``Input``,
    ``InputPath``, ``InputTransformer``, ``RetryPolicy``, ...) changes what is forwarded, so it is drift."""

    id: str
    arn: str
    role_arn: str | None = None
    entry: dict[str, Any] | None = Field(default=None, description="The whole ListTargetsByRule entry.")

    def as_entry(self) -> dict[str, Any]:
        """The target as ``ListTargetsByRule`` returned it (``Id``/``Arn``/``RoleArn`` when no entry was kept)."""
        if self.entry is not None:
            return dict(self.entry)
        base = {"Id": self.id, "Arn": self.arn}
        return base if self.role_arn is None else {**base, "RoleArn": self.role_arn}


class ObservedForwarder(_Frozen):
    """The forwarding rule of one Region as EventBridge holds it."""

    name: str
    state: str | None = None
    description: str | None = None
    event_pattern: str | None = Field(default=None, description="The pattern as EventBridge returns it (JSON text).")
    targets: tuple[ForwarderTarget, ...] = ()

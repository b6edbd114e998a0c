"""Event forwarders: ECR's events of other Regions, sent to the stack Region's default bus (pure).

**Why.** ECR's CloudTrail API-call events and its ``ECR Pull Through Cache Action`` events reach only the
default event bus of the Region where they happen (EventBridge User Guide, "Events from AWS services";
shared/reference/ecr-facts.md §6). The stack's own rules (``ReconcilerEcrDriftRule``,
``ReconcilerPullThroughCacheActionRule`` in ``template.yaml``) see only its Region, so drift in any other
Region a rule names would wait for a resync. In each such Region the controller keeps one EventBridge rule
whose target is the stack Region's default bus ("Sending and receiving events between AWS Regions in Amazon
EventBridge": a rule's target may be an event bus of another Region, with a role EventBridge assumes to call
``PutEvents`` on it).

**Why the controller makes them** (and not a per-Region stack): rules name their Regions through the API at
any time; a stack per Region would make an operator deploy one each time a rule names a new Region, and
forget to remove it. The controller already acts in every Region a rule names, under that Region's lease,
with its ECR permissions there: a forwarder is one more managed resource, planned, applied, verified and
removed like a pull-through cache rule, and shown by ``GET /v1/plan``.

**What they match**: exactly what the home Region's two rules match (:func:`forward_pattern` is their
union, guarded by the forwarder's own ``region``; a contract test checks it against ``template.yaml``): ECR's
CloudTrail writes by anyone but the sessions of the stack's roles writing ECR (the reconciler's and the reconcile
worker's), and every pull-through cache action. The
forwarded event keeps its ``region`` (the origin Region), so the reconciler's trigger reads it as that Region's
(:mod:`ecrcache.services.triggers`; the ``region`` of a forwarded event naming its origin is reported by AWS's
cross-Region routing launch post, not stated in the guide). No forwarder can start a loop: the stack's Region
has none, EventBridge passes on no event it received from another account (User Guide, "Sending and
receiving events between AWS accounts"; the guide does not say the same of Regions), and each forwarder matches
only events of its own Region (``region``), so an event forwarded into its Region (by another stack's forwarder)
is never sent on.

**Which Regions**: every Region a desired rule names but the stack's (:func:`forwarder_regions`); a
Region that no desired rule names any more loses its forwarder (the reconciler keeps reconciling a Region
while it has a forwarder record there; the record is written before the rule is created, and no rule is created
when it cannot be; the daily deep resync also asks every Region of the partition, ``DescribeRule``, and deletes a
forwarder found where no rule and no record point: :class:`~ecrcache.services.forwarders.ForwarderSweep`).

**Plan**: :func:`plan_forwarder` compares the desired rule with what EventBridge holds (pattern compared as
JSON values, state, description, the one target: bus and role) and plans ``create_forwarder`` (PutRule then
PutTargets), ``update_forwarder`` (the same calls, which overwrite; stray targets removed) or
``delete_forwarder`` (RemoveTargets, then DeleteRule: a rule with targets cannot be deleted, EventBridge API
reference "DeleteRule").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, PlannedAction
from ecrcache.models.ecr_operations import DRIFT_EVENTS
from ecrcache.models.events import CACHE_ACTION_DETAIL_TYPE, CLOUDTRAIL_DETAIL_TYPE
from ecrcache.models.forwarder import ForwarderStatus
from ecrcache.models.status import Condition, ConditionType

if TYPE_CHECKING:
    from ecrcache.models.forwarder import ObservedForwarder

__all__ = [
    "CACHE_ACTION_PATTERN",
    "TARGET_ID",
    "Forwarding",
    "canonical",
    "drift_pattern",
    "forward_pattern",
    "forwarder_actions",
    "forwarder_regions",
    "forwarder_status",
    "plan_forwarder",
]

TARGET_ID: Final = "ecrcache-home-bus"
"""The forwarding rule's one target (``Id``: 1-64 of ``[.\\-_A-Za-z0-9]``, EventBridge API reference "Target")."""
CACHE_ACTION_PATTERN: Final[Mapping[str, Any]] = {
    "source": ["aws.ecr"],
    "detail-type": [CACHE_ACTION_DETAIL_TYPE],
    "detail": {"sync-status": [{"exists": True}]},
}
"""``ReconcilerPullThroughCacheActionRule``'s pattern: every pull-through cache action."""


def _session_issuer(match: list[dict[str, Any]]) -> dict[str, Any]:
    return {"userIdentity": {"sessionContext": {"sessionIssuer": {"arn": match}}}}


def drift_pattern(ignored_roles: Sequence[str]) -> dict[str, Any]:
    """``ReconcilerEcrDriftRule``'s pattern: ECR's successful CloudTrail writes (:data:`DRIFT_EVENTS`) made by
    a session of any role but ``ignored_roles`` (IAM role ARNs: the reconciler's and the reconcile worker's; a
    session's ``userIdentity.sessionContext.sessionIssuer.arn`` is its role's), or by a caller without a session
    issuer (an IAM user, an AWS service on its own behalf)."""
    return {
        "source": ["aws.ecr"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": ["ecr.amazonaws.com"],
            "errorCode": [{"exists": False}],
            "$or": [
                _session_issuer([{"anything-but": list(ignored_roles)}]),
                _session_issuer([{"exists": False}]),
            ],
            "eventName": sorted(DRIFT_EVENTS),
        },
    }


def forward_pattern(ignored_roles: Sequence[str], region: str) -> dict[str, Any]:
    """The forwarding rule's pattern in ``region``: the union of the home Region's two rules (EventBridge User
    Guide, "Content filtering in Amazon EventBridge event patterns": ``$or``), for events of ``region`` only.

    The Region guard: a forwarded event keeps its origin ``region``, so an event another Region's forwarder put
    on this Region's bus never matches this one. Two ecrcache stacks of one account with different home Regions,
    each naming the other's Region, would otherwise send each event back and forth (EventBridge documents that
    it does not pass on events received from another *account*; it says nothing of Regions)."""
    return {"region": [region], "$or": [drift_pattern(ignored_roles), dict(CACHE_ACTION_PATTERN)]}


def canonical(pattern: Any) -> Any:
    """A pattern with every list of plain values sorted (their order never changes what matches)."""
    if isinstance(pattern, Mapping):
        return {key: canonical(value) for key, value in sorted(pattern.items())}
    if isinstance(pattern, list):
        items = [canonical(item) for item in pattern]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return pattern


@dataclass(frozen=True, slots=True)
class Forwarding:
    """The stack's forwarding settings: the rule's name (stack-unique), the role EventBridge assumes to put
    events on the home bus, the home Region, and the roles (IAM role ARNs) whose sessions' calls are not forwarded."""

    rule_name: str
    role_arn: str
    home_region: str
    ignored_roles: tuple[str, ...]

    @property
    def partition(self) -> str:
        """The role's partition (``aws``, ``aws-cn``, ``aws-us-gov``): the Regions forwarders may be in."""
        return self.role_arn.split(":")[1]

    @property
    def home_bus_arn(self) -> str:
        """The home Region's default bus, in the role's partition and account."""
        parts = self.role_arn.split(":")
        partition, account = parts[1], parts[4]
        return f"arn:{partition}:events:{self.home_region}:{account}:event-bus/default"

    @property
    def description(self) -> str:
        return (
            f"ecrcache: forwards this Region's ECR drift and pull-through cache events to the default event bus "
            f"of {self.home_region}, whose ecrcache stack owns this rule ({self.rule_name}). Created and deleted "
            "by ecrcache's reconciler: changes are reverted."
        )

    def rule_request(self, region: str) -> dict[str, Any]:
        """``PutRule``'s keyword arguments for the forwarder of ``region`` (the default bus).

        No ``Tags``: PutRule assigns tags "when you initially create a rule" (EventBridge API reference, "PutRule"),
        not when it updates one, so tags changed by hand would stay changed (putting them back would need
        ListTagsForResource and TagResource / UntagResource in every Region). The rule is the stack's by its
        stack-unique name, and its description names the home Region and the stack's rule."""
        return {
            "Name": self.rule_name,
            "EventPattern": json.dumps(forward_pattern(self.ignored_roles, region), sort_keys=True),
            "State": "ENABLED",
            "Description": self.description,
        }

    def targets_request(self) -> dict[str, Any]:
        """``PutTargets``' keyword arguments: the home bus, with the role (required for a bus in another
        Region: EventBridge User Guide, "Sending and receiving events between AWS Regions")."""
        target = {"Id": TARGET_ID, "Arn": self.home_bus_arn, "RoleArn": self.role_arn}
        return {"Rule": self.rule_name, "Targets": [target]}


def forwarder_regions(desired_regions: Iterable[str], home_region: str) -> frozenset[str]:
    """The Regions that need a forwarder: every Region a desired rule names, but the stack's own."""
    return frozenset(desired_regions) - {home_region}


def _differences(forwarding: Forwarding, region: str, found: ObservedForwarder) -> list[str]:
    """What differs between the wanted rule of ``region`` and ``found`` (empty: nothing)."""
    wanted = forwarding.rule_request(region)
    out: list[str] = []
    try:
        pattern = canonical(json.loads(found.event_pattern or "null"))
    except ValueError:
        pattern = None
    if pattern != canonical(json.loads(wanted["EventPattern"])):
        out.append("event pattern")
    if found.state != wanted["State"]:
        out.append(f"state {found.state}")
    if (found.description or "") != wanted["Description"]:
        out.append("description")
    # Exactly {Id, Arn, RoleArn}: any other key (an InputTransformer, Input, InputPath, a RetryPolicy, ...) changes
    # what is forwarded. PutTargets "updates the targets if they are already associated with the rule" (API
    # reference) with the entry it is given; verify re-reads it, so a key it kept would show as NotConverged.
    if [t.as_entry() for t in found.targets] != forwarding.targets_request()["Targets"]:
        out.append("targets")
    return out


def _view(found: ObservedForwarder) -> dict[str, Any]:
    return {
        "state": found.state,
        "event_pattern": found.event_pattern,
        "targets": [t.as_entry() for t in found.targets],
    }


def plan_forwarder(
    region: str, forwarding: Forwarding, *, wanted: bool, found: ObservedForwarder | None
) -> PlannedAction | None:
    """The action that makes ``region``'s forwarder what it should be (``None``: it is)."""
    if not wanted:
        if found is None:
            return None
        return PlannedAction(
            kind=ActionKind.DELETE_FORWARDER,
            region=region,
            target=forwarding.rule_name,
            rule_prefix=REGISTRY_LEVEL,
            before=_view(found),
            reason="no desired rule names this Region any more",
            request={
                "remove": {"Rule": forwarding.rule_name, "Ids": [t.id for t in found.targets]},
                "delete": {"Name": forwarding.rule_name},
            },
        )
    after = {"rule": forwarding.rule_request(region), "targets": forwarding.targets_request()}
    if found is None:
        return PlannedAction(
            kind=ActionKind.CREATE_FORWARDER,
            region=region,
            target=forwarding.rule_name,
            rule_prefix=REGISTRY_LEVEL,
            after=_json(after),
            reason=f"a desired rule names this Region: its ECR events are forwarded to {forwarding.home_region}",
            request=_json(after),
        )
    changed = _differences(forwarding, region, found)
    if not changed:
        return None
    stray = sorted(t.id for t in found.targets if t.id != TARGET_ID)
    request = {**after, "remove": {"Rule": forwarding.rule_name, "Ids": stray} if stray else None}
    return PlannedAction(
        kind=ActionKind.UPDATE_FORWARDER,
        region=region,
        target=forwarding.rule_name,
        rule_prefix=REGISTRY_LEVEL,
        before=_view(found),
        after=_json(after),
        reason="the forwarding rule differs: " + ", ".join(changed),
        request=_json(request),
    )


def _json(value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-only copy (the action's fields are JSON values)."""
    out: dict[str, Any] = json.loads(json.dumps(value))
    return out


def forwarder_actions(
    regions: Sequence[str],
    forwarding: Forwarding,
    *,
    wanted: frozenset[str],
    found: Mapping[str, ObservedForwarder | None],
) -> list[PlannedAction]:
    """The forwarder actions of ``regions`` (those whose forwarder was read: keys of ``found``)."""
    planned = (
        plan_forwarder(region, forwarding, wanted=region in wanted, found=found[region])
        for region in regions
        if region in found and region != forwarding.home_region
    )
    return [action for action in planned if action is not None]


def forwarder_status(
    current: ForwarderStatus | None,
    name: str,
    *,
    synced: bool,
    reason: str,
    message: str,
    now: datetime,
    run_id: str,
) -> ForwarderStatus:
    """The forwarder's status after a run: ``Synced`` set (its ``last_transition`` moves only when it flips)."""
    before = next((c for c in (current.conditions if current else ()) if c.type is ConditionType.SYNCED), None)
    transition = before.last_transition if before is not None and before.status == synced else now
    condition = Condition(
        type=ConditionType.SYNCED, status=synced, reason=reason, message=message, last_transition=transition
    )
    return ForwarderStatus(name=name, conditions=(condition,), last_reconciled_at=now, last_run_id=run_id)

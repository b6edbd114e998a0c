"""A credential's secret in every Region its rules name: replicas to add, retry and remove, and the ARN
(or the wait) of each rule's Region. Pure: no I/O, no clock, no environment.

ECR reads a rule's secret in the rule's own Region only (ecr-facts §10), so a credential's secret
``ecr-pullthroughcache/<name>`` - created in the stack's Region, the primary - gets a replica in every
other Region a desired rule using the credential names (Secrets Manager's multi-Region secrets; what a
replica is and its ARN: :mod:`ecrcache.models.secret_replica`). Reconciled like any other setting:

* :func:`plan_replicas` - ``replicate_secret`` for a wanted Region without a replica (never with
  ``ForceOverwriteReplicaSecret``: a secret of that name someone keeps in the Region is theirs; the
  replica then fails and says so); ``retry_replica`` for a wanted replica that ``Failed`` (remove it
  and add it again: when its cause is gone it is created, otherwise it fails again with the reason).
* :func:`plan_replica_removals` - ``remove_replica`` for a replica no desired rule wants any more, but
  only where ECR was read and no rule there uses the replica's ARN (after what the plan deletes or
  points at another secret): a rule ECR keeps (``deletion_policy: retain``, made by hand) would stop
  pulling. Such a replica is reported (:class:`~.plan.Unmanaged`, kind ``secret``) and kept.
* :func:`credential_in` - the ARN a rule's credential has in a Region, and why the rule must wait
  (:class:`~ecrcache.models.observed.CredentialWait`): ``pending`` while the replica is being created
  (or could not be read or added for a reason that passes), not pending when it failed or the secret
  is gone.

Only a secret whose primary is in the stack's Region is replicated: a credential that adopted a
secret which is itself a replica of another Region's cannot be (``ReplicateSecretToRegions`` is made
on the primary), and its rules outside the stack's Region are blocked with that reason.

Updating a value needs nothing here: ``PutSecretValue`` and rotation change the primary, and "the new
secret value propagates to all of the associated replica secrets" (Secrets Manager User Guide,
multi-Region secrets); a replica "can't be updated independently from its primary secret" (User
Guide, "Promote a replica secret to a standalone secret").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, PlannedAction, Unmanaged
from ecrcache.models.credential import secret_name
from ecrcache.models.observed import CredentialWait
from ecrcache.models.secret_replica import region_of, replica_arn

if TYPE_CHECKING:
    from ecrcache.engine.plan import ActionResult, JsonObject
    from ecrcache.models.observed import ObservedRule
    from ecrcache.models.secret_replica import ObservedSecret, SecretReplica

__all__ = [
    "CredentialSecret",
    "credential_in",
    "plan_replica_removals",
    "plan_replicas",
    "replica_regions",
    "wanted_regions",
]

_MOVES_CREDENTIAL: Final = frozenset({ActionKind.UPDATE_RULE, ActionKind.REPLACE_RULE})


@dataclass(frozen=True, slots=True)
class CredentialSecret:
    """One credential's secret: the ARN recorded with the credential (the primary's, in the stack's
    Region), and what ``DescribeSecret`` answered (``observed``: ``None`` when there is no such secret;
    ``error``: why it could not be read)."""

    credential: str
    arn: str
    observed: ObservedSecret | None = None
    error: str | None = None

    @property
    def current_arn(self) -> str:
        """The ARN Secrets Manager answered (the recorded one when it was not read): replicas are of this."""
        return self.observed.arn if self.observed is not None else self.arn

    @property
    def name(self) -> str:
        """The secret's name, ``ecr-pullthroughcache/<credential>``."""
        return secret_name(self.credential)


def wanted_regions(rules: Iterable[Mapping[str, Any]], home: str) -> dict[str, frozenset[str]]:
    """Credential -> the Regions other than ``home`` that the desired rules using it name.

    Read from the rules as stored (JSON data), so that a stored rule that no longer validates still
    keeps its credential's replicas: removing one is never done on a guess."""
    wanted: dict[str, set[str]] = {}
    for spec in rules:
        credential = spec.get("credential")
        if not credential:
            continue
        regions = {str(r) for r in spec.get("regions") or (home,)} - {home}
        wanted.setdefault(str(credential), set()).update(regions)
    return {credential: frozenset(regions) for credential, regions in wanted.items()}


def replica_regions(secrets: Iterable[CredentialSecret]) -> set[str]:
    """Every Region where one of ``secrets`` has a replica (a run reads ECR there before removing one)."""
    return {region for s in secrets if s.observed is not None for region in s.observed.replicas}


def _managed(secret: CredentialSecret, home: str) -> ObservedSecret | None:
    """The observed secret if its replicas are ecrcache's to change: read, not scheduled for deletion,
    the primary in the stack's Region."""
    observed = secret.observed
    if observed is None or observed.deleted or observed.primary_region != home:
        return None
    return observed


def _action(kind: ActionKind, secret: CredentialSecret, region: str, reason: str, request: JsonObject) -> PlannedAction:
    replica = secret.observed.replicas.get(region) if secret.observed else None
    before: JsonObject | None = None if replica is None else {"status": replica.status, "message": replica.message}
    return PlannedAction(
        kind=kind,
        region=region,
        target=secret.name,
        rule_prefix=REGISTRY_LEVEL,
        before=before,
        after=None if kind is ActionKind.REMOVE_REPLICA else {"replica": replica_arn(secret.current_arn, region)},
        reason=reason,
        request=request,
    )


def _add_request(secret: CredentialSecret, region: str) -> JsonObject:
    return {"SecretId": secret.current_arn, "AddReplicaRegions": [{"Region": region}]}


def _remove_request(secret: CredentialSecret, region: str) -> JsonObject:
    return {"SecretId": secret.current_arn, "RemoveReplicaRegions": [region]}


def plan_replicas(
    secrets: Mapping[str, CredentialSecret],
    wanted: Mapping[str, Collection[str]],
    *,
    home: str,
    regions: Collection[str] | None = None,
) -> list[PlannedAction]:
    """``replicate_secret`` / ``retry_replica`` for every wanted Region (within ``regions``, when given)."""
    actions: list[PlannedAction] = []
    for credential, secret in sorted(secrets.items()):
        observed = _managed(secret, home)
        if observed is None:
            continue
        for region in sorted(wanted.get(credential, ())):
            if regions is not None and region not in regions:
                continue
            replica = observed.replicas.get(region)
            why = f"rules using credential {credential!r} name {region}: ECR reads a rule's secret in its own Region"
            if replica is None:
                actions.append(_action(ActionKind.REPLICATE_SECRET, secret, region, why, _add_request(secret, region)))
            elif replica.failed:
                request: JsonObject = {
                    "remove": _remove_request(secret, region),
                    "replicate": _add_request(secret, region),
                }
                reason = f"the replica failed ({replica.message or 'no message'}): remove it and replicate again"
                actions.append(_action(ActionKind.RETRY_REPLICA, secret, region, reason, request))
    return actions


def _users(arn: str, rules: Mapping[str, ObservedRule], planned: Sequence[PlannedAction]) -> list[str]:
    """The ECR rules using ``arn`` once ``planned`` is applied (deleted, or moved to another secret: not)."""
    region = region_of(arn)
    leaving: set[str] = set()
    for action in planned:
        if action.region != region:
            continue
        if action.kind is ActionKind.DELETE_RULE:
            leaving.add(action.target)
        elif action.kind in _MOVES_CREDENTIAL:
            request = action.request.get("create", action.request)
            if isinstance(request, dict) and request.get("credentialArn") != arn:
                leaving.add(action.target)
    return sorted(p for p, rule in rules.items() if rule.credential_arn == arn and p not in leaving)


def plan_replica_removals(
    secrets: Mapping[str, CredentialSecret],
    wanted: Mapping[str, Collection[str]],
    rules_by_region: Mapping[str, Mapping[str, ObservedRule]],
    *,
    home: str,
    planned: Sequence[PlannedAction] = (),
) -> tuple[list[PlannedAction], list[Unmanaged]]:
    """``remove_replica`` for every replica no desired rule wants, in the Regions whose rules were read
    (``rules_by_region``), unless an ECR rule there uses it after ``planned``: then it is reported, kept."""
    actions: list[PlannedAction] = []
    kept: list[Unmanaged] = []
    for credential, secret in sorted(secrets.items()):
        observed = _managed(secret, home)
        if observed is None:
            continue
        for region in sorted(set(observed.replicas) - set(wanted.get(credential, ()))):
            if region not in rules_by_region:
                continue  # ECR there was not read: whether a rule still uses the replica is unknown
            users = _users(observed.arn_in(region), rules_by_region[region], planned)
            if users:
                reason = (
                    f"no desired rule using credential {credential!r} names {region} any more, but ECR rule(s) "
                    f"{', '.join(users)} there still use this replica: kept until they are deleted or use another "
                    "secret"
                )
                kept.append(Unmanaged(kind="secret", region=region, name=secret.name, reason=reason))
                continue
            reason = f"no desired rule using credential {credential!r} names {region} and no ECR rule there uses it"
            actions.append(_action(ActionKind.REMOVE_REPLICA, secret, region, reason, _remove_request(secret, region)))
    return actions, kept


def credential_in(
    region: str,
    secret: CredentialSecret,
    *,
    home: str,
    failures: Mapping[tuple[str, str], ActionResult] | None = None,
) -> tuple[str, CredentialWait | None]:
    """The ARN of ``secret`` in ``region``, and why a rule there must wait for it (``None``: usable).

    ``failures``: replica actions of this run that failed, by ``(credential, region)``."""
    if region == home:
        return secret.arn, None
    arn = replica_arn(secret.current_arn, region)
    replica_name = f"the replica of secret {secret.name} in {region} ({arn})"
    failed = (failures or {}).get((secret.credential, region))
    if failed is not None:
        return arn, CredentialWait(
            reason=f"could not create {replica_name}: {failed.message or failed.code}", pending=failed.retryable
        )
    if secret.error is not None:
        return arn, CredentialWait(
            reason=f"waiting for {replica_name}: its replication status could not be read ({secret.error})",
            pending=True,
        )
    return arn, _wait_for(region, secret, home, replica_name)


def _wait_for(region: str, secret: CredentialSecret, home: str, replica_name: str) -> CredentialWait | None:
    observed = secret.observed
    if observed is None:
        return CredentialWait(
            reason=f"secret {secret.name} does not exist in {home} any more: put the credential's token again",
            pending=False,
        )
    if observed.deleted:
        return CredentialWait(reason=f"secret {secret.name} is scheduled for deletion", pending=False)
    if observed.primary_region != home:
        return CredentialWait(
            reason=(
                f"secret {secret.name} is a replica of a secret in {observed.primary_region}: ecrcache replicates a "
                f"credential's secret from the stack's Region ({home}) only; make it a primary there or give "
                "the credential a new token"
            ),
            pending=False,
        )
    return _replica_wait(observed.replicas.get(region), replica_name)


def _replica_wait(replica: SecretReplica | None, replica_name: str) -> CredentialWait | None:
    if replica is None:
        return CredentialWait(reason=f"{replica_name} does not exist yet: replicate_secret is planned", pending=True)
    if replica.in_sync:
        return None
    if replica.failed:
        return CredentialWait(
            reason=(
                f"{replica_name} failed: {replica.message or 'no message'}. Remove the cause (e.g. delete or rename "
                "another secret of that name in the Region); each reconcile retries the replica"
            ),
            pending=False,
        )
    return CredentialWait(
        reason=(
            f"waiting for {replica_name}: Secrets Manager reports it {replica.status}; the rule is created once "
            "it is InSync"
        ),
        pending=True,
    )

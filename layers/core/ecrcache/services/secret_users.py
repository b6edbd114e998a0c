"""Which pull-through cache rules in ECR still use a credential's secret, before it is deleted.

Deleting a credential schedules its secret ``ecr-pullthroughcache/<name>`` for deletion, and a
secret scheduled for deletion cannot be read by anyone, ECR included: every rule whose
``credentialArn`` is that secret then fails its pulls. A desired rule naming the credential is
found in the desired state; what only ECR knows is found here, by reading ECR (the honest source:
what ecrcache recorded may be stale, someone may have deleted or re-pointed the rule since):

* a rule ecrcache **retained**: created or adopted by ecrcache (the status store's ownership), its
  desired rule deleted with ``deletion_policy: retain``, so ECR keeps it;
* a rule ecrcache does **not manage** (made by hand, or not imported) that uses the secret;
* a rule still **desired** but with another credential, not reconciled yet (ECR still has this one).

A rule ecrcache is about to delete (owned, its desired rule deleted with ``deletion_policy: delete``,
in this write or before) does not count: the reconciler removes it.

Only the Regions the secret is in are read - its own and those of its replicas (a credential's secret
has a replica in every other Region its rules name: :mod:`ecrcache.engine.replicas`): ECR takes a
secret of the rule's account and Region only (ecr-facts §1.5), a secret's ARN names its Region, and a
replica's ARN is the primary's with the replica's Region. Deleting the credential removes the replicas
too, so a rule in a replica's Region that uses it would break just the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ecrcache.errors import ConflictError, EcrcacheError, FieldError
from ecrcache.models.credential import secret_name
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import DeletionPolicy
from ecrcache.models.secret_replica import region_of, replica_arn
from ecrcache.services.plan import deleted_spec

if TYPE_CHECKING:
    from ecrcache.models.observed import ObservedRule
    from ecrcache.ports import EcrReader, SecretStore, StateStore, StatusStore

__all__ = ["EcrSecretUsers", "SecretUse", "UseKind", "still_used_conflict"]


class UseKind(StrEnum):
    RETAINED = "retained"
    UNMANAGED = "unmanaged"
    NOT_RECONCILED = "not-reconciled"


_WHY: dict[UseKind, str] = {
    UseKind.RETAINED: "retained by ecrcache after its desired rule was deleted",
    UseKind.UNMANAGED: "not managed by ecrcache",
    UseKind.NOT_RECONCILED: "desired with another credential, not reconciled yet",
}


@dataclass(frozen=True, slots=True)
class SecretUse:
    """An ECR rule (``prefix`` in ``region``) whose ``credentialArn`` is credential ``credential``'s secret."""

    credential: str
    region: str
    prefix: str
    kind: UseKind


class EcrSecretUsers:
    """Reads ECR (read only) and the status store to tell which rules in ECR use a secret."""

    def __init__(
        self,
        *,
        registry: Callable[[str], EcrReader],
        status: StatusStore,
        desired: StateStore,
        stack_region: str,
        secrets: SecretStore | None = None,
    ) -> None:
        """``secrets`` tells where each secret has replicas (their Regions are read too; without it,
        only the secret's own Region is)."""
        self.registry = registry
        self.status = status
        self.desired = desired
        self.stack_region = stack_region
        self.secrets = secrets

    def using(
        self,
        credentials: Mapping[str, str],
        *,
        desired_rules: Mapping[str, Mapping[str, Any]],
        deleted_rules: Mapping[str, Mapping[str, Any]],
    ) -> list[SecretUse]:
        """The ECR rules that would break if the secrets of ``credentials`` (name -> secret ARN) went,
        their replicas included (deleting a credential removes them too).

        ``desired_rules`` are the rules desired once the write lands; ``deleted_rules`` the rules it
        deletes, with their last spec (their ``deletion_policy`` decides whether ecrcache removes them).
        """
        by_arn = {arn: name for name, arn in credentials.items()}
        for credential, arn in credentials.items():
            regions = self.secrets.replica_regions(secret_name(credential)) if self.secrets is not None else ()
            by_arn.update({replica_arn(arn, region): credential for region in regions})
        uses: list[SecretUse] = []
        for region in sorted({region_of(arn) for arn in by_arn}):
            owned = self.status.ownership(region).rules
            for prefix, rule in sorted(self._rules(region, sorted(set(by_arn.values()))).items()):
                name = by_arn.get(rule.credential_arn or "")
                if name is None:
                    continue
                kind = self._kind(prefix, region, desired_rules, owned=prefix in owned)
                if kind is UseKind.RETAINED and self._ecrcache_deletes(prefix, deleted_rules):
                    continue
                uses.append(SecretUse(credential=name, region=region, prefix=prefix, kind=kind))
        return uses

    def _rules(self, region: str, credentials: Sequence[str]) -> Mapping[str, ObservedRule]:
        """ECR's rules in ``region``; a read that fails keeps its class (retry or not) and says why it was made."""
        try:
            return self.registry(region).rules()
        except EcrcacheError as exc:
            raise type(exc)(
                f"could not read ECR in {region} to check which rules still use the secret of "
                f"{', '.join(repr(c) for c in credentials)} ({exc.message}); nothing was deleted",
                exc.details,
                reason=exc.reason,
            ) from exc

    def _kind(
        self, prefix: str, region: str, desired_rules: Mapping[str, Mapping[str, Any]], *, owned: bool
    ) -> UseKind:
        spec = desired_rules.get(prefix)
        if spec is not None and region in (spec.get("regions") or [self.stack_region]):
            return UseKind.NOT_RECONCILED
        return UseKind.RETAINED if owned else UseKind.UNMANAGED

    def _ecrcache_deletes(self, prefix: str, deleted_rules: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether the rule's last desired spec (deleted by this write, or before: its history) said
        ``deletion_policy: delete``, so that the reconciler deletes its ECR rule."""
        last = deleted_rules.get(prefix)
        if last is None:
            last = deleted_spec(self.desired, ResourceKind.RULE, prefix)
        policy = (last or {}).get("deletion_policy", DeletionPolicy.RETAIN.value)
        return bool(policy == DeletionPolicy.DELETE.value)


def still_used_conflict(uses: Iterable[SecretUse]) -> ConflictError:
    """409 naming every rule (prefix and Region) and saying what to do about each kind."""
    uses = list(uses)
    credentials = sorted({u.credential for u in uses})
    listed = "; ".join(f"{u.prefix} ({u.region}, {_summary(u.kind)})" for u in uses)
    advice = " ".join(dict.fromkeys(_advice(u) for u in uses))
    noun = "credential" if len(credentials) == 1 else "credentials"
    message = (
        f"{noun} {', '.join(repr(c) for c in credentials)} still used by pull-through cache rules in ECR: "
        f"{listed}. Deleting would schedule the secret for deletion and break their pulls. {advice}"
    )
    details = [
        FieldError(
            field=u.prefix,
            message=(
                f"pull-through cache rule in ECR ({u.region}), {_WHY[u.kind]}, uses the secret of credential "
                f"{u.credential!r}"
            ),
            type="still_used",
        )
        for u in uses
    ]
    return ConflictError(message, details)


def _summary(kind: UseKind) -> str:
    return "retained in ECR by ecrcache" if kind is UseKind.RETAINED else _WHY[kind]


def _advice(use: SecretUse) -> str:
    delete = f"aws ecr delete-pull-through-cache-rule --ecr-repository-prefix {use.prefix} --region {use.region}"
    if use.kind is UseKind.NOT_RECONCILED:
        return f"Wait for the reconciler to point {use.prefix} at its new credential (ecrcache status), then retry."
    return (
        f"Delete the ECR rule if it is no longer needed ({delete}), or declare the rule again "
        "(with a credential that stays) to keep it; then retry."
    )

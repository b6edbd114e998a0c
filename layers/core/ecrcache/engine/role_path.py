"""The IAM path of the roles a rule names, against the stack's ``EcrRolePath``.

A rule's ``custom_role_arn`` (ECR-to-ECR) and its creation template's ``creation_role_arn`` are roles ECR
assumes; creating or updating the rule or template makes the caller pass them (``iam:PassRole``, a dependent
action: Service Authorization Reference, Amazon ECR). The template grants the reconciler ``iam:PassRole`` only on
``arn:<partition>:iam::<account>:role<EcrRolePath>*``: a role outside that path would be accepted and then fail
with AccessDenied on every reconcile. The same holds for a role of another account or partition, whatever its path
(the grant names the stack's own). The API rejects such a role (422) and the planner blocks a stored one (Terminal),
both with :func:`outside_role_path`. Pure: the :class:`RoleScope` is given (the ``ECR_ROLE_PATH`` and
``ECR_ROLE_ACCOUNT`` settings, the stack's Region's partition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ecrcache.models.common import region_partition

if TYPE_CHECKING:
    from ecrcache.models.rule import RuleSpec

__all__ = [
    "ANY_ROLE",
    "ANY_ROLE_PATH",
    "RoleOutsidePath",
    "RoleScope",
    "outside_role_path",
    "role_path",
    "roles_of_json",
    "roles_of_spec",
]

ANY_ROLE_PATH: Final = "/"
"""``EcrRolePath=/``: every role of the account may be passed."""


@dataclass(frozen=True, slots=True)
class RoleScope:
    """The roles the reconciler may pass (its ``iam:PassRole`` on ``arn:<partition>:iam::<account>:role<path>*``):
    under ``path``, of ``account`` in ``partition`` (``None``: not checked, e.g. a test or a local stack)."""

    path: str = ANY_ROLE_PATH
    account: str | None = None
    partition: str | None = None

    @classmethod
    def of_stack(cls, path: str, account: str, region: str) -> RoleScope:
        """The scope of a stack deployed in ``region`` of ``account`` (empty: any account) with ``EcrRolePath``."""
        return cls(path=path, account=account or None, partition=region_partition(region))

    def foreign(self, arn: str) -> tuple[str, str] | None:
        """``(partition, account)`` of a role ARN of another partition or account than the stack's (else ``None``;
        an ARN that is not ``arn:<partition>:iam::<account>:...`` counts as foreign: nothing could pass it)."""
        parts = arn.split(":", 5)
        partition, account = (parts[1], parts[4]) if len(parts) == 6 else ("?", "?")
        if (self.partition is not None and partition != self.partition) or (
            self.account is not None and account != self.account
        ):
            return partition, account
        return None


ANY_ROLE: Final = RoleScope()
"""Every role (no path, account or partition checked)."""


def role_path(arn: str) -> str:
    """The IAM path of a role ARN (``arn:aws:iam::1:role/a/b/name`` -> ``/a/b/``; no path -> ``/``)."""
    resource = arn.split(":", 5)[-1]  # role/[<path>/]<name>
    inner = resource.removeprefix("role")
    return inner[: inner.rfind("/") + 1] or ANY_ROLE_PATH


@dataclass(frozen=True, slots=True)
class RoleOutsidePath:
    """A role ARN of a rule (``field``: its path in the rule) the reconciler may not pass: of another account or
    partition than the stack's, or with an IAM path not under the allowed one."""

    field: str
    arn: str
    scope: RoleScope

    @property
    def allowed(self) -> str:
        return self.scope.path

    @property
    def path(self) -> str:
        return role_path(self.arn)

    @property
    def message(self) -> str:
        foreign = self.scope.foreign(self.arn)
        if foreign is not None:
            partition, account = foreign
            return (
                f"{self.arn} is a role of account {account} in partition {partition}: the reconciler may pass "
                f"(iam:PassRole) only roles of the stack's own account ({self.scope.account or 'any'}, partition "
                f"{self.scope.partition or 'any'}) under its EcrRolePath {self.allowed}"
            )
        return (
            f"{self.arn} has the IAM path {self.path}, outside the stack's EcrRolePath {self.allowed}: the reconciler "
            f"may pass (iam:PassRole) only roles under it. Create the role with --path {self.allowed}, or deploy "
            f"the stack with EcrRolePath={self.path}"
        )


def outside_role_path(roles: Iterable[tuple[str, str | None]], scope: RoleScope) -> list[RoleOutsidePath]:
    """The ``(field, role ARN)`` pairs whose role the reconciler may not pass: another account or partition than
    ``scope``'s, or a path not under its path (the IAM policy's ``role<path>*``: a role whose path starts with it).
    ``None`` (no role) is never outside."""
    return [
        RoleOutsidePath(field, arn, scope)
        for field, arn in roles
        if arn is not None and (scope.foreign(arn) is not None or not role_path(arn).startswith(scope.path))
    ]


def roles_of_spec(spec: RuleSpec) -> tuple[tuple[str, str | None], ...]:
    """A rule's role ARNs, by field path."""
    return (
        ("custom_role_arn", spec.custom_role_arn),
        ("repository.creation_role_arn", spec.repository.creation_role_arn),
    )


def roles_of_json(spec: Mapping[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """A stored (JSON) rule's role ARNs, by field path (a value that is not a string is not a role: the models
    report it)."""
    repository = spec.get("repository")
    creation = repository.get("creation_role_arn") if isinstance(repository, Mapping) else None
    found = (("custom_role_arn", spec.get("custom_role_arn")), ("repository.creation_role_arn", creation))
    return tuple((field, arn if isinstance(arn, str) else None) for field, arn in found)

"""The IAM path of the roles a rule names, against the stack's ``EcrRolePath``.

A rule's ``custom_role_arn`` (ECR-to-ECR) and its creation template's ``creation_role_arn`` are roles ECR
assumes; creating or updating the rule or template makes the caller pass them (``iam:PassRole``, a dependent
action: Service Authorization Reference, Amazon ECR). The template grants the reconciler ``iam:PassRole`` only on
``arn:<partition>:iam::<account>:role<EcrRolePath>*``: a role outside that path would be accepted and then fail
with AccessDenied on every reconcile. The API rejects it (422) and the planner blocks a stored one (Terminal),
both with :func:`outside_role_path`. Pure: the allowed path is given (the ``ECR_ROLE_PATH`` setting).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ecrcache.models.rule import RuleSpec

__all__ = ["ANY_ROLE_PATH", "RoleOutsidePath", "outside_role_path", "role_path", "roles_of_json", "roles_of_spec"]

ANY_ROLE_PATH: Final = "/"
"""``EcrRolePath=/``: every role of the account may be passed."""


def role_path(arn: str) -> str:
    """The IAM path of a role ARN (``arn:aws:iam::1:role/a/b/name`` -> ``/a/b/``; no path -> ``/``)."""
    resource = arn.split(":", 5)[-1]  # role/[<path>/]<name>
    inner = resource.removeprefix("role")
    return inner[: inner.rfind("/") + 1] or ANY_ROLE_PATH


@dataclass(frozen=True, slots=True)
class RoleOutsidePath:
    """A role ARN of a rule (``field``: its path in the rule) whose IAM path is not under the allowed one."""

    field: str
    arn: str
    allowed: str

    @property
    def path(self) -> str:
        return role_path(self.arn)

    @property
    def message(self) -> str:
        return (
            f"{self.arn} has the IAM path {self.path}, outside the stack's EcrRolePath {self.allowed}: the reconciler "
            f"may pass (iam:PassRole) only roles under it. Create the role with --path {self.allowed}, or deploy "
            f"the stack with EcrRolePath={self.path}"
        )


def outside_role_path(roles: Iterable[tuple[str, str | None]], allowed: str) -> list[RoleOutsidePath]:
    """The ``(field, role ARN)`` pairs whose role is not under ``allowed`` (the IAM policy's ``role<allowed>*``:
    a role whose path starts with it). ``None`` (no role) is never outside."""
    return [
        RoleOutsidePath(field, arn, allowed)
        for field, arn in roles
        if arn is not None and not role_path(arn).startswith(allowed)
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

"""A credential's secret as Secrets Manager describes it: the primary and its replicas in other Regions.

ECR takes a pull-through cache rule's secret only from the rule's own account and Region: "The
account and Region that the secret is in must match the account and Region that the pull through
cache rule is in" (ECR User Guide, "Creating a pull through cache rule"; ecr-facts §10). ecrcache
creates a credential's secret ``ecr-pullthroughcache/<name>`` once, in the stack's Region (the
*primary*), and gives every other Region a rule using the credential names a *replica* (Secrets
Manager's multi-Region secrets, ``ReplicateSecretToRegions``). A replica keeps the primary's name,
and its ARN is the primary's with the replica's Region: "The ARN for a replicated secret is the same
as the primary secret except for the Region" (Secrets Manager User Guide, "Replicate AWS Secrets
Manager secrets across Regions",
https://docs.aws.amazon.com/secretsmanager/latest/userguide/create-manage-multi-region-secrets.html),
so :func:`replica_arn` computes it without asking the replica's Region.

:class:`ObservedSecret` is ``DescribeSecret`` on the primary: its ``ReplicationStatus`` lists every
replica with ``Status`` ``InProgress`` ("Secrets Manager is in the process of creating the replica"),
``InSync`` ("the replica was created") or ``Failed`` ("the replica was not created"), and a
``StatusMessage`` such as "Secret with this name already exists in this region" (botocore's
``secretsmanager`` model, ``ReplicationStatusType`` and ``DescribeSecretResponse``). The model's enum
also names ``Pending`` and ``Detached`` without documenting them: anything but ``InSync`` is not in sync.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ObservedSecret", "ReplicaState", "SecretReplica", "region_of", "replica_arn"]

_REGION_FIELD: Final = 3
"""``arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<suffix>``: the Region's field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplicaState(StrEnum):
    """The documented ``ReplicationStatus[].Status`` values."""

    IN_SYNC = "InSync"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"


def region_of(secret_arn: str) -> str:
    """``arn:aws:secretsmanager:<region>:<account>:secret:<name>`` -> ``<region>``."""
    return secret_arn.split(":")[_REGION_FIELD]


def replica_arn(primary_arn: str, region: str) -> str:
    """The ARN of the primary's replica in ``region`` (the primary's own ARN for its own Region)."""
    parts = primary_arn.split(":")
    if len(parts) < _REGION_FIELD + 4 or parts[2] != "secretsmanager":
        raise ValueError(f"not a Secrets Manager secret ARN: {primary_arn!r}")
    parts[_REGION_FIELD] = region
    return ":".join(parts)


class SecretReplica(_Frozen):
    """One ``ReplicationStatus`` entry."""

    region: str
    status: str
    message: str | None = None

    @property
    def in_sync(self) -> bool:
        return self.status == ReplicaState.IN_SYNC

    @property
    def failed(self) -> bool:
        return self.status == ReplicaState.FAILED


class ObservedSecret(_Frozen):
    """A secret as ``DescribeSecret`` answered in the primary's Region (never its value)."""

    name: str
    arn: str
    primary_region: str = Field(description="The Region of the primary (a replica's DescribeSecret names another).")
    replicas: dict[str, SecretReplica] = Field(default_factory=dict, description="Region -> replication status.")
    deleted: bool = Field(default=False, description="Scheduled for deletion (DeletedDate set).")

    def arn_in(self, region: str) -> str:
        """The secret's ARN in ``region`` (the replica's, or the primary's in its own Region)."""
        return replica_arn(self.arn, region)

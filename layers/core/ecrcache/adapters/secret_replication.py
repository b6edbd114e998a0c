"""Credentials' secrets across Regions: ``DescribeSecret``'s replication status, and the replica actions.

:class:`SecretsManagerReplicaReader` only reads (the API's plan); :class:`SecretsManagerReplication`
also applies the reconciler's ``replicate_secret`` / ``retry_replica`` / ``remove_replica`` actions
(:mod:`ecrcache.engine.replicas`). Every call is made with one client, in the primary's Region (the
stack's): ``ReplicateSecretToRegions`` and ``RemoveRegionsFromReplication`` act on the primary
("Operation not permitted on a replica secret. Call must be made in primary secret's region", AWS's
answer otherwise, as reported in gruntwork-io/cloud-nuke#435). Neither reads or sends a secret value.

IAM (Service Authorization Reference, "Actions, resources, and condition keys for AWS Secrets Manager"):
``ReplicateSecretToRegions``, ``RemoveRegionsFromReplication`` and ``DescribeSecret`` each take the
``Secret`` resource and list no dependent action; ``ReplicateSecretToRegions`` needs KMS permissions
only for a key other than ``aws/secretsmanager`` (API reference), which pull-through cache secrets
never use (ECR cannot read them otherwise: ecr-facts §1.5).

:meth:`SecretsManagerReplication.apply` turns every AWS error into an
:class:`~ecrcache.engine.plan.ActionResult` (it never raises for one): throttling, 5xx and connection
errors (after botocore's adaptive retries) are retryable; ``ResourceNotFoundException`` on a removal
is done (no secret, no replica); everything else - ``AccessDeniedException``,
``InvalidParameterException`` ("Invalid replica region.", a replica of a replica),
``InvalidRequestException`` (the secret is scheduled for deletion) - is terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from ecrcache.adapters.aws import RETRYABLE_CODES, classify, error_code, secretsmanager_client
from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.models.secret_replica import ObservedSecret, SecretReplica, region_of

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from ecrcache.engine.plan import PlannedAction

__all__ = ["READ_OPERATIONS", "SecretsManagerReplicaReader", "SecretsManagerReplication", "observed_secret"]

READ_OPERATIONS: Final = frozenset({"DescribeSecret"})
"""The calls :class:`SecretsManagerReplicaReader` makes (the IAM contract test reads this set)."""
NOT_FOUND: Final = "ResourceNotFoundException"
MAX_MESSAGE: Final = 500


def observed_secret(described: Mapping[str, Any]) -> ObservedSecret:
    """A ``DescribeSecret`` answer as an :class:`ObservedSecret`."""
    arn = str(described["ARN"])
    replicas = {
        str(entry["Region"]): SecretReplica(
            region=str(entry["Region"]),
            status=str(entry.get("Status") or ""),
            message=str(entry["StatusMessage"]) if entry.get("StatusMessage") else None,
        )
        for entry in described.get("ReplicationStatus") or ()
    }
    return ObservedSecret(
        name=str(described["Name"]),
        arn=arn,
        primary_region=str(described.get("PrimaryRegion") or region_of(arn)),
        replicas=replicas,
        deleted=described.get("DeletedDate") is not None,
    )


def _failed(operation: str, exc: Exception) -> ActionResult:
    if isinstance(exc, ParamValidationError):
        return ActionResult.failure("ParamValidationError", f"{operation} request is invalid: {exc}", retryable=False)
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status: Any = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = str(exc.response.get("Error", {}).get("Message", "")) or code
        retryable = code in RETRYABLE_CODES or (isinstance(status, int) and status >= 500)
        return ActionResult.failure(
            code, f"{operation} failed with {code}: {detail}"[:MAX_MESSAGE], retryable=retryable
        )
    return ActionResult.failure(
        type(exc).__name__, f"{operation} failed: {type(exc).__name__}; try again", retryable=True
    )


class SecretsManagerReplicaReader:
    """Implements :class:`ecrcache.ports.SecretReplicaReader` (``DescribeSecret`` only)."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self.client = client or secretsmanager_client()

    def describe(self, name: str) -> ObservedSecret | None:
        try:
            described = self.client.describe_secret(SecretId=name)
        except ClientError as exc:
            if error_code(exc) == NOT_FOUND:
                return None
            raise classify(exc, "Secrets Manager DescribeSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DescribeSecret") from exc
        return observed_secret(described)


class SecretsManagerReplication(SecretsManagerReplicaReader):
    """Implements :class:`ecrcache.ports.SecretReplicator`: the reader, and the replica actions."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        super().__init__(client)
        self._handlers: dict[ActionKind, Callable[[PlannedAction], ActionResult]] = {
            ActionKind.REPLICATE_SECRET: lambda a: self._replicate(a.request),
            ActionKind.REMOVE_REPLICA: lambda a: self._remove(a.request),
            ActionKind.RETRY_REPLICA: self._retry,
        }

    def apply(self, action: PlannedAction) -> ActionResult:
        handler = self._handlers.get(action.kind)
        if handler is None:
            return ActionResult.failure(
                "UnsupportedAction", f"the Secrets Manager adapter cannot apply {action.kind.value}", retryable=False
            )
        return handler(action)

    def _replicate(self, request: Mapping[str, Any]) -> ActionResult:
        try:
            self.client.replicate_secret_to_regions(
                SecretId=str(request["SecretId"]),
                AddReplicaRegions=[{"Region": str(r["Region"])} for r in request["AddReplicaRegions"]],
            )
        except (ClientError, BotoCoreError) as exc:
            return _failed("ReplicateSecretToRegions", exc)
        return ActionResult.success()

    def _remove(self, request: Mapping[str, Any]) -> ActionResult:
        try:
            self.client.remove_regions_from_replication(
                SecretId=str(request["SecretId"]),
                RemoveReplicaRegions=[str(r) for r in request["RemoveReplicaRegions"]],
            )
        except ClientError as exc:
            if error_code(exc) == NOT_FOUND:
                return ActionResult.success(f"RemoveRegionsFromReplication: {NOT_FOUND}, nothing to do")
            return _failed("RemoveRegionsFromReplication", exc)
        except BotoCoreError as exc:
            return _failed("RemoveRegionsFromReplication", exc)
        return ActionResult.success()

    def _retry(self, action: PlannedAction) -> ActionResult:
        """Remove the failed replica, then replicate again (both requests are in the action)."""
        remove, replicate = action.request.get("remove"), action.request.get("replicate")
        if not isinstance(remove, dict) or not isinstance(replicate, dict):
            return ActionResult.failure(
                "InvalidAction", "retry_replica needs a 'remove' and a 'replicate' request", retryable=False
            )
        removed = self._remove(remove)
        if not removed.ok:
            return removed
        return self._replicate(replicate)

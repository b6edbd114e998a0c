"""Upstream credentials in Secrets Manager (``ecr-pullthroughcache/<name>``, AWS-managed key).

A value is written in two phases so that a failed desired-state commit never leaves a new token
in force: :meth:`stage` writes it under a private staging label (or creates the secret, which
nothing references until the commit lands), :meth:`promote` makes it ``AWSCURRENT`` after the
commit, and :meth:`discard` undoes the stage when the commit fails. Secret values are sent, never
read back, logged, or put into an exception message.

Every write goes to the primary, in the stack's Region. Its replicas in other Regions (made by the
reconciler, :mod:`ecrcache.adapters.secret_replication`) need nothing: "the new secret value
propagates to all of the associated replica secrets" (Secrets Manager User Guide, multi-Region
secrets), and a replica "can't be updated independently from its primary secret". Only a delete must
remove them first (:meth:`SecretsManagerStore.delete`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.observability import logger
from ecrcache.ports import StagedSecret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import DescribeSecretResponseTypeDef, TagTypeDef

STAGING_LABEL = "ECRCACHE_PENDING"
MANAGED_TAG: TagTypeDef = {"Key": "ecrcache:managed", "Value": "true"}
RECOVERY_WINDOW_DAYS = 7


class SecretsManagerStore:
    """Implements :class:`ecrcache.ports.SecretStore`.

    A deleted credential's secret is only *scheduled* for deletion (a recovery window of
    :data:`RECOVERY_WINDOW_DAYS`); until then it keeps its name, and Secrets Manager refuses
    ``CreateSecret`` of that name and ``PutSecretValue`` with ``InvalidRequestException`` ("The secret
    is scheduled for deletion", the API reference's first cause) until ``RestoreSecret`` ("When a
    secret is scheduled for deletion, you cannot retrieve the secret value. You must first cancel
    the deletion with RestoreSecret", DeleteSecret). The refusal's text is not documented, so the
    secret's ``DeletedDate`` (DescribeSecret, which works on such a secret) is what is trusted.
    """

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self.client = client or secretsmanager_client()

    def stage(self, name: str, secret_string: str, *, request_token: str) -> StagedSecret:
        """Create the secret, or put the value under the staging label of the existing one; a secret
        scheduled for deletion is restored first, and scheduled again if the value cannot be put."""
        try:
            created = self.client.create_secret(
                Name=name,
                SecretString=secret_string,
                ClientRequestToken=request_token,
                Description="Upstream registry credential for ECR pull-through cache, managed by ecrcache",
                Tags=[MANAGED_TAG],
            )
            return StagedSecret(name=name, arn=created["ARN"], version_id=created["VersionId"], created=True)
        except ClientError as exc:
            restored = self._restore_refused(name, exc)
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager CreateSecret") from exc
        try:
            put = self.client.put_secret_value(
                SecretId=name,
                SecretString=secret_string,
                ClientRequestToken=request_token,
                VersionStages=[STAGING_LABEL],
            )
        except (ClientError, BotoCoreError) as exc:
            error = classify(exc, "Secrets Manager PutSecretValue")
            if restored and not self._reschedule_quietly(name):
                # The caller must know: the deleted credential's secret is readable again until someone acts.
                error = type(error)(
                    f"{error.message}; the secret {name} was restored to be written and could not be scheduled "
                    "for deletion again: delete it (aws secretsmanager delete-secret) or repeat the request",
                    error.details,
                    reason=error.reason,
                )
            raise error from exc
        return StagedSecret(name=name, arn=put["ARN"], version_id=put["VersionId"], created=False, restored=restored)

    def _restore_refused(self, name: str, exc: ClientError) -> bool:
        """After ``CreateSecret`` refused ``name``: ``False`` when the secret simply exists, ``True``
        once a secret scheduled for deletion is restored; any other refusal is raised."""
        code = error_code(exc)
        if code == "ResourceExistsException":
            return False
        if code == "InvalidRequestException" and self._scheduled_for_deletion(name):
            self.restore(name)
            return True
        raise classify(exc, "Secrets Manager CreateSecret") from exc

    def _reschedule_quietly(self, name: str) -> bool:
        """Undo a restore of this request after a failure it reports: the secret goes back to being
        scheduled for deletion (a new recovery window). A failure here is logged and returned (``False``),
        never raised over the failure being reported."""
        try:
            self.client.delete_secret(SecretId=name, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
        except (ClientError, BotoCoreError) as exc:
            logger.error(
                "could not schedule the deletion of a restored secret again",
                extra={"secret_name": name, "error": str(classify(exc, "Secrets Manager DeleteSecret"))},
            )
            return False
        return True

    def promote(self, staged: StagedSecret) -> None:
        if staged.created:
            return
        try:
            stages = self.client.describe_secret(SecretId=staged.arn).get("VersionIdsToStages", {})
            current = next((v for v, labels in stages.items() if "AWSCURRENT" in labels), None)
            if current != staged.version_id:
                kwargs = {"RemoveFromVersionId": current} if current else {}
                self.client.update_secret_version_stage(
                    SecretId=staged.arn, VersionStage="AWSCURRENT", MoveToVersionId=staged.version_id, **kwargs
                )
            self.client.update_secret_version_stage(
                SecretId=staged.arn, VersionStage=STAGING_LABEL, RemoveFromVersionId=staged.version_id
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager UpdateSecretVersionStage") from exc

    def discard(self, staged: StagedSecret) -> None:
        """Undo :meth:`stage`: remove a secret it created, or the staging label it put; a secret it
        restored is scheduled for deletion again (its credential is still deleted)."""
        try:
            if staged.created:
                self.client.delete_secret(SecretId=staged.arn, ForceDeleteWithoutRecovery=True)
                return
            self.client.update_secret_version_stage(
                SecretId=staged.arn, VersionStage=STAGING_LABEL, RemoveFromVersionId=staged.version_id
            )
        except (ClientError, BotoCoreError) as exc:
            if staged.restored:
                self._reschedule_quietly(staged.arn)
            raise classify(exc, "Secrets Manager (undo staged value)") from exc
        if staged.restored:
            try:
                self.client.delete_secret(SecretId=staged.arn, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "Secrets Manager DeleteSecret (undo a restore)") from exc

    def delete(self, name: str) -> bool:
        """Schedule the secret's deletion; ``False`` when there was nothing to schedule (gone, or
        already scheduled, e.g. from the console).

        Its replicas go first: "You can't delete a primary secret that is replicated to other Regions.
        You must first delete the replicas using RemoveRegionsFromReplication, and then delete the
        primary secret. When you delete a replica, it is deleted immediately" (DeleteSecret, API
        reference); AWS answers ``InvalidParameterException`` "You can't delete secret <arn> that still
        has replica regions [...]" otherwise (reported in gruntwork-io/cloud-nuke#435,
        rebuy-de/aws-nuke#1127). A replica removed here is not restored by :meth:`restore`: the
        reconciler replicates the secret again wherever a rule still wants it."""
        self._remove_replicas(name)
        try:
            self.client.delete_secret(SecretId=name, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                return False
            if code == "InvalidRequestException" and self._scheduled_for_deletion(name):
                return False
            raise classify(exc, "Secrets Manager DeleteSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DeleteSecret") from exc
        return True

    def replica_regions(self, name: str) -> tuple[str, ...]:
        described = self._describe(name)
        if described is None:
            return ()
        return tuple(sorted(str(r["Region"]) for r in described.get("ReplicationStatus", [])))

    def _remove_replicas(self, name: str) -> None:
        """``RemoveRegionsFromReplication`` for every replica of ``name`` (nothing when it has none)."""
        regions = list(self.replica_regions(name))
        if not regions:
            return
        try:
            self.client.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=regions)
        except (ClientError, BotoCoreError) as exc:
            error = classify(exc, "Secrets Manager RemoveRegionsFromReplication")
            raise type(error)(
                f"{error.message}: the replicas of {name} in {', '.join(regions)} must go before the secret is "
                "scheduled for deletion; nothing was deleted",
                error.details,
                reason=error.reason,
            ) from exc
        logger.info(
            "removed the replicas of a deleted credential's secret", extra={"secret_name": name, "regions": regions}
        )

    def restore(self, name: str) -> None:
        try:
            self.client.restore_secret(SecretId=name)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise classify(exc, "Secrets Manager RestoreSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager RestoreSecret") from exc

    def existing_arn(self, name: str) -> str | None:
        described = self._describe(name)
        if described is None or described.get("DeletedDate") is not None:
            return None
        return described["ARN"]

    def _scheduled_for_deletion(self, name: str) -> bool:
        described = self._describe(name)
        return described is not None and described.get("DeletedDate") is not None

    def _describe(self, name: str) -> DescribeSecretResponseTypeDef | None:
        """``DescribeSecret`` (it answers for a secret scheduled for deletion too); ``None`` when there is none."""
        try:
            return self.client.describe_secret(SecretId=name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise classify(exc, "Secrets Manager DescribeSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DescribeSecret") from exc

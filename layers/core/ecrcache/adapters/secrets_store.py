"""Upstream credentials in Secrets Manager (``ecr-pullthroughcache/<name>``, AWS-managed key).

A value is written in two phases so that a failed desired-state commit never leaves a new token
in force: :meth:`stage` writes it under a private staging label (or creates the secret, which
nothing references until the commit lands), :meth:`promote` makes it ``AWSCURRENT`` after the
commit, and :meth:`discard` undoes the stage when the commit fails. Secret values are sent, never
read back, logged, or put into an exception message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.ports import StagedSecret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef

STAGING_LABEL = "ECRCACHE_PENDING"
MANAGED_TAG: TagTypeDef = {"Key": "ecrcache:managed", "Value": "true"}
RECOVERY_WINDOW_DAYS = 7


def _marked_for_deletion(exc: ClientError) -> bool:
    """Secrets Manager's InvalidRequestException for a secret scheduled for deletion (its only signal)."""
    text = str(exc).lower()
    return "marked deleted" in text or "scheduled for deletion" in text or "marked for deletion" in text


class SecretsManagerStore:
    """Implements :class:`ecrcache.ports.SecretStore`."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self.client = client or secretsmanager_client()

    def stage(self, name: str, secret_string: str, *, request_token: str) -> StagedSecret:
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
            code = error_code(exc)
            if code == "InvalidRequestException" and _marked_for_deletion(exc):
                self.restore(name)
            elif code != "ResourceExistsException":
                raise classify(exc, "Secrets Manager CreateSecret") from exc
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
            raise classify(exc, "Secrets Manager PutSecretValue") from exc
        return StagedSecret(name=name, arn=put["ARN"], version_id=put["VersionId"], created=False)

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
        try:
            if staged.created:
                self.client.delete_secret(SecretId=staged.arn, ForceDeleteWithoutRecovery=True)
            else:
                self.client.update_secret_version_stage(
                    SecretId=staged.arn, VersionStage=STAGING_LABEL, RemoveFromVersionId=staged.version_id
                )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager (undo staged value)") from exc

    def delete(self, name: str) -> bool:
        """Schedule the secret's deletion; ``False`` when there was nothing to schedule (gone, or
        already scheduled, e.g. from the console)."""
        try:
            self.client.delete_secret(SecretId=name, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                return False
            if code == "InvalidRequestException" and _marked_for_deletion(exc):
                return False
            raise classify(exc, "Secrets Manager DeleteSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DeleteSecret") from exc
        return True

    def restore(self, name: str) -> None:
        try:
            self.client.restore_secret(SecretId=name)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise classify(exc, "Secrets Manager RestoreSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager RestoreSecret") from exc

    def existing_arn(self, name: str) -> str | None:
        try:
            described = self.client.describe_secret(SecretId=name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise classify(exc, "Secrets Manager DescribeSecret") from exc
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DescribeSecret") from exc
        if described.get("DeletedDate") is not None:
            return None
        return described["ARN"]

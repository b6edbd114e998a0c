"""A credential secret's versions and staging labels, as the rotation function moves them.

The calls are those of AWS's rotation template (``SecretsManagerRotationTemplate``) and of the execution role
the Secrets Manager user guide gives a rotation function ("Lambda rotation function execution role
permissions": ``DescribeSecret``, ``GetSecretValue``, ``PutSecretValue``, ``UpdateSecretVersionStage``; no
``kms:*``: the secrets ECR reads are encrypted with the AWS managed key ``aws/secretsmanager``, ecr-facts §2).
The secrets are the function's own Region's: Secrets Manager invokes the rotation function of a secret in its
Region, and replicas follow their primary (a replica cannot be rotated itself).

This is the only adapter that reads a secret value back (the pending token is tested, a scheduled re-test
stages the current one again): a value travels as a ``SecretStr`` and is never logged or put in an error
(:func:`~ecrcache.adapters.aws.classify` builds messages from error codes only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.models.rotation import AWSCURRENT, AWSPENDING, SecretVersions

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import DescribeSecretResponseTypeDef

__all__ = ["SecretsManagerRotation", "versions_of"]


def versions_of(out: DescribeSecretResponseTypeDef) -> SecretVersions:
    """``DescribeSecret``'s answer as the rotation reads it."""
    stages = {version: frozenset(labels) for version, labels in out.get("VersionIdsToStages", {}).items()}
    status = {str(r["Region"]): str(r.get("Status", "")) for r in out.get("ReplicationStatus", []) if r.get("Region")}
    enabled = bool(out.get("RotationEnabled"))
    return SecretVersions(out["ARN"], out["Name"], enabled, stages, tuple(status), status)


class SecretsManagerRotation:
    """Implements :class:`ecrcache.ports.RotationSecrets`."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self.client = client or secretsmanager_client()

    def describe(self, secret_id: str) -> SecretVersions:
        try:
            out = self.client.describe_secret(SecretId=secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager DescribeSecret") from exc
        return versions_of(out)

    def pending_value(self, secret_id: str, token: str) -> SecretStr | None:
        """The value staged ``AWSPENDING`` under ``token``; ``None`` when the version holds none yet (Secrets
        Manager's ``RotateSecret`` makes it empty; ``createSecret`` fills it)."""
        try:
            out = self.client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage=AWSPENDING)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise classify(exc, "Secrets Manager GetSecretValue (AWSPENDING)") from None
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager GetSecretValue (AWSPENDING)") from None
        return SecretStr(out.get("SecretString", ""))

    def current_value(self, secret_id: str) -> SecretStr:
        try:
            out = self.client.get_secret_value(SecretId=secret_id, VersionStage=AWSCURRENT)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager GetSecretValue (AWSCURRENT)") from None
        return SecretStr(out.get("SecretString", ""))

    def version_value(self, secret_id: str, version: str) -> SecretStr:
        try:
            out = self.client.get_secret_value(SecretId=secret_id, VersionId=version)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager GetSecretValue (previous version)") from None
        return SecretStr(out.get("SecretString", ""))

    def stage_pending(self, secret_id: str, token: str, value: SecretStr) -> None:
        """Put ``value`` as version ``token`` labelled ``AWSPENDING`` (idempotent for the same value)."""
        try:
            self.client.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=token,
                SecretString=value.get_secret_value(),
                VersionStages=[AWSPENDING],
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager PutSecretValue (AWSPENDING)") from None

    def unstage_pending(self, secret_id: str, token: str) -> None:
        """Take ``AWSPENDING`` off version ``token``: a pending version left behind blocks the next rotation."""
        self._move(secret_id, AWSPENDING, remove_from=token, what="remove AWSPENDING")

    def unstage(self, secret_id: str, *, version: str, label: str) -> None:
        """Take the private label of a token staged through the API off its version (``createSecret`` copied it
        into the pending version): the version then has no label, and Secrets Manager deletes it in time."""
        self._move(secret_id, label, remove_from=version, what="remove the staged token's label")

    def move_current(self, secret_id: str, *, to_version: str, from_version: str) -> None:
        """``AWSCURRENT`` from ``from_version`` to ``to_version``; Secrets Manager moves ``AWSPREVIOUS`` to
        ``from_version`` by itself (UpdateSecretVersionStage)."""
        self._move(secret_id, AWSCURRENT, move_to=to_version, remove_from=from_version, what="move AWSCURRENT")

    def _move(
        self, secret_id: str, label: str, *, move_to: str | None = None, remove_from: str | None = None, what: str
    ) -> None:
        try:
            if move_to is None:
                self.client.update_secret_version_stage(
                    SecretId=secret_id, VersionStage=label, RemoveFromVersionId=str(remove_from)
                )
            else:
                self.client.update_secret_version_stage(
                    SecretId=secret_id,
                    VersionStage=label,
                    MoveToVersionId=move_to,
                    RemoveFromVersionId=str(remove_from),
                )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Secrets Manager UpdateSecretVersionStage ({what})") from exc

"""How the API starts a rotation of a credential secret with a token staged through it.

Secrets Manager refuses ``RotateSecret`` while ``AWSPENDING`` is on a version other than ``AWSCURRENT`` ("any
later invocation of RotateSecret assumes that a previous rotation request is still in progress and returns an
error", RotateSecret API reference), so the token is not put as ``AWSPENDING``: it goes into a version of its
own under a private staging label (``ecrcache-staged-<rotation id>``), and the rotation function's
``createSecret`` copies it into the pending version Secrets Manager makes.

``RotateSecret`` with ``RotationLambdaARN`` configures the secret's rotation and starts one ("If you include the
configuration parameters, the operation sets the values for the secret and then immediately starts a rotation",
RotateSecret API reference); the secret is then ``RotationEnabled`` (reported, not documented: Terraform's
``aws_secretsmanager_secret`` -- "adding rotation_lambda_arn will enable rotation",
hashicorp/terraform-provider-aws#4349), which the rotation function's guard checks. The caller also needs
``lambda:InvokeFunction`` on the rotation function ("You also need lambda:InvokeFunction permissions on the
rotation function", same page).

The token travels as a ``SecretStr`` and is only taken out for ``PutSecretValue``; errors name the call and AWS's
error code (:func:`~ecrcache.adapters.aws.classify`), never a value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.adapters.secret_rotation import versions_of
from ecrcache.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pydantic import SecretStr

    from ecrcache.models.rotation import SecretVersions

__all__ = ["SecretsManagerRotationStart"]

IN_PROGRESS_REFUSAL = (
    "Secrets Manager refused to start the rotation (InvalidRequestException): a previous rotation of the secret "
    "is still in progress (AWSPENDING is on a version that is not AWSCURRENT), or the secret cannot be rotated "
    "now (scheduled for deletion)"
)


class SecretsManagerRotationStart:
    """Implements :class:`ecrcache.ports.RotationStarter`."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self.client = client or secretsmanager_client()

    def describe(self, secret_id: str) -> SecretVersions:
        """The secret's versions; :class:`~ecrcache.errors.NotFoundError` when there is no such secret."""
        try:
            return versions_of(self.client.describe_secret(SecretId=secret_id))
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NotFoundError(f"the secret {secret_id} does not exist") from None
            raise classify(exc, "Secrets Manager DescribeSecret") from None
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DescribeSecret") from None

    def stage(self, secret_id: str, *, version: str, label: str, value: SecretStr) -> None:
        try:
            self.client.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=version,
                SecretString=value.get_secret_value(),
                VersionStages=[label],
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager PutSecretValue (staged token)") from None

    def unstage(self, secret_id: str, *, version: str, label: str) -> None:
        try:
            self.client.update_secret_version_stage(SecretId=secret_id, VersionStage=label, RemoveFromVersionId=version)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager UpdateSecretVersionStage (remove the staged token's label)") from None

    def rotate(self, secret_id: str, *, token: str, function_arn: str, schedule: str | None) -> None:
        request: dict[str, Any] = {
            "SecretId": secret_id,
            "ClientRequestToken": token,
            "RotationLambdaARN": function_arn,
            "RotateImmediately": True,
        }
        if schedule is not None:
            request["RotationRules"] = {"ScheduleExpression": schedule}
        try:
            self.client.rotate_secret(**request)
        except ClientError as exc:
            if error_code(exc) == "InvalidRequestException":
                raise ConflictError(IN_PROGRESS_REFUSAL, reason="InvalidRequestException") from None
            raise classify(exc, "Secrets Manager RotateSecret") from None
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager RotateSecret") from None

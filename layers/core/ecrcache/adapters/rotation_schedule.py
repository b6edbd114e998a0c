"""A credential secret's rotation schedule in Secrets Manager, as the reconciler converges it.

* Read: ``DescribeSecret`` (``RotationEnabled``, ``RotationLambdaARN``, ``RotationRules``, the versions' labels).
* Set: ``RotateSecret(RotationLambdaARN, RotationRules={ScheduleExpression}, RotateImmediately=False)`` -- "Specifies
  whether to rotate the secret immediately or wait until the next scheduled rotation window ... if you don't
  immediately rotate the secret, Secrets Manager tests the rotation configuration by running the testSecret step of
  the Lambda rotation function" (RotateSecret API reference, ``RotateImmediately``); the caller needs
  ``lambda:InvokeFunction`` on the function (same page). The rotation function answers that test without changing
  anything (:mod:`ecrcache.services.rotation`).
* Sweep: ``UpdateSecretVersionStage(RemoveFromVersionId)`` takes ``AWSPENDING`` or a staged token's label off the
  version of a rotation that was abandoned (:mod:`ecrcache.services.rotation_sweeper`).
* Remove: ``CancelRotateSecret`` ("Turns off automatic rotation, and if a rotation is currently in progress, cancels
  the rotation", CancelRotateSecret API reference) -- which is why nothing is called while one is in progress.

No value is read. Errors name the call and AWS's error code (:func:`~ecrcache.adapters.aws.classify`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code, secretsmanager_client
from ecrcache.adapters.secret_rotation import versions_of
from ecrcache.engine.rotation_schedule import ObservedRotation
from ecrcache.models.common import normalise_rotation_schedule
from ecrcache.models.rotation import rotation_in_progress

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import DescribeSecretResponseTypeDef

__all__ = ["SecretsManagerRotationSchedule"]


def _schedule(out: DescribeSecretResponseTypeDef) -> str | None:
    """The secret's schedule as a credential writes it (``AutomaticallyAfterDays: N`` -> ``rate(N days)``); an
    expression this project would not write is kept as given (it differs from any wanted one: it is replaced)."""
    rules = out.get("RotationRules") or {}
    expression = rules.get("ScheduleExpression")
    days = rules.get("AutomaticallyAfterDays")
    if not expression and days:
        expression = f"rate({days} {'day' if days == 1 else 'days'})"
    if not expression:
        return None
    try:
        return normalise_rotation_schedule(expression)
    except ValueError:
        return expression


class SecretsManagerRotationSchedule:
    """Implements :class:`ecrcache.ports.RotationScheduler`."""

    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self.client = client or secretsmanager_client()

    def observe(self, secret_id: str) -> ObservedRotation | None:
        """The secret's rotation configuration; ``None`` when there is no such secret (yet)."""
        try:
            out = self.client.describe_secret(SecretId=secret_id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise classify(exc, "Secrets Manager DescribeSecret") from None
        except BotoCoreError as exc:
            raise classify(exc, "Secrets Manager DescribeSecret") from None
        versions = versions_of(out)
        return ObservedRotation(
            arn=out["ARN"],
            enabled=bool(out.get("RotationEnabled")),
            schedule=_schedule(out),
            function_arn=out.get("RotationLambdaARN") or None,
            in_progress=rotation_in_progress(versions) is not None,
            versions=versions,
        )

    def set_schedule(self, secret_id: str, *, schedule: str, function_arn: str) -> None:
        try:
            self.client.rotate_secret(
                SecretId=secret_id,
                RotationLambdaARN=function_arn,
                RotationRules={"ScheduleExpression": schedule},
                RotateImmediately=False,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager RotateSecret (schedule)") from None

    def remove_label(self, secret_id: str, *, version: str, label: str) -> None:
        """Take ``label`` (``AWSPENDING``, or a token's private staging label) off ``version``: an abandoned
        rotation's, which would otherwise block every later ``RotateSecret``."""
        try:
            self.client.update_secret_version_stage(SecretId=secret_id, VersionStage=label, RemoveFromVersionId=version)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Secrets Manager UpdateSecretVersionStage (remove {label})") from None

    def cancel(self, secret_id: str) -> None:
        try:
            self.client.cancel_rotate_secret(SecretId=secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "Secrets Manager CancelRotateSecret") from None

"""Secrets Manager's recovery window for moto: a secret scheduled for deletion refuses to be used.

``DeleteSecret`` without ``ForceDeleteWithoutRecovery`` does not delete a secret: it stamps a
``DeletedDate`` and keeps the secret (and its name) until the recovery window ends; ``RestoreSecret``
removes the stamp. Until then AWS refuses to create, write or read it with ``InvalidRequestException``.
moto 5.2.5 gets this wrong where a controller notices: it answers ``CreateSecret`` of that name with
``ResourceExistsException`` and accepts ``PutSecretValue`` and ``UpdateSecretVersionStage``, so a
client's restore path never runs locally and a value "written" there stays unreadable.

What AWS documents (botocore's ``secretsmanager`` model, 2017-10-17, the text of the API reference):

* ``InvalidRequestException``: "A parameter value is not valid for the current state of the
  resource. Possible causes: The secret is scheduled for deletion. ..." It is in the error list of
  ``CreateSecret``, ``PutSecretValue``, ``UpdateSecret``, ``UpdateSecretVersionStage``,
  ``ReplicateSecretToRegions``,
  ``GetSecretValue``, ``TagResource``, ``UntagResource``, ``GetResourcePolicy`` (and others), and
  *not* in those of ``DescribeSecret`` and ``ListSecretVersionIds``: describing a scheduled secret is
  how a caller sees its ``DeletedDate``.
* ``DeleteSecret``: "At any time before recovery window ends, you can use RestoreSecret to remove
  the DeletionDate and cancel the deletion of the secret. When a secret is scheduled for deletion,
  you cannot retrieve the secret value. You must first cancel the deletion with RestoreSecret and
  then you can retrieve the secret."
* ``DescribeSecret.DeletedDate``: "If a secret is scheduled for deletion, then its details,
  including the encrypted secret value, is not accessible. To cancel a scheduled deletion and
  restore access to the secret, use RestoreSecret."

The messages are AWS's as reported (they are not documented):

* ``CreateSecret``: "You can't create this secret because a secret with this name is already
  scheduled for deletion." (hashicorp/terraform-provider-aws#8219, aws/copilot-cli#655; localstack
  patches moto with the same text after checking it against AWS, localstack/localstack#6547);
* every other refused operation: "You can't perform this operation on the secret because it was
  marked for deletion." (``GetSecretValue``: external-secrets/external-secrets#4560;
  ``GetResourcePolicy``: hashicorp/terraform-provider-aws#23998). For ``TagResource`` and
  ``UntagResource`` only the code is known (localstack/localstack#13662, checked against AWS); the
  text is the same here [?].

Left as moto has them: ``DescribeSecret`` and ``ListSecrets`` (show ``DeletedDate``),
``RestoreSecret``, ``DeleteSecret`` (a second one without ``ForceDeleteWithoutRecovery`` is already an
``InvalidRequestException`` in moto; with it, the secret goes at once), ``RotateSecret`` (moto
already refuses). Module name: see the package docstring (it must not start with "moto").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final

from moto.secretsmanager.exceptions import InvalidRequestException
from moto.secretsmanager.models import SecretsManagerBackend

from devstack.aws.common import PATCH_MARK

__all__ = ["CREATE_MESSAGE", "MARKED_MESSAGE", "REFUSED", "install", "scheduled_for_deletion"]

CREATE_MESSAGE: Final = (
    "You can't create this secret because a secret with this name is already scheduled for deletion."
)
MARKED_MESSAGE: Final = "You can't perform this operation on the secret because it was marked for deletion."

#: moto backend method -> (the parameter naming the secret, the message AWS answers).
REFUSED: Final[dict[str, tuple[str, str]]] = {
    "create_secret": ("name", CREATE_MESSAGE),
    "put_secret_value": ("secret_id", MARKED_MESSAGE),
    "replicate_secret_to_regions": ("secret_id", MARKED_MESSAGE),
    "update_secret": ("secret_id", MARKED_MESSAGE),
    "update_secret_version_stage": ("secret_id", MARKED_MESSAGE),
    "get_secret_value": ("secret_id", MARKED_MESSAGE),
    "get_resource_policy": ("secret_id", MARKED_MESSAGE),
    "tag_resource": ("arn", MARKED_MESSAGE),
    "untag_resource": ("arn", MARKED_MESSAGE),
}


def scheduled_for_deletion(backend: SecretsManagerBackend, secret_id: str) -> bool:
    """Whether ``secret_id`` (a name, full or partial ARN) names a secret inside its recovery window."""
    secret = backend.secrets.get(secret_id)
    return secret is not None and secret.is_deleted()


def _refusing(original: Callable[..., Any], parameter: str, message: str) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def refusing(self: SecretsManagerBackend, *args: Any, **kwargs: Any) -> Any:
        secret_id = signature.bind(self, *args, **kwargs).arguments.get(parameter)
        if isinstance(secret_id, str) and scheduled_for_deletion(self, secret_id):
            raise InvalidRequestException(message)
        return original(self, *args, **kwargs)

    setattr(refusing, PATCH_MARK, True)
    return refusing


def install() -> None:
    """Wrap moto's Secrets Manager backend methods once (idempotent, like the ECR extension)."""
    for name, (parameter, message) in REFUSED.items():
        current = getattr(SecretsManagerBackend, name)
        if getattr(current, PATCH_MARK, False):
            continue
        setattr(SecretsManagerBackend, name, _refusing(current, parameter, message))

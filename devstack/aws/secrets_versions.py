"""Secrets Manager's staging labels as AWS documents them, where moto 5.2.5's ``UpdateSecretVersionStage`` strays.

What AWS documents (botocore's ``secretsmanager`` model 2017-10-17):

* ``GetSecretValue``: "If you don't specify either a VersionStage or VersionId, Secrets Manager returns the
  AWSCURRENT version."
* ``UpdateSecretVersionStage``: "Each staging label can be attached to only one version at a time";
  ``RemoveFromVersionId``: "If the staging label you are trying to attach to one version is already attached to a
  different version, then you must include this parameter and specify the version that the label is to be removed
  from. If the label is attached and you either do not specify this parameter, or the version ID does not match,
  then the operation fails."

Where moto strays (and what this module fixes, by wrapping ``SecretsManagerBackend.update_secret_version_stage``):

* **Stale reads.** moto's ``get_secret_value`` without a version or stage reads the secret's
  ``default_version_id``, which only ``CreateSecret`` / ``PutSecretValue`` / ``UpdateSecret`` set:
  ``UpdateSecretVersionStage`` moving ``AWSCURRENT`` (a rotation function's ``finishSecret``, a rollback) leaves it
  on the old version, so the next plain ``GetSecretValue`` returns the previous value. After every call the
  default read is set to the version that now carries ``AWSCURRENT``.
* **A label on two versions.** moto refuses a missing ``RemoveFromVersionId`` only for ``AWSCURRENT``; moving
  ``AWSPENDING`` (or any other label) onto a version while another version holds it appends it there too, and a
  read by ``VersionStage`` then returns whichever version moto's dict lists first. Refused here for every label,
  with moto's own wording of the ``AWSCURRENT`` case ("The parameter RemoveFromVersionId can't be empty. Staging
  label ... is currently attached to version ..., so you must explicitly reference that version in
  RemoveFromVersionId."); AWS's wording for other labels is not documented [?].
* Moving a label onto the version that already carries it (no ``RemoveFromVersionId``) leaves the labels as they
  are, instead of moto's duplicate entry.

(A ``RemoveFromVersionId`` that does not carry the label is already refused by moto: "Version stage ... not found
in version ...".) Module name: see the package docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from moto.secretsmanager.exceptions import InvalidParameterException
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

from devstack.aws.common import patch_once

__all__ = ["install"]

AWSCURRENT: Final = "AWSCURRENT"
_MARK: Final = "_ecrcache_versions_patch"


def _holder(secret: FakeSecret, label: str) -> str | None:
    """The version carrying ``label``, if any."""
    return next((vid for vid, version in secret.versions.items() if label in version["version_stages"]), None)


def _labels_as_documented(original: Callable[..., tuple[str, str]]) -> Callable[..., tuple[str, str]]:
    @functools.wraps(original)
    def update_secret_version_stage(
        self: SecretsManagerBackend,
        secret_id: str,
        version_stage: str,
        remove_from_version_id: str,
        move_to_version_id: str,
    ) -> tuple[str, str]:
        secret = self.secrets.get(secret_id)
        if isinstance(secret, FakeSecret) and move_to_version_id and not remove_from_version_id:
            holder = _holder(secret, version_stage)
            if holder == move_to_version_id:
                return secret.arn, secret.name
            if holder is not None:
                raise InvalidParameterException(
                    f"The parameter RemoveFromVersionId can't be empty. Staging label {version_stage} is currently "
                    f"attached to version {holder}, so you must explicitly reference that version in "
                    "RemoveFromVersionId."
                )
        answer = original(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        secret = self.secrets[secret_id]
        if isinstance(secret, FakeSecret) and version_stage == AWSCURRENT:
            current = _holder(secret, AWSCURRENT)
            if current is not None:
                secret.set_default_version_id(current)
        return answer

    return update_secret_version_stage


def install() -> None:
    """Wrap moto's ``UpdateSecretVersionStage`` once (idempotent, like the ECR extension)."""
    patch_once(SecretsManagerBackend, "update_secret_version_stage", _labels_as_documented, mark=_MARK)

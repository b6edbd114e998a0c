"""A credential's rotation: Secrets Manager's invocation, the guard every step passes, and the record of a run.

Secrets Manager calls the rotation function once per step, in order, with ``{"Step", "SecretId",
"ClientRequestToken", "RotationToken"}`` (Secrets Manager user guide, "Rotation by Lambda function": the
``ClientRequestToken`` is the new version's id; some of that page writes the steps ``create_secret``... while
the invocations and AWS's own rotation template use ``createSecret``...: both are read). Powertools has a data
class for this event but no parser model: :class:`RotationEvent` is it.

:func:`guard` is the check AWS's rotation template (``SecretsManagerRotationTemplate/lambda_function.py``,
aws-samples/aws-secrets-manager-rotation-lambdas) makes before every step: rotation is enabled, the token is a
version of the secret, a version already ``AWSCURRENT`` needs nothing more, and any other must carry
``AWSPENDING``. Secrets Manager retries a failed rotation several times, so every step is idempotent.

:class:`RotationRecord` is what the state table keeps of one rotation (:mod:`ecrcache.adapters.rotation_store`):
each step's status, time and message, and the final outcome. No secret value is ever part of either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ecrcache.models.credential import SECRET_NAME_PREFIX
from ecrcache.models.secret_replica import ReplicaState, replica_arn

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "STAGED_LABEL_PREFIX",
    "GuardRefused",
    "RotationEvent",
    "RotationKey",
    "RotationOutcome",
    "RotationRecord",
    "RotationStep",
    "SecretVersions",
    "StepRecord",
    "StepStatus",
    "guard",
    "rotation_in_progress",
    "staged_label",
]

AWSCURRENT: Final = "AWSCURRENT"
AWSPENDING: Final = "AWSPENDING"
AWSPREVIOUS: Final = "AWSPREVIOUS"
CLIENT_REQUEST_TOKEN_MIN: Final = 32
CLIENT_REQUEST_TOKEN_MAX: Final = 64
"""``ClientRequestToken`` of ``RotateSecret`` / ``PutSecretValue``: 32-64 characters (botocore's model)."""
STAGED_LABEL_PREFIX: Final = "ecrcache-staged-"
"""A token staged through the API waits on its own version under ``ecrcache-staged-<rotation id>`` (a private
staging label, not ``AWSPENDING``: ``RotateSecret`` refuses to start while ``AWSPENDING`` is on a version other
than ``AWSCURRENT``, RotateSecret API reference). ``createSecret`` copies it into the pending version and takes the
label off."""


def staged_label(rotation_id: str) -> str:
    """The private staging label of the token staged for rotation ``rotation_id`` (52 characters for a uuid4;
    a staging label may have 256)."""
    return f"{STAGED_LABEL_PREFIX}{rotation_id}"


class RotationStep(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


_SNAKE_STEPS: Final = {
    "create_secret": "createSecret",
    "set_secret": "setSecret",
    "test_secret": "testSecret",
    "finish_secret": "finishSecret",
}


def _camel_step(value: Any) -> Any:
    """``create_secret`` (as part of the user guide writes it) -> ``createSecret`` (what AWS sends)."""
    return _SNAKE_STEPS.get(value, value) if isinstance(value, str) else value


class RotationEvent(BaseModel):
    """Secrets Manager's invocation of a rotation step."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    step: Annotated[RotationStep, BeforeValidator(_camel_step)] = Field(alias="Step")
    secret_id: str = Field(alias="SecretId", min_length=1, max_length=2048)
    client_request_token: str = Field(
        alias="ClientRequestToken", min_length=CLIENT_REQUEST_TOKEN_MIN, max_length=CLIENT_REQUEST_TOKEN_MAX
    )
    rotation_token: str | None = Field(
        default=None, alias="RotationToken", min_length=36, max_length=256, pattern=r"^[a-zA-Z0-9\-]+$", repr=False
    )
    """Identifies the request's source; needed only by a function rotating another account's secret (not ours)."""


@dataclass(frozen=True, slots=True)
class RotationKey:
    """Which rotation: the credential, Secrets Manager's ``ClientRequestToken`` for it, and the secret's ARN."""

    credential: str
    rotation_id: str
    secret_arn: str


class StepStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RotationOutcome(StrEnum):
    """How a rotation ended; ``AWSCURRENT`` is a working credential after each."""

    PROMOTED = "promoted"  # the new value is AWSCURRENT and every rule using it validated
    REFUSED = "refused"  # testSecret: the upstream refused the new value (or could not be asked); nothing changed
    ROLLED_BACK = "rolled_back"  # finishSecret: a rule did not validate after promotion; AWSCURRENT moved back
    FAILED = "failed"  # any other step failed (or a guard refused); AWSCURRENT untouched unless the message says


class StepRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: StepStatus
    at: datetime
    message: str | None = None


class RotationRecord(BaseModel):
    """One rotation of a credential (keyed by Secrets Manager's ``ClientRequestToken``), as recorded."""

    model_config = ConfigDict(frozen=True)

    credential: str
    rotation_id: str
    secret_arn: str
    started_at: datetime
    updated_at: datetime
    requested_by: str | None = None
    """Who started it through the API (the caller's IAM ARN); ``None`` for a rotation Secrets Manager started on
    the secret's schedule."""
    steps: dict[RotationStep, StepRecord] = Field(default_factory=dict)
    promoted_at: datetime | None = None
    """When finishSecret moved AWSCURRENT to this version (written just before the move, and the move is not
    made without it: a retry finding the version current without a ``promoted`` outcome validates it again;
    a rollback may have moved it back since)."""
    outcome: RotationOutcome | None = None
    message: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SecretVersions:
    """``DescribeSecret`` as the rotation reads it: which version carries which staging label."""

    arn: str
    name: str
    rotation_enabled: bool
    stages: Mapping[str, frozenset[str]]
    replica_regions: tuple[str, ...] = ()
    replica_status: Mapping[str, str] = field(default_factory=dict)
    """Each replica Region's ``ReplicationStatus[].Status`` (``InSync``, ``InProgress``, ``Failed``...)."""

    @property
    def region(self) -> str:
        """The primary's Region (``arn:aws:secretsmanager:<region>:...``)."""
        return self.arn.split(":")[3]

    @property
    def regions(self) -> tuple[str, ...]:
        """Every Region the secret is in: its own, then its replicas' (each may have rules using it)."""
        return (self.region, *sorted(set(self.replica_regions) - {self.region}))

    def arn_in(self, region: str) -> str:
        """The secret's ARN in ``region``: its replica's there (the primary's ARN, the Region replaced)."""
        return replica_arn(self.arn, region)

    def out_of_sync(self, region: str) -> str | None:
        """Why the secret's copy in ``region`` may not hold the latest labels (a replica receives them
        asynchronously, and one ``Failed`` is not ours), or ``None``: the primary, or an ``InSync`` replica."""
        if region == self.region:
            return None
        status = self.replica_status.get(region) or "status unknown"
        return None if status == ReplicaState.IN_SYNC else f"replica {status}"

    @property
    def credential(self) -> str | None:
        """The credential name of an ``ecr-pullthroughcache/<name>`` secret, else ``None``."""
        name = self.name.removeprefix(SECRET_NAME_PREFIX)
        return name if self.name.startswith(SECRET_NAME_PREFIX) and name else None

    def labelled(self, label: str) -> str | None:
        """The version carrying ``label`` (a staging label is on one version at most)."""
        return next((version for version, labels in self.stages.items() if label in labels), None)


def rotation_in_progress(versions: SecretVersions) -> str | None:
    """The version ``AWSPENDING`` is on when that is not the ``AWSCURRENT`` one: Secrets Manager then takes a
    rotation to be in progress and refuses another (RotateSecret API reference). ``None``: none in progress."""
    pending = versions.labelled(AWSPENDING)
    return pending if pending is not None and pending != versions.labelled(AWSCURRENT) else None


class GuardRefused(ValueError):
    """The step must not run for this token (the template's ``ValueError``s); nothing was changed."""


def guard(versions: SecretVersions, token: str) -> bool:
    """The rotation template's check before every step: ``True`` when the version is already ``AWSCURRENT``
    (nothing left to do), ``False`` when it is ``AWSPENDING`` (the step runs); otherwise :class:`GuardRefused`."""
    if not versions.rotation_enabled:
        raise GuardRefused(f"secret {versions.name} is not enabled for rotation")
    labels = versions.stages.get(token)
    if labels is None:
        raise GuardRefused(f"version {token} of secret {versions.name} has no stage for rotation")
    if AWSCURRENT in labels:
        return True
    if AWSPENDING not in labels:
        raise GuardRefused(
            f"version {token} of secret {versions.name} is not AWSPENDING: another rotation took over, or this "
            "one ended (see its record)"
        )
    return False

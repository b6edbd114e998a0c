"""Upstream registry credentials: the stored metadata, the write-only token, and the secret shape.

A credential named ``<name>`` lives in the Secrets Manager secret ``ecr-pullthroughcache/<name>``
(the only prefix ECR's service-linked role can read) as ``{"username": ..., "accessToken": ...}``.
The token is accepted by :class:`CredentialPut` only: it is a ``SecretStr``, excluded from every
dump, masked in ``repr`` and replaced by ``**********`` in validation errors, wherever the model
is nested.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ecrcache.models.common import (
    Description,
    RotationSchedule,
    normalise_rotation_schedule,
    parse_resource_name,
    raise_field_errors,
)
from ecrcache.models.image_reference import ImageRef
from ecrcache.models.upstream import CREDENTIAL_KINDS, UpstreamKind

SECRET_NAME_PREFIX: Final = "ecr-pullthroughcache/"  # noqa: S105 - a name prefix, not a password
REDACTED: Final = "**********"

CREDENTIAL_ARN_MIN_LENGTH: Final = 50
CREDENTIAL_ARN_MAX_LENGTH: Final = 612
# botocore's CredentialArn pattern (ECR); ``\w`` restricted to ASCII like the service's.
_CREDENTIAL_ARN_RE: Final = re.compile(
    r"^arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache\/[a-zA-Z0-9\/_+=.@-]+$", re.ASCII
)
# Secrets Manager appends ``-`` and six random characters to the name in a secret's ARN.
_SECRET_ARN_RE: Final = re.compile(
    r"^arn:aws(?:-[a-z]+)*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:([A-Za-z0-9/_+=.@-]+)-[A-Za-z0-9]{6}$"
)
SECRET_ARN_PATTERN: Final = r"^arn:aws(?:-[a-z]+)*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$"  # noqa: S105 - a pattern

USERNAME_MAX_LENGTH: Final = 256
USERNAME_PATTERN: Final = r"^[\x21-\x39\x3b-\x7e]{1,256}$"
_USERNAME_RE: Final = re.compile(USERNAME_PATTERN)
TOKEN_MAX_LENGTH: Final = 8192
ROTATION_EVERY_DAYS_MIN: Final = 1
ROTATION_EVERY_DAYS_MAX: Final = 365


def secret_name(name: str) -> str:
    """The Secrets Manager secret name of credential ``name``: ``ecr-pullthroughcache/<name>``."""
    return f"{SECRET_NAME_PREFIX}{parse_resource_name(name)}"


def credential_name_from_arn(arn: str) -> str | None:
    """The credential name in a secret ARN (``…:secret:ecr-pullthroughcache/<name>-AbCdEf``), else ``None``."""
    match = _SECRET_ARN_RE.match(arn)
    if match is None or not match.group(1).startswith(SECRET_NAME_PREFIX):
        return None
    return match.group(1).removeprefix(SECRET_NAME_PREFIX)


def check_credential_arn(arn: str) -> str:
    """Validate an ECR ``credentialArn`` (botocore: 50-612 characters, ``ecr-pullthroughcache/`` secret)."""
    if not CREDENTIAL_ARN_MIN_LENGTH <= len(arn) <= CREDENTIAL_ARN_MAX_LENGTH:
        raise ValueError(f"must be {CREDENTIAL_ARN_MIN_LENGTH}-{CREDENTIAL_ARN_MAX_LENGTH} characters, got {len(arn)}")
    if not _CREDENTIAL_ARN_RE.match(arn):
        raise ValueError(f"must be the ARN of a Secrets Manager secret named {SECRET_NAME_PREFIX}<name>")
    return arn


@dataclass(frozen=True, slots=True)
class UpstreamLogin:
    """A secret's ``{"username", "accessToken"}`` as read back (by the rotation function only): the token stays
    a ``SecretStr``, masked in ``repr`` and ``str``, until the adapter that signs in takes it out."""

    username: str
    token: SecretStr

    @classmethod
    def from_secret_string(cls, value: SecretStr) -> UpstreamLogin:
        """Parse a ``SecretString``; a malformed one raises ``ValueError`` naming the shape, never the value."""
        try:
            data = json.loads(value.get_secret_value())
            username, token = data["username"], data["accessToken"]
        except (ValueError, KeyError, TypeError):
            raise ValueError('the secret value is not {"username", "accessToken"} JSON') from None
        if not isinstance(username, str) or not isinstance(token, str) or not username or not token:
            raise ValueError('the secret value\'s "username" and "accessToken" must be non-empty strings')
        return cls(username, SecretStr(token))


def secret_string(username: str, token: SecretStr | str) -> str:
    """The ``SecretString`` ECR reads: ``{"username": ..., "accessToken": ...}``.

    The result contains the token in clear: pass it straight to Secrets Manager, never log it.
    """
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    return json.dumps({"username": username, "accessToken": value})


# --------------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------------


def _check_username(value: str) -> str:
    if not _USERNAME_RE.match(value):
        raise ValueError(
            f"username must be 1-{USERNAME_MAX_LENGTH} printable ASCII characters without spaces or ':' "
            "(HTTP Basic authentication cannot carry ':' in a user name)"
        )
    return value


Username = Annotated[
    str,
    AfterValidator(_check_username),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": USERNAME_MAX_LENGTH,
            "pattern": USERNAME_PATTERN,
            "examples": ["ci-bot", "my-acr-token"],
        }
    ),
]


def _check_token(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value()
    if not 1 <= len(secret) <= TOKEN_MAX_LENGTH:
        raise ValueError(f"token must be 1-{TOKEN_MAX_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in secret):
        raise ValueError("token must not contain whitespace or control characters (a newline pasted with it?)")
    return value


def _redact_errors(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Re-raise any validation error of the token with its input replaced by ``**********``.

    ``hide_input_in_errors`` only works on the outermost model, so the token redacts itself.
    """
    try:
        return handler(value)
    except ValidationError as exc:
        raise ValidationError.from_exception_data(
            exc.title,
            [
                InitErrorDetails(
                    type=PydanticCustomError(err["type"], "{message}", {"message": err["msg"]}),
                    loc=err["loc"],
                    input=REDACTED,
                )
                for err in exc.errors(include_url=False, include_input=False, include_context=False)
            ],
        ) from None


Token = Annotated[SecretStr, AfterValidator(_check_token), WrapValidator(_redact_errors)]
"""A write-only access token: never dumped, masked in ``repr``, redacted in errors."""


class RotationStrategy(StrEnum):
    """How a credential's token is renewed.

    * ``manual`` — an operator puts a new token (``PUT`` with ``token``); the controller tests it
      against the upstream before promoting it, and warns before ``expires_at``. Works for every
      upstream; the only option for GHCR (classic PATs cannot be minted by API), GitLab, ACR and
      Chainguard. With ``every_days``, the rotation function re-tests the current token against the
      upstream and re-validates the rules using it on that schedule (nothing new can be minted).
    * ``dockerhub-pat`` — on ``schedule`` (or ``every_days``) the rotation Lambda mints a new Docker Hub
      personal access token through the Docker Hub API, logging in with the separate minting secret (a
      pull-only PAT cannot be assumed to create tokens), tests it, promotes it and revokes the old one.
      (Minting is not built yet: until it is, a scheduled rotation re-tests the current token.)
    """

    MANUAL = "manual"
    DOCKERHUB_PAT = "dockerhub-pat"


class RotationSettings(BaseModel):
    """Rotation of a credential's token."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"strategy": "manual"},
                {"every_days": 30},
                {
                    "strategy": "dockerhub-pat",
                    "schedule": "rate(30 days)",
                    "minting_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub-admin-AbCdEf",
                },
            ]
        },
    )

    strategy: RotationStrategy = Field(default=RotationStrategy.MANUAL, description="manual or dockerhub-pat.")
    schedule: RotationSchedule | None = Field(
        default=None,
        description="Secrets Manager rotation schedule; required for dockerhub-pat, not used by manual.",
    )
    every_days: StrictInt | None = Field(
        default=None,
        ge=ROTATION_EVERY_DAYS_MIN,
        le=ROTATION_EVERY_DAYS_MAX,
        # Left out of the stored / exported spec while unset: specs stored before the field existed stay equal.
        exclude_if=lambda value: value is None,
        description=(
            "Rotate every N days (1-365), as Secrets Manager's rate(N days). manual: the rotation function "
            "re-tests the current token against the upstream and re-validates the rules using it. "
            "dockerhub-pat: instead of schedule."
        ),
    )
    minting_secret_arn: Annotated[str, Field(pattern=SECRET_ARN_PATTERN, max_length=2048)] | None = Field(
        default=None,
        description=(
            "dockerhub-pat only: ARN of a secret {username, accessToken} allowed to create Docker Hub access "
            "tokens. It must not be under ecr-pullthroughcache/, which ECR's service-linked role can read."
        ),
    )

    @model_validator(mode="after")
    def _fields_for_strategy(self) -> Self:
        errors = self._manual_errors() if self.strategy is RotationStrategy.MANUAL else self._minting_errors()
        if errors:
            raise_field_errors("RotationSettings", errors)
        return self

    def _manual_errors(self) -> list[tuple[tuple[str | int, ...], str, object]]:
        errors: list[tuple[tuple[str | int, ...], str, object]] = []
        if self.schedule is not None:
            message = "manual rotation has no schedule (an operator puts the token); every_days re-tests it"
            errors.append((("schedule",), message, None))
        if self.minting_secret_arn is not None:
            errors.append((("minting_secret_arn",), "minting_secret_arn is only used by dockerhub-pat", None))
        return errors

    def _minting_errors(self) -> list[tuple[tuple[str | int, ...], str, object]]:
        errors: list[tuple[tuple[str | int, ...], str, object]] = []
        if self.schedule is None and self.every_days is None:
            message = "dockerhub-pat rotation needs a schedule, e.g. rate(30 days), or every_days"
            errors.append((("schedule",), message, None))
        if self.schedule is not None and self.every_days is not None:
            errors.append((("every_days",), "give schedule or every_days, not both", self.every_days))
        if self.minting_secret_arn is None:
            errors.append((("minting_secret_arn",), "dockerhub-pat rotation needs the ARN of a minting secret", None))
        elif f":secret:{SECRET_NAME_PREFIX}" in self.minting_secret_arn:
            errors.append(
                (
                    ("minting_secret_arn",),
                    f"the minting secret must not be under {SECRET_NAME_PREFIX}: ECR's service-linked role "
                    "can read every secret there",
                    self.minting_secret_arn,
                )
            )
        return errors

    def rotation_schedule(self) -> str | None:
        """Secrets Manager's ``RotationRules.ScheduleExpression`` for these settings (``None``: not rotated on a
        schedule): ``every_days`` as ``rate(N days)``, else ``schedule``."""
        if self.every_days is not None:
            unit = "day" if self.every_days == 1 else "days"
            return normalise_rotation_schedule(f"rate({self.every_days} {unit})")
        return self.schedule


RATE_LIMIT_MAX_REQUESTS: Final = 1_000_000
RATE_LIMIT_MAX_WINDOW_SECONDS: Final = 7 * 86_400


class RateLimit(BaseModel):
    """The upstream's pull rate limit for this credential: ``requests`` per ``window_seconds``.

    Warm runs (and credential checks) take their upstream requests from one token bucket per upstream
    registry that refills at this rate. Without it the upstream kind's published default applies
    (Docker Hub: 200 per 6 hours for a free account); a paid Docker Hub plan is unlimited under fair use,
    so set what you are willing to spend.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"examples": [{"requests": 200, "window_seconds": 21600}]}
    )

    requests: StrictInt = Field(
        ge=1, le=RATE_LIMIT_MAX_REQUESTS, description="Requests allowed per window (1-1,000,000)."
    )
    window_seconds: StrictInt = Field(
        ge=1,
        le=RATE_LIMIT_MAX_WINDOW_SECONDS,
        description="The window in seconds (1-604,800, a week); Docker Hub's is 21,600 (6 hours).",
    )


class CredentialSpec(BaseModel):
    """The stored metadata of a credential (everything but the token)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "upstream_kind": "docker-hub",
                    "username": "ci-bot",
                    "expires_at": "2027-06-30",
                    "rotation": {"strategy": "manual"},
                    "description": "Docker Hub PAT of the CI bot account",
                }
            ]
        },
    )

    upstream_kind: UpstreamKind = Field(
        description="The upstream the credential is for; only kinds that take a credential."
    )
    username: Username = Field(
        description="User name, token name (ACR) or pull-token id (Chainguard) sent as the secret's username."
    )
    expires_at: date | None = Field(
        default=None,
        description="When the token expires (UTC date); the controller warns ahead of it.",
        examples=["2027-06-30"],
    )
    rotation: RotationSettings = Field(default_factory=RotationSettings, description="How the token is renewed.")
    description: Description | None = Field(default=None, description="Free text, at most 256 characters.")
    rate_limit: RateLimit | None = Field(
        default=None,
        # Left out of the stored / exported spec while unset: specs stored before the field existed stay equal.
        exclude_if=lambda value: value is None,
        description=(
            "The upstream's pull rate limit for this account, which warming spends from (omit: the upstream "
            "kind's published default, e.g. Docker Hub 200 per 6 hours)."
        ),
    )

    probe: ImageRef | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description=(
            "The image (repository:tag at the upstream) the rotation function asks for to test a new token; "
            "omit: the upstream kind's default (Azure: /v2/ only). Name one the token can pull, e.g. a private "
            "repository of the user's own registry."
        ),
        examples=["team/app:latest"],
    )

    @model_validator(mode="after")
    def _kind_takes_credential(self) -> Self:
        errors: list[tuple[tuple[str | int, ...], str, object]] = []
        if self.upstream_kind not in CREDENTIAL_KINDS:
            kinds = ", ".join(sorted(k.value for k in CREDENTIAL_KINDS))
            errors.append(
                (
                    ("upstream_kind",),
                    f"upstream_kind {self.upstream_kind.value!r} takes no credential; credentials are for {kinds}",
                    self.upstream_kind.value,
                )
            )
        if (
            self.rotation.strategy is RotationStrategy.DOCKERHUB_PAT
            and self.upstream_kind is not UpstreamKind.DOCKER_HUB
        ):
            errors.append(
                (
                    ("rotation", "strategy"),
                    "dockerhub-pat rotation is only for upstream_kind 'docker-hub'",
                    self.rotation.strategy.value,
                )
            )
        if errors:
            raise_field_errors(type(self).__name__, errors)
        return self


class CredentialPut(CredentialSpec):
    """A credential as written through the API: the metadata plus the write-only ``token``.

    ``token`` omitted keeps the stored secret value (metadata-only update). It never appears in
    ``model_dump``/``model_dump_json`` (excluded), ``repr`` (masked) or validation errors (redacted).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "upstream_kind": "github-container-registry",
                    "username": "octo-ci",
                    "token": "REPLACE_WITH_CLASSIC_PAT",
                    "expires_at": "2027-01-31",
                }
            ]
        },
    )

    token: Token | None = Field(
        default=None,
        exclude=True,
        description="Access token (PAT, ACR token password, pull-token secret). Write-only: never returned.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _redact_inputs(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Redact the input of every error: a malformed body (a list, a string) would otherwise be
        echoed whole, token included, by any container that does not hide inputs."""
        return _redact_errors(data, handler)

    def spec(self) -> CredentialSpec:
        """The metadata to store (no token)."""
        return CredentialSpec.model_validate(self.model_dump())

    def secret_string(self) -> str | None:
        """The ``SecretString`` for Secrets Manager, or ``None`` when no token was given."""
        return None if self.token is None else secret_string(self.username, self.token)


class RotationRequest(BaseModel):
    """``POST /v1/credentials/{name}/rotations``: the new token (write-only) and, optionally, a new username.

    The token never appears in ``model_dump`` (excluded), ``repr`` (masked) or validation errors (redacted).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"token": "REPLACE_WITH_NEW_TOKEN"}, {"token": "...", "username": "ci-bot-2"}]},
    )

    token: Token = Field(
        exclude=True,
        description=(
            "The new access token, tested against the upstream before it becomes current. Write-only: never returned."
        ),
    )
    username: Username | None = Field(
        default=None, description="A new username to go with the token (omit: the credential's username)."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _redact_inputs(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Redact the input of every error, as :class:`CredentialPut` does."""
        return _redact_errors(data, handler)

    def secret_string(self, username: str) -> str:
        """The ``SecretString`` to stage: ``{"username": <the new or ``username``>, "accessToken": <token>}``."""
        return secret_string(self.username or username, self.token)

"""Settings, read once per cold start from the environment (the only module that reads it).

One model per function, composed from mixins; ``tests/contract`` checks that the environment
variables ``template.yaml`` sets for each function are exactly the fields of its model.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, Json, field_validator, model_validator

from ecrcache.models.shard_limits import DEFAULT_SHARD_DEADLINE_SECONDS, DEFAULT_SHARD_SIZE, MAX_SHARD_SIZE


class _Settings(BaseModel):
    # Built on first use (defer_build): a function validates one settings class, at import; the others here (the
    # mixins, the other functions' settings) are never built in it (issue 13: cold start).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls) -> Self:
        return cls.model_validate({name.lower(): value for name, value in os.environ.items()})


class TableSettings(_Settings):
    table_name: str = Field(min_length=3, max_length=255)


PRINCIPAL_ARN_MAX_LENGTH: Final = 200
# botocore ECR model, shape ``PrincipalArn`` (Register/Deregister/ListPullTimeUpdateExclusions), narrowed to
# roles: ``^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$`` (``\w`` is ASCII there).
_WARMER_ROLE_ARN_RE: Final = re.compile(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[\w+=,.@-]+(/[\w+=,.@-]+)*$", re.ASCII)


class WarmerRoleSettings(_Settings):
    warmer_role_arn: str = Field(
        default="",
        max_length=PRINCIPAL_ARN_MAX_LENGTH,
        description=(
            "IAM role ARN of the warm worker: its pulls are not counted, and the reconciler keeps it registered "
            "as a pull-time update exclusion (RegisterPullTimeUpdateExclusion) in every Region a desired rule "
            "names, so warming never moves lastRecordedPullTime. Empty: none (the feature is off)."
        ),
    )

    @field_validator("warmer_role_arn")
    @classmethod
    def _role_arn(cls, value: str) -> str:
        """Empty, or what ECR takes as an exclusion's ``principalArn`` (a role: the warm worker runs as one)."""
        if value and not _WARMER_ROLE_ARN_RE.match(value):
            msg = (
                "must be empty or an IAM role ARN as ECR's RegisterPullTimeUpdateExclusion takes it: "
                "arn:aws:iam::<12-digit account>:role/[<path>/]<name>"
            )
            raise ValueError(msg)
        return value


_FUNCTION_ARN_RE: Final = re.compile(r"^arn:aws(-[a-z]+)*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}$")


class RotatorArnSettings(_Settings):
    rotator_function_arn: str = Field(
        default="",
        max_length=2048,
        description=(
            "ARN of the rotation function (RotateSecret's RotationLambdaARN, template: !GetAtt RotatorFunction.Arn). "
            "Empty: rotations cannot be started through the API and no rotation schedule is set."
        ),
    )

    @field_validator("rotator_function_arn")
    @classmethod
    def _function_arn(cls, value: str) -> str:
        if value and not _FUNCTION_ARN_RE.match(value):
            raise ValueError(
                "must be empty or a Lambda function ARN: arn:aws:lambda:<region>:<account>:function:<name>"
            )
        return value


# template.yaml, parameter EcrRolePath's AllowedPattern (an IAM path: IAM API Reference, "Role", Path).
_ROLE_PATH_RE: Final = re.compile(r"^/([A-Za-z0-9+=,.@_-]+/)*$")


class EcrRolePathSettings(_Settings):
    ecr_role_path: str = Field(
        default="/",
        max_length=512,
        description=(
            "IAM path of the roles rules and creation templates may name (custom_role_arn, creation_role_arn); "
            "template: !Ref EcrRolePath, the path the reconciler's iam:PassRole is narrowed to. A role outside it "
            "is rejected by the API and blocked by the reconciler. Default / (every role)."
        ),
    )

    @field_validator("ecr_role_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _ROLE_PATH_RE.match(value):
            raise ValueError("must be an IAM path: / or /<segment>/.../ (letters, digits, +=,.@_-)")
        return value

    ecr_role_account: str = Field(
        default="",
        pattern=r"^([0-9]{12})?$",
        description=(
            "The stack's account (template: !Ref AWS::AccountId): the reconciler's iam:PassRole names this account's "
            "roles only, so a rule naming another account's role is rejected by the API and blocked by the "
            "reconciler (as one of another partition than the stack's Region's). Empty: any account (local use)."
        ),
    )


# EventBridge API reference, "PutRule": Name, 1-64 characters of [\.\-_A-Za-z0-9].
_RULE_NAME_RE: Final = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")


def _role_arn(value: str) -> str:
    """Empty, or one IAM role ARN."""
    if value and not _WARMER_ROLE_ARN_RE.match(value):
        raise ValueError("must be empty or an IAM role ARN: arn:aws:iam::<12-digit account>:role/[<path>/]<name>")
    return value


def _role_arn_list(value: str) -> str:
    """Empty, or IAM role ARNs separated by commas (the template's ``!Join [",", [!GetAtt <Role>.Arn, ...]]``)."""
    if value and not all(_WARMER_ROLE_ARN_RE.match(arn) for arn in value.split(",")):
        msg = (
            "must be empty or IAM role ARNs separated by commas, each "
            "arn:aws:iam::<12-digit account>:role/[<path>/]<name>"
        )
        raise ValueError(msg)
    return value


class EventForwardSettings(_Settings):
    """The event forwarders ecrcache keeps in every other Region a rule names (:mod:`ecrcache.engine.forwarders`).
    All three set: on; all three empty: off (the stack's Region's events only); anything else is an error."""

    event_forward_rule_name: str = Field(
        default="",
        max_length=64,
        description=(
            "Name of the forwarding rule in each other Region (template: ecrcache-fwd-<the stack id's UUID>: "
            "unique to the stack, the name its IAM grants and the forward role's trust are scoped to)."
        ),
    )
    event_forward_role_arn: str = Field(
        default="",
        max_length=PRINCIPAL_ARN_MAX_LENGTH,
        description="The role EventBridge assumes to put forwarded events on this Region's default bus.",
    )
    event_forward_ignored_roles: str = Field(
        default="",
        max_length=4 * (PRINCIPAL_ARN_MAX_LENGTH + 1),
        description=(
            "The IAM role ARNs of the functions writing ECR for the stack (the reconciler's and the reconcile "
            "worker's), separated by commas: their sessions' ECR calls are not forwarded (as ReconcilerEcrDriftRule "
            "leaves them out, by userIdentity.sessionContext.sessionIssuer.arn)."
        ),
    )

    @field_validator("event_forward_rule_name")
    @classmethod
    def _rule_name(cls, value: str) -> str:
        if value and not _RULE_NAME_RE.match(value):
            raise ValueError("must be empty or an EventBridge rule name: 1 to 64 of letters, digits, '.', '-', '_'")
        return value

    @field_validator("event_forward_role_arn")
    @classmethod
    def _role(cls, value: str) -> str:
        return _role_arn(value)

    @field_validator("event_forward_ignored_roles")
    @classmethod
    def _ignored(cls, value: str) -> str:
        return _role_arn_list(value)

    @model_validator(mode="after")
    def _all_or_none(self) -> Self:
        given = [bool(self.event_forward_rule_name), bool(self.event_forward_role_arn)]
        given.append(bool(self.event_forward_ignored_roles))
        if any(given) and not all(given):
            msg = "EVENT_FORWARD_RULE_NAME, _ROLE_ARN and _IGNORED_ROLES: set all three or none"
            raise ValueError(msg)
        return self

    @property
    def forwarding_on(self) -> bool:
        return bool(self.event_forward_rule_name)

    @property
    def ignored_roles(self) -> tuple[str, ...]:
        """``EVENT_FORWARD_IGNORED_ROLES`` as role ARNs (none when empty)."""
        return tuple(self.event_forward_ignored_roles.split(",")) if self.event_forward_ignored_roles else ()


class ReconcileWorkerRoleSettings(_Settings):
    """The reconcile worker's role, for the reconciler: the worker's ECR writes come back as CloudTrail events."""

    reconcile_worker_role_arn: str = Field(
        default="",
        max_length=PRINCIPAL_ARN_MAX_LENGTH,
        description=(
            "IAM role ARN of the reconcile worker (template: !GetAtt ReconcileWorkerFunctionRole.Arn): the CloudTrail "
            "events of its sessions' ECR calls are ignored as the reconciler's own are. Empty: none."
        ),
    )

    @field_validator("reconcile_worker_role_arn")
    @classmethod
    def _role(cls, value: str) -> str:
        return _role_arn(value)


ECR_REQUEST_RATE_MAX: Final = 10_000.0
"""ECR's highest published rate (GetDownloadUrlForLayer: 3,000 TPS; ecr-facts §1.6), with room: above it is a typo."""


class EcrRequestRateSettings(_Settings):
    """The ceiling on an invocation's ECR request rate (:mod:`ecrcache.adapters.rate_limit`)."""

    ecr_request_rate: float = Field(
        default=0.0,
        ge=0,
        le=ECR_REQUEST_RATE_MAX,
        allow_inf_nan=False,
        description=(
            "ECR requests a second one invocation may send to a Region (every HTTP attempt, its threads together; "
            "template: !Ref EcrRequestRate). ECR throttles an account per Region and operation and publishes no "
            "rate for the calls a reconcile reads with: this keeps the controller's share under a ceiling, and "
            "botocore's adaptive retries handle throttling that comes anyway. 0: no ceiling."
        ),
    )


class ApiSettings(TableSettings, WarmerRoleSettings, RotatorArnSettings, EcrRolePathSettings, EventForwardSettings):
    """Environment of ``functions/api`` (the warmer's role: ``GET /v1/plan`` plans its exclusion too; the
    rotation function: ``POST /v1/credentials/{name}/rotations`` starts it; the role path: rules naming a role
    outside it are rejected; the event forwarders: the plan shows theirs)."""


@cache
def api_settings() -> ApiSettings:
    return ApiSettings.from_env()


def stack_region() -> str:
    """The region the stack runs in (set by Lambda; by tests and the local stack otherwise)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


SHARD_DEADLINE_MIN: Final = 900
"""No fan-out deadline is shorter than three of the worker's 300 s invocations (template: ReconcileWorkerFunction's
Timeout). The template's value also covers the shard queue's redelivery delays (its VisibilityTimeout between
attempts) and the shards waiting behind ShardConcurrency (tests/contract/test_reconcile_worker_contract.py)."""


class ShardFanoutSettings(_Settings):
    """The deep resync's fan-out (README "Deep resync at scale"): a Region listing more managed repositories than
    one shard has its deep read split into shard tasks on the shard queue, worked by ``functions/reconcile_worker``."""

    shard_queue_url: str = Field(
        default="",
        max_length=2048,
        description=(
            "URL of the shard queue (template: !Ref ReconcileShardQueue). Empty: no fan-out, every deep read is "
            "done in the reconciler's own invocation."
        ),
    )
    shard_size: int = Field(
        default=DEFAULT_SHARD_SIZE,
        ge=1,
        le=MAX_SHARD_SIZE,
        description="Repositories per shard (1..500); a Region with no more than this is deep-read in place.",
    )
    shard_deadline_seconds: int = Field(
        default=DEFAULT_SHARD_DEADLINE_SECONDS,
        ge=SHARD_DEADLINE_MIN,
        le=86400,
        description=(
            "Seconds a fan-out may take (900..86400): the next run touching the Region settles a fan-out past it, "
            "counting the shards that never reported as failed."
        ),
    )

    @field_validator("shard_queue_url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be empty or an SQS queue URL: https://sqs.<region>.amazonaws.com/<account>/<name>")
        return value

    @property
    def fan_out(self) -> bool:
        return bool(self.shard_queue_url)


SHARD_READ_SECONDS: Final = 150
"""The longest a shard's deep read may take at the ECR request-rate ceiling: the worker's 300 s invocation
(template: ReconcileWorkerFunction's Timeout) less the 120 s it keeps for applying and reporting (its deep read stops
there and the shard is retried: functions/reconcile_worker MIN_REMAINING_MS), less 30 s for the rest (the desired
state, the fingerprints, the ceiling's own bursts)."""


def shard_ecr_reads(shard_size: int) -> int:
    """ECR reads of one shard's deep read: ``DescribeRepositories`` by name (100 a call) and 3 reads a repository
    (lifecycle policy, repository policy, tags): 1,505 for 500 repositories."""
    return -(-shard_size // 100) + 3 * shard_size


class ReconcilerSettings(
    TableSettings,
    WarmerRoleSettings,
    RotatorArnSettings,
    EcrRolePathSettings,
    EventForwardSettings,
    ShardFanoutSettings,
    EcrRequestRateSettings,
    ReconcileWorkerRoleSettings,
):
    """Environment of ``functions/reconciler`` (the rotation function: credentials' rotation schedules name it;
    the role path: a rule naming a role outside it is blocked; the event forwarders it keeps in other Regions;
    the shard queue its deep runs fan out to; the ceiling on its ECR request rate; the reconcile worker's role,
    whose CloudTrail events it ignores)."""

    @model_validator(mode="after")
    def _shard_in_time(self) -> Self:
        """With fan-out on, one repository's reads at least must fit :data:`SHARD_READ_SECONDS` at the ceiling."""
        rate = self.ecr_request_rate
        if self.fan_out and rate and shard_ecr_reads(1) > rate * SHARD_READ_SECONDS:
            msg = (
                f"ECR_REQUEST_RATE: {rate:g} requests a second is too slow for the deep resync's shards (SHARD_SIZE, "
                f"SHARD_QUEUE_URL): a shard's deep read may take {SHARD_READ_SECONDS} s, and even a shard of one "
                f"repository makes {shard_ecr_reads(1)} ECR reads; set at least "
                f"{-(-shard_ecr_reads(1) * 100 // SHARD_READ_SECONDS) / 100:g}, or 0 (no ceiling)"
            )
            raise ValueError(msg)
        return self

    @property
    def shard_size_in_time(self) -> int:
        """The shard size used: ``SHARD_SIZE``, made smaller when its reads would not fit :data:`SHARD_READ_SECONDS`
        at ``ECR_REQUEST_RATE`` (the workers are given the same ceiling): at 20 requests a second (the template's)
        a full shard of 500 (1,505 reads, 75 s) fits; at 8, shards of at most 398 (1,198 reads)."""
        rate = self.ecr_request_rate
        if not rate:
            return self.shard_size
        budget = rate * SHARD_READ_SECONDS
        return next((size for size in range(self.shard_size, 0, -1) if shard_ecr_reads(size) <= budget), 1)


@cache
def reconciler_settings() -> ReconcilerSettings:
    return ReconcilerSettings.from_env()


class ReconcileWorkerSettings(TableSettings, WarmerRoleSettings, EcrRolePathSettings, EcrRequestRateSettings):
    """Environment of ``functions/reconcile_worker``: what the reconciler's planning of a Region's repositories
    reads (the warmer's role: its exclusion is part of the plan; the role path and account: a rule naming a role
    outside them is blocked, as the reconciler blocks it; the same ECR request-rate ceiling per invocation). No
    trigger, rotation or forwarder settings: a shard only deep-reads and converges its repositories."""


@cache
def reconcile_worker_settings() -> ReconcileWorkerSettings:
    return ReconcileWorkerSettings.from_env()


class AlertSettings(_Settings):
    alert_topic_arn: str = Field(
        default="",
        max_length=1024,
        description=(
            "ARN of the stack's SNS alert topic: credential health events are published there as well as on the "
            "default event bus. Empty: the event bus only."
        ),
    )


class PullStatsSettings(TableSettings, WarmerRoleSettings, AlertSettings):
    """Environment of ``functions/pull_stats`` (the alert topic: a pull-through failure on a credential marks it
    Invalid and announces it)."""


@cache
def pull_stats_settings() -> PullStatsSettings:
    return PullStatsSettings.from_env()


class UpstreamEndpointsSettings(_Settings):
    upstream_endpoints: Json[dict[str, str]] = Field(
        default_factory=dict,
        description=(
            'JSON object: upstream registry host -> base URL to reach it at ({"registry-1.docker.io": '
            '"http://127.0.0.1:5000"}); set only by the local stack, empty in AWS.'
        ),
    )

    @field_validator("upstream_endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        for host, url in value.items():
            if not url.startswith(("http://", "https://")) or "/" in host:
                raise ValueError(f"UPSTREAM_ENDPOINTS maps a registry host to an http(s) base URL; got {host!r}")
        return {host.lower(): url.rstrip("/") for host, url in value.items()}


class WarmPlannerSettings(TableSettings, UpstreamEndpointsSettings):
    """Environment of ``functions/warm_planner``."""

    warm_queue_url: str = Field(min_length=1, max_length=2048)


@cache
def warm_planner_settings() -> WarmPlannerSettings:
    return WarmPlannerSettings.from_env()


class WarmWorkerSettings(TableSettings, AlertSettings):
    """Environment of ``functions/warm_worker`` (the alert topic: a warm failing on the credential marks it
    Invalid and announces it)."""


@cache
def warm_worker_settings() -> WarmWorkerSettings:
    return WarmWorkerSettings.from_env()


class RotatorSettings(TableSettings, UpstreamEndpointsSettings, AlertSettings):
    """Environment of ``functions/rotator`` (the upstream endpoints: its probe signs in at the local registries
    in the local stack; the alert topic: a rotation's outcome changes the credential's health, announced)."""


@cache
def rotator_settings() -> RotatorSettings:
    return RotatorSettings.from_env()


class CredentialHealthSettings(TableSettings, UpstreamEndpointsSettings, AlertSettings):
    """Environment of ``functions/credential_health`` (the upstream endpoints: its probe signs in at the local
    registries in the local stack)."""


@cache
def credential_health_settings() -> CredentialHealthSettings:
    return CredentialHealthSettings.from_env()

"""Settings, read once per cold start from the environment (the only module that reads it).

One model per function, composed from mixins; ``tests/contract`` checks that the environment
variables ``template.yaml`` sets for each function are exactly the fields of its model.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, Json, field_validator


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls) -> Self:
        return cls.model_validate({name.lower(): value for name, value in os.environ.items()})


class TableSettings(_Settings):
    table_name: str = Field(min_length=3, max_length=255)


class ApiSettings(TableSettings):
    """Environment of ``functions/api``."""


@cache
def api_settings() -> ApiSettings:
    return ApiSettings.from_env()


def stack_region() -> str:
    """The region the stack runs in (set by Lambda; by tests and the local stack otherwise)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class ReconcilerSettings(TableSettings):
    """Environment of ``functions/reconciler``."""


@cache
def reconciler_settings() -> ReconcilerSettings:
    return ReconcilerSettings.from_env()


class WarmerRoleSettings(_Settings):
    warmer_role_arn: str = Field(
        default="",
        max_length=2048,
        description=(
            "IAM ARN of the warm worker's role: its pulls are not counted, and ECR is told not to record "
            "them as pulls. Empty: none."
        ),
    )


class PullStatsSettings(TableSettings, WarmerRoleSettings):
    """Environment of ``functions/pull_stats``."""


@cache
def pull_stats_settings() -> PullStatsSettings:
    return PullStatsSettings.from_env()


class WarmPlannerSettings(TableSettings):
    """Environment of ``functions/warm_planner``."""

    warm_queue_url: str = Field(min_length=1, max_length=2048)
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


@cache
def warm_planner_settings() -> WarmPlannerSettings:
    return WarmPlannerSettings.from_env()


class WarmWorkerSettings(TableSettings):
    """Environment of ``functions/warm_worker``."""


@cache
def warm_worker_settings() -> WarmWorkerSettings:
    return WarmWorkerSettings.from_env()

"""Settings, read once per cold start from the environment (the only module that reads it).

One model per function, composed from mixins; ``tests/contract`` checks that the environment
variables ``template.yaml`` sets for each function are exactly the fields of its model.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Self

from pydantic import BaseModel, ConfigDict, Field


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


class WarmWorkerSettings(TableSettings):
    """Environment of ``functions/warm_worker``."""


@cache
def warm_worker_settings() -> WarmWorkerSettings:
    return WarmWorkerSettings.from_env()

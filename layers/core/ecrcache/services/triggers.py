"""What each reconciler trigger asks for: from a parsed event to a :class:`Scope` (pure).

* DynamoDB stream records of desired items: every Region, fast path (rules and templates are
  always planned in full; repositories of a changed rule get blind, idempotent writes).
* A reconcile request item written by ``POST /v1/reconcile``: its own run id and depth.
* The schedule: a fast resync, or a deep one (reads every repository's settings).
* CloudTrail ``AWS API Call via CloudTrail`` for ECR: the Region of the call, and a deep read of
  the repository it touched; calls made by the controller's own role are ignored (its own writes
  come back as events and must not trigger another reconcile of the same change).
* ``ECR Pull Through Cache Action``: a newly cached repository gets its settings at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ecrcache.models.ecr_operations import REPOSITORY_EVENTS, RULE_EVENTS
from ecrcache.models.status import RunTrigger
from ecrcache.services.reconcile import Scope

REQUEST_PREFIX = "REQUEST#reconcile"


class CloudTrailIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str | None = None
    arn: str | None = None
    invoked_by: str | None = Field(default=None, alias="invokedBy")


class CloudTrailDetail(BaseModel):
    """The ``detail`` of an ``AWS API Call via CloudTrail`` event (the fields the reconciler reads)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_name: str = Field(alias="eventName")
    event_source: str = Field(alias="eventSource")
    aws_region: str = Field(alias="awsRegion")
    user_identity: CloudTrailIdentity = Field(default_factory=CloudTrailIdentity, alias="userIdentity")
    request_parameters: dict[str, Any] | None = Field(default=None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(default=None, alias="responseElements")
    error_code: str | None = Field(default=None, alias="errorCode")


class PullThroughCacheActionDetail(BaseModel):
    """The ``detail`` of ``ECR Pull Through Cache Action`` (ecr-facts §6.1)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    sync_status: str = Field(alias="sync-status")
    repository_name: str = Field(alias="repository-name")
    ecr_repository_prefix: str | None = Field(default=None, alias="ecr-repository-prefix")
    failure_code: str | None = Field(default=None, alias="failure-code")


@dataclass(frozen=True, slots=True)
class Trigger:
    scope: Scope
    trigger: RunTrigger
    run_id: str | None = None


def own_role_prefix(caller_arn: str) -> str:
    """``arn:aws:sts::<acct>:assumed-role/<role>/<session>`` -> the part every session of the role shares."""
    if ":assumed-role/" in caller_arn:
        head, _, rest = caller_arn.partition(":assumed-role/")
        return f"{head}:assumed-role/{rest.split('/', 1)[0]}/"
    return caller_arn


def _repository_name(detail: CloudTrailDetail) -> str | None:
    params = detail.request_parameters or {}
    name = params.get("repositoryName")
    if isinstance(name, str):
        return name
    arn = params.get("resourceArn")
    if isinstance(arn, str) and ":repository/" in arn:
        return arn.split(":repository/", 1)[1]
    return None


def for_cloudtrail(detail: CloudTrailDetail, *, own_role: str) -> Trigger | None:
    """The reconcile a CloudTrail event calls for, or ``None`` (our own call, a failed call, not ECR)."""
    if detail.event_source != "ecr.amazonaws.com" or detail.error_code:
        return None
    caller = detail.user_identity.arn or ""
    if own_role and caller.startswith(own_role):
        return None
    region = frozenset({detail.aws_region})
    if detail.event_name in RULE_EVENTS:
        return Trigger(Scope(regions=region), RunTrigger.CLOUDTRAIL)
    if detail.event_name in REPOSITORY_EVENTS:
        name = _repository_name(detail)
        repos = frozenset({name}) if name else frozenset()
        return Trigger(Scope(regions=region, deep_repositories=repos), RunTrigger.CLOUDTRAIL)
    return None


def for_cache_action(detail: PullThroughCacheActionDetail, region: str) -> Trigger | None:
    """A successful pull-through import may have created a repository: read it deeply, apply settings."""
    if detail.sync_status != "SUCCESS":
        return None
    return Trigger(
        Scope(regions=frozenset({region}), deep_repositories=frozenset({detail.repository_name})),
        RunTrigger.CACHE_EVENT,
    )


def for_schedule(payload: Mapping[str, Any]) -> Trigger:
    """``{"resync": "fast" | "deep"}`` (the template's schedule inputs)."""
    return Trigger(Scope(deep=payload.get("resync") == "deep"), RunTrigger.SCHEDULE)


def for_stream_keys(keys: list[tuple[str, str, Mapping[str, Any] | None]]) -> Trigger:
    """Stream records (pk, sk, new image) -> one reconcile for the batch.

    A reconcile request (``POST /v1/reconcile``) in the batch lends its run id and depth.
    """
    for pk, sk, image in keys:
        if pk == REQUEST_PREFIX and image is not None:
            deep = bool(image.get("deep", {}).get("BOOL", False))
            return Trigger(Scope(deep=deep), RunTrigger.API, run_id=sk)
    return Trigger(Scope(), RunTrigger.STREAM)

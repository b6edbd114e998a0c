"""The ``detail`` of the ECR events EventBridge delivers, as far as ecrcache reads them (one copy).

The reconciler's trigger parser (:mod:`ecrcache.services.triggers`) and the pull statistics
(:mod:`ecrcache.engine.pull_stats`) read the same two event types:

* ``AWS API Call via CloudTrail``: the CloudTrail record of an ECR call (ecr-facts §6.3). The
  fields kept are the ones either reader needs; every other one is ignored.
* ``ECR Pull Through Cache Action``: an import or refresh attempt (ecr-facts §6.1; the
  ``failure-*`` fields appear on failures only).

CloudTrail's ``userIdentity`` of a role session names the session in ``arn``
(``arn:aws:sts::<acct>:assumed-role/<role>/<session>``) and the role itself in
``sessionContext.sessionIssuer.arn`` (``arn:aws:iam::<acct>:role/<path/><role>``); see the CloudTrail
User Guide, "CloudTrail userIdentity element".
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CACHE_ACTION_DETAIL_TYPE",
    "CLOUDTRAIL_DETAIL_TYPE",
    "SYNC_SUCCESS",
    "CloudTrailDetail",
    "CloudTrailIdentity",
    "PullThroughCacheActionDetail",
    "SessionContext",
    "SessionIssuer",
]

CLOUDTRAIL_DETAIL_TYPE: Final = "AWS API Call via CloudTrail"
CACHE_ACTION_DETAIL_TYPE: Final = "ECR Pull Through Cache Action"
SYNC_SUCCESS: Final = "SUCCESS"
"""The one documented ``sync-status``; the failure values are not documented, so any other is a failure."""


class SessionIssuer(BaseModel):
    """Who issued a temporary session: for a role session, the role (``arn`` is its IAM ARN)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str | None = None
    arn: str | None = None


class SessionContext(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    session_issuer: SessionIssuer | None = Field(default=None, alias="sessionIssuer")


class CloudTrailIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str | None = None
    arn: str | None = None
    invoked_by: str | None = Field(default=None, alias="invokedBy")
    session_context: SessionContext | None = Field(default=None, alias="sessionContext")

    @property
    def issuer_arn(self) -> str | None:
        """The role a session was issued for (``None`` for users, services and unknown shapes)."""
        issuer = self.session_context.session_issuer if self.session_context else None
        return issuer.arn if issuer is not None and issuer.arn else None


class CloudTrailDetail(BaseModel):
    """The ``detail`` of an ``AWS API Call via CloudTrail`` event (the fields ecrcache reads)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    event_name: str = Field(alias="eventName")
    event_source: str = Field(alias="eventSource")
    aws_region: str = Field(alias="awsRegion")
    user_identity: CloudTrailIdentity = Field(default_factory=CloudTrailIdentity, alias="userIdentity")
    user_agent: str | None = Field(default=None, alias="userAgent")
    request_parameters: dict[str, Any] | None = Field(default=None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(default=None, alias="responseElements")
    error_code: str | None = Field(default=None, alias="errorCode")


class PullThroughCacheActionDetail(BaseModel):
    """The ``detail`` of ``ECR Pull Through Cache Action`` (ecr-facts §6.1; ``failure-*`` on failure only)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    sync_status: str = Field(alias="sync-status")
    repository_name: str = Field(alias="repository-name")
    ecr_repository_prefix: str | None = Field(default=None, alias="ecr-repository-prefix")
    image_tag: str | None = Field(default=None, alias="image-tag")
    image_digest: str | None = Field(default=None, alias="image-digest")
    failure_code: str | None = Field(default=None, alias="failure-code")
    failure_reason: str | None = Field(default=None, alias="failure-reason")

    @property
    def succeeded(self) -> bool:
        return self.sync_status == SYNC_SUCCESS

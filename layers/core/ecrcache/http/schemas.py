"""Response bodies of the API (request bodies are the desired-state models themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ecrcache.engine.plan import Blocked
from ecrcache.models.credential import CredentialSpec, secret_name
from ecrcache.models.credential_health import HealthState, HealthView
from ecrcache.models.records import HistoryEntry, ResourceKind, StoredResource, WriteAction
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_set import WarmSetSpec


class _Resource(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = Field(description="Increases by one on every change; send it back in If-Match.")
    created_at: datetime
    updated_at: datetime
    updated_by: str = Field(description="IAM ARN of the caller who made the last change.")


class RenderedRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    lifecycle_policy: dict[str, Any] | None = Field(
        description="The ECR lifecycle policy document the rule's lifecycle section compiles to."
    )
    repository_creation_template: dict[str, Any] = Field(
        description="The ECR repository creation template the controller keeps for the prefix."
    )


class RuleResource(_Resource):
    prefix: str
    spec: RuleSpec
    rendered: RenderedRule

    @classmethod
    def of(cls, stored: StoredResource) -> RuleResource:
        spec = RuleSpec.model_validate(stored.spec)
        template = dict(spec.creation_template_request(stored.name))
        return cls(
            prefix=stored.name,
            version=stored.version,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            updated_by=stored.updated_by,
            spec=spec,
            rendered=RenderedRule(
                lifecycle_policy=spec.lifecycle.render() if spec.lifecycle else None,
                repository_creation_template=template,
            ),
        )


class CredentialResource(_Resource):
    name: str
    spec: CredentialSpec
    secret_name: str = Field(description="The Secrets Manager secret holding username and token.")
    secret_arn: str | None = Field(description="Full ARN of the secret (with its random suffix).")
    referenced_by: list[str] = Field(description="Prefixes of the rules that use this credential.")
    health: HealthView = Field(
        description=(
            "The daily health check's verdict (Unknown before the first check); Invalid at once when a pull "
            "through the cache or a warm failed on the credential (evidence says where)."
        )
    )

    @classmethod
    def of(
        cls, stored: StoredResource, referenced_by: list[str], health: HealthView | None = None
    ) -> CredentialResource:
        spec = CredentialSpec.model_validate(stored.spec)
        unknown = HealthView(
            state=HealthState.UNKNOWN,
            checked_at=None,
            message=None,
            evidence=None,
            expires_at=spec.expires_at,
            days_to_expiry=None,
        )
        return cls(
            name=stored.name,
            version=stored.version,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            updated_by=stored.updated_by,
            spec=spec,
            secret_name=secret_name(stored.name),
            secret_arn=stored.secret_arn,
            referenced_by=referenced_by,
            health=health or unknown,
        )


class WarmSetResource(_Resource):
    name: str
    spec: WarmSetSpec

    @classmethod
    def of(cls, stored: StoredResource) -> WarmSetResource:
        return cls(
            name=stored.name,
            version=stored.version,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            updated_by=stored.updated_by,
            spec=WarmSetSpec.model_validate(stored.spec),
        )


class RuleList(BaseModel):
    items: list[RuleResource]


class CredentialList(BaseModel):
    items: list[CredentialResource]


class WarmSetList(BaseModel):
    items: list[WarmSetResource]


class ChangeOut(BaseModel):
    kind: ResourceKind
    name: str
    action: WriteAction
    fields: list[str] = Field(description="Top-level fields that change (all fields for a create).")
    secret_changed: bool = Field(description="True when the document supplies a new token for a credential.")


class ApplyResponse(BaseModel):
    dry_run: bool
    revision: int = Field(description="Revision of the desired state after the apply (or as read, for a dry run).")
    changes: list[ChangeOut]
    blocked: list[Blocked] = Field(
        default_factory=list,
        description=(
            "Rules this document creates or changes that the controller will not touch, as `GET /v1/plan` "
            "shows them: ECR already holds a rule or creation template with the prefix that ecrcache did not "
            "create. Each says what to do (`ecrcache import`, or `adopt: true` on the rule)."
        ),
    )
    warnings: list[str] = Field(
        default_factory=list, description="Checks that could not be made (e.g. ECR could not be read in a Region)."
    )


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_token: str | None = Field(description="Pass as next_token to read the next (older) page.")

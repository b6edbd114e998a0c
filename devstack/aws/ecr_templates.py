"""ECR repository creation templates for moto: Create/Describe/Update/DeleteRepositoryCreationTemplate.

Spec: ecr-facts §4 and §9.17. Templates are stored only; they are applied by whoever creates
repositories on ECR's behalf (the pull-through data plane calls :func:`best_matching_template`),
never retroactively and never to ``CreateRepository`` calls.

Checks beyond the botocore model (which ``common.validate_input`` enforces first):
``appliedFor`` non-empty; ``kmsKey`` only with ``KMS``/``KMS_DSSE``; ``*_WITH_EXCLUSION`` mutability
exactly with exclusion filters; ``repositoryPolicy`` is a JSON policy document; ``lifecyclePolicy``
passes the full lifecycle validator; ``customRoleArn`` is an IAM role ARN of the same account.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from moto.ecr.models import ECRBackend

from devstack.aws import clock
from devstack.aws.common import (
    InvalidParameterException,
    TemplateAlreadyExistsException,
    TemplateNotFoundException,
    add_backend_method,
    add_response_action,
    api_action,
    paginate,
)
from devstack.aws.ecr_lifecycle import parse_lifecycle_policy
from devstack.aws.state import ROOT, CreationTemplate, EcrExtState, ext_state, normalize_prefix

__all__ = ["APPLIED_FOR", "best_matching_template", "install"]

APPLIED_FOR: Final = ("REPLICATION", "PULL_THROUGH_CACHE", "CREATE_ON_PUSH")
_ROLE_ARN: Final = re.compile(r"arn:aws(-[a-z]+)*:iam::(?P<account>[0-9]{12}):role/[\w+=,.@/-]+")


def best_matching_template(state: EcrExtState, repository_name: str, applied_for: str) -> CreationTemplate | None:
    """The template ECR would apply when it creates ``repository_name`` for ``applied_for``.

    Most specific (longest) matching prefix among templates whose ``appliedFor`` contains
    ``applied_for``; else the ``ROOT`` template if it applies; else ``None`` (ecr-facts §4).
    """
    with state.lock:
        best: CreationTemplate | None = None
        for template in state.templates.values():
            if template.prefix == ROOT or applied_for not in template.applied_for:
                continue
            if template.matches(repository_name) and (best is None or len(template.prefix) > len(best.prefix)):
                best = template
        if best is not None:
            return best
        root = state.templates.get(ROOT)
        return root if root is not None and applied_for in root.applied_for else None


def _invalid(field_name: str, reason: str) -> InvalidParameterException:
    return InvalidParameterException(f"Invalid parameter at '{field_name}' failed to satisfy constraint: '{reason}'")


def _check_applied_for(applied_for: list[str]) -> list[str]:
    if not applied_for:
        raise _invalid(
            "appliedFor", "appliedFor must contain at least one of REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH"
        )
    return list(dict.fromkeys(applied_for))


def _check_encryption(config: dict[str, str] | None) -> dict[str, str] | None:
    if config is None:
        return None
    if config.get("kmsKey") and config.get("encryptionType") == "AES256":
        raise _invalid("encryptionConfiguration", "kmsKey can only be specified when encryptionType is KMS or KMS_DSSE")
    return {k: v for k, v in config.items() if v}


def _check_mutability(mutability: str, filters: list[dict[str, str]] | None) -> None:
    with_exclusion = mutability.endswith("_WITH_EXCLUSION")
    if with_exclusion and not filters:
        raise _invalid(
            "imageTagMutabilityExclusionFilters",
            f"exclusion filters are required when imageTagMutability is {mutability}",
        )
    if filters and not with_exclusion:
        raise _invalid(
            "imageTagMutabilityExclusionFilters",
            "exclusion filters can only be used with MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION",
        )


def _check_repository_policy(text: str | None) -> None:
    if not text:
        return
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _invalid("repositoryPolicy", "Invalid repository policy provided: the policy is not valid JSON") from exc
    if not isinstance(document, dict) or "Statement" not in document:
        raise _invalid("repositoryPolicy", "Invalid repository policy provided: a policy document needs a Statement")


def _check_role(backend: ECRBackend, role_arn: str | None) -> None:
    if not role_arn:
        return
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        raise _invalid("customRoleArn", f"{role_arn} is not a valid IAM role ARN")
    if match.group("account") != backend.account_id:
        raise _invalid("customRoleArn", "the repository creation role must be in the same account as the registry")


def _check_lifecycle(text: str | None) -> None:
    if text:
        parse_lifecycle_policy(text, field_name="lifecyclePolicy", min_length=0)


def _require(state: EcrExtState, prefix: str, account: str) -> CreationTemplate:
    template = state.templates.get(normalize_prefix(prefix))
    if template is None:
        raise TemplateNotFoundException(
            f"The specified repository creation template with prefix '{prefix}' does not exist "
            f"in the registry with id '{account}'"
        )
    return template


def create_repository_creation_template(self: ECRBackend, params: dict[str, Any]) -> CreationTemplate:
    """``CreateRepositoryCreationTemplate`` (``params`` in botocore member names, model-validated)."""
    prefix = normalize_prefix(params["prefix"])
    applied_for = _check_applied_for(params["appliedFor"])
    encryption = _check_encryption(params.get("encryptionConfiguration"))
    mutability = params.get("imageTagMutability") or "MUTABLE"
    filters = params.get("imageTagMutabilityExclusionFilters")
    _check_mutability(mutability, filters)
    _check_repository_policy(params.get("repositoryPolicy"))
    _check_lifecycle(params.get("lifecyclePolicy"))
    _check_role(self, params.get("customRoleArn"))
    state = ext_state(self)
    with state.lock:
        if prefix in state.templates:
            raise TemplateAlreadyExistsException(
                f"The repository creation template with prefix '{prefix}' already exists "
                f"in the registry with id '{self.account_id}'"
            )
        now = clock.now().replace(microsecond=0)
        template = CreationTemplate(
            prefix=prefix,
            applied_for=applied_for,
            created_at=now,
            updated_at=now,
            description=params.get("description"),
            encryption_configuration=encryption,
            resource_tags=list(params.get("resourceTags") or []),
            image_tag_mutability=mutability,
            image_tag_mutability_exclusion_filters=filters,
            repository_policy=params.get("repositoryPolicy") or None,
            lifecycle_policy=params.get("lifecyclePolicy") or None,
            custom_role_arn=params.get("customRoleArn") or None,
        )
        state.templates[prefix] = template
        return template


def describe_repository_creation_templates(self: ECRBackend, prefixes: list[str] | None) -> list[CreationTemplate]:
    """The named templates (unknown names are skipped: Describe has no not-found error) or all, by prefix."""
    state = ext_state(self)
    with state.lock:
        if prefixes:
            keys = list(dict.fromkeys(normalize_prefix(p) for p in prefixes))
            return [state.templates[k] for k in keys if k in state.templates]
        return [state.templates[k] for k in sorted(state.templates)]


def update_repository_creation_template(self: ECRBackend, params: dict[str, Any]) -> CreationTemplate:
    """``UpdateRepositoryCreationTemplate``: fields given replace the stored ones; ``updatedAt`` is set."""
    state = ext_state(self)
    with state.lock:
        template = _require(state, params["prefix"], self.account_id)
        applied_for = _check_applied_for(params["appliedFor"]) if "appliedFor" in params else template.applied_for
        encryption = (
            _check_encryption(params["encryptionConfiguration"])
            if "encryptionConfiguration" in params
            else template.encryption_configuration
        )
        mutability = params.get("imageTagMutability") or template.image_tag_mutability
        filters: list[dict[str, str]] | None = params.get("imageTagMutabilityExclusionFilters")
        if "imageTagMutabilityExclusionFilters" not in params:
            filters = (
                template.image_tag_mutability_exclusion_filters if mutability.endswith("_WITH_EXCLUSION") else None
            )
        _check_mutability(mutability, filters)
        _check_repository_policy(params.get("repositoryPolicy"))
        _check_lifecycle(params.get("lifecyclePolicy"))
        _check_role(self, params.get("customRoleArn"))
        template.applied_for = applied_for
        template.encryption_configuration = encryption
        template.image_tag_mutability = mutability
        template.image_tag_mutability_exclusion_filters = filters
        for key, attr in (
            ("description", "description"),
            ("repositoryPolicy", "repository_policy"),
            ("lifecyclePolicy", "lifecycle_policy"),
            ("customRoleArn", "custom_role_arn"),
        ):
            if key in params:
                setattr(template, attr, params[key] or None)
        if "resourceTags" in params:
            template.resource_tags = list(params["resourceTags"] or [])
        template.updated_at = clock.now().replace(microsecond=0)
        return template


def delete_repository_creation_template(self: ECRBackend, prefix: str) -> CreationTemplate:
    state = ext_state(self)
    with state.lock:
        template = _require(state, prefix, self.account_id)
        del state.templates[template.prefix]
        return template


def _create(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    template: CreationTemplate = backend.create_repository_creation_template(params)  # type: ignore[attr-defined]
    return {"registryId": backend.account_id, "repositoryCreationTemplate": template.to_dict()}


def _describe(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    templates: list[CreationTemplate] = backend.describe_repository_creation_templates(  # type: ignore[attr-defined]
        params.get("prefixes")
    )
    page, token = paginate(templates, params.get("maxResults"), params.get("nextToken"))
    return {
        "registryId": backend.account_id,
        "repositoryCreationTemplates": [t.to_dict() for t in page],
        "nextToken": token,
    }


def _update(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    template: CreationTemplate = backend.update_repository_creation_template(params)  # type: ignore[attr-defined]
    return {"registryId": backend.account_id, "repositoryCreationTemplate": template.to_dict()}


def _delete(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    template: CreationTemplate = backend.delete_repository_creation_template(params["prefix"])  # type: ignore[attr-defined]
    return {"registryId": backend.account_id, "repositoryCreationTemplate": template.to_dict()}


def install() -> None:
    """Attach the four operations to moto's ECR classes (idempotent)."""
    add_backend_method("create_repository_creation_template", create_repository_creation_template)
    add_backend_method("describe_repository_creation_templates", describe_repository_creation_templates)
    add_backend_method("update_repository_creation_template", update_repository_creation_template)
    add_backend_method("delete_repository_creation_template", delete_repository_creation_template)
    add_response_action(
        "create_repository_creation_template", api_action("CreateRepositoryCreationTemplate", _create, mutating=True)
    )
    add_response_action(
        "describe_repository_creation_templates",
        api_action("DescribeRepositoryCreationTemplates", _describe, mutating=False),
    )
    add_response_action(
        "update_repository_creation_template", api_action("UpdateRepositoryCreationTemplate", _update, mutating=True)
    )
    add_response_action(
        "delete_repository_creation_template", api_action("DeleteRepositoryCreationTemplate", _delete, mutating=True)
    )

"""ECR pull-through cache rules for moto: Create/Describe/Update/Delete/ValidatePullThroughCacheRule.

Spec: ecr-facts §1 and §9 items 1-10. Backend logic is added to ``ECRBackend`` (``backend.create_
pull_through_cache_rule(...)`` etc.), request handling to ``ECRResponse``; :func:`install` does both.

Order of checks in Create (first failure wins):

1. botocore model constraints (length, pattern, ``UpstreamRegistry`` enum) -> ``ValidationException``;
2. ``upstreamRepositoryPrefix`` other than ``ROOT`` with ``ecrRepositoryPrefix=ROOT`` -> ``InvalidParameterException``;
3. upstream URL allow-list (§1.4), ``upstreamRegistry`` inferred or checked -> ``UnsupportedUpstreamRegistryException``;
4. credential / role matrix (§9.4);
5. secret: same account + Region, exists, readable, decryptable (``SecretNotFoundException`` ...);
6. duplicate prefix, then the 50-rule quota.

Where ECR's behaviour is only *reported*, the code says so next to it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from moto.ecr.models import ECRBackend
from moto.secretsmanager.models import secretsmanager_backends

from devstack.aws import clock
from devstack.aws.common import (
    InvalidParameterException,
    LimitExceededException,
    PullThroughCacheRuleAlreadyExistsException,
    PullThroughCacheRuleNotFoundException,
    SecretNotFoundException,
    UnableToAccessSecretException,
    UnableToDecryptSecretValueException,
    UnsupportedUpstreamRegistryException,
    add_backend_method,
    add_response_action,
    api_action,
    paginate,
)
from devstack.aws.ports import get_upstream_auth_checker
from devstack.aws.state import ROOT, PullThroughCacheRule, ext_state, normalize_prefix

__all__ = [
    "ANONYMOUS_UPSTREAMS",
    "MAX_RULES",
    "ROLE_UPSTREAMS",
    "SECRET_UPSTREAMS",
    "ValidationOutcome",
    "infer_upstream_registry",
    "install",
]

#: Pull through cache rules per registry (Service Quotas page; not adjustable) -- ecr-facts §1.6.
MAX_RULES: Final = 50

#: Upstreams that need a Secrets Manager credential (ecr-facts §1.4).
SECRET_UPSTREAMS: Final = frozenset(
    {"docker-hub", "github-container-registry", "azure-container-registry", "gitlab-container-registry", "chainguard"}
)
#: Upstreams that take no credential.
ANONYMOUS_UPSTREAMS: Final = frozenset({"ecr-public", "k8s", "quay"})
#: Upstreams authenticated with an IAM role (``customRoleArn``).
ROLE_UPSTREAMS: Final = frozenset({"ecr"})

_FIXED_HOSTS: Final = {
    "public.ecr.aws": "ecr-public",
    "registry.k8s.io": "k8s",
    "quay.io": "quay",
    "registry-1.docker.io": "docker-hub",
    "ghcr.io": "github-container-registry",
    "registry.gitlab.com": "gitlab-container-registry",
    "cgr.dev": "chainguard",
}
# ACR login servers are ``<registry>.azurecr.io``; Azure registry names are 5-50 alphanumerics.
_ACR_HOST: Final = re.compile(r"[a-z0-9]{5,50}\.azurecr\.io")
_ECR_HOST: Final = re.compile(r"(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(-[a-z]+)+-[0-9])\.amazonaws\.com")
_ROLE_ARN: Final = re.compile(r"arn:aws(-[a-z]+)*:iam::(?P<account>[0-9]{12}):role/[\w+=,.@/-]+")
_AWS_MANAGED_SECRET_KEYS: Final = frozenset({"alias/aws/secretsmanager"})

AUTH_REQUIRED_MESSAGE: Final = (
    "The specified upstream registry requires authentication. "
    "Specify a valid Secrets Manager ARN containing the upstream registry credentials."
)


def _invalid_url(url: str) -> UnsupportedUpstreamRegistryException:
    # Message observed in goharbor/harbor#20174.
    return UnsupportedUpstreamRegistryException(
        f"The upstream registry URL {url} is invalid. Specify a valid upstream registry URL and try again"
    )


def infer_upstream_registry(url: str) -> str:
    """The ``UpstreamRegistry`` value for an upstream URL, or ``UnsupportedUpstreamRegistryException``.

    Exact hosts only (ecr-facts §9.3): ``registry-1.docker.io`` (not ``docker.io``), ``*.azurecr.io``,
    ``<12 digits>.dkr.ecr.<region>.amazonaws.com``. No scheme, path or port.
    """
    if url in _FIXED_HOSTS:
        return _FIXED_HOSTS[url]
    if _ACR_HOST.fullmatch(url):
        return "azure-container-registry"
    if _ECR_HOST.fullmatch(url):
        return "ecr"
    raise _invalid_url(url)


# --------------------------------------------------------------------------------------------------
# Backend logic
# --------------------------------------------------------------------------------------------------


def _check_registry_id(backend: ECRBackend, registry_id: str | None) -> str:
    account = str(backend.account_id)
    if registry_id and registry_id != account:
        # PTC rules live in the caller's own registry only. [?] exact AWS answer for a foreign id.
        raise InvalidParameterException(
            f"Invalid parameter at 'registryId' failed to satisfy constraint: "
            f"'The registry id {registry_id} does not match the caller's registry {account}'"
        )
    return account


def _require_rule(backend: ECRBackend, prefix: str) -> PullThroughCacheRule:
    state = ext_state(backend)
    rule = state.rules.get(normalize_prefix(prefix))
    if rule is None:
        raise PullThroughCacheRuleNotFoundException(
            f"The pull through cache rule with prefix '{prefix}' does not exist "
            f"in the registry with id '{backend.account_id}'"
        )
    return rule


def _check_secret(backend: ECRBackend, credential_arn: str) -> None:
    """Existence / access / decryptability of a PTC secret (content is NOT read: ecr-facts §1.3)."""
    parts = credential_arn.split(":")
    region, account = parts[3], parts[4]
    if account != backend.account_id or region != backend.region_name:
        # Observed wording (third-party lint rules, ecr-facts §1.3): the secret must be local.
        raise SecretNotFoundException(
            "Please verify the secret exists in the same region and account that the pullthrough cache rule "
            "will be created in"
        )
    secrets = secretsmanager_backends[account][region].secrets
    secret = secrets.get(credential_arn)
    if secret is None:
        raise SecretNotFoundException(f"The specified secret {credential_arn} could not be found")
    if secret.is_deleted():
        # [?] A secret scheduled for deletion cannot be read (GetSecretValue -> InvalidRequestException);
        # we report it as an access problem.
        raise UnableToAccessSecretException(
            f"Unable to access the secret {credential_arn}: the secret is scheduled for deletion"
        )
    if _policy_denies_read(getattr(secret, "policy", None)):
        raise UnableToAccessSecretException(
            f"Unable to access the secret {credential_arn}. Verify the secret's resource policy allows "
            "Amazon ECR to read it"
        )
    kms_key = getattr(secret, "kms_key_id", None)
    if kms_key and kms_key not in _AWS_MANAGED_SECRET_KEYS:
        # Customer managed keys are not supported for PTC secrets (docs; the SLR has no kms:Decrypt).
        # Whether Create already fails or only pulls do is [obs]/[?] (ecr-facts §2); we fail early.
        raise UnableToDecryptSecretValueException(
            f"Unable to decrypt the secret {credential_arn}. Pull through cache secrets must be encrypted "
            "with the AWS managed key aws/secretsmanager"
        )


def _policy_denies_read(policy_text: str | None) -> bool:
    """True when a secret resource policy explicitly denies ``secretsmanager:GetSecretValue``."""
    if not policy_text:
        return False
    try:
        statements = json.loads(policy_text).get("Statement", [])
    except (ValueError, AttributeError):
        return False
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if any(a in {"*", "secretsmanager:*", "secretsmanager:GetSecretValue"} for a in actions):
            return True
    return False


def _check_credentials(
    backend: ECRBackend, upstream_registry: str, credential_arn: str | None, custom_role_arn: str | None
) -> None:
    """The credential/role matrix of ecr-facts §9.4 (messages of §1.3)."""
    _check_credential_type(upstream_registry, credential_arn, custom_role_arn)
    if custom_role_arn:
        _check_custom_role(backend, custom_role_arn)
    if credential_arn:
        _check_secret(backend, credential_arn)


def _check_credential_type(upstream_registry: str, credential_arn: str | None, custom_role_arn: str | None) -> None:
    """Which upstreams take a secret, a role, or nothing (ecr-facts §9.4)."""
    if upstream_registry in SECRET_UPSTREAMS:
        if custom_role_arn:
            # Message from third-party lint rules (unverified, ecr-facts §1.3).
            raise InvalidParameterException("Upstream registry URL and provided credential type do not match")
        if not credential_arn:
            # Observed in aws-controllers-k8s/community#2589.
            raise UnsupportedUpstreamRegistryException(AUTH_REQUIRED_MESSAGE)
    elif upstream_registry in ANONYMOUS_UPSTREAMS:
        if credential_arn:
            # Wording from third-party lint rules (unverified); the exception class is our choice [?].
            raise UnsupportedUpstreamRegistryException("The specified upstream registry doesn't require authentication")
        if custom_role_arn:
            raise InvalidParameterException("Upstream registry URL and provided credential type do not match")
    elif upstream_registry in ROLE_UPSTREAMS and credential_arn:
        raise InvalidParameterException("Upstream registry URL and provided credential type do not match")


def _check_custom_role(backend: ECRBackend, custom_role_arn: str) -> None:
    """A valid IAM role ARN, in the registry's own account."""
    match = _ROLE_ARN.fullmatch(custom_role_arn)
    if match is None:
        raise InvalidParameterException(
            f"Invalid parameter at 'customRoleArn' failed to satisfy constraint: "
            f"'{custom_role_arn} is not a valid IAM role ARN'"
        )
    if match.group("account") != backend.account_id:
        # "The role must be in the same account as the cache registry" (ECR-to-ECR PTC docs).
        raise InvalidParameterException(
            "Invalid parameter at 'customRoleArn' failed to satisfy constraint: "
            "'The role must be in the same account as the registry'"
        )


def create_pull_through_cache_rule(
    self: ECRBackend,
    *,
    ecr_repository_prefix: str,
    upstream_registry_url: str,
    registry_id: str | None = None,
    upstream_registry: str | None = None,
    credential_arn: str | None = None,
    custom_role_arn: str | None = None,
    upstream_repository_prefix: str | None = None,
) -> PullThroughCacheRule:
    """``CreatePullThroughCacheRule`` (inputs already model-validated)."""
    account = _check_registry_id(self, registry_id)
    prefix = normalize_prefix(ecr_repository_prefix)
    upstream_prefix = normalize_prefix(upstream_repository_prefix or ROOT)
    if prefix == ROOT and upstream_prefix != ROOT:
        # "It may be set only when the ECR prefix is not ROOT" (ECR-to-ECR PTC docs, ecr-facts §1.5).
        raise InvalidParameterException(
            "Invalid parameter at 'upstreamRepositoryPrefix' failed to satisfy constraint: "
            "'upstreamRepositoryPrefix can only be specified when ecrRepositoryPrefix is not ROOT'"
        )
    inferred = infer_upstream_registry(upstream_registry_url)
    if upstream_registry and upstream_registry != inferred:
        # [?] ECR's reaction to a mismatching pair is undocumented; rejecting is the safe reading.
        raise UnsupportedUpstreamRegistryException(
            f"The upstream registry {upstream_registry} does not match the upstream registry URL "
            f"{upstream_registry_url}. Specify a valid upstream registry URL and try again"
        )
    _check_credentials(self, inferred, credential_arn, custom_role_arn)
    state = ext_state(self)
    with state.lock:
        if prefix in state.rules:
            raise PullThroughCacheRuleAlreadyExistsException(
                f"The pull through cache rule with prefix '{prefix}' already exists in the registry with id '{account}'"
            )
        if len(state.rules) >= MAX_RULES:
            raise LimitExceededException(
                f"The maximum number of pull through cache rules ({MAX_RULES}) for this registry has been reached"
            )
        created = clock.now().replace(microsecond=0)
        rule = PullThroughCacheRule(
            ecr_repository_prefix=prefix,
            upstream_registry_url=upstream_registry_url,
            upstream_registry=inferred,
            registry_id=account,
            created_at=created,
            # [?] ECR's updatedAt before the first update is not documented; we report createdAt.
            updated_at=created,
            upstream_repository_prefix=upstream_prefix,
            credential_arn=credential_arn,
            custom_role_arn=custom_role_arn,
        )
        state.rules[prefix] = rule
        return rule


def describe_pull_through_cache_rules(
    self: ECRBackend, *, registry_id: str | None = None, ecr_repository_prefixes: list[str] | None = None
) -> list[PullThroughCacheRule]:
    """``DescribePullThroughCacheRules``: the named rules (all must exist) or all, sorted by prefix."""
    _check_registry_id(self, registry_id)
    state = ext_state(self)
    with state.lock:
        if ecr_repository_prefixes:
            return [_require_rule(self, p) for p in ecr_repository_prefixes]
        return [state.rules[k] for k in sorted(state.rules)]


def update_pull_through_cache_rule(
    self: ECRBackend,
    *,
    ecr_repository_prefix: str,
    registry_id: str | None = None,
    credential_arn: str | None = None,
    custom_role_arn: str | None = None,
) -> PullThroughCacheRule:
    """``UpdatePullThroughCacheRule``: only the credential / role change; ``updatedAt`` is set."""
    _check_registry_id(self, registry_id)
    state = ext_state(self)
    with state.lock:
        rule = _require_rule(self, ecr_repository_prefix)
        if credential_arn is None and custom_role_arn is None:
            # [?] Both are optional in the model; an update that changes nothing is rejected here.
            raise InvalidParameterException(
                "Invalid parameter: at least one of 'credentialArn' or 'customRoleArn' must be specified"
            )
        new_credential = credential_arn if credential_arn is not None else rule.credential_arn
        new_role = custom_role_arn if custom_role_arn is not None else rule.custom_role_arn
        _check_credentials(self, rule.upstream_registry, new_credential, new_role)
        rule.credential_arn = new_credential
        rule.custom_role_arn = new_role
        rule.updated_at = clock.now().replace(microsecond=0)
        return rule


def delete_pull_through_cache_rule(
    self: ECRBackend, *, ecr_repository_prefix: str, registry_id: str | None = None
) -> PullThroughCacheRule:
    """``DeletePullThroughCacheRule``: removes the rule only; cached repositories stay (ecr-facts §1.2)."""
    _check_registry_id(self, registry_id)
    state = ext_state(self)
    with state.lock:
        rule = _require_rule(self, ecr_repository_prefix)
        del state.rules[rule.ecr_repository_prefix]
        return rule


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    rule: PullThroughCacheRule
    is_valid: bool
    failure: str | None


def validate_pull_through_cache_rule(
    self: ECRBackend, *, ecr_repository_prefix: str, registry_id: str | None = None
) -> ValidationOutcome:
    """``ValidatePullThroughCacheRule``: read the secret, check its keys, try the upstream (HTTP 200 always).

    ``failure`` strings are undocumented by AWS (ecr-facts §2); ours name the problem, never the secret.
    """
    _check_registry_id(self, registry_id)
    rule = _require_rule(self, ecr_repository_prefix)
    if rule.upstream_registry in ROLE_UPSTREAMS:
        return ValidationOutcome(rule, *_validate_role_rule(self, rule))
    username, token = "", ""
    if rule.credential_arn:
        read = _read_credential(self, rule.credential_arn)
        if isinstance(read, str):
            return ValidationOutcome(rule, False, read)
        username, token = read
    result = get_upstream_auth_checker().check(
        upstream_registry=rule.upstream_registry,
        upstream_registry_url=rule.upstream_registry_url,
        upstream_repository_prefix=rule.upstream_repository_prefix,
        username=username,
        access_token=token,
    )
    return ValidationOutcome(rule, result.is_valid, None if result.is_valid else (result.failure or "unknown failure"))


def _validate_role_rule(backend: ECRBackend, rule: PullThroughCacheRule) -> tuple[bool, str | None]:
    """ECR-to-ECR rules: the fake cannot assume roles; it checks the documented precondition only."""
    match = _ECR_HOST.fullmatch(rule.upstream_registry_url)
    if match and match.group("account") != backend.account_id and not rule.custom_role_arn:
        # "role needed when upstream is another account" (ecr-facts §1.4).
        return False, "A custom role ARN is required to pull from an upstream registry in another account"
    return True, None


def _read_credential(backend: ECRBackend, credential_arn: str) -> tuple[str, str] | str:
    """(username, accessToken) from the AWSCURRENT version, or the failure text."""
    try:
        _check_secret(backend, credential_arn)
        sm = secretsmanager_backends[backend.account_id][backend.region_name]
        value = sm.get_secret_value(credential_arn, None, "AWSCURRENT")  # type: ignore[arg-type]
    except Exception as exc:  # any secret problem is a validation failure, not an API error
        code = getattr(exc, "code", None) or getattr(exc, "error_type", None) or type(exc).__name__
        return f"Unable to read the secret for the pull through cache rule ({code})"
    text = value.get("SecretString")
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "The secret value is not valid JSON with the keys 'username' and 'accessToken'"
    missing = [k for k in ("username", "accessToken") if not isinstance(data.get(k), str) or not data.get(k)]
    if missing:
        return f"The secret value is missing the required key(s): {', '.join(missing)}"
    return str(data["username"]), str(data["accessToken"])


# --------------------------------------------------------------------------------------------------
# Request handlers
# --------------------------------------------------------------------------------------------------


def _create(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    rule = backend.create_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecr_repository_prefix=params["ecrRepositoryPrefix"],
        upstream_registry_url=params["upstreamRegistryUrl"],
        registry_id=params.get("registryId"),
        upstream_registry=params.get("upstreamRegistry"),
        credential_arn=params.get("credentialArn"),
        custom_role_arn=params.get("customRoleArn"),
        upstream_repository_prefix=params.get("upstreamRepositoryPrefix"),
    )
    result: dict[str, Any] = rule.to_dict()
    return result


def _describe(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    rules: list[PullThroughCacheRule] = backend.describe_pull_through_cache_rules(  # type: ignore[attr-defined]
        registry_id=params.get("registryId"), ecr_repository_prefixes=params.get("ecrRepositoryPrefixes")
    )
    page, token = paginate(rules, params.get("maxResults"), params.get("nextToken"))
    return {"pullThroughCacheRules": [r.to_dict() for r in page], "nextToken": token}


def _update(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    rule = backend.update_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecr_repository_prefix=params["ecrRepositoryPrefix"],
        registry_id=params.get("registryId"),
        credential_arn=params.get("credentialArn"),
        custom_role_arn=params.get("customRoleArn"),
    )
    result: dict[str, Any] = rule.to_dict()
    return result


def _delete(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    rule = backend.delete_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecr_repository_prefix=params["ecrRepositoryPrefix"], registry_id=params.get("registryId")
    )
    result: dict[str, Any] = rule.to_dict()
    return result


def _validate(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    outcome: ValidationOutcome = backend.validate_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecr_repository_prefix=params["ecrRepositoryPrefix"], registry_id=params.get("registryId")
    )
    result = outcome.rule.to_dict()
    result["isValid"] = outcome.is_valid
    if outcome.failure:
        result["failure"] = outcome.failure
    return result


def install() -> None:
    """Attach the five operations to moto's ECR backend and response classes (idempotent)."""
    add_backend_method("create_pull_through_cache_rule", create_pull_through_cache_rule)
    add_backend_method("describe_pull_through_cache_rules", describe_pull_through_cache_rules)
    add_backend_method("update_pull_through_cache_rule", update_pull_through_cache_rule)
    add_backend_method("delete_pull_through_cache_rule", delete_pull_through_cache_rule)
    add_backend_method("validate_pull_through_cache_rule", validate_pull_through_cache_rule)
    add_response_action(
        "create_pull_through_cache_rule", api_action("CreatePullThroughCacheRule", _create, mutating=True)
    )
    add_response_action(
        "describe_pull_through_cache_rules", api_action("DescribePullThroughCacheRules", _describe, mutating=False)
    )
    add_response_action(
        "update_pull_through_cache_rule", api_action("UpdatePullThroughCacheRule", _update, mutating=True)
    )
    add_response_action(
        "delete_pull_through_cache_rule", api_action("DeletePullThroughCacheRule", _delete, mutating=True)
    )
    add_response_action(
        "validate_pull_through_cache_rule", api_action("ValidatePullThroughCacheRule", _validate, mutating=False)
    )

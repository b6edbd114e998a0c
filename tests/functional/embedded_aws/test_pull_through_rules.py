"""Pull-through cache rule API of the embedded ECR (ecr-facts §1, §9 items 1-10), through boto3."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from devstack.aws import clock, ports
from devstack.aws.ports import AuthCheckResult
from devstack.aws.state import PullThroughCacheRule, upstream_repository_name
from tests.functional.embedded_aws.conftest import EmbeddedAws

pytestmark = pytest.mark.functional

DOCKER_HUB = "registry-1.docker.io"


@contextmanager
def aws_error(code: str, message_part: str = "") -> Iterator[None]:
    """Expect a ``ClientError`` with this AWS error code (and message fragment)."""
    with pytest.raises(ClientError) as info:
        yield
    error = info.value.response["Error"]
    assert error["Code"] == code, error
    assert message_part in error["Message"], error["Message"]


class RecordingChecker:
    """An ``UpstreamAuthChecker`` that records its calls and answers as told."""

    def __init__(self, result: AuthCheckResult) -> None:
        self.result = result
        self.calls: list[dict[str, str]] = []

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        self.calls.append(
            {
                "upstream_registry": upstream_registry,
                "upstream_registry_url": upstream_registry_url,
                "upstream_repository_prefix": upstream_repository_prefix,
                "username": username,
                "access_token": access_token,
            }
        )
        return self.result


# ---------------------------------------------------------------------------------------------- §9.1


@pytest.mark.parametrize("prefix", ["Upper", "-dash", "a//b", "ends-", "has space", "Root"])
def test_prefix_pattern_is_enforced(embedded_aws: EmbeddedAws, prefix: str) -> None:
    """ecr-facts §9.1: a prefix outside the botocore regex -> ValidationException (server-side check)."""
    with aws_error("ValidationException", "ecrRepositoryPrefix"):
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io")


@pytest.mark.parametrize("prefix", ["q", "x" * 31])
def test_prefix_length_is_2_to_30(embedded_aws: EmbeddedAws, prefix: str) -> None:
    """ecr-facts §9.1: prefix length 2-30, enforced by the server (botocore checks only the minimum)."""
    if len(prefix) < 2:
        with pytest.raises(ParamValidationError):
            embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io")
    with aws_error("ValidationException", "length"):
        embedded_aws.ecr_unchecked.create_pull_through_cache_rule(
            ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io"
        )


def test_root_and_nested_prefixes_are_accepted(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.1: the literal ROOT and multi-segment prefixes are valid."""
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ROOT", upstreamRegistryUrl="public.ecr.aws")
    embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="team-a/k8s", upstreamRegistryUrl="registry.k8s.io"
    )
    prefixes = [
        r["ecrRepositoryPrefix"] for r in embedded_aws.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    ]
    assert prefixes == ["ROOT", "team-a/k8s"]


def test_trailing_slash_names_the_same_rule(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.1: an implied trailing '/' -- 'quay' and 'quay/' are the same rule."""
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay/", upstreamRegistryUrl="quay.io")
    with aws_error("PullThroughCacheRuleAlreadyExistsException"):
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    found = embedded_aws.ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["quay"])["pullThroughCacheRules"]
    assert [r["ecrRepositoryPrefix"] for r in found] == ["quay"]
    embedded_aws.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay/")


# ---------------------------------------------------------------------------------------------- §9.2


def test_upstream_prefix_defaults_to_root(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.2: upstreamRepositoryPrefix defaults to ROOT."""
    created = embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    assert created["upstreamRepositoryPrefix"] == "ROOT"


def test_upstream_prefix_needs_a_non_root_ecr_prefix(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.2: a non-ROOT upstream prefix with ecrRepositoryPrefix=ROOT -> InvalidParameterException."""
    with aws_error("InvalidParameterException", "upstreamRepositoryPrefix"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="ROOT",
            upstreamRegistryUrl="cgr.dev",
            upstreamRepositoryPrefix="my-org",
            credentialArn=embedded_aws.secret("ecr-pullthroughcache/chainguard"),
        )


def test_upstream_prefix_maps_repository_names() -> None:
    """ecr-facts §9.2 / §1.5: the documented name mappings between cache and upstream repositories."""
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def rule(ecr: str, upstream: str) -> PullThroughCacheRule:
        return PullThroughCacheRule(ecr, "x", "ecr", "123456789012", now, now, upstream_repository_prefix=upstream)

    assert upstream_repository_name(rule("ecr-public", "ROOT"), "ecr-public/my-app/image1") == "my-app/image1"
    assert upstream_repository_name(rule("ROOT", "ROOT"), "my-app/image1") == "my-app/image1"
    assert upstream_repository_name(rule("team-a", "team-a"), "team-a/myapp/image1") == "team-a/myapp/image1"
    assert upstream_repository_name(rule("my-app", "upstream-app"), "my-app/image1") == "upstream-app/image1"


# ---------------------------------------------------------------------------------------------- §9.3


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("public.ecr.aws", "ecr-public"),
        ("registry.k8s.io", "k8s"),
        ("quay.io", "quay"),
        ("registry-1.docker.io", "docker-hub"),
        ("ghcr.io", "github-container-registry"),
        ("myregistry.azurecr.io", "azure-container-registry"),
        ("registry.gitlab.com", "gitlab-container-registry"),
        ("cgr.dev", "chainguard"),
        ("210987654321.dkr.ecr.eu-west-1.amazonaws.com", "ecr"),
    ],
)
def test_upstream_registry_is_inferred_from_the_url(embedded_aws: EmbeddedAws, url: str, expected: str) -> None:
    """ecr-facts §9.3: every allow-listed host is accepted and upstreamRegistry is inferred from it."""
    kwargs: dict[str, Any] = {}
    if expected in {
        "docker-hub",
        "github-container-registry",
        "azure-container-registry",
        "gitlab-container-registry",
        "chainguard",
    }:
        kwargs["credentialArn"] = embedded_aws.secret(f"ecr-pullthroughcache/{expected}")
    created = embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="cache", upstreamRegistryUrl=url, **kwargs
    )
    assert created["upstreamRegistry"] == expected


@pytest.mark.parametrize("url", ["docker.io", "harbor.example.com", "https://ghcr.io", "ghcr.io:443", "ab.azurecr.io"])
def test_upstream_url_outside_the_allow_list_is_unsupported(embedded_aws: EmbeddedAws, url: str) -> None:
    """ecr-facts §9.3: exact hosts only -> UnsupportedUpstreamRegistryException with ECR's observed wording."""
    with aws_error("UnsupportedUpstreamRegistryException", f"The upstream registry URL {url} is invalid"):
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="cache", upstreamRegistryUrl=url)


def test_upstream_registry_must_match_the_url(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.3: an explicit upstreamRegistry that contradicts the URL is rejected."""
    with aws_error("UnsupportedUpstreamRegistryException"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io", upstreamRegistry="k8s"
        )
    with aws_error("ValidationException", "enum"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="quay",
            upstreamRegistryUrl="quay.io",
            upstreamRegistry="harbor",  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------------------------------- §9.4


@pytest.mark.parametrize("url", [DOCKER_HUB, "ghcr.io", "myregistry.azurecr.io", "registry.gitlab.com", "cgr.dev"])
def test_authenticated_upstreams_require_a_credential(embedded_aws: EmbeddedAws, url: str) -> None:
    """ecr-facts §9.4: secret-based upstreams without credentialArn -> UnsupportedUpstreamRegistryException."""
    with aws_error("UnsupportedUpstreamRegistryException", "requires authentication"):
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="cache", upstreamRegistryUrl=url)


@pytest.mark.parametrize("url", ["public.ecr.aws", "registry.k8s.io", "quay.io"])
def test_anonymous_upstreams_reject_a_credential(embedded_aws: EmbeddedAws, url: str) -> None:
    """ecr-facts §9.4: ecr-public/k8s/quay reject credentialArn."""
    arn = embedded_aws.secret("ecr-pullthroughcache/anon")
    with aws_error("UnsupportedUpstreamRegistryException", "doesn't require authentication"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="cache", upstreamRegistryUrl=url, credentialArn=arn
        )


def test_custom_role_only_for_ecr_upstreams(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.4: customRoleArn only for `ecr`; `ecr` takes no credentialArn; the role is same-account."""
    role = f"arn:aws:iam::{embedded_aws.account_id}:role/ptc-upstream"
    arn = embedded_aws.secret("ecr-pullthroughcache/ghcr")
    with aws_error("InvalidParameterException", "credential type do not match"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="ghcr", upstreamRegistryUrl="ghcr.io", credentialArn=arn, customRoleArn=role
        )
    with aws_error("InvalidParameterException", "credential type do not match"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io", customRoleArn=role
        )
    upstream = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    with aws_error("InvalidParameterException", "credential type do not match"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="central", upstreamRegistryUrl=upstream, credentialArn=arn
        )
    with aws_error("InvalidParameterException", "same account"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="central",
            upstreamRegistryUrl=upstream,
            customRoleArn="arn:aws:iam::210987654321:role/x",
        )
    created = embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="central", upstreamRegistryUrl=upstream, customRoleArn=role, upstreamRepositoryPrefix="prod"
    )
    assert (created["upstreamRegistry"], created["customRoleArn"]) == ("ecr", role)


# ---------------------------------------------------------------------------------------------- §9.5


def test_credential_arn_must_name_an_ecr_pullthroughcache_secret(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.5: credentialArn regex (secret name under ecr-pullthroughcache/) -> ValidationException."""
    arn = embedded_aws.secret("docker-hub-credential-with-a-long-enough-name")
    with aws_error("ValidationException", "credentialArn"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
        )


def test_credential_arn_length_is_50_to_612(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.5: credentialArn length 50-612 (botocore checks the minimum, the server both)."""
    short = "arn:aws:secretsmanager:us-east-1:1:secret:x"
    with pytest.raises(ParamValidationError):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=short
        )
    long = f"arn:aws:secretsmanager:us-east-1:{embedded_aws.account_id}:secret:ecr-pullthroughcache/{'a' * 560}"
    assert len(long) > 612
    for arn in (short, long):
        with aws_error("ValidationException", "credentialArn' failed to satisfy constraint: Member must have length"):
            embedded_aws.ecr_unchecked.create_pull_through_cache_rule(
                ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
            )


def test_missing_secret_is_secret_not_found(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.5: a well-formed ARN of a secret that does not exist -> SecretNotFoundException."""
    where = f"{embedded_aws.region}:{embedded_aws.account_id}"
    arn = f"arn:aws:secretsmanager:{where}:secret:ecr-pullthroughcache/nope-AbCdEf"
    with aws_error("SecretNotFoundException"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
        )


def test_secret_in_another_region_is_not_found(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.5 / §1.5: the secret must be in the rule's account and Region."""
    arn = embedded_aws.secret("ecr-pullthroughcache/docker-hub").replace(embedded_aws.region, "eu-west-1")
    with aws_error("SecretNotFoundException", "same region and account"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
        )


def test_create_does_not_validate_secret_content(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.5 / §1.3: Create accepts a secret whose value is not credentials JSON (reported, terraform)."""
    arn = embedded_aws.secret("ecr-pullthroughcache/docker-hub", "test")
    created = embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
    )
    assert created["credentialArn"] == arn


def test_unreadable_secrets_are_access_or_decrypt_errors(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.5: KMS problem -> UnableToDecryptSecretValue..., access problem -> UnableToAccessSecret..."""
    cmk = embedded_aws.secret("ecr-pullthroughcache/cmk", KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/abc-123")
    with aws_error("UnableToDecryptSecretValueException"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=cmk
        )
    denied = embedded_aws.secret("ecr-pullthroughcache/denied")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
    }
    embedded_aws.secretsmanager.put_resource_policy(SecretId=denied, ResourcePolicy=json.dumps(policy))
    with aws_error("UnableToAccessSecretException"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=denied
        )


# ---------------------------------------------------------------------------------------------- §9.6


def test_duplicate_prefix_already_exists(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.6: duplicate prefix -> PullThroughCacheRuleAlreadyExistsException."""
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    with aws_error("PullThroughCacheRuleAlreadyExistsException", "quay"):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="quay", upstreamRegistryUrl="registry.k8s.io"
        )


def test_fifty_first_rule_exceeds_the_quota(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.6 / §1.6: 50 rules per registry; the 51st -> LimitExceededException."""
    for index in range(50):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=f"quay-{index:02d}", upstreamRegistryUrl="quay.io"
        )
    with aws_error("LimitExceededException"):
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay-50", upstreamRegistryUrl="quay.io")


# ---------------------------------------------------------------------------------------------- §9.7


def test_describe_without_prefixes_pages_through_all_rules(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.7: Describe with no prefixes returns all rules, paginated (boto3 paginator, nextToken)."""
    for index in range(7):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=f"quay-{index}", upstreamRegistryUrl="quay.io"
        )
    paginator = embedded_aws.ecr.get_paginator("describe_pull_through_cache_rules")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["pullThroughCacheRules"]) for p in pages] == [3, 3, 1]
    names = [r["ecrRepositoryPrefix"] for p in pages for r in p["pullThroughCacheRules"]]
    assert names == [f"quay-{i}" for i in range(7)]
    assert len(embedded_aws.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]) == 7  # default 100


def test_describe_max_results_is_1_to_1000(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.7: maxResults outside 1-1000 is rejected by the server too."""
    for bad in (0, 1001):
        with aws_error("ValidationException", "maxResults"):
            embedded_aws.ecr_unchecked.describe_pull_through_cache_rules(maxResults=bad)
    with aws_error("InvalidParameterException", "nextToken"):
        embedded_aws.ecr.describe_pull_through_cache_rules(nextToken="not-a-token")


def test_unknown_prefix_is_not_found_everywhere(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.7: unknown prefix in Describe/Update/Delete/Validate -> PullThroughCacheRuleNotFoundException."""
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    arn = embedded_aws.secret("ecr-pullthroughcache/x")
    calls: list[Callable[[], object]] = [
        lambda: embedded_aws.ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["quay", "nope"]),
        lambda: embedded_aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="nope", credentialArn=arn),
        lambda: embedded_aws.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="nope"),
        lambda: embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="nope"),
    ]
    for call in calls:
        with aws_error("PullThroughCacheRuleNotFoundException", "nope"):
            call()


# ---------------------------------------------------------------------------------------------- §9.8


def test_update_changes_only_the_credential_and_sets_updated_at(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.8: Update changes credentialArn/customRoleArn only and sets updatedAt."""
    first = embedded_aws.secret("ecr-pullthroughcache/docker-hub-old")
    second = embedded_aws.secret("ecr-pullthroughcache/docker-hub-new")
    with clock.FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) as fake:
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=first
        )
        fake.advance(hours=5)
        updated = embedded_aws.ecr.update_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", credentialArn=second
        )
    assert updated["credentialArn"] == second
    assert updated["updatedAt"] == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    rule = embedded_aws.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"][0]
    assert rule["createdAt"] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert (rule["upstreamRegistryUrl"], rule["upstreamRepositoryPrefix"], rule["credentialArn"]) == (
        DOCKER_HUB,
        "ROOT",
        second,
    )
    with aws_error("SecretNotFoundException"):
        embedded_aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub", credentialArn=first + "x")


def test_delete_returns_the_rule_and_keeps_cached_repositories(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.8: Delete returns the removed rule and leaves cached repositories untouched."""
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    embedded_aws.ecr.create_repository(repositoryName="quay/argoproj/argocd")
    embedded_aws.put_image("quay/argoproj/argocd", "v2.10.0")
    deleted = embedded_aws.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert (deleted["ecrRepositoryPrefix"], deleted["upstreamRegistryUrl"]) == ("quay", "quay.io")
    assert embedded_aws.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []
    images = embedded_aws.ecr.list_images(repositoryName="quay/argoproj/argocd")["imageIds"]
    assert [i.get("imageTag") for i in images] == ["v2.10.0"]


# ---------------------------------------------------------------------------------------------- §9.9


def test_validate_reads_the_secret_and_tries_the_upstream(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.9: Validate reads AWSCURRENT and makes an authentication attempt with username/accessToken."""
    checker = RecordingChecker(AuthCheckResult(is_valid=True))
    ports.set_upstream_auth_checker(checker)
    arn = embedded_aws.secret("ecr-pullthroughcache/ghcr", {"username": "octo", "accessToken": "ghp_old"})
    embedded_aws.secretsmanager.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "octo", "accessToken": "ghp_new"})
    )
    embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="ghcr", upstreamRegistryUrl="ghcr.io", credentialArn=arn, upstreamRepositoryPrefix="my-org"
    )
    result = embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="ghcr")
    assert result["isValid"] is True
    assert "failure" not in result
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert checker.calls == [
        {
            "upstream_registry": "github-container-registry",
            "upstream_registry_url": "ghcr.io",
            "upstream_repository_prefix": "my-org",
            "username": "octo",
            "access_token": "ghp_new",
        }
    ]


@pytest.mark.parametrize(
    ("value", "failure_part"),
    [
        ("test", "not valid JSON"),
        ({"username": "octo"}, "accessToken"),
        ({"user": "octo", "token": "x"}, "username, accessToken"),
    ],
)
def test_validate_reports_bad_secret_content_as_invalid(
    embedded_aws: EmbeddedAws, value: str | dict[str, str], failure_part: str
) -> None:
    """ecr-facts §9.9: a secret without JSON keys username + accessToken -> isValid=false (HTTP 200, no exception)."""
    checker = RecordingChecker(AuthCheckResult(is_valid=True))
    ports.set_upstream_auth_checker(checker)
    arn = embedded_aws.secret("ecr-pullthroughcache/docker-hub", value)
    embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
    )
    result = embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    assert result["isValid"] is False
    assert failure_part in result["failure"]
    assert checker.calls == []


def test_validate_reports_upstream_rejection_and_deleted_secrets(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.9: bad credentials at the upstream, or an unreadable secret, are isValid=false, never errors."""
    ports.set_upstream_auth_checker(RecordingChecker(AuthCheckResult(False, "401 Unauthorized from upstream")))
    arn = embedded_aws.secret("ecr-pullthroughcache/docker-hub")
    embedded_aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=arn
    )
    result = embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    assert (result["isValid"], result["failure"]) == (False, "401 Unauthorized from upstream")
    embedded_aws.secretsmanager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    result = embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    assert result["isValid"] is False
    assert "Unable to read the secret" in result["failure"]
    assert "token-123" not in json.dumps(result, default=str)


def test_validate_without_an_upstream_checker(embedded_aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """ecr-facts §9.9: with no upstream checker available the answer is isValid=false 'upstream check unavailable'."""
    monkeypatch.setattr(ports, "UPSTREAM_MODULE", "devstack.aws.no_such_module")
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    result = embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert (result["isValid"], result["failure"]) == (False, "upstream check unavailable")


def test_validate_cross_account_ecr_rule_needs_a_role(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.9 / §1.4: an ECR upstream in another account is only valid with a customRoleArn."""
    upstream = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="central", upstreamRegistryUrl=upstream)
    result = embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="central")
    assert result["isValid"] is False
    role = f"arn:aws:iam::{embedded_aws.account_id}:role/ptc"
    embedded_aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="central", customRoleArn=role)
    assert embedded_aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="central")["isValid"] is True


# ---------------------------------------------------------------------------------------------- §9.10


def test_timestamps_and_registry_id(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.10: createdAt/updatedAt are timestamps (epoch seconds on the wire); registryId is the account."""
    with clock.FakeClock(datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)):
        created = embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io"
        )
    assert created["registryId"] == embedded_aws.account_id
    assert created["createdAt"] == datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    rule = embedded_aws.ecr.describe_pull_through_cache_rules(registryId=embedded_aws.account_id)[
        "pullThroughCacheRules"
    ][0]
    assert rule["updatedAt"] - rule["createdAt"] == timedelta(0)
    with aws_error("InvalidParameterException", "registryId"):
        embedded_aws.ecr.describe_pull_through_cache_rules(registryId="210987654321")

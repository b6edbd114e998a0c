"""RuleSpec / RepositorySettings: every upstream kind's shapes, every field's invalid cases, ECR requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ecrcache.errors import InvalidInputError, field_errors_from_pydantic
from ecrcache.models.common import parse_ecr_prefix
from ecrcache.models.lifecycle import LifecycleSpec
from ecrcache.models.rule import EncryptionSettings, RepositorySettings, RuleSpec
from ecrcache.models.upstream import UpstreamKind, default_url, requires_credential

pytestmark = pytest.mark.unit

AZURE_URL = "myregistry.azurecr.io"
ECR_URL = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
VALID_URL = {
    UpstreamKind.DOCKER_HUB: "registry-1.docker.io",
    UpstreamKind.GITHUB_CONTAINER_REGISTRY: "ghcr.io",
    UpstreamKind.QUAY: "quay.io",
    UpstreamKind.GITLAB_CONTAINER_REGISTRY: "registry.gitlab.com",
    UpstreamKind.AZURE_CONTAINER_REGISTRY: AZURE_URL,
    UpstreamKind.ECR: ECR_URL,
    UpstreamKind.ECR_PUBLIC: "public.ecr.aws",
    UpstreamKind.K8S: "registry.k8s.io",
    UpstreamKind.CHAINGUARD: "cgr.dev",
}
ROLE = "arn:aws:iam::123456789012:role/ecr-ptc-creation"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CREDENTIAL_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
CREDENTIAL_KINDS = [k for k in UpstreamKind if requires_credential(k)]
NO_CREDENTIAL_KINDS = [k for k in UpstreamKind if not requires_credential(k)]
FIXED_URL_KINDS = [k for k in UpstreamKind if default_url(k) is not None]


def minimal(kind: UpstreamKind, **extra: Any) -> dict[str, Any]:
    """The smallest valid rule for ``kind``."""
    data: dict[str, Any] = {"upstream_kind": kind.value}
    if default_url(kind) is None:
        data["upstream_url"] = VALID_URL[kind]
    if requires_credential(kind):
        data["credential"] = "cred"
    return {**data, **extra}


def errors(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {e.field: e.message for e in field_errors_from_pydantic(exc.value)}


def rule_errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        RuleSpec.model_validate(data)
    return errors(exc)


def settings_errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        RepositorySettings.model_validate(data)
    return errors(exc)


# ---------------------------------------------------------------------------------------------- kinds


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_rule_minimal_spec_is_valid_for_every_kind(kind: UpstreamKind) -> None:
    # GIVEN the smallest valid rule of the kind
    # WHEN validated
    rule = RuleSpec.model_validate(minimal(kind))
    # THEN the URL is the kind's, the defaults are the documented ones
    assert rule.effective_url() == VALID_URL[kind]
    assert rule.upstream_repository_prefix == "ROOT"
    assert rule.regions == ()
    assert rule.deletion_policy == "retain"
    assert rule.repository == RepositorySettings()


@pytest.mark.parametrize("kind", FIXED_URL_KINDS)
def test_rule_upstream_url_is_defaulted_and_dumped_for_fixed_kinds(kind: UpstreamKind) -> None:
    # GIVEN a rule of a fixed-URL kind without upstream_url
    rule = RuleSpec.model_validate(minimal(kind))
    # WHEN dumped / THEN the default URL is explicit
    assert rule.model_dump(mode="json")["upstream_url"] == VALID_URL[kind]


@pytest.mark.parametrize("kind", [UpstreamKind.AZURE_CONTAINER_REGISTRY, UpstreamKind.ECR])
def test_rule_upstream_url_is_required_for_azure_and_ecr(kind: UpstreamKind) -> None:
    # GIVEN an azure/ecr rule without upstream_url
    data = {k: v for k, v in minimal(kind).items() if k != "upstream_url"}
    # WHEN / THEN the error names the field and the expected URL shape
    message = rule_errors(data)["upstream_url"]
    assert "needs upstream_url" in message
    assert ("azurecr.io" in message) or ("dkr.ecr" in message)


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_rule_rejects_the_url_of_another_kind(kind: UpstreamKind) -> None:
    # GIVEN a rule whose URL belongs to another kind
    other = UpstreamKind.QUAY if kind is not UpstreamKind.QUAY else UpstreamKind.CHAINGUARD
    # WHEN / THEN upstream_url is reported, naming both kinds
    message = rule_errors(minimal(kind, upstream_url=VALID_URL[other]))["upstream_url"]
    assert kind.value in message
    assert other.value in message


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_rule_accepts_its_own_url_in_upper_case_and_lowercases_it(kind: UpstreamKind) -> None:
    # GIVEN the kind's URL in upper case / WHEN validated / THEN stored lowercase
    rule = RuleSpec.model_validate(minimal(kind, upstream_url=VALID_URL[kind].upper()))
    assert rule.upstream_url == VALID_URL[kind]


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_rule_credential_is_required_for_secret_based_kinds(kind: UpstreamKind) -> None:
    # GIVEN an authenticated upstream without a credential
    data = {k: v for k, v in minimal(kind).items() if k != "credential"}
    # WHEN / THEN credential is reported as required
    assert "requires a credential" in rule_errors(data)["credential"]


@pytest.mark.parametrize("kind", NO_CREDENTIAL_KINDS)
def test_rule_credential_is_forbidden_for_anonymous_kinds(kind: UpstreamKind) -> None:
    # GIVEN an upstream ECR pulls anonymously (or by role) with a credential
    # WHEN / THEN credential is reported as forbidden
    assert "takes no credential" in rule_errors(minimal(kind, credential="cred"))["credential"]


@pytest.mark.parametrize("kind", [k for k in UpstreamKind if k is not UpstreamKind.ECR])
def test_rule_custom_role_is_rejected_for_non_ecr_kinds(kind: UpstreamKind) -> None:
    # GIVEN a non-ECR rule with custom_role_arn / WHEN / THEN rejected, naming ecr
    message = rule_errors(minimal(kind, custom_role_arn=ROLE))["custom_role_arn"]
    assert "only allowed for upstream_kind 'ecr'" in message


def test_rule_custom_role_is_optional_for_ecr() -> None:
    # GIVEN ecr rules with and without a role (same-account cross-region needs none)
    # WHEN validated / THEN both are fine
    assert RuleSpec.model_validate(minimal(UpstreamKind.ECR)).custom_role_arn is None
    assert RuleSpec.model_validate(minimal(UpstreamKind.ECR, custom_role_arn=ROLE)).custom_role_arn == ROLE


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_rule_upstream_prefix_is_refused_under_the_root_ecr_prefix(kind: UpstreamKind) -> None:
    # GIVEN a rule mapping an upstream namespace
    rule = RuleSpec.model_validate(minimal(kind, upstream_repository_prefix="team-a"))
    # WHEN checked against ROOT / THEN InvalidInputError names upstream_repository_prefix
    with pytest.raises(InvalidInputError) as exc:
        rule.validate_for_prefix("ROOT")
    assert [d.field for d in exc.value.details] == ["upstream_repository_prefix"]
    assert "not ROOT" in exc.value.details[0].message
    # AND under a real prefix it is fine
    assert rule.validate_for_prefix("team-a/") == "team-a"


@pytest.mark.parametrize("kind", list(UpstreamKind))
def test_rule_root_upstream_prefix_is_fine_under_root(kind: UpstreamKind) -> None:
    # GIVEN a rule with the default upstream prefix / WHEN checked against ROOT / THEN no error
    assert RuleSpec.model_validate(minimal(kind)).validate_for_prefix("ROOT") == "ROOT"


# ---------------------------------------------------------------------------------------------- prefixes


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("ab", "ab"),
        ("a" * 30, "a" * 30),
        ("a" * 30 + "/", "a" * 30),  # the implied '/' does not count
        ("ROOT", "ROOT"),
        ("docker-hub/", "docker-hub"),
        ("team-a/quay", "team-a/quay"),
        ("a--b", "a--b"),
        ("a__b", "a__b"),
        ("a.b_c-d", "a.b_c-d"),
        ("root", "root"),  # a lowercase namespace, not the ROOT keyword
    ],
)
def test_ecr_prefix_valid_edge_cases(raw: str, normalised: str) -> None:
    # GIVEN a prefix on the edge of ECR's rule / WHEN parsed / THEN accepted and normalised
    assert parse_ecr_prefix(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a", "2-30 characters"),
        ("a/", "2-30 characters"),
        ("a" * 31, "2-30 characters"),
        ("", "2-30 characters"),
        ("Docker-hub", "lowercase"),
        ("DOCKER", "lowercase"),
        ("ROOT/", "ROOT takes no trailing"),
        ("a//b", "empty path component"),
        ("ab//", "empty path component"),
        ("/ab", "must not start with '/'"),
        ("a___b", "path components"),
        ("a.-b", "path components"),
        ("-ab", "path components"),
        ("ab-", "path components"),
        ("a b", "path components"),
    ],
)
def test_ecr_prefix_invalid_edge_cases(raw: str, message: str) -> None:
    # GIVEN a prefix ECR refuses / WHEN parsed / THEN the error names the rule broken
    with pytest.raises(ValidationError, match=message):
        parse_ecr_prefix(raw)


def test_rule_validate_for_prefix_reports_a_bad_prefix_as_invalid_input() -> None:
    # GIVEN a valid rule / WHEN checked against an invalid prefix / THEN field "prefix" is named
    rule = RuleSpec.model_validate(minimal(UpstreamKind.QUAY))
    with pytest.raises(InvalidInputError) as exc:
        rule.validate_for_prefix("Quay")
    assert exc.value.details[0].field == "prefix"
    assert "lowercase" in exc.value.message


def test_rule_upstream_repository_prefix_uses_the_prefix_rules() -> None:
    # GIVEN an invalid upstream prefix / WHEN / THEN reported on its field
    assert (
        "lowercase"
        in rule_errors(minimal(UpstreamKind.QUAY, upstream_repository_prefix="Org"))["upstream_repository_prefix"]
    )


# ---------------------------------------------------------------------------------------------- other fields


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        (["us-east-1", "us-east-1"], "unique; repeated: us-east-1"),
        (["cn-north-1"], "no pull-through cache in cn-north-1"),
        (["us-gov-west-1", "eu-west-1"], "no pull-through cache in us-gov-west-1"),
        (["US-EAST-1"], "AWS Region code"),
        (["useast1"], "AWS Region code"),
        ("us-east-1", "valid tuple"),
    ],
)
def test_rule_regions_invalid(regions: Any, message: str) -> None:
    # GIVEN a bad regions list / WHEN / THEN the regions field (or its item) is reported
    found = rule_errors(minimal(UpstreamKind.QUAY, regions=regions))
    assert any(path.startswith("regions") and message in text for path, text in found.items()), found


def test_rule_regions_valid_keep_order() -> None:
    # GIVEN regions / WHEN validated / THEN kept as given
    rule = RuleSpec.model_validate(minimal(UpstreamKind.QUAY, regions=["eu-west-1", "us-east-1", "eusc-de-east-1"]))
    assert rule.regions == ("eu-west-1", "us-east-1", "eusc-de-east-1")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("deletion_policy", "purge", "'retain' or 'delete'"),
        ("description", "x" * 257, "at most 256"),
        ("upstream_kind", "gcr", "'docker-hub'"),
        ("credential", "Docker_Hub", "lowercase letters"),
        ("lifecycle", {"presets": {}, "rules": []}, ""),
        ("repository", {"tag_mutability": "SOMETIMES"}, "'MUTABLE'"),
    ],
)
def test_rule_field_invalid(field: str, value: Any, message: str) -> None:
    # GIVEN one invalid field / WHEN / THEN the error path starts with that field
    kind = UpstreamKind.DOCKER_HUB
    found = rule_errors({**minimal(kind), field: value})
    assert any(path.startswith(field) and message in text for path, text in found.items()), found


def test_rule_unknown_field_is_named() -> None:
    # GIVEN a typo'd field / WHEN / THEN extra fields are refused by name
    assert rule_errors(minimal(UpstreamKind.QUAY, upstream="quay.io")) == {"upstream": "unknown field"}


def test_rule_is_frozen() -> None:
    # GIVEN a rule / WHEN assigning a field / THEN refused
    rule = RuleSpec.model_validate(minimal(UpstreamKind.QUAY))
    with pytest.raises(ValidationError):
        rule.description = "changed"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- repository settings


def test_repository_settings_immutable_is_refused_with_the_reason() -> None:
    # GIVEN IMMUTABLE tags (ECR could no longer refresh cached tags)
    # WHEN / THEN refused, pointing at MUTABLE and IMMUTABLE_WITH_EXCLUSION
    message = settings_errors({"tag_mutability": "IMMUTABLE"})["tag_mutability"]
    assert "refreshing" in message
    assert "IMMUTABLE_WITH_EXCLUSION" in message


@pytest.mark.parametrize("mutability", ["IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"])
def test_repository_settings_exclusion_mutability_needs_filters(mutability: str) -> None:
    # GIVEN a *_WITH_EXCLUSION setting without filters / WHEN / THEN exclusions are required
    assert "needs 1-5" in settings_errors({"tag_mutability": mutability})["tag_mutability_exclusions"]
    # AND with filters it is fine
    settings = RepositorySettings.model_validate(
        {"tag_mutability": mutability, "tag_mutability_exclusions": ["latest"]}
    )
    assert settings.tag_mutability_exclusions == ("latest",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tag_mutability_exclusions": ["latest"]}, "only allowed with *_WITH_EXCLUSION"),
        (
            {"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["a", "b", "c", "d", "e", "f"]},
            "at most 5",
        ),
        ({"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["a", "a"]}, "unique"),
        ({"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["v1/x"]}, "wildcard"),
        ({"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["x" * 129]}, "1-128"),
    ],
)
def test_repository_settings_exclusions_invalid(data: dict[str, Any], message: str) -> None:
    # GIVEN bad exclusion filters / WHEN / THEN reported on tag_mutability_exclusions
    found = settings_errors(data)
    assert any(p.startswith("tag_mutability_exclusions") and message in m for p, m in found.items()), found


@pytest.mark.parametrize("encryption", [{"type": "KMS"}, {"type": "KMS_DSSE"}, {"type": "KMS", "kms_key": KMS_KEY}])
def test_repository_settings_kms_needs_a_creation_role(encryption: dict[str, str]) -> None:
    # GIVEN KMS encryption without a creation role
    # WHEN / THEN creation_role_arn is required, citing containers-roadmap#2398
    message = settings_errors({"encryption": encryption})["creation_role_arn"]
    assert "KMS encryption" in message
    assert "aws/containers-roadmap#2398" in message
    # AND with a role it is fine
    assert RepositorySettings.model_validate({"encryption": encryption, "creation_role_arn": ROLE}).encryption.uses_kms


def test_repository_settings_tags_need_a_creation_role() -> None:
    # GIVEN tags without a creation role / WHEN / THEN required, explaining the silent pull failure
    message = settings_errors({"tags": {"team": "platform"}})["creation_role_arn"]
    assert "resource tags" in message
    assert "not found" in message


@pytest.mark.parametrize(
    ("encryption", "message"),
    [
        ({"type": "AES256", "kms_key": KMS_KEY}, "only allowed with encryption type KMS"),
        ({"type": "KMS", "kms_key": "alias/aws/ecr"}, "full KMS key ARN"),
        ({"type": "KMS", "kms_key": "arn:aws:kms:us-east-1:123456789012:alias/mine"}, "full KMS key ARN"),
        ({"type": "DES"}, "'AES256'"),
    ],
)
def test_repository_settings_encryption_invalid(encryption: dict[str, str], message: str) -> None:
    # GIVEN a bad encryption block / WHEN / THEN reported under encryption
    found = settings_errors({"encryption": encryption, "creation_role_arn": ROLE})
    assert any(p.startswith("encryption") and message in m for p, m in found.items()), found


def test_repository_settings_accepts_fifty_tags_and_refuses_fifty_one() -> None:
    # GIVEN 50 and 51 tags / WHEN / THEN 50 is the AWS limit
    fifty = {f"k{i}": "v" for i in range(50)}
    assert len(RepositorySettings.model_validate({"tags": fifty, "creation_role_arn": ROLE}).tags) == 50
    found = settings_errors({"tags": {**fifty, "k50": "v"}, "creation_role_arn": ROLE})
    assert "at most 50" in found["tags"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"aws:createdBy": "x"}, "'aws:' are reserved"),
        ({"AWS:x": "x"}, "'aws:' are reserved"),
        ({"ecrcache:owner": "x"}, "'ecrcache:' are reserved"),
        ({"": "x"}, "1-128"),
        ({"k" * 129: "x"}, "1-128"),
        ({"team": "v" * 257}, "at most 256"),
        ({"team*": "x"}, "only letters"),
        ({"team": "a;b"}, "only letters"),
    ],
)
def test_repository_settings_tag_rules(tags: dict[str, str], message: str) -> None:
    # GIVEN a tag breaking AWS's tagging rules / WHEN / THEN the tags field reports it
    found = settings_errors({"tags": tags, "creation_role_arn": ROLE})
    assert any(p.startswith("tags") and message in m for p, m in found.items()), found


def test_repository_settings_tag_characters_include_unicode_letters_and_symbols() -> None:
    # GIVEN tags using every allowed symbol and a non-ASCII letter / WHEN / THEN accepted
    tags = {"cost center/é": "a_b.c:d/e=f+g-h@i j", "empty": ""}
    assert RepositorySettings.model_validate({"tags": tags, "creation_role_arn": ROLE}).tags == tags


STATEMENT = {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"Version": "2012-10-17"}, "at least one Statement"),
        ({"Statement": []}, "at least one Statement"),
        ({"Statement": [STATEMENT], "Foo": 1}, "unknown: ['Foo']"),
        ({"Version": "2020-01-01", "Statement": [STATEMENT]}, "2012-10-17"),
        ({"Statement": ["allow"]}, "Statement[0] must be a JSON object"),
        ({"Statement": [{**STATEMENT, "Effect": "allow"}]}, "Statement[0] must have Effect Allow or Deny"),
        ({"Statement": [{**STATEMENT, "Sid": "x" * 10_240}]}, "ECR allows 10240"),
        ("{}", "valid dictionary"),
    ],
)
def test_repository_settings_policy_invalid(policy: Any, message: str) -> None:
    # GIVEN a bad repository policy / WHEN / THEN reported on policy
    found = settings_errors({"policy": policy})
    assert any(p.startswith("policy") and message in m for p, m in found.items()), found


def test_repository_settings_policy_renders_compact_and_sorted() -> None:
    # GIVEN a valid policy with a single Statement object
    settings = RepositorySettings.model_validate({"policy": {"Statement": STATEMENT, "Version": "2012-10-17"}})
    # WHEN rendered / THEN compact JSON with sorted keys
    assert settings.policy_text() == (
        '{"Statement":{"Action":"ecr:BatchGetImage","Effect":"Allow","Principal":"*"},"Version":"2012-10-17"}'
    )


@pytest.mark.parametrize(
    "role",
    [
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:sts::123456789012:assumed-role/x/y",
        "arn:aws:iam::123456789012:role/" + "x" * 65,
        "role/x",
    ],
)
def test_repository_settings_creation_role_arn_invalid(role: str) -> None:
    # GIVEN something that is not an IAM role ARN / WHEN / THEN reported on creation_role_arn
    assert "IAM role ARN" in settings_errors({"creation_role_arn": role})["creation_role_arn"]


def test_repository_settings_creation_role_arn_accepts_paths_and_partitions() -> None:
    # GIVEN role ARNs with a path and in another partition / WHEN / THEN accepted
    for role in ("arn:aws:iam::123456789012:role/service-role/ecr/creation", "arn:aws-us-gov:iam::123456789012:role/x"):
        assert RepositorySettings.model_validate({"creation_role_arn": role}).creation_role_arn == role


# ---------------------------------------------------------------------------------------------- ECR requests


def test_rule_pull_through_cache_rule_request_docker_hub() -> None:
    # GIVEN a Docker Hub rule and its secret ARN
    rule = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "docker-hub"})
    # WHEN rendering CreatePullThroughCacheRule kwargs for "docker-hub/"
    request = rule.pull_through_cache_rule_request("docker-hub/", CREDENTIAL_ARN)
    # THEN exactly ECR's request, prefix normalised, no ROOT upstream prefix
    assert request == {
        "ecrRepositoryPrefix": "docker-hub",
        "upstreamRegistryUrl": "registry-1.docker.io",
        "upstreamRegistry": "docker-hub",
        "credentialArn": CREDENTIAL_ARN,
    }


def test_rule_pull_through_cache_rule_request_ecr_to_ecr() -> None:
    # GIVEN a cross-account ECR-to-ECR rule with an upstream namespace
    rule = RuleSpec.model_validate(
        {
            "upstream_kind": "ecr",
            "upstream_url": ECR_URL,
            "upstream_repository_prefix": "base",
            "custom_role_arn": ROLE,
        }
    )
    # WHEN rendering / THEN the role and upstream prefix are sent, no credential
    assert rule.pull_through_cache_rule_request("prod-base", None) == {
        "ecrRepositoryPrefix": "prod-base",
        "upstreamRegistryUrl": ECR_URL,
        "upstreamRegistry": "ecr",
        "upstreamRepositoryPrefix": "base",
        "customRoleArn": ROLE,
    }


@pytest.mark.parametrize("kind", NO_CREDENTIAL_KINDS)
def test_rule_pull_through_cache_rule_request_anonymous_kinds_at_root(kind: UpstreamKind) -> None:
    # GIVEN an anonymous upstream / WHEN rendered for ROOT / THEN only prefix, URL and kind
    rule = RuleSpec.model_validate(minimal(kind))
    assert rule.pull_through_cache_rule_request("ROOT", None) == {
        "ecrRepositoryPrefix": "ROOT",
        "upstreamRegistryUrl": VALID_URL[kind],
        "upstreamRegistry": kind.value,
    }


@pytest.mark.parametrize(
    ("kind", "credential_arn", "message"),
    [
        (UpstreamKind.DOCKER_HUB, None, "pass its secret ARN"),
        (UpstreamKind.QUAY, CREDENTIAL_ARN, "takes no credential"),
        (UpstreamKind.DOCKER_HUB, "arn:aws:secretsmanager:us-east-1:123456789012:secret:docker-hub-AbCdEf", "named"),
        (UpstreamKind.DOCKER_HUB, CREDENTIAL_ARN + "x" * 600, "50-612"),
    ],
)
def test_rule_pull_through_cache_rule_request_checks_the_credential_arn(
    kind: UpstreamKind, credential_arn: str | None, message: str
) -> None:
    # GIVEN a rule and a wrong credential ARN argument / WHEN rendering / THEN InvalidInputError on credential_arn
    rule = RuleSpec.model_validate(minimal(kind))
    with pytest.raises(InvalidInputError, match=message) as exc:
        rule.pull_through_cache_rule_request("cache", credential_arn)
    assert exc.value.details[0].field == "credential_arn"


def test_rule_creation_template_request_defaults() -> None:
    # GIVEN a rule with default repository settings
    rule = RuleSpec.model_validate({"upstream_kind": "quay"})
    # WHEN rendering CreateRepositoryCreationTemplate kwargs
    # THEN PTC-only, MUTABLE, AES256 and nothing else
    assert rule.creation_template_request("quay") == {
        "prefix": "quay",
        "appliedFor": ["PULL_THROUGH_CACHE"],
        "imageTagMutability": "MUTABLE",
        "encryptionConfiguration": {"encryptionType": "AES256"},
    }


def test_rule_creation_template_request_full() -> None:
    # GIVEN a rule using every repository setting and a lifecycle preset
    policy = {"Version": "2012-10-17", "Statement": [STATEMENT]}
    rule = RuleSpec.model_validate(
        {
            "upstream_kind": "github-container-registry",
            "credential": "ghcr",
            "description": "GHCR images",
            "lifecycle": {"presets": {"keep_last": 20}},
            "repository": {
                "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
                "tag_mutability_exclusions": ["latest", "*-dev"],
                "encryption": {"type": "KMS", "kms_key": KMS_KEY},
                "tags": {"team": "platform", "cost-center": "1234"},
                "policy": policy,
                "creation_role_arn": ROLE,
            },
        }
    )
    # WHEN rendering for prefix "ghcr"
    request = rule.creation_template_request("ghcr")
    # THEN every member is ECR's shape; tags sorted by key; texts are compact JSON
    assert request == {
        "prefix": "ghcr",
        "appliedFor": ["PULL_THROUGH_CACHE"],
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": [
            {"filterType": "WILDCARD", "filter": "latest"},
            {"filterType": "WILDCARD", "filter": "*-dev"},
        ],
        "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": KMS_KEY},
        "description": "GHCR images",
        "resourceTags": [{"Key": "cost-center", "Value": "1234"}, {"Key": "team", "Value": "platform"}],
        "repositoryPolicy": (
            '{"Statement":[{"Action":"ecr:BatchGetImage","Effect":"Allow","Principal":"*"}],"Version":"2012-10-17"}'
        ),
        "lifecyclePolicy": LifecycleSpec.model_validate({"presets": {"keep_last": 20}}).render_text(),
        "customRoleArn": ROLE,
    }
    assert json.loads(request["lifecyclePolicy"])["rules"][0]["selection"]["countNumber"] == 20


def test_rule_requests_are_deterministic() -> None:
    # GIVEN the same rule written with keys in different orders
    one = {"upstream_kind": "quay", "repository": {"tags": {"b": "2", "a": "1"}, "creation_role_arn": ROLE}}
    two = {"repository": {"creation_role_arn": ROLE, "tags": {"a": "1", "b": "2"}}, "upstream_kind": "quay"}
    # WHEN rendered / THEN identical requests
    first, second = RuleSpec.model_validate(one), RuleSpec.model_validate(two)
    assert first.creation_template_request("quay") == second.creation_template_request("quay")
    assert first.pull_through_cache_rule_request("quay", None) == second.pull_through_cache_rule_request("quay", None)


def test_rule_creation_template_request_checks_the_prefix() -> None:
    # GIVEN a rule with an upstream namespace / WHEN rendering its template for ROOT / THEN refused
    rule = RuleSpec.model_validate(minimal(UpstreamKind.QUAY, upstream_repository_prefix="argoproj"))
    with pytest.raises(InvalidInputError, match="upstream_repository_prefix"):
        rule.creation_template_request("ROOT")


def test_rule_json_schema_describes_every_field() -> None:
    # GIVEN the published schema / WHEN generated / THEN every property has a description
    schema = RuleSpec.model_json_schema()
    properties = schema["properties"]
    assert set(properties) == set(RuleSpec.model_fields)
    assert all("description" in p for p in properties.values())
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("model", [RuleSpec, RepositorySettings, EncryptionSettings])
def test_rule_schema_examples_are_valid(model: type[BaseModel]) -> None:
    # GIVEN the examples published in the schema / WHEN validated / THEN every one is accepted
    examples = model.model_json_schema()["examples"]
    assert examples
    for example in examples:
        model.model_validate(example)

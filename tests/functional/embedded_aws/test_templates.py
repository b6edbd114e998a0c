"""Repository creation templates of the embedded ECR (ecr-facts §4, §9.17), through boto3."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import moto
import pytest
from moto.ecr.models import ecr_backends

from devstack.aws import clock
from devstack.aws.ecr_templates import best_matching_template
from devstack.aws.state import ext_state
from tests.functional.embedded_aws.conftest import EmbeddedAws
from tests.functional.embedded_aws.test_pull_through_rules import aws_error

pytestmark = pytest.mark.functional

KEEP_TEN = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the newest ten images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
                "action": {"type": "expire"},
            }
        ]
    }
)
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}],
    }
)


def test_create_and_describe_a_full_template(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17 / §4: every template field is stored and described back, with registryId and timestamps."""
    role = f"arn:aws:iam::{embedded_aws.account_id}:role/ecr-template"
    kms = f"arn:aws:kms:{embedded_aws.region}:{embedded_aws.account_id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with clock.FakeClock(datetime(2026, 4, 1, tzinfo=UTC)):
        created = embedded_aws.ecr.create_repository_creation_template(
            prefix="docker-hub",
            description="docker hub cache",
            encryptionConfiguration={"encryptionType": "KMS", "kmsKey": kms},
            resourceTags=[{"Key": "managed-by", "Value": "ecrcache"}],
            imageTagMutability="MUTABLE_WITH_EXCLUSION",
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "release-*"}],
            repositoryPolicy=POLICY,
            lifecyclePolicy=KEEP_TEN,
            appliedFor=["PULL_THROUGH_CACHE", "PULL_THROUGH_CACHE"],
            customRoleArn=role,
        )
    assert created["registryId"] == embedded_aws.account_id
    template = created["repositoryCreationTemplate"]
    assert template["appliedFor"] == ["PULL_THROUGH_CACHE"]
    assert template["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": kms}
    assert template["createdAt"] == template["updatedAt"] == datetime(2026, 4, 1, tzinfo=UTC)
    described = embedded_aws.ecr.describe_repository_creation_templates(prefixes=["docker-hub", "unknown"])
    assert described["repositoryCreationTemplates"] == [template]


def test_prefix_is_1_to_256_chars_or_root(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17: template prefix 1-256 characters of the prefix regex, or ROOT."""
    embedded_aws.ecr.create_repository_creation_template(prefix="ROOT", appliedFor=["CREATE_ON_PUSH"])
    embedded_aws.ecr.create_repository_creation_template(prefix="a", appliedFor=["REPLICATION"])
    with aws_error("ValidationException", "regular expression"):
        embedded_aws.ecr.create_repository_creation_template(prefix="Team/App", appliedFor=["REPLICATION"])
    with aws_error("ValidationException", "length less than or equal to 256"):
        embedded_aws.ecr.create_repository_creation_template(prefix="a" * 257, appliedFor=["REPLICATION"])


def test_applied_for_is_required_and_valid(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17: appliedFor is required, non-empty, and each value in the enum."""
    with aws_error("ValidationException", "appliedFor"):
        embedded_aws.ecr_unchecked.create_repository_creation_template(prefix="docker-hub")  # type: ignore[call-arg]
    with aws_error("InvalidParameterException", "appliedFor"):
        embedded_aws.ecr.create_repository_creation_template(prefix="docker-hub", appliedFor=[])
    with aws_error("ValidationException", "enum value set"):
        embedded_aws.ecr.create_repository_creation_template(
            prefix="docker-hub",
            appliedFor=["PULL"],  # type: ignore[list-item]
        )


@pytest.mark.parametrize(
    ("extra", "code", "part"),
    [
        ({"description": "d" * 257}, "ValidationException", "description"),
        (
            {"encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/mine"}},
            "ValidationException",
            "kmsKey",
        ),
        (
            {
                "encryptionConfiguration": {
                    "encryptionType": "AES256",
                    "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/ab",
                }
            },
            "InvalidParameterException",
            "kmsKey",
        ),
        ({"imageTagMutability": "SOMETIMES"}, "ValidationException", "imageTagMutability"),
        (
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"},
            "InvalidParameterException",
            "exclusion filters are required",
        ),
        (
            {"imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "v*"}]},
            "InvalidParameterException",
            "only be used",
        ),
        ({"repositoryPolicy": "{not json"}, "InvalidParameterException", "repositoryPolicy"),
        ({"repositoryPolicy": "x" * 10241}, "ValidationException", "repositoryPolicy"),
        ({"lifecyclePolicy": '{"rules": []}'}, "InvalidParameterException", "Lifecycle policy validation failure"),
        ({"customRoleArn": "arn:aws:iam::210987654321:role/other"}, "InvalidParameterException", "same account"),
    ],
)
def test_template_fields_are_validated(embedded_aws: EmbeddedAws, extra: dict[str, Any], code: str, part: str) -> None:
    """ecr-facts §9.17 / §4: description, kmsKey, mutability + filters, policy JSON <= 10,240, lifecycle, role."""
    with aws_error(code, part):
        embedded_aws.ecr_unchecked.create_repository_creation_template(
            prefix="docker-hub", appliedFor=["PULL_THROUGH_CACHE"], **extra
        )


def test_duplicate_template_already_exists(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17: a second template for the same prefix -> TemplateAlreadyExistsException."""
    embedded_aws.ecr.create_repository_creation_template(prefix="docker-hub", appliedFor=["PULL_THROUGH_CACHE"])
    with aws_error("TemplateAlreadyExistsException", "docker-hub"):
        embedded_aws.ecr.create_repository_creation_template(prefix="docker-hub/", appliedFor=["REPLICATION"])


def test_update_and_delete_unknown_template_not_found(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17: Update/Delete of an unknown prefix -> TemplateNotFoundException."""
    with aws_error("TemplateNotFoundException", "ghcr"):
        embedded_aws.ecr.update_repository_creation_template(prefix="ghcr", description="x")
    with aws_error("TemplateNotFoundException", "ghcr"):
        embedded_aws.ecr.delete_repository_creation_template(prefix="ghcr")


def test_update_replaces_given_fields_and_delete_returns_the_template(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17 / §4: Update changes the given fields (incl. appliedFor) and updatedAt; Delete returns it."""
    with clock.FakeClock(datetime(2026, 4, 1, tzinfo=UTC)) as fake:
        embedded_aws.ecr.create_repository_creation_template(
            prefix="ghcr", appliedFor=["PULL_THROUGH_CACHE"], description="old", lifecyclePolicy=KEEP_TEN
        )
        fake.advance(days=1)
        updated = embedded_aws.ecr.update_repository_creation_template(
            prefix="ghcr", description="new", appliedFor=["PULL_THROUGH_CACHE", "REPLICATION"]
        )["repositoryCreationTemplate"]
    assert (updated["description"], updated["appliedFor"], updated["lifecyclePolicy"]) == (
        "new",
        ["PULL_THROUGH_CACHE", "REPLICATION"],
        KEEP_TEN,
    )
    assert updated["updatedAt"] == datetime(2026, 4, 2, tzinfo=UTC)
    assert updated["createdAt"] == datetime(2026, 4, 1, tzinfo=UTC)
    deleted = embedded_aws.ecr.delete_repository_creation_template(prefix="ghcr")["repositoryCreationTemplate"]
    assert deleted["description"] == "new"
    assert embedded_aws.ecr.describe_repository_creation_templates()["repositoryCreationTemplates"] == []


def test_describe_pages_through_templates(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17 / §4: Describe is paginated (maxResults 1-1000, nextToken) -- via boto3's paginator."""
    for index in range(5):
        embedded_aws.ecr.create_repository_creation_template(prefix=f"team-{index}", appliedFor=["CREATE_ON_PUSH"])
    pages = list(
        embedded_aws.ecr.get_paginator("describe_repository_creation_templates").paginate(
            PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["repositoryCreationTemplates"]) for p in pages] == [2, 2, 1]
    with aws_error("ValidationException", "maxResults"):
        embedded_aws.ecr_unchecked.describe_repository_creation_templates(maxResults=1001)


def test_templates_are_never_applied_retroactively(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.17: creating a template leaves existing (and CreateRepository-made) repositories untouched."""
    embedded_aws.ecr.create_repository(repositoryName="docker-hub/library/nginx")
    embedded_aws.ecr.create_repository_creation_template(
        prefix="docker-hub",
        appliedFor=["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"],
        lifecyclePolicy=KEEP_TEN,
        imageTagMutability="IMMUTABLE",
        resourceTags=[{"Key": "team", "Value": "platform"}],
    )
    embedded_aws.ecr.create_repository(repositoryName="docker-hub/library/redis")
    for name in ("docker-hub/library/nginx", "docker-hub/library/redis"):
        repository = embedded_aws.ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        assert repository["imageTagMutability"] == "MUTABLE"
        assert embedded_aws.ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"] == []
        with aws_error("LifecyclePolicyNotFoundException"):
            embedded_aws.ecr.get_lifecycle_policy(repositoryName=name)


def test_best_matching_template_prefers_the_longest_prefix_then_root(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §4: the most specific prefix wins, ROOT catches the rest, appliedFor must include the use."""
    for prefix, applied in (
        ("ROOT", ["PULL_THROUGH_CACHE"]),
        ("prod", ["PULL_THROUGH_CACHE"]),
        ("prod/team", ["PULL_THROUGH_CACHE"]),
        ("dev", ["REPLICATION"]),
    ):
        embedded_aws.ecr.create_repository_creation_template(prefix=prefix, appliedFor=applied)  # type: ignore[arg-type]
    state = ext_state(ecr_backends[embedded_aws.account_id][embedded_aws.region])

    def best(name: str, use: str = "PULL_THROUGH_CACHE") -> str | None:
        template = best_matching_template(state, name, use)
        return template.prefix if template else None

    assert best("prod/team/app") == "prod/team"
    assert best("prod/other") == "prod"
    assert best("production/app") == "ROOT"  # "prod" does not match "production/"
    assert best("dev/app") == "ROOT"  # the dev template is for REPLICATION only
    assert best("dev/app", "REPLICATION") == "dev"
    assert best("x/app", "CREATE_ON_PUSH") is None


def test_templates_are_per_backend_state() -> None:
    """ecr-facts §9.17: template state lives on the moto backend and starts empty in every mock_aws()."""
    import boto3

    from devstack.aws import install

    install()
    with moto.mock_aws():
        client = boto3.client("ecr", region_name="us-east-1")
        client.create_repository_creation_template(prefix="x1", appliedFor=["REPLICATION"])
        assert len(client.describe_repository_creation_templates()["repositoryCreationTemplates"]) == 1
        other_region = boto3.client("ecr", region_name="eu-west-1")
        assert other_region.describe_repository_creation_templates()["repositoryCreationTemplates"] == []
    with moto.mock_aws():
        assert client.describe_repository_creation_templates()["repositoryCreationTemplates"] == []

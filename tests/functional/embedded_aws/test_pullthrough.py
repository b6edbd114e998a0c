"""Pull-through cache data plane: first pulls from real local registries (ecr-facts §1.5, §3, §4, §9.11-14)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from botocore.exceptions import ClientError

from devstack.aws.ecr_pullthrough import PULL_THROUGH_SERVICE
from devstack.registry import SeededImage, Seeder
from devstack.registry.images import DOCKER_MANIFEST_V2, OCI_MANIFEST
from tests.functional.registry.support import PullThrough

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the cache small",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
                "action": {"type": "expire"},
            }
        ]
    }
)
REPO_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "org-pull",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            }
        ],
    }
)
ROLE_ARN = "arn:aws:iam::123456789012:role/ecr-template-role"


@contextmanager
def aws_error(code: str) -> Iterator[None]:
    with pytest.raises(ClientError) as info:
        yield
    assert info.value.response["Error"]["Code"] == code, info.value.response["Error"]


def _image(seeded: list[SeededImage], reference: str) -> SeededImage:
    return next(image for image in seeded if image.reference == reference)


def test_anonymous_upstream_tag_is_cached_with_its_real_digest(ptc: PullThrough, seeded: list[SeededImage]) -> None:
    """ecr-facts §3.1 + tooling.md gotcha 6: first pull creates the repo; the digest is sha256(manifest)."""
    alpine = _image(seeded, "library/alpine:3.20")
    # GIVEN an ECR Public rule (anonymous upstream)
    ptc.anonymous_rule()
    # WHEN a tag is pulled through it
    response = ptc.pull("ecr-public/library/alpine", tag="3.20")
    # THEN the manifest is the upstream's, byte for byte, under its real digest
    assert response["failures"] == []
    [image] = response["images"]
    assert image["imageId"] == {"imageDigest": alpine.digest, "imageTag": "3.20"}
    assert image["imageManifestMediaType"] == OCI_MANIFEST
    assert hashlib.sha256(image["imageManifest"].encode()).hexdigest() == alpine.digest.removeprefix("sha256:")
    # THEN the repository exists with ECR's defaults (no template)
    [repo] = ptc.aws.ecr.describe_repositories(repositoryNames=["ecr-public/library/alpine"])["repositories"]
    assert repo["imageTagMutability"] == "MUTABLE"
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert ptc.digests("ecr-public/library/alpine") == {alpine.digest}


@pytest.mark.parametrize(
    ("make_rule", "repository"),
    [
        (PullThrough.docker_hub_rule, "docker-hub/library/nginx"),  # Bearer token upstream
        (PullThrough.ghcr_rule, "ghcr/library/nginx"),  # htpasswd Basic upstream
    ],
    ids=["bearer-docker-hub", "basic-ghcr"],
)
def test_authenticated_upstreams_use_the_rules_secret(
    ptc: PullThrough, make_rule: Callable[[PullThrough], None], repository: str, seeded: list[SeededImage]
) -> None:
    """ecr-facts §2: the AWSCURRENT {"username","accessToken"} secret authenticates (Basic and Bearer)."""
    nginx = _image(seeded, "library/nginx:1.27")
    # GIVEN a rule whose secret holds the right credentials, and nginx in the upstream
    with Seeder.for_registry(ptc.auth_registry) as seeder:
        seeder.seed()
    make_rule(ptc)
    # WHEN the tag is pulled THEN it comes back (same deterministic build, same digest everywhere)
    response = ptc.pull(repository, tag="1.27")
    assert response["failures"] == []
    assert response["images"][0]["imageId"]["imageDigest"] == nginx.digest
    assert response["images"][0]["imageManifestMediaType"] == DOCKER_MANIFEST_V2


def test_multi_platform_index_caches_every_child(ptc: PullThrough, token_seeded: list[SeededImage]) -> None:
    """ecr-facts §3.4: pulling a manifest list caches the list and every referenced image."""
    node = _image(token_seeded, "library/node:18-alpine")
    ptc.docker_hub_rule()
    # WHEN the multi-platform tag is pulled
    response = ptc.pull("docker-hub/library/node", tag="18-alpine")
    # THEN the index is served, and index + both children are in the repository
    assert response["images"][0]["imageId"]["imageDigest"] == node.digest
    manifest = json.loads(response["images"][0]["imageManifest"])
    assert [m["platform"]["architecture"] for m in manifest["manifests"]] == ["amd64", "arm64"]
    assert ptc.digests("docker-hub/library/node") == {node.digest, *node.child_digests}
    # THEN each child can now be pulled by digest (no upstream needed) and its layers downloaded
    for child in node.children:
        by_digest = ptc.pull("docker-hub/library/node", digest=child.digest)
        assert by_digest["images"][0]["imageId"] == {"imageDigest": child.digest}
        for blob in child.blob_digests:
            url = ptc.aws.ecr.get_download_url_for_layer(repositoryName="docker-hub/library/node", layerDigest=blob)
            assert url["layerDigest"] == blob
    # THEN the tagged image is the index; the children are untagged
    tagged = ptc.aws.ecr.list_images(repositoryName="docker-hub/library/node", filter={"tagStatus": "TAGGED"})
    assert tagged["imageIds"] == [{"imageDigest": node.digest, "imageTag": "18-alpine"}]


def test_oci_index_and_accepted_media_types(ptc: PullThrough, token_seeded: list[SeededImage]) -> None:
    """ecr-facts §3.3 step 2 / §5.2 acceptedMediaTypes: an index goes only to clients that accept it."""
    node = _image(token_seeded, "library/node:18-alpine")
    python = _image(token_seeded, "library/python:3.12-slim")
    ptc.docker_hub_rule()
    # WHEN a Docker list is requested by a client accepting only single manifests (awslabs' warmer)
    response = ptc.pull("docker-hub/library/node", tag="18-alpine", accepted=(DOCKER_MANIFEST_V2, OCI_MANIFEST))
    # THEN it gets the linux/amd64 image (what a registry serves a list-unaware client) [?]
    assert response["images"][0]["imageId"]["imageDigest"] == node.child_for("linux/amd64").digest
    assert response["images"][0]["imageManifestMediaType"] == DOCKER_MANIFEST_V2
    # WHEN an OCI index is requested by a client that accepts only Docker v2 THEN nothing fits: not found
    response = ptc.pull("docker-hub/library/python", tag="3.12-slim", accepted=(DOCKER_MANIFEST_V2,))
    assert response["images"] == []
    assert response["failures"][0]["failureCode"] == "ImageNotFound"
    # THEN the index itself was still cached (the pull happened) and is served to a client that accepts it
    assert python.digest in ptc.digests("docker-hub/library/python")
    assert (
        ptc.pull("docker-hub/library/python", tag="3.12-slim")["images"][0]["imageId"]["imageDigest"] == python.digest
    )


def test_digest_first_pull_of_an_uncached_image_is_not_found(ptc: PullThrough, seeded: list[SeededImage]) -> None:
    """ecr-facts §3.4 / §9.14, containers-roadmap#2837 (reported): digest-pinned first pulls fail; warm by tag."""
    nginx = _image(seeded, "library/nginx:1.27")
    ptc.anonymous_rule()
    # WHEN the image is first pulled by digest
    response = ptc.pull("ecr-public/library/nginx", digest=nginx.digest)
    # THEN not found, and no upstream import was attempted
    assert response["images"] == []
    assert response["failures"][0]["failureCode"] == "ImageNotFound"
    assert ptc.actions() == []
    # WHEN it is warmed by tag first THEN the digest pull works
    assert ptc.pull("ecr-public/library/nginx", tag="1.27")["failures"] == []
    assert (
        ptc.pull("ecr-public/library/nginx", digest=nginx.digest)["images"][0]["imageId"]["imageDigest"] == nginx.digest
    )


def test_template_is_applied_when_the_pull_creates_the_repository(ptc: PullThrough) -> None:
    """ecr-facts §4 / §9.11: best-matching PULL_THROUGH_CACHE template applied at creation; CloudTrail event."""
    # GIVEN a ROOT template (the fallback) and a more specific docker-hub template with everything set
    ptc.aws.ecr.create_repository_creation_template(
        prefix="ROOT", appliedFor=["PULL_THROUGH_CACHE"], imageTagMutability="IMMUTABLE"
    )
    ptc.aws.ecr.create_repository_creation_template(
        prefix="docker-hub",
        appliedFor=["PULL_THROUGH_CACHE"],
        imageTagMutability="MUTABLE",
        lifecyclePolicy=LIFECYCLE,
        repositoryPolicy=REPO_POLICY,
        resourceTags=[{"Key": "team", "Value": "platform"}],
        encryptionConfiguration={"encryptionType": "KMS"},
        customRoleArn=ROLE_ARN,
    )
    ptc.docker_hub_rule()
    # WHEN a pull creates the repository
    assert ptc.pull("docker-hub/library/ubuntu", tag="22.04")["failures"] == []
    # THEN the most specific template was applied: mutability, KMS, tags, lifecycle and repository policy
    name = "docker-hub/library/ubuntu"
    [repo] = ptc.aws.ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert repo["imageTagMutability"] == "MUTABLE"
    assert repo["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert ptc.aws.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == [
        {"Key": "team", "Value": "platform"}
    ]
    assert ptc.aws.ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"] == LIFECYCLE
    assert json.loads(ptc.aws.ecr.get_repository_policy(repositoryName=name)["policyText"]) == json.loads(REPO_POLICY)
    # THEN a CloudTrail-shaped CreateRepository event names the pull-through service as the caller (assumed)
    [created] = ptc.trail()
    assert created["detail"]["eventName"] == "CreateRepository"
    assert created["detail"]["requestParameters"]["repositoryName"] == name
    assert created["detail"]["userIdentity"] == {"type": "AWSService", "invokedBy": PULL_THROUGH_SERVICE}
    assert created["detail"]["responseElements"]["repository"]["repositoryArn"] == repo["repositoryArn"]
    # WHEN another upstream's repository is created THEN the ROOT template applies to it
    ptc.anonymous_rule()
    ptc.pull("ecr-public/library/alpine", tag="3.20")
    [other] = ptc.aws.ecr.describe_repositories(repositoryNames=["ecr-public/library/alpine"])["repositories"]
    assert other["imageTagMutability"] == "IMMUTABLE"


def test_template_with_tags_but_no_role_makes_the_pull_not_found(ptc: PullThrough) -> None:
    """ecr-facts §4, containers-roadmap#2398: tags/KMS without customRoleArn -> creation fails -> not found."""
    ptc.aws.ecr.create_repository_creation_template(
        prefix="docker-hub", appliedFor=["PULL_THROUGH_CACHE"], resourceTags=[{"Key": "team", "Value": "platform"}]
    )
    ptc.docker_hub_rule()
    # WHEN the first pull needs to create the repository
    with aws_error("RepositoryNotFoundException"):
        ptc.pull("docker-hub/library/ubuntu", tag="22.04")
    # THEN nothing was created and no CreateRepository event was sent
    with aws_error("RepositoryNotFoundException"):
        ptc.aws.ecr.describe_repositories(repositoryNames=["docker-hub/library/ubuntu"])
    assert ptc.trail() == []


def test_wrong_credentials_are_upstream_access_denied_and_bad_secrets_fail_the_call(ptc: PullThrough) -> None:
    """ecr-facts §2 "Wrong/expired credentials" and §9.12: failures[] UpstreamAccessDenied vs whole-call exception."""
    # GIVEN a rule whose secret holds an expired token
    ptc.docker_hub_rule(access_token="expired")
    # WHEN pulled THEN the image fails with UpstreamAccessDenied, and the attempt is an event
    response = ptc.pull("docker-hub/library/nginx", tag="1.27")
    assert response["failures"][0]["failureCode"] == "UpstreamAccessDenied"
    [event] = ptc.actions()
    assert event["detail"]["sync-status"] != "SUCCESS"
    assert event["detail"]["failure-code"] == "UpstreamAccessDenied"
    assert "expired" not in json.dumps(event)
    # GIVEN a rule whose secret lacks accessToken (content is not checked at rule creation, §1.3)
    arn = ptc.aws.secret("ecr-pullthroughcache/broken", {"username": "someone"})
    ptc.aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="gh", upstreamRegistryUrl="ghcr.io", credentialArn=arn
    )
    # WHEN pulled THEN the whole call fails with UnableToGetUpstreamImageException
    with aws_error("UnableToGetUpstreamImageException"):
        ptc.pull("gh/library/nginx", tag="1.27")


def test_validate_rule_really_authenticates_upstream(ptc: PullThrough) -> None:
    """ecr-facts §1.2 ValidatePullThroughCacheRule / §9.9: a real authentication attempt against the upstream."""
    ptc.docker_hub_rule("hub-good")
    ptc.docker_hub_rule("hub-bad", access_token="revoked")
    good = ptc.aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="hub-good")
    bad = ptc.aws.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="hub-bad")
    assert good["isValid"] is True
    assert bad["isValid"] is False
    assert "UpstreamAccessDenied" in bad["failure"]
    assert "revoked" not in bad["failure"]


def test_upstream_repository_prefix_and_root_rules(ptc: PullThrough, seeded: list[SeededImage]) -> None:
    """ecr-facts §1.5: (my-app, upstream-app) maps my-app/x -> upstream-app/x; a ROOT rule catches the rest."""
    alpine = _image(seeded, "library/alpine:3.20")
    # GIVEN an ECR-to-ECR ROOT rule (same account: no role needed) and a prefix-mapping rule
    upstream_ecr = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
    ptc.aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ROOT", upstreamRegistryUrl=upstream_ecr)
    ptc.aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="mirror", upstreamRegistryUrl=upstream_ecr, upstreamRepositoryPrefix="library"
    )
    # WHEN `mirror/alpine` is pulled THEN the upstream's `library/alpine` is cached there
    assert ptc.pull("mirror/alpine", tag="3.20")["images"][0]["imageId"]["imageDigest"] == alpine.digest
    # WHEN a repository without another rule is pulled THEN the ROOT rule serves it under the same name
    assert ptc.pull("library/alpine", tag="3.20")["images"][0]["imageId"]["imageDigest"] == alpine.digest
    [event] = [e for e in ptc.actions() if e["detail"]["repository-name"] == "library/alpine"]
    assert event["detail"]["ecr-repository-prefix"] == "ROOT"
    assert event["detail"]["upstream-registry-url"] == upstream_ecr


def test_repositories_without_a_rule_keep_moto_behaviour(ptc: PullThrough) -> None:
    """ecr-facts §9.11 scope: a repository no rule covers is not pulled through (moto's own BatchGetImage)."""
    ptc.anonymous_rule()
    ptc.aws.ecr.create_repository(repositoryName="team/app")
    digest = ptc.aws.put_image("team/app", "v1")
    response = ptc.aws.ecr.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
    assert response["images"][0]["imageId"]["imageDigest"] == digest
    missing = ptc.aws.ecr.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v2"}])
    assert missing["failures"][0]["failureCode"] == "ImageNotFound"
    [detail] = ptc.aws.ecr.describe_images(repositoryName="team/app")["imageDetails"]
    assert "lastRecordedPullTime" in detail
    assert ptc.actions() == []

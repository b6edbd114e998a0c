"""EventBridge delivery of the embedded ECR's events (ecr-facts §6, §9.16), observed through SQS spies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from devstack.aws import clock, events
from devstack.aws.events import CALLER_ARN_HEADER, cloudtrail_event
from tests.functional.embedded_aws.conftest import EmbeddedAws

pytestmark = pytest.mark.functional

CONTROLLER_ROLE = "arn:aws:iam::123456789012:role/ecrcache-reconciler"


def _names(received: list[dict[str, object]]) -> list[str]:
    names: list[str] = []
    for envelope in received:
        detail = envelope["detail"]
        assert isinstance(detail, dict)
        names.append(str(detail["eventName"]))
    return names


def test_rule_changes_reach_sqs_as_cloudtrail_events(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.16 / §6.3: Create/Update/DeletePullThroughCacheRule reach a rule with the documented pattern."""
    queue = embedded_aws.spy()
    arn = embedded_aws.secret("ecr-pullthroughcache/docker-hub")
    with clock.FakeClock(datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)):
        embedded_aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
        )
    embedded_aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub", credentialArn=arn)
    embedded_aws.ecr.describe_pull_through_cache_rules()  # read-only: not delivered
    embedded_aws.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    received = embedded_aws.received(queue)
    assert _names(received) == [
        "CreatePullThroughCacheRule",
        "UpdatePullThroughCacheRule",
        "DeletePullThroughCacheRule",
    ]
    create = received[0]
    assert (create["source"], create["detail-type"], create["account"], create["region"]) == (
        "aws.ecr",
        "AWS API Call via CloudTrail",
        embedded_aws.account_id,
        embedded_aws.region,
    )
    assert create["time"] == "2026-02-03T04:05:06Z"
    detail = create["detail"]
    assert detail["eventSource"] == "ecr.amazonaws.com"
    assert detail["eventType"] == "AwsApiCall"
    assert detail["eventTime"] == "2026-02-03T04:05:06Z"
    assert detail["recipientAccountId"] == embedded_aws.account_id
    assert detail["requestParameters"] == {
        "ecrRepositoryPrefix": "docker-hub",
        "upstreamRegistryUrl": "registry-1.docker.io",
        "credentialArn": arn,
    }
    assert detail["responseElements"]["upstreamRegistry"] == "docker-hub"
    assert set(detail["userIdentity"]) >= {"type", "principalId", "arn", "accountId"}
    assert {"eventVersion", "awsRegion", "sourceIPAddress", "userAgent", "requestID", "eventID"} <= set(detail)


def test_repository_and_lifecycle_calls_emit_cloudtrail_events(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.16: CreateRepository, Put/DeleteLifecyclePolicy and DeleteRepository are delivered too."""
    queue = embedded_aws.spy()
    created = embedded_aws.ecr.create_repository(repositoryName="docker-hub/library/nginx")["repository"]
    policy = {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 7,
                },
                "action": {"type": "expire"},
            }
        ]
    }
    embedded_aws.ecr.put_lifecycle_policy(
        repositoryName="docker-hub/library/nginx", lifecyclePolicyText=json.dumps(policy)
    )
    embedded_aws.ecr.delete_lifecycle_policy(repositoryName="docker-hub/library/nginx")
    embedded_aws.ecr.delete_repository(repositoryName="docker-hub/library/nginx")
    received = embedded_aws.received(queue)
    assert _names(received) == ["CreateRepository", "PutLifecyclePolicy", "DeleteLifecyclePolicy", "DeleteRepository"]
    repository = received[0]["detail"]["responseElements"]["repository"]
    assert (repository["repositoryArn"], repository["repositoryName"]) == (
        created["repositoryArn"],
        "docker-hub/library/nginx",
    )


ALL_ECR_API_CALLS = {"source": ["aws.ecr"], "detail-type": ["AWS API Call via CloudTrail"]}
REPOSITORY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["ecr:BatchGetImage"]}],
    }
)


def test_repository_setting_calls_emit_cloudtrail_events(embedded_aws: EmbeddedAws) -> None:
    """Issue 14: SetRepositoryPolicy, DeleteRepositoryPolicy, PutImageTagMutability, TagResource and UntagResource
    are recorded as CloudTrail does ("All API calls" are captured): the request as requestParameters, the
    response (output shape) as responseElements, null for the calls that answer nothing."""
    name = "quay/library/alpine"
    arn = embedded_aws.ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    queue = embedded_aws.spy(ALL_ECR_API_CALLS)
    embedded_aws.ecr.set_repository_policy(repositoryName=name, policyText=REPOSITORY_POLICY)
    embedded_aws.ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")
    embedded_aws.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "platform"}])
    embedded_aws.ecr.untag_resource(resourceArn=arn, tagKeys=["team"])
    embedded_aws.ecr.get_repository_policy(repositoryName=name)  # read-only: not delivered
    embedded_aws.ecr.delete_repository_policy(repositoryName=name)
    received = embedded_aws.received(queue)
    assert _names(received) == [
        "SetRepositoryPolicy",
        "PutImageTagMutability",
        "TagResource",
        "UntagResource",
        "DeleteRepositoryPolicy",
    ]
    details = [envelope["detail"] for envelope in received]
    for detail in details:
        assert (detail["eventSource"], detail["awsRegion"], detail["eventType"], detail["readOnly"]) == (
            "ecr.amazonaws.com",
            embedded_aws.region,
            "AwsApiCall",
            False,
        )
        assert detail["userIdentity"]["accountId"] == embedded_aws.account_id
        assert "errorCode" not in detail
    set_policy, mutability, tag, untag, delete_policy = details
    assert set_policy["requestParameters"] == {"repositoryName": name, "policyText": REPOSITORY_POLICY}
    assert set_policy["responseElements"] == {
        "registryId": embedded_aws.account_id,
        "repositoryName": name,
        "policyText": REPOSITORY_POLICY,
    }
    assert mutability["requestParameters"] == {"repositoryName": name, "imageTagMutability": "IMMUTABLE"}
    assert mutability["responseElements"]["imageTagMutability"] == "IMMUTABLE"
    assert mutability["responseElements"]["repositoryName"] == name
    assert tag["requestParameters"] == {"resourceArn": arn, "tags": [{"Key": "team", "Value": "platform"}]}
    assert (tag["responseElements"], untag["responseElements"]) == (None, None)
    assert untag["requestParameters"] == {"resourceArn": arn, "tagKeys": ["team"]}
    assert delete_policy["requestParameters"] == {"repositoryName": name}
    assert delete_policy["responseElements"]["repositoryName"] == name


def test_failed_repository_setting_calls_carry_error_code(embedded_aws: EmbeddedAws) -> None:
    """Issue 14: a failed call of the five is recorded too, with errorCode/errorMessage and no responseElements."""
    queue = embedded_aws.spy(ALL_ECR_API_CALLS)
    with pytest.raises(embedded_aws.ecr.exceptions.RepositoryNotFoundException):
        embedded_aws.ecr.put_image_tag_mutability(repositoryName="quay/missing", imageTagMutability="MUTABLE")
    [failed] = [envelope["detail"] for envelope in embedded_aws.received(queue)]
    assert (failed["eventName"], failed["errorCode"], failed["responseElements"]) == (
        "PutImageTagMutability",
        "RepositoryNotFoundException",
        None,
    )


def test_failed_calls_carry_error_code(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §6.3: a failed mutating call is recorded with errorCode/errorMessage and no responseElements."""
    queue = embedded_aws.spy()
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    with pytest.raises(embedded_aws.ecr.exceptions.PullThroughCacheRuleAlreadyExistsException):
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    failed = embedded_aws.received(queue)[1]["detail"]
    assert failed["errorCode"] == "PullThroughCacheRuleAlreadyExistsException"
    assert "quay" in failed["errorMessage"]
    assert failed["responseElements"] is None


def test_caller_arn_header_sets_user_identity(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.16: the caller's ARN is derivable -- the X-Ecrcache-Caller-Arn header wins."""
    queue = embedded_aws.spy()
    session_arn = "arn:aws:sts::123456789012:assumed-role/ecrcache-reconciler/ecrcache-reconciler-fn"

    def add_header(request: object, **_: object) -> None:
        request.headers[CALLER_ARN_HEADER] = session_arn  # type: ignore[attr-defined]

    client = boto3.client("ecr", region_name=embedded_aws.region)
    client.meta.events.register("before-sign.ecr.*", add_header)
    client.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    identity = embedded_aws.received(queue)[0]["detail"]["userIdentity"]
    assert (identity["type"], identity["arn"]) == ("AssumedRole", session_arn)
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == CONTROLLER_ROLE


def test_user_identity_matches_sts_get_caller_identity(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.16: assumed-role callers: userIdentity.arn == sts:GetCallerIdentity().Arn."""
    queue = embedded_aws.spy()
    iam = boto3.client("iam", region_name=embedded_aws.region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName="ecrcache-reconciler", AssumeRolePolicyDocument=json.dumps(trust))
    creds = embedded_aws.sts.assume_role(RoleArn=CONTROLLER_ROLE, RoleSessionName="reconciler")["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=embedded_aws.region,
    )
    me = session.client("sts").get_caller_identity()["Arn"]
    session.client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")
    identities = [e["detail"]["userIdentity"] for e in embedded_aws.received(queue)]
    assert identities[0]["arn"] == me
    assert me.endswith(":assumed-role/ecrcache-reconciler/reconciler")
    assert identities[0]["type"] == "AssumedRole"
    assert identities[1]["arn"] != me  # somebody else (moto's default identity)


def test_dropped_duplicated_and_delayed_events(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.16: events are best effort -- the fake can drop, duplicate (same id) and delay them."""
    queue = embedded_aws.spy()
    events.faults.drop(count=1, event_name="CreatePullThroughCacheRule")
    events.faults.duplicate(count=1, event_name="DeletePullThroughCacheRule")
    events.faults.delay(timedelta(minutes=5), count=1, event_name="CreateRepository")
    with clock.FakeClock(datetime(2026, 1, 1, tzinfo=UTC)) as fake:
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
        embedded_aws.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
        embedded_aws.ecr.create_repository(repositoryName="quay/app")
        first = embedded_aws.received(queue)
        assert _names(first) == ["DeletePullThroughCacheRule", "DeletePullThroughCacheRule"]
        assert first[0]["id"] == first[1]["id"]
        assert (events.faults.dropped, events.faults.held) == (1, 1)
        fake.advance(timedelta(minutes=4))
        assert events.faults.release_due() == 0
        fake.advance(timedelta(minutes=2))
        embedded_aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    late = embedded_aws.received(queue)
    assert _names(late) == ["CreateRepository", "CreatePullThroughCacheRule"]
    assert late[0]["time"] == "2026-01-01T00:00:00Z"  # delivered late, stamped when it happened


def test_emit_and_cloudtrail_event_are_usable_directly(embedded_aws: EmbeddedAws) -> None:
    """ecr-facts §9.16 / §6.1: emit() puts any aws.ecr event (e.g. ECR Pull Through Cache Action) on the default bus."""
    queue = embedded_aws.spy(
        {
            "source": ["aws.ecr"],
            "detail-type": ["ECR Pull Through Cache Action"],
            "detail": {"sync-status": [{"anything-but": "SUCCESS"}]},
        }
    )
    repo_arn = f"arn:aws:ecr:{embedded_aws.region}:{embedded_aws.account_id}:repository/docker-hub/library/alpine"
    for status in ("SUCCESS", "FAILED"):
        events.emit(
            embedded_aws.account_id,
            embedded_aws.region,
            source="aws.ecr",
            detail_type="ECR Pull Through Cache Action",
            detail={
                "sync-status": status,
                "ecr-repository-prefix": "docker-hub",
                "repository-name": "docker-hub/library/alpine",
            },
            resources=[repo_arn],
        )
    received = embedded_aws.received(queue)
    assert [e["detail"]["sync-status"] for e in received] == ["FAILED"]
    assert received[0]["resources"] == [repo_arn]
    detail = cloudtrail_event(
        embedded_aws.account_id,
        embedded_aws.region,
        "CreateRepository",
        {"repositoryName": "x"},
        None,
        CONTROLLER_ROLE,
        "RepositoryAlreadyExistsException",
        "exists",
    )
    assert (detail["userIdentity"]["arn"], detail["errorCode"], detail["eventType"]) == (
        CONTROLLER_ROLE,
        "RepositoryAlreadyExistsException",
        "AwsApiCall",
    )

"""CloudTrail events of pulls (read-only management events) and the rule states that receive them.

Sources: ECR User Guide, "Logging Amazon ECR actions with AWS CloudTrail" (image pull example:
``BatchGetImage`` with ``readOnly`` management-event fields, ``requestParameters`` ``imageIds``,
``acceptedMediaTypes``, ``repositoryName``, ``registryId``, ``responseElements: null``); EventBridge
User Guide, "Receiving read-only management events from AWS services" (``ENABLED`` rules never get them,
``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` rules do); botocore's events model (``RuleState``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.aws import events
from devstack.local.template import PhysicalResource, Resolver
from tests.functional.embedded_aws.conftest import (
    ALL_MANAGEMENT_EVENTS,
    CLOUDTRAIL_PATTERN,
    OCI_MANIFEST,
    PULL_PATTERN,
    EmbeddedAws,
)
from tests.functional.registry.support import PullThrough
from tests.template import load_template

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

PULLER_ROLE = "ci-runner"
USER_AGENT_MARK = "ecrcache-test-puller/1.0"


def _layer(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _details(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [envelope["detail"] for envelope in received]


def _puller(embedded_aws: EmbeddedAws) -> tuple[Any, str]:
    """An ECR client of an assumed-role session with its own User-Agent, and the session's ARN."""
    session = embedded_aws.role_session(PULLER_ROLE, "job-42")
    arn = session.client("sts").get_caller_identity()["Arn"]
    return session.client("ecr", config=Config(user_agent_extra=USER_AGENT_MARK)), arn


def test_a_pull_emits_one_read_only_event_per_call_to_opted_in_rules_only(embedded_aws: EmbeddedAws) -> None:
    """A docker pull's calls are read-only management events: only the third rule state receives them."""
    # GIVEN an image in a plain repository, and the pull pattern on two rules: ENABLED and opted in
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    digest = embedded_aws.put_image("team/app", "v1", layers=("l1",))
    opted_in = embedded_aws.spy(PULL_PATTERN, name="pulls-all", state=ALL_MANAGEMENT_EVENTS)
    enabled = embedded_aws.spy(PULL_PATTERN, name="pulls-enabled")
    ecr, session_arn = _puller(embedded_aws)
    # WHEN an assumed-role session pulls two images in one BatchGetImage, then asks for a layer URL
    ecr.batch_get_image(
        repositoryName="team/app",
        imageIds=[{"imageTag": "v1"}, {"imageDigest": digest}],
        acceptedMediaTypes=[OCI_MANIFEST],
    )
    ecr.get_download_url_for_layer(repositoryName="team/app", layerDigest=_layer("l1"))
    # THEN the ENABLED rule got nothing; the opted-in rule got exactly one event per call
    assert embedded_aws.received(enabled) == []
    received = embedded_aws.received(opted_in)
    assert [(e["source"], e["detail-type"]) for e in received] == [("aws.ecr", "AWS API Call via CloudTrail")] * 2
    batch, layer = _details(received)
    for detail in (batch, layer):
        assert detail["eventSource"] == "ecr.amazonaws.com"
        assert (detail["readOnly"], detail["eventType"], detail["managementEvent"]) == (True, "AwsApiCall", True)
        assert detail["eventCategory"] == "Management"
        assert detail["responseElements"] is None
        assert "errorCode" not in detail
        assert USER_AGENT_MARK in detail["userAgent"]
        assert detail["userIdentity"]["arn"] == session_arn
        assert detail["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == (
            f"arn:aws:iam::{embedded_aws.account_id}:role/{PULLER_ROLE}"
        )
        assert detail["resources"] == [
            {
                "ARN": f"arn:aws:ecr:{embedded_aws.region}:{embedded_aws.account_id}:repository/team/app",
                "accountId": embedded_aws.account_id,
            }
        ]
        assert str(uuid.UUID(detail["eventID"])) == detail["eventID"]
        assert str(uuid.UUID(detail["requestID"])) == detail["requestID"]
    assert batch["eventName"] == "BatchGetImage"
    assert batch["requestParameters"] == {
        "registryId": embedded_aws.account_id,  # filled in, as in the guide's example of a docker pull
        "repositoryName": "team/app",
        "imageIds": [{"imageTag": "v1"}, {"imageDigest": digest}],
        "acceptedMediaTypes": [OCI_MANIFEST],
    }
    assert layer["eventName"] == "GetDownloadUrlForLayer"
    assert layer["requestParameters"] == {
        "registryId": embedded_aws.account_id,
        "repositoryName": "team/app",
        "layerDigest": _layer("l1"),
    }
    assert batch["eventID"] != layer["eventID"]


def test_failed_calls_carry_error_code_but_per_image_failures_do_not(embedded_aws: EmbeddedAws) -> None:
    """CloudTrail records a failed call with errorCode/errorMessage; a failures[] entry is a successful call."""
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    embedded_aws.put_image("team/app", "v1")
    queue = embedded_aws.spy(PULL_PATTERN, name="pulls", state=ALL_MANAGEMENT_EVENTS)
    # WHEN one call names a missing tag, one a missing repository, one an unknown layer
    missing = embedded_aws.ecr.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "nope"}])
    assert missing["failures"][0]["failureCode"] == "ImageNotFound"
    with pytest.raises(ClientError) as no_repo:
        embedded_aws.ecr.batch_get_image(repositoryName="team/gone", imageIds=[{"imageTag": "v1"}])
    with pytest.raises(ClientError) as no_layer:
        embedded_aws.ecr.get_download_url_for_layer(repositoryName="team/app", layerDigest=_layer("other"))
    # THEN three events: the first without an error, the others with the error the caller saw
    first, second, third = _details(embedded_aws.received(queue))
    assert "errorCode" not in first
    assert first["responseElements"] is None
    assert second["errorCode"] == no_repo.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    assert second["errorMessage"] == no_repo.value.response["Error"]["Message"]
    assert third["errorCode"] == no_layer.value.response["Error"]["Code"] == "LayersNotFoundException"
    assert (second["readOnly"], third["readOnly"]) == (True, True)


def test_write_events_reach_enabled_and_opted_in_rules_but_not_disabled_ones(embedded_aws: EmbeddedAws) -> None:
    """Write (readOnly: false) management events go to ENABLED and opted-in rules; DISABLED gets nothing."""
    enabled = embedded_aws.spy(CLOUDTRAIL_PATTERN, name="writes-enabled")
    opted_in = embedded_aws.spy(CLOUDTRAIL_PATTERN, name="writes-all", state=ALL_MANAGEMENT_EVENTS)
    disabled = embedded_aws.spy(CLOUDTRAIL_PATTERN, name="writes-disabled", state="DISABLED")
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    for queue in (enabled, opted_in):
        [event] = embedded_aws.received(queue)
        assert (event["detail"]["eventName"], event["detail"]["readOnly"]) == ("CreateRepository", False)
    assert embedded_aws.received(disabled) == []


def test_put_events_honours_the_rule_state(embedded_aws: EmbeddedAws) -> None:
    """moto delivered PutEvents to DISABLED rules too; EventBridge matches no event against them."""
    pattern = {"source": ["team.app"]}
    enabled = embedded_aws.spy(pattern, name="custom-enabled")
    disabled = embedded_aws.spy(pattern, name="custom-disabled", state="DISABLED")
    entry = {"Source": "team.app", "DetailType": "deployed", "Detail": json.dumps({"v": 1})}
    embedded_aws.events.put_events(Entries=[entry])  # type: ignore[list-item]
    assert [e["detail"] for e in embedded_aws.received(enabled)] == [{"v": 1}]
    assert embedded_aws.received(disabled) == []


def test_rule_state_is_checked_reported_and_kept_by_enable_rule(embedded_aws: EmbeddedAws) -> None:
    """PutRule accepts exactly the model's RuleState values; Describe/ListRules report the state."""
    events = embedded_aws.events
    pattern = json.dumps(PULL_PATTERN)
    events.put_rule(Name="pulls", EventPattern=pattern, State=ALL_MANAGEMENT_EVENTS)
    assert events.describe_rule(Name="pulls")["State"] == ALL_MANAGEMENT_EVENTS
    assert [(r["Name"], r["State"]) for r in events.list_rules()["Rules"]] == [("pulls", ALL_MANAGEMENT_EVENTS)]
    # WHEN it is enabled again THEN it stays opted in [?]; disabled then enabled THEN plain ENABLED
    events.enable_rule(Name="pulls")
    assert events.describe_rule(Name="pulls")["State"] == ALL_MANAGEMENT_EVENTS
    events.disable_rule(Name="pulls")
    assert events.describe_rule(Name="pulls")["State"] == "DISABLED"
    events.enable_rule(Name="pulls")
    assert events.describe_rule(Name="pulls")["State"] == "ENABLED"
    # WHEN the state is not in the enum (botocore does not check enums) THEN ValidationException naming it
    with pytest.raises(ClientError) as info:
        events.put_rule(Name="bad", EventPattern=pattern, State="ENABLED_WITH_READS")  # type: ignore[arg-type]
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "'ENABLED_WITH_READS' at 'state'" in info.value.response["Error"]["Message"]
    assert ALL_MANAGEMENT_EVENTS in info.value.response["Error"]["Message"]


def test_pulls_through_a_rule_emit_the_same_events(ptc: PullThrough) -> None:
    """The pull-through path (first pull imports from the upstream) emits the same read-only events."""
    queue = ptc.aws.spy(PULL_PATTERN, name="ptc-pulls", state=ALL_MANAGEMENT_EVENTS)
    ptc.anonymous_rule()
    response = ptc.pull("ecr-public/library/alpine", tag="3.20")
    [image] = response["images"]
    manifest = json.loads(image["imageManifest"])
    ptc.aws.ecr.get_download_url_for_layer(
        repositoryName="ecr-public/library/alpine", layerDigest=manifest["layers"][0]["digest"]
    )
    failed = ptc.pull("ecr-public/library/alpine", tag="no-such-tag")
    assert failed["failures"][0]["failureCode"] == "ImageNotFound"
    details = _details(ptc.aws.received(queue))
    assert [d["eventName"] for d in details] == ["BatchGetImage", "GetDownloadUrlForLayer", "BatchGetImage"]
    assert all(d["readOnly"] is True and "errorCode" not in d for d in details)
    assert details[0]["requestParameters"]["imageIds"] == [{"imageTag": "3.20"}]


def test_pull_events_over_http(embedded_aws_server: str) -> None:
    """Server mode: the same events, the caller's User-Agent header as userAgent."""
    endpoint = embedded_aws_server
    ecr = boto3.client(
        "ecr", endpoint_url=endpoint, region_name="us-east-1", config=Config(user_agent_extra=USER_AGENT_MARK)
    )
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    events = boto3.client("events", endpoint_url=endpoint, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="pulls")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="pulls", EventPattern=json.dumps(PULL_PATTERN), State=ALL_MANAGEMENT_EVENTS)
    events.put_targets(Rule="pulls", Targets=[{"Id": "sqs", "Arn": queue_arn}])
    ecr.create_repository(repositoryName="team/app")
    with pytest.raises(ClientError):
        ecr.batch_get_image(repositoryName="team/none", imageIds=[{"imageTag": "v1"}])
    [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    detail = json.loads(message["Body"])["detail"]
    assert (detail["eventName"], detail["errorCode"]) == ("BatchGetImage", "RepositoryNotFoundException")
    assert USER_AGENT_MARK in detail["userAgent"]


def _template_pull_events_rule(embedded_aws: EmbeddedAws, warmer_role: str) -> tuple[dict[str, Any], str]:
    """``template.yaml``'s PullEventsRule: its pattern (the warm worker's role named ``warmer_role``) and state."""
    rule = load_template()["Resources"]["PullEventsRule"]["Properties"]
    resolver = Resolver(
        load_template(),
        {"WarmWorkerFunctionRole": PhysicalResource(ref=warmer_role)},
        pseudo={"AWS::Partition": "aws", "AWS::AccountId": embedded_aws.account_id, "AWS::Region": embedded_aws.region},
    )
    return resolver.resolve(rule["EventPattern"]), str(rule["State"])


def test_the_templates_pull_events_rule_filters_the_warmer_and_failures_and_lets_services_in(
    embedded_aws: EmbeddedAws,
) -> None:
    """PullEventsRule: no errorCode, not the warm worker's role sessions, but calls of AWS services (no
    ``userIdentity.arn``) do enter -- moto's matcher agrees with EventBridge on ``anything-but`` needing the
    field, and on ``$or``."""
    pattern, state = _template_pull_events_rule(embedded_aws, "ecrcache-warm-worker")
    queue = embedded_aws.spy(pattern, name="stats", state=state)  # type: ignore[arg-type]
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    embedded_aws.put_image("team/app", "v1")
    warmer = embedded_aws.role_session("ecrcache-warm-worker", "fn").client("ecr")
    deployer, deployer_arn = _puller(embedded_aws)
    warmer.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
    deployer.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
    with pytest.raises(ClientError):
        deployer.batch_get_image(repositoryName="team/gone", imageIds=[{"imageTag": "v1"}])
    delivered = _details(embedded_aws.received(queue))
    assert [(d["eventName"], d["userIdentity"]["arn"]) for d in delivered] == [("BatchGetImage", deployer_arn)]

    # WHEN an AWS service pulls on its own behalf: CloudTrail's userIdentity has a type and invokedBy, no arn
    # (CloudTrail User Guide, "CloudTrail userIdentity element", AWSService)
    service_call = {
        **delivered[0],
        "eventID": str(uuid.uuid4()),
        "userIdentity": {"type": "AWSService", "invokedBy": "ecs.amazonaws.com"},
    }
    events.emit(
        embedded_aws.account_id,
        embedded_aws.region,
        source="aws.ecr",
        detail_type="AWS API Call via CloudTrail",
        detail=service_call,
    )
    # THEN it is delivered to the pull statistics too
    assert [d["userIdentity"] for d in _details(embedded_aws.received(queue))] == [service_call["userIdentity"]]

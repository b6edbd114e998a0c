"""Pull events for the pull-statistics tests (unit and functional), built the way the function builds them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from ecrcache.engine.pull_stats import BridgeEvent, PullScope, read_event
from ecrcache.models.pull_stats import PullEvent

ACCOUNT: Final = "123456789012"
REGION: Final = "us-east-1"
AT: Final = datetime(2026, 11, 29, 12, 31, 7, tzinfo=UTC)
RUNNER_ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/ci-runner"
WARMER_ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/ecrcache-WarmWorkerFunctionRole-AB12"
DOCKER_UA: Final = "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/amd64"
NODE: Final = "docker-hub/library/node"
SCOPE: Final = PullScope.of({"docker-hub": ()}, stack_region=REGION, warmer_role_arn=WARMER_ROLE)


def pull_body(
    event_id: str,
    *,
    tag: str = "18-alpine",
    repository: str = NODE,
    at: datetime = AT,
    role: str = RUNNER_ROLE,
    user_agent: str = DOCKER_UA,
    name: str = "BatchGetImage",
    **detail: Any,
) -> dict[str, Any]:
    """An EventBridge ``AWS API Call via CloudTrail`` event of a pull (or a layer request)."""
    role_name = role.rsplit("/", 1)[1]
    params: dict[str, Any] = {"registryId": ACCOUNT, "repositoryName": repository}
    if name == "BatchGetImage":
        params["imageIds"] = [{"imageTag": tag}]
    else:
        params["layerDigest"] = "sha256:" + "cd" * 32
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": at.isoformat().replace("+00:00", "Z"),
        "region": REGION,
        "resources": [],
        "detail": {
            "eventSource": "ecr.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/session-1",
                "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role}},
            },
            "userAgent": user_agent,
            "requestParameters": params,
            "responseElements": None,
            **detail,
        },
    }


def action_body(event_id: str, *, status: str = "SUCCESS", tag: str = "18-alpine", at: datetime = AT) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "ECR Pull Through Cache Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": at.isoformat().replace("+00:00", "Z"),
        "region": REGION,
        "resources": [],
        "detail": {
            "sync-status": status,
            "ecr-repository-prefix": "docker-hub",
            "repository-name": NODE,
            "image-tag": tag,
            "image-digest": "sha256:" + "ab" * 32,
        },
    }


def counted(body: dict[str, Any], message_id: str | None = None) -> PullEvent:
    """The event as the engine reads it (it must count)."""
    event = BridgeEvent(
        message_id=message_id or f"m-{body['id']}",
        event_id=body["id"],
        time=datetime.fromisoformat(body["time"].replace("Z", "+00:00")),
        region=body["region"],
        detail_type=body["detail-type"],
        detail=body["detail"],
    )
    read = read_event(event, SCOPE)
    assert isinstance(read, PullEvent), read
    return read


def sqs_batch(*bodies: dict[str, Any] | str, message_ids: list[str] | None = None) -> dict[str, Any]:
    """An SQS event source batch of these bodies (a ``str`` is sent as is: a malformed body)."""
    records = []
    for index, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        message_id = message_ids[index] if message_ids else f"msg-{index}"
        records.append(
            {
                "messageId": message_id,
                "receiptHandle": f"handle-{index}",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795955468000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795955468010",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ecrcache-PullEventsQueue",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}

"""``from_event``: the reconciler's event, parsed (never guessed), to the reconcile it asks for."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ValidationError

from ecrcache.engine.status import UpstreamObservation
from ecrcache.models.status import RunTrigger, UpstreamCheckSource
from ecrcache.services.reconcile import Scope
from ecrcache.services.triggers import (
    Trigger,
    UnknownEventError,
    cache_action,
    from_event,
    own_role_prefix,
    parse_event,
)
from ecrcache.services.upstream_health import CacheAction
from tests.conftest import REGION, load_event, sample_events

pytestmark = pytest.mark.unit

OWN_ROLE = "arn:aws:sts::123456789012:assumed-role/ecrcache-ReconcilerFunctionRole-7QX2K9/"
HERE = frozenset({REGION})
NODE = frozenset({"docker-hub/library/node"})
REQUEST_ID = "4f1c0b7e-0c51-4b1e-9d51-6a4d8c0b5e21"

# sample -> the trigger it parses to
EXPECTED: dict[str, Trigger | None] = {
    "reconciler/cloudtrail_delete_lifecycle_policy.json": Trigger(
        Scope(regions=HERE, deep_repositories=NODE), RunTrigger.CLOUDTRAIL
    ),
    "reconciler/cloudtrail_delete_rule.json": Trigger(Scope(regions=HERE), RunTrigger.CLOUDTRAIL),
    "reconciler/cloudtrail_deregister_exclusion.json": Trigger(Scope(regions=HERE), RunTrigger.CLOUDTRAIL),
    "reconciler/pull_through_cache_action.json": Trigger(
        Scope(regions=HERE, deep_repositories=NODE), RunTrigger.CACHE_EVENT
    ),
    "reconciler/pull_through_cache_action_failed.json": None,  # recorded as upstream health, no reconcile
    "reconciler/schedule_deep_resync.json": Trigger(Scope(deep=True), RunTrigger.SCHEDULE),
    "reconciler/schedule_resync.json": Trigger(Scope(), RunTrigger.SCHEDULE),
    "reconciler/stream_desired_rule.json": Trigger(Scope(), RunTrigger.STREAM),
    "reconciler/stream_reconcile_request.json": Trigger(Scope(deep=True), RunTrigger.API, run_id=REQUEST_ID),
}


def cloudtrail(**detail: Any) -> dict[str, Any]:
    """The CloudTrail sample with some of its ``detail`` replaced."""
    event = load_event("reconciler/cloudtrail_delete_lifecycle_policy.json")
    event["detail"].update(detail)
    return event


def stream(*samples: str) -> dict[str, Any]:
    """One batch holding the records of the stream samples, in order."""
    return {"Records": [record for sample in samples for record in load_event(f"reconciler/{sample}")["Records"]]}


# -- every sample ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", sample_events("reconciler"))
def test_every_sample_event_parses_to_its_trigger(sample: str) -> None:
    # GIVEN a sample event from events/reconciler (what `sam local invoke` takes)
    assert sample in EXPECTED, f"{sample}: a new sample event needs its trigger in EXPECTED"
    # WHEN it is parsed
    trigger = from_event(load_event(sample), own_role=OWN_ROLE)
    # THEN it asks for its reconcile
    assert trigger == EXPECTED[sample]


# -- stream batches ----------------------------------------------------------------------------------


def test_stream_batch_with_a_request_runs_under_the_requests_id_and_depth() -> None:
    # GIVEN a desired-item change and a reconcile request in one batch
    event = stream("stream_desired_rule.json", "stream_reconcile_request.json")
    # WHEN parsed THEN the one reconcile of the batch is the request's (its new image, read from DynamoDB JSON)
    assert from_event(event, own_role=OWN_ROLE) == Trigger(Scope(deep=True), RunTrigger.API, run_id=REQUEST_ID)


@pytest.mark.parametrize(("attribute", "deep"), [({"BOOL": False}, False), (None, False), ({"BOOL": True}, True)])
def test_stream_request_depth_comes_from_its_image(attribute: dict[str, Any] | None, deep: bool) -> None:
    # GIVEN a reconcile request whose item says deep: false, says nothing, or says deep: true
    event = stream("stream_reconcile_request.json")
    image = event["Records"][0]["dynamodb"]["NewImage"]
    image.pop("deep")
    if attribute is not None:
        image["deep"] = attribute
    # WHEN parsed THEN the request's run takes that depth
    assert from_event(event, own_role=OWN_ROLE) == Trigger(Scope(deep=deep), RunTrigger.API, run_id=REQUEST_ID)


def test_a_malformed_request_in_a_batch_is_skipped_and_said_not_a_poison_pill() -> None:
    # GIVEN a batch with a desired-item change and a request item written by hand with a non-boolean deep
    event = stream("stream_desired_rule.json", "stream_reconcile_request.json")
    event["Records"][1]["dynamodb"]["NewImage"]["deep"] = {"S": "yes"}
    # WHEN parsed
    trigger = from_event(event, own_role=OWN_ROLE)
    # THEN the batch still gets its reconcile, and the skipped request is named (for the handler's log)
    assert trigger is not None
    assert (trigger.scope, trigger.kind, trigger.run_id) == (Scope(), RunTrigger.STREAM, None)
    assert len(trigger.skipped) == 1 and "a reconcile request with invalid deep" in trigger.skipped[0]


def test_stream_removal_of_a_request_is_a_plain_stream_reconcile() -> None:
    # GIVEN a request item's removal (no new image)
    event = stream("stream_reconcile_request.json")
    record = event["Records"][0]
    record["eventName"] = "REMOVE"
    record["dynamodb"]["OldImage"] = record["dynamodb"].pop("NewImage")
    # WHEN parsed THEN it lends no run id: a reconcile of the stream, fast
    assert from_event(event, own_role=OWN_ROLE) == Trigger(Scope(), RunTrigger.STREAM)


# -- EventBridge -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ({}, Trigger(Scope(regions=HERE, deep_repositories=NODE), RunTrigger.CLOUDTRAIL)),
        ({"userIdentity": {"arn": f"{OWN_ROLE}session-2"}}, None),  # the controller's own call
        ({"errorCode": "RepositoryNotFoundException"}, None),  # a failed call changed nothing
        ({"eventSource": "s3.amazonaws.com"}, None),
        ({"eventName": "DescribeRepositories"}, None),  # not a change
        (
            {"awsRegion": "eu-west-1"},
            Trigger(Scope(regions=frozenset({"eu-west-1"}), deep_repositories=NODE), RunTrigger.CLOUDTRAIL),
        ),
        (
            {
                "eventName": "TagResource",
                "requestParameters": {"resourceArn": "arn:aws:ecr:us-east-1:1:repository/a/b"},
            },
            Trigger(Scope(regions=HERE, deep_repositories=frozenset({"a/b"})), RunTrigger.CLOUDTRAIL),
        ),
        (
            {"eventName": "CreateRepository", "requestParameters": {}},
            Trigger(Scope(regions=HERE), RunTrigger.CLOUDTRAIL),
        ),
        (
            {"eventName": "UpdatePullThroughCacheRule", "userIdentity": {}},
            Trigger(Scope(regions=HERE), RunTrigger.CLOUDTRAIL),
        ),
        *(  # the warmer's exclusion changed: a registry-level reconcile of the Region, nothing read deeply
            (
                {"eventName": name, "requestParameters": {"principalArn": "arn:aws:iam::1:role/warm"}},
                Trigger(Scope(regions=HERE), RunTrigger.CLOUDTRAIL),
            )
            for name in ("RegisterPullTimeUpdateExclusion", "DeregisterPullTimeUpdateExclusion")
        ),
        ({"eventName": "ListPullTimeUpdateExclusions"}, None),  # a read changes nothing
    ],
)
def test_cloudtrail_event_asks_for_a_reconcile_of_its_region(detail: dict[str, Any], expected: Trigger | None) -> None:
    # GIVEN a CloudTrail event for an ECR call
    # WHEN parsed with the controller's own role
    # THEN drift by someone else is reconciled in the call's Region; its own, failed and other calls are ignored
    assert from_event(cloudtrail(**detail), own_role=OWN_ROLE) == expected


@pytest.mark.parametrize("status", ["FAILED", "FAILURE", "failed"])
def test_pull_through_cache_action_that_failed_asks_for_no_reconcile(status: str) -> None:
    # GIVEN a failed pull-through cache action (any sync-status but SUCCESS: the others are undocumented)
    event = load_event("reconciler/pull_through_cache_action.json")
    event["detail"]["sync-status"] = status
    # WHEN parsed THEN no repository was created: nothing to reconcile
    assert from_event(event, own_role=OWN_ROLE) is None


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (
            "reconciler/pull_through_cache_action.json",
            UpstreamObservation(
                source=UpstreamCheckSource.PULL,
                at=datetime(2026, 11, 29, 12, 30, tzinfo=UTC),
                healthy=True,
                repository="docker-hub/library/node",
                image="18-alpine",
            ),
        ),
        (
            "reconciler/pull_through_cache_action_failed.json",
            UpstreamObservation(
                source=UpstreamCheckSource.PULL,
                at=datetime(2026, 11, 29, 12, 35, tzinfo=UTC),
                healthy=False,
                failure_code="UpstreamTooManyRequests",
                failure="The upstream registry is rate limiting requests (HTTP 429 TOOMANYREQUESTS)",
                repository="docker-hub/library/node",
                image="20-alpine",
            ),
        ),
    ],
)
def test_every_pull_through_cache_action_is_an_observation_of_the_upstream(
    sample: str, expected: UpstreamObservation
) -> None:
    # GIVEN a pull-through cache action, successful or not
    event = parse_event(load_event(sample))
    assert isinstance(event, EventBridgeModel)
    # WHEN read as an observation THEN it names the rule, the repository, the image and what failed
    assert cache_action(event) == CacheAction(REGION, "docker-hub", "docker-hub/library/node", expected)


def test_an_image_pulled_by_digest_is_named_by_its_digest() -> None:
    event = load_event("reconciler/pull_through_cache_action.json")
    del event["detail"]["image-tag"]
    action = cache_action(EventBridgeModel.model_validate(event))
    assert action is not None and action.observation.image == event["detail"]["image-digest"]


def test_other_events_are_no_cache_action() -> None:
    event = parse_event(load_event("reconciler/cloudtrail_delete_rule.json"))
    assert isinstance(event, EventBridgeModel)
    assert cache_action(event) is None


def test_other_eventbridge_events_are_ignored() -> None:
    # GIVEN an EventBridge event of another detail type
    event = load_event("reconciler/pull_through_cache_action.json")
    event["detail-type"] = "ECR Image Action"
    # WHEN parsed THEN it asks for nothing
    assert from_event(event, own_role=OWN_ROLE) is None


def test_cloudtrail_event_with_a_malformed_detail_is_a_validation_error() -> None:
    # GIVEN a CloudTrail event whose detail lacks the call's name
    event = cloudtrail()
    del event["detail"]["eventName"]
    # WHEN parsed THEN it is refused, not ignored
    with pytest.raises(ValidationError, match="eventName"):
        from_event(event, own_role=OWN_ROLE)


# -- anything else -----------------------------------------------------------------------------------


def _without_sequence_number() -> dict[str, Any]:
    event = stream("stream_desired_rule.json")
    del event["Records"][0]["dynamodb"]["SequenceNumber"]
    return event


def _without_id() -> dict[str, Any]:
    event = cloudtrail()
    del event["id"]
    return event


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({}, id="empty"),
        pytest.param({"resync": "weekly"}, id="unknown-resync"),
        pytest.param({"resync": "fast", "region": REGION}, id="resync-with-more"),
        pytest.param({"Records": []}, id="empty-batch"),
        pytest.param({"Records": [{"eventID": "1"}]}, id="record-without-change"),
        pytest.param(_without_sequence_number(), id="record-without-sequence-number"),
        pytest.param(_without_id(), id="eventbridge-without-id"),
        pytest.param([], id="list"),
        pytest.param("resync", id="text"),
        pytest.param(None, id="null"),
    ],
)
def test_event_of_no_known_shape_is_an_error_naming_the_shapes(event: object) -> None:
    # GIVEN an event that is none of the template's shapes
    # WHEN parsed THEN it is refused (a ValueError), naming what was expected - never a reconcile
    with pytest.raises(UnknownEventError, match=r"expected a DynamoDB stream batch .* schedule input") as raised:
        from_event(copy.deepcopy(event), own_role=OWN_ROLE)
    assert isinstance(raised.value, ValueError)


# -- own role ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "prefix"),
    [
        (f"{OWN_ROLE}ecrcache-ReconcilerFunction-Ab3dE", OWN_ROLE),
        ("arn:aws:sts::123456789012:assumed-role/r/s/extra", "arn:aws:sts::123456789012:assumed-role/r/"),
        ("arn:aws:iam::123456789012:user/bob", "arn:aws:iam::123456789012:user/bob"),
    ],
)
def test_own_role_prefix_is_shared_by_every_session_of_the_role(caller: str, prefix: str) -> None:
    # WHEN the caller's ARN is cut THEN what remains matches every session of the same role
    assert own_role_prefix(caller) == prefix

"""``from_event``: the reconciler's event, parsed (never guessed), to the reconcile it asks for."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ValidationError

from ecrcache.engine.status import UpstreamObservation
from ecrcache.models.status import RunTrigger, UpstreamCheckSource
from ecrcache.services.reconcile import Scope
from ecrcache.services.triggers import (
    QueueBatch,
    QueuedEvents,
    Trigger,
    UnknownEventError,
    cache_action,
    from_event,
    own_role_prefix,
    own_roles,
    parse_event,
    read_queue,
    role_session_prefix,
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
    "reconciler/pull_through_cache_action.json": Trigger(  # read deeply unless settled since it was created
        Scope(regions=HERE, new_repositories=NODE), RunTrigger.CACHE_EVENT
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
    trigger = from_event(load_event(sample), own_roles={OWN_ROLE})
    # THEN it asks for its reconcile
    assert trigger == EXPECTED[sample]


# -- stream batches ----------------------------------------------------------------------------------


def test_stream_batch_with_a_request_runs_under_the_requests_id_and_depth() -> None:
    # GIVEN a desired-item change and a reconcile request in one batch
    event = stream("stream_desired_rule.json", "stream_reconcile_request.json")
    # WHEN parsed THEN the one reconcile of the batch is the request's (its new image, read from DynamoDB JSON)
    assert from_event(event, own_roles={OWN_ROLE}) == Trigger(Scope(deep=True), RunTrigger.API, run_id=REQUEST_ID)


@pytest.mark.parametrize(("attribute", "deep"), [({"BOOL": False}, False), (None, False), ({"BOOL": True}, True)])
def test_stream_request_depth_comes_from_its_image(attribute: dict[str, Any] | None, deep: bool) -> None:
    # GIVEN a reconcile request whose item says deep: false, says nothing, or says deep: true
    event = stream("stream_reconcile_request.json")
    image = event["Records"][0]["dynamodb"]["NewImage"]
    image.pop("deep")
    if attribute is not None:
        image["deep"] = attribute
    # WHEN parsed THEN the request's run takes that depth
    assert from_event(event, own_roles={OWN_ROLE}) == Trigger(Scope(deep=deep), RunTrigger.API, run_id=REQUEST_ID)


def test_a_malformed_request_in_a_batch_is_skipped_and_said_not_a_poison_pill() -> None:
    # GIVEN a batch with a desired-item change and a request item written by hand with a non-boolean deep
    event = stream("stream_desired_rule.json", "stream_reconcile_request.json")
    event["Records"][1]["dynamodb"]["NewImage"]["deep"] = {"S": "yes"}
    # WHEN parsed
    trigger = from_event(event, own_roles={OWN_ROLE})
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
    assert from_event(event, own_roles={OWN_ROLE}) == Trigger(Scope(), RunTrigger.STREAM)


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
    assert from_event(cloudtrail(**detail), own_roles={OWN_ROLE}) == expected


@pytest.mark.parametrize("status", ["FAILED", "FAILURE", "failed"])
def test_pull_through_cache_action_that_failed_asks_for_no_reconcile(status: str) -> None:
    # GIVEN a failed pull-through cache action (any sync-status but SUCCESS: the others are undocumented)
    event = load_event("reconciler/pull_through_cache_action.json")
    event["detail"]["sync-status"] = status
    # WHEN parsed THEN no repository was created: nothing to reconcile
    assert from_event(event, own_roles={OWN_ROLE}) is None


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
    assert from_event(event, own_roles={OWN_ROLE}) is None


def test_cloudtrail_event_with_a_malformed_detail_is_a_validation_error() -> None:
    # GIVEN a CloudTrail event whose detail lacks the call's name
    event = cloudtrail()
    del event["detail"]["eventName"]
    # WHEN parsed THEN it is refused, not ignored
    with pytest.raises(ValidationError, match="eventName"):
        from_event(event, own_roles={OWN_ROLE})


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
        from_event(copy.deepcopy(event), own_roles={OWN_ROLE})
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


WORKER_ROLE = "arn:aws:iam::123456789012:role/ecrcache-ReconcileWorkerFunctionRole-5HJ8L2"
WORKER_SESSION = "arn:aws:sts::123456789012:assumed-role/ecrcache-ReconcileWorkerFunctionRole-5HJ8L2/worker-1"


@pytest.mark.parametrize(
    ("role", "prefix"),
    [
        (WORKER_ROLE, "arn:aws:sts::123456789012:assumed-role/ecrcache-ReconcileWorkerFunctionRole-5HJ8L2/"),
        # a session's ARN names the role without its path; other partitions keep theirs
        ("arn:aws-cn:iam::123456789012:role/team/ops/worker", "arn:aws-cn:sts::123456789012:assumed-role/worker/"),
        ("arn:aws-us-gov:iam::123456789012:role/worker", "arn:aws-us-gov:sts::123456789012:assumed-role/worker/"),
        ("arn:aws:iam::123456789012:user/bob", "arn:aws:iam::123456789012:user/bob"),  # not a role: unchanged
    ],
)
def test_a_role_arn_gives_the_prefix_every_session_of_the_role_shares(role: str, prefix: str) -> None:
    assert role_session_prefix(role) == prefix


def _assumed(role_arn: str, session_arn: str | None) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role"}}}
    identity["sessionContext"]["sessionIssuer"]["arn"] = role_arn
    if session_arn is not None:
        identity["arn"] = session_arn
    return identity


@pytest.mark.parametrize(
    ("identity", "ignored"),
    [
        ({"type": "AssumedRole", "arn": WORKER_SESSION}, True),  # by the session's ARN
        (_assumed(WORKER_ROLE, None), True),  # by the session issuer (the role's own ARN)
        (_assumed(WORKER_ROLE, WORKER_SESSION), True),
        (_assumed(WORKER_ROLE.replace("-5HJ8L2", "-5HJ8L2-admin"), None), False),  # a role named like it
        ({"type": "AssumedRole", "arn": f"{OWN_ROLE}session-2"}, True),  # the reconciler's own, still
        ({"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"}, False),
        ({"type": "AWSService", "invokedBy": "pullthroughcache.ecr.amazonaws.com"}, False),
    ],
)
def test_the_reconcile_workers_writes_are_the_controllers_own(identity: dict[str, Any], ignored: bool) -> None:
    # GIVEN the controller's roles: the reconciler's (its caller ARN) and the reconcile worker's (its role ARN)
    roles = own_roles(f"{OWN_ROLE}ecrcache-ReconcilerFunction-Ab3dE", WORKER_ROLE, "")
    assert roles == {OWN_ROLE, role_session_prefix(WORKER_ROLE)}
    # WHEN a write's CloudTrail event comes back THEN the worker's and the reconciler's are ignored, anyone else's not
    event = cloudtrail(eventName="PutLifecyclePolicy", userIdentity=identity)
    assert (from_event(event, own_roles=roles) is None) is ignored
    assert (from_event(queue_batch(event), own_roles=roles) is None) is ignored  # through the event queue too


# -- the event queue (EcrEvents): a batch coalesced into one reconcile per Region -------------------


def queue_batch(*bodies: object) -> dict[str, Any]:
    """A batch of the reconciler's event queue as Lambda delivers it; a body that is not a str is sent as JSON."""
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"h-{n}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1764892800000",
                    "SenderId": "AIDAEVENTS",
                    "ApproximateFirstReceiveTimestamp": "1764892800000",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:ecrcache-ReconcilerEventsQueue",
                "awsRegion": REGION,
            }
            for n, body in enumerate(bodies)
        ]
    }


def _read(*bodies: object) -> QueuedEvents:
    parsed = parse_event(queue_batch(*bodies))
    assert isinstance(parsed, QueueBatch)
    return read_queue(parsed, own_roles={OWN_ROLE})


def test_a_storm_in_one_region_is_one_reconcile_reading_every_touched_repository() -> None:
    # GIVEN forty CloudTrail events on three repositories and a rule, and a pull-through import
    repos = ["docker-hub/library/node", "docker-hub/library/python", "docker-hub/library/ruby"]
    bodies: list[object] = [
        cloudtrail(eventName="TagResource", requestParameters={"repositoryName": repos[n % 3]}) for n in range(39)
    ]
    bodies.append(load_event("reconciler/cloudtrail_delete_rule.json"))
    bodies.append(load_event("reconciler/pull_through_cache_action.json"))

    # WHEN the batch is read
    read = _read(*bodies)

    # THEN it asks for one CloudTrail reconcile of the Region, deep on each repository once, for every message
    # (the imported one also named as new: settled by this run, a later event about it reads it no more)
    (run,) = read.runs
    scope = Scope(regions=HERE, deep_repositories=frozenset(repos), new_repositories=NODE)
    assert run.trigger == Trigger(scope, RunTrigger.CLOUDTRAIL)
    assert run.message_ids == tuple(f"m-{n}" for n in range(41))
    assert [message_id for message_id, _ in read.actions] == ["m-40"]  # the cache action, to record
    assert read.unreadable == ()


def test_each_region_of_a_batch_is_its_own_reconcile_with_its_own_messages() -> None:
    here = cloudtrail(awsRegion=REGION)
    there = cloudtrail(awsRegion="eu-west-1")
    own = cloudtrail(userIdentity={"type": "AssumedRole", "arn": f"{OWN_ROLE}session"})  # the controller's: none

    read = _read(there, here, own, there)

    assert [(r.trigger.scope.regions, r.message_ids) for r in read.runs] == [
        (frozenset({"eu-west-1"}), ("m-0", "m-3")),
        (HERE, ("m-1",)),
    ]


def test_cache_events_only_are_a_cache_event_run() -> None:
    read = _read(load_event("reconciler/pull_through_cache_action.json"))
    (run,) = read.runs
    assert run.trigger == Trigger(Scope(regions=HERE, new_repositories=NODE), RunTrigger.CACHE_EVENT)


def test_a_repository_created_is_named_as_new_like_its_import() -> None:
    # GIVEN the CloudTrail CreateRepository of a repository and the pull-through import that made it
    created = cloudtrail(eventName="CreateRepository", requestParameters={"repositoryName": "docker-hub/library/node"})
    # WHEN read alone, or in one batch THEN each names it as new (one deep read, once, for both)
    assert from_event(created, own_roles={OWN_ROLE}) == Trigger(
        Scope(regions=HERE, new_repositories=NODE), RunTrigger.CLOUDTRAIL
    )
    (run,) = _read(created, load_event("reconciler/pull_through_cache_action.json")).runs
    assert run.trigger == Trigger(Scope(regions=HERE, new_repositories=NODE), RunTrigger.CLOUDTRAIL)
    # AND another write to a repository still reads it deeply (drift: its record cannot be trusted)
    tagged = cloudtrail(eventName="TagResource", requestParameters={"repositoryName": "docker-hub/library/node"})
    assert from_event(tagged, own_roles={OWN_ROLE}) == Trigger(
        Scope(regions=HERE, deep_repositories=NODE), RunTrigger.CLOUDTRAIL
    )


def test_a_failed_pull_is_recorded_and_asks_for_no_reconcile() -> None:
    read = _read(load_event("reconciler/pull_through_cache_action_failed.json"))
    assert read.runs == ()
    assert [message_id for message_id, _ in read.actions] == ["m-0"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("not json", "body"),
        ({"detail-type": "AWS API Call via CloudTrail"}, "id"),
        ({**load_event("reconciler/cloudtrail_delete_rule.json"), "detail": {"eventSource": 3}}, "eventSource"),
    ],
)
def test_an_unreadable_message_is_named_alone_and_the_rest_is_read(body: object, named: str) -> None:
    read = _read(load_event("reconciler/cloudtrail_delete_rule.json"), body)

    assert [r.message_ids for r in read.runs] == [("m-0",)]
    ((message_id, problem),) = read.unreadable
    assert message_id == "m-1"
    assert named in problem
    assert "not json" not in problem.replace("body", "")  # what it says is field names, never the body


def test_from_event_reads_a_queue_batch_of_one_region_as_its_trigger() -> None:
    assert from_event(queue_batch(load_event("reconciler/cloudtrail_delete_rule.json")), own_roles={OWN_ROLE}) == (
        Trigger(Scope(regions=HERE), RunTrigger.CLOUDTRAIL)
    )
    with pytest.raises(ValueError, match="each of 2 Regions"):
        from_event(queue_batch(cloudtrail(), cloudtrail(awsRegion="eu-west-1")), own_roles={OWN_ROLE})
    with pytest.raises(ValueError, match="could not be read"):
        from_event(queue_batch("{}"), own_roles={OWN_ROLE})


FORWARDED_FROM = "eu-west-1"


def _forwarded(sample: str) -> dict[str, Any]:
    """A sample event as a forwarder of another Region delivers it to the stack Region's bus: EventBridge keeps
    the origin's ``region`` (and the CloudTrail detail its ``awsRegion``)."""
    event = load_event(sample)
    event["region"] = FORWARDED_FROM
    if "awsRegion" in event["detail"]:
        event["detail"]["awsRegion"] = FORWARDED_FROM
    return event


@pytest.mark.parametrize(
    "sample", ["reconciler/cloudtrail_delete_lifecycle_policy.json", "reconciler/pull_through_cache_action.json"]
)
def test_a_forwarded_event_reconciles_the_region_it_came_from(sample: str) -> None:
    # GIVEN an ECR event of another Region, read from the reconciler's queue
    body = json.dumps(_forwarded(sample))
    batch = parse_event({"Records": [_sqs("m1", body)]})
    assert isinstance(batch, QueueBatch)
    # THEN the run it asks for is in that Region, not the stack's
    [run] = read_queue(batch, own_roles={OWN_ROLE}).runs
    assert run.trigger.scope.regions == frozenset({FORWARDED_FROM})
    assert REGION != FORWARDED_FROM


def test_a_forwarded_cache_action_is_recorded_on_the_rule_of_its_region() -> None:
    event = parse_event(_forwarded("reconciler/pull_through_cache_action.json"))
    assert isinstance(event, EventBridgeModel)
    action = cache_action(event)
    assert action is not None and action.region == FORWARDED_FROM


def _sqs(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"h-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:q",
        "awsRegion": REGION,
    }

"""The reconciler's triggers as ``template.yaml`` wires them: stream filter, EventBridge patterns, schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from devstack.aws import events
from ecrcache.models.status import RunStatus, RunTrigger
from tests.conftest import ACCOUNT_ID, REGION, load_event
from tests.functional.reconcile.support import (
    Admin,
    Look,
    Principal,
    Reconciler,
    StreamBatch,
    clients,
    eventbridge_pattern,
    matches,
    schedule_input,
    stream_filter_patterns,
)

pytestmark = pytest.mark.functional

LIFECYCLE = {"presets": {"keep_last": 10}}
KEEP_ONE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"},
            }
        ]
    }
)


def _pk_kinds(records: tuple[dict[str, Any], ...]) -> set[str]:
    """``pk`` up to its first ``#`` (``HISTORY#rule#quay`` -> ``HISTORY#``), with the event name."""
    out = set()
    for pk, _ in StreamBatch.keys(list(records)):
        out.add(pk.split("#", 1)[0] + ("#" if "#" in pk else ""))
    return out


def _request_reconcile(alice: Admin, *, deep: bool) -> str:
    """``POST /v1/reconcile``: queues a run and writes the request item the stream carries."""
    response = alice.api.call("POST", "/v1/reconcile", body={"deep": deep})
    assert response.status == 202, response.text
    run_id: str = response.json["run_id"]
    return run_id


def test_stream_filter_delivers_desired_items_and_reconcile_requests_only(
    controller: Reconciler, alice: Admin, bob: Principal, state_table: str
) -> None:
    # GIVEN desired items of every kind written through the API (created, updated, deleted), a
    # reconcile request that is then removed (TTL), and every kind of item the controller writes
    bob.ecr.create_repository(repositoryName="quay/library/nginx")
    alice.put_credential("hub")
    alice.put_rule("quay", {"upstream_kind": "quay", "lifecycle": LIFECYCLE})
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub", "description": "v2"})
    response = alice.api.put("/v1/warm-sets/base", {"rule": "quay", "images": ["library/nginx:1.27"]})
    assert response.status == 201, response.text
    alice.delete_rule("docker-hub")
    request_id = _request_reconcile(alice, deep=False)
    clients().dynamodb.delete_item(  # as DynamoDB's TTL removes it a day later
        TableName=state_table, Key={"pk": {"S": "REQUEST#reconcile"}, "sk": {"S": request_id}}
    )
    controller.resync()  # status, runs, lease, ownership, applied fingerprints
    controller.deliver_events()  # idempotency records (its own events, ignored)

    # WHEN the stream is read through the template's FilterCriteria
    batch = controller.stream.next_batch()

    # THEN exactly the desired-item changes and the request's INSERT reach the function, in order
    delivered = [(r["eventName"], *key) for r, key in zip(batch.delivered, batch.keys(batch.delivered), strict=True)]
    assert delivered == [
        ("INSERT", "DESIRED#credential", "hub"),
        ("INSERT", "DESIRED#rule", "quay"),
        ("INSERT", "DESIRED#rule", "docker-hub"),
        ("MODIFY", "DESIRED#rule", "docker-hub"),
        ("INSERT", "DESIRED#warm-set", "base"),
        ("REMOVE", "DESIRED#rule", "docker-hub"),
        ("INSERT", "REQUEST#reconcile", request_id),
    ]
    # THEN the controller's and the store's own writes are dropped: META, history, runs, lease, the
    # Regions' items (statuses, ownership) and fingerprints (both APPLIED#), idempotency - and the
    # request's removal
    assert any(r["dynamodb"]["Keys"]["sk"]["S"].startswith("#STATUS#") for r in batch.dropped)
    assert _pk_kinds(batch.dropped) == {
        "META",
        "HISTORY#",
        "RUN#",
        "LEASE#",
        "APPLIED#",
        "idempotency#",
        "REQUEST#",
    }
    removed_requests = [r for r in batch.dropped if r["dynamodb"]["Keys"]["pk"]["S"] == "REQUEST#reconcile"]
    assert [r["eventName"] for r in removed_requests] == ["REMOVE"]


def test_stream_batch_with_a_reconcile_request_runs_under_the_requests_id(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a rule change and a deep reconcile requested through the API, in one batch
    alice.put_rule("quay", {"upstream_kind": "quay"})
    request_id = _request_reconcile(alice, deep=True)
    queued = look.run(request_id)
    assert queued is not None
    assert queued.finished_at is None

    # WHEN the batch is delivered
    outcome = controller.deliver_stream()

    # THEN one run covers the batch: the request's id, deep, triggered by the API
    assert outcome.response == {"batchItemFailures": []}
    assert len(outcome.records) == 2
    run = look.run(request_id)
    assert run is not None
    assert (run.trigger, run.scope, run.status) == (RunTrigger.API, "all:deep", RunStatus.SUCCEEDED)
    assert look.rule("quay") is not None
    assert [r.run_id for r in look.runs()] == [request_id]
    # THEN the API reports the finished run where it said it would
    response = alice.api.get(f"/v1/runs/{request_id}")
    assert response.status == 200, response.text
    assert response.json["status"] == "succeeded"


def test_stream_batch_of_only_controller_writes_never_invokes_the_function(
    controller: Reconciler, alice: Admin
) -> None:
    # GIVEN a converged rule (its stream batch delivered)
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.converge()
    invocations = controller.invocations

    # WHEN the scheduled resync writes status, runs and the lease, and nothing else changes
    controller.resync()
    controller.resync("deep")

    # THEN none of those writes passes the filter: no stream invocation (no reconcile loop)
    assert controller.deliver_stream().records == ()
    assert controller.invocations == invocations + 2


def test_eventbridge_rules_route_the_template_patterns_only(controller: Reconciler, bob: Principal) -> None:
    # GIVEN ECR calls by someone else: drift-relevant ones, one that is not in the pattern, one that failed
    bob.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    bob.ecr.create_repository(repositoryName="quay/library/nginx")
    bob.ecr.put_lifecycle_policy(repositoryName="quay/library/nginx", lifecyclePolicyText=KEEP_ONE)
    bob.ecr.put_image_tag_mutability(repositoryName="quay/library/nginx", imageTagMutability="MUTABLE")
    bob.ecr.delete_repository(repositoryName="quay/library/nginx")  # not a drift event
    with pytest.raises(bob.ecr.exceptions.PullThroughCacheRuleNotFoundException):
        bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="ghcr")
    # GIVEN pull-through cache actions, one successful and one failed
    for status in ("SUCCESS", "FAILED"):
        events.emit(
            ACCOUNT_ID,
            REGION,
            source="aws.ecr",
            detail_type="ECR Pull Through Cache Action",
            detail={"sync-status": status, "repository-name": "quay/library/nginx", "ecr-repository-prefix": "quay"},
        )

    # WHEN the function's EventBridge rules (the template's patterns) route them
    routed = controller.pending_events()

    # THEN the drift calls and both cache actions arrive; the repository deletion and the failed call
    # (the pattern filters out events with an errorCode) do not
    names = [(e["detail-type"], e["detail"].get("eventName") or e["detail"]["sync-status"]) for e in routed]
    assert names == [
        ("AWS API Call via CloudTrail", "CreatePullThroughCacheRule"),
        ("AWS API Call via CloudTrail", "CreateRepository"),
        ("AWS API Call via CloudTrail", "PutLifecyclePolicy"),
        ("AWS API Call via CloudTrail", "PutImageTagMutability"),
        ("ECR Pull Through Cache Action", "SUCCESS"),
        ("ECR Pull Through Cache Action", "FAILED"),
    ]
    # THEN the handler reconciles for each of them but the failed action: it asks for none (and its rule,
    # made by hand, has no status to record it on)
    responses = controller.deliver(routed)
    assert [d.ignored for d in responses] == [False, False, False, False, False, True]
    assert [d.run.trigger for d in responses if not d.ignored] == [
        RunTrigger.CLOUDTRAIL,
        RunTrigger.CLOUDTRAIL,
        RunTrigger.CLOUDTRAIL,
        RunTrigger.CLOUDTRAIL,
        RunTrigger.CACHE_EVENT,
    ]
    assert [d.run.scope for d in responses if not d.ignored] == [
        f"{REGION}:fast",
        f"{REGION}:fast+1",
        f"{REGION}:fast+1",
        f"{REGION}:fast+1",
        f"{REGION}:fast+1",
    ]


def test_schedules_deliver_the_template_inputs(controller: Reconciler) -> None:
    # WHEN each schedule fires with its Input from the template
    fast = controller.resync("fast")
    deep = controller.resync("deep")

    # THEN each is one scheduled run over every Region, fast or deep
    assert (fast.trigger, fast.scope, fast.status) == (RunTrigger.SCHEDULE, "all:fast", RunStatus.SUCCEEDED)
    assert (deep.trigger, deep.scope, deep.status) == (RunTrigger.SCHEDULE, "all:deep", RunStatus.SUCCEEDED)
    assert fast.started_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("sample", "trigger"),
    [
        ("reconciler/stream_desired_rule.json", "stream"),
        ("reconciler/stream_reconcile_request.json", "stream"),
        ("reconciler/cloudtrail_delete_rule.json", "EcrDrift"),
        ("reconciler/cloudtrail_delete_lifecycle_policy.json", "EcrDrift"),
        ("reconciler/pull_through_cache_action.json", "PullThroughCacheAction"),
    ],
)
def test_sample_events_match_the_template_triggers(sample: str, trigger: str) -> None:
    # GIVEN a sample event from events/ (what `sam local invoke` takes)
    event = load_event(sample)
    # WHEN it is matched against the trigger the template declares for it
    if trigger == "stream":
        matched = [any(matches(p, r) for p in stream_filter_patterns()) for r in event["Records"]]
    else:
        matched = [matches(eventbridge_pattern(trigger), event)]
    # THEN the template would deliver it
    assert all(matched)


@pytest.mark.parametrize(
    ("sample", "schedule"),
    [("reconciler/schedule_resync.json", "Resync"), ("reconciler/schedule_deep_resync.json", "DeepResync")],
)
def test_schedule_sample_events_are_the_template_inputs(sample: str, schedule: Literal["Resync", "DeepResync"]) -> None:
    # GIVEN a schedule's sample event WHEN compared with that schedule's Input in the template THEN it is the same
    assert load_event(sample) == schedule_input(schedule)


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": {"b": [{"prefix": "DESIRED#"}]}}, {"a": {"b": "DESIRED#rule"}}, True),
        ({"a": {"b": [{"prefix": "DESIRED#"}]}}, {"a": {"b": "STATUS"}}, False),
        ({"a": {"b": [{"prefix": "DESIRED#"}]}}, {"a": {}}, False),
        ({"a": {"b": [{"prefix": "DESIRED#"}]}}, {"a": "flat"}, False),
        ({"eventName": ["INSERT"]}, {"eventName": "INSERT"}, True),
        ({"eventName": ["INSERT"]}, {"eventName": "REMOVE"}, False),
        ({"eventName": ["INSERT", "MODIFY"]}, {"eventName": "MODIFY"}, True),
        ({"x": ["v"]}, {"x": ["u", "v"]}, True),
        ({"x": [{"exists": False}]}, {}, True),
        ({"x": [{"exists": True}]}, {}, False),
        # The drift rule's own-call filter (EventBridge User Guide, "Comparison operators"): anything-but a
        # prefix matches only a field that exists, hence the $or with exists: false.
        ({"x": [{"anything-but": {"prefix": "mine/"}}]}, {"x": "mine/1"}, False),
        ({"x": [{"anything-but": {"prefix": "mine/"}}]}, {"x": "theirs/1"}, True),
        ({"x": [{"anything-but": {"prefix": "mine/"}}]}, {}, False),
        ({"$or": [{"x": [{"anything-but": {"prefix": "mine/"}}]}, {"x": [{"exists": False}]}]}, {}, True),
        ({"$or": [{"x": [{"anything-but": {"prefix": "mine/"}}]}, {"x": [{"exists": False}]}]}, {"x": "mine/"}, False),
    ],
)
def test_pattern_matcher_forms(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    # WHEN / THEN the content-filter forms the template uses match like Lambda and EventBridge do
    assert matches(pattern, event) is expected


def test_pattern_matcher_refuses_a_pattern_eventbridge_refuses() -> None:
    # WHEN a pattern's leaf is not a list or an object THEN it is refused, as PutRule refuses it
    with pytest.raises(ValueError, match="must be an object or an array"):
        matches({"x": "flat"}, {"x": "flat"})

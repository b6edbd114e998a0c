"""Every AWS call the reconciler makes, failing: throttling, 5xx and access denied.

Write failures are per action: four rules take the same change in one stream batch, three of them
hit by one fault each (``throttled``, ``unavailable``, ``denied``), the fourth (``healthy``)
converges; conditions name the failure, nothing in the desired state is lost, and the next resync
converges once the fault clears. Read failures (listing, deep reads) fail the Region's run as a
whole; DynamoDB failures of the status store and a lease held by another run fail the trigger so
that it is retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from ecrcache.engine.plan import ActionKind
from ecrcache.errors import EcrcacheError, RetryableError, TerminalError
from ecrcache.models.status import ConditionType, RunStatus, RunTrigger
from ecrcache.services.reconcile import Scope
from tests.conftest import REGION
from tests.functional.api.client import enc
from tests.functional.reconcile.conftest import World
from tests.functional.reconcile.support import (
    CREATION_ROLE,
    FAULTS,
    GOOD_TOKEN,
    Admin,
    Look,
    Principal,
    Reconciler,
    aws_error,
    condition,
    failing,
    target_of,
)

pytestmark = pytest.mark.functional

#: rule prefix -> the fault its ECR calls meet
FAULTED = {"throttled": "throttling", "unavailable": "server-error", "denied": "access-denied"}
HEALTHY = "healthy"
PREFIXES = (*FAULTED, HEALTHY)
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Pull", "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}],
}


def _spec(**extra: Any) -> dict[str, Any]:
    return {"upstream_kind": "docker-hub", "credential": "hub", **extra}


def _operation(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


def _fault_for(request: dict[str, Any]) -> str | None:
    return FAULTED.get(target_of(request))


def _left(world: World) -> dict[str, list[ActionKind]]:
    """What the plan (``GET /v1/plan``) still has to do, per rule."""
    left: dict[str, list[ActionKind]] = {prefix: [] for prefix in PREFIXES}
    for action in world.reconciler.plan().actions:
        left.setdefault(action.rule_prefix, []).append(action.kind)
    return left


@pytest.fixture
def credentials(alice: Admin, bob: Principal, controller: Reconciler) -> None:
    """Credentials ``hub`` and ``hub-ci``, and a repository cached under each rule prefix."""
    alice.put_credential("hub")
    alice.put_credential("hub-ci", token=GOOD_TOKEN)
    for prefix in PREFIXES:
        bob.ecr.create_repository(repositoryName=f"{prefix}/library/nginx")
    controller.pending_events()  # set-up noise: nothing to manage yet


# --------------------------------------------------------------------------------------------------
# Writes: one failing action never stops the others


@dataclass(frozen=True)
class WriteCase:
    method: str
    kind: ActionKind
    before: dict[str, Any] | None  # converged first; None: no rule yet
    after: dict[str, Any] | None  # the change; None: the rule is deleted


WITH_ROLE = {"creation_role_arn": CREATION_ROLE}
WRITE_CASES = [
    WriteCase("create_pull_through_cache_rule", ActionKind.CREATE_RULE, None, _spec()),
    WriteCase("create_repository_creation_template", ActionKind.CREATE_TEMPLATE, None, _spec()),
    WriteCase("update_pull_through_cache_rule", ActionKind.UPDATE_RULE, _spec(), _spec(credential="hub-ci")),
    WriteCase(
        "update_repository_creation_template", ActionKind.UPDATE_TEMPLATE, _spec(), _spec(description="Docker Hub")
    ),
    WriteCase("delete_pull_through_cache_rule", ActionKind.DELETE_RULE, _spec(deletion_policy="delete"), None),
    WriteCase("delete_repository_creation_template", ActionKind.DELETE_TEMPLATE, _spec(deletion_policy="delete"), None),
    WriteCase(
        "put_lifecycle_policy", ActionKind.PUT_LIFECYCLE_POLICY, _spec(), _spec(lifecycle={"presets": {"keep_last": 5}})
    ),
    WriteCase(
        "delete_lifecycle_policy",
        ActionKind.DELETE_LIFECYCLE_POLICY,
        _spec(lifecycle={"presets": {"keep_last": 5}}),
        _spec(),
    ),
    WriteCase("set_repository_policy", ActionKind.SET_REPOSITORY_POLICY, _spec(), _spec(repository={"policy": POLICY})),
    WriteCase(
        "delete_repository_policy",
        ActionKind.DELETE_REPOSITORY_POLICY,
        _spec(repository={"policy": POLICY}),
        _spec(),
    ),
    WriteCase(
        "tag_resource",
        ActionKind.TAG_REPOSITORY,
        _spec(repository=WITH_ROLE),
        _spec(repository={**WITH_ROLE, "tags": {"team": "platform"}}),
    ),
    WriteCase(
        "put_image_tag_mutability",
        ActionKind.PUT_IMAGE_TAG_MUTABILITY,
        _spec(),
        _spec(repository={"tag_mutability": "MUTABLE_WITH_EXCLUSION", "tag_mutability_exclusions": ["v*"]}),
    ),
]


def _change(alice: Admin, spec: dict[str, Any] | None) -> None:
    for prefix in PREFIXES:
        if spec is None:
            alice.delete_rule(prefix)
        else:
            alice.put_rule(prefix, spec)


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("case", WRITE_CASES, ids=[c.method for c in WRITE_CASES])
def test_failing_write_is_recorded_per_rule_others_converge_and_the_next_resync_repairs(
    controller: Reconciler, alice: Admin, look: Look, world: World, case: WriteCase
) -> None:
    # GIVEN four rules in the state the case starts from
    if case.before is not None:
        _change(alice, case.before)
        controller.converge()

    # WHEN the same change reaches all four, and the call fails for three of them (one fault each)
    _change(alice, case.after)
    with failing(controller.registry(REGION).client, case.method, _fault_for) as failed:
        outcome = controller.deliver_stream()

    # THEN the stream batch succeeded (failed actions are recorded, not retried by the stream)
    assert {target_of(r) for r in failed} == set(FAULTED)
    assert outcome.error is None
    assert outcome.reported_failures == []
    [run] = [r for r in look.runs() if r.trigger is RunTrigger.STREAM][:1]
    assert run.status is RunStatus.PARTIAL
    operation = _operation(case.method)
    left = _left(world)
    for prefix, fault in FAULTED.items():
        code, _, retryable = FAULTS[fault]
        # THEN the run names each failed action, its code and the call
        assert any(
            e.startswith(f"{REGION}:{prefix}: {case.kind} ") and f"{code}: {operation} failed with {code}" in e
            for e in run.errors
        ), run.errors
        assert case.kind in left[prefix]
        if case.after is None:
            continue  # a deleted rule has no conditions any more: the run records the failure
        # THEN each failing rule's conditions say what failed and whether it may clear by itself
        status = look.rule_status(prefix)
        synced, reason, message = condition(status, ConditionType.SYNCED)
        assert (synced, reason) == (False, "ApplyFailed")
        assert message.startswith(f"{case.kind} ")
        assert f"{code}: {operation} failed with {code}: injected {fault}" in message
        assert condition(status, ConditionType.RECOVERABLE)[:2] == (retryable, code if retryable else "None")
        assert condition(status, ConditionType.TERMINAL)[:2] == (not retryable, "None" if retryable else code)
        raised = ConditionType.RECOVERABLE if retryable else ConditionType.TERMINAL
        assert f"{operation} failed with {code}" in condition(status, raised)[2]
    # THEN the healthy rule converged in the same run
    assert left[HEALTHY] == []
    if case.after is not None:
        assert condition(look.rule_status(HEALTHY), ConditionType.SYNCED)[0] is True
    # THEN the desired state is intact: every rule still says what was asked
    for prefix in PREFIXES:
        response = alice.api.get(f"/v1/rules/{enc(prefix)}")
        if case.after is None:
            assert response.status == 404
        else:
            assert response.status == 200
            assert response.json["spec"]["credential"] == case.after["credential"]

    # WHEN the fault clears and the scheduled resync runs
    run = controller.resync()

    # THEN everything converged and every condition is clear
    assert run.status is RunStatus.SUCCEEDED, run.errors
    assert run.summary[case.kind] == len(FAULTED)
    assert world.reconciler.plan().is_empty
    if case.after is not None:
        for prefix in PREFIXES:
            status = look.rule_status(prefix)
            assert condition(status, ConditionType.SYNCED) == (True, "Converged", "")
            assert condition(status, ConditionType.RECOVERABLE) == (False, "None", "")
            assert condition(status, ConditionType.TERMINAL) == (False, "None", "")


@pytest.mark.usefixtures("credentials")
def test_failing_validation_is_recorded_and_does_not_fail_the_rule(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # WHEN four rules are created and ValidatePullThroughCacheRule fails for three of them
    _change(alice, _spec())
    with failing(controller.registry(REGION).client, "validate_pull_through_cache_rule", _fault_for):
        controller.deliver_stream()

    # THEN the rules are created and Synced; the validation says it could not be checked, and why
    for prefix, fault in FAULTED.items():
        code, _, retryable = FAULTS[fault]
        status = look.rule_status(prefix)
        assert status is not None
        assert status.synced
        assert status.validation.is_valid is None
        assert status.validation.failure == (
            f"ECR ValidatePullThroughCacheRule failed with {code}" + ("; try again" if retryable else "")
        )
    healthy = look.rule_status(HEALTHY)
    assert healthy is not None
    assert (healthy.validation.is_valid, healthy.validation.failure) == (True, None)


# --------------------------------------------------------------------------------------------------
# Reads: the Region's run fails as a whole, nothing is written, the next resync converges


READS = [
    "describe_pull_through_cache_rules",
    "describe_repository_creation_templates",
    "describe_repositories",
    "get_lifecycle_policy",
    "get_repository_policy",
    "list_tags_for_resource",
]


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("method", READS)
def test_failing_read_fails_the_regions_run_visibly_and_the_next_resync_converges(
    controller: Reconciler, alice: Admin, look: Look, world: World, method: str
) -> None:
    # GIVEN a desired rule not yet in ECR, with a repository cached under its prefix
    alice.put_rule(HEALTHY, _spec(lifecycle={"presets": {"keep_last": 5}}))
    controller.stream.skip()  # only the schedule will see it
    operation = _operation(method)

    for fault in FAULTS:
        # WHEN a deep resync runs while the read fails with the fault
        with failing(controller.registry(REGION).client, method, fault):
            run = controller.resync("deep")

        # THEN the run is recorded as not succeeded, naming the call, the code and whether to retry
        code, _, retryable = FAULTS[fault]
        assert run.status is not RunStatus.SUCCEEDED
        expected = f"{REGION}: ECR {operation} failed with {code}" + ("; try again" if retryable else "")
        assert run.errors == (expected,)
        assert look.run(run.run_id) == run
        # THEN nothing was written, and the desired rule is still there
        assert controller.writes() == {}
        assert look.rule(HEALTHY) is None
        assert alice.api.get(f"/v1/rules/{HEALTHY}").status == 200

    # WHEN the fault clears THEN the next resync converges
    assert controller.resync("deep").status is RunStatus.SUCCEEDED
    assert look.rule(HEALTHY) is not None
    assert world.reconciler.plan(Scope(deep=True)).is_empty


def test_failing_read_sets_the_rules_conditions(controller: Reconciler, alice: Admin, look: Look) -> None:
    # GIVEN a converged rule
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})
    controller.converge()

    # WHEN a resync cannot list the rules (throttled, after botocore's retries)
    with failing(controller.registry(REGION).client, "describe_pull_through_cache_rules", "throttling"):
        controller.resync()

    # THEN the rule no longer claims to be Synced, and says why
    status = look.rule_status(HEALTHY)
    assert condition(status, ConditionType.SYNCED)[0] is False
    assert condition(status, ConditionType.RECOVERABLE)[:2] == (True, "ThrottlingException")


def test_a_run_that_applied_nothing_is_recorded_failed(controller: Reconciler, alice: Admin) -> None:
    # GIVEN a desired rule not yet in ECR
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})
    controller.stream.skip()
    # WHEN the resync cannot read ECR at all
    with failing(controller.registry(REGION).client, "describe_pull_through_cache_rules", "access-denied"):
        run = controller.resync()
    # THEN nothing was done: the run failed
    assert run.summary.get("create_rule", 0) == 0
    assert run.status is RunStatus.FAILED


# --------------------------------------------------------------------------------------------------
# The status store (DynamoDB)


def test_status_store_failing_at_the_start_fails_the_stream_batch_for_a_retry(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a rule change on the stream
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})
    batch = controller.stream.next_batch().delivered

    for fault in FAULTS:
        # WHEN the function cannot write the run record
        with failing(controller.status_client, "put_item", fault):
            outcome = controller.invoke_stream(batch)

        # THEN the invocation fails and Lambda delivers the whole batch again; ECR is untouched
        assert outcome.retried == [r["dynamodb"]["SequenceNumber"] for r in batch], fault
        assert look.rule(HEALTHY) is None

    # WHEN the retry comes after DynamoDB recovered THEN it converges
    retry = controller.invoke_stream(batch)
    assert retry.response == {"batchItemFailures": []}
    assert look.rule(HEALTHY) is not None


def test_status_store_failing_at_the_start_fails_the_scheduled_invocation(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a desired rule not yet in ECR
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})

    for fault in FAULTS:
        # WHEN the schedule fires and the function cannot write the run record
        with failing(controller.status_client, "put_item", fault), pytest.raises(EcrcacheError) as raised:
            controller.resync()

        # THEN the invocation fails (EventBridge Scheduler retries it, then the DLQ) with a classified error
        code, _, retryable = FAULTS[fault]
        assert isinstance(raised.value, RetryableError if retryable else TerminalError)
        assert raised.value.message.startswith(f"DynamoDB PutItem failed with {code}")
        assert look.rule(HEALTHY) is None

    # WHEN it fires again once DynamoDB recovered THEN it converges
    assert controller.resync().status is RunStatus.SUCCEEDED
    assert look.rule(HEALTHY) is not None


def _status_writes(request: dict[str, Any]) -> str | None:
    """Rule statuses are written with UpdateItem of their Region's item (``r#<prefix>`` attributes; the upstream
    health and the ownership sets in the same item are other writers')."""
    names = request.get("ExpressionAttributeNames", {}).values()
    return "throttling" if any(name.startswith("r#") for name in names) else None


def test_status_store_failing_to_record_conditions_fails_the_scheduled_run_visibly(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN a desired rule not yet in ECR
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})

    # WHEN the resync applies it but cannot record the rule's conditions
    with failing(controller.status_client, "update_item", _status_writes):
        run = controller.resync()

    # THEN the run is recorded as not succeeded, naming the DynamoDB call; the rule was created
    assert run.status is not RunStatus.SUCCEEDED
    assert run.errors == (f"{REGION}: DynamoDB UpdateItem failed with ThrottlingException; try again",)
    assert look.rule(HEALTHY) is not None
    assert look.rule_status(HEALTHY) is None
    # THEN the next resync records it
    assert controller.resync().status is RunStatus.SUCCEEDED
    status = look.rule_status(HEALTHY)
    assert status is not None
    assert status.synced


def test_status_store_failing_to_record_conditions_fails_the_stream_batch_for_a_retry(
    controller: Reconciler, alice: Admin
) -> None:
    # GIVEN a rule change on the stream
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})
    # WHEN the run cannot record the rule's conditions
    with failing(controller.status_client, "update_item", _status_writes):
        outcome = controller.deliver_stream()
    # THEN Lambda delivers the batch again
    assert outcome.retried == [r["dynamodb"]["SequenceNumber"] for r in outcome.records]


def test_fingerprint_store_failing_fails_the_region_and_the_next_resync_repairs(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a repository cached under a rule that now gets a lifecycle policy
    bob.ecr.create_repository(repositoryName=f"{HEALTHY}/library/nginx")
    alice.put_rule(HEALTHY, {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 5}}})

    # WHEN the fingerprints of what was applied cannot be written (BatchWriteItem throttled)
    with failing(controller.status_client, "batch_write_item", "throttling"):
        run = controller.resync()

    # THEN the run says so; the policy itself was applied
    assert run.errors == (f"{REGION}: DynamoDB BatchWriteItem failed with ThrottlingException; try again",)
    assert look.lifecycle(f"{HEALTHY}/library/nginx") is not None
    # THEN the next resync writes the policy again (blind, idempotent) and records it
    assert controller.resync().status is RunStatus.SUCCEEDED
    assert world.reconciler.plan().is_empty


# --------------------------------------------------------------------------------------------------
# The lease: one reconcile per Region at a time


def _hold_lease(look: Look, *, expires_in: timedelta = timedelta(minutes=5)) -> None:
    now = datetime.now(UTC)
    ttl = int(expires_in.total_seconds())
    assert look.status.acquire_lease(REGION, "another-run", now=now, ttl_seconds=ttl)


def test_stream_batch_waits_while_another_reconcile_holds_the_lease(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN another reconcile running in the Region
    _hold_lease(look)
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})

    # WHEN the stream batch arrives
    outcome = controller.deliver_stream()

    # THEN nothing is applied, and Lambda delivers every record again
    assert outcome.retried == [r["dynamodb"]["SequenceNumber"] for r in outcome.records]
    assert look.rule(HEALTHY) is None

    # WHEN the other run is done and the batch comes again THEN it converges
    look.status.release_lease(REGION, "another-run")
    retry = controller.invoke_stream(outcome.records)
    assert retry.response == {"batchItemFailures": []}
    assert look.rule(HEALTHY) is not None


def test_stream_batch_that_cannot_run_reports_every_record_in_batch_item_failures(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN another reconcile running in the Region
    _hold_lease(look)
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})
    # WHEN the stream batch arrives
    outcome = controller.deliver_stream()
    # THEN the answer is a partial-batch response naming every record (no function error)
    assert outcome.error is None
    assert outcome.reported_failures == [r["dynamodb"]["SequenceNumber"] for r in outcome.records]


def test_scheduled_resync_while_the_lease_is_held_is_recorded_failed(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN another reconcile running in the Region
    _hold_lease(look)
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})

    # WHEN the schedule fires
    run = controller.resync()

    # THEN the run is recorded failed, saying why; nothing was applied
    assert run.status is RunStatus.FAILED
    assert run.errors == (f"another reconcile holds the lease for {REGION}",)
    assert look.run(run.run_id) == run
    assert look.rule(HEALTHY) is None


def test_cloudtrail_event_while_the_lease_is_held_fails_and_its_retry_runs(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN a converged rule deleted behind the controller's back while another run holds the lease
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})
    controller.converge()
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=HEALTHY)
    [event] = controller.pending_events()
    _hold_lease(look)

    # WHEN the event arrives THEN the invocation fails so that EventBridge retries it
    with pytest.raises(RetryableError, match="another reconcile is running"):
        controller.invoke(event)
    assert look.rule(HEALTHY) is None

    # WHEN the retry (same event id) comes after the lease is free THEN it runs: the failure was not cached
    look.status.release_lease(REGION, "another-run")
    [delivery] = controller.deliver([event])
    assert delivery.run.summary.get("create_rule") == 1
    assert look.rule(HEALTHY) is not None


def test_an_expired_lease_is_taken_over(controller: Reconciler, alice: Admin, look: Look) -> None:
    # GIVEN a lease left behind by a run that died (expired)
    _hold_lease(look, expires_in=timedelta(seconds=-1))
    alice.put_rule(HEALTHY, {"upstream_kind": "quay"})

    # WHEN the stream batch arrives THEN it runs
    outcome = controller.deliver_stream()
    assert outcome.response == {"batchItemFailures": []}
    assert look.rule(HEALTHY) is not None


# --------------------------------------------------------------------------------------------------
# Who am I? (STS, for recognising the controller's own CloudTrail events)


def test_identity_lookup_failing_fails_the_event_for_a_retry(controller: Reconciler, bob: Principal) -> None:
    # GIVEN a drift event
    bob.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")
    [event] = controller.pending_events()
    session = boto3._get_default_session()

    for code, status, retryable in FAULTS.values():

        def refuse(code: str = code, status: int = status, **_: Any) -> None:
            raise aws_error(code, "GetCallerIdentity", status=status)

        session.events.register("before-call.sts.GetCallerIdentity", refuse, unique_id="refuse-sts")
        # WHEN the event arrives while STS GetCallerIdentity fails THEN the invocation fails, classified
        try:
            with pytest.raises(RetryableError if retryable else TerminalError, match="STS GetCallerIdentity"):
                controller.invoke(event)
        finally:
            session.events.unregister("before-call.sts.GetCallerIdentity", unique_id="refuse-sts")

    # WHEN EventBridge retries it once STS answers THEN it is handled (the failures were not cached)
    [delivery] = controller.deliver([event])
    assert not delivery.ignored
    assert delivery.run.status is RunStatus.SUCCEEDED

"""Event forwarders in two Regions, on the embedded AWS: a rule naming another Region gets a forwarding rule
there, drift in that Region reaches the stack Region's bus and the reconciler's queue and is repaired without a
resync, and the forwarder goes when no rule names the Region any more. Failures of EventBridge are visible on
the Region's forwarder status and never stop the Region's ECR work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.event_forwarder import Boto3EventForwarder
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.engine.forwarders import TARGET_ID
from ecrcache.engine.plan import ActionKind
from ecrcache.errors import RetryableError
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.forwarders import ForwarderPhase, ForwarderSweep, forwarding
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.triggers import QueueBatch, read_queue
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile.conftest import ALICE, World
from tests.functional.reconcile.support import (
    FAULTS,
    RECONCILER_ROLE,
    RECONCILER_SESSION,
    EventInbox,
    Principal,
    clients,
    failing,
    reconciler_test_session,
    sqs_record,
)

pytestmark = pytest.mark.functional

OTHER = "eu-west-1"
RULE_NAME = "ecrcache-fwd-4f9d2a7e-0000-4000-8000-0123456789ab"
FORWARD_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-EventForwardRole-1A2B3C"
OWN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{RECONCILER_ROLE.rsplit('/', 1)[1]}/"
"""What the queue reader ignores (the sessions of the reconciler's role, which these tests' reconciler calls ECR in)."""
WORKER_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-ReconcileWorkerFunctionRole-5HJ8L2"
STRAY = "ap-south-1"
PARTITION = (REGION, OTHER, STRAY, "eu-central-1")
"""The Regions the deep run's sweep asks (the partition's, shortened for the test)."""
QUAY: dict[str, Any] = {"upstream_kind": "quay", "regions": [REGION, OTHER], "lifecycle": {"presets": {"keep_last": 5}}}


@dataclass
class TwoRegions:
    world: World
    service: ReconcileService
    status: DynamoDbStatusStore
    forwarders: dict[str, Boto3EventForwarder]
    inbox: EventInbox

    def reconcile(self, scope: Scope | None = None, trigger: RunTrigger = RunTrigger.SCHEDULE) -> Any:
        return self.service.reconcile(scope or Scope(), trigger)

    def forwarder(self, region: str = OTHER) -> Any:
        return self.forwarders_client(region).describe_rule(Name=RULE_NAME)

    @staticmethod
    def forwarders_client(region: str) -> Any:
        return reconciler_test_session().client("events", region_name=region)

    def queued_runs(self) -> list[Any]:
        """What the reconciler's event queue holds now, read as its handler reads a batch."""
        bodies = [json.dumps(e) for e in self.inbox.drain()]
        if not bodies:
            return []
        batch = QueueBatch.model_validate({"Records": [sqs_record(f"m{i}", b) for i, b in enumerate(bodies)]})
        return list(read_queue(batch, own_roles={OWN}).runs)


@pytest.fixture
def two(world: World, state_table: str) -> Iterator[TwoRegions]:
    status = DynamoDbStatusStore(state_table, clients().dynamodb)
    forwarders: dict[str, Boto3EventForwarder] = {}

    def forwarder(region: str) -> Boto3EventForwarder:
        if region not in forwarders:
            forwarders[region] = Boto3EventForwarder(
                region, reconciler_test_session().client("events", region_name=region)
            )
        return forwarders[region]

    # The reconciler of these tests calls ECR in a session of its role, as deployed: its forwarders ignore that
    # role's sessions and the reconcile worker's (by userIdentity.sessionContext.sessionIssuer.arn).
    credentials = clients().sts.assume_role(RoleArn=RECONCILER_ROLE, RoleSessionName=RECONCILER_SESSION)["Credentials"]
    registries: dict[str, Boto3EcrRegistry] = {}

    def registry(region: str) -> Boto3EcrRegistry:
        if region not in registries:
            client = reconciler_test_session().client(
                "ecr",
                region_name=region,
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            registries[region] = Boto3EcrRegistry(region, client, sleep=lambda _: None)
        return registries[region]

    settings = forwarding(
        rule_name=RULE_NAME, role_arn=FORWARD_ROLE, ignored_roles=(RECONCILER_ROLE, WORKER_ROLE), home_region=REGION
    )
    assert settings is not None
    service = ReconcileService(
        desired=world.reconciler.desired,
        status=status,
        registry=registry,
        clock=lambda: datetime.now(UTC),
        stack_region=REGION,
        forwarders=ForwarderPhase(
            forwarding=settings,
            registry=forwarder,
            status=status,
            clock=lambda: datetime.now(UTC),
            sweep=ForwarderSweep(regions=lambda: PARTITION, probe=forwarder),
        ),
    )
    yield TwoRegions(world, service, status, forwarders, EventInbox())


def _put_quay(two: TwoRegions, **spec: Any) -> None:
    two.world.desired.put_rule("quay", RuleSpec.model_validate({**QUAY, **spec}), actor=ALICE)


def test_a_rule_naming_another_region_gets_a_forwarder_there_and_none_at_home(two: TwoRegions) -> None:
    # GIVEN a rule in the stack's Region and another one WHEN it is reconciled
    _put_quay(two)
    run = two.reconcile()
    # THEN the other Region has the forwarding rule: the template's patterns, to the home bus with the role
    rule = two.forwarder()
    assert rule["State"] == "ENABLED" and REGION in rule["Description"]
    assert "$or" in json.loads(rule["EventPattern"])
    [target] = two.forwarders_client(OTHER).list_targets_by_rule(Rule=RULE_NAME)["Targets"]
    assert target == {
        "Id": TARGET_ID,
        "Arn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/default",
        "RoleArn": FORWARD_ROLE,
    }
    with pytest.raises(two.forwarders_client(REGION).exceptions.ResourceNotFoundException):
        two.forwarder(REGION)
    assert run.summary.get(ActionKind.CREATE_FORWARDER.value) == 1
    [record] = two.status.forwarder_statuses()
    assert (record.region, record.status.synced) == (OTHER, True)
    # AND the plan is empty after it (verify)
    assert two.service.plan().is_empty


def test_drift_in_the_other_region_reaches_the_reconciler_and_is_repaired_without_a_resync(
    two: TwoRegions, bob: Principal
) -> None:
    # GIVEN a converged rule in both Regions, forwarders in place, and a cached repository in the other Region
    _put_quay(two)
    bob_other = _bob_in(OTHER)
    bob_other.create_repository(repositoryName="quay/team/app")
    two.reconcile()
    two.inbox.drain()
    # WHEN someone deletes the repository's lifecycle policy by hand in the other Region
    bob_other.delete_lifecycle_policy(repositoryName="quay/team/app")
    # THEN the CloudTrail event of that Region reached the stack Region's queue and names the other Region
    [run] = two.queued_runs()
    assert run.trigger.scope.regions == frozenset({OTHER})
    assert run.trigger.scope.deep_repositories == frozenset({"quay/team/app"})
    # AND reconciling what it asks for repairs the drift
    two.reconcile(run.trigger.scope, run.trigger.kind)
    policy = boto3.client("ecr", region_name=OTHER).get_lifecycle_policy(repositoryName="quay/team/app")
    assert json.loads(policy["lifecyclePolicyText"])["rules"]


def _bob_in(region: str) -> Any:
    """Bob (an IAM user of his own) in ``region``: his calls are drift."""
    iam = clients().iam
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    return reconciler_test_session().client(
        "ecr", region_name=region, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )


def test_the_reconcilers_own_writes_in_the_other_region_are_not_forwarded(two: TwoRegions) -> None:
    # GIVEN forwarders in place WHEN the reconciler itself changes ECR in the other Region (a new rule there)
    _put_quay(two)
    two.reconcile()
    two.inbox.drain()
    two.world.desired.put_rule(
        "ghcr", RuleSpec.model_validate({"upstream_kind": "k8s", "regions": [OTHER]}), actor=ALICE
    )
    two.reconcile()
    # THEN none of its CloudTrail events of the other Region came to the stack Region's queue
    assert [e for e in two.inbox.drain() if e["region"] == OTHER and "eventName" in e["detail"]] == []


def test_a_region_no_rule_names_any_more_loses_its_forwarder(two: TwoRegions) -> None:
    # GIVEN a forwarder in the other Region
    _put_quay(two)
    two.reconcile()
    # WHEN the rule no longer names that Region, and then is deleted
    _put_quay(two, regions=[REGION])
    run = two.reconcile()
    # THEN the forwarder is gone, and so is its record
    with pytest.raises(two.forwarders_client(OTHER).exceptions.ResourceNotFoundException):
        two.forwarder()
    assert run.summary.get(ActionKind.DELETE_FORWARDER.value) == 1
    assert two.status.forwarder_statuses() == []
    two.world.desired.delete(ResourceKind.RULE, "quay", actor=ALICE)
    assert two.service.plan().is_empty


def test_a_forwarder_changed_by_hand_is_put_back(two: TwoRegions) -> None:
    # GIVEN a forwarder WHEN someone disables it and adds a target of their own
    _put_quay(two)
    two.reconcile()
    client = two.forwarders_client(OTHER)
    client.disable_rule(Name=RULE_NAME)
    client.put_targets(Rule=RULE_NAME, Targets=[{"Id": "extra", "Arn": f"arn:aws:sqs:{OTHER}:{ACCOUNT_ID}:q"}])
    # THEN the plan shows the update, and a reconcile puts it back
    [action] = two.service.plan().actions
    assert action.kind is ActionKind.UPDATE_FORWARDER and "state DISABLED" in action.reason
    two.reconcile()
    assert two.forwarder()["State"] == "ENABLED"
    assert [t["Id"] for t in client.list_targets_by_rule(Rule=RULE_NAME)["Targets"]] == [TARGET_ID]


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("method", ["describe_rule", "put_rule", "put_targets"])
def test_an_eventbridge_failure_is_recorded_on_the_regions_forwarder_and_the_rules_still_converge(
    two: TwoRegions, fault: str, method: str
) -> None:
    # GIVEN a rule in both Regions and EventBridge failing in the other Region (after botocore's retries)
    _put_quay(two)
    client = two.forwarders.setdefault(
        OTHER, Boto3EventForwarder(OTHER, reconciler_test_session().client("events", region_name=OTHER))
    ).client
    with failing(client, method, fault):
        run = two.reconcile()
    code, _, _ = FAULTS[fault]
    # THEN the Region's forwarder status says so, with the AWS error code, and the run counts a failure
    [record] = two.status.forwarder_statuses()
    [condition] = record.status.conditions
    assert (record.region, condition.status, condition.reason) == (OTHER, False, code)
    assert any("event forwarder" in e and code in e for e in run.errors)
    assert run.summary["failed_actions"] == 1  # the ReconcileFailed metric counts it
    assert ActionKind.CREATE_FORWARDER.value not in run.summary
    # AND the rule converged in both Regions all the same
    for region in (REGION, OTHER):
        assert "quay" in {
            r["ecrRepositoryPrefix"]
            for r in boto3.client("ecr", region_name=region).describe_pull_through_cache_rules()[
                "pullThroughCacheRules"
            ]
        }
    # AND the next run, EventBridge back, makes the forwarder and marks it Synced
    two.reconcile()
    [record] = two.status.forwarder_statuses()
    assert record.status.synced


def test_no_forwarder_is_created_when_its_record_cannot_be_written_first(
    two: TwoRegions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rule naming another Region, and the status table refusing the forwarder's record
    _put_quay(two)

    def refused(region: str, status: Any) -> None:
        raise RetryableError("DynamoDB PutItem failed: ThrottlingException", reason="ThrottlingException")

    monkeypatch.setattr(two.status, "put_forwarder_status", refused)
    # WHEN reconciled
    run = two.reconcile()
    # THEN no forwarding rule was made (nothing would remember it), and the run says why
    with pytest.raises(two.forwarders_client(OTHER).exceptions.ResourceNotFoundException):
        two.forwarder()
    assert any("not created" in e and "ThrottlingException" in e for e in run.errors)


def test_the_record_is_written_before_the_forwarder(two: TwoRegions, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a rule naming another Region, and PutRule failing after the record was written
    _put_quay(two)
    client = two.forwarders.setdefault(
        OTHER, Boto3EventForwarder(OTHER, reconciler_test_session().client("events", region_name=OTHER))
    ).client
    seen: list[list[str]] = []
    real = client.put_rule

    def put_rule(**kwargs: Any) -> Any:
        seen.append([r.region for r in two.status.forwarder_statuses()])
        return real(**kwargs)

    monkeypatch.setattr(client, "put_rule", put_rule)
    two.reconcile()
    # THEN the Region's record was there when PutRule was called
    assert seen == [[OTHER]]


def test_a_deep_run_deletes_a_forwarder_no_rule_names_and_no_record_remembers(two: TwoRegions) -> None:
    # GIVEN a converged rule, and a forwarder in a Region no rule names and no record remembers (its record was
    # lost, or the run that made it died before writing it)
    _put_quay(two)
    two.reconcile()
    stray = two.forwarders_client(STRAY)
    stray.put_rule(Name=RULE_NAME, EventPattern=json.dumps({"source": ["aws.ecr"]}))
    stray.put_targets(
        Rule=RULE_NAME,
        Targets=[{"Id": TARGET_ID, "Arn": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/default"}],
    )
    # WHEN a fast run goes by THEN that Region is not visited (the sweep is the deep run's only)
    two.reconcile()
    two.forwarder(STRAY)
    # WHEN the deep resync runs
    run = two.reconcile(Scope(deep=True))
    # THEN the stray forwarder is gone, counted, and the wanted one and its record stay
    with pytest.raises(stray.exceptions.ResourceNotFoundException):
        two.forwarder(STRAY)
    assert run.summary.get(ActionKind.DELETE_FORWARDER.value) == 1
    assert [r.region for r in two.status.forwarder_statuses()] == [OTHER]
    two.forwarder(OTHER)
    assert not run.errors


def test_a_region_the_sweep_cannot_ask_is_an_error_of_the_run(two: TwoRegions) -> None:
    # GIVEN EventBridge of a Region no rule names throttling past botocore's retries
    _put_quay(two)
    client = two.forwarders.setdefault(
        STRAY, Boto3EventForwarder(STRAY, reconciler_test_session().client("events", region_name=STRAY))
    ).client
    with failing(client, "describe_rule", "throttling"):
        run = two.reconcile(Scope(deep=True))
    # THEN the deep run says which Region it could not look in
    assert any(e.startswith(f"{STRAY}: event forwarder not looked for") for e in run.errors)


def test_a_target_input_added_by_hand_is_taken_off(two: TwoRegions) -> None:
    # GIVEN a forwarder WHEN someone gives its target an input transformer (what is forwarded is no longer the event)
    _put_quay(two)
    two.reconcile()
    client = two.forwarders_client(OTHER)
    [target] = client.list_targets_by_rule(Rule=RULE_NAME)["Targets"]
    transformer = {"InputPathsMap": {"d": "$.detail"}, "InputTemplate": '{"changed": <d>}'}
    client.put_targets(Rule=RULE_NAME, Targets=[{**target, "InputTransformer": transformer}])
    # THEN the plan shows the update, and a reconcile puts the target back as made
    [action] = two.service.plan().actions
    assert action.kind is ActionKind.UPDATE_FORWARDER and "targets" in action.reason
    run = two.reconcile()
    assert run.summary.get(ActionKind.UPDATE_FORWARDER.value) == 1 and not run.errors
    assert client.list_targets_by_rule(Rule=RULE_NAME)["Targets"] == [target]
    assert two.service.plan().is_empty


def test_a_two_region_no_op_with_a_synced_forwarder_writes_nothing_and_makes_no_eventbridge_write(
    two: TwoRegions,
) -> None:
    # GIVEN a rule in both Regions, converged, its forwarder Synced
    _put_quay(two)
    two.reconcile()
    two.reconcile()
    [before] = two.status.forwarder_statuses()
    assert before.status.synced
    dynamodb: list[tuple[str, str]] = []
    events: list[str] = []

    def on_dynamodb(model: Any, params: Any, **_: Any) -> None:
        dynamodb.append((str(model.name), json.dumps(params, default=str)))

    def on_events(model: Any, **_: Any) -> None:
        events.append(str(model.name))

    two.status.client.meta.events.register("before-call.dynamodb", on_dynamodb, unique_id="quiet-ddb")
    events_client = two.forwarders[OTHER].client
    events_client.meta.events.register("before-call.events", on_events, unique_id="quiet-events")
    try:
        # WHEN a fast resync finds nothing to do
        run = two.reconcile()
    finally:
        two.status.client.meta.events.unregister("before-call.dynamodb", unique_id="quiet-ddb")
        events_client.meta.events.unregister("before-call.events", unique_id="quiet-events")
    # THEN it did nothing and wrote nothing but its run record with the Regions' stamps (one transaction): no
    # lease, no status or forwarder record write, and the forwarder records came with the Regions' statuses
    assert (run.status, run.summary, run.errors) == (RunStatus.SUCCEEDED, {"left_after_verify": 0}, ())
    writes = [name for name, _ in dynamodb if name not in {"Query", "GetItem"}]
    assert writes == ["TransactWriteItems"]
    assert not any("FORWARDER" in params or "LEASE#" in params for _, params in dynamodb)
    # AND EventBridge was only read, once, to find the forwarder in sync
    assert sorted(events) == ["DescribeRule", "ListTargetsByRule"]
    [after] = two.status.forwarder_statuses()
    assert after == before


def test_a_quiet_region_whose_forwarder_record_is_not_synced_is_converged_under_its_lease(two: TwoRegions) -> None:
    # GIVEN a converged rule and forwarder, and a record saying the last attempt failed (the rule in place)
    _put_quay(two)
    two.reconcile()
    [record] = two.status.forwarder_statuses()
    [synced] = record.status.conditions
    failed = synced.model_copy(update={"status": False, "reason": "ThrottlingException"})
    two.status.put_forwarder_status(OTHER, record.status.model_copy(update={"conditions": (failed,)}))
    # WHEN a fast resync goes by THEN the Region is not skipped: the forwarder is checked under the lease and
    # its record is Synced again
    run = two.reconcile()
    assert run.status is RunStatus.SUCCEEDED and not run.errors
    [record] = two.status.forwarder_statuses()
    assert record.status.synced


def test_a_forwarder_record_of_the_former_layout_keeps_its_region_reconciled_and_is_migrated(
    two: TwoRegions, state_table: str
) -> None:
    # GIVEN a forwarder in the other Region whose record is still in the former layout (FORWARDER partition; the
    # stack Region's item not marked migrated), as an upgraded stack has it, and nothing else left of that Region
    # in the table (its rule statuses gone: only the record keeps it in the runs)
    _put_quay(two)
    two.reconcile()
    [record] = two.status.forwarder_statuses()
    ddb = clients().dynamodb
    home: Any = {"pk": {"S": f"APPLIED#{REGION}"}, "sk": {"S": f"#STATUS#{REGION}"}}
    other: Any = {"pk": {"S": f"APPLIED#{REGION}"}, "sk": {"S": f"#STATUS#{OTHER}"}}
    ddb.update_item(TableName=state_table, Key=home, UpdateExpression="REMOVE migrated")
    ddb.delete_item(TableName=state_table, Key=other)  # the Region's rule statuses gone (its rules forgotten)
    former: Any = {"pk": {"S": "FORWARDER"}, "sk": {"S": OTHER}, "region": {"S": OTHER}}
    ddb.put_item(TableName=state_table, Item={**former, "status": {"S": record.status.model_dump_json()}})
    two.status.migrated = False
    # WHEN the rule no longer names that Region
    _put_quay(two, regions=[REGION])
    # THEN the plan (read only: nothing migrated) finds the former record, so the forwarder's deletion
    assert [(a.region, a.kind) for a in two.service.plan().actions] == [(OTHER, ActionKind.DELETE_FORWARDER)]
    assert "Item" in ddb.get_item(TableName=state_table, Key={"pk": former["pk"], "sk": former["sk"]})
    # WHEN a reconcile goes by
    run = two.reconcile()
    # THEN the former record kept the Region in the run: its forwarder was deleted, and the record with it (the
    # former item moved by the migration, then removed); the rule left there is not ecrcache's any more
    assert run.summary.get(ActionKind.DELETE_FORWARDER.value) == 1
    with pytest.raises(two.forwarders_client(OTHER).exceptions.ResourceNotFoundException):
        two.forwarder()
    assert two.status.forwarder_statuses() == []
    assert "Item" not in ddb.get_item(TableName=state_table, Key={"pk": former["pk"], "sk": former["sk"]})

"""The issue's done-when scenarios, one test each, through the deployed shape of the reconciler."""

from __future__ import annotations

import pytest

from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS
from ecrcache.models.status import ConditionType, RunStatus, RunTrigger
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.conftest import REGION
from tests.functional.reconcile.conftest import World
from tests.functional.reconcile.support import (
    CREATION_ROLE,
    Admin,
    Look,
    Principal,
    Reconciler,
    condition,
    recording,
)
from tests.samples import ORG_PULL

pytestmark = pytest.mark.functional


def test_rule_put_through_the_api_appears_in_ecr_with_only_the_stream_delivery(
    controller: Reconciler, alice: Admin, look: Look
) -> None:
    # GIVEN nothing in ECR
    assert look.rules() == set()

    # WHEN a rule is PUT through the API and Lambda delivers the stream batch - nothing else runs
    alice.put_rule("quay", {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 10}}})
    outcome = controller.deliver_stream()

    # THEN the batch succeeded, in one invocation
    assert outcome.response == {"batchItemFailures": []}
    assert controller.invocations == 1
    # THEN the rule and its creation template are in ECR, owned, and the rule is Synced
    rule = look.rule("quay")
    assert rule is not None
    assert (rule["upstreamRegistryUrl"], rule["upstreamRegistry"]) == ("quay.io", "quay")
    template = look.template("quay")
    assert template is not None
    assert template["appliedFor"] == ["PULL_THROUGH_CACHE"]
    assert "lifecyclePolicy" in template
    assert look.owned().rules == {"quay"}
    assert condition(look.rule_status("quay"), ConditionType.SYNCED) == (True, "Converged", "")
    # THEN the status says which desired-state revision it describes (the export's ETag)
    etag = alice.api.get("/v1/desired-state").etag
    status = look.rule_status("quay")
    assert etag is not None
    assert status is not None
    assert status.observed_revision == int(etag.strip('"'))
    [run] = look.runs()
    assert (run.trigger, run.status) == (RunTrigger.STREAM, RunStatus.SUCCEEDED)


def test_rule_deleted_behind_the_controllers_back_comes_back(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN a converged rule
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.converge()
    before = look.rule_status("quay")
    assert before is not None

    # WHEN someone deletes the ECR rule and CloudTrail's event reaches the function
    bob.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert look.rule("quay") is None
    [delivery] = controller.deliver_events()

    # THEN the rule is back, the run says so, and the drift is counted on the rule
    assert look.rule("quay") is not None
    assert (delivery.run.trigger, delivery.run.status) == (RunTrigger.CLOUDTRAIL, RunStatus.SUCCEEDED)
    assert delivery.run.summary.get("create_rule") == 1
    status = look.rule_status("quay")
    assert status is not None
    assert status.drift_corrected == before.drift_corrected + 1
    assert status.synced
    # THEN its re-creation comes back as the controller's own event: kept out by the pattern, ignored by the code
    assert controller.deliver_events() == []
    assert [d.ignored for d in controller.deliver_held_back()] == [True]


def test_plan_on_a_converged_system_is_empty_also_after_a_deep_resync(
    controller: Reconciler, alice: Admin, bob: Principal, world: World
) -> None:
    # GIVEN rules with every repository setting, repositories already cached under them, and
    # a rule and a repository the controller does not manage
    for name in ("quay/library/nginx", "quay/prometheus/node-exporter", "k8s/pause", "other/tool"):
        bob.ecr.create_repository(repositoryName=name)
    bob.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")
    alice.put_credential("hub")
    alice.put_rule(
        "quay",
        {
            "upstream_kind": "quay",
            "lifecycle": {"presets": {"keep_last": 10, "expire_untagged_after_days": 7}},
            "repository": {
                "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
                "tag_mutability_exclusions": ["latest"],
                "tags": {"team": "platform"},
                "policy": ORG_PULL,
                "creation_role_arn": CREATION_ROLE,
            },
        },
    )
    alice.put_rule("docker-hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    controller.converge(deliver_events=True)
    service: ReconcileService = world.reconciler

    # WHEN the plan is computed, fast and deep
    fast, deep = service.plan(), service.plan(Scope(deep=True))

    # THEN neither has an action; the unmanaged rule is only reported
    assert fast.actions == ()
    assert deep.actions == ()
    assert [(u.kind, u.name) for u in deep.unmanaged] == [("rule", "k8s")]

    # WHEN the daily deep resync runs
    controller.reset_calls()
    with recording(controller.registry(REGION).client, "list_tags_for_resource") as reads:
        run = controller.resync("deep")

    # THEN it read every repository under the managed prefixes (only those), wrote nothing,
    # and the plan stays empty
    assert run.status is RunStatus.SUCCEEDED
    assert controller.writes() == {}
    assert {r["resourceArn"].split(":repository/")[1] for r in reads} == {
        "quay/library/nginx",
        "quay/prometheus/node-exporter",
    }
    assert set(controller.calls) >= PER_REPOSITORY_READS
    assert service.plan().is_empty
    assert service.plan(Scope(deep=True)).is_empty
    # THEN the API's GET /v1/plan (the same engine) agrees
    response = alice.api.get("/v1/plan", query={"deep": "true"})
    assert response.status == 200, response.text
    assert response.json["actions"] == []
    assert [u["name"] for u in response.json["unmanaged"]] == ["k8s"]

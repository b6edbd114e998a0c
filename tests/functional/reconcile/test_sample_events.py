"""Every sample event in ``events/reconciler/`` (what ``sam local invoke`` takes) through the reconciler
function on the embedded AWS: each one runs the reconcile its trigger stands for."""

from __future__ import annotations

import pytest

from ecrcache.models.status import ConditionType, ReconcileRun, RuleStatus, RunStatus, RunTrigger
from tests.conftest import REGION, load_event, sample_events
from tests.functional.reconcile.support import Look, Reconciler

pytestmark = pytest.mark.functional

REQUEST_ID = "4f1c0b7e-0c51-4b1e-9d51-6a4d8c0b5e21"

# sample -> the run it starts: its trigger, its scope, and the run id it takes (None: a new one)
EXPECTED: dict[str, tuple[RunTrigger, str, str | None] | None] = {
    "reconciler/cloudtrail_delete_lifecycle_policy.json": (RunTrigger.CLOUDTRAIL, f"{REGION}:fast+1", None),
    "reconciler/cloudtrail_delete_rule.json": (RunTrigger.CLOUDTRAIL, f"{REGION}:fast", None),
    "reconciler/cloudtrail_deregister_exclusion.json": (RunTrigger.CLOUDTRAIL, f"{REGION}:fast", None),
    "reconciler/pull_through_cache_action.json": (RunTrigger.CACHE_EVENT, f"{REGION}:fast+1", None),
    "reconciler/pull_through_cache_action_failed.json": None,  # no run: recorded as the rule's upstream health
    "reconciler/schedule_deep_resync.json": (RunTrigger.SCHEDULE, "all:deep", None),
    "reconciler/schedule_resync.json": (RunTrigger.SCHEDULE, "all:fast", None),
    "reconciler/stream_desired_rule.json": (RunTrigger.STREAM, "all:fast", None),
    "reconciler/stream_reconcile_request.json": (RunTrigger.API, "all:deep", REQUEST_ID),
}


@pytest.mark.parametrize("sample", sample_events("reconciler"))
def test_reconciler_sample_event_runs_its_reconcile(controller: Reconciler, look: Look, sample: str) -> None:
    # GIVEN a sample event
    assert sample in EXPECTED, f"{sample}: a new sample event needs the run it starts in EXPECTED"
    expected = EXPECTED[sample]
    if expected is None:
        return _records_upstream_health(controller, look, sample)
    trigger, scope, run_id = expected
    event = load_event(sample)

    # WHEN the function is invoked with it
    response = controller.invoke(event)

    # THEN one reconcile ran, as the trigger asks; a stream batch answers with no record to retry
    [run] = look.runs()
    if "Records" in event:
        assert response == {"batchItemFailures": []}
    else:
        assert ReconcileRun.model_validate(response) == run
    assert (run.trigger, run.scope, run.status) == (trigger, scope, RunStatus.SUCCEEDED)
    assert run_id is None or run.run_id == run_id


def _records_upstream_health(controller: Reconciler, look: Look, sample: str) -> None:
    # GIVEN the rule the event names has a status (the controller reconciles it)
    look.status.put_rule_status(REGION, "docker-hub", RuleStatus())
    # WHEN the failed pull-through cache action reaches the function
    response = controller.invoke(load_event(sample))
    # THEN no reconcile ran; the rule's upstream health says why pulls fail
    assert look.runs() == []
    assert response == {
        "upstream": {"region": REGION, "prefix": "docker-hub", "healthy": False, "reason": "RateLimited"}
    }
    status = look.rule_status("docker-hub")
    assert status is not None
    condition = status.condition(ConditionType.UPSTREAM_HEALTHY)
    assert condition is not None and (condition.status, condition.reason) == (False, "RateLimited")

"""Every sample event in ``events/reconciler/`` (what ``sam local invoke`` takes) through the reconciler
function on the embedded AWS: each one runs the reconcile its trigger stands for."""

from __future__ import annotations

import pytest

from ecrcache.models.status import ReconcileRun, RunStatus, RunTrigger
from tests.conftest import REGION, load_event, sample_events
from tests.functional.reconcile.support import Look, Reconciler

pytestmark = pytest.mark.functional

REQUEST_ID = "4f1c0b7e-0c51-4b1e-9d51-6a4d8c0b5e21"

# sample -> the run it starts: its trigger, its scope, and the run id it takes (None: a new one)
EXPECTED: dict[str, tuple[RunTrigger, str, str | None]] = {
    "reconciler/cloudtrail_delete_lifecycle_policy.json": (RunTrigger.CLOUDTRAIL, f"{REGION}:fast+1", None),
    "reconciler/cloudtrail_delete_rule.json": (RunTrigger.CLOUDTRAIL, f"{REGION}:fast", None),
    "reconciler/pull_through_cache_action.json": (RunTrigger.CACHE_EVENT, f"{REGION}:fast+1", None),
    "reconciler/schedule_deep_resync.json": (RunTrigger.SCHEDULE, "all:deep", None),
    "reconciler/schedule_resync.json": (RunTrigger.SCHEDULE, "all:fast", None),
    "reconciler/stream_desired_rule.json": (RunTrigger.STREAM, "all:fast", None),
    "reconciler/stream_reconcile_request.json": (RunTrigger.API, "all:deep", REQUEST_ID),
}


@pytest.mark.parametrize("sample", sample_events("reconciler"))
def test_reconciler_sample_event_runs_its_reconcile(controller: Reconciler, look: Look, sample: str) -> None:
    # GIVEN a sample event
    assert sample in EXPECTED, f"{sample}: a new sample event needs the run it starts in EXPECTED"
    trigger, scope, run_id = EXPECTED[sample]
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

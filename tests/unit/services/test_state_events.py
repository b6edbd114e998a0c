"""State-change events (``source: ecrcache``): the reconciler announces a rule's condition changes, the warm worker a
run it finishes; every event sent validates against its JSON Schema in ``docs/events/``; a bus that refuses them
never fails the run that made the change.

The credential health events have their own test (tests/functional/credential_health/test_event_schemas.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.engine.state_events import (
    EVENT_SOURCE,
    RULE_CONDITION_CHANGED,
    WARM_RUN_FINISHED,
    StateEvent,
    rule_condition_events,
)
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.status import ConditionType, RuleStatus, RunStatus, RunTrigger
from ecrcache.models.warm_pull import CachedImage, WarmPull
from ecrcache.models.warm_run import RunTrigger as WarmTrigger
from ecrcache.models.warm_run import WarmRun, WarmTask
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.warm_worker import WarmWorkerService
from tests.conftest import ROOT
from tests.fakes.ecr_registry import REGION, MemoryEcrRegistry
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore
from tests.fakes.warm import MemoryUpstreamBudget, MemoryWarmRunStore, ScriptedWarmEcr

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
DIGEST = "sha256:" + "a" * 64
SCHEMAS = {
    RULE_CONDITION_CHANGED: ROOT / "docs" / "events" / "rule-condition-changed.schema.json",
    WARM_RUN_FINISHED: ROOT / "docs" / "events" / "warm-run-finished.schema.json",
}


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[StateEvent] = []
        self.fail: EcrcacheError | None = None

    def publish(self, events: Sequence[StateEvent]) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.extend(events)


def validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def errors_of(detail_type: str, detail: dict[str, Any]) -> list[str]:
    event = {"source": EVENT_SOURCE, "detail-type": detail_type, "detail": json.loads(json.dumps(detail))}
    return [error.message for error in validator(SCHEMAS[detail_type]).iter_errors(event)]


@pytest.mark.parametrize("detail_type", sorted(SCHEMAS))
def test_each_schema_is_valid_and_its_examples_validate(detail_type: str) -> None:
    schema = json.loads(SCHEMAS[detail_type].read_text())
    assert schema["properties"]["detail-type"]["const"] == detail_type
    assert schema["properties"]["source"]["const"] == EVENT_SOURCE == "ecrcache"
    assert schema["examples"]
    for example in schema["examples"]:
        assert errors_of(example["detail-type"], example["detail"]) == []


def test_a_schema_refuses_an_event_that_breaks_it() -> None:
    # The checks below cannot pass vacuously: an unknown condition and an extra field are two errors.
    detail = {
        "region": REGION,
        "prefix": "quay",
        "condition": "Broken",
        "status": True,
        "previous_status": None,
        "reason": "Converged",
        "message": None,
        "last_transition": NOW.isoformat(),
        "run_id": "run-1",
        "secret": "x",
    }
    assert len(errors_of(RULE_CONDITION_CHANGED, detail)) == 2


# --------------------------------------------------------------------------------------------------
# The reconciler


def reconciler(publisher: RecordingPublisher) -> tuple[MemoryStateStore, MemoryEcrRegistry, ReconcileService]:
    desired, status = MemoryStateStore(), MemoryStatusStore()
    ecr = MemoryEcrRegistry(REGION)
    service = ReconcileService(
        desired=desired,
        status=status,
        registry=lambda region: ecr,
        clock=lambda: NOW,
        stack_region=REGION,
        events=publisher,
    )
    write = Write(
        kind=ResourceKind.RULE,
        name="quay",
        action=WriteAction.CREATE,
        spec={"upstream_kind": "quay"},
        expected_version=None,
    )
    desired.commit([write], revision=desired.revision, actor=ALICE, now=NOW)
    return desired, ecr, service


def test_a_rule_s_conditions_are_announced_when_they_change_and_only_then() -> None:
    # GIVEN a desired rule whose creation ECR refuses for good
    publisher = RecordingPublisher()
    _, ecr, service = reconciler(publisher)
    ecr.failures[ActionKind.CREATE_RULE, "quay"] = ActionResult.failure("AccessDenied", "no way", retryable=False)
    # WHEN reconciled: the conditions are set for the first time (Terminal among them)
    service.reconcile(Scope(), RunTrigger.SCHEDULE, run_id="run-1")
    first = list(publisher.sent)
    terminal = [e.detail for e in first if e.detail["condition"] == "Terminal"]
    assert terminal and terminal[0]["status"] is True and terminal[0]["previous_status"] is None
    assert {e.detail["run_id"] for e in first} == {"run-1"}
    # AND a second run failing the same way announces nothing new
    service.reconcile(Scope(), RunTrigger.SCHEDULE, run_id="run-2")
    assert publisher.sent == first
    # WHEN ECR lets it through: the rule becomes Synced, no longer Terminal, and says so
    ecr.failures.clear()
    service.reconcile(Scope(), RunTrigger.SCHEDULE, run_id="run-3")
    changed = {
        (e.detail["condition"], e.detail["previous_status"], e.detail["status"]) for e in publisher.sent[len(first) :]
    }
    assert ("Synced", False, True) in changed and ("Terminal", True, False) in changed
    # THEN every event validates against its schema
    assert all(e.detail_type == RULE_CONDITION_CHANGED for e in publisher.sent)
    assert [errors_of(e.detail_type, e.detail) for e in publisher.sent] == [[] for _ in publisher.sent]


def test_a_bus_that_refuses_the_events_does_not_fail_the_run(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a bus that refuses every event (throttled after botocore's retries)
    publisher = RecordingPublisher()
    publisher.fail = RetryableError("EventBridge PutEvents failed with ThrottlingException; try again")
    _, ecr, service = reconciler(publisher)
    # WHEN a run changes the rule's conditions
    run = service.reconcile(Scope(), RunTrigger.STREAM, run_id="run-1")
    # THEN the run succeeded and recorded the rule Synced; the loss is logged and counted, not raised
    assert run.status is RunStatus.SUCCEEDED
    assert set(ecr.state.rules) == {"quay"}
    [warning] = [r for r in caplog.records if r.getMessage() == "state-change events not sent"]
    assert "ThrottlingException" in warning.__dict__["error"]


def test_the_rule_gauges_are_published() -> None:
    from ecrcache.observability import metrics

    publisher = RecordingPublisher()
    _, ecr, service = reconciler(publisher)
    ecr.failures[ActionKind.CREATE_RULE, "quay"] = ActionResult.failure("AccessDenied", "no way", retryable=False)
    metrics.clear_metrics()
    service.reconcile(Scope(), RunTrigger.SCHEDULE, run_id="run-1")
    published = {name: metric["Value"] for name, metric in metrics.metric_set.items()}
    metrics.clear_metrics()
    assert published["RulesTerminal"] == [1.0] and published["RulesNotSynced"] == [1.0]
    assert published["RuleTerminalMinutes"] == [0.0]  # Terminal since now
    assert published["ReconcileFailed"] == [1.0]


def test_only_a_changed_status_is_an_event() -> None:
    before = RuleStatus().with_condition(ConditionType.SYNCED, status=False, reason="A", message="a", now=NOW)
    reworded = before.with_condition(ConditionType.SYNCED, status=False, reason="B", message="b", now=NOW)
    flipped = before.with_condition(ConditionType.SYNCED, status=True, reason="Converged", message="", now=NOW)
    assert rule_condition_events(REGION, "quay", before, reworded, run_id="r") == []
    [event] = rule_condition_events(REGION, "quay", before, flipped, run_id="r")
    assert (event.detail["previous_status"], event.detail["status"], event.detail["message"]) == (False, True, None)


# --------------------------------------------------------------------------------------------------
# The warm worker


def test_the_worker_announces_the_run_its_last_image_finishes() -> None:
    # GIVEN a run of one image
    publisher = RecordingPublisher()
    store, ecr = MemoryWarmRunStore(), ScriptedWarmEcr()
    service = WarmWorkerService(
        store=store, budget=MemoryUpstreamBudget(), ecr=lambda region: ecr, clock=lambda: NOW, events=publisher
    )
    store.create_run(
        WarmRun(run_id="run-1", warm_set="base", trigger=WarmTrigger.SCHEDULE, created_at=NOW, total=1), []
    )
    task = WarmTask(
        run_id="run-1",
        warm_set="base",
        region="us-east-1",
        rule="docker-hub",
        upstream="registry-1.docker.io",
        repository="docker-hub/library/node",
        image="library/node:latest",
        tag="latest",
        platforms=("linux/amd64",),
        reserved_requests=1,
        bucket_capacity=200,
        bucket_window_seconds=21_600,
    )
    ecr.answers[task.key] = WarmPull(cached_before=CachedImage(DIGEST), served_digest=DIGEST)
    # WHEN its image is warmed
    service.handle(task)
    # THEN the run is announced once, as finished, and the event validates
    [event] = publisher.sent
    assert event.detail_type == WARM_RUN_FINISHED
    assert (event.detail["run_id"], event.detail["status"], event.detail["counts"]) == (
        "run-1",
        "succeeded",
        {"warmed": 1},
    )
    assert errors_of(event.detail_type, event.detail) == []

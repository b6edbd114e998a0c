"""A fast run whose plan changes more repositories than one shard leaves the changes to shard workers (issue 14).

A rule's ``keep_last`` changed under 20,000 cached repositories is 20,000 ``PutLifecyclePolicy`` calls and their
verify reads: more than one invocation can make at the configured ECR request rate. The run does the Region's rules
and templates itself and sends the repositories as shards (:attr:`ShardTask.deep` false: the worker plans them from
the applied fingerprints as the run did); the rule is ``Applying`` until they report. The world is the deep fan-out
tests' (:mod:`tests.functional.reconcile.fanout_support`): a shard is 4 repositories, ``quay`` has 7, ``k8s`` 4.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.engine.deadline import Deadline
from ecrcache.engine.shards import REPOSITORIES_FAILED
from ecrcache.engine.status import APPLYING, UNVERIFIED
from ecrcache.errors import RetryableError
from ecrcache.models.rule import RuleSpec
from ecrcache.models.shards import ShardCounts
from ecrcache.models.status import ConditionType, RunStatus, RunTrigger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import Scope
from tests.conftest import REGION
from tests.functional.reconcile.fanout_support import (
    ACTOR,
    OTHER_LIFECYCLE,
    REPOSITORIES,
    RULES,
    SHARD_SIZE,
    Fanout,
    drift,
    fanout_refused,
    fanout_world,
    lifecycle,
    shard_items_refused,
    synced,
)
from tests.functional.reconcile.support import aws_error, failing

pytestmark = pytest.mark.functional

QUAY: tuple[str, ...] = tuple(sorted(name for name in REPOSITORIES if name.startswith("quay/")))
K8S: tuple[str, ...] = tuple(sorted(name for name in REPOSITORIES if name.startswith("k8s/")))


@pytest.fixture
def fan(state_table: str) -> Iterator[Fanout]:
    with fanout_world(state_table) as found:
        yield found


@pytest.fixture
def desired(state_table: str) -> DesiredStateService:
    return DesiredStateService(
        DynamoDbStateStore(state_table, boto3.client("dynamodb", region_name=REGION)),
        SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
        lambda: datetime.now(UTC),
    )


def _keep_last(desired: DesiredStateService, prefix: str, count: int) -> None:
    spec = {**RULES[prefix], "lifecycle": {"presets": {"keep_last": count}}}
    desired.put_rule(prefix, RuleSpec.model_validate(spec), actor=ACTOR)


def _kept(fan: Fanout, name: str) -> int:
    text = fan.ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
    return int(json.loads(text)["rules"][0]["selection"]["countNumber"])


def _message(fan: Fanout, prefix: str) -> str:
    status = fan.status.rule_status(REGION, prefix)
    assert status is not None
    condition = status.condition(ConditionType.SYNCED)
    assert condition is not None
    return condition.message


def test_a_fast_run_changing_more_repositories_than_one_shard_leaves_them_to_its_shards(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN quay's keep_last changed: its 7 repositories' lifecycle policies (more than a shard of 4)
    _keep_last(desired, "quay", 3)
    fan.reset_calls()
    # WHEN the fast resync runs
    run = fan.fast()
    # THEN it wrote the template itself and no repository: it sent quay's repositories as fast shards, of 3/8 of a
    # deep shard (a repository can take 8 ECR calls there, against a deep read's 3): 1 repository each here
    assert "PutLifecyclePolicy" not in fan.registry.calls
    assert fan.registry.calls["UpdateRepositoryCreationTemplate"] == 1
    assert run.status is RunStatus.RUNNING
    assert run.shards == ShardCounts(total=len(QUAY))
    tasks = list(fan.queue.pending)
    assert [name for task in tasks for name in task.repositories] == list(QUAY)
    assert not any(task.deep for task in tasks)
    assert all(len(task.repositories) == max(1, SHARD_SIZE * 3 // 8) for task in tasks)
    # AND quay is Applying, naming the run; k8s (nothing to change) is Synced
    assert synced(fan, "quay") == (False, APPLYING)
    assert run.run_id in _message(fan, "quay")
    assert synced(fan, "k8s") == (True, "Converged")
    # WHEN the workers process the shards
    results = fan.drain()
    # THEN every quay repository keeps 3, the run succeeded with the writes counted, the last shard finished it
    assert [r.finished for r in results] == [False] * (len(QUAY) - 1) + [True]
    assert {name: _kept(fan, name) for name in QUAY} == dict.fromkeys(QUAY, 3)
    done = fan.run(run.run_id)
    assert done.status is RunStatus.SUCCEEDED, done.errors
    assert done.summary["put_lifecycle_policy"] == len(QUAY)
    assert done.shards == ShardCounts(total=len(QUAY), done=len(QUAY))
    # AND the finish settled quay's condition, and the Region's marker is gone
    assert synced(fan, "quay") == (True, "Converged")
    assert fan.status.region_status(REGION).fanout is None
    # AND the next fast run has nothing to do
    fan.reset_calls()
    again = fan.fast()
    assert again.status is RunStatus.SUCCEEDED
    assert not any(op.startswith("Put") for op in fan.registry.calls)
    assert fan.queue.pending == []


def test_a_fast_shard_plans_from_the_fingerprints_and_reads_deeply_only_to_verify(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN a fast run's shard of quay repositories
    _keep_last(desired, "quay", 3)
    fan.fast()
    task = fan.queue.take()
    fan.reset_calls()
    # WHEN it is processed
    assert fan.deliver(task).outcome == "done"
    # THEN its repositories were described by name, written blind (no read first), and read once each to verify
    calls = fan.registry.calls
    assert calls["PutLifecyclePolicy"] == len(task.repositories)
    assert all(calls[op] == len(task.repositories) for op in PER_REPOSITORY_READS)
    assert calls["DescribeRepositories"] == 2  # its names, then verify's (the repositories it wrote)
    assert "DescribePullThroughCacheRules" not in calls


def test_a_fast_run_changing_no_more_than_one_shard_applies_them_itself(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN k8s's keep_last changed: its 4 repositories, one shard's worth
    _keep_last(desired, "k8s", 2)
    fan.reset_calls()
    # WHEN the fast resync runs
    run = fan.fast()
    # THEN it wrote them in its own invocation and finished: no shard
    assert run.status is RunStatus.SUCCEEDED, run.errors
    assert run.shards is None
    assert fan.queue.sent == []
    assert fan.registry.calls["PutLifecyclePolicy"] == len(K8S)
    assert synced(fan, "k8s") == (True, "Converged")


def test_a_fast_run_during_an_unfinished_fanout_leaves_its_changes_to_it(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN a deep resync fanned out, its shards not processed yet
    deep = fan.deep()
    sent = len(fan.queue.sent)
    # WHEN quay's keep_last changes (7 repositories) and k8s's (4: one shard's worth), and a fast run comes
    _keep_last(desired, "quay", 3)
    _keep_last(desired, "k8s", 2)
    fan.reset_calls()
    run = fan.fast()
    # THEN it wrote no repository, however few, and started no second fan-out: both rules wait for the unfinished run
    assert "PutLifecyclePolicy" not in fan.registry.calls
    assert len(fan.queue.sent) == sent
    assert run.status is RunStatus.SUCCEEDED, run.errors
    assert run.shards is None
    for prefix in ("quay", "k8s"):
        assert synced(fan, prefix) == (False, APPLYING)
        assert f"wait for the unfinished fan-out of run {deep.run_id}" in _message(fan, prefix)
    # WHEN the unfinished run's shards are processed (each reads the desired state when it starts)
    fan.drain()
    # THEN they applied the new settings; the fast run's statuses are not theirs to settle: the next run settles them
    assert {name: _kept(fan, name) for name in QUAY} == dict.fromkeys(QUAY, 3)
    assert {name: _kept(fan, name) for name in K8S} == dict.fromkeys(K8S, 2)
    assert synced(fan, "quay") == (False, APPLYING)
    fan.reset_calls()
    assert fan.fast().status is RunStatus.SUCCEEDED
    assert "PutLifecyclePolicy" not in fan.registry.calls
    assert synced(fan, "quay") == synced(fan, "k8s") == (True, "Converged")


def test_a_repository_created_after_an_unfinished_fanout_started_is_reconciled_at_once(fan: Fanout) -> None:
    # GIVEN a deep resync fanned out, its shards not processed yet
    deep = fan.deep()
    # WHEN a repository is created under quay after it started (in none of its shards), and a fast run comes
    fan.clock.advance(60)
    fan.ecr.create_repository(repositoryName="quay/library/late")
    fan.reset_calls()
    run = fan.fast()
    # THEN the run gave the new repository quay's settings itself; the unfinished run's repositories wait for it
    assert run.status is RunStatus.SUCCEEDED, run.errors
    assert fan.registry.calls["PutLifecyclePolicy"] == 1
    assert _kept(fan, "quay/library/late") == RULES["quay"]["lifecycle"]["presets"]["keep_last"]
    assert synced(fan, "quay") == (True, "Converged")
    assert fan.status.region_status(REGION).fanout is not None
    assert fan.run(deep.run_id).status is RunStatus.RUNNING


def test_a_fast_shard_whose_writes_fail_fails_its_rule_and_the_next_run_writes_them_again(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN a fast run's shards, the first one's lifecycle writes refused (a permission: no retry helps)
    _keep_last(desired, "quay", 3)
    run = fan.fast()
    first = fan.queue.take()
    with failing(fan.registry.client, "put_lifecycle_policy", "access-denied"):
        assert fan.deliver(first).outcome == "done"  # processed: its actions failed, reported as such
    fan.drain()
    # THEN the run finished partial, its errors naming the refusals, and quay is not Synced (RepositoriesFailed)
    done = fan.run(run.run_id)
    assert done.status is RunStatus.PARTIAL
    assert any("AccessDeniedException" in error for error in done.errors)
    assert synced(fan, "quay") == (False, REPOSITORIES_FAILED)
    # AND their fingerprints still differ, so the next fast run writes them (few enough: in its own invocation)
    fan.reset_calls()
    again = fan.fast()
    assert again.status is RunStatus.SUCCEEDED, again.errors
    assert fan.registry.calls["PutLifecyclePolicy"] == len(first.repositories)
    assert {name: _kept(fan, name) for name in QUAY} == dict.fromkeys(QUAY, 3)
    assert synced(fan, "quay") == (True, "Converged")


def test_a_deep_run_leaves_a_fast_plans_many_changes_to_its_deep_shards(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN quay's keep_last changed (7 repositories: more than a shard)
    _keep_last(desired, "quay", 3)
    fan.reset_calls()
    # WHEN the deep resync runs (its shards read and plan every managed repository anyway)
    run = fan.deep()
    # THEN it wrote no repository itself: its deep shards make the changes, once each
    assert "PutLifecyclePolicy" not in fan.registry.calls
    assert all(task.deep for task in fan.queue.pending)
    fan.reset_calls()
    fan.drain()
    assert fan.registry.calls["PutLifecyclePolicy"] == len(QUAY)
    assert fan.run(run.run_id).status is RunStatus.SUCCEEDED
    assert synced(fan, "quay") == (True, "Converged")


# --------------------------------------------------------------------------------------------------
# What waits for an unfinished fan-out, and what does not


def test_drift_an_event_run_reads_during_an_unfinished_fanout_is_repaired_at_once(fan: Fanout) -> None:
    # GIVEN a deep resync fanned out whose shard holding quay/library/image-0 has already been worked
    deep = fan.deep()
    name = "quay/library/image-0"
    worked = next(task for task in fan.queue.pending if name in task.repositories)
    fan.queue.pending.remove(worked)
    fan.deliver(worked)
    # WHEN the repository's lifecycle policy is changed out of band, and its CloudTrail event's run reads it deeply
    drift(fan, name)
    fan.reset_calls()
    run = fan.reconciler.reconcile(Scope(deep_repositories=frozenset({name})), RunTrigger.CLOUDTRAIL)
    # THEN the run repaired it itself: the fan-out's shard read it before the drift and will not come back to it
    assert run.status is RunStatus.SUCCEEDED, run.errors
    assert fan.registry.calls["PutLifecyclePolicy"] == 1
    assert lifecycle(fan, name) != OTHER_LIFECYCLE
    assert fan.run(deep.run_id).status is RunStatus.RUNNING


def test_a_change_to_a_rule_a_fast_fanout_does_not_hold_is_made_at_once(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN quay's changes fanned out by a fast run, its shards not worked yet
    _keep_last(desired, "quay", 3)
    fast = fan.fast()
    assert fast.shards is not None
    # WHEN k8s's keep_last changes (4 repositories) and a fast run comes
    _keep_last(desired, "k8s", 2)
    fan.reset_calls()
    run = fan.fast()
    # THEN k8s's repositories are in none of the fan-out's shards: written at once; quay's still wait for them
    assert run.status is RunStatus.SUCCEEDED, run.errors
    assert fan.registry.calls["PutLifecyclePolicy"] == len(K8S)
    assert synced(fan, "k8s") == (True, "Converged")
    assert synced(fan, "quay") == (False, APPLYING)
    assert {name: _kept(fan, name) for name in QUAY} == dict.fromkeys(QUAY, 10)


# --------------------------------------------------------------------------------------------------
# A fan-out that cannot be recorded


def test_a_fast_fanout_that_cannot_be_recorded_leaves_its_rules_not_synced(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN DynamoDB refusing the fan-out's transaction (marker and count)
    _keep_last(desired, "quay", 3)
    with fanout_refused(fan, aws_error("ProvisionedThroughputExceededException", "TransactWriteItems")):
        run = fan.fast()
    # THEN nothing was sent or written; the run says why, and quay is not Synced: its changes are still to make
    assert fan.queue.sent == []
    assert (run.status, run.shards) == (RunStatus.PARTIAL, None)
    assert any("shards could not be recorded" in error for error in run.errors), run.errors
    assert run.summary["left_after_verify"] == len(QUAY)
    assert synced(fan, "quay") == (False, "NotConverged")
    # AND the next fast run fans them out
    assert fan.fast().shards == ShardCounts(total=len(QUAY))


def test_a_fast_fanout_whose_shards_were_never_recorded_does_not_say_synced(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN DynamoDB refusing the shard items (after the marker and the count were written)
    _keep_last(desired, "quay", 3)
    with shard_items_refused(fan):
        run = fan.fast()
    # THEN nothing was sent, the run finished partial (it updated quay's template), and quay is not Synced: nothing
    # of its repositories' changes was made
    assert fan.queue.sent == []
    assert run.status is RunStatus.PARTIAL
    assert synced(fan, "quay") == (False, REPOSITORIES_FAILED)
    assert {name: _kept(fan, name) for name in QUAY} == dict.fromkeys(QUAY, 10)


# --------------------------------------------------------------------------------------------------
# A fast shard's verify, and the desired state moving under it


def test_a_fast_shard_out_of_time_in_its_verify_leaves_its_writes_unverified_and_is_retried(
    fan: Fanout, desired: DesiredStateService
) -> None:
    # GIVEN a fast shard whose invocation's time runs out after its writes, before they are verified
    _keep_last(desired, "quay", 3)
    run = fan.fast()
    task = fan.queue.take()

    def running_out() -> Deadline:
        ticks = iter([60.0])  # the check before the shard starts; past it after
        return Deadline(lambda: next(ticks, 0.0))

    with pytest.raises(RetryableError, match="time ran out"):
        fan.worker.process(task, last_attempt=False, deadline=running_out())
    # THEN what it wrote is not trusted: the next delivery writes and verifies it again
    [name] = task.repositories
    assert fan.status.applied_of(REGION, [name])[name].lifecycle == UNVERIFIED
    fan.reset_calls()
    assert fan.deliver(task).outcome == "done"
    assert fan.registry.calls["PutLifecyclePolicy"] == 1
    assert fan.status.applied_of(REGION, [name])[name].lifecycle != UNVERIFIED
    assert fan.run(run.run_id).shards == ShardCounts(total=len(QUAY), done=1)


@pytest.mark.parametrize(("moved", "trusted"), [("k8s", True), ("quay", False)])
def test_a_fast_shards_writes_are_untrusted_only_when_their_own_rule_moved(
    fan: Fanout, desired: DesiredStateService, monkeypatch: pytest.MonkeyPatch, moved: str, trusted: bool
) -> None:
    # GIVEN a fast shard of quay's, and a rule changing while it applies
    _keep_last(desired, "quay", 3)
    fan.fast()
    task = fan.queue.take()
    apply = fan.worker.applier.apply

    def apply_while_a_rule_changes(*args: Any, **kwargs: Any) -> Any:
        _keep_last(desired, moved, 7)
        return apply(*args, **kwargs)

    monkeypatch.setattr(fan.worker.applier, "apply", apply_while_a_rule_changes)
    assert fan.deliver(task).outcome == "done"
    # THEN its writes are trusted when another rule moved, and not when its own did
    [name] = task.repositories
    assert (fan.status.applied_of(REGION, [name])[name].lifecycle != UNVERIFIED) is trusted

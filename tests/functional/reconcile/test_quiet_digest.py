"""A converged Region's quiet digest, through the reconcile service on the embedded AWS (issue 14: a no-op fast resync
costs at most 5 DynamoDB calls, however many repositories).

A fast run reads a Region's applied fingerprints only when its quiet digest cannot vouch for them: what the digest
covers changed (the desired rules, ECR's rules, the repository listing, ...) or the fingerprints were written since it
was recorded. Each test shows a change the digest must not hide: the fast run then reads the fingerprints, plans from
them and acts as it would without a digest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final

import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.ecr_registry import WRITE_OPERATIONS
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus
from tests.conftest import REGION
from tests.functional.reconcile.conftest import ALICE, World

pytestmark = pytest.mark.functional

QUAY: Final[dict[str, Any]] = {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 10}}}
REPOSITORIES: Final = ("quay/library/nginx", "quay/library/redis", "quay/prometheus/node-exporter")


class Reads:
    """The status store's DynamoDB calls, and which of its Queries read the applied fingerprints."""

    def __init__(self, store: DynamoDbStatusStore) -> None:
        self.calls: Counter[str] = Counter()
        self.applied_queries = 0
        events = store.client.meta.events
        events.register("before-call.dynamodb", self._count, unique_id=f"quiet-digest-calls-{id(self)}")
        events.register("before-parameter-build.dynamodb.Query", self._query, unique_id=f"quiet-digest-{id(self)}")

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1

    def _query(self, params: dict[str, Any], **_: Any) -> None:
        if ":first" in params.get("ExpressionAttributeValues", {}):
            self.applied_queries += 1

    def reset(self) -> None:
        self.calls.clear()
        self.applied_queries = 0


@pytest.fixture
def converged(world: World) -> Iterator[World]:
    """One rule with three cached repositories, reconciled once (the converging run recorded the digest)."""
    for name in REPOSITORIES:
        world.ecr.create_repository(repositoryName=name)
    world.desired.put_rule("quay", RuleSpec.model_validate(QUAY), actor=ALICE)
    run = world.reconcile()
    assert run.status is RunStatus.SUCCEEDED, run.errors
    yield world


@pytest.fixture
def reads(converged: World) -> Reads:
    return Reads(_store(converged))


def _store(world: World) -> DynamoDbStatusStore:
    store = world.reconciler.status
    assert isinstance(store, DynamoDbStatusStore)
    return store


def _status_item(world: World) -> dict[str, Any]:
    store = _store(world)
    key = {"pk": {"S": f"APPLIED#{REGION}"}, "sk": {"S": f"#STATUS#{REGION}"}}
    item: dict[str, Any] = store.client.get_item(TableName=store.table_name, Key=key)["Item"]
    return item


def _lifecycle_count(world: World) -> int:
    return sum(1 for name in REPOSITORIES if _has_lifecycle(world, name))


def _has_lifecycle(world: World, name: str) -> bool:
    try:
        world.ecr.get_lifecycle_policy(repositoryName=name)
    except ClientError:
        return False
    return True


def _fast(world: World) -> Counter[str]:
    """A fast resync; ECR's write calls it made."""
    registry = world.registries[REGION]
    before = Counter(registry.calls)
    run = world.reconcile()
    assert run.status is RunStatus.SUCCEEDED, run.errors
    return Counter({op: n for op, n in (Counter(registry.calls) - before).items() if op in WRITE_OPERATIONS})


def test_a_quiet_fast_resync_reads_no_applied_fingerprint(converged: World, reads: Reads) -> None:
    # GIVEN a converged Region: the converging run recorded its quiet digest
    assert "qd" in _status_item(converged)
    # WHEN the schedule runs a fast resync
    written = _fast(converged)
    # THEN it wrote nothing, read no applied fingerprint and made no write to the table but the run record (the
    # desired state's reads share the client: two Queries and a GetItem, and the replica phase's GetItem)
    assert written == {}
    assert reads.applied_queries == 0
    assert reads.calls["Query"] == 3
    assert set(reads.calls) == {"Query", "GetItem", "TransactWriteItems"}
    assert reads.calls["TransactWriteItems"] == 1


def test_a_new_repository_is_planned_from_the_fingerprints_and_settled(converged: World, reads: Reads) -> None:
    # GIVEN a converged Region, then ECR caches a new repository under the rule (the listing changes)
    converged.ecr.create_repository(repositoryName="quay/library/alpine")
    # WHEN the schedule runs a fast resync
    written = _fast(converged)
    # THEN it read the fingerprints and put the rule's lifecycle policy on the new repository only
    assert reads.applied_queries >= 1
    assert written["PutLifecyclePolicy"] == 1
    assert _has_lifecycle(converged, "quay/library/alpine")
    # AND the next fast resync is quiet again, without reading them
    reads.reset()
    assert _fast(converged) == {}
    assert reads.applied_queries == 0


def test_a_changed_rule_is_applied_to_every_repository(converged: World, reads: Reads) -> None:
    # GIVEN a converged Region, then the rule's lifecycle changes (the desired rules change)
    converged.desired.put_rule(
        "quay", RuleSpec.model_validate({**QUAY, "lifecycle": {"presets": {"keep_last": 3}}}), actor=ALICE
    )
    # WHEN the schedule runs a fast resync
    written = _fast(converged)
    # THEN every repository gets the new policy
    assert written["PutLifecyclePolicy"] == len(REPOSITORIES)
    policy = json.loads(converged.ecr.get_lifecycle_policy(repositoryName=REPOSITORIES[0])["lifecyclePolicyText"])
    assert policy["rules"][0]["selection"]["countNumber"] == 3


def test_fingerprints_written_by_another_writer_are_read_and_acted_on(converged: World, reads: Reads) -> None:
    # GIVEN a converged Region, then another writer (a shard worker, a drift repair's verify) marks one repository's
    # lifecycle record as not matching the rule (what an unverified write leaves)
    other = DynamoDbStatusStore(_store(converged).table_name, _store(converged).client)
    name = REPOSITORIES[1]
    recorded = other.applied(REGION)[name]
    other.record_applied(REGION, {name: recorded.model_copy(update={"lifecycle": "unverified"})})
    assert "qd" not in _status_item(converged)  # the write dropped the digest
    # WHEN the schedule runs a fast resync
    written = _fast(converged)
    # THEN it read the fingerprints and put that repository's lifecycle policy again (only that one)
    assert reads.applied_queries >= 1
    assert written == {"PutLifecyclePolicy": 1}


def test_a_write_between_the_read_and_the_record_keeps_the_digest_out(converged: World) -> None:
    # GIVEN a converged Region whose digest is gone (its fingerprints were written again, unchanged)
    store = _store(converged)
    other = DynamoDbStatusStore(store.table_name, store.client)
    other.record_applied(REGION, other.applied(REGION))
    # AND another writer writes them again while the next fast run reads them (after it read the Region's status)
    read = store.applied

    def read_then_overtaken(region: str) -> dict[str, AppliedFingerprints]:
        found = read(region)
        other.record_applied(REGION, other.applied(REGION))
        return found

    store.applied = read_then_overtaken  # type: ignore[method-assign]
    # WHEN the fast run finds the Region quiet
    assert _fast(converged) == {}
    # THEN it recorded no digest (its plan was made from records another write overtook)
    assert "qd" not in _status_item(converged)
    # AND the run after it, with nothing in between, records it
    store.applied = read  # type: ignore[method-assign]
    assert _fast(converged) == {}
    assert "qd" in _status_item(converged)


def test_a_digest_that_cannot_be_recorded_costs_a_read_not_the_run(
    converged: World, reads: Reads, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a Region whose digest is gone, and DynamoDB throttling the digest's record
    store = _store(converged)
    other = DynamoDbStatusStore(store.table_name, store.client)
    other.record_applied(REGION, other.applied(REGION))

    def throttle(params: dict[str, Any], **_: Any) -> None:
        if params.get("UpdateExpression") == "SET #qd = :qd":
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]

    events = store.client.meta.events
    events.register("before-parameter-build.dynamodb.UpdateItem", throttle, unique_id="throttle-digest")
    try:
        # WHEN the schedule runs a fast resync
        assert _fast(converged) == {}
    finally:
        events.unregister("before-parameter-build.dynamodb.UpdateItem", unique_id="throttle-digest")
    # THEN the run succeeded, said why, and recorded no digest
    assert "quiet digest not recorded" in caplog.text
    assert "qd" not in _status_item(converged)
    # AND the next run reads the fingerprints again and records it
    reads.reset()
    assert _fast(converged) == {}
    assert reads.applied_queries == 1
    assert "qd" in _status_item(converged)
    assert _lifecycle_count(converged) == len(REPOSITORIES)


def test_a_new_release_does_not_trust_the_former_releases_digest(converged: World, reads: Reads) -> None:
    # GIVEN a converged Region whose digest the running release recorded
    recorded = _status_item(converged)["qd"]["S"]
    # WHEN a new release (another planning code identity) runs the next fast resync
    converged.reconciler.planner.planner_code = lambda: "a-later-release"
    assert _fast(converged) == {}
    # THEN it read the fingerprints (its own plan decides) and recorded its own digest
    assert reads.applied_queries == 1
    assert _status_item(converged)["qd"]["S"] != recorded

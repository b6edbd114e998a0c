"""The reconciler's call budget, at a small scale: what ``bench/reconcile_bench.py`` checks at 50 x 2,000.

The whole reconcile service (observe, plan, apply, verify, status) on the embedded AWS, with the
repository page size forced small so that the listing takes several pages. Only call counts are
asserted, never time (DESIGN.md, "Quality bars"):

* a no-op fast resync makes no ECR write and no per-repository read, and lists the repositories
  in ``ceil(repositories / page size)`` pages per observe pass; it makes at most 5 DynamoDB calls,
  however many rules there are (the desired state, the Region's records, the run record);
* changing one rule writes only that rule's template and its repositories' lifecycle policies;
* a deep resync reads every repository under a rule prefix and writes nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import boto3
import pytest
from pydantic import SecretStr

from devstack.aws import ports
from devstack.aws.ports import AcceptingChecker
from ecrcache.adapters import ecr_registry
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS, WRITE_OPERATIONS, Boto3EcrRegistry
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.observed import AppliedFingerprints, ObservedRegion
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.conftest import ACCOUNT_ID, REGION
from tests.samples import ORG_PULL

pytestmark = pytest.mark.functional

PAGE_SIZE: Final = 25
REPOSITORIES_PER_RULE: Final = 12
ACTOR: Final = f"arn:aws:iam::{ACCOUNT_ID}:user/alice"
CREATION_ROLE: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache/ecr-ptc-creation"
UPSTREAMS: Final[dict[str, dict[str, Any]]] = {
    "hub": {"upstream_kind": "docker-hub", "credential": "hub"},
    "quay": {"upstream_kind": "quay"},
    "ecr-public": {"upstream_kind": "ecr-public"},
    "k8s": {"upstream_kind": "k8s"},
    "quay-team": {"upstream_kind": "quay", "upstream_repository_prefix": "team"},
}
CHANGED: Final = "quay"
UNRELATED: Final = ("apps/api", "apps/web", "quayx/not-under-quay")
"""Repositories under no rule prefix: listed (they count in the pages), never read one by one or written."""


def _spec(index: int, upstream: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **upstream,
        "lifecycle": {"presets": {"expire_untagged_after_days": 7, "keep_last": 10 + index}},
        "repository": {
            "tags": {"team": f"team-{index}", "cost-center": "1234"},
            "policy": ORG_PULL,
            "creation_role_arn": CREATION_ROLE,
        },
    }


def _repositories(prefix: str) -> list[str]:
    return [f"{prefix}/library/image-{i:02d}" for i in range(REPOSITORIES_PER_RULE)]


ALL_REPOSITORIES: Final = [name for prefix in UPSTREAMS for name in _repositories(prefix)]
PAGES: Final = math.ceil((len(ALL_REPOSITORIES) + len(UNRELATED)) / PAGE_SIZE)


class _PassCountingRegistry(Boto3EcrRegistry):
    """The production adapter, also counting observe passes (a reconcile observes to plan, then to verify)."""

    def __init__(self, region: str) -> None:
        super().__init__(region, boto3.client("ecr", region_name=region), sleep=lambda _: None)
        self.passes = 0
        self.lifecycle_puts: list[str] = []
        self.client.meta.events.register(
            "before-parameter-build.ecr.PutLifecyclePolicy", self._record_put, unique_id=f"budget-{id(self)}"
        )

    def _record_put(self, params: Mapping[str, Any], **_: Any) -> None:
        self.lifecycle_puts.append(str(params["repositoryName"]))

    def observe(
        self,
        *,
        prefixes: Sequence[str],
        deep: bool | Collection[str],
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
    ) -> ObservedRegion:
        self.passes += 1
        return super().observe(prefixes=prefixes, deep=deep, applied=applied, stop=stop)


@dataclass
class Controller:
    desired: DesiredStateService
    reconciler: ReconcileService
    registry: _PassCountingRegistry
    dynamodb: Counter[str]
    """The reconciler's DynamoDB operations (desired state and status store share its client)."""

    def reconcile(self, *, deep: bool = False) -> Counter[str]:
        """One successful, converged reconcile; the ECR operations it made."""
        self.registry.calls.clear()
        self.registry.lifecycle_puts.clear()
        self.registry.passes = 0
        self.dynamodb.clear()
        run = self.reconciler.reconcile(Scope(deep=deep), RunTrigger.SCHEDULE)
        assert run.status is RunStatus.SUCCEEDED, run.errors
        assert run.summary.get("left_after_verify", 0) == 0, run.summary
        return Counter(self.registry.calls)


def _writes(calls: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in calls.items() if op in WRITE_OPERATIONS})


def _per_repository(calls: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in calls.items() if op in PER_REPOSITORY_READS})


@pytest.fixture
def controller(state_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Controller]:
    """Five desired rules (one with a credential), 12 cached repositories each, and 3 unrelated ones."""
    monkeypatch.setattr(ecr_registry, "REPOSITORIES_PAGE_SIZE", PAGE_SIZE)
    ports.set_upstream_auth_checker(AcceptingChecker())
    try:
        desired = DesiredStateService(
            DynamoDbStateStore(state_table, boto3.client("dynamodb", region_name=REGION)),
            SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
            lambda: datetime.now(UTC),
        )
        hub = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ecrcache-puller"})
        desired.put_credential("hub", hub, SecretStr("dckr_pat_good"), actor=ACTOR)
        for index, (prefix, upstream) in enumerate(UPSTREAMS.items()):
            desired.put_rule(prefix, RuleSpec.model_validate(_spec(index, upstream)), actor=ACTOR)
        ecr = boto3.client("ecr", region_name=REGION)
        for name in (*ALL_REPOSITORIES, *UNRELATED):
            ecr.create_repository(repositoryName=name)
        registry = _PassCountingRegistry(REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        operations: Counter[str] = Counter()
        dynamodb.meta.events.register(
            "before-call.dynamodb", lambda model, **_: operations.update([str(model.name)]), unique_id="budget-ddb"
        )
        reconciler = ReconcileService(
            desired=DynamoDbStateStore(state_table, dynamodb),
            status=DynamoDbStatusStore(state_table, dynamodb),
            registry=lambda _region: registry,
            clock=lambda: datetime.now(UTC),
            stack_region=REGION,
        )
        yield Controller(desired, reconciler, registry, operations)
    finally:
        ports.set_upstream_auth_checker(None)


@pytest.fixture
def converged(controller: Controller) -> Controller:
    """The first reconcile has run: every rule, template and repository setting is in place."""
    calls = controller.reconcile()
    rules, repositories = len(UPSTREAMS), len(ALL_REPOSITORIES)
    assert _writes(calls) == {
        "CreatePullThroughCacheRule": rules,
        "CreateRepositoryCreationTemplate": rules,
        "PutLifecyclePolicy": repositories,
        "SetRepositoryPolicy": repositories,
        "TagResource": repositories,
    }
    return controller


def test_noop_fast_resync_makes_no_write_and_no_per_repository_read(converged: Controller) -> None:
    # GIVEN a converged registry: 5 rules, 60 cached repositories and 3 others, listed 25 a page
    # WHEN the schedule runs a fast resync
    calls = converged.reconcile()
    # THEN it wrote nothing and read no repository one by one
    assert _writes(calls) == {}
    assert _per_repository(calls) == {}
    # AND every observe pass listed the repositories in ceil(63 / 25) = 3 pages, the rules and
    # templates in one page each: the same reads whatever the number of rules or repositories
    passes = converged.registry.passes
    assert passes >= 1
    assert calls == {
        "DescribeRepositories": PAGES * passes,
        "DescribePullThroughCacheRules": passes,
        "DescribeRepositoryCreationTemplates": passes,
    }
    # AND one observe pass only (no verify: nothing was applied)
    assert passes == 1
    # AND at most 5 DynamoDB calls: the desired state (revision, rules, credentials), the Region's
    # records (statuses, ownership, applied fingerprints: one Query) and the finished run record with the
    # Region's stamp (one transaction); no lease (nothing to write), no status read or write per rule
    assert sum(converged.dynamodb.values()) <= 5, converged.dynamodb
    assert converged.dynamodb == {"GetItem": 1, "Query": 3, "TransactWriteItems": 1}


def test_noop_fast_resync_dynamodb_calls_do_not_grow_with_the_rules(converged: Controller) -> None:
    # GIVEN the converged registry, then 20 more rules (their templates and rules created, converged)
    for index in range(20):
        spec = _spec(100 + index, {"upstream_kind": "quay", "upstream_repository_prefix": f"extra{index}"})
        converged.desired.put_rule(f"extra-{index:02d}", RuleSpec.model_validate(spec), actor=ACTOR)
    converged.reconcile()
    # WHEN the schedule runs a fast resync on the 25 rules
    calls = converged.reconcile()
    # THEN it still wrote nothing to ECR, and made the same 5 DynamoDB calls as with 5 rules
    assert _writes(calls) == {}
    assert converged.dynamodb == {"GetItem": 1, "Query": 3, "TransactWriteItems": 1}
    # AND every rule's status is there, Synced, stamped by this last run
    runs = converged.reconciler.status.latest_runs(1)
    records = converged.reconciler.status.all_status()
    assert len(records) == 25
    assert all(r.status.synced and r.status.last_run_id == runs[0].run_id for r in records)


def test_one_rule_changed_writes_only_that_rules_template_and_repositories(converged: Controller) -> None:
    # GIVEN a converged registry, and a new keep_last for the quay rule (the only change)
    spec = dict(converged.desired.get(ResourceKind.RULE, CHANGED).spec)
    spec["lifecycle"] = {"presets": {"expire_untagged_after_days": 7, "keep_last": 99}}
    converged.desired.put_rule(CHANGED, RuleSpec.model_validate(spec), actor=ACTOR)
    # WHEN a fast reconcile runs
    calls = converged.reconcile()
    # THEN it updated the quay template and the lifecycle policy of the quay repositories, nothing else
    # (not quay-team's or quayx's repositories, whose names also start with "quay")
    assert _writes(calls) == {"UpdateRepositoryCreationTemplate": 1, "PutLifecyclePolicy": REPOSITORIES_PER_RULE}
    assert sorted(converged.registry.lifecycle_puts) == _repositories(CHANGED)
    # AND verify read back only the repositories it wrote
    assert _per_repository(calls) == dict.fromkeys(PER_REPOSITORY_READS, REPOSITORIES_PER_RULE)
    # AND the next fast resync is a no-op again
    again = converged.reconcile()
    assert _writes(again) == {}
    assert _per_repository(again) == {}


def test_deep_resync_reads_every_cached_repository_and_writes_nothing(converged: Controller) -> None:
    # GIVEN a converged registry
    # WHEN the schedule runs a deep resync
    calls = converged.reconcile(deep=True)
    # THEN it read each repository under a rule prefix (not the unrelated ones) in every observe pass
    passes = converged.registry.passes
    assert passes >= 1
    assert _per_repository(calls) == dict.fromkeys(PER_REPOSITORY_READS, len(ALL_REPOSITORIES) * passes)
    # AND wrote nothing, and still listed the repositories page by page
    assert _writes(calls) == {}
    assert calls["DescribeRepositories"] == PAGES * passes


def test_an_upgraded_stack_migrates_the_former_status_layout_once(converged: Controller, state_table: str) -> None:
    # GIVEN a converged registry whose statuses and ownership are in the former layout (a stack upgraded to
    # one status item per Region): one status item per rule, one ownership item per rule and template
    store = converged.reconciler.status
    assert isinstance(store, DynamoDbStatusStore)
    before = {(r.region, r.prefix): r.status for r in store.all_status()}
    owned = store.ownership(REGION)
    client = boto3.client("dynamodb", region_name=REGION)
    for (region, prefix), status in before.items():
        legacy: Any = {
            "pk": {"S": "STATUS"},
            "sk": {"S": f"{region}#{prefix}"},
            "region": {"S": region},
            "prefix": {"S": prefix},
            "status": {"S": status.with_upstream_health(None).model_dump_json()},
        }
        if (health := status.upstream_health) is not None:  # kept beside the status, with its time
            legacy["upstream"] = {"S": health.model_dump_json()}
            legacy["upstream_at"] = {"N": str(int(health.check.observed_at.timestamp() * 1_000_000))}
        client.put_item(TableName=state_table, Item=legacy)
    for kind, prefixes in (("rule", owned.rules), ("template", owned.templates)):
        for prefix in prefixes:
            item: Any = {"pk": {"S": f"OWNED#{REGION}"}, "sk": {"S": f"{kind}#{prefix}"}}
            client.put_item(TableName=state_table, Item={**item, "kind": {"S": kind}, "prefix": {"S": prefix}})
    client.delete_item(TableName=state_table, Key={"pk": {"S": f"APPLIED#{REGION}"}, "sk": {"S": f"#STATUS#{REGION}"}})
    upgraded = DynamoDbStatusStore(state_table, store.client)  # a new container: nothing known of the layout
    converged.reconciler.status = upgraded
    converged.reconciler.planner.status = upgraded
    converged.reconciler.quiet.status = upgraded
    assert {(r.region, r.prefix) for r in upgraded.all_status()} == set(before)  # read from the former layout
    # WHEN the schedule runs a fast resync
    calls = converged.reconcile()
    # THEN it changed nothing in ECR (ownership was read back: no rule taken for someone else's)
    assert _writes(calls) == {}
    # AND the former items are gone, moved into the Region's item; every status and all ownership read back
    for pk in ("STATUS", f"OWNED#{REGION}"):
        found = client.query(
            TableName=state_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )
        assert found["Items"] == []
    assert store.ownership(REGION) == owned
    after = {
        (r.region, r.prefix): r.status.model_dump(exclude={"last_run_id", "last_reconciled_at"})
        for r in store.all_status()
    }
    assert after == {k: s.model_dump(exclude={"last_run_id", "last_reconciled_at"}) for k, s in before.items()}
    # AND the next fast resync is back to the 5 calls: the migrating run read the applied fingerprints (the moved
    # item has no quiet digest) and recorded the Region's digest
    converged.reconcile()
    assert converged.dynamodb == {"GetItem": 1, "Query": 3, "TransactWriteItems": 1}

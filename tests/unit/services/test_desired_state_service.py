"""DesiredStateService on in-memory fakes: retries, preconditions, secrets, chunked applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from ecrcache.errors import (
    ConflictError,
    InvalidInputError,
    PreconditionFailedError,
    RetryableError,
    StaleRevisionError,
    TerminalError,
)
from ecrcache.models.records import ResourceKind, WriteAction
from ecrcache.services.desired_state import DesiredStateService, Precondition, SecretInput
from tests.fakes.stores import MemorySecretStore, MemoryStateStore

pytestmark = pytest.mark.unit

R, C, W = ResourceKind.RULE, ResourceKind.CREDENTIAL, ResourceKind.WARM_SET
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
HUB = {"upstream_kind": "docker-hub", "credential": "hub"}
CRED = {"upstream_kind": "docker-hub", "username": "ci"}
TOKEN = SecretInput("ci", SecretStr("dckr_pat_secret"))


@pytest.fixture
def store() -> MemoryStateStore:
    return MemoryStateStore()


@pytest.fixture
def secrets() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def service(store: MemoryStateStore, secrets: MemorySecretStore) -> DesiredStateService:
    return DesiredStateService(store, secrets, clock=lambda: NOW)


def test_put_retries_a_stale_revision(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN the first commit loses a race
    store.fail_commits.append(StaleRevisionError("raced"))
    # WHEN a rule is written
    result = service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    # THEN the second attempt lands, once
    assert result.created and result.resource.version == 1
    assert store.commits == 2 and len(store.log) == 1


def test_put_gives_up_after_repeated_races(service: DesiredStateService, store: MemoryStateStore) -> None:
    store.fail_commits.extend(StaleRevisionError("raced") for _ in range(10))
    with pytest.raises(RetryableError):
        service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    assert store.items == {}


def test_put_unchanged_is_a_no_op(service: DesiredStateService, store: MemoryStateStore) -> None:
    service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    result = service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    assert not result.changed and result.resource.version == 1 and len(store.log) == 1


@pytest.mark.parametrize(
    ("precondition", "exists", "ok"),
    [
        (Precondition(if_match=1), True, True),
        (Precondition(if_match=2), True, False),
        (Precondition(if_match=1), False, False),
        (Precondition(if_none_match=True), False, True),
        (Precondition(if_none_match=True), True, False),
    ],
)
def test_put_preconditions(service: DesiredStateService, precondition: Precondition, exists: bool, ok: bool) -> None:
    if exists:
        service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    spec = {"upstream_kind": "quay", "description": "x"}
    if ok:
        service.put(R, "quay", spec, actor=ALICE, precondition=precondition)
    else:
        with pytest.raises(PreconditionFailedError):
            service.put(R, "quay", spec, actor=ALICE, precondition=precondition)


def test_credential_needs_token_on_create(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    with pytest.raises(InvalidInputError) as err:
        service.put(C, "hub", CRED, actor=ALICE)
    assert err.value.details[0].field == "token"
    assert secrets.versions == {}


def test_credential_username_change_needs_token(service: DesiredStateService) -> None:
    service.put(C, "hub", CRED, actor=ALICE, secret=TOKEN)
    with pytest.raises(InvalidInputError, match="username changes"):
        service.put(C, "hub", {**CRED, "username": "other"}, actor=ALICE)


def test_credential_secret_discarded_when_commit_fails(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore
) -> None:
    # GIVEN a credential with a current token
    service.put(C, "hub", CRED, actor=ALICE, secret=TOKEN)
    # WHEN a new token is written but the commit fails terminally
    store.fail_commits.append(TerminalError("DynamoDB TransactWriteItems failed with AccessDeniedException"))
    with pytest.raises(TerminalError):
        service.put(C, "hub", CRED, actor=ALICE, secret=SecretInput("ci", SecretStr("new-token")))
    # THEN the old token is still the current one and the new one is gone
    assert json.loads(secrets.value("ecr-pullthroughcache/hub"))["accessToken"] == "dckr_pat_secret"
    assert len(secrets.versions["ecr-pullthroughcache/hub"]) == 1


def test_credential_promote_failure_is_retryable(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    service.put(C, "hub", CRED, actor=ALICE, secret=TOKEN)
    secrets.fail["promote"] = RetryableError("Secrets Manager UpdateSecretVersionStage failed")
    with pytest.raises(RetryableError, match="repeat the same request"):
        service.put(C, "hub", CRED, actor=ALICE, secret=SecretInput("ci", SecretStr("new")))


def test_delete_used_credential_is_a_conflict(service: DesiredStateService) -> None:
    service.put(C, "hub", CRED, actor=ALICE, secret=TOKEN)
    service.put(R, "docker-hub", HUB, actor=ALICE)
    with pytest.raises(ConflictError, match="docker-hub"):
        service.delete(C, "hub", actor=ALICE)


def test_delete_credential_schedules_secret_deletion(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    service.put(C, "hub", CRED, actor=ALICE, secret=TOKEN)
    service.delete(C, "hub", actor=ALICE)
    assert secrets.deleted == ["ecr-pullthroughcache/hub"]


def _big_document(rules: int) -> dict[ResourceKind, dict[str, Any]]:
    return {
        R: {f"quay-{i:02d}": {"upstream_kind": "quay"} for i in range(rules)},
        C: {},
        W: {f"w{i:02d}": {"rule": f"quay-{i:02d}", "images": ["org/app:1"]} for i in range(rules)},
    }


def test_apply_large_document_in_chunks(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN a document with 100 changes (more than one transaction holds)
    result = service.apply(_big_document(50), {}, actor=ALICE, prune=False, dry_run=False)
    # THEN all of it lands, in several commits, and the lease is released
    assert len(result.changes) == 100 and len(store.items) == 100
    assert store.commits == 3 and store.lock_owner is None
    assert len(store.log) == 100


def test_apply_large_document_undone_when_a_chunk_fails(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN an existing rule and a large document whose second transaction fails
    service.put(R, "quay-00", {"upstream_kind": "quay", "description": "before"}, actor=ALICE)
    original = store.commit

    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise TerminalError("DynamoDB TransactWriteItems failed with AccessDeniedException")
        return original(*args, **kwargs)

    store.commit = flaky  # type: ignore[method-assign]
    # WHEN it is applied
    with pytest.raises(TerminalError):
        service.apply(_big_document(50), {}, actor=ALICE, prune=False, dry_run=False)
    # THEN the first chunk was undone: only the original rule remains, as it was
    assert list(store.items) == [(R, "quay-00")]
    assert store.items[(R, "quay-00")].spec == {"upstream_kind": "quay", "description": "before"}
    assert store.lock_owner is None


def test_apply_dry_run_writes_nothing(service: DesiredStateService, store: MemoryStateStore) -> None:
    result = service.apply(_big_document(3), {}, actor=ALICE, prune=False, dry_run=True)
    assert result.dry_run and len(result.changes) == 6 and store.items == {} and store.commits == 0


def test_apply_stale_revision_precondition(service: DesiredStateService) -> None:
    service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    with pytest.raises(PreconditionFailedError, match="revision 1, not 0"):
        service.apply(_big_document(1), {}, actor=ALICE, prune=False, dry_run=False, if_match_revision=0)


def test_apply_reports_every_broken_reference(service: DesiredStateService, store: MemoryStateStore) -> None:
    doc: dict[ResourceKind, dict[str, Any]] = {
        R: {"docker-hub": HUB},
        C: {},
        W: {"w": {"rule": "nope", "images": ["a/b:1"]}},
    }
    with pytest.raises(InvalidInputError) as err:
        service.apply(doc, {}, actor=ALICE, prune=False, dry_run=False)
    assert [d.field for d in err.value.details] == ["rules.docker-hub.credential", "warm_sets.w.rule"]
    assert store.items == {}


def test_history_records_actions(service: DesiredStateService) -> None:
    service.put(R, "quay", {"upstream_kind": "quay"}, actor=ALICE)
    service.delete(R, "quay", actor=ALICE)
    page = service.history(R, "quay", limit=10, next_token=None)
    assert [h.action for h in page.items] == [WriteAction.DELETE, WriteAction.CREATE]

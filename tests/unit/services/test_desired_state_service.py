"""DesiredStateService on in-memory fakes: typed writes, retries, preconditions, secrets, chunked applies."""

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
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.records import ResourceKind, WriteAction
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_set import WarmSetSpec
from ecrcache.services.desired_state import DesiredStateService, Precondition
from tests.fakes.stores import MemorySecretStore, MemoryStateStore

pytestmark = pytest.mark.unit

R, C, W = ResourceKind.RULE, ResourceKind.CREDENTIAL, ResourceKind.WARM_SET
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
QUAY = RuleSpec.model_validate({"upstream_kind": "quay"})
HUB = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"})
CRED = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ci"})
TOKEN = SecretStr("dckr_pat_secret")
SECRET = "ecr-pullthroughcache/hub"


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
    result = service.put_rule("quay", QUAY, actor=ALICE)
    # THEN the second attempt lands, once
    assert result.created and result.resource.version == 1
    assert store.commits == 2 and len(store.log) == 1


def test_put_gives_up_after_repeated_races(service: DesiredStateService, store: MemoryStateStore) -> None:
    store.fail_commits.extend(StaleRevisionError("raced") for _ in range(10))
    with pytest.raises(RetryableError):
        service.put_rule("quay", QUAY, actor=ALICE)
    assert store.items == {}


def test_put_unchanged_is_a_no_op(service: DesiredStateService, store: MemoryStateStore) -> None:
    service.put_rule("quay", QUAY, actor=ALICE)
    result = service.put_rule("quay", QUAY, actor=ALICE)
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
        service.put_rule("quay", QUAY, actor=ALICE)
    spec = RuleSpec.model_validate({"upstream_kind": "quay", "description": "x"})
    if ok:
        service.put_rule("quay", spec, actor=ALICE, precondition=precondition)
    else:
        with pytest.raises(PreconditionFailedError):
            service.put_rule("quay", spec, actor=ALICE, precondition=precondition)


def test_put_stores_each_models_json_dump(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN a credential, a rule using it and a warm set of that rule, as validated models
    warm = WarmSetSpec.model_validate({"rule": "docker-hub", "images": ["library/node:18-alpine"]})
    # WHEN each is written through its typed use case
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    service.put_rule("docker-hub", HUB, actor=ALICE)
    service.put_warm_set("base", warm, actor=ALICE)
    # THEN the store holds each model's JSON dump (no token anywhere), as the API returns it
    assert store.items[(C, "hub")].spec == CRED.model_dump(mode="json")
    assert store.items[(R, "docker-hub")].spec == HUB.model_dump(mode="json")
    assert store.items[(W, "base")].spec == warm.model_dump(mode="json")
    assert "dckr_pat_secret" not in json.dumps([i.spec for i in store.items.values()])


def test_put_rule_checks_the_spec_against_its_prefix(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN a rule that narrows the upstream, for the ROOT prefix
    spec = RuleSpec.model_validate({"upstream_kind": "quay", "upstream_repository_prefix": "myorg"})
    # WHEN it is written
    with pytest.raises(InvalidInputError) as err:
        service.put_rule("ROOT", spec, actor=ALICE)
    # THEN it is refused naming the field, and nothing is written
    assert [d.field for d in err.value.details] == ["upstream_repository_prefix"]
    assert store.items == {} and store.commits == 0


def test_put_warm_set_needs_its_rule(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN no rule "quay"
    warm = WarmSetSpec.model_validate({"rule": "quay", "images": ["coreos/etcd:v3.5.0"]})
    # WHEN a warm set of it is written
    with pytest.raises(InvalidInputError) as err:
        service.put_warm_set("base", warm, actor=ALICE)
    # THEN the error names the body's field (not the document path)
    assert [d.field for d in err.value.details] == ["rule"]
    assert store.items == {}


def test_credential_needs_token_on_create(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    with pytest.raises(InvalidInputError) as err:
        service.put_credential("hub", CRED, None, actor=ALICE)
    assert err.value.details[0].field == "token"
    assert secrets.versions == {}


def test_credential_username_change_needs_token(service: DesiredStateService) -> None:
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    with pytest.raises(InvalidInputError, match="username changes"):
        service.put_credential("hub", CRED.model_copy(update={"username": "other"}), None, actor=ALICE)


def test_credential_secret_discarded_when_commit_fails(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore
) -> None:
    # GIVEN a credential with a current token
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    # WHEN a new token is written but the commit fails terminally
    store.fail_commits.append(TerminalError("DynamoDB TransactWriteItems failed with AccessDeniedException"))
    with pytest.raises(TerminalError):
        service.put_credential("hub", CRED, SecretStr("new-token"), actor=ALICE)
    # THEN the old token is still the current one and the new one is gone
    assert json.loads(secrets.value(SECRET))["accessToken"] == "dckr_pat_secret"
    assert len(secrets.versions[SECRET]) == 1


def test_credential_promote_failure_is_retryable(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    secrets.fail["promote"] = RetryableError("Secrets Manager UpdateSecretVersionStage failed")
    with pytest.raises(RetryableError, match="repeat the same request"):
        service.put_credential("hub", CRED, SecretStr("new"), actor=ALICE)


def test_credential_without_token_adopts_an_existing_secret(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore
) -> None:
    # GIVEN a secret ecr-pullthroughcache/hub made outside ecrcache (brownfield)
    secrets.stage(SECRET, '{"username": "ci", "accessToken": "old"}', request_token="outside")
    # WHEN the credential is created without a token
    result = service.put_credential("hub", CRED, None, actor=ALICE)
    # THEN it records that secret, and its value is left alone
    assert result.created and result.resource.secret_arn == secrets.existing_arn(SECRET)
    assert json.loads(secrets.value(SECRET))["accessToken"] == "old"


def test_credential_metadata_update_keeps_its_secret(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    # GIVEN a credential with a token
    created = service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    # WHEN only its description changes (no token)
    described = CRED.model_copy(update={"description": "CI bot"})
    result = service.put_credential("hub", described, None, actor=ALICE)
    # THEN a new version records the same secret, whose value has not changed
    assert result.changed and result.resource.version == 2
    assert result.resource.secret_arn == created.resource.secret_arn
    assert len(secrets.versions[SECRET]) == 1


def test_credential_new_token_is_a_write_even_when_the_spec_is_unchanged(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore
) -> None:
    # GIVEN a credential with a token
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    # WHEN the same metadata is written with a new token
    result = service.put_credential("hub", CRED, SecretStr("dckr_pat_rotated"), actor=ALICE)
    # THEN it is a new version and the new token is the current one
    assert result.changed and result.resource.version == 2 and len(store.log) == 2
    assert json.loads(secrets.value(SECRET)) == {"username": "ci", "accessToken": "dckr_pat_rotated"}


def test_credential_token_staged_again_after_a_lost_race(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore
) -> None:
    # GIVEN the first commit of a new credential loses a race
    store.fail_commits.append(StaleRevisionError("raced"))
    # WHEN it is written with a token
    result = service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    # THEN the first staged value was discarded, and the one of the retry is current
    assert result.created and store.commits == 2
    assert len(secrets.versions[SECRET]) == 1
    assert json.loads(secrets.value(SECRET))["accessToken"] == "dckr_pat_secret"


def test_delete_used_credential_is_a_conflict(service: DesiredStateService) -> None:
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    service.put_rule("docker-hub", HUB, actor=ALICE)
    with pytest.raises(ConflictError, match="docker-hub"):
        service.delete(C, "hub", actor=ALICE)


def test_delete_credential_schedules_secret_deletion(service: DesiredStateService, secrets: MemorySecretStore) -> None:
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    service.delete(C, "hub", actor=ALICE)
    assert secrets.deleted == [SECRET]


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
    before = RuleSpec.model_validate({"upstream_kind": "quay", "description": "before"})
    service.put_rule("quay-00", before, actor=ALICE)
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
    assert store.items[(R, "quay-00")].spec == before.model_dump(mode="json")
    assert store.lock_owner is None


def test_apply_dry_run_writes_nothing(service: DesiredStateService, store: MemoryStateStore) -> None:
    result = service.apply(_big_document(3), {}, actor=ALICE, prune=False, dry_run=True)
    assert result.dry_run and len(result.changes) == 6 and store.items == {} and store.commits == 0


def test_apply_stale_revision_precondition(service: DesiredStateService) -> None:
    service.put_rule("quay", QUAY, actor=ALICE)
    with pytest.raises(PreconditionFailedError, match="revision 1, not 0"):
        service.apply(_big_document(1), {}, actor=ALICE, prune=False, dry_run=False, if_match_revision=0)


def test_apply_reports_every_broken_reference(service: DesiredStateService, store: MemoryStateStore) -> None:
    doc: dict[ResourceKind, dict[str, Any]] = {
        R: {"docker-hub": {"upstream_kind": "docker-hub", "credential": "hub"}},
        C: {},
        W: {"w": {"rule": "nope", "images": ["a/b:1"]}},
    }
    with pytest.raises(InvalidInputError) as err:
        service.apply(doc, {}, actor=ALICE, prune=False, dry_run=False)
    assert [d.field for d in err.value.details] == ["rules.docker-hub.credential", "warm_sets.w.rule"]
    assert store.items == {}


def test_history_records_actions(service: DesiredStateService) -> None:
    service.put_rule("quay", QUAY, actor=ALICE)
    service.delete(R, "quay", actor=ALICE)
    page = service.history(R, "quay", limit=10, next_token=None)
    assert [h.action for h in page.items] == [WriteAction.DELETE, WriteAction.CREATE]


def test_apply_commits_in_chunks_of_the_stores_size(service: DesiredStateService, store: MemoryStateStore) -> None:
    # GIVEN a store whose transactions take 4 writes
    store.max_writes_per_commit = 4
    # WHEN a document with 10 changes is applied
    result = service.apply(_big_document(5), {}, actor=ALICE, prune=False, dry_run=False)
    # THEN it lands in ceil(10 / 4) = 3 commits under the lease
    assert len(result.changes) == 10 and len(store.items) == 10
    assert store.commits == 3 and store.lock_owner is None


def test_apply_document_stores_dumps_and_stages_tokens(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore
) -> None:
    # GIVEN a validated document with a credential (and its token) and a rule using it
    document = DesiredStateDocument.model_validate(
        {
            "version": 1,
            "rules": {"docker-hub": {"upstream_kind": "docker-hub", "credential": "hub"}},
            "credentials": {"hub": {"upstream_kind": "docker-hub", "username": "ci", "token": "dckr_pat_doc"}},
        }
    )
    # WHEN it is applied
    result = service.apply_document(document, actor=ALICE, prune=False, dry_run=False)
    # THEN both are stored as their models' dumps, and the token is the secret's current value
    assert [(c.kind, c.name, c.secret_changed) for c in result.changes] == [(C, "hub", True), (R, "docker-hub", False)]
    assert store.items[(C, "hub")].spec == CRED.model_dump(mode="json")
    assert store.items[(R, "docker-hub")].spec == HUB.model_dump(mode="json")
    assert json.loads(secrets.value(SECRET)) == {"username": "ci", "accessToken": "dckr_pat_doc"}


@pytest.mark.parametrize("dry_run", [False, True])
def test_apply_document_prune_declaring_nothing_needs_allow_empty(
    service: DesiredStateService, store: MemoryStateStore, secrets: MemorySecretStore, *, dry_run: bool
) -> None:
    # GIVEN a credential and a rule
    service.put_credential("hub", CRED, TOKEN, actor=ALICE)
    service.put_rule("quay", QUAY, actor=ALICE)
    empty = DesiredStateDocument.model_validate({"version": 1})
    # WHEN a document that declares nothing is applied with prune, without allow_empty
    with pytest.raises(InvalidInputError) as refused:
        service.apply_document(empty, actor=ALICE, prune=True, dry_run=dry_run)
    # THEN it is refused naming allowEmpty, and nothing is deleted
    assert [d.field for d in refused.value.details] == ["query.allowEmpty"]
    assert set(store.items) == {(C, "hub"), (R, "quay")}
    assert secrets.deleted == []
    # AND with allow_empty it deletes everything (unless dry run)
    result = service.apply_document(empty, actor=ALICE, prune=True, dry_run=dry_run, allow_empty=True)
    assert [(c.action, c.kind, c.name) for c in result.changes] == [
        (WriteAction.DELETE, R, "quay"),
        (WriteAction.DELETE, C, "hub"),
    ]
    assert (store.items == {}) is not dry_run

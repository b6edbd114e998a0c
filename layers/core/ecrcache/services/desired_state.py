"""Use cases on the desired state: get, put and delete one resource, export and apply a document.

The single-resource writes are typed (``put_rule``, ``put_credential``, ``put_warm_set`` take the
validated models; what is stored is the model's JSON dump) and share one private write path: read a
snapshot (with its revision), check preconditions and integrity on the state the write would
produce, stage any secret, commit conditioned on the revision, then promote the secret. A commit
that loses a race (``StaleRevisionError``) is retried from a fresh snapshot; a conditional header
that no longer holds becomes a 412. What is particular to credentials (adopting an existing secret,
when the token is required, the secret's new value) stays in ``put_credential``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ecrcache.engine.desired import (
    ResourceChange,
    apply_changes,
    check_integrity,
    diff_document,
    past_expiry,
    referenced_by,
    regions_gaining_rules,
)
from ecrcache.engine.role_path import ANY_ROLE, outside_role_path, roles_of_json
from ecrcache.errors import (
    ConflictError,
    EcrcacheError,
    FieldError,
    InvalidInputError,
    LockedError,
    NotFoundError,
    PreconditionFailedError,
    RetryableError,
    StaleRevisionError,
    VersionConflictError,
    invalid,
)
from ecrcache.models.credential import secret_name, secret_string
from ecrcache.models.records import (
    SECTIONS,
    ResourceKind,
    StoredResource,
    Write,
    WriteAction,
)
from ecrcache.observability import logger, metrics
from ecrcache.services.secret_users import still_used_conflict

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from pydantic import SecretStr

    from ecrcache.engine.desired import (
        Specs,
    )
    from ecrcache.engine.role_path import RoleScope
    from ecrcache.models.credential import CredentialSpec
    from ecrcache.models.desired_state import DesiredStateDocument
    from ecrcache.models.records import (
        HistoryEntry,
        Page,
        Snapshot,
    )
    from ecrcache.models.rule import RuleSpec
    from ecrcache.models.warm_set import WarmSetSpec
    from ecrcache.ports import SecretStore, StagedSecret, StateStore
    from ecrcache.services.secret_users import EcrSecretUsers

MAX_ATTEMPTS = 8
BACKOFF_BASE = 0.02
BACKOFF_CAP = 0.5
LOCK_TTL_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Precondition:
    """HTTP conditional headers, parsed: ``if_match`` a version, ``if_none_match`` means "create only"."""

    if_match: int | None = None
    if_none_match: bool = False
    if_match_any: bool = False

    @property
    def unconditional(self) -> bool:
        return self.if_match is None and not self.if_none_match and not self.if_match_any


@dataclass(frozen=True, slots=True)
class SecretInput:
    """A token to store with a credential write (never logged, never stored outside Secrets Manager)."""

    username: str
    token: SecretStr


@dataclass(frozen=True, slots=True)
class PutResult:
    resource: StoredResource
    created: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class ApplyResult:
    changes: list[ResourceChange]
    dry_run: bool
    revision: int


def _specs(snapshot: Snapshot) -> dict[ResourceKind, dict[str, Mapping[str, Any]]]:
    return {kind: {n: r.spec for n, r in snapshot.of(kind).items()} for kind in ResourceKind}


def _current_secret(current: StoredResource | None) -> str | None:
    """A rule or warm set has no secret; a credential written without a token keeps its own."""
    return current.secret_arn if current else None


class DesiredStateService:
    """Reads and writes of the desired state, over the state store and the secret store ports."""

    def __init__(
        self,
        store: StateStore,
        secrets: SecretStore,
        clock: Callable[[], datetime],
        *,
        stack_region: str = "us-east-1",
        sleep: Callable[[float], None] = time.sleep,
        ecr_rules: Callable[[str], Collection[str]] | None = None,
        secret_users: EcrSecretUsers | None = None,
        role_path: RoleScope = ANY_ROLE,
    ) -> None:
        """``ecr_rules`` reads the prefixes of the rules ECR holds in a Region (for the rule quota,
        which counts those that are not desired too); without it only desired rules are counted.
        ``secret_users`` reads ECR before a credential is deleted: a rule there (retained by
        ecrcache, or not managed by it) still using the secret makes the delete a 409. Without it
        only desired rules are checked. ``role_path`` is the stack's EcrRolePath: a rule written with a
        role outside it is a 422 (the reconciler's ``iam:PassRole`` covers no other role)."""
        self.store = store
        self.secrets = secrets
        self.clock = clock
        self.stack_region = stack_region
        self.sleep = sleep
        self.ecr_rules = ecr_rules
        self.secret_users = secret_users
        self.role_path = role_path

    def _backoff(self, attempt: int) -> None:
        """Full jitter: writers that lost the race spread out instead of colliding again."""
        self.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))  # noqa: S311 - jitter

    # -- reads ---------------------------------------------------------------------------------

    def get(self, kind: ResourceKind, name: str) -> StoredResource:
        found = self.store.get(kind, name)
        if found is None:
            raise NotFoundError(f"no {kind} named {name!r}")
        return found

    def list_all(self, kind: ResourceKind) -> list[StoredResource]:
        snapshot = self.store.snapshot()
        return [snapshot.of(kind)[name] for name in sorted(snapshot.of(kind))]

    def snapshot(self) -> Snapshot:
        return self.store.snapshot()

    def referenced_by(self, kind: ResourceKind, name: str) -> list[str]:
        return referenced_by(_specs(self.store.snapshot()), kind, name)

    def history(
        self, kind: ResourceKind | None, name: str | None, *, limit: int, next_token: str | None
    ) -> Page[HistoryEntry]:
        return self.store.history(kind, name, limit=limit, next_token=next_token)

    # -- single-resource writes ----------------------------------------------------------------

    def put_rule(
        self, prefix: str, spec: RuleSpec, *, actor: str, precondition: Precondition = Precondition()
    ) -> PutResult:
        """Create or replace the rule of ``prefix``, an ECR prefix already normalised (``parse_ecr_prefix``)."""
        spec.check_prefix(prefix)
        return self._put(
            ResourceKind.RULE, prefix, spec.model_dump(mode="json"), actor=actor, precondition=precondition
        )

    def put_warm_set(
        self, name: str, spec: WarmSetSpec, *, actor: str, precondition: Precondition = Precondition()
    ) -> PutResult:
        """Create or replace a warm set (its rule must exist)."""
        return self._put(
            ResourceKind.WARM_SET, name, spec.model_dump(mode="json"), actor=actor, precondition=precondition
        )

    def put_credential(
        self,
        name: str,
        spec: CredentialSpec,
        token: SecretStr | None,
        *,
        actor: str,
        precondition: Precondition = Precondition(),
    ) -> PutResult:
        """Create or update a credential; with ``token``, its secret gets a new value.

        The secret ``ecr-pullthroughcache/<name>`` holds username and token together, so a new
        credential or a new username needs the token, unless a new credential adopts a secret of that
        name that already exists (brownfield). A new value is staged before the commit, made current
        once the commit lands and discarded when it does not: a failed write never changes the token.
        """
        stored = spec.model_dump(mode="json")
        if token is None:

            def keep(current: StoredResource | None) -> str | None:
                """No token: a new credential adopts an existing secret; otherwise the token may be required."""
                if current is None:
                    adopted = self.secrets.existing_arn(secret_name(name))
                    if adopted is not None:
                        return adopted
                _check_credential_secret(name, current, stored)
                return _current_secret(current)

            return self._put(
                ResourceKind.CREDENTIAL, name, stored, actor=actor, precondition=precondition, keep_secret=keep
            )
        value = SecretInput(spec.username, token)

        @contextmanager
        def replace() -> Iterator[str]:
            """A token: staged before the commit, current once it lands, discarded when it does not."""
            staged = _stage(self.secrets, name, value)
            try:
                yield staged.arn
            except BaseException:
                _discard(self.secrets, staged)
                raise
            _promote(self.secrets, staged)

        return self._put(
            ResourceKind.CREDENTIAL, name, stored, actor=actor, precondition=precondition, new_secret=replace
        )

    def _put(
        self,
        kind: ResourceKind,
        name: str,
        spec: dict[str, Any],
        *,
        actor: str,
        precondition: Precondition,
        keep_secret: Callable[[StoredResource | None], str | None] = _current_secret,
        new_secret: Callable[[], AbstractContextManager[str]] | None = None,
    ) -> PutResult:
        """The one write path of a single resource: a no-op when nothing changes (no new version, no history).

        Without ``new_secret``, ``keep_secret`` refuses a write the item as read does not allow, or
        gives the secret ARN to record. ``new_secret`` wraps the commit: it yields the ARN of the new
        value, and is told by the exception passing through whether the commit landed.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            snapshot = self.store.snapshot()
            current = snapshot.of(kind).get(name)
            _check_precondition(kind, name, current, precondition)
            kept = None if new_secret else keep_secret(current)
            if current is not None and current.spec == spec and new_secret is None:
                return PutResult(current, created=False, changed=False)
            action = WriteAction.UPDATE if current else WriteAction.CREATE
            change = ResourceChange(kind, name, action, current.spec if current else None, spec)
            self._check(snapshot, [change], touched=frozenset({(kind, name)}), relative_to=(kind, name))
            try:
                with new_secret() if new_secret else nullcontext(kept) as secret_arn:
                    write = Write(
                        kind=kind,
                        name=name,
                        action=action,
                        expected_version=current.version if current else None,
                        spec=spec,
                        secret_arn=secret_arn,
                        before=current,
                    )
                    self.store.commit([write], revision=snapshot.revision, actor=actor, now=self.clock())
            except StaleRevisionError:
                logger.info("desired state changed under a write; retrying", extra={"attempt": attempt})
                self._backoff(attempt)
                continue
            except VersionConflictError:
                if not precondition.unconditional:
                    raise
                self._backoff(attempt)  # an unconditional write just re-reads and goes again
                continue
            metrics.add_metric(name="DesiredStateWritten", unit="Count", value=1)
            stored = self.store.get(kind, name)
            if stored is None:  # deleted between commit and read: report what was written
                raise StaleRevisionError(f"{kind} {name!r} was deleted right after this write")
            return PutResult(stored, created=current is None, changed=True)
        raise RetryableError("the desired state is changing too fast to write; try again")

    def delete(self, kind: ResourceKind, name: str, *, actor: str, precondition: Precondition = Precondition()) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            snapshot = self.store.snapshot()
            current = snapshot.of(kind).get(name)
            if current is None:
                raise NotFoundError(f"no {kind} named {name!r}")
            _check_precondition(kind, name, current, precondition)
            users = referenced_by(_specs(snapshot), kind, name)
            if users:
                what = "rules" if kind is ResourceKind.CREDENTIAL else "warm sets"
                raise ConflictError(
                    f"{kind} {name!r} is still used by {what}: {', '.join(users)}",
                    [FieldError(field=u, message=f"references {kind} {name!r}") for u in users],
                )
            if kind is ResourceKind.CREDENTIAL:
                self._check_unused_in_ecr([current], desired_rules=_specs(snapshot)[ResourceKind.RULE])
            write = Write(
                kind=kind, name=name, action=WriteAction.DELETE, expected_version=current.version, before=current
            )
            # The token must not outlive its credential: schedule the secret's deletion first
            # (recoverable for 7 days) and restore it if the commit does not land.
            scheduled = kind is ResourceKind.CREDENTIAL and self.secrets.delete(secret_name(name))
            try:
                self.store.commit([write], revision=snapshot.revision, actor=actor, now=self.clock())
            except (StaleRevisionError, VersionConflictError) as exc:
                if scheduled:  # restore only what this request scheduled
                    _restore(self.secrets, name)
                if isinstance(exc, VersionConflictError) and not precondition.unconditional:
                    raise
                self._backoff(attempt)
                continue
            except BaseException:
                if scheduled:
                    _restore(self.secrets, name)
                raise
            metrics.add_metric(name="DesiredStateWritten", unit="Count", value=1)
            return
        raise RetryableError("the desired state is changing too fast to write; try again")

    # -- whole documents -----------------------------------------------------------------------

    def apply_document(
        self,
        document: DesiredStateDocument,
        *,
        actor: str,
        prune: bool,
        dry_run: bool,
        if_match_revision: int | None = None,
        allow_empty: bool = False,
    ) -> ApplyResult:
        """Apply a validated document (``PUT /v1/desired-state``); its tokens become new secret values.

        A prune with a document that declares nothing would delete everything: it needs ``allow_empty``
        (the CLI's ``apply --prune --allow-empty``), dry run or not.
        """
        if prune and document.declares_nothing and not allow_empty:
            raise invalid(
                "query.allowEmpty",
                "must be true to prune with a document that declares no rules, credentials or warm sets: "
                "that would delete every rule, credential and warm set (and schedule every credential's "
                "secret for deletion)",
            )
        specs, secrets = _document_specs(document)
        return self.apply(
            specs, secrets, actor=actor, prune=prune, dry_run=dry_run, if_match_revision=if_match_revision
        )

    def apply(
        self,
        desired: Specs,
        secrets: Mapping[str, SecretInput],
        *,
        actor: str,
        prune: bool,
        dry_run: bool,
        if_match_revision: int | None = None,
    ) -> ApplyResult:
        """Validate the whole document against the state it would produce, then write it (or not)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            snapshot = self.store.snapshot()
            if if_match_revision is not None and snapshot.revision != if_match_revision:
                raise PreconditionFailedError(
                    f"the desired state is at revision {snapshot.revision}, not {if_match_revision}"
                )
            changes = diff_document(_specs(snapshot), desired, prune=prune, secrets_supplied=frozenset(secrets))
            adopted, token_errors = self._credential_secrets(snapshot, desired, secrets)
            self._check(snapshot, changes, touched=None if prune else _touched(changes), extra=token_errors)
            self._check_deleted_credentials_unused(snapshot, changes)
            if dry_run or not changes:
                return ApplyResult(changes=changes, dry_run=dry_run, revision=snapshot.revision)
            try:
                revision = self._write_changes(snapshot, changes, secrets, actor, adopted)
            except StaleRevisionError:
                self._backoff(attempt)
                continue
            return ApplyResult(changes=changes, dry_run=False, revision=revision)
        raise RetryableError("the desired state is changing too fast to apply; try again")

    def _credential_secrets(
        self, snapshot: Snapshot, desired: Specs, secrets: Mapping[str, SecretInput]
    ) -> tuple[dict[str, str], list[FieldError]]:
        """Existing secrets adopted by new credentials without a token, and every missing token."""
        adopted: dict[str, str] = {}
        errors: list[FieldError] = []
        for name, spec in sorted(desired.get(ResourceKind.CREDENTIAL, {}).items()):
            current = snapshot.credentials.get(name)
            if name in secrets:
                continue
            if current is None:
                arn = self.secrets.existing_arn(secret_name(name))
                if arn is not None:
                    adopted[name] = arn
                    continue
            try:
                _check_credential_secret(name, current, spec, path=f"credentials.{name}.token")
            except InvalidInputError as exc:
                errors.extend(exc.details)
        return adopted, errors

    def _write_changes(
        self,
        snapshot: Snapshot,
        changes: Sequence[ResourceChange],
        secrets: Mapping[str, SecretInput],
        actor: str,
        adopted: Mapping[str, str],
    ) -> int:
        staged: dict[str, StagedSecret] = {}
        deleted: list[str] = []
        try:
            for change in changes:
                if change.kind is not ResourceKind.CREDENTIAL:
                    continue
                if change.name in secrets:
                    staged[change.name] = _stage(self.secrets, change.name, secrets[change.name])
                elif change.action is WriteAction.DELETE and self.secrets.delete(secret_name(change.name)):
                    # The token must not outlive its credential (restored below if the commit fails).
                    deleted.append(change.name)
            writes = [_write_for(snapshot, c, staged, adopted) for c in changes]
            revision = _commit_all(self.store, writes, revision=snapshot.revision, actor=actor, clock=self.clock)
        except BaseException:
            for s in staged.values():
                _discard(self.secrets, s)
            for name in deleted:
                _restore(self.secrets, name)
            raise
        for s in staged.values():
            _promote(self.secrets, s)
        metrics.add_metric(name="DesiredStateWritten", unit="Count", value=len(changes))
        return revision

    def export(self) -> tuple[dict[ResourceKind, dict[str, Mapping[str, Any]]], int]:
        snapshot = self.store.snapshot()
        return _specs(snapshot), snapshot.revision

    # -- helpers -------------------------------------------------------------------------------

    def _check_deleted_credentials_unused(self, snapshot: Snapshot, changes: Sequence[ResourceChange]) -> None:
        """The credentials a document deletes: no rule in ECR may still use their secrets."""
        deleted = [
            snapshot.credentials[c.name]
            for c in changes
            if c.kind is ResourceKind.CREDENTIAL and c.action is WriteAction.DELETE
        ]
        if not deleted:
            return
        state = apply_changes(_specs(snapshot), list(changes))
        deleted_rules = {
            c.name: c.before
            for c in changes
            if c.kind is ResourceKind.RULE and c.action is WriteAction.DELETE and c.before is not None
        }
        self._check_unused_in_ecr(deleted, desired_rules=state.get(ResourceKind.RULE, {}), deleted_rules=deleted_rules)

    def _check_unused_in_ecr(
        self,
        credentials: Sequence[StoredResource],
        *,
        desired_rules: Mapping[str, Mapping[str, Any]],
        deleted_rules: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """409 when a rule in ECR (retained, not managed, or not reconciled yet) uses one of the secrets;
        ``desired_rules`` is what the write leaves desired, ``deleted_rules`` what it deletes."""
        arns = {c.name: c.secret_arn for c in credentials if c.secret_arn}
        if self.secret_users is None or not arns:
            return
        uses = self.secret_users.using(arns, desired_rules=desired_rules, deleted_rules=deleted_rules or {})
        if uses:
            raise still_used_conflict(uses)

    def _check(
        self,
        snapshot: Snapshot,
        changes: Sequence[ResourceChange],
        *,
        touched: frozenset[tuple[ResourceKind, str]] | None,
        relative_to: tuple[ResourceKind, str] | None = None,
        extra: Sequence[FieldError] = (),
    ) -> None:
        """Integrity of the state the changes produce; every problem at once, with field paths.

        Paths are document paths (``rules.<prefix>.credential``) for documents, and body paths
        (``credential``) when one resource is written (``relative_to``).
        """
        state = apply_changes(_specs(snapshot), list(changes))
        held = None
        if self.ecr_rules is not None:  # ECR is read only where a write adds a rule
            held = {r: self.ecr_rules(r) for r in sorted(regions_gaining_rules(changes, self.stack_region))}
        violations = check_integrity(state, touched=touched, default_region=self.stack_region, held=held)
        invalid = [*violations.invalid, *past_expiry(changes, today=self.clock().date()), *extra]
        invalid += _roles_outside_path(changes, self.role_path)
        if relative_to is not None:
            invalid = _relative_to(invalid, relative_to)
        if invalid:
            first = invalid[0]
            raise InvalidInputError(f"{first.field}: {first.message}", invalid)
        if violations.conflicts:
            first = violations.conflicts[0]
            raise ConflictError(first.message, violations.conflicts)


def _relative_to(errors: Sequence[FieldError], resource: tuple[ResourceKind, str]) -> list[FieldError]:
    """Document paths (``rules.<prefix>.credential``) as body paths (``credential``) of the one resource written."""
    prefix = f"{SECTIONS[resource[0]]}.{resource[1]}."
    return [
        FieldError(e.field.removeprefix(prefix), e.message, e.type) if e.field.startswith(prefix) else e for e in errors
    ]


def _roles_outside_path(changes: Sequence[ResourceChange], role_path: RoleScope) -> list[FieldError]:
    """The role ARNs the rules a write creates or updates name outside the stack's EcrRolePath: a 422 each.

    Checked on every rule written (not only on a changed ARN): such a rule could never be reconciled."""
    errors: list[FieldError] = []
    for change in changes:
        if change.kind is not ResourceKind.RULE or change.after is None:
            continue
        for outside in outside_role_path(roles_of_json(change.after), role_path):
            errors.append(FieldError(f"{SECTIONS[ResourceKind.RULE]}.{change.name}.{outside.field}", outside.message))
    return errors


def _stage(secrets: SecretStore, name: str, value: SecretInput) -> StagedSecret:
    return secrets.stage(
        secret_name(name),
        secret_string(value.username, value.token.get_secret_value()),
        request_token=str(uuid.uuid4()),
    )


def _promote(secrets: SecretStore, staged: StagedSecret) -> None:
    try:
        secrets.promote(staged)
    except EcrcacheError as exc:
        raise RetryableError(
            "the credential was saved but its new token is not current yet; repeat the same request"
        ) from exc


def _discard(secrets: SecretStore, staged: StagedSecret) -> None:
    try:
        secrets.discard(staged)
    except EcrcacheError:
        logger.exception("could not undo a staged secret value", extra={"secret_name": staged.name})


def _restore(secrets: SecretStore, name: str) -> None:
    """Undo the scheduled deletion of credential ``name``'s secret (its commit did not land)."""
    try:
        secrets.restore(secret_name(name))
    except EcrcacheError:
        logger.exception("could not restore a secret after a failed delete", extra={"secret_name": secret_name(name)})
        raise


def _document_specs(document: DesiredStateDocument) -> tuple[Specs, dict[str, SecretInput]]:
    """A document's specs as stored (each model's JSON dump; no token) and its tokens."""
    specs = {
        ResourceKind.RULE: {prefix: rule.model_dump(mode="json") for prefix, rule in document.rules.items()},
        ResourceKind.CREDENTIAL: {
            name: cred.spec().model_dump(mode="json") for name, cred in document.credentials.items()
        },
        ResourceKind.WARM_SET: {name: ws.model_dump(mode="json") for name, ws in document.warm_sets.items()},
    }
    secrets = {
        name: SecretInput(cred.username, cred.token)
        for name, cred in document.credentials.items()
        if cred.token is not None
    }
    return specs, secrets


def _commit_all(
    store: StateStore, writes: Sequence[Write], *, revision: int, actor: str, clock: Callable[[], datetime]
) -> int:
    """One transaction when it fits; otherwise take the lease, commit in chunks, undo on failure."""
    now = clock()
    chunk_size = store.max_writes_per_commit
    if len(writes) <= chunk_size:
        return store.commit(writes, revision=revision, actor=actor, now=now)
    owner = f"apply-{uuid.uuid4()}"
    locked_revision = store.acquire_lock(owner, now=now, ttl_seconds=LOCK_TTL_SECONDS)
    if locked_revision != revision:
        store.release_lock(owner)
        raise StaleRevisionError("the desired state changed while this apply was prepared")
    done: list[Write] = []
    try:
        for start in range(0, len(writes), chunk_size):
            chunk = writes[start : start + chunk_size]
            revision = store.commit(chunk, revision=revision, actor=actor, now=clock(), lock_owner=owner)
            done.extend(chunk)
    except EcrcacheError:
        _compensate(store, done, revision=revision, actor=actor, owner=owner, clock=clock)
        raise
    finally:
        store.release_lock(owner)
    return revision


def _compensate(
    store: StateStore, done: Sequence[Write], *, revision: int, actor: str, owner: str, clock: Callable[[], datetime]
) -> None:
    """Put back what earlier chunks wrote (see :func:`_undo`), under the same lease."""
    now = clock()
    undo = [u for w in reversed(done) if (u := _undo(w, actor=actor, now=now)) is not None]
    chunk_size = store.max_writes_per_commit
    for start in range(0, len(undo), chunk_size):
        revision = store.commit(
            undo[start : start + chunk_size], revision=revision, actor=actor, now=clock(), lock_owner=owner
        )
    logger.warning("apply failed part-way; earlier chunks were undone", extra={"undone": len(undo)})


def _undo(write: Write, *, actor: str, now: datetime) -> Write | None:
    """The write that puts back what ``write`` (committed) changed.

    The undo is a write like any other: versions keep increasing (an old ETag never matches again)
    and history records it with before and after.
    """
    written = (write.expected_version or 0) + 1
    as_written = (
        StoredResource(
            kind=write.kind,
            name=write.name,
            version=written,
            spec=dict(write.spec),
            created_at=write.before.created_at if write.before else now,
            updated_at=now,
            updated_by=actor,
            secret_arn=write.secret_arn,
        )
        if write.spec is not None
        else None
    )
    before = write.before
    if write.action is WriteAction.CREATE:
        return Write(
            kind=write.kind, name=write.name, action=WriteAction.DELETE, expected_version=written, before=as_written
        )
    if before is None:
        return None
    if write.action is WriteAction.UPDATE:
        return Write(
            kind=write.kind,
            name=write.name,
            action=WriteAction.UPDATE,
            expected_version=written,
            spec=dict(before.spec),
            secret_arn=before.secret_arn,
            before=as_written,
        )
    # A delete: re-create it one version past the deleted one, so the deleted version's ETag stays stale.
    return Write(
        kind=write.kind,
        name=write.name,
        action=WriteAction.CREATE,
        expected_version=None,
        version=before.version + 1,
        spec=dict(before.spec),
        secret_arn=before.secret_arn,
        before=before,
    )


def _touched(changes: Sequence[ResourceChange]) -> frozenset[tuple[ResourceKind, str]]:
    return frozenset((c.kind, c.name) for c in changes)


def _write_for(
    snapshot: Snapshot, change: ResourceChange, staged: Mapping[str, StagedSecret], adopted: Mapping[str, str]
) -> Write:
    current = snapshot.of(change.kind).get(change.name)
    secret_arn = None
    if change.kind is ResourceKind.CREDENTIAL:
        secret_arn = staged[change.name].arn if change.name in staged else adopted.get(change.name)
    return Write(
        kind=change.kind,
        name=change.name,
        action=change.action,
        expected_version=current.version if current else None,
        spec=dict(change.after) if change.after is not None else None,
        secret_arn=secret_arn or (current.secret_arn if current else None),
        before=current,
    )


def _check_precondition(
    kind: ResourceKind, name: str, current: StoredResource | None, precondition: Precondition
) -> None:
    if precondition.if_match_any and current is None:
        raise PreconditionFailedError(f"{kind} {name!r} does not exist (If-Match: *)")
    if precondition.if_none_match and current is not None:
        raise PreconditionFailedError(f"{kind} {name!r} already exists (If-None-Match: *)")
    if precondition.if_match is not None:
        if current is None:
            raise PreconditionFailedError(f"{kind} {name!r} does not exist (If-Match: {precondition.if_match})")
        if current.version != precondition.if_match:
            raise PreconditionFailedError(
                f"{kind} {name!r} is at version {current.version}, not {precondition.if_match} (If-Match)"
            )


def _check_credential_secret(
    name: str, current: StoredResource | None, spec: Mapping[str, Any], *, path: str = "token"
) -> None:
    """Without a token: the secret holds username and token together, so a new credential or username needs one."""
    if current is None:
        raise invalid(path, f"required when creating credential {name!r}: the token is stored in Secrets Manager")
    if current.spec.get("username") != spec.get("username"):
        raise invalid(path, "required when the username changes: the secret holds username and token together")


__all__ = [
    "ApplyResult",
    "DesiredStateService",
    "LockedError",
    "Precondition",
    "PutResult",
    "SecretInput",
]

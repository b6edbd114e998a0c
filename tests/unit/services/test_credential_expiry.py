"""``expires_at`` in the past: a new or changed date is refused; a stored one that has passed since still loads.

The model has no clock, so the check is the service's (its clock), on the change a write makes
(:func:`ecrcache.engine.desired.past_expiry`, pure).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from ecrcache.engine.desired import ResourceChange, past_expiry
from ecrcache.errors import InvalidInputError
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.records import ResourceKind, WriteAction
from ecrcache.services.desired_state import DesiredStateService
from tests.fakes.stores import MemorySecretStore, MemoryStateStore

pytestmark = pytest.mark.unit

ALICE = "arn:aws:iam::123456789012:user/alice"
TODAY = date(2026, 11, 29)
TOKEN = SecretStr("dckr_pat_secret")


def _spec(expires_at: str | None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"upstream_kind": "docker-hub", "username": "ci", **extra}
    if expires_at is not None:
        spec["expires_at"] = expires_at
    return spec


def _change(before: str | None, after: str | None, *, created: bool = False) -> ResourceChange:
    action = WriteAction.CREATE if created else WriteAction.UPDATE
    return ResourceChange(ResourceKind.CREDENTIAL, "hub", action, None if created else _spec(before), _spec(after))


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (_change(None, "2026-11-28", created=True), True),  # new, yesterday
        (_change(None, "2026-11-29", created=True), False),  # new, today: still valid today
        (_change(None, "2027-01-01", created=True), False),
        (_change(None, None, created=True), False),  # no date
        (_change("2027-01-01", "2026-01-01"), True),  # changed to a past date
        (_change("2026-01-01", "2026-01-01"), False),  # unchanged date, passed since
        (_change("2026-01-01", None), False),  # date removed
        (_change("2026-01-01", "2027-01-01"), False),  # renewed
    ],
    ids=["new-past", "new-today", "new-future", "new-none", "changed-past", "unchanged-past", "removed", "renewed"],
)
def test_past_expiry_refuses_only_a_new_date_in_the_past(change: ResourceChange, refused: bool) -> None:
    errors = past_expiry([change], today=TODAY)
    assert [e.field for e in errors] == (["credentials.hub.expires_at"] if refused else [])


def test_past_expiry_ignores_other_kinds_and_deletes() -> None:
    rule = ResourceChange(ResourceKind.RULE, "q", WriteAction.CREATE, None, {"expires_at": "2000-01-01"})
    gone = ResourceChange(ResourceKind.CREDENTIAL, "hub", WriteAction.DELETE, _spec("2000-01-01"), None)
    assert past_expiry([rule, gone], today=TODAY) == []


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_stored_credential_whose_expiry_passed_still_loads_and_takes_other_changes() -> None:
    # GIVEN a credential stored with an expiry of tomorrow, then two days pass
    clock = Clock()
    service = DesiredStateService(MemoryStateStore(), MemorySecretStore(), clock=clock)
    tomorrow = (clock.now.date() + timedelta(days=1)).isoformat()
    service.put_credential("hub", CredentialSpec.model_validate(_spec(tomorrow)), TOKEN, actor=ALICE)
    clock.now += timedelta(days=2)

    # WHEN it is read, and written again with its date unchanged (a description; a whole document again)
    stored = service.get(ResourceKind.CREDENTIAL, "hub")
    described = CredentialSpec.model_validate(_spec(tomorrow, description="expired: renew"))
    result = service.put_credential("hub", described, None, actor=ALICE)
    document = DesiredStateDocument.model_validate({"version": 1, "credentials": {"hub": _spec(tomorrow)}})
    applied = service.apply_document(document, actor=ALICE, prune=False, dry_run=False)

    # THEN it loads and both writes go through
    assert stored.spec["expires_at"] == tomorrow
    assert result.changed
    assert [c.fields for c in applied.changes] == [("description",)]

    # WHEN the date is changed to another past date THEN that write is refused, naming expires_at
    with pytest.raises(InvalidInputError) as caught:
        service.put_credential("hub", CredentialSpec.model_validate(_spec("2026-11-01")), None, actor=ALICE)
    assert [d.field for d in caught.value.details] == ["expires_at"]

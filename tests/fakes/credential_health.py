"""In-memory credential health store and notifier (:class:`ecrcache.ports.CredentialHealthStore`,
:class:`ecrcache.ports.HealthNotifier`), with the conditions the DynamoDB adapter writes under."""

from __future__ import annotations

from ecrcache.engine.credential_health import HealthEvent
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential_health import CredentialHealth, HealthState


class MemoryCredentialHealthStore:
    def __init__(self) -> None:
        self.items: dict[str, CredentialHealth] = {}
        self.writes: list[str] = []
        self.fail: EcrcacheError | None = None

    def all_health(self) -> dict[str, CredentialHealth]:
        return dict(self.items)

    def health(self, credential: str) -> CredentialHealth | None:
        return self.items.get(credential)

    def save(self, health: CredentialHealth, *, seen: CredentialHealth | None) -> bool:
        self._maybe_fail("save")
        current = self.items.get(health.credential)
        if (current is None) != (seen is None) or (
            current and seen and (current.marked_at, current.rotated_at) != (seen.marked_at, seen.rotated_at)
        ):
            return False
        self.items[health.credential] = health
        return True

    def mark_invalid(self, health: CredentialHealth) -> CredentialHealth | None:
        self._maybe_fail("mark_invalid")
        current = self.items.get(health.credential)
        assert health.marked_at is not None
        if current is not None and any(
            known is not None and known >= health.marked_at
            for known in (current.marked_at, current.checked_at, current.rotated_at)
        ):
            return None
        before = current or CredentialHealth(credential=health.credential)
        self.items[health.credential] = before.model_copy(
            update={k: getattr(health, k) for k in ("state", "checked_at", "marked_at", "message", "evidence")}
        )
        return before

    def record_rotated(self, health: CredentialHealth) -> CredentialHealth | None:
        self._maybe_fail("record_rotated")
        current = self.items.get(health.credential)
        assert health.rotated_at is not None
        if current is not None and current.marked_at is not None and current.marked_at >= health.rotated_at:
            return None
        before = current or CredentialHealth(credential=health.credential)
        self.items[health.credential] = before.model_copy(
            update={k: getattr(health, k) for k in ("state", "checked_at", "rotated_at", "message")}
            | {"marked_at": None, "evidence": None}
        )
        return before

    def record_sent(self, credential: str, *, sent: frozenset[str], owed: frozenset[str], done: frozenset[str]) -> None:
        self._maybe_fail("record_sent")
        current = self.items.get(credential)
        if current is not None:
            self.items[credential] = current.model_copy(
                update={"alerts_sent": current.alerts_sent | sent, "alerts_owed": (current.alerts_owed | owed) - done}
            )

    def record_announced(self, credential: str, state: HealthState) -> None:
        self._maybe_fail("record_announced")
        current = self.items.get(credential)
        if current is not None and current.state is state:
            self.items[credential] = current.model_copy(update={"announced": state})

    def delete_health(self, credential: str) -> None:
        self._maybe_fail("delete_health")
        self.items.pop(credential, None)

    def _maybe_fail(self, what: str) -> None:
        self.writes.append(what)
        if self.fail is not None:
            raise self.fail


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[HealthEvent] = []
        self.alerted: list[HealthEvent] = []
        self.fail: EcrcacheError | None = None

    def publish(self, event: HealthEvent) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(event)

    def alert(self, event: HealthEvent) -> None:
        if self.fail is not None:
            raise self.fail
        self.alerted.append(event)

"""Each credential's health in the state table (:class:`~ecrcache.models.credential_health.CredentialHealth`).

One item per credential, all in one partition (the API lists them with one ``Query``)::

    pk = "HEALTH#credential"   sk = <credential name>
        credential, state ("Healthy" | "Invalid" | "Expiring" | "Unknown"), checked_at?, message?, evidence?,
        marked_at?          a credential error seen elsewhere marked it Invalid then (cleared by a passing check)
        rotated_at?         a rotation promoted a new token (validated) then
        expires_at_date?    the credential's expires_at as the last check knew it (not `expires_at`: the table's
                            TTL attribute)
        announced?          the state the last "Credential Health Changed" event announced
        alerts_sent?        string set, "<expires_at>#<threshold>" of the expiry alerts sent (to the bus)
        alerts_owed?        string set, the events the bus took and the alert topic did not (JSON), sent again

Writes:

* :meth:`save` (the daily check): ``PutItem`` conditioned on ``marked_at`` and ``rotated_at`` being what the
  check read -- a credential error or a rotation recorded meanwhile (newer evidence) is not overwritten; the
  service reads again and decides again.
* :meth:`mark_invalid` (the pull statistics and the warm worker, at once): one ``UpdateItem`` conditioned on the
  evidence's own time (the cache action's event time, the warm's end) being newer than all the item knows --
  the last mark, the last check (``checked_at``) and the last rotation (``rotated_at``): a failure redelivered
  or finished late, from before a check passed or a rotation replaced the token, marks nothing. Returns the old
  item's ``state`` / ``announced`` to tell whether users must hear of it; ``announced``, ``alerts_sent`` stay
  as they were.
* :meth:`record_rotated` (the rotation function, after a promotion validated upstream and in ECR): one
  ``UpdateItem`` of the state, ``checked_at`` and ``rotated_at``, clearing the mark, unless a credential error
  newer than the promotion is recorded; returns the old item (``announced``) like :meth:`mark_invalid`.
* :meth:`record_sent` (the check, when a mark wrote over the health between its two writes): ``ADD`` of what
  was delivered to ``alerts_sent`` / ``alerts_owed`` (then ``DELETE`` of the owed ones sent) -- set
  operations, whatever else the item holds now, so that nothing delivered is forgotten and sent again.
* :meth:`record_announced`: ``UpdateItem`` of ``announced`` while ``state`` is still that state.

``HEALTH#`` is not a desired item's prefix: the reconciler's stream filter lets none of these writes trigger a
reconcile. No attribute holds a secret value.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import iso, parse_iso, query_partition, s
from ecrcache.models.credential_health import CredentialHealth, HealthState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["PARTITION", "DynamoDbCredentialHealthStore"]

PARTITION: Final = "HEALTH#credential"
_CONFLICT: Final = "ConditionalCheckFailedException"


def _key(credential: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": s(PARTITION), "sk": s(credential)}


def _item(health: CredentialHealth) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        **_key(health.credential),
        "credential": s(health.credential),
        "state": s(health.state.value),
    }
    for name in ("message", "evidence"):
        if value := getattr(health, name):
            item[name] = s(value)
    for name in ("checked_at", "marked_at", "rotated_at"):
        if (moment := getattr(health, name)) is not None:
            item[name] = s(iso(moment))
    if health.expires_at is not None:
        item["expires_at_date"] = s(health.expires_at.isoformat())
    if health.announced is not None:
        item["announced"] = s(health.announced.value)
    for name in ("alerts_sent", "alerts_owed"):
        if values := getattr(health, name):
            item[name] = {"SS": sorted(values)}
    return item


def _health(item: dict[str, Any]) -> CredentialHealth:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return str(value) if value is not None else None

    checked, marked, announced = text("checked_at"), text("marked_at"), text("announced")
    expires, rotated = text("expires_at_date"), text("rotated_at")
    return CredentialHealth(
        credential=str(item["sk"]["S"]),
        state=HealthState(text("state") or HealthState.UNKNOWN.value),
        checked_at=parse_iso(checked) if checked else None,
        message=text("message"),
        evidence=text("evidence"),
        expires_at=date.fromisoformat(expires) if expires else None,
        marked_at=parse_iso(marked) if marked else None,
        rotated_at=parse_iso(rotated) if rotated else None,
        announced=HealthState(announced) if announced else None,
        alerts_sent=frozenset(item.get("alerts_sent", {}).get("SS", ())),
        alerts_owed=frozenset(item.get("alerts_owed", {}).get("SS", ())),
    )


def _unchanged_since(seen: CredentialHealth | None) -> tuple[str, dict[str, AttributeValueTypeDef]]:
    """The condition that no mark and no rotation was recorded since ``seen`` was read."""
    if seen is None:
        return "attribute_not_exists(pk)", {}
    parts: list[str] = []
    values: dict[str, AttributeValueTypeDef] = {}
    for name in ("marked_at", "rotated_at"):
        moment = getattr(seen, name)
        if moment is None:
            parts.append(f"attribute_not_exists({name})")
        else:
            parts.append(f"{name} = :{name}")
            values[f":{name}"] = s(iso(moment))
    return " AND ".join(parts), values


class DynamoDbCredentialHealthStore:
    """Implements :class:`ecrcache.ports.CredentialHealthStore` on the stack's state table."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()

    def all_health(self) -> dict[str, CredentialHealth]:
        items = query_partition(self.client, self.table_name, PARTITION)
        return {health.credential: health for health in map(_health, items)}

    def health(self, credential: str) -> CredentialHealth | None:
        try:
            found = self.client.get_item(TableName=self.table_name, Key=_key(credential), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        item = found.get("Item")
        return _health(dict(item)) if item else None

    def save(self, health: CredentialHealth, *, seen: CredentialHealth | None) -> bool:
        condition, values = _unchanged_since(seen)
        try:
            if values:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=_item(health),
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            else:
                self.client.put_item(TableName=self.table_name, Item=_item(health), ConditionExpression=condition)
        except ClientError as exc:
            if error_code(exc) == _CONFLICT:
                return False
            raise classify(exc, "DynamoDB PutItem (credential health)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB PutItem (credential health)") from exc
        return True

    def mark_invalid(self, health: CredentialHealth) -> CredentialHealth | None:
        assert health.marked_at is not None
        at = s(iso(health.marked_at))
        try:
            old = self.client.update_item(
                TableName=self.table_name,
                Key=_key(health.credential),
                UpdateExpression=(
                    "SET credential = :credential, #state = :state, checked_at = :at, marked_at = :at, "
                    "message = :message, evidence = :evidence"
                ),
                # Only evidence newer than all the item knows: the last mark, check (a mark sets checked_at too)
                # and rotation. A late or redelivered failure from before a passing check or a rotation is about
                # a token since found working or replaced, and marks nothing.
                ConditionExpression=(
                    "(attribute_not_exists(marked_at) OR marked_at < :at) "
                    "AND (attribute_not_exists(checked_at) OR checked_at < :at) "
                    "AND (attribute_not_exists(rotated_at) OR rotated_at < :at)"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":credential": s(health.credential),
                    ":state": s(HealthState.INVALID.value),
                    ":at": at,
                    ":message": s(health.message or ""),
                    ":evidence": s(health.evidence or ""),
                },
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as exc:
            if error_code(exc) == _CONFLICT:
                return None  # newer evidence is recorded (a mark, a check, a rotation): it was (or is being) announced
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc
        return _health(dict(old)) if old else CredentialHealth(credential=health.credential)

    def record_rotated(self, health: CredentialHealth) -> CredentialHealth | None:
        assert health.rotated_at is not None
        at = s(iso(health.rotated_at))
        try:
            old = self.client.update_item(
                TableName=self.table_name,
                Key=_key(health.credential),
                UpdateExpression=(
                    "SET credential = :credential, #state = :state, checked_at = :at, rotated_at = :at, "
                    "message = :message REMOVE marked_at, evidence"
                ),
                # A credential error seen after the promotion (newer evidence, about the new token) stands.
                ConditionExpression="attribute_not_exists(marked_at) OR marked_at < :at",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":credential": s(health.credential),
                    ":state": s(health.state.value),
                    ":at": at,
                    ":message": s(health.message or ""),
                },
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as exc:
            if error_code(exc) == _CONFLICT:
                return None
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc
        return _health(dict(old)) if old else CredentialHealth(credential=health.credential)

    def record_sent(self, credential: str, *, sent: frozenset[str], owed: frozenset[str], done: frozenset[str]) -> None:
        added = {name: values for name, values in (("alerts_sent", sent), ("alerts_owed", owed)) if values}
        if added:
            expression = "ADD " + ", ".join(f"{name} :{name}" for name in added)
            self._sets(credential, expression, {f":{name}": values for name, values in added.items()})
        if done:  # not in the same expression: an attribute is named once per update expression
            self._sets(credential, "DELETE alerts_owed :done", {":done": done})

    def _sets(self, credential: str, expression: str, values: dict[str, frozenset[str]]) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_key(credential),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={name: {"SS": sorted(v)} for name, v in values.items()},
            )
        except ClientError as exc:
            if error_code(exc) == _CONFLICT:
                return  # the credential's health was deleted meanwhile (the credential with it)
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc

    def record_announced(self, credential: str, state: HealthState) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_key(credential),
                UpdateExpression="SET announced = :state",
                ConditionExpression="#state = :state",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":state": s(state.value)},
            )
        except ClientError as exc:
            if error_code(exc) == _CONFLICT:
                return  # the state moved on since: its own writer announces it
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem (credential health)") from exc

    def delete_health(self, credential: str) -> None:
        try:
            self.client.delete_item(TableName=self.table_name, Key=_key(credential))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB DeleteItem (credential health)") from exc

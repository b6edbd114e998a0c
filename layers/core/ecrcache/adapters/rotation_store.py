"""What the rotation function records of each rotation, in the state table (a later ``GET
/v1/credentials/{name}/rotations/{id}`` shows it).

One item per rotation of a credential, keyed by Secrets Manager's ``ClientRequestToken`` (the new version's
id, which the API will hand out as the rotation's id)::

    pk = "ROTATION#<credential>"   sk = <ClientRequestToken>
        credential, rotation_id, secret_arn, started_at, updated_at
        requested_by?                                           the caller who started it through the API
        createSecret | setSecret | testSecret | finishSecret    (one map per step run: status "started" |
                                                                 "succeeded" | "failed", at, message?)
        promoted_at?                                            finishSecret moved AWSCURRENT to this version
        outcome?, message?, finished_at?                        "promoted" | "refused" | "rolled_back" | "failed"
                                                                (a message without an outcome: a step failed in a
                                                                way Secrets Manager's retries may clear)
        expires_at                                              TTL: the table's TTL attribute deletes it after
                                                                :data:`RETENTION` (90 days)

Each write is one ``UpdateItem`` that creates the item if needed (``started_at`` kept from the first), so a
step retried by Secrets Manager overwrites its own map with the latest attempt. An outcome a guard refusal
would write (a retry arriving after the rotation ended) never replaces a recorded one
(``attribute_not_exists(outcome)``). A partition per credential lists its rotations with one ``Query``
(:meth:`DynamoDbRotationStore.recent`: newest first by ``started_at``, the sort key being the rotation id).

``ROTATION#`` is not a desired item's prefix: the reconciler's stream filter (``DESIRED#``, ``REQUEST#``)
lets none of these writes trigger a reconcile. No attribute holds a secret value; every time is passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import iso, n, parse_iso, s
from ecrcache.models.rotation import (
    RotationOutcome,
    RotationRecord,
    RotationStep,
    StepRecord,
    StepStatus,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from ecrcache.models.rotation import (
        RotationKey,
    )

__all__ = ["RETENTION", "DynamoDbRotationStore"]

RETENTION: Final = timedelta(days=90)
MAX_MESSAGE: Final = 4000
"""Messages name rules, Regions and upstream answers: cut to this many characters (an item is at most 400 KB)."""


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _item_key(credential: str, rotation_id: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": s(f"ROTATION#{credential}"), "sk": s(rotation_id)}


class DynamoDbRotationStore:
    """Implements :class:`ecrcache.ports.RotationStore` on the stack's state table."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()

    def record_step(
        self, key: RotationKey, step: RotationStep, status: StepStatus, *, at: datetime, message: str | None = None
    ) -> None:
        entry: dict[str, AttributeValueTypeDef] = {"status": s(status.value), "at": s(iso(at))}
        if message:
            entry["message"] = s(_cut(message))
        self._update(key, at, "#step = :entry", {":entry": {"M": entry}}, names={"#step": step.value})

    def record_start(self, key: RotationKey, *, requested_by: str, at: datetime) -> None:
        """The API started the rotation (before ``RotateSecret``): who asked, and when."""
        self._update(key, at, "requested_by = :by", {":by": s(_cut(requested_by))})

    def record_promoted(self, key: RotationKey, *, at: datetime) -> None:
        self._update(key, at, "promoted_at = :at", {":at": s(iso(at))})

    def record_outcome(
        self, key: RotationKey, outcome: RotationOutcome, *, at: datetime, message: str, keep_recorded: bool = False
    ) -> bool:
        """The rotation's end; ``keep_recorded``: only if none is recorded yet. ``False`` when one was kept."""
        values = {":o": s(outcome.value), ":m": s(_cut(message)), ":at": s(iso(at))}
        condition = "attribute_not_exists(outcome)" if keep_recorded else None
        return self._update(key, at, "outcome = :o, message = :m, finished_at = :at", values, condition=condition)

    def record_retrying(self, key: RotationKey, *, at: datetime, message: str) -> bool:
        """A step failed in a way that should clear by itself: the message says so, no outcome is written (the
        rotation is still in progress). ``False`` when the rotation already has an outcome (kept as it is)."""
        values = {":m": s(_cut(message))}
        return self._update(key, at, "message = :m", values, condition="attribute_not_exists(outcome)")

    def _update(
        self,
        key: RotationKey,
        at: datetime,
        expression: str,
        values: dict[str, AttributeValueTypeDef],
        *,
        names: dict[str, str] | None = None,
        condition: str | None = None,
    ) -> bool:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": _item_key(key.credential, key.rotation_id),
            "UpdateExpression": (
                f"SET {expression}, credential = :credential, rotation_id = :id, secret_arn = :arn, "
                "started_at = if_not_exists(started_at, :now), updated_at = :now, expires_at = :expires"
            ),
            "ExpressionAttributeValues": {
                **values,
                ":credential": s(key.credential),
                ":id": s(key.rotation_id),
                ":arn": s(key.secret_arn),
                ":now": s(iso(at)),
                ":expires": n(int((at + RETENTION).timestamp())),
            },
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if condition:
            request["ConditionExpression"] = condition
        try:
            self.client.update_item(**request)
        except ClientError as exc:
            if condition and error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "DynamoDB UpdateItem (rotation record)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem (rotation record)") from exc
        return True

    def get(self, credential: str, rotation_id: str) -> RotationRecord | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=_item_key(credential, rotation_id), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem (rotation record)") from exc
        return None if not item else _record(item)

    def recent(self, credential: str, *, limit: int) -> list[RotationRecord]:
        """The credential's rotations, newest first (by ``started_at``), at most ``limit`` of them. The partition
        holds one credential's rotations of the last :data:`RETENTION` (the TTL removes older ones)."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": s(f"ROTATION#{credential}")},
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self.client.query(**request)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query (rotation records)") from exc
        records = sorted((_record(item) for item in items), key=lambda r: (r.started_at, r.rotation_id), reverse=True)
        return records[:limit]


def _record(item: dict[str, Any]) -> RotationRecord:
    def text(name: str) -> str | None:
        return str(item[name]["S"]) if name in item else None

    def when(name: str) -> datetime | None:
        value = text(name)
        return parse_iso(value) if value else None

    steps = {
        step: StepRecord(
            status=StepStatus(entry["status"]["S"]),
            at=parse_iso(entry["at"]["S"]),
            message=entry["message"]["S"] if "message" in entry else None,
        )
        for step in RotationStep
        if (entry := item.get(step.value, {}).get("M")) is not None
    }
    outcome = text("outcome")
    return RotationRecord(
        credential=item["credential"]["S"],
        rotation_id=item["rotation_id"]["S"],
        secret_arn=item["secret_arn"]["S"],
        started_at=parse_iso(item["started_at"]["S"]),
        updated_at=parse_iso(item["updated_at"]["S"]),
        requested_by=text("requested_by"),
        steps=steps,
        promoted_at=when("promoted_at"),
        outcome=RotationOutcome(outcome) if outcome else None,
        message=text("message"),
        finished_at=when("finished_at"),
    )

"""`/v1/credentials/{name}/rotations`: rotate a credential's token lock-out-proof, and follow the rotation.

The token is write-only; the rotation runs in the rotation function (Secrets Manager calls it once per step),
so the POST answers 202 with the rotation as recorded and a ``Location`` to follow it at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, Field

from ecrcache.http.common import caller_arn, json_response, resource_name
from ecrcache.http.errors import responses
from ecrcache.http.routes.credentials import NameParam
from ecrcache.models.credential import RotationRequest
from ecrcache.models.rotation import RotationRecord, StepStatus
from ecrcache.services.rotations import LIST_LIMIT, RotationsService

RotationIdParam = Annotated[
    str,
    Path(description="A rotation id (`POST .../rotations` answers it).", max_length=64, pattern=r"^[A-Za-z0-9-]+$"),
]
RotationState = Literal["in_progress", "promoted", "refused", "rolled_back", "failed"]


class RotationStepResource(BaseModel):
    status: StepStatus = Field(description="started, succeeded or failed (the latest attempt of the step).")
    at: datetime
    message: str | None = None


class RotationResource(BaseModel):
    """One rotation of a credential, step by step."""

    credential: str
    rotation_id: str = Field(description="Secrets Manager's ClientRequestToken: the new version's id.")
    state: RotationState = Field(
        description=(
            "in_progress until it ends; promoted: the new token is AWSCURRENT and every rule using it validated; "
            "refused: the upstream did not accept it (nothing changed); rolled_back: ECR refused it after "
            "promotion and the previous token is current again; failed: anything else (the message says what "
            "is current)."
        )
    )
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    promoted_at: datetime | None = None
    requested_by: str | None = Field(default=None, description="Who started it (null: Secrets Manager's schedule).")
    message: str | None = None
    steps: dict[str, RotationStepResource] = Field(
        default_factory=dict, description="createSecret, setSecret, testSecret, finishSecret: each step run so far."
    )

    @classmethod
    def of(cls, record: RotationRecord) -> Self:
        return cls(
            credential=record.credential,
            rotation_id=record.rotation_id,
            state="in_progress" if record.outcome is None else record.outcome.value,
            started_at=record.started_at,
            updated_at=record.updated_at,
            finished_at=record.finished_at,
            promoted_at=record.promoted_at,
            requested_by=record.requested_by,
            message=record.message,
            steps={
                step.value: RotationStepResource(status=entry.status, at=entry.at, message=entry.message)
                for step, entry in record.steps.items()
            },
        )


class RotationList(BaseModel):
    items: list[RotationResource] = Field(description="Newest first.")


def register(app: APIGatewayRestResolver, rotations: RotationsService) -> None:
    @app.post(
        "/v1/credentials/<name>/rotations",
        tags=["credentials"],
        summary="Rotate the token (lock-out-proof)",
        description=(
            "Stages the new token (write-only) and starts Secrets Manager's rotation: the rotation function tests "
            "it against the upstream, makes it AWSCURRENT, validates every pull-through cache rule using it, and "
            "rolls back if ECR refuses it. Follow it at the `Location`. 409 while another rotation is in progress "
            "or before the credential has a secret."
        ),
        status_code=202,
        responses=responses(RotationResource, status=202, description="Started"),
    )
    def post_rotation(
        name: NameParam,
        request: Annotated[RotationRequest, Body(description="The new token (write-only), optionally a username.")],
    ) -> Response[RotationResource]:
        checked = resource_name(name)
        record = rotations.start(checked, request, actor=caller_arn(app))
        return Response(
            status_code=202,
            content_type=content_types.APPLICATION_JSON,
            body=RotationResource.of(record),
            headers={"Location": f"/v1/credentials/{checked}/rotations/{record.rotation_id}"},
        )

    @app.get(
        "/v1/credentials/<name>/rotations",
        tags=["credentials"],
        summary="A credential's rotations, newest first",
        responses=responses(RotationList),
    )
    def list_rotations(
        name: NameParam,
        limit: Annotated[int, Query(ge=1, le=100, description="How many (the newest).")] = LIST_LIMIT,
    ) -> RotationList:
        return RotationList(items=[RotationResource.of(r) for r in rotations.recent(resource_name(name), limit=limit)])

    @app.get(
        "/v1/credentials/<name>/rotations/<rotation_id>",
        tags=["credentials"],
        summary="One rotation, step by step",
        responses=responses(RotationResource),
    )
    def get_rotation(name: NameParam, rotation_id: RotationIdParam) -> Response[RotationResource]:
        return json_response(RotationResource.of(rotations.get(resource_name(name), rotation_id)))

"""`/v1/warm-sets`: images to pull through the cache ahead of need (desired state), and their runs."""

from __future__ import annotations

from typing import Annotated, Self

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import BaseModel, Field

from ecrcache.http.common import caller_arn, json_response, precondition, resource_name
from ecrcache.http.errors import responses
from ecrcache.http.routes.rules import IfMatch, IfNoneMatch, UndocumentedIfNoneMatch
from ecrcache.http.schemas import WarmSetList, WarmSetResource
from ecrcache.models.records import ResourceKind
from ecrcache.models.warm_run import ImageOutcome, RunStatus, WarmRun
from ecrcache.models.warm_set import WarmSetSpec
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.warm_runs import WarmRunsService, WarmSetRuns

NameParam = Annotated[str, Path(description="Warm-set name.", max_length=100)]
RunIdParam = Annotated[
    str, Path(description="A run id (`POST .../runs` answers it).", max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
]


class WarmRunAccepted(BaseModel):
    run_id: str
    warm_set: str
    status: RunStatus = Field(description="Always queued: the warm planner picks the run up within seconds.")


IMAGES_DESCRIPTION = (
    "The run's images with an outcome: warmed, fresh (verified within 24 h), skipped (budget or rate limit) or "
    "failed, with its failure class, digest, platforms verified and upstream requests. At most 500: failed "
    "first, then skipped, then the rest (`images_truncated` says whether some were left out; the run's "
    "`counts` are exact)."
)


class WarmSetStatus(BaseModel):
    warm_set: str
    run: WarmRun | None = Field(description="The set's last run (scheduled or requested); null before any.")
    pending: int = Field(description="Images of the run that have no outcome yet.")
    images: list[ImageOutcome] = Field(description=IMAGES_DESCRIPTION)
    images_total: int = Field(description="Images of the run that have an outcome (listed or not).")
    images_truncated: bool = Field(description="Whether `images` leaves some of them out (more than 500).")

    @classmethod
    def of(cls, found: WarmSetRuns) -> Self:
        return cls(
            warm_set=found.warm_set,
            run=found.run,
            pending=found.pending,
            images=list(found.images),
            images_total=found.images_total,
            images_truncated=found.images_truncated,
        )


class WarmRunStatus(WarmSetStatus):
    run: WarmRun = Field(description="The run, whatever runs of the set started after it.")


def register(app: APIGatewayRestResolver, service: DesiredStateService, runs: WarmRunsService) -> None:
    _register_desired(app, service)
    _register_runs(app, runs)


def _register_runs(app: APIGatewayRestResolver, runs: WarmRunsService) -> None:
    @app.post(
        "/v1/warm-sets/<name>/runs",
        tags=["warm-sets"],
        summary="Warm now",
        description=(
            "Queues a run of the warm set outside its schedule; follow it at `/v1/warm-sets/{name}/runs/{run_id}`. "
            "The run warms within the set's budget and the upstream's rate limit like a scheduled one, and skips "
            "images verified in the last 24 hours."
        ),
        status_code=202,
        responses=responses(WarmRunAccepted, status=202, description="Queued"),
    )
    def post_warm_run(name: NameParam) -> Response[WarmRunAccepted]:
        run = runs.request(resource_name(name), actor=caller_arn(app))
        return json_response(WarmRunAccepted(run_id=run.run_id, warm_set=run.warm_set, status=run.status), status=202)

    @app.get(
        "/v1/warm-sets/<name>/status",
        tags=["warm-sets"],
        summary="The last run of a warm set, image by image",
        responses=responses(WarmSetStatus),
    )
    def get_warm_set_status(name: NameParam) -> WarmSetStatus:
        return WarmSetStatus.of(runs.status(resource_name(name)))

    @app.get(
        "/v1/warm-sets/<name>/runs/<run_id>",
        tags=["warm-sets"],
        summary="One run of a warm set, image by image",
        description=(
            "The run `POST /v1/warm-sets/{name}/runs` answered (or a scheduled one), even after later runs of "
            "the set started: follow a run to its end here. A run whose images do not all get an outcome "
            "within a day and an hour is settled: the missing images fail as lost, and a run never planned fails."
        ),
        responses=responses(WarmRunStatus),
    )
    def get_warm_run(name: NameParam, run_id: RunIdParam) -> WarmRunStatus:
        found = runs.run(resource_name(name), run_id)
        return WarmRunStatus.of(found)


def _register_desired(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.get("/v1/warm-sets", tags=["warm-sets"], summary="List warm sets", responses=responses(WarmSetList))
    def list_warm_sets() -> WarmSetList:
        return WarmSetList(items=[WarmSetResource.of(w) for w in service.list_all(ResourceKind.WARM_SET)])

    @app.get("/v1/warm-sets/<name>", tags=["warm-sets"], summary="Get a warm set", responses=responses(WarmSetResource))
    def get_warm_set(name: NameParam) -> Response[WarmSetResource]:
        stored = service.get(ResourceKind.WARM_SET, resource_name(name))
        return json_response(WarmSetResource.of(stored), version=stored.version)

    @app.put(
        "/v1/warm-sets/<name>",
        tags=["warm-sets"],
        summary="Create or replace a warm set (its rule must exist)",
        responses=responses(WarmSetResource, description="Replaced", also={201: WarmSetResource}),
    )
    def put_warm_set(
        name: NameParam,
        spec: Annotated[WarmSetSpec, Body(description="The desired warm set.")],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[WarmSetResource]:
        result = service.put_warm_set(
            resource_name(name), spec, actor=caller_arn(app), precondition=precondition(if_match, if_none_match)
        )
        body = WarmSetResource.of(result.resource)
        return json_response(body, status=201 if result.created else 200, version=result.resource.version)

    @app.delete(
        "/v1/warm-sets/<name>",
        tags=["warm-sets"],
        summary="Delete a warm set",
        responses=responses(status=204, description="Deleted"),
    )
    def delete_warm_set(
        name: NameParam, if_match: IfMatch = None, if_none_match: UndocumentedIfNoneMatch = None
    ) -> Response[None]:
        cond = precondition(if_match, if_none_match)
        service.delete(ResourceKind.WARM_SET, resource_name(name), actor=caller_arn(app), precondition=cond)
        return Response(status_code=204)

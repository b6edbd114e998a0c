"""`/v1/plan`, `/v1/reconcile`, `/v1/status`, `/v1/runs/{id}`, `/v1/rules/{prefix}/status`: the controller at work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ecrcache.engine.deadline import Deadline
from ecrcache.engine.plan import Plan
from ecrcache.errors import NotFoundError, invalid
from ecrcache.http.common import caller_arn, json_response, path_name
from ecrcache.http.errors import responses
from ecrcache.http.routes.rules import prefix_param
from ecrcache.models.common import AwsRegion, check_region_in_partition
from ecrcache.models.forwarder import ForwarderStatusRecord
from ecrcache.models.status import ReconcileRun, RuleStatusRecord, RunStatus, RunTrigger
from ecrcache.models.warm_run import WarmRun
from ecrcache.ports import StatusStore
from ecrcache.services.importer import ImportService
from ecrcache.services.plan import PlanService, Scope
from ecrcache.services.warm_runs import WarmRunsService


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deep: StrictBool = Field(
        default=False,
        description="Read every cached repository's settings (slower) instead of trusting what was last applied.",
    )


class ReconcileAccepted(BaseModel):
    run_id: str
    status: RunStatus
    location: str = Field(description="Where to follow the run.")


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: list[AwsRegion] = Field(
        default_factory=list, max_length=20, description="Regions to read; empty means the stack's Region."
    )


class ImportedRule(BaseModel):
    prefix: str
    region: str
    imported: bool
    reason: str
    spec: dict[str, Any] | None = None


class ImportResponse(BaseModel):
    dry_run: bool
    rules: list[ImportedRule]
    revision: int | None = Field(description="Desired-state revision after the import (None when nothing changed).")


class WarmSetLastRun(BaseModel):
    warm_set: str
    run: WarmRun | None = Field(description="The set's last warm run; null before any.")


class StatusResponse(BaseModel):
    rules: list[RuleStatusRecord] = Field(description="Conditions per rule and Region.")
    runs: list[ReconcileRun] = Field(description="The most recent reconcile runs, newest first.")
    warm_sets: list[WarmSetLastRun] = Field(
        default_factory=list, description="Every warm set with its last run (per image: /v1/warm-sets/{name}/status)."
    )
    forwarders: list[ForwarderStatusRecord] = Field(
        default_factory=list,
        description=(
            "The event forwarder of each other Region rules name (or named, until it is removed): Synced, or why not."
        ),
    )


class RuleStatusResponse(BaseModel):
    prefix: str
    regions: list[RuleStatusRecord]


def register(
    app: APIGatewayRestResolver,
    *,
    planner: PlanService,
    importer: ImportService,
    status: StatusStore,
    warm: WarmRunsService,
    clock: Callable[[], datetime],
) -> None:
    _register_plan(app, planner)
    _register_reconcile(app, status, clock)
    _register_import(app, importer)
    _register_runs_and_status(app, status, warm)


def _register_plan(app: APIGatewayRestResolver, planner: PlanService) -> None:
    @app.get(
        "/v1/plan",
        tags=["controller"],
        summary="What the reconciler would do now",
        description=(
            "The planning engine run read-only against ECR: every action with its reason, plus the unmanaged "
            "rules and templates found and the rules that are blocked. An empty `actions` list means converged."
        ),
        responses=responses(Plan),
    )
    def get_plan(
        deep: Annotated[
            bool,
            Query(
                description=(
                    "Read every cached repository's settings. Bounded by the request's time budget: when it runs "
                    "out, the answer has `complete: false` and a note per Region (never a 504)."
                )
            ),
        ] = False,
        region: Annotated[
            str | None,
            Query(description="Only this Region (a Region with ECR in the stack's partition).", max_length=32),
        ] = None,
    ) -> Plan:
        regions = frozenset({_plan_region(region, planner.stack_region)}) if region else None
        stop = deep_read_budget(app.lambda_context) if deep else None
        return planner.plan(Scope(regions=regions, deep=deep), stop=stop)


DEEP_READ_MARGIN_MS: Final = 10_000
"""Time a deep plan keeps in hand when it stops starting repository reads: the reads under way, the planning
and the response, and the function's cold start, which API Gateway's 29-second integration timeout counts but
the Lambda's remaining time does not (the function's own timeout is 29 s)."""

DEEP_READ_HARD_MARGIN_MS: Final = 5_000
"""Time left when the reads still under way are abandoned (listed as not read): the planning, the response and
the cold start. Between the two margins a read started before the first may finish (a few calls normally; a
throttled one under botocore's retries would not)."""


def deep_read_budget(context: Any) -> Deadline | None:
    """The :class:`Deadline` of a deep plan: no repository read starts with less than :data:`DEEP_READ_MARGIN_MS`
    left of the invocation, and the reads under way are abandoned at :data:`DEEP_READ_HARD_MARGIN_MS` (``None``
    without a Lambda context, e.g. a resolver called outside Lambda: no budget)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return Deadline(
        lambda: (float(remaining()) - DEEP_READ_MARGIN_MS) / 1000,
        grace=(DEEP_READ_MARGIN_MS - DEEP_READ_HARD_MARGIN_MS) / 1000,
    )


def _plan_region(region: str, stack_region: str) -> str:
    """The ``region`` query parameter, checked like every Region the API takes (422 naming ``region``)."""
    try:
        return check_region_in_partition(region, stack_region=stack_region)
    except ValueError as exc:
        raise invalid("region", str(exc)) from None


def _register_reconcile(app: APIGatewayRestResolver, status: StatusStore, clock: Callable[[], datetime]) -> None:
    @app.post(
        "/v1/reconcile",
        tags=["controller"],
        summary="Reconcile now",
        description="Queues a reconcile of every rule; follow it at `/v1/runs/{run_id}`.",
        status_code=202,
        responses=responses(ReconcileAccepted, status=202, description="Queued"),
    )
    def post_reconcile(
        request: Annotated[ReconcileRequest | None, Body(description='Optional: `{"deep": true}`.')] = None,
    ) -> Response[ReconcileAccepted]:
        run = ReconcileRun(
            run_id=str(uuid.uuid4()), trigger=RunTrigger.API, status=RunStatus.QUEUED, started_at=clock()
        )
        status.request_reconcile(run, deep=bool(request and request.deep), requested_by=caller_arn(app))
        body = ReconcileAccepted(run_id=run.run_id, status=run.status, location=f"/v1/runs/{run.run_id}")
        return json_response(body, status=202)


def _register_import(app: APIGatewayRestResolver, importer: ImportService) -> None:
    @app.post(
        "/v1/import",
        tags=["controller"],
        summary="Adopt existing ECR rules into the desired state",
        description=(
            "Reads the pull-through cache rules (and their creation templates) already in ECR and adds each one "
            "that is not desired yet as a desired rule with `deletion_policy: retain` and `adopt: true` (without "
            "it a rule ecrcache did not create is Blocked). The next reconcile adopts them without changing ECR. "
            "`dryRun=true` only reports what would be imported."
        ),
        responses=responses(ImportResponse),
    )
    def post_import(
        request: Annotated[ImportRequest | None, Body(description="Optional: Regions to read.")] = None,
        dryRun: Annotated[bool, Query(description="Only report what would be imported.")] = False,
    ) -> ImportResponse:
        result = importer.run(request.regions if request else [], actor=caller_arn(app), dry_run=dryRun)
        return ImportResponse(
            dry_run=result.dry_run,
            rules=[
                ImportedRule(prefix=o.prefix, region=o.region, imported=o.imported, reason=o.reason, spec=o.spec)
                for o in result.outcomes
            ],
            revision=result.apply.revision if result.apply and not result.dry_run else None,
        )


def _register_runs_and_status(app: APIGatewayRestResolver, status: StatusStore, warm: WarmRunsService) -> None:
    @app.get("/v1/runs/<run_id>", tags=["controller"], summary="One reconcile run", responses=responses(ReconcileRun))
    def get_run(run_id: Annotated[str, Path(max_length=128)]) -> ReconcileRun:
        found = status.get_run(path_name(run_id))
        if found is None:
            raise NotFoundError(f"no reconcile run {path_name(run_id)!r} (runs are kept 30 days)")
        return found

    @app.get(
        "/v1/status",
        tags=["controller"],
        summary="Conditions of every rule, the latest runs and every warm set's last run",
        responses=responses(StatusResponse),
    )
    def get_status(
        runs: Annotated[int, Query(ge=0, le=50, description="How many recent runs to include.")] = 10,
    ) -> StatusResponse:
        rules, forwarders = status.status_overview()  # one read of the Regions' items for both
        return StatusResponse(
            rules=rules,
            runs=status.latest_runs(runs) if runs else [],
            warm_sets=[WarmSetLastRun(warm_set=w.warm_set, run=w.run) for w in warm.latest()],
            forwarders=forwarders,
        )

    @app.get(
        "/v1/rules/<prefix>/status",
        tags=["rules"],
        summary="Conditions of one rule",
        responses=responses(RuleStatusResponse),
    )
    def get_rule_status(prefix: Annotated[str, Path(max_length=100)]) -> RuleStatusResponse:
        name = prefix_param(prefix)  # the rule's own routes' check and normalisation
        records = [r for r in status.all_status() if r.prefix == name]
        if not records:
            raise NotFoundError(f"no status for rule {name!r} yet (it has not been reconciled)")
        return RuleStatusResponse(prefix=name, regions=records)


__all__ = ["DEEP_READ_HARD_MARGIN_MS", "DEEP_READ_MARGIN_MS", "deep_read_budget", "register"]

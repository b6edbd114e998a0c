"""`/v1/desired-state`: the whole desired state as one document, for GitOps.

`GET` exports it (JSON, or YAML with `?format=yaml` / `Accept: application/yaml`); `PUT` validates
the whole document first, then writes all of it or nothing; `dryRun=true` returns the change list
without writing; `prune=true` deletes what the document omits (with a document that declares
nothing, only together with `allowEmpty=true`). A document without `version` is refused. Both
answers list the rules the document creates or changes that the plan will show Blocked (ECR holds a
rule or template with the prefix that ecrcache does not own), so a dry run, an apply and the plan say
the same thing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from ecrcache.http.common import caller_arn, etag, if_match_revision, json_response, wants_yaml, yaml_response
from ecrcache.http.errors import responses
from ecrcache.http.schemas import ApplyResponse, ChangeOut
from ecrcache.models.desired_state import DesiredStateDocument
from ecrcache.models.records import SECTIONS, ResourceKind
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.plan import PlanService


def register(app: APIGatewayRestResolver, service: DesiredStateService, planner: PlanService) -> None:
    _register_export(app, service)
    _register_apply(app, service, planner)


def _register_export(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.get(
        "/v1/desired-state",
        tags=["desired-state"],
        summary="Export the whole desired state",
        description="The document `PUT /v1/desired-state` takes (credential tokens are never included).",
        responses={
            **responses(),
            200: {
                "description": "The document; its ETag is the desired-state revision",
                "content": {
                    "application/json": {"model": DesiredStateDocument},
                    "application/yaml": {"model": DesiredStateDocument},
                },
            },
        },
    )
    def export_desired_state(
        format: Annotated[Literal["json", "yaml"] | None, Query(description="Overrides the Accept header.")] = None,
    ) -> Response[Any]:
        specs, revision = service.export()
        document: dict[str, Any] = {"version": 1}
        for kind, section in SECTIONS.items():
            document[section] = {name: specs[kind][name] for name in sorted(specs[kind])}
        if wants_yaml(app, format):
            return yaml_response(document, etag_value=etag(revision))
        return json_response(document, version=revision)


def _register_apply(app: APIGatewayRestResolver, service: DesiredStateService, planner: PlanService) -> None:
    @app.put(
        "/v1/desired-state",
        tags=["desired-state"],
        summary="Apply a whole desired-state document",
        description=(
            "Validates every resource and reference first; then writes all changes atomically (or, for very "
            "large documents, under a lease with undo on failure). Send YAML with `Content-Type: application/yaml`."
        ),
        responses=responses(ApplyResponse),
    )
    def apply_desired_state(
        document: Annotated[DesiredStateDocument, Body(description="The desired state.")],
        dryRun: Annotated[bool, Query(description="Only compute the changes.")] = False,
        prune: Annotated[bool, Query(description="Delete resources the document omits.")] = False,
        allowEmpty: Annotated[
            bool,
            Query(
                description=(
                    "Allow `prune=true` with a document that declares no rules, credentials or warm sets "
                    "(it deletes everything); without it such a request is refused with 422."
                )
            ),
        ] = False,
        if_match: Annotated[
            str | None, Header(alias="If-Match", description="Revision (the export's ETag) the document was based on.")
        ] = None,
    ) -> ApplyResponse:
        result = service.apply_document(
            document,
            actor=caller_arn(app),
            prune=prune,
            dry_run=dryRun,
            if_match_revision=if_match_revision(if_match),
            allow_empty=allowEmpty,
        )
        touched = {c.name: document.rules[c.name] for c in result.changes if c.kind is ResourceKind.RULE and c.after}
        ownership = planner.ownership_check(touched)
        return ApplyResponse(
            dry_run=result.dry_run,
            revision=result.revision,
            changes=[
                ChangeOut(
                    kind=c.kind,
                    name=c.name,
                    action=c.action,
                    fields=list(c.fields),
                    secret_changed=c.secret_changed,
                )
                for c in result.changes
            ],
            blocked=ownership.blocked,
            warnings=ownership.warnings,
        )

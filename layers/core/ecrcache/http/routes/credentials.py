"""`/v1/credentials`: upstream credentials. The token is write-only: accepted, never returned."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from ecrcache.http.common import caller_arn, json_response, precondition, resource_name
from ecrcache.http.errors import responses
from ecrcache.http.routes.rules import IfMatch, IfNoneMatch, UndocumentedIfNoneMatch
from ecrcache.http.schemas import CredentialList, CredentialResource
from ecrcache.models.credential import CredentialPut
from ecrcache.models.records import ResourceKind
from ecrcache.services.desired_state import DesiredStateService

NameParam = Annotated[str, Path(description="Credential name (secret `ecr-pullthroughcache/<name>`).", max_length=100)]


def register(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    _register_reads(app, service)
    _register_writes(app, service)


def _resource(service: DesiredStateService, name: str) -> CredentialResource:
    stored = service.get(ResourceKind.CREDENTIAL, name)
    return CredentialResource.of(stored, service.referenced_by(ResourceKind.CREDENTIAL, name))


def _register_reads(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.get("/v1/credentials", tags=["credentials"], summary="List credentials", responses=responses(CredentialList))
    def list_credentials() -> CredentialList:
        snapshot = service.snapshot()
        users: dict[str, list[str]] = {}
        for prefix, rule in sorted(snapshot.rules.items()):
            if rule.spec.get("credential"):
                users.setdefault(str(rule.spec["credential"]), []).append(prefix)
        return CredentialList(
            items=[CredentialResource.of(c, users.get(n, [])) for n, c in sorted(snapshot.credentials.items())]
        )

    @app.get(
        "/v1/credentials/<name>",
        tags=["credentials"],
        summary="Get a credential",
        responses=responses(CredentialResource),
    )
    def get_credential(name: NameParam) -> Response[CredentialResource]:
        found = _resource(service, resource_name(name))
        return json_response(found, version=found.version)


def _register_writes(app: APIGatewayRestResolver, service: DesiredStateService) -> None:
    @app.put(
        "/v1/credentials/<name>",
        tags=["credentials"],
        summary="Create or update a credential",
        description=(
            "With `token`, the secret `ecr-pullthroughcache/<name>` is created or given a new value "
            '(`{"username","accessToken"}`, AWS-managed key). Without it, only metadata changes; a new '
            "credential or a new username needs the token."
        ),
        responses=responses(CredentialResource, description="Updated", also={201: CredentialResource}),
    )
    def put_credential(
        name: NameParam,
        credential: Annotated[CredentialPut, Body(description="Metadata and the write-only token.")],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response[CredentialResource]:
        checked = resource_name(name)
        result = service.put_credential(
            checked,
            credential.spec(),
            credential.token,
            actor=caller_arn(app),
            precondition=precondition(if_match, if_none_match),
        )
        body = CredentialResource.of(result.resource, service.referenced_by(ResourceKind.CREDENTIAL, checked))
        return json_response(body, status=201 if result.created else 200, version=result.resource.version)

    @app.delete(
        "/v1/credentials/<name>",
        tags=["credentials"],
        summary="Delete a credential (409 while a rule uses it)",
        responses=responses(status=204, description="Deleted"),
    )
    def delete_credential(
        name: NameParam, if_match: IfMatch = None, if_none_match: UndocumentedIfNoneMatch = None
    ) -> Response[None]:
        cond = precondition(if_match, if_none_match)
        service.delete(ResourceKind.CREDENTIAL, resource_name(name), actor=caller_arn(app), precondition=cond)
        return Response(status_code=204)

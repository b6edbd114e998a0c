"""`/v1/credentials`: upstream credentials. The token is write-only: accepted, never returned."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from ecrcache.engine.credential_health import view
from ecrcache.http.common import caller_arn, json_response, precondition, resource_name
from ecrcache.http.errors import responses
from ecrcache.http.routes.rules import IfMatch, IfNoneMatch, UndocumentedIfNoneMatch
from ecrcache.http.schemas import CredentialList, CredentialResource
from ecrcache.models.credential import CredentialPut, CredentialSpec
from ecrcache.models.credential_health import CredentialHealth, HealthView
from ecrcache.models.records import ResourceKind, StoredResource
from ecrcache.ports import CredentialHealthReader
from ecrcache.services.desired_state import DesiredStateService

NameParam = Annotated[str, Path(description="Credential name (secret `ecr-pullthroughcache/<name>`).", max_length=100)]


class _Health:
    """Each credential's health as the API shows it: the stored health (none without a reader, or for a
    credential not checked yet: ``Unknown``), its ``days_to_expiry`` counted from today (UTC)."""

    def __init__(self, reader: CredentialHealthReader | None, clock: Callable[[], datetime]) -> None:
        self.reader = reader
        self.clock = clock

    def of(self, stored: StoredResource, found: CredentialHealth | None) -> HealthView:
        expires_at = CredentialSpec.model_validate(stored.spec).expires_at
        return view(found, expires_at=expires_at, now=self.clock())

    def read(self, stored: StoredResource) -> HealthView:
        return self.of(stored, self.reader.health(stored.name) if self.reader is not None else None)

    def all(self) -> dict[str, CredentialHealth]:
        return self.reader.all_health() if self.reader is not None else {}


def register(
    app: APIGatewayRestResolver,
    service: DesiredStateService,
    *,
    health: CredentialHealthReader | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    views = _Health(health, clock)
    _register_reads(app, service, views)
    _register_writes(app, service, views)


def _resource(service: DesiredStateService, name: str, views: _Health) -> CredentialResource:
    stored = service.get(ResourceKind.CREDENTIAL, name)
    return CredentialResource.of(stored, service.referenced_by(ResourceKind.CREDENTIAL, name), views.read(stored))


def _register_reads(app: APIGatewayRestResolver, service: DesiredStateService, views: _Health) -> None:
    @app.get("/v1/credentials", tags=["credentials"], summary="List credentials", responses=responses(CredentialList))
    def list_credentials() -> CredentialList:
        snapshot = service.snapshot()
        users: dict[str, list[str]] = {}
        for prefix, rule in sorted(snapshot.rules.items()):
            if rule.spec.get("credential"):
                users.setdefault(str(rule.spec["credential"]), []).append(prefix)
        found = views.all()
        return CredentialList(
            items=[
                CredentialResource.of(c, users.get(n, []), views.of(c, found.get(n)))
                for n, c in sorted(snapshot.credentials.items())
            ]
        )

    @app.get(
        "/v1/credentials/<name>",
        tags=["credentials"],
        summary="Get a credential",
        responses=responses(CredentialResource),
    )
    def get_credential(name: NameParam) -> Response[CredentialResource]:
        found = _resource(service, resource_name(name), views)
        return json_response(found, version=found.version)


def _register_writes(app: APIGatewayRestResolver, service: DesiredStateService, views: _Health) -> None:
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
        users = service.referenced_by(ResourceKind.CREDENTIAL, checked)
        body = CredentialResource.of(result.resource, users, views.read(result.resource))
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

"""`/v1/pulls`: the most pulled repository tags (and digests) of a rule, with their pulls per day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import ValidationError

from ecrcache.errors import InvalidInputError, field_errors_from_pydantic
from ecrcache.http.errors import responses
from ecrcache.models.common import parse_ecr_prefix
from ecrcache.models.pull_stats import PullsPage
from ecrcache.services.pull_stats import PullStatsService

DESCRIPTION = (
    "Pulls counted from ECR's CloudTrail `BatchGetImage` events (a read-only management event: it needs a "
    "CloudTrail trail) of the repositories under the desired rules, per UTC day, the warmer's own pulls left "
    "out. One event naming a tag is one pull of `repository:tag`; one naming only a digest (e.g. the platform "
    "manifest of a multi-platform tag) is one pull of `repository@digest`. Regions of a rule are summed. "
    "`daily` holds one count per day of the window, oldest first, today (UTC) last."
)

RULE_DESCRIPTION = "Only this rule's images (its ECR prefix, or `ROOT`); every rule's when absent."


def register(app: APIGatewayRestResolver, service: PullStatsService, *, clock: Callable[[], datetime]) -> None:
    @app.get(
        "/v1/pulls",
        tags=["pulls"],
        summary="The most pulled images",
        description=DESCRIPTION,
        responses=responses(PullsPage),
    )
    def get_pulls(
        rule: Annotated[
            str | None,
            Query(
                description="Only this rule's images (its ECR prefix, or `ROOT`); all rules when absent.",
                max_length=100,
            ),
        ] = None,
        top: Annotated[int, Query(ge=1, le=100, description="How many images, most pulled first.")] = 20,
        window_days: Annotated[int, Query(ge=1, le=90, description="Days counted, ending today (UTC).")] = 14,
    ) -> PullsPage:
        return service.pulls(rule_param(rule), top=top, window_days=window_days, now=clock())


def rule_param(raw: str | None) -> str | None:
    """The ``rule`` query parameter as a rule prefix, normalised as ECR does (`docker-hub/` is `docker-hub`)."""
    if raw is None:
        return None
    try:
        return parse_ecr_prefix(raw)
    except ValidationError as exc:
        details = field_errors_from_pydantic(exc, "rule")
        raise InvalidInputError(f"rule: {details[0].message}", details) from None


__all__ = ["register", "rule_param"]

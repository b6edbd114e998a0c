"""API function: API Gateway (REST, AWS_IAM) -> the desired-state service, the plan, the status and warm runs."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.adapters.rotation_start import SecretsManagerRotationStart
from ecrcache.adapters.rotation_store import DynamoDbRotationStore
from ecrcache.adapters.secret_replication import SecretsManagerReplicaReader
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.config import api_settings, stack_region
from ecrcache.engine.role_path import RoleScope
from ecrcache.http.app import create_app, resolve
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.forwarders import ForwarderPlanner, forwarding
from ecrcache.services.importer import ImportService
from ecrcache.services.plan import PlanService
from ecrcache.services.pull_stats import PullStatsService
from ecrcache.services.rotations import RotationsService
from ecrcache.services.secret_users import EcrSecretUsers

if TYPE_CHECKING:
    from ecrcache.adapters.ecr_registry import Boto3EcrReader
    from ecrcache.adapters.event_forwarder import Boto3EventForwarder


def now() -> datetime:
    return datetime.now(UTC)


@cache
def registry(region: str) -> Boto3EcrReader:
    """ECR in ``region``, read only: the API plans and imports, it never writes ECR.

    Imported on first use: only the plan, the import and a few writes read ECR."""
    from ecrcache.adapters.ecr_registry import Boto3EcrReader  # noqa: PLC0415 -- on first use (cold start)

    return Boto3EcrReader(region)


@cache
def event_forwarder(region: str) -> Boto3EventForwarder:
    """EventBridge in ``region``: the plan reads the stack's forwarding rule there (DescribeRule, ListTargetsByRule).

    Imported on first use: only the plan reads the forwarders. Short timeouts and two attempts
    (``PLAN_READ_CONFIG``): the plan answers within API Gateway's 29 s."""
    from ecrcache.adapters.event_forwarder import (  # noqa: PLC0415 -- on first use (cold start)
        PLAN_READ_CONFIG,
        Boto3EventForwarder,
        events_client,
    )

    return Boto3EventForwarder(region, events_client(region, PLAN_READ_CONFIG))


_forwarding = forwarding(
    rule_name=api_settings().event_forward_rule_name,
    role_arn=api_settings().event_forward_role_arn,
    ignored_roles=api_settings().ignored_roles,
    home_region=stack_region(),
)
store = DynamoDbStateStore(api_settings().table_name)
status = DynamoDbStatusStore(api_settings().table_name)
# The roles a rule may name: under EcrRolePath, of this account and partition (the reconciler's iam:PassRole).
role_scope = RoleScope.of_stack(api_settings().ecr_role_path, api_settings().ecr_role_account, stack_region())
# The API only plans (reads ECR): it holds readers, no object that can write ECR (nor has its role the permission).
# The plan shows what the reconciler would do: the warm worker's pull-time update exclusion included.
planner = PlanService(
    desired=store,
    status=status,
    registry=registry,
    stack_region=stack_region(),
    warmer_role_arn=api_settings().warmer_role_arn,
    # Reads each credential's secret replicas (DescribeSecret only): the plan shows them as the reconciler plans them.
    secrets=SecretsManagerReplicaReader(),
    # A rule naming a role outside EcrRolePath is shown Blocked, as the reconciler plans it.
    # The event forwarders of the other Regions rules name, as the reconciler plans them.
    forwarders=None if _forwarding is None else ForwarderPlanner(_forwarding, event_forwarder),
    role_path=role_scope,
)
# The rule quota counts what ECR holds too (rules retained or made by hand), read where a write adds a rule;
# before a credential's secret is scheduled for deletion, ECR is read: a rule there may still use it.
# (the secret's replicas too: a rule in a replica's Region uses the replica, which goes with the credential).
secrets = SecretsManagerStore()
secret_users = EcrSecretUsers(
    registry=registry, status=status, desired=store, stack_region=stack_region(), secrets=secrets
)
service = DesiredStateService(
    store=store,
    secrets=secrets,
    clock=now,
    stack_region=stack_region(),
    ecr_rules=planner.rules_in_ecr,
    secret_users=secret_users,
    # A rule's roles must be under EcrRolePath, the path the reconciler may pass (iam:PassRole): else a 422.
    role_path=role_scope,
)
importer = ImportService(service, registry, stack_region=stack_region())
pull_stats = PullStatsService(DynamoDbPullStatsStore(api_settings().table_name), stack_region=stack_region())
warm_runs = DynamoDbWarmRunStore(api_settings().table_name)
# Rotations with a token staged through the API: the token goes into the secret under a private label, then
# RotateSecret makes Secrets Manager run the rotation function (which copies it into AWSPENDING).
rotations = RotationsService(
    desired=store,
    secrets=SecretsManagerRotationStart(),
    records=DynamoDbRotationStore(api_settings().table_name),
    function_arn=api_settings().rotator_function_arn,
    clock=now,
)
app = create_app(
    service,
    planner=planner,
    importer=importer,
    status=status,
    pull_stats=pull_stats,
    warm_runs=warm_runs,
    clock=now,
    rotation_service=rotations,
    # Each credential's health (GET /v1/credentials...): Query and GetItem of the HEALTH#credential items.
    health=DynamoDbCredentialHealthStore(api_settings().table_name),
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)

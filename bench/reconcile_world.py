"""The reconcile benchmarks' fleet and embedded AWS (bench/reconcile_bench.py, bench/fanout_bench.py).

The fleet: desired rules written through :class:`DesiredStateService` (a few Docker Hub and GHCR rules with
credentials, the rest upstreams that take none), each with lifecycle presets, a repository policy and tags,
and repositories spread evenly over the rule prefixes, created in bulk in the embedded ECR's backend (they
stand for repositories already cached). Repository ``j`` is always the same name, so a fleet grown to ``n``
repositories is the fleet of ``n``.
"""

from __future__ import annotations

# First, before boto3, Powertools and ecrcache are imported: fake credentials, the embedded AWS only.
import bench.environment  # noqa: F401

# isort: split
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import boto3
import moto
from moto.ecr.models import ecr_backends
from pydantic import SecretStr

from bench.support import item_rollback_copies
from devstack.aws import events, install, ports
from devstack.aws.ports import AcceptingChecker
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.rule import RuleSpec
from ecrcache.observability import metrics
from ecrcache.services.desired_state import DesiredStateService
from tests.template import table_definition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ACCOUNT_ID: Final = "123456789012"  # moto's default account
REGION: Final = "us-east-1"
TABLE: Final = "ecrcache-bench"
ACTOR: Final = f"arn:aws:iam::{ACCOUNT_ID}:user/bench"
CREATION_ROLE: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecr-ptc-creation"
MAX_RULES: Final = 50  # ECR's pull-through cache rules per registry

# Rules with credentials come first: (prefix stem, upstream kind, credential, extra spec fields).
CREDENTIALED: Final[tuple[tuple[str, str, str, dict[str, Any]], ...]] = (
    ("hub", "docker-hub", "docker-hub", {}),
    ("hub", "docker-hub", "docker-hub", {"upstream_repository_prefix": "library"}),
    ("hub", "docker-hub", "docker-hub-ci", {}),
    ("ghcr", "github-container-registry", "ghcr", {}),
    ("ghcr", "github-container-registry", "ghcr", {}),
)
# Then upstreams that take no credential, in turn: (prefix stem, upstream kind, extra spec fields).
ANONYMOUS: Final[tuple[tuple[str, str, dict[str, Any]], ...]] = (
    ("quay", "quay", {}),
    ("ecr-public", "ecr-public", {}),
    ("k8s", "k8s", {}),
    ("ecr", "ecr", {"upstream_url": f"{ACCOUNT_ID}.dkr.ecr.us-west-2.amazonaws.com"}),
)
CREDENTIAL_KINDS: Final = {
    "docker-hub": "docker-hub",
    "docker-hub-ci": "docker-hub",
    "ghcr": "github-container-registry",
}


class BenchError(Exception):
    """A scenario did not do what it is supposed to (its numbers would mean nothing)."""


# --------------------------------------------------------------------------------------------------
# The fleet


@dataclass(frozen=True)
class Fleet:
    """``rules`` desired rules and ``repositories`` cached repositories spread evenly over them."""

    rules: int
    repositories: int

    def rule(self, index: int) -> tuple[str, dict[str, Any]]:
        """Prefix and spec of rule ``index``."""
        spec: dict[str, Any]
        if index < len(CREDENTIALED):
            stem, kind, credential, extra = CREDENTIALED[index]
            spec = {"upstream_kind": kind, "credential": credential, **extra}
        else:
            stem, kind, extra = ANONYMOUS[index % len(ANONYMOUS)]
            spec = {"upstream_kind": kind, **extra}
        spec["repository"] = {
            "tags": {"team": f"team-{index % 7}", "cost-center": str(1000 + index)},
            "creation_role_arn": CREATION_ROLE,
            "policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "OrgPull",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-exampleorgid"}},
                    }
                ],
            },
        }
        spec["lifecycle"] = {"presets": {"expire_untagged_after_days": 7, "keep_last": 10 + index % 20}}
        return f"{stem}-{index:02d}", spec

    def desired(self) -> dict[str, dict[str, Any]]:
        return dict(self.rule(i) for i in range(self.rules))

    def credentials(self) -> dict[str, str]:
        """Credential name -> upstream kind, for the credentials the rules use."""
        used = {spec.get("credential") for spec in self.desired().values()}
        return {name: kind for name, kind in CREDENTIAL_KINDS.items() if name in used}

    def repository_names(self) -> list[str]:
        prefixes = list(self.desired())
        return [f"{prefixes[j % len(prefixes)]}/library/image-{j:05d}" for j in range(self.repositories)]

    def repositories_of(self, prefix: str) -> list[str]:
        return [name for name in self.repository_names() if name.startswith(f"{prefix}/")]

    @property
    def changed_prefix(self) -> str:
        """The rule whose ``keep_last`` the ``one rule changed`` scenario changes (one without a credential)."""
        return self.rule(min(self.rules - 1, len(CREDENTIALED) + 1))[0]


# --------------------------------------------------------------------------------------------------
# The embedded AWS, the state table, the desired state, the repositories


def _create_table(client: DynamoDBClient) -> None:
    client.create_table(TableName=TABLE, **table_definition())
    client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0})


def create_repositories(names: Iterable[str]) -> float:
    """Create the repositories in the embedded ECR's backend, in bulk: the state ``CreateRepository`` leaves
    (moto's own ``create_repository``: name check, ARN, ``createdAt``), without a request and its CloudTrail
    event each, which would make a 20,000-repository fleet take half a minute to set up. Returns the seconds
    it took."""
    start = time.perf_counter()
    backend = ecr_backends[ACCOUNT_ID][REGION]
    for name in names:
        backend.create_repository(
            repository_name=name,
            registry_id=None,
            encryption_config=None,  # type: ignore[arg-type]
            image_scan_config=None,
            image_tag_mutability="MUTABLE",
            tags=[],
        )
    return time.perf_counter() - start


def write_desired(fleet: Fleet) -> DesiredStateService:
    """The state table, and the fleet's credentials and rules written through the desired-state service (on a
    client of its own: these writes are setup, not counted)."""
    setup = boto3.client("dynamodb", region_name=REGION)
    _create_table(setup)
    desired = DesiredStateService(
        DynamoDbStateStore(TABLE, setup),
        SecretsManagerStore(boto3.client("secretsmanager", region_name=REGION)),
        lambda: datetime.now(UTC),
    )
    for name, kind in fleet.credentials().items():
        credential = CredentialSpec.model_validate({"upstream_kind": kind, "username": "ecrcache-puller"})
        desired.put_credential(name, credential, SecretStr(f"token-for-{name}"), actor=ACTOR)
    for prefix, spec in fleet.desired().items():
        desired.put_rule(prefix, RuleSpec.model_validate(spec), actor=ACTOR)
    return desired


@contextmanager
def embedded_aws() -> Iterator[None]:
    """A fresh embedded AWS (moto + the ECR extension) in this process."""
    install()
    events.clear_recent()
    ports.set_upstream_auth_checker(AcceptingChecker())
    try:
        with moto.mock_aws(), item_rollback_copies():
            yield
    finally:
        ports.set_upstream_auth_checker(None)
        events.clear_recent()
        metrics.clear_metrics()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

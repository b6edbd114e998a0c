"""In-memory fake of the secret replication port (``SecretReplicator``): secrets with replicas.

A replica added by ``replicate_secret`` is ``InProgress`` for the next ``syncs_after`` reads of its
secret, then ``InSync`` - or ``Failed`` with ``taken[region]`` as its message when that Region
"already holds a secret of that name". ``failures`` answers an action ``(kind, region)`` with that
result (every time); ``describe_errors`` are raised, in order, by the next reads. ``applied`` lists
every action asked for, in order.
"""

from __future__ import annotations

from ecrcache.engine.plan import ActionKind, ActionResult, PlannedAction
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential import secret_name
from ecrcache.models.secret_replica import ObservedSecret, SecretReplica

ACCOUNT = "123456789012"
HOME = "us-east-1"


def secret_arn(credential: str, region: str = HOME) -> str:
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{secret_name(credential)}-AbCdEf"


class MemorySecretReplicas:
    """Implements ``SecretReplicator``."""

    def __init__(self, home: str = HOME) -> None:
        self.home = home
        self.secrets: dict[str, ObservedSecret] = {}
        self.applied: list[PlannedAction] = []
        self.failures: dict[tuple[ActionKind, str], ActionResult] = {}
        self.describe_errors: list[EcrcacheError] = []
        self.syncs_after = 0
        self.taken: dict[str, str] = {}
        self.reads = 0
        self._progress: dict[tuple[str, str], int] = {}

    def add(self, credential: str, *replicas: str) -> str:
        """A primary secret for ``credential`` (with in-sync replicas in ``replicas``); its ARN."""
        arn = secret_arn(credential, self.home)
        self.secrets[secret_name(credential)] = ObservedSecret(
            name=secret_name(credential),
            arn=arn,
            primary_region=self.home,
            replicas={r: SecretReplica(region=r, status="InSync", message="Replication succeeded") for r in replicas},
        )
        return arn

    def set_replica(self, credential: str, region: str, status: str, message: str | None = None) -> None:
        secret = self.secrets[secret_name(credential)]
        replicas = {**secret.replicas, region: SecretReplica(region=region, status=status, message=message)}
        self.secrets[secret.name] = secret.model_copy(update={"replicas": replicas})

    def describe(self, name: str) -> ObservedSecret | None:
        self.reads += 1
        if self.describe_errors:
            raise self.describe_errors.pop(0)
        secret = self.secrets.get(name)
        if secret is None:
            return None
        for (pending, region), left in list(self._progress.items()):
            if pending != name:
                continue
            if left <= 0:
                del self._progress[pending, region]
                self.set_replica(name.removeprefix("ecr-pullthroughcache/"), region, "InSync", "Replication succeeded")
            else:
                self._progress[pending, region] = left - 1
        return self.secrets[name]

    def apply(self, action: PlannedAction) -> ActionResult:
        self.applied.append(action)
        failure = self.failures.get((action.kind, action.region))
        if failure is not None:
            return failure
        credential = action.target.removeprefix("ecr-pullthroughcache/")
        if action.kind in (ActionKind.REMOVE_REPLICA, ActionKind.RETRY_REPLICA):
            secret = self.secrets[action.target]
            replicas = {r: s for r, s in secret.replicas.items() if r != action.region}
            self.secrets[action.target] = secret.model_copy(update={"replicas": replicas})
            self._progress.pop((action.target, action.region), None)
        if action.kind in (ActionKind.REPLICATE_SECRET, ActionKind.RETRY_REPLICA):
            if action.region in self.taken:
                self.set_replica(credential, action.region, "Failed", self.taken[action.region])
            elif self.syncs_after:
                self.set_replica(credential, action.region, "InProgress", "Replication in progress")
                self._progress[action.target, action.region] = self.syncs_after
            else:
                self.set_replica(credential, action.region, "InSync", "Replication succeeded")
        return ActionResult.success()


__all__ = ["HOME", "MemorySecretReplicas", "secret_arn"]

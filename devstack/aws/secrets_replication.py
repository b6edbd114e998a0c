"""Secrets Manager's multi-Region secrets for moto, where moto 5.2.5 strays from what AWS documents.

moto keeps a replica as a ``ReplicaSecret`` in the replica Region's backend, under the primary's name,
with the primary's ARN but the replica's Region ("The ARN for a replicated secret is the same as the
primary secret except for the Region", Secrets Manager User Guide, multi-Region secrets) and the
primary's versions (a ``PutSecretValue`` on the primary is read at once in every replica: "the new
secret value propagates to all of the associated replica secrets", same page). That much is right.
This module fixes what a controller notices:

* **Replication takes time.** ``DescribeSecret``'s ``ReplicationStatus[].Status`` is ``InProgress``
  ("Secrets Manager is in the process of creating the replica"), then ``InSync`` ("the replica was
  created") or ``Failed`` (botocore's ``secretsmanager`` model, ``DescribeSecretResponse``); moto makes
  every replica ``InSync`` at once. Here a new replica is ``InProgress`` - absent from its Region, so
  reads there (``GetSecretValue``, ECR's check of a rule's secret) do not find it - until
  :attr:`settings.replication_delay` has passed on the injectable :mod:`.clock` (checked on every
  lookup of a secret), or :func:`complete_replication` (server mode: ``POST
  /_ecrcache/secrets/replication/complete``) finishes it. How long AWS takes is not documented [?];
  the default delay is 0 (in sync at once, moto's behaviour), tests and the local stack set one
  (``POST /_ecrcache/secrets/replication/settings {"delaySeconds": N}``).
* **A failed replica's message.** moto says "Replication failed: Secret name simple already exists in
  region <r>." (a fixed name); the model documents the message as "Secret with this name already
  exists in this region", which is answered here.
* **The ARN in the answers.** ``ReplicateSecretToRegions`` / ``RemoveRegionsFromReplication`` answer
  "The ARN of the primary secret" (API reference); moto echoes the ``SecretId`` sent (a name).
* **DeleteSecret of a primary with replicas.** "You can't delete a primary secret that is replicated
  to other Regions. You must first delete the replicas using RemoveRegionsFromReplication" (API
  reference). moto refuses too, with the ``SecretId`` in the text; AWS names the ARN, as reported:
  ``InvalidParameterException`` "You can't delete secret arn:aws:secretsmanager:...:secret:test-...
  that still has replica regions [ap-northeast-2, us-east-1, us-west-2]." (gruntwork-io/cloud-nuke#435,
  rebuy-de/aws-nuke#1127).

Left as moto has them: replicating to a Region that already has a replica of the secret (moto records a
second, failed, entry; what AWS answers is not documented [?]), ``ForceOverwriteReplicaSecret``, and a
replica's own ``DescribeSecret`` (moto shows the primary's ``ReplicationStatus`` and ``PrimaryRegion``).
Module name: see the package docstring (it must not start with "moto").
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from moto.secretsmanager.exceptions import InvalidParameterException
from moto.secretsmanager.models import (
    FakeSecret,
    ReplicaSecret,
    SecretsManagerBackend,
    SecretsStore,
    secretsmanager_backends,
)

from devstack.aws import clock
from devstack.aws.common import patch_once

__all__ = [
    "EXISTS_MESSAGE",
    "IN_PROGRESS_MESSAGE",
    "ReplicationSettings",
    "complete_replication",
    "install",
    "pending_replicas",
    "reset",
    "settings",
]

EXISTS_MESSAGE: Final = "Secret with this name already exists in this region"
"""``StatusMessage`` of a replica that failed because its Region holds a secret of that name (the model's example)."""
IN_PROGRESS_MESSAGE: Final = "Replication in progress"
"""``StatusMessage`` while a replica is being created: AWS's text is not documented [?]."""
_MARK: Final = "_ecrcache_replication_patch"
"""Set on this module's wrappers (``secrets_deletion`` wraps some of the same methods with its own mark)."""
SUCCEEDED_MESSAGE: Final = "Replication succeeded"
"""moto's ``StatusMessage`` of a replica in sync (kept)."""


@dataclass
class ReplicationSettings:
    """Knobs of the fake (process-wide)."""

    #: How long a new replica stays ``InProgress`` on the injectable clock (``0``: in sync at once).
    replication_delay: timedelta = timedelta(0)


settings = ReplicationSettings()


@dataclass
class _Pending:
    replica: ReplicaSecret
    ready_at: datetime


_lock = threading.RLock()
_pending: list[_Pending] = []


def _set_status(replica: ReplicaSecret, status: str, message: str) -> None:
    replica.status = status
    replica.message = message
    replica.config["Status"] = status
    replica.config["StatusMessage"] = message


def _target(replica: ReplicaSecret) -> SecretsStore:
    store: SecretsStore = secretsmanager_backends[replica.source.account_id][replica.region].secrets
    return store


def _finish(entry: _Pending) -> None:
    """Make the replica readable in its Region, ``InSync``."""
    dict.__setitem__(_target(entry.replica), entry.replica.arn, entry.replica)
    entry.replica.has_replica = True
    _set_status(entry.replica, "InSync", SUCCEEDED_MESSAGE)


def _settle(now: datetime | None = None, *, everything: bool = False) -> int:
    """Finish every pending replica whose time has come (or all of them); returns how many."""
    with _lock:
        if not _pending:
            return 0
        current = now or clock.now()
        due = [p for p in _pending if everything or current >= p.ready_at]
        for entry in due:
            _pending.remove(entry)
            _finish(entry)
        return len(due)


def complete_replication() -> int:
    """Finish every replica being created now; returns how many."""
    return _settle(everything=True)


def pending_replicas() -> list[tuple[str, str]]:
    """``(secret name, Region)`` of every replica still being created."""
    _settle()
    with _lock:
        return [(p.replica.name, p.replica.region) for p in _pending]


def _delay_new_replicas(replicas: list[ReplicaSecret]) -> None:
    """Turn moto's at-once replicas into ones being created (and fix a failed one's message)."""
    delay = settings.replication_delay
    for replica in replicas:
        if not replica.has_replica:  # failed: a secret of that name is in the Region
            _set_status(replica, "Failed", EXISTS_MESSAGE)
            continue
        if delay <= timedelta(0):
            continue
        dict.pop(_target(replica), replica.arn, None)
        replica.has_replica = False  # moto's RemoveRegionsFromReplication pops only replicas it placed
        _set_status(replica, "InProgress", IN_PROGRESS_MESSAGE)
        with _lock:
            _pending.append(_Pending(replica, clock.now() + delay))


def _create_replicas(original: Callable[..., list[ReplicaSecret]]) -> Callable[..., list[ReplicaSecret]]:
    @functools.wraps(original)
    def create_replicas(self: FakeSecret, replica_regions: list[dict[str, str]], force_overwrite: bool) -> Any:
        _settle()
        replicas = original(self, replica_regions, force_overwrite)
        _delay_new_replicas(replicas)
        return replicas

    return create_replicas


def _replicating(original: Callable[..., tuple[str, Any]]) -> Callable[..., tuple[str, Any]]:
    """``ReplicateSecretToRegions`` answers the primary's ARN."""

    @functools.wraps(original)
    def replicate(self: SecretsManagerBackend, secret_id: str, *args: Any, **kwargs: Any) -> tuple[str, Any]:
        _settle()
        _, statuses = original(self, secret_id, *args, **kwargs)
        return self.secrets[secret_id].arn, statuses

    return replicate


def _removing(original: Callable[..., tuple[str, Any]]) -> Callable[..., tuple[str, Any]]:
    """``RemoveRegionsFromReplication`` answers the primary's ARN; a replica being created is dropped."""

    @functools.wraps(original)
    def remove(self: SecretsManagerBackend, secret_id: str, replica_regions: list[str]) -> tuple[str, Any]:
        _settle()
        _forget_pending(self, secret_id, replica_regions)
        _, statuses = original(self, secret_id, replica_regions)
        return self.secrets[secret_id].arn, statuses

    return remove


def _forget_pending(backend: SecretsManagerBackend, secret_id: str, regions: list[str]) -> None:
    """A replica removed while being created is never created."""
    secret = backend.secrets.get(secret_id)
    with _lock:
        for entry in list(_pending):
            if entry.replica.source is secret and entry.replica.region in regions:
                _pending.remove(entry)


def _refusing_primary_with_replicas(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def delete_secret(self: SecretsManagerBackend, secret_id: str, *args: Any, **kwargs: Any) -> Any:
        _settle()
        secret = self.secrets.get(secret_id)
        if isinstance(secret, FakeSecret) and secret.replicas:
            regions = ", ".join(replica.region for replica in secret.replicas)
            raise InvalidParameterException(
                f"You can't delete secret {secret.arn} that still has replica regions [{regions}]."
            )
        return original(self, secret_id, *args, **kwargs)

    return delete_secret


def _settling(original: Callable[..., Any]) -> Callable[..., Any]:
    """A lookup in any Region's store first finishes the replicas whose time has come."""

    @functools.wraps(original)
    def settling(self: SecretsStore, *args: Any, **kwargs: Any) -> Any:
        _settle()
        return original(self, *args, **kwargs)

    return settling


_patch: Final = functools.partial(patch_once, mark=_MARK)
"""Wrap a moto method once (this extension's mark: :func:`devstack.aws.common.patch_once`)."""


def install() -> None:
    """Patch moto's Secrets Manager classes once (idempotent, like the ECR extension)."""
    _patch(FakeSecret, "create_replicas", _create_replicas)
    _patch(SecretsManagerBackend, "replicate_secret_to_regions", _replicating)
    _patch(SecretsManagerBackend, "remove_regions_from_replication", _removing)
    _patch(SecretsManagerBackend, "delete_secret", _refusing_primary_with_replicas)
    for name in ("get", "__getitem__", "__contains__", "values"):
        _patch(SecretsStore, name, _settling)
    _install_endpoints()


def _install_endpoints() -> None:
    from devstack.aws import server  # noqa: PLC0415 - the server module imports this package

    server.register_endpoint("POST", "secrets/replication/complete", lambda _: {"completed": complete_replication()})
    server.register_endpoint("GET", "secrets/replication/pending", _endpoint_pending)
    server.register_endpoint("POST", "secrets/replication/settings", _endpoint_settings)


def _endpoint_pending(_: dict[str, Any]) -> dict[str, Any]:
    return {"pending": [{"name": name, "region": region} for name, region in pending_replicas()]}


def _endpoint_settings(body: dict[str, Any]) -> dict[str, Any]:
    from devstack.aws import server  # noqa: PLC0415 - the server module imports this package

    if "delaySeconds" in body:
        value = body["delaySeconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise server.EndpointError("'delaySeconds' must be a non-negative number")
        settings.replication_delay = timedelta(seconds=float(value))
    return {"delaySeconds": settings.replication_delay.total_seconds()}


def reset() -> None:
    """Back to the defaults: no delay, nothing pending (tests)."""
    with _lock:
        _pending.clear()
    settings.replication_delay = timedelta(0)

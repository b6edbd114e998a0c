"""The reconcile fan-out's shard size and deadline: their limit and defaults (the settings read them).

Kept apart from :mod:`ecrcache.models.shards` (which re-exports them) so that the settings, which every function
imports, do not build the fan-out's models (issue 13: cold start).
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_SHARD_DEADLINE_SECONDS", "DEFAULT_SHARD_SIZE", "MAX_SHARD_SIZE"]

MAX_SHARD_SIZE: Final = 500
"""At most this many repository names a shard: 500 names of at most 256 characters (ECR's limit) are under
130 KiB of JSON, within an SQS message's 256 KiB."""

DEFAULT_SHARD_SIZE: Final = 500
"""Repositories per shard unless configured (``SHARD_SIZE``)."""

DEFAULT_SHARD_DEADLINE_SECONDS: Final = 3600
"""How long a fan-out may wait for its shards unless configured (``SHARD_DEADLINE_SECONDS``): past it, the next
reconcile run touching the Region finishes it with the shards that never reported counted failed."""

"""An upstream's token bucket: its size, its key, and when a rate-limited upstream is tried again. Pure.

Kept apart from :mod:`ecrcache.engine.warm` and :mod:`ecrcache.engine.warm_pull` so that the credential health
check and the rotator, which spend from the same buckets, import neither the warm planner nor the warm run's
models (issue 13: cold start). Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

__all__ = ["MIN_BLOCK_SECONDS", "BucketLimit", "block_until", "bucket_key", "bucket_label", "bucket_upstream"]


@dataclass(frozen=True, slots=True)
class BucketLimit:
    """A token bucket: ``capacity`` requests, refilled at ``capacity`` per ``window_seconds``."""

    capacity: int
    window_seconds: int


def bucket_key(upstream_url: str, credential: str | None) -> str:
    """The key of an upstream's token bucket: the registry URL, with ``#<credential>`` when the rule signs
    in. An upstream's limit is per account (Docker Hub counts an account's pulls; anonymous ones per
    source IP): two rules of one registry with different credentials spend two limits, each sized by its
    own credential's ``rate_limit`` -- one bucket would flip its capacity with whichever rule came last.
    Credential names never contain ``#`` (lowercase letters, digits, ``.``, ``_``, ``-``)."""
    return upstream_url if credential is None else f"{upstream_url}#{credential}"


def bucket_upstream(key: str) -> str:
    """The registry URL of a bucket key (what a run lists under ``stopped_upstreams``)."""
    return key.partition("#")[0]


def bucket_label(key: str) -> str:
    """A bucket key as a message says it: ``registry-1.docker.io (credential hub)``."""
    url, _, credential = key.partition("#")
    return f"{url} (credential {credential})" if credential else url


MIN_BLOCK_SECONDS: Final = 60


def block_until(now: datetime, window_seconds: int) -> datetime:
    """When a 429'd upstream is tried again: ECR passes on no ``Retry-After``, and a rate limit over a
    window frees up at the latest one window after it was hit (a rolling window sooner, which we cannot
    see); at least :data:`MIN_BLOCK_SECONDS`."""
    return now + timedelta(seconds=max(window_seconds, MIN_BLOCK_SECONDS))

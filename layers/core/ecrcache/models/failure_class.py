"""Why an image could not be warmed, in the terms a user acts on (one enumeration, no pydantic).

Kept apart from :mod:`ecrcache.models.warm_run` (whose outcomes name it) so that the functions that classify an
upstream's answers -- the rotator and the credential health check through the registry client -- do not build
the warm run's models (issue 13: cold start). Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FailureClass"]


class FailureClass(StrEnum):
    """Why an image could not be warmed, in the terms a user acts on."""

    CREDENTIAL = "credential"  # UpstreamAccessDenied, UnableToGetUpstreamImageException: the secret
    RATE_LIMIT = "rate_limit"  # UpstreamTooManyRequests, or the upstream's bucket is empty
    NOT_FOUND = "not_found"  # ImageNotFound, unknown tag, a platform the index lacks
    UPSTREAM_DOWN = "upstream_down"  # UpstreamUnavailable, timeouts
    ARCHIVED = "archived"  # the cached image is in the archive storage class
    OURS = "ours"  # anything else: a bug or a permission of the controller's

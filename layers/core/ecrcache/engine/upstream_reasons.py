"""Which rule a repository is under, and which upstream failure an ECR code or text stands for.

Kept apart from :mod:`ecrcache.engine.status` (which re-exports them) so that the functions classifying pull
and warm failures -- the pull statistics, the warm worker, the credential checks -- import neither the plan nor
the rule models the status engine needs (issue 13: cold start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

from ecrcache.models.common import ROOT_PREFIX


def owning_prefix(name: str, prefixes: Iterable[str]) -> str | None:
    """The longest rule prefix a repository name is under (``ROOT`` owns nothing by name)."""
    best = None
    for prefix in prefixes:
        if prefix != ROOT_PREFIX and name.startswith(prefix + "/") and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def owning_rule(region: str, repository: str, managed: Iterable[tuple[str, str]]) -> str | None:
    """The desired rule a repository of ``region`` is cached by: the longest prefix it is under, else
    the Region's ``ROOT`` rule, else none."""
    prefixes = {prefix for r, prefix in managed if r == region}
    found = owning_prefix(repository, prefixes)
    return found if found is not None else (ROOT_PREFIX if ROOT_PREFIX in prefixes else None)


class UpstreamReason(StrEnum):
    """The ``UpstreamHealthy`` condition's reasons."""

    PULL_SUCCEEDED = "PullSucceeded"
    VALIDATED = "Validated"
    CREDENTIAL_REJECTED = "CredentialRejected"
    RATE_LIMITED = "RateLimited"
    IMAGE_NOT_FOUND = "ImageNotFound"
    UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
    PULL_FAILED = "PullFailed"
    VALIDATION_FAILED = "ValidationFailed"


# ECR's codes for a pull that failed upstream. The event's ``failure-code`` values are not documented
# (only ``sync-status: SUCCESS`` is, ecr-facts §6.1); these are the codes ECR documents for the same
# failures elsewhere: BatchGetImage's ``ImageFailureCode`` enum and its whole-call exceptions, and the
# secret exceptions of the rule API (botocore ecr/2015-09-21/service-2.json).
_FAILURE_CODES: Final[Mapping[str, UpstreamReason]] = {
    "UpstreamAccessDenied": UpstreamReason.CREDENTIAL_REJECTED,
    "UnableToGetUpstreamImageException": UpstreamReason.CREDENTIAL_REJECTED,  # "usually ... the secret"
    "SecretNotFoundException": UpstreamReason.CREDENTIAL_REJECTED,
    "UnableToAccessSecretException": UpstreamReason.CREDENTIAL_REJECTED,
    "UnableToDecryptSecretValueException": UpstreamReason.CREDENTIAL_REJECTED,
    "UpstreamTooManyRequests": UpstreamReason.RATE_LIMITED,
    "ImageNotFound": UpstreamReason.IMAGE_NOT_FOUND,
    "UpstreamUnavailable": UpstreamReason.UPSTREAM_UNAVAILABLE,
    "UnableToGetUpstreamLayerException": UpstreamReason.UPSTREAM_UNAVAILABLE,
}
# Free text (a validation's ``failure``, an unknown code's reason): words that say which failure it is.
_FAILURE_WORDS: Final[tuple[tuple[UpstreamReason, re.Pattern[str]], ...]] = (
    (UpstreamReason.RATE_LIMITED, re.compile(r"too ?many ?requests|rate.limit|throttl|\b429\b")),
    (
        UpstreamReason.CREDENTIAL_REJECTED,
        re.compile(r"authenticat|credential|unauthori[sz]ed|access.denied|forbidden|secret|\b40[13]\b"),
    ),
    (UpstreamReason.IMAGE_NOT_FOUND, re.compile(r"not found|manifest.unknown|\b404\b")),
    (
        UpstreamReason.UPSTREAM_UNAVAILABLE,
        re.compile(r"unavailable|timed out|timeout|could not be reached|unreachable|connection|\b50[0-4]\b"),
    ),
)


def classify_upstream_failure(code: str | None, text: str | None) -> UpstreamReason | None:
    """The reason a failure code (or, when the code is unknown or missing, a failure text) stands for."""
    if code is not None and code in _FAILURE_CODES:
        return _FAILURE_CODES[code]
    lowered = (text or "").lower()
    for known, reason in _FAILURE_CODES.items():  # a text that names a code ("UpstreamAccessDenied: ...")
        if known.lower() in lowered:
            return reason
    for reason, words in _FAILURE_WORDS:
        if words.search(lowered):
            return reason
    return None

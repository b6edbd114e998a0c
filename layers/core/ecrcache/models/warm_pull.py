"""What warming one image in ECR came to: the facts the ECR warm adapter observed, before any judgement.

:class:`~ecrcache.adapters.ecr_warm.Boto3EcrWarmer` pulls one reference through the cache
(``BatchGetImage``, the index's children, ``GetDownloadUrlForLayer``, ``DescribeImages``) and answers a
:class:`WarmPull`: what was cached before, what ECR served, which platforms it verified, and the first
failure (:class:`EcrFailure`: ECR's own failure code or exception code, or one of ours below). The
engine (:mod:`ecrcache.engine.warm_pull`) classifies the failure and estimates the upstream requests; the
adapter never raises for a per-image failure.

Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"

IMAGE_MEDIA_TYPES: Final = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_MEDIA_TYPES: Final = (DOCKER_MANIFEST_LIST, OCI_INDEX)
ACCEPTED_MEDIA_TYPES: Final = (*IMAGE_MEDIA_TYPES, *INDEX_MEDIA_TYPES)
"""What the warmer accepts from ``BatchGetImage`` (ecr-facts §3.3 step 2): single-image manifests and,
so that a multi-platform tag comes back as its index rather than one platform's image, both index
types. botocore's model documents only v1/v2/OCI manifests as values; clients send the index types and
ECR serves them [?]."""

DIGEST_ISSUE: Final = "aws/containers-roadmap#2837"

# Codes the warmer makes itself (ECR's are its ImageFailureCode values and exception names).
PLATFORM_MISSING: Final = "PlatformNotInIndex"
DIGEST_NOT_CACHED: Final = "DigestNotCached"
TAG_MOVED: Final = "TagDigestMismatch"
IMAGE_ARCHIVED: Final = "ImageArchived"
LAYER_STILL_IMPORTING: Final = "LayerStillImporting"
NOT_VERIFIED: Final = "NotVerified"
TIMEOUT: Final = "Timeout"


class PullStage(StrEnum):
    """Where in the warm a failure happened."""

    LOOKUP = "lookup"  # DescribeImages before the pull (is it cached, is it archived)
    MANIFEST = "manifest"  # BatchGetImage of the reference (tag or digest)
    CHILD = "child"  # BatchGetImage of an index's child, by digest
    LAYERS = "layers"  # GetDownloadUrlForLayer of a config or layer
    VERIFY = "verify"  # DescribeImages after the pull
    RESTORE = "restore"  # UpdateImageStorageClass to STANDARD


class ImageStatus(StrEnum):
    """``DescribeImages`` ``imageStatus`` (ecr-facts §5.2); absent means ``ACTIVE`` (older answers)."""

    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    ACTIVATING = "ACTIVATING"  # a restore is in progress: not pullable yet


@dataclass(frozen=True, slots=True)
class EcrFailure:
    """The first thing that went wrong. ``reason`` is ECR's ``failureReason`` or exception message (it
    names images and repositories, never a credential), or ours; ``platform`` names the platform(s) it
    concerns, when it concerns some."""

    code: str
    reason: str
    stage: PullStage
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class CachedImage:
    """One image as ``DescribeImages`` reports it."""

    digest: str
    status: ImageStatus = ImageStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class WarmPull:
    """The facts of one warm: ``cached_before`` is the reference's image before the pull (``None``: not
    in the cache), ``served_digest`` what ``BatchGetImage`` served for it, ``index_children`` how many
    manifests the index lists (0: a single image), and the platforms verified in ECR afterwards."""

    cached_before: CachedImage | None = None
    served_digest: str | None = None
    index_children: int = 0
    platforms_verified: tuple[str, ...] = ()
    platforms_missing: tuple[str, ...] = ()
    layers: int = 0
    failure: EcrFailure | None = None
    restored: bool = False

    @property
    def index(self) -> bool:
        return self.index_children > 0

    @property
    def imported(self) -> bool:
        """ECR imported the served image during this warm: it was not cached, or the tag now serves
        another digest (ECR found a new version upstream and cached it)."""
        if self.served_digest is None:
            return False
        return self.cached_before is None or self.cached_before.digest != self.served_digest

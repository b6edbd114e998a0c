"""The warm worker's decisions, pure: platform matching, failure classes, upstream requests, outcomes.

* **Platforms** follow containerd's ``platforms`` package (``Normalize`` then equality of os,
  architecture and variant, as its ``NewMatcher`` does): ``aarch64`` is ``arm64``, ``x86_64`` is
  ``amd64``, arm64's ``v8`` (and amd64's ``v1``) is the default and written without a variant, and
  ``arm`` without a variant is ``arm/v7``. So ``linux/arm64`` matches an index child that says
  ``variant: v8``, and ``linux/arm64/v8`` matches one that says nothing. The first matching child is
  taken, as containerd resolves an index.
* **Failure classes**: :func:`classify` maps ECR's failure codes and exception codes (and the warmer's
  own, :mod:`ecrcache.models.warm_pull`) to the :class:`~ecrcache.models.warm_run.FailureClass` a user
  acts on.
* **Upstream requests** (:func:`upstream_requests`): ECR never says whether it contacted the upstream,
  so the count is an estimate from what the adapter observed -- see the function.
* **Blocks** (:func:`block_until`): when an upstream answers 429 ECR passes on no ``Retry-After``;
  the upstream bucket's window (the task carries it) bounds the wait until it resets.

Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from ecrcache.engine.upstream_buckets import block_until, bucket_label
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_pull import (
    DIGEST_NOT_CACHED,
    IMAGE_ARCHIVED,
    LAYER_STILL_IMPORTING,
    PLATFORM_MISSING,
    TAG_MOVED,
    TIMEOUT,
    PullStage,
)
from ecrcache.models.warm_run import ImageOutcome, Outcome

if TYPE_CHECKING:
    from ecrcache.models.warm_pull import (
        EcrFailure,
        WarmPull,
    )
    from ecrcache.models.warm_run import WarmTask

__all__ = [
    "FAILURE_CLASSES",
    "blob_digests",
    "block_until",
    "classify",
    "fresh_outcome",
    "listed_platforms",
    "normalize_platform",
    "outcome_of",
    "platform_matches",
    "select_children",
    "skipped_outcome",
    "upstream_requests",
]

# --------------------------------------------------------------------------------------------------
# Platforms (containerd/platforms: database.go normalizeArch, platforms.go Normalize / NewMatcher)
# --------------------------------------------------------------------------------------------------

_ARCH_ALIASES: Final = {"i386": "386", "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = _ARCH_ALIASES.get(arch.lower(), arch.lower()), variant.lower()
    match arch:
        case "386":
            variant = ""
        case "amd64" if variant == "v1":
            variant = ""
        case "arm64" if variant in {"8", "v8", "v8.0"}:
            variant = ""
        case "arm64" if variant in {"9", "9.0", "v9.0"}:
            variant = "v9"
        case "armhf":
            arch, variant = "arm", "v7"
        case "armel":
            arch, variant = "arm", "v6"
        case "arm" if variant in {"", "7"}:
            variant = "v7"
        case "arm" if variant in {"5", "6", "8"}:
            variant = "v" + variant
    return arch, variant


def normalize_platform(os_name: str, arch: str, variant: str | None = None) -> tuple[str, str, str]:
    """``(os, architecture, variant)`` as containerd's ``Normalize`` makes them (``macos`` is ``darwin``)."""
    os_name = os_name.lower()
    if os_name == "macos":
        os_name = "darwin"
    return (os_name, *_normalize_arch(arch, variant or ""))


def _parse(wanted: str) -> tuple[str, str, str]:
    parts = wanted.split("/")
    return normalize_platform(parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else None)


def platform_matches(wanted: str, platform: Mapping[str, Any] | None) -> bool:
    """Whether an index entry's ``platform`` object satisfies ``wanted`` (``os/arch[/variant]``)."""
    if not platform:
        return False
    have = normalize_platform(
        str(platform.get("os", "")), str(platform.get("architecture", "")), str(platform.get("variant") or "")
    )
    return _parse(wanted) == have


def select_children(
    manifests: Sequence[Mapping[str, Any]], platforms: Sequence[str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The child digest for each requested platform (the first match, index order) and the platforms
    the index has no child for."""
    found: dict[str, str] = {}
    for wanted in platforms:
        digest = next((str(m["digest"]) for m in manifests if platform_matches(wanted, m.get("platform"))), None)
        if digest is not None:
            found[wanted] = digest
    return found, tuple(p for p in platforms if p not in found)


def listed_platforms(manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """The platforms an index lists, as ``os/arch[/variant]`` (for messages)."""
    out: list[str] = []
    for entry in manifests:
        platform = entry.get("platform") or {}
        parts = [str(platform.get(k) or "") for k in ("os", "architecture", "variant")]
        text = "/".join(p for p in parts if p)
        if text and text not in out:
            out.append(text)
    return out


_NOT_DISTRIBUTED: Final = ("foreign", "nondistributable")


def blob_digests(manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Config and layer digests of image manifests, each once, in order.

    Foreign / non-distributable layers (Windows base layers) are served from their own URLs, never by
    a registry, so ECR has no download URL for them: they are left out."""
    digests: list[str] = []
    for manifest in manifests:
        config = manifest.get("config")
        entries = [config] if isinstance(config, Mapping) else []
        entries += [layer for layer in manifest.get("layers") or [] if isinstance(layer, Mapping)]
        for entry in entries:
            media_type = str(entry.get("mediaType", ""))
            if "urls" in entry or any(word in media_type for word in _NOT_DISTRIBUTED):
                continue
            digest = str(entry.get("digest", ""))
            if digest and digest not in digests:
                digests.append(digest)
    return digests


# --------------------------------------------------------------------------------------------------
# Failure classes
# --------------------------------------------------------------------------------------------------

FAILURE_CLASSES: Final[Mapping[str, FailureClass]] = {
    # The upstream refused the rule's credential, or ECR could not use the rule's secret (botocore:
    # "usually caused by an issue with the Secrets Manager secret").
    "UpstreamAccessDenied": FailureClass.CREDENTIAL,
    "UnableToGetUpstreamImageException": FailureClass.CREDENTIAL,
    "UpstreamTooManyRequests": FailureClass.RATE_LIMIT,
    "ImageNotFound": FailureClass.NOT_FOUND,
    "InvalidImageTag": FailureClass.NOT_FOUND,
    "ImageTagDoesNotMatchDigest": FailureClass.NOT_FOUND,
    PLATFORM_MISSING: FailureClass.NOT_FOUND,
    DIGEST_NOT_CACHED: FailureClass.NOT_FOUND,
    TAG_MOVED: FailureClass.NOT_FOUND,
    "UpstreamUnavailable": FailureClass.UPSTREAM_DOWN,
    "UnableToGetUpstreamLayerException": FailureClass.UPSTREAM_DOWN,
    TIMEOUT: FailureClass.UPSTREAM_DOWN,  # ECR held the call past our read timeout: waiting on the upstream
    LAYER_STILL_IMPORTING: FailureClass.UPSTREAM_DOWN,
    IMAGE_ARCHIVED: FailureClass.ARCHIVED,
}
"""Everything else -- our role's ``AccessDeniedException``, ``KmsError``, ``ServerException`` or
throttling after botocore's retries, a repository ECR could not create -- is :attr:`FailureClass.OURS`."""

_ADVICE: Final = {
    FailureClass.CREDENTIAL: "the upstream refused the rule's credential: check or rotate it",
    FailureClass.RATE_LIMIT: (
        "the upstream's rate limit: its remaining images are skipped until its rate-limit window resets"
    ),
    FailureClass.NOT_FOUND: "fix the warm set's image or platforms",
    FailureClass.UPSTREAM_DOWN: "the upstream is unavailable; ECR keeps serving what it has cached",
    FailureClass.ARCHIVED: "",
    FailureClass.OURS: "a fault of the controller or its permissions: see its log",
}


def classify(failure: EcrFailure) -> FailureClass:
    return FAILURE_CLASSES.get(failure.code, FailureClass.OURS)


def _message(failure: EcrFailure, failure_class: FailureClass) -> str:
    where = "" if failure.stage in (PullStage.MANIFEST, PullStage.LOOKUP) else f" ({failure.stage.value})"
    text = f"{failure.code}{where}: {failure.reason}".rstrip()
    advice = _ADVICE[failure_class]
    return f"{text} -- {advice}" if advice and failure.code not in (PLATFORM_MISSING, DIGEST_NOT_CACHED) else text


# --------------------------------------------------------------------------------------------------
# Upstream requests
# --------------------------------------------------------------------------------------------------

_UPSTREAM_CLASSES: Final = frozenset(
    {FailureClass.CREDENTIAL, FailureClass.RATE_LIMIT, FailureClass.NOT_FOUND, FailureClass.UPSTREAM_DOWN}
)


def upstream_requests(task: WarmTask, pull: WarmPull) -> int:
    """Manifest requests that reached (or could have reached) the upstream -- an estimate.

    ECR does not say whether a ``BatchGetImage`` contacted the upstream. What the warmer sees is the
    reference's digest in ECR before and after the pull (:attr:`WarmPull.imported`):

    * nothing served: 1 if the manifest request failed with an upstream answer (credential, rate
      limit, not found, upstream down), else 0 (an archived image, a fault of ours);
    * imported (not cached before, or the tag now serves another digest): 1 for the manifest plus 1
      per child the index lists -- ECR caches every child of an index, not only the warm set's
      platforms (ecr-facts §3.4);
    * a tag served with the digest it had: 1 -- ECR re-validated it against the upstream, unless it
      had done so within its own 24-hour window, which it does not expose (then 0: an upper bound);
    * a digest served from the cache: 0 (content by digest never changes; no upstream check).
    """
    if pull.served_digest is None:
        failure = pull.failure
        if failure is None or failure.stage is not PullStage.MANIFEST:
            return 0
        return 1 if classify(failure) in _UPSTREAM_CLASSES else 0
    if pull.imported:
        return 1 + pull.index_children
    return 1 if task.tag is not None else 0


# --------------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------------


def _base(task: WarmTask, now: datetime) -> dict[str, Any]:
    return {
        "image": task.image,
        "region": task.region,
        "repository": task.repository,
        "tag": task.tag,
        "digest": task.digest if task.tag is None else None,
        "finished_at": now,
    }


def _success_message(task: WarmTask, pull: WarmPull) -> str | None:
    if pull.index:
        return None
    return (
        "a single-platform image (not an index): its platform is recorded in its config, which the warmer "
        f"does not download, so it is not checked against {', '.join(task.platforms)}"
    )


def outcome_of(task: WarmTask, pull: WarmPull, *, now: datetime) -> ImageOutcome:
    """The image's outcome in its run: warmed when nothing failed, else failed with its class."""
    fields = _base(task, now) | {
        "digest": pull.served_digest or (task.digest if task.tag is None else None),
        "platforms_verified": pull.platforms_verified,
        "platforms_missing": pull.platforms_missing,
        "upstream_requests": upstream_requests(task, pull),
        "restored": pull.restored,
    }
    if pull.failure is None:
        return ImageOutcome(**fields, outcome=Outcome.WARMED, message=_success_message(task, pull))
    failure_class = classify(pull.failure)
    return ImageOutcome(
        **fields, outcome=Outcome.FAILED, failure_class=failure_class, message=_message(pull.failure, failure_class)
    )


def skipped_outcome(task: WarmTask, *, now: datetime, blocked_until: datetime) -> ImageOutcome:
    """Not attempted: the upstream answered 429 to an earlier image (this run's or another's)."""
    return ImageOutcome(
        **_base(task, now),
        outcome=Outcome.SKIPPED,
        failure_class=FailureClass.RATE_LIMIT,
        message=(
            f"not attempted: {bucket_label(task.upstream)} answered a rate limit (429) earlier; it is paused until "
            f"{blocked_until.isoformat()}"
        ),
    )


def fresh_outcome(task: WarmTask, *, now: datetime, verified_at: datetime) -> ImageOutcome:
    """Verified within ECR's 24-hour refresh window since the run was planned: nothing to spend."""
    return ImageOutcome(
        **_base(task, now),
        outcome=Outcome.FRESH,
        message=f"verified at {verified_at.isoformat()}, within ECR's 24-hour refresh window",
    )

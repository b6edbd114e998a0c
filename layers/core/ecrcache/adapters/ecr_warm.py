"""ECR in one Region, for the warm worker: pull one image through the cache and verify it.

:meth:`Boto3EcrWarmer.warm` does, for one :class:`~ecrcache.models.warm_run.WarmTask` (ecr-facts §3.3):

1. **Lookup** -- ``DescribeImages`` of the reference with ``filter.imageStatus=ANY``: is it cached
   (and with which digest: the upstream-request estimate compares it with what the pull serves), and
   is it archived? An image in the archive storage class cannot be pulled ("requests to pull the
   archived image will fail with a 404 error", ECR User Guide, *Archiving an image*), and no
   ``ImageFailureCode`` names the archive, so the warmer looks before it pulls. ``ARCHIVED`` with the
   task's ``restore_archived`` -> ``UpdateImageStorageClass(targetStorageClass=STANDARD)``: the restore
   takes up to 20 minutes, so the image fails as archived with ``restored`` and the next run warms it;
   ``ACTIVATING`` (a restore in progress) fails as archived too.
2. **Manifest** -- ``BatchGetImage`` of the tag (or, for a digest-only task, the digest) accepting the
   Docker v2 and OCI manifest types and both index types. A ``tag@digest`` task is pulled by its tag
   and fails when the tag serves another digest (it moved upstream). A digest-only task that is not
   cached fails: ECR cannot pull an uncached image by digest (aws/containers-roadmap#2837).
3. **Children** -- for an index, ``BatchGetImage`` by digest of the child of each requested platform
   (:func:`~ecrcache.engine.warm_pull.select_children`, containerd's matching); a platform the index lacks
   fails the image, naming it, after the others are warmed.
4. **Layers** -- ``GetDownloadUrlForLayer`` for the config and each layer of every image fetched, so
   ECR imports them; the URL is never fetched (no layer byte passes through the warmer).
   ``LayerInaccessibleException`` (the import from the upstream is still running, ecr-facts §3.3 step
   4 [?]) is retried after :data:`LAYER_RETRY_DELAYS`.
5. **Verify** -- ``DescribeImages`` again: the tag's digest is the one served, and each platform's
   child is in the repository, ``ACTIVE``.

Every failure is returned, never raised (:attr:`WarmPull.failure`): ECR's ``failureCode`` or exception
code with its reason, or one of :mod:`ecrcache.models.warm_pull`'s own. botocore's adaptive retries
(adapters.aws ``RETRY_CONFIG``) run first; throttling or a ``ServerException`` that outlives them is a
failure like any other (classified *ours* by the engine).

``calls`` counts the operations made (botocore's ``before-call``: retries are not counted).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from ecrcache.adapters.aws import RETRY_CONFIG, error_code
from ecrcache.engine.warm_pull import blob_digests, listed_platforms, select_children
from ecrcache.models.warm_pull import (
    ACCEPTED_MEDIA_TYPES,
    DIGEST_ISSUE,
    DIGEST_NOT_CACHED,
    IMAGE_ARCHIVED,
    IMAGE_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    LAYER_STILL_IMPORTING,
    NOT_VERIFIED,
    PLATFORM_MISSING,
    TAG_MOVED,
    TIMEOUT,
    CachedImage,
    EcrFailure,
    ImageStatus,
    PullStage,
    WarmPull,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import DescribeImagesResponseTypeDef, ImageIdentifierTypeDef

    from ecrcache.models.warm_run import WarmTask

__all__ = ["LAYER_RETRY_DELAYS", "Boto3EcrWarmer"]

LAYER_RETRY_DELAYS: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits between ``GetDownloadUrlForLayer`` attempts while a layer is still importing (6 attempts, 15.5 s)."""
ABSENT: Final = frozenset({"RepositoryNotFoundException", "ImageNotFoundException"})
MAX_REASON: Final = 400


class _Stop(Exception):
    """The warm stops here; :attr:`failure` says why."""

    def __init__(self, failure: EcrFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


@dataclass(slots=True)
class _Attempt:
    """What one warm has observed so far."""

    cached_before: CachedImage | None = None
    served_digest: str | None = None
    index_children: int = 0
    listed: list[str] = field(default_factory=list)
    children: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    verified: tuple[str, ...] = ()
    layers: int = 0
    restored: bool = False

    def result(self, failure: EcrFailure | None) -> WarmPull:
        return WarmPull(
            cached_before=self.cached_before,
            served_digest=self.served_digest,
            index_children=self.index_children,
            platforms_verified=self.verified,
            platforms_missing=self.missing,
            layers=self.layers,
            failure=failure,
            restored=self.restored,
        )


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _failure(exc: Exception, stage: PullStage, platform: str | None = None) -> EcrFailure:
    if isinstance(exc, ClientError):
        message = str(exc.response.get("Error", {}).get("Message") or "")
        return EcrFailure(error_code(exc), _cut(message), stage, platform)
    if isinstance(exc, ReadTimeoutError):
        # ECR held the call past our read timeout (after botocore's retries): it waits on the upstream.
        return EcrFailure(TIMEOUT, "ECR did not answer within the read timeout (after retries)", stage, platform)
    return EcrFailure(type(exc).__name__, _cut(str(exc)), stage, platform)


def _reference(task: WarmTask) -> ImageIdentifierTypeDef:
    """A tag when there is one (``tag@digest`` included: ECR cannot fetch an uncached digest), else the digest."""
    if task.tag is not None:
        return {"imageTag": task.tag}
    return {"imageDigest": str(task.digest)}


def _status(detail: Mapping[str, Any]) -> ImageStatus:
    try:
        return ImageStatus(str(detail.get("imageStatus") or ImageStatus.ACTIVE))
    except ValueError:
        return ImageStatus.ACTIVE  # a status this code does not know yet: treat as pullable, the pull decides


class Boto3EcrWarmer:
    """Implements :class:`ecrcache.ports.WarmEcr` for one Region."""

    def __init__(
        self,
        region: str,
        client: ECRClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        layer_retry_delays: Sequence[float] = LAYER_RETRY_DELAYS,
    ) -> None:
        self.region = region
        self.client = client or boto3.client("ecr", region_name=region, config=RETRY_CONFIG)
        self.sleep = sleep
        self.layer_retry_delays = tuple(layer_retry_delays)
        self.calls: Counter[str] = Counter()
        self.client.meta.events.register("before-call.ecr", self._count, unique_id=f"ecrcache-warm-count-{id(self)}")

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1

    # -- the warm --------------------------------------------------------------------------------

    def warm(self, task: WarmTask) -> WarmPull:
        attempt = _Attempt()
        try:
            self._warm(task, attempt)
        except _Stop as stop:
            return attempt.result(stop.failure)
        return attempt.result(None)

    def _warm(self, task: WarmTask, attempt: _Attempt) -> None:
        reference = _reference(task)
        attempt.cached_before = self._lookup(task, reference, PullStage.LOOKUP)
        if attempt.cached_before is not None and attempt.cached_before.status is not ImageStatus.ACTIVE:
            self._archived(task, attempt, [(None, attempt.cached_before)], PullStage.LOOKUP)
        image = self._manifest(task, reference)
        attempt.served_digest = str(image.get("imageId", {}).get("imageDigest") or "") or None
        if task.tag is not None and task.digest is not None and attempt.served_digest != task.digest:
            raise _Stop(
                EcrFailure(
                    TAG_MOVED,
                    f"{task.repository}:{task.tag} now serves {attempt.served_digest}, not the pinned {task.digest} "
                    "(the tag moved upstream): update the warm set's digest, or pin by tag alone",
                    PullStage.MANIFEST,
                )
            )
        manifest = _parse_manifest(image, PullStage.MANIFEST)
        media_type = str(image.get("imageManifestMediaType") or manifest.get("mediaType") or "")
        if media_type in INDEX_MEDIA_TYPES or "manifests" in manifest:  # an OCI index may omit its mediaType
            images = self._children(task, attempt, manifest)
        else:
            images = [manifest]
        self._layers(task, attempt, images)
        self._verify(task, attempt, reference)
        if attempt.missing:
            raise _Stop(
                EcrFailure(
                    PLATFORM_MISSING,
                    f"the index has no {', '.join(attempt.missing)} (it lists {', '.join(attempt.listed) or 'none'})",
                    PullStage.CHILD,
                    ", ".join(attempt.missing),
                )
            )

    # -- steps -----------------------------------------------------------------------------------

    def _manifest(self, task: WarmTask, reference: ImageIdentifierTypeDef) -> Mapping[str, Any]:
        try:
            return self._get(task, reference, ACCEPTED_MEDIA_TYPES, PullStage.MANIFEST)
        except _Stop as stop:
            if task.tag is None and stop.failure.code == "ImageNotFound":
                raise _Stop(
                    EcrFailure(
                        DIGEST_NOT_CACHED,
                        f"{task.repository}@{task.digest} is not in the cache, and ECR cannot pull an uncached "
                        f"image by digest alone ({DIGEST_ISSUE}): name it tag@digest in the warm set "
                        f"(<repository>:<tag>@{task.digest}) so it is warmed by its tag and checked against the "
                        "digest",
                        PullStage.MANIFEST,
                    )
                ) from stop
            raise

    def _children(self, task: WarmTask, attempt: _Attempt, index: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Fetch the child of each requested platform by digest (ECR caches them all with the index).

        Archived children (a restored index keeps its children archived) are gathered and restored
        together, so one more run warms the image, not one per platform."""
        entries = [m for m in index.get("manifests") or [] if isinstance(m, Mapping) and m.get("digest")]
        attempt.index_children = len(entries)
        attempt.listed = listed_platforms(entries)
        attempt.children, attempt.missing = select_children(entries, task.platforms)
        fetched: list[Mapping[str, Any]] = []
        archived: list[tuple[str | None, CachedImage]] = []
        for platform, digest in attempt.children.items():
            child_id: ImageIdentifierTypeDef = {"imageDigest": digest}
            try:
                child = self._get(task, child_id, IMAGE_MEDIA_TYPES, PullStage.CHILD, platform)
            except _Stop as stop:
                archived.append((platform, self._archived_child(task, child_id, platform, stop)))
                continue
            fetched.append(_parse_manifest(child, PullStage.CHILD, platform))
        if archived:
            self._archived(task, attempt, archived, PullStage.CHILD)
        return fetched

    def _archived_child(
        self, task: WarmTask, child_id: ImageIdentifierTypeDef, platform: str, stop: _Stop
    ) -> CachedImage:
        """The child, when ECR did not serve it because it is archived; else ``stop`` goes on."""
        if stop.failure.code in ("ImageNotFound", "ImageInaccessible"):
            cached = self._lookup(task, child_id, PullStage.CHILD, platform)
            if cached is not None and cached.status is not ImageStatus.ACTIVE:
                return cached
        raise stop

    def _layers(self, task: WarmTask, attempt: _Attempt, images: Iterable[Mapping[str, Any]]) -> None:
        for digest in blob_digests(images):
            self._layer_url(task, digest)
            attempt.layers += 1

    def _layer_url(self, task: WarmTask, digest: str) -> None:
        """Ask for the layer's download URL (ECR imports the layer); the URL itself is dropped unread."""
        delays = self.layer_retry_delays
        for attempt, delay in enumerate((*delays, None), start=1):
            try:
                self.client.get_download_url_for_layer(repositoryName=task.repository, layerDigest=digest)
                return
            except ClientError as exc:
                if error_code(exc) != "LayerInaccessibleException":
                    raise _Stop(_failure(exc, PullStage.LAYERS)) from exc
                if delay is None:
                    raise _Stop(
                        EcrFailure(
                            LAYER_STILL_IMPORTING,
                            f"layer {digest} was still being imported from the upstream after {attempt} attempts",
                            PullStage.LAYERS,
                        )
                    ) from exc
            except BotoCoreError as exc:
                raise _Stop(_failure(exc, PullStage.LAYERS)) from exc
            self.sleep(delay)

    def _verify(self, task: WarmTask, attempt: _Attempt, reference: ImageIdentifierTypeDef) -> None:
        """The reference serves the digest it was served with; each platform's child is there, ``ACTIVE``."""
        children: list[ImageIdentifierTypeDef] = [{"imageDigest": d} for d in attempt.children.values()]
        found = self._describe(task, [reference, *children])
        if task.tag is not None:
            current = next((image.digest for image, tags in found if task.tag in tags), None)
        else:
            current = next((image.digest for image, _ in found if image.digest == task.digest), None)
        if current != attempt.served_digest:
            raise _Stop(
                EcrFailure(
                    NOT_VERIFIED,
                    f"after the pull DescribeImages shows {current or 'nothing'} for the reference, "
                    f"not the served {attempt.served_digest}",
                    PullStage.VERIFY,
                )
            )
        active = {c.digest for c, _ in found if c.status is ImageStatus.ACTIVE}
        attempt.verified = tuple(p for p in task.platforms if attempt.children.get(p) in active)
        absent = [p for p in attempt.children if p not in attempt.verified]
        if absent:
            raise _Stop(
                EcrFailure(
                    NOT_VERIFIED,
                    f"after the pull the child of {', '.join(absent)} is not active in the repository",
                    PullStage.VERIFY,
                    ", ".join(absent),
                )
            )

    def _archived(
        self,
        task: WarmTask,
        attempt: _Attempt,
        images: Sequence[tuple[str | None, CachedImage]],
        stage: PullStage,
    ) -> NoReturn:
        """Images not in the standard storage class: restore them if the warm set says so; fail as archived."""
        notes = [self._archived_note(task, attempt, platform, image) for platform, image in images]
        platforms = ", ".join(platform for platform, _ in images if platform) or None
        raise _Stop(EcrFailure(IMAGE_ARCHIVED, "; ".join(notes), stage, platforms))

    def _archived_note(self, task: WarmTask, attempt: _Attempt, platform: str | None, image: CachedImage) -> str:
        what = f"{task.repository}@{image.digest}" + (f" ({platform})" if platform else "")
        if image.status is ImageStatus.ACTIVATING:
            return f"{what} is being restored from the archive (ACTIVATING, up to 20 minutes): the next run warms it"
        if not task.restore_archived:
            return (
                f"{what} is in the archive storage class, which ECR does not serve: restore it "
                "(UpdateImageStorageClass to STANDARD) or set the warm set's restore_archived"
            )
        try:
            self.client.update_image_storage_class(
                repositoryName=task.repository, imageId={"imageDigest": image.digest}, targetStorageClass="STANDARD"
            )
        except (ClientError, BotoCoreError) as exc:
            failure = _failure(exc, PullStage.RESTORE, platform)
            return f"{what} is archived and its restore failed: {failure.code}: {failure.reason}"
        attempt.restored = True
        return f"{what} was archived: its restore to STANDARD has started (up to 20 minutes); the next run warms it"

    # -- calls -----------------------------------------------------------------------------------

    def _get(
        self,
        task: WarmTask,
        image_id: ImageIdentifierTypeDef,
        accepted: Sequence[str],
        stage: PullStage,
        platform: str | None = None,
    ) -> Mapping[str, Any]:
        """``BatchGetImage`` of one image id: the image, or :class:`_Stop` with ECR's failure."""
        try:
            response = self.client.batch_get_image(
                repositoryName=task.repository, imageIds=[image_id], acceptedMediaTypes=list(accepted)
            )
        except (ClientError, BotoCoreError) as exc:
            raise _Stop(_failure(exc, stage, platform)) from exc
        images = response.get("images") or []
        if images:
            return images[0]
        failures = response.get("failures") or [{}]
        code = str(failures[0].get("failureCode") or "ImageNotFound")
        reason = _cut(str(failures[0].get("failureReason") or "ECR returned neither the image nor a failure"))
        raise _Stop(EcrFailure(code, reason, stage, platform))

    def _lookup(
        self, task: WarmTask, image_id: ImageIdentifierTypeDef, stage: PullStage, platform: str | None = None
    ) -> CachedImage | None:
        """The image ``image_id`` names, whatever its storage class; ``None`` when not cached."""
        found = self._describe(task, [image_id], stage=stage, platform=platform)
        return found[0][0] if found else None

    def _describe(
        self,
        task: WarmTask,
        image_ids: list[ImageIdentifierTypeDef],
        *,
        stage: PullStage = PullStage.VERIFY,
        platform: str | None = None,
    ) -> list[tuple[CachedImage, frozenset[str]]]:
        """``(image, its tags)`` for each id that exists (one call; one per id when some are absent)."""
        try:
            response = self._describe_call(task, image_ids)
        except ClientError as exc:
            if error_code(exc) not in ABSENT:
                raise _Stop(_failure(exc, stage, platform)) from exc
            if len(image_ids) == 1 or error_code(exc) == "RepositoryNotFoundException":
                return []
            return [found for one in image_ids for found in self._describe(task, [one], stage=stage)]
        except BotoCoreError as exc:
            raise _Stop(_failure(exc, stage, platform)) from exc
        return [
            (CachedImage(str(d.get("imageDigest")), _status(d)), frozenset(d.get("imageTags") or ()))
            for d in response.get("imageDetails") or []
        ]

    def _describe_call(self, task: WarmTask, image_ids: list[ImageIdentifierTypeDef]) -> DescribeImagesResponseTypeDef:
        """``DescribeImages`` of ``image_ids`` in any storage class (the default filter hides archived images).

        Whether ECR takes ``filter`` together with ``imageIds`` is not documented (only ``maxResults`` and
        ``nextToken`` are excluded) [?]: if it refuses the pair, the ids are described without the filter
        (an archived image then reads as absent and its pull answers not found)."""
        try:
            return self.client.describe_images(
                repositoryName=task.repository, imageIds=image_ids, filter={"imageStatus": "ANY"}
            )
        except ClientError as exc:
            if error_code(exc) != "InvalidParameterException":
                raise
        return self.client.describe_images(repositoryName=task.repository, imageIds=image_ids)


def _parse_manifest(image: Mapping[str, Any], stage: PullStage, platform: str | None = None) -> Mapping[str, Any]:
    try:
        manifest = json.loads(str(image.get("imageManifest") or ""))
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise _Stop(EcrFailure("InvalidManifest", "ECR served a manifest that is not a JSON object", stage, platform))
    return manifest

"""ECR's archive storage class for moto: UpdateImageStorageClass, image status in DescribeImages/ListImages.

Spec: botocore's ECR model (``UpdateImageStorageClass``: ``targetStorageClass`` ``STANDARD|ARCHIVE``,
response ``imageStatus``; ``ImageDetail.imageStatus`` ``ACTIVE|ARCHIVED|ACTIVATING``, ``lastArchivedAt``,
``lastActivatedAt``; the ``imageStatus`` filter of DescribeImages and ListImages: "If not specified,
only images with ``ACTIVE`` status are returned") and the ECR User Guide:

* "Archiving an image": archived images cannot be pulled -- "Requests to pull the archived image will
  fail with a 404 error" -- but can still be described/listed with status ``ARCHIVED``.
  ``BatchGetImage`` reports such an image in ``failures[]``; the model documents no failure code for
  it, so the fake answers ``ImageNotFound`` / "Requested image not found" (the 404) [?]. (The
  model's ``ImageFailureCode`` also has an undocumented ``ImageInaccessible``; it might be the one.)
* "Restoring an image" / "Archiving an image in Amazon ECR": a restore moves the image back to the
  standard class; while it runs the image is ``ACTIVATING`` and still cannot be pulled; it "typically
  takes up to 20 minutes, though it can complete faster" ("You can expect ECR to restore the image
  within 20 minutes"). Restored images behave like newly pushed ones (``lastActivatedAt``).

The fake's restore takes :data:`settings.restore_delay` (default 20 minutes) on the injectable
:mod:`.clock`: the image is ``ACTIVATING`` until the clock passes it (checked on every read), or until
:func:`complete_restores` (server mode: ``POST /_ecrcache/images/restores/complete``) finishes it now --
like the layer imports' manual mode, tests see both states. ``restore_delay = 0`` restores at once.

Choices where ECR is silent [?]: asking for the class an image is already in (or moving to) is a no-op
answering its current status; archiving an ``ACTIVATING`` image, or a child of a manifest list that is
still ``ACTIVE`` in the repository (lifecycle rules never archive those before the list), answers
``ImageStorageClassUpdateNotSupportedException``; DescribeImages with explicit ``imageIds`` returns the
images whatever their status (the filter applies to listings); archiving leaves the image's layers
downloadable through ``GetDownloadUrlForLayer``; re-pushing an archived image (which restores it
immediately in ECR) is not modelled. UpdateImageStorageClass emits its CloudTrail event.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from moto.core.responses import ActionResult
from moto.ecr.models import ECRBackend, Image, Repository, ecr_backends

from devstack.aws import clock
from devstack.aws.common import (
    EcrError,
    InvalidParameterException,
    add_response_action,
    api_action,
    paginate,
    request_params,
    validate_input,
    wrap_response_action,
)
from devstack.aws.state import EcrExtState, ImageExt, ext_state, image_ext

__all__ = [
    "RESTORE_TIME",
    "ImageStatus",
    "ImageStorageClassUpdateNotSupportedException",
    "StorageSettings",
    "complete_restores",
    "image_status",
    "install",
    "is_pullable",
    "pending_restores",
    "settings",
]

#: "You can expect ECR to restore the image within 20 minutes" (ECR User Guide, archiving images).
RESTORE_TIME: Final = timedelta(minutes=20)
_INDEX_MEDIA_TYPES: Final = frozenset(
    {"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json"}
)

ImageStatus = Literal["ACTIVE", "ARCHIVED", "ACTIVATING"]


class ImageStorageClassUpdateNotSupportedException(EcrError):
    """The requested image storage class update is not supported (botocore error shape)."""

    code = "ImageStorageClassUpdateNotSupportedException"


@dataclass
class StorageSettings:
    """Knobs of the fake (process-wide)."""

    #: How long a restore stays ``ACTIVATING`` on the injectable clock (``0`` = restored at once).
    restore_delay: timedelta = RESTORE_TIME


settings = StorageSettings()


# --------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------


def _finish_restore(ext: ImageExt, at: datetime) -> None:
    ext.storage_class = "STANDARD"
    ext.last_activated_at = at.replace(microsecond=0)
    ext.restore_complete_at = None


def image_status(ext: ImageExt, now: datetime | None = None) -> ImageStatus:
    """The image's ``imageStatus``, completing a restore whose time has come (call under the state lock)."""
    current = now or clock.now()
    if ext.restore_complete_at is not None and current >= ext.restore_complete_at:
        _finish_restore(ext, ext.restore_complete_at)
    if ext.storage_class == "STANDARD":
        return "ACTIVE"
    return "ACTIVATING" if ext.restore_complete_at is not None else "ARCHIVED"


def _status_of(state: EcrExtState, repository_name: str, digest: str) -> ImageStatus:
    with state.lock:
        return image_status(image_ext(state, repository_name, digest))


def is_pullable(state: EcrExtState, repository_name: str, digest: str) -> bool:
    """Only ``ACTIVE`` images can be pulled (archived and restoring ones answer 404)."""
    return _status_of(state, repository_name, digest) == "ACTIVE"


def _live_states() -> Iterator[EcrExtState]:
    for account_backends in list(ecr_backends.values()):
        for backend in list(account_backends.values()):
            yield ext_state(backend)


def pending_restores() -> list[tuple[str, str]]:
    """``(repositoryName, imageDigest)`` of every image being restored, in every live ECR backend."""
    pending: list[tuple[str, str]] = []
    for state in _live_states():
        with state.lock:
            for repository_name, images in state.images.items():
                pending.extend(
                    (repository_name, digest) for digest, ext in images.items() if image_status(ext) == "ACTIVATING"
                )
    return pending


def complete_restores(repository_name: str | None = None) -> int:
    """Finish every running restore now (optionally of one repository only); returns how many."""
    done = 0
    now = clock.now()
    for state in _live_states():
        with state.lock:
            for name, images in state.images.items():
                if repository_name not in (None, name):
                    continue
                for ext in images.values():
                    if image_status(ext, now) == "ACTIVATING":
                        _finish_restore(ext, now)
                        done += 1
    return done


# --------------------------------------------------------------------------------------------------
# UpdateImageStorageClass
# --------------------------------------------------------------------------------------------------


def _children(image: Image) -> set[str]:
    if image.image_manifest_media_type not in _INDEX_MEDIA_TYPES:
        return set()
    try:
        manifests = json.loads(image.image_manifest).get("manifests", [])
    except (ValueError, AttributeError):
        return set()
    return {str(m["digest"]) for m in manifests if isinstance(m, dict) and "digest" in m}


def _referenced_by_active_index(state: EcrExtState, repository: Repository, digest: str) -> bool:
    return any(
        digest in _children(other)
        and image_status(image_ext(state, repository.name, other.get_image_digest())) == "ACTIVE"
        for other in repository.images
    )


def _archive(state: EcrExtState, repository: Repository, digest: str, ext: ImageExt) -> ImageStatus:
    status = image_status(ext)
    if status == "ARCHIVED":
        return status
    if status == "ACTIVATING":
        raise ImageStorageClassUpdateNotSupportedException(
            f"The image '{digest}' is being restored from the archive; archive it after the restore completes"
        )
    if _referenced_by_active_index(state, repository, digest):
        raise ImageStorageClassUpdateNotSupportedException(
            f"The image '{digest}' is referenced by a manifest list in the repository '{repository.name}' "
            "that is not archived"
        )
    ext.storage_class = "ARCHIVE"
    ext.last_archived_at = clock.now().replace(microsecond=0)
    return "ARCHIVED"


def _restore(ext: ImageExt) -> ImageStatus:
    status = image_status(ext)
    if status != "ARCHIVED":
        return status
    now = clock.now()
    if settings.restore_delay <= timedelta(0):
        _finish_restore(ext, now)
        return "ACTIVE"
    ext.restore_complete_at = now + settings.restore_delay
    return "ACTIVATING"


def _update_storage_class(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    repository = backend._get_repository(params["repositoryName"], params.get("registryId"))
    image_id = dict(params["imageId"])
    tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
    if not tag and not digest:
        raise InvalidParameterException(
            "Invalid parameter at 'imageId' failed to satisfy constraint: 'both tag and digest cannot be null'"
        )
    image = repository._get_image(tag, digest)  # ImageNotFoundException, as DescribeImages
    found = image.get_image_digest()
    state = ext_state(backend)
    with state.lock:
        ext = image_ext(state, repository.name, found)
        archive = params["targetStorageClass"] == "ARCHIVE"
        status = _archive(state, repository, found, ext) if archive else _restore(ext)
    served: dict[str, str] = {"imageDigest": found}
    if tag:
        served["imageTag"] = tag
    return {
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
        "imageId": served,
        "imageStatus": status,
    }


# --------------------------------------------------------------------------------------------------
# DescribeImages / ListImages
# --------------------------------------------------------------------------------------------------


def _wanted(status_filter: str, status: ImageStatus) -> bool:
    return status_filter in {"ANY", status}


def _tag_wanted(tag_filter: str, image: Image) -> bool:
    if tag_filter == "TAGGED":
        return bool(image.image_tags)
    if tag_filter == "UNTAGGED":
        return not image.image_tags
    return True


def _detail(image: Image, ext: ImageExt, status: ImageStatus) -> Image:
    """A copy of moto's image with the status fields (moto serialises attributes by member name)."""
    dto = copy.copy(image)
    if not dto.image_tags:
        del dto.image_tags  # ECR omits an empty imageTags (moto does the same)
    dto.image_status = status  # type: ignore[attr-defined]
    dto.last_archived_at = ext.last_archived_at  # type: ignore[attr-defined]
    dto.last_activated_at = ext.last_activated_at  # type: ignore[attr-defined]
    if ext.last_recorded_pull_time is not None:
        dto.last_recorded_pull_time = ext.last_recorded_pull_time  # type: ignore[attr-defined]
    return dto


def _requested(repository: Repository, image_ids: list[dict[str, str]]) -> list[Image]:
    found: list[Image] = []
    for image_id in image_ids:
        image = repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
        if all(image is not seen for seen in found):
            found.append(image)
    return found


def describe_images(self: Any) -> ActionResult:
    """DescribeImages with the status filter, status fields and paging (moto ignores all three)."""
    params = request_params(self)
    validate_input("DescribeImages", params)
    image_ids = params.get("imageIds")
    if image_ids and (params.get("maxResults") or params.get("nextToken")):
        # API reference: maxResults/nextToken "cannot be used when you specify images with imageIds".
        raise InvalidParameterException("Invalid parameter: maxResults and nextToken cannot be used with imageIds")
    backend: ECRBackend = self.ecr_backend
    repository = backend._get_repository(params["repositoryName"], params.get("registryId"))
    flt = params.get("filter") or {}
    state = ext_state(backend)
    details: list[Image] = []
    with state.lock:
        images = _requested(repository, image_ids) if image_ids else list(repository.images)
        for image in images:
            ext = image_ext(state, repository.name, image.get_image_digest())
            status = image_status(ext)
            listed = image_ids or _wanted(str(flt.get("imageStatus", "ACTIVE")), status)
            if listed and _tag_wanted(str(flt.get("tagStatus", "ANY")), image):
                details.append(_detail(image, ext, status))
    page, token = paginate(details, params.get("maxResults"), params.get("nextToken"))
    result: dict[str, Any] = {"imageDetails": page}
    if token:
        result["nextToken"] = token
    return ActionResult(result)


def _list_images_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    def list_images(self: Any) -> Any:
        result = original(self)
        payload = result.result if isinstance(result, ActionResult) else None
        if not isinstance(payload, dict):
            return result
        wanted = str((request_params(self).get("filter") or {}).get("imageStatus", "ACTIVE"))
        state = ext_state(self.ecr_backend)
        name = str(self._get_param("repositoryName"))
        payload["imageIds"] = [
            i for i in payload.get("imageIds", []) if _wanted(wanted, _status_of(state, name, str(i["imageDigest"])))
        ]
        return result

    return list_images


# --------------------------------------------------------------------------------------------------
# Server-mode hooks and installation
# --------------------------------------------------------------------------------------------------


def _endpoint_complete(body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("repositoryName")
    return {"completed": complete_restores(str(name) if name else None), "pending": len(pending_restores())}


def _endpoint_pending(_: dict[str, Any]) -> dict[str, Any]:
    return {"pending": [{"repositoryName": r, "imageDigest": d} for r, d in pending_restores()]}


def _endpoint_settings(body: dict[str, Any]) -> dict[str, Any]:
    if "restoreDelaySeconds" in body:
        value = body["restoreDelaySeconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidParameterException("restoreDelaySeconds must be a non-negative number")
        settings.restore_delay = timedelta(seconds=float(value))
    return {"restoreDelaySeconds": settings.restore_delay.total_seconds()}


def install() -> None:
    """Patch moto (idempotent): UpdateImageStorageClass, DescribeImages, ListImages, ``/_ecrcache/images/*``."""
    add_response_action(
        "update_image_storage_class",
        api_action("UpdateImageStorageClass", _update_storage_class, mutating=True),
    )
    add_response_action("describe_images", describe_images)
    wrap_response_action("list_images", _list_images_wrapper)
    from devstack.aws import server  # noqa: PLC0415 - server imports the package; avoid a cycle

    server.register_endpoint("POST", "images/restores/complete", _endpoint_complete)
    server.register_endpoint("GET", "images/restores/pending", _endpoint_pending)
    server.register_endpoint("GET", "images/settings", _endpoint_settings)
    server.register_endpoint("POST", "images/settings", _endpoint_settings)

"""Image references relative to an upstream (``repository[:tag][@sha256:<hex>]``), as the OCI distribution
reference grammar writes them: the warm sets' images and a credential's probe image.

Kept apart from :mod:`ecrcache.models.warm_set` so that the credential models (and the rotator and the credential
health check that read them) do not build the warm set's models (issue 13: cold start). Nothing here does I/O,
reads a clock or the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import AfterValidator, WithJsonSchema

from ecrcache.models.common import PATH_COMPONENT

__all__ = [
    "IMAGE_REFERENCE_PATTERN",
    "REPOSITORY_MAX_LENGTH",
    "ImageRef",
    "ImageReference",
    "check_repository",
    "needs_library_prefix",
    "parse_image_reference",
    "with_library_prefix",
]

REPOSITORY_MAX_LENGTH: Final = 255

# The OCI grammar writes the separator as ``(?:[._]|__|[-]*)``; ``-+`` accepts the same language
# without the empty alternative, which would make Python's backtracking regex exponential.
_COMPONENT_RE: Final = re.compile(rf"^{PATH_COMPONENT}$")
_TAG_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE: Final = re.compile(r"^sha256:[a-f0-9]{64}$")

IMAGE_REFERENCE_PATTERN: Final = (
    rf"^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference relative to an upstream: ``repository[:tag][@digest]``."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def check_repository(repository: str) -> str:
    """Validate a repository path relative to the upstream (no registry host); raises ``ValueError``."""
    if not repository:
        raise ValueError("the repository path is empty")
    if len(repository) > REPOSITORY_MAX_LENGTH:
        raise ValueError(f"the repository path is {len(repository)} characters; at most {REPOSITORY_MAX_LENGTH}")
    components = repository.split("/")
    if len(components) > 1 and _looks_like_host(components[0]):
        raise ValueError(
            f"{components[0]!r} looks like a registry host; give the path relative to the rule's upstream, "
            "e.g. library/node:18-alpine"
        )
    if repository != repository.lower():
        raise ValueError("the repository path must be lowercase")
    for component in components:
        if not _COMPONENT_RE.match(component):
            raise ValueError(
                f"repository path component {component!r} must be lowercase letters and digits separated by "
                "'.', '_', '__' or '-'"
            )
    return repository


def parse_image_reference(reference: str) -> ImageReference:
    """Parse ``repository[:tag][@sha256:<hex>]``; a tag or a digest is required. Raises ``ValueError``."""
    name, at, digest = reference.partition("@")
    if at and not _DIGEST_RE.match(digest):
        raise ValueError("the digest must be sha256: followed by 64 lowercase hex digits")
    repository, tag = name, None
    head, colon, tail = name.rpartition(":")
    if colon and "/" not in tail:
        repository, tag = head, tail
        if not _TAG_RE.match(tag):
            raise ValueError(
                "the tag must be 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )
    check_repository(repository)
    if tag is None and not at:
        raise ValueError("add a tag (e.g. :latest) or a digest (@sha256:...) to the image reference")
    return ImageReference(repository, tag, digest if at else None)


def _check_image(reference: str) -> str:
    parse_image_reference(reference)
    return reference


ImageRef = Annotated[
    str,
    AfterValidator(_check_image),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": IMAGE_REFERENCE_PATTERN,
            "description": "Image relative to the rule's upstream: repository[:tag][@sha256:<64 hex>].",
            "examples": ["library/node:18-alpine", "library/python:3.12-slim@sha256:" + "0" * 64],
        }
    ),
]


def needs_library_prefix(image: str) -> bool:
    """Whether ``image`` is a single-component name (``node:18``), which Docker Hub serves only as ``library/node``.

    ECR does not add ``library/`` for Docker Hub official images (containers-roadmap#2211); the
    service applies this to docker-hub rules only.
    """
    return "/" not in parse_image_reference(image).repository


def with_library_prefix(image: str) -> str:
    """``image`` with ``library/`` prepended when :func:`needs_library_prefix` says so."""
    return f"library/{image}" if needs_library_prefix(image) else image

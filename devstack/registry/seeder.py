"""Push small synthetic images with real digests into a registry over the OCI distribution API.

The images are built by :mod:`.images` (a real config blob with ``os``/``architecture``, a tiny
gzip tar layer), pushed with :class:`~.oci.RegistryClient` (blob ``POST`` + monolithic ``PUT``,
manifest ``PUT``), and described by :class:`SeededImage` records that tests compare with what the
fake ECR serves: digests, media types, children and blobs.

:data:`DEFAULT_IMAGES` are the tags our users pull first (Docker Hub official images, so with the
``library/`` namespace, ecr-facts §3.1): three multi-platform indexes and two single-platform
images, in both the Docker and the OCI formats. :meth:`Seeder.move_tag` publishes a new version
under an existing tag -- a new digest -- which is what the 24-hour refresh has to notice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

from devstack.registry.images import (
    ImageBuild,
    IndexBuild,
    ManifestFormat,
    build_image,
    build_index,
)
from devstack.registry.oci import DEFAULT_TIMEOUT, RegistryClient

if TYPE_CHECKING:
    from devstack.registry.harness import LocalRegistry

__all__ = [
    "DEFAULT_IMAGES",
    "ImageSpec",
    "SeededImage",
    "SeededManifest",
    "Seeder",
]


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What to seed: ``repository:tag``, its platforms and manifest format; ``index`` = multi-platform."""

    repository: str
    tag: str
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
    fmt: ManifestFormat = ManifestFormat.DOCKER
    index: bool = True

    def __post_init__(self) -> None:
        if not self.index and len(self.platforms) != 1:
            raise ValueError(f"{self.repository}:{self.tag}: a single-platform image needs exactly one platform")

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


#: The tags our users pull first (the seed of ``ecrcache-registry --seed`` and of the tests).
DEFAULT_IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("library/node", "18-alpine"),
    ImageSpec("library/python", "3.12-slim", fmt=ManifestFormat.OCI),
    ImageSpec("library/ubuntu", "22.04"),
    ImageSpec("library/alpine", "3.20", platforms=("linux/amd64",), fmt=ManifestFormat.OCI, index=False),
    ImageSpec("library/nginx", "1.27", platforms=("linux/amd64",), index=False),
)


@dataclass(frozen=True, slots=True)
class SeededManifest:
    """One pushed single-platform image manifest."""

    digest: str
    media_type: str
    platform: str
    config_digest: str
    layer_digests: tuple[str, ...]

    @property
    def blob_digests(self) -> tuple[str, ...]:
        return (self.config_digest, *self.layer_digests)


@dataclass(frozen=True, slots=True)
class SeededImage:
    """What was pushed under ``repository:tag`` -- compare the fake ECR's answers with this."""

    repository: str
    tag: str
    digest: str
    media_type: str
    manifest: bytes = field(repr=False)
    children: tuple[SeededManifest, ...]
    blob_digests: tuple[str, ...]
    generation: int = 0

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def is_index(self) -> bool:
        return bool(self.children)

    @property
    def child_digests(self) -> tuple[str, ...]:
        return tuple(child.digest for child in self.children)

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(child.platform for child in self.children)

    def child_for(self, platform: str) -> SeededManifest:
        for child in self.children:
            if child.platform == platform:
                return child
        raise KeyError(f"{self.reference} has no {platform} image (has {', '.join(self.platforms) or 'none'})")


def _manifest_record(build: ImageBuild) -> SeededManifest:
    return SeededManifest(
        digest=build.digest,
        media_type=build.media_type,
        platform=str(build.platform),
        config_digest=build.config.digest,
        layer_digests=tuple(layer.digest for layer in build.layers),
    )


class Seeder:
    """Pushes images through one :class:`RegistryClient`; remembers generations for :meth:`move_tag`."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], tuple[ImageSpec, int]] = {}

    @classmethod
    def for_registry(cls, registry: LocalRegistry, *, timeout: float = DEFAULT_TIMEOUT) -> Seeder:
        """A seeder logged in to ``registry`` with its credentials (if it has any)."""
        creds = registry.credentials
        return cls(
            RegistryClient(
                registry.url,
                username=creds.username if creds else None,
                password=creds.password if creds else None,
                timeout=timeout,
            )
        )

    @classmethod
    def for_url(cls, url: str, *, username: str | None = None, password: str | None = None) -> Seeder:
        return cls(RegistryClient(url, username=username, password=password))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- pushing ----------------------------------------------------------------------------------
    def _push_single(self, repository: str, build: ImageBuild, reference: str) -> None:
        for blob in build.blobs:
            self.client.push_blob(repository, blob.data)
        self.client.put_manifest(repository, reference, build.manifest, build.media_type)

    def push_build(
        self, repository: str, tag: str, build: ImageBuild | IndexBuild, *, generation: int = 0
    ) -> SeededImage:
        """Push a prepared build under ``tag`` (children of an index first, by digest)."""
        if isinstance(build, IndexBuild):
            for child in build.children:
                self._push_single(repository, child, child.digest)
            self.client.put_manifest(repository, tag, build.manifest, build.media_type)
            children = tuple(_manifest_record(child) for child in build.children)
            blobs = tuple(dict.fromkeys(d for child in children for d in child.blob_digests))
        else:
            self._push_single(repository, build, tag)
            children = ()
            blobs = _manifest_record(build).blob_digests
        return SeededImage(
            repository=repository,
            tag=tag,
            digest=build.digest,
            media_type=build.media_type,
            manifest=build.manifest,
            children=children,
            blob_digests=blobs,
            generation=generation,
        )

    def push(self, spec: ImageSpec, *, generation: int = 0) -> SeededImage:
        """Build and push ``spec`` at ``generation`` (0 = the first version)."""
        build: ImageBuild | IndexBuild
        if spec.index:
            build = build_index(spec.repository, spec.tag, spec.platforms, fmt=spec.fmt, generation=generation)
        else:
            build = build_image(spec.repository, spec.tag, spec.platforms[0], fmt=spec.fmt, generation=generation)
        record = self.push_build(spec.repository, spec.tag, build, generation=generation)
        with self._lock:
            self._state[(spec.repository, spec.tag)] = (spec, generation)
        return record

    def seed(self, specs: tuple[ImageSpec, ...] = DEFAULT_IMAGES) -> list[SeededImage]:
        return [self.push(spec) for spec in specs]

    def seed_defaults(self) -> list[SeededImage]:
        """The tags users pull first (:data:`DEFAULT_IMAGES`)."""
        return self.seed(DEFAULT_IMAGES)

    def image(
        self,
        repository: str,
        tag: str,
        *,
        platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
        fmt: ManifestFormat = ManifestFormat.DOCKER,
        index: bool | None = None,
    ) -> SeededImage:
        """Shortcut: push one image (an index when there are several platforms)."""
        multi = len(platforms) > 1 if index is None else index
        return self.push(ImageSpec(repository, tag, platforms, fmt, multi))

    def move_tag(self, repository: str, tag: str, spec: ImageSpec | None = None) -> SeededImage:
        """Publish a new version (new digest) under an existing tag, like an upstream release would."""
        with self._lock:
            known = self._state.get((repository, tag))
        if spec is None:
            if known is not None:
                spec = known[0]
            else:
                spec = next((s for s in DEFAULT_IMAGES if (s.repository, s.tag) == (repository, tag)), None)
                if spec is None:
                    raise KeyError(f"{repository}:{tag} was not seeded by this seeder; pass its ImageSpec")
        generation = (known[1] if known is not None else 0) + 1
        return self.push(spec, generation=generation)

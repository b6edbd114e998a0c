"""Synthetic container images with real digests: media types, blobs, manifests and indexes.

Everything here is pure data (no I/O): the seeder pushes what these functions build, and the
tests compare what comes back with it. Builds are deterministic -- the same repository, tag,
platform and ``generation`` always give the same bytes and therefore the same digests -- so a
re-seed is idempotent and ``move_tag`` only has to bump ``generation`` to get a new digest.

Digests are ``sha256:<hex of the exact bytes>`` (OCI image spec, "Digests"): the manifest bytes
pushed are the bytes hashed, never re-serialised.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ALL_MANIFEST_MEDIA_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_V2",
    "INDEX_MEDIA_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "SINGLE_MANIFEST_MEDIA_TYPES",
    "Blob",
    "Descriptor",
    "ImageBuild",
    "IndexBuild",
    "ManifestFormat",
    "Platform",
    "build_image",
    "build_index",
    "descriptors_of",
    "is_index",
    "parse_digest",
    "sha256_digest",
    "verify_digest",
]

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

SINGLE_MANIFEST_MEDIA_TYPES: tuple[str, ...] = (DOCKER_MANIFEST_V2, OCI_MANIFEST)
INDEX_MEDIA_TYPES: tuple[str, ...] = (DOCKER_MANIFEST_LIST, OCI_INDEX)
#: What a client that understands every modern manifest kind sends as ``Accept``.
ALL_MANIFEST_MEDIA_TYPES: tuple[str, ...] = (*SINGLE_MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES)

_DIGEST_RE = re.compile(r"^(?P<algorithm>sha256|sha512):(?P<hex>[a-f0-9]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}


class ManifestFormat(StrEnum):
    """Which family of media types an image is built with."""

    DOCKER = "docker"  # Docker image manifest v2 schema 2 / manifest list
    OCI = "oci"  # OCI image manifest / OCI image index

    @property
    def manifest_media_type(self) -> str:
        return DOCKER_MANIFEST_V2 if self is ManifestFormat.DOCKER else OCI_MANIFEST

    @property
    def index_media_type(self) -> str:
        return DOCKER_MANIFEST_LIST if self is ManifestFormat.DOCKER else OCI_INDEX

    @property
    def config_media_type(self) -> str:
        return DOCKER_CONFIG if self is ManifestFormat.DOCKER else OCI_CONFIG

    @property
    def layer_media_type(self) -> str:
        return DOCKER_LAYER if self is ManifestFormat.DOCKER else OCI_LAYER


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data`` -- the content address of a blob or manifest."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_digest(digest: str) -> tuple[str, str]:
    """Split ``algorithm:hex`` and check it; raise ``ValueError`` naming the problem."""
    match = _DIGEST_RE.match(digest)
    if match is None:
        raise ValueError(f"invalid digest {digest!r}: expected 'sha256:<64 hex>' or 'sha512:<128 hex>'")
    algorithm, hex_part = match["algorithm"], match["hex"]
    if len(hex_part) != _HEX_LENGTH[algorithm]:
        raise ValueError(f"invalid digest {digest!r}: {algorithm} needs {_HEX_LENGTH[algorithm]} hex characters")
    return algorithm, hex_part


def verify_digest(data: bytes, digest: str) -> bool:
    """True when ``digest`` (sha256 or sha512) is the hash of exactly ``data``."""
    algorithm, hex_part = parse_digest(digest)
    return hashlib.new(algorithm, data).hexdigest() == hex_part


def is_index(media_type: str) -> bool:
    """A Docker manifest list or an OCI image index (a manifest of manifests)."""
    return media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class Platform:
    """``os``/``architecture``[/``variant``] as in an index entry's ``platform`` object."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64`` or ``linux/arm64/v8``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def as_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about the content it points at."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.platform is not None:
            out["platform"] = self.platform.as_json()
        return out


@dataclass(frozen=True, slots=True)
class Blob:
    """Bytes plus their media type; the digest is computed, never given."""

    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True, slots=True)
class ImageBuild:
    """One single-platform image: its manifest bytes, config blob and layer blobs."""

    media_type: str
    manifest: bytes = field(repr=False)
    config: Blob
    layers: tuple[Blob, ...]
    platform: Platform

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Config first, then layers: everything a pull downloads besides the manifest."""
        return (self.config, *self.layers)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.manifest), self.platform)


@dataclass(frozen=True, slots=True)
class IndexBuild:
    """A multi-platform index (OCI) or manifest list (Docker) and the images it points at."""

    media_type: str
    manifest: bytes = field(repr=False)
    children: tuple[ImageBuild, ...]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def _canonical_json(value: dict[str, Any]) -> bytes:
    # Stable bytes: the digest is the hash of exactly these bytes.
    return json.dumps(value, indent=3, sort_keys=False).encode()


def _layer_tar_gz(path: str, content: bytes) -> bytes:
    """A one-file tar, gzip-compressed, with every timestamp fixed (deterministic bytes)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(path)
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def build_image(
    repository: str,
    tag: str,
    platform: Platform | str = "linux/amd64",
    *,
    fmt: ManifestFormat | str = ManifestFormat.DOCKER,
    generation: int = 0,
    layer_count: int = 1,
) -> ImageBuild:
    """A small real image: a config blob with ``os``/``architecture`` and tiny gzip tar layers.

    ``generation`` changes the file content, so the layer, config and manifest digests all change:
    that is how a test "publishes a new version" under the same tag.
    """
    if layer_count < 1:
        raise ValueError("layer_count must be at least 1")
    plat = Platform.parse(platform) if isinstance(platform, str) else platform
    form = ManifestFormat(fmt)
    layers = tuple(
        Blob(
            form.layer_media_type,
            _layer_tar_gz(
                f"etc/ecrcache/layer{i}",
                f"{repository}:{tag} platform={plat} generation={generation} layer={i}\n".encode(),
            ),
        )
        for i in range(layer_count)
    )
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(layer.data)).hexdigest() for layer in layers]
    config_json: dict[str, Any] = {
        "architecture": plat.architecture,
        "os": plat.os,
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"ecrcache seeder generation {generation}"}],
    }
    if plat.variant:
        config_json["variant"] = plat.variant
    config = Blob(form.config_media_type, _canonical_json(config_json))
    manifest_json: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": form.manifest_media_type,
        "config": config.descriptor().as_json(),
        "layers": [layer.descriptor().as_json() for layer in layers],
    }
    return ImageBuild(form.manifest_media_type, _canonical_json(manifest_json), config, layers, plat)


def build_index(
    repository: str,
    tag: str,
    platforms: tuple[Platform | str, ...] = ("linux/amd64", "linux/arm64"),
    *,
    fmt: ManifestFormat | str = ManifestFormat.DOCKER,
    generation: int = 0,
) -> IndexBuild:
    """A multi-platform index whose every child is a real image for that platform."""
    if not platforms:
        raise ValueError("an index needs at least one platform")
    form = ManifestFormat(fmt)
    children = tuple(build_image(repository, tag, p, fmt=form, generation=generation) for p in platforms)
    index_json: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": form.index_media_type,
        "manifests": [child.descriptor().as_json() for child in children],
    }
    return IndexBuild(form.index_media_type, _canonical_json(index_json), children)


def descriptors_of(manifest: bytes) -> tuple[list[Descriptor], list[Descriptor]]:
    """Parse a manifest: ``(children, blobs)`` -- index entries, or config + layers of an image."""
    doc = json.loads(manifest)
    if not isinstance(doc, dict):
        raise ValueError("a manifest must be a JSON object")
    children = [
        Descriptor(
            str(m.get("mediaType", "")),
            str(m["digest"]),
            int(m.get("size", 0)),
            Platform(
                str(m["platform"].get("os", "")),
                str(m["platform"].get("architecture", "")),
                m["platform"].get("variant"),
            )
            if isinstance(m.get("platform"), dict)
            else None,
        )
        for m in doc.get("manifests", [])
    ]
    blobs: list[Descriptor] = []
    config = doc.get("config")
    if isinstance(config, dict) and "digest" in config:
        blobs.append(Descriptor(str(config.get("mediaType", "")), str(config["digest"]), int(config.get("size", 0))))
    blobs.extend(
        Descriptor(str(layer.get("mediaType", "")), str(layer["digest"]), int(layer.get("size", 0)))
        for layer in doc.get("layers", [])
    )
    return children, blobs

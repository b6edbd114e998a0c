"""The seeder: real images with real digests, verified through our own OCI client (ecr-facts §3.4)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from devstack.registry import (
    DEFAULT_IMAGES,
    LocalRegistry,
    ManifestFormat,
    RegistryClient,
    SeededImage,
    Seeder,
    sha256_digest,
)
from devstack.registry.images import (
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    OCI_MANIFEST,
    build_image,
    build_index,
)

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional


def _by_reference(seeded: list[SeededImage]) -> dict[str, SeededImage]:
    return {image.reference: image for image in seeded}


def test_default_images_are_the_tags_users_pull_first(seeded: list[SeededImage]) -> None:
    """DESIGN "Local embedded stack": node, python, ubuntu, alpine, nginx; most multi-platform."""
    # GIVEN the default seed  THEN every image is there with the expected kind of manifest
    images = _by_reference(seeded)
    assert set(images) == {
        "library/node:18-alpine",
        "library/python:3.12-slim",
        "library/ubuntu:22.04",
        "library/alpine:3.20",
        "library/nginx:1.27",
    }
    assert images["library/node:18-alpine"].media_type == DOCKER_MANIFEST_LIST
    assert images["library/python:3.12-slim"].media_type == OCI_INDEX
    assert images["library/alpine:3.20"].media_type == OCI_MANIFEST
    assert images["library/nginx:1.27"].media_type == DOCKER_MANIFEST_V2
    multi = [image for image in seeded if image.is_index]
    assert len(multi) == 3
    assert all(image.platforms == ("linux/amd64", "linux/arm64") for image in multi)


def test_every_digest_is_the_sha256_of_the_served_bytes(registry: LocalRegistry, seeded: list[SeededImage]) -> None:
    """ecr-facts §3.4 / tooling.md gotcha 6: digests are sha256(bytes), manifests and blobs alike."""
    with RegistryClient(registry.url) as client:
        for image in seeded:
            # WHEN each tag is fetched back through our client (which verifies digests itself)
            fetched = client.get_manifest(image.repository, image.tag)
            # THEN the digest is the hash of the exact bytes, and equals what the seeder recorded
            assert fetched.digest == sha256_digest(fetched.body) == image.digest
            assert fetched.media_type == image.media_type
            assert [child.digest for child in fetched.children] == list(image.child_digests)
            for child in image.children:
                child_manifest = client.get_manifest(image.repository, child.digest)
                assert sha256_digest(child_manifest.body) == child.digest
                assert child_manifest.media_type == child.media_type
            for blob in image.blob_digests:
                assert sha256_digest(client.get_blob(image.repository, blob)) == blob


def test_each_child_is_a_real_image_for_its_platform(registry: LocalRegistry, seeded: list[SeededImage]) -> None:
    """ecr-facts §3.4: an index's children are images whose config names os/architecture."""
    node = _by_reference(seeded)["library/node:18-alpine"]
    with RegistryClient(registry.url) as client:
        for child in node.children:
            # WHEN the child's config blob and layer are downloaded
            config = json.loads(client.get_blob(node.repository, child.config_digest))
            layer = client.get_blob(node.repository, child.layer_digests[0])
            # THEN the config matches the platform and the layer is a gzip tar with one file
            assert f"{config['os']}/{config['architecture']}" == child.platform
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
                assert tar.getnames() == ["etc/ecrcache/layer0"]
            diff_id = sha256_digest(gzip.decompress(layer))
            assert config["rootfs"]["diff_ids"] == [diff_id]


def test_move_tag_publishes_a_new_digest_and_keeps_the_old_one(seeder: Seeder, unique_repo: str) -> None:
    """ecr-facts §3.2: an upstream tag moves to a new digest (what the 24-hour refresh must notice)."""
    # GIVEN an image under a tag
    first = seeder.image(unique_repo, "latest")
    # WHEN the tag is moved
    moved = seeder.move_tag(unique_repo, "latest")
    # THEN the tag points at a new digest, children and blobs are new too, the old digest still resolves
    assert moved.digest != first.digest
    assert moved.generation == first.generation + 1
    assert set(moved.child_digests).isdisjoint(first.child_digests)
    assert set(moved.blob_digests).isdisjoint(first.blob_digests)
    assert seeder.client.get_manifest(unique_repo, "latest").digest == moved.digest
    assert seeder.client.get_manifest(unique_repo, first.digest).digest == first.digest
    # WHEN moved again THEN yet another digest
    assert seeder.move_tag(unique_repo, "latest").digest not in {first.digest, moved.digest}


def test_builds_are_deterministic() -> None:
    """Re-seeding is idempotent: the same inputs give the same bytes, hence the same digests."""
    assert build_index("a/b", "1").digest == build_index("a/b", "1").digest
    assert build_image("a/b", "1", fmt=ManifestFormat.OCI).digest == build_image("a/b", "1", fmt="oci").digest
    assert build_image("a/b", "1").digest != build_image("a/b", "1", generation=1).digest
    assert build_image("a/b", "1", "linux/arm64/v8").platform.variant == "v8"


def test_seeding_is_idempotent_and_works_with_auth(auth_seeder: Seeder, unique_repo: str) -> None:
    """A second push of the same spec is a no-op with the same digest (htpasswd registry)."""
    spec = DEFAULT_IMAGES[0]
    first = auth_seeder.push(type(spec)(unique_repo, "18-alpine"))
    again = auth_seeder.push(type(spec)(unique_repo, "18-alpine"))
    assert first.digest == again.digest


def test_move_tag_of_an_unknown_tag_needs_its_spec(seeder: Seeder) -> None:
    with pytest.raises(KeyError, match="pass its ImageSpec"):
        seeder.move_tag("team/never-seeded", "v1")

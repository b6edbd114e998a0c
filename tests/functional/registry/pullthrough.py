"""Pytest plugin: the embedded ECR wired to local upstream registries (``ptc``), for pull-through tests.

Load with ``pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]``
from a module under ``tests/functional/embedded_aws/`` (it needs that directory's ``embedded_aws``
fixture). See :mod:`tests.functional.registry.support` for the host -> registry table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from devstack.aws import ecr_pullthrough, upstream
from devstack.registry import FaultProxy, LocalRegistry, SeededImage, Seeder, UpstreamMap
from tests.functional.registry.support import CREATE_REPOSITORY_PATTERN, PTC_PATTERN, PullThrough

if TYPE_CHECKING:
    from tests.functional.embedded_aws.conftest import EmbeddedAws

__all__ = ["ptc", "token_seeded"]


@pytest.fixture(scope="session")
def token_seeded(token_registry: LocalRegistry) -> list[SeededImage]:
    """The default images pushed into the Bearer-token registry (the stand-in for Docker Hub)."""
    with Seeder.for_registry(token_registry) as seeder:
        return seeder.seed_defaults()


@pytest.fixture
def ptc(  # noqa: PLR0917 - pytest passes fixtures by name
    embedded_aws: EmbeddedAws,
    registry: LocalRegistry,
    auth_registry: LocalRegistry,
    token_registry: LocalRegistry,
    fault_proxy: FaultProxy,
    seeded: list[SeededImage],
    token_seeded: list[SeededImage],
) -> Iterator[PullThrough]:
    """The embedded ECR with upstream hosts mapped to local registries (see the module docstring)."""
    mapping = UpstreamMap(
        {
            "registry-1.docker.io": token_registry.url,
            "ghcr.io": auth_registry.url,
            "public.ecr.aws": registry.url,
            "quay.io": fault_proxy.url,
            "*.dkr.ecr.*.amazonaws.com": registry.url,
        }
    )
    with upstream.configured(upstream_map=mapping, timeout=1.0), ecr_pullthrough.layer_imports("immediate"):
        yield PullThrough(
            aws=embedded_aws,
            registry=registry,
            auth_registry=auth_registry,
            token_registry=token_registry,
            fault_proxy=fault_proxy,
            actions_queue=embedded_aws.spy(PTC_PATTERN, name="ptc-actions"),
            trail_queue=embedded_aws.spy(CREATE_REPOSITORY_PATTERN, name="ptc-trail"),
        )

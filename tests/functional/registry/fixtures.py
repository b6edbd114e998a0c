"""Pytest plugin: local OCI registries (Debian ``docker-registry``) for functional tests.

Load it from a test module with ``pytest_plugins = ["tests.functional.registry.fixtures"]`` (a
module may register a plugin; a non-root conftest may not, and registering a conftest as a plugin
fails with "Plugin already registered"). Fixtures:

* ``registry`` -- session-scoped anonymous registry (like ``public.ecr.aws``/``quay.io``);
* ``auth_registry`` -- session-scoped htpasswd registry (HTTP Basic, ``AUTH_CREDENTIALS``);
* ``token_registry`` -- session-scoped Bearer-token registry (Docker Hub/GHCR style, ``AUTH_CREDENTIALS``,
  no anonymous pulls);
* ``seeded`` -- :data:`DEFAULT_IMAGES` pushed once into ``registry`` (read-only by convention:
  tests that move tags seed their own repository, see ``unique_repo``);
* ``seeder`` / ``auth_seeder`` / ``token_seeder`` -- a :class:`Seeder` logged in to each registry;
* ``fault_proxy`` -- a :class:`FaultProxy` in front of ``registry`` (function-scoped: clean faults);
* ``unique_repo`` -- a repository name no other test uses.

Session-scoped registries are safe to share because tests only add content under their own
repository names. Every process is stopped at teardown, also when a test fails.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from devstack.registry import (
    AuthMode,
    FaultProxy,
    LocalRegistry,
    SeededImage,
    Seeder,
)
from tests.functional.registry.support import AUTH_CREDENTIALS

__all__ = [
    "AUTH_CREDENTIALS",
    "auth_registry",
    "auth_seeder",
    "fault_proxy",
    "registry",
    "seeded",
    "seeder",
    "token_registry",
    "token_seeder",
    "unique_repo",
]

_counter = itertools.count()


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    """An anonymous ``docker-registry`` on a free loopback port."""
    with LocalRegistry() as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[LocalRegistry]:
    """A ``docker-registry`` with htpasswd (bcrypt) Basic auth."""
    with LocalRegistry(auth=AuthMode.HTPASSWD, credentials=AUTH_CREDENTIALS) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry() -> Iterator[LocalRegistry]:
    """A ``docker-registry`` with Bearer token auth from a local token server."""
    with LocalRegistry(auth=AuthMode.TOKEN, credentials=AUTH_CREDENTIALS) as reg:
        yield reg


@pytest.fixture(scope="session")
def seeded(registry: LocalRegistry) -> list[SeededImage]:
    """The default images (node, python, ubuntu, alpine, nginx) pushed into ``registry``."""
    with Seeder.for_registry(registry) as seeder:
        return seeder.seed_defaults()


@pytest.fixture
def seeder(registry: LocalRegistry) -> Iterator[Seeder]:
    with Seeder.for_registry(registry) as s:
        yield s


@pytest.fixture
def auth_seeder(auth_registry: LocalRegistry) -> Iterator[Seeder]:
    with Seeder.for_registry(auth_registry) as s:
        yield s


@pytest.fixture
def token_seeder(token_registry: LocalRegistry) -> Iterator[Seeder]:
    with Seeder.for_registry(token_registry) as s:
        yield s


@pytest.fixture
def fault_proxy(registry: LocalRegistry) -> Iterator[FaultProxy]:
    """A fault-injecting reverse proxy in front of ``registry`` (faults cleared per test)."""
    with FaultProxy(registry.url, max_delay=5.0) as proxy:
        yield proxy


@pytest.fixture
def unique_repo(request: pytest.FixtureRequest) -> str:
    """``team/<test name>-<n>``: a valid repository name unique to this test."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"team/{name or 'test'}-{next(_counter)}"

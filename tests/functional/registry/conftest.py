"""Local OCI registry tests.

The fixtures (``registry``, ``auth_registry``, ``token_registry``, ``seeded``, ``seeder``,
``fault_proxy``, ``unique_repo`` ...) live in :mod:`tests.functional.registry.fixtures`, a plugin
that test modules load with ``pytest_plugins = ["tests.functional.registry.fixtures"]``: that way
the pull-through tests under ``tests/functional/embedded_aws/`` share the same session-scoped
registries (pytest refuses ``pytest_plugins`` in a non-root conftest, and refuses to register a
conftest a second time as a plugin).
"""

from __future__ import annotations

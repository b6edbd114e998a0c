"""The warm worker on the embedded AWS and the local registries.

The embedded AWS fixtures live in ``tests/functional/embedded_aws/conftest.py`` (a sibling directory's
conftest, which pytest does not share): they are imported here so the ``ptc`` plugin
(:mod:`tests.functional.registry.pullthrough`, loaded by the test modules) finds ``embedded_aws``.
"""

from __future__ import annotations

from tests.functional.embedded_aws.conftest import _aws_clients, embedded_aws

__all__ = ["_aws_clients", "embedded_aws"]

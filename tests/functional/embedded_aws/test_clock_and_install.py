"""The injectable clock and the single ``install()`` entry point of the embedded AWS."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.ecr.models import ECRBackend
from moto.ecr.responses import ECRResponse

from devstack.aws import PULLTHROUGH_MODULE, clock, ecr_lifecycle, install, installed
from devstack.aws.common import PATCH_MARK, patch_once
from tests.functional.embedded_aws.conftest import EmbeddedAws

pytestmark = pytest.mark.functional


def test_fake_clock_context_manager_and_advance() -> None:
    """ecr-facts §9.13: injectable time: FakeClock freezes it, advance() moves it, exit restores the clock."""
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with clock.FakeClock(start) as fake:
        assert clock.now() == start
        assert fake.advance(hours=25) == start + timedelta(hours=25)
        assert clock.advance(timedelta(minutes=5)) == start + timedelta(hours=25, minutes=5)
        with clock.FakeClock(datetime(2030, 1, 1, tzinfo=UTC)):
            assert clock.now().year == 2030
        assert clock.now() == start + timedelta(hours=25, minutes=5)
        with pytest.raises(ValueError, match="forward"):
            clock.advance(timedelta(seconds=-1))
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    assert clock.now().tzinfo is not None


def test_set_clock_accepts_any_function() -> None:
    """ecr-facts §9.13: set_clock takes any () -> datetime (naive = UTC); None restores the system clock."""
    clock.set_clock(lambda: datetime(2026, 7, 1, 8, 30))
    try:
        assert clock.now() == datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
        assert clock.epoch_seconds() == datetime(2026, 7, 1, 8, 30, tzinfo=UTC).timestamp()
    finally:
        clock.set_clock(None)


def test_install_is_idempotent_and_includes_the_data_plane(embedded_aws: EmbeddedAws) -> None:
    """One entry point: install() patches moto ECR classes once, loads ecr_pullthrough if present."""
    assert installed()
    handler = getattr(ECRResponse, "create_pull_through_cache_rule")  # noqa: B009 - added by install()
    install()
    assert getattr(ECRResponse, "create_pull_through_cache_rule") is handler  # noqa: B009
    ecr_lifecycle.install()  # even a module's own install() never wraps twice
    wrapped = ECRBackend.put_image
    assert not getattr(wrapped.__wrapped__, PATCH_MARK, False)  # type: ignore[attr-defined]
    for name in (
        "create_pull_through_cache_rule",
        "create_repository_creation_template",
        "get_lifecycle_policy_preview",
    ):
        assert callable(getattr(ECRBackend, name))
    assert importlib.util.find_spec(PULLTHROUGH_MODULE) is None or PULLTHROUGH_MODULE in sys.modules
    assert embedded_aws.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []


def test_patch_once_wraps_once_per_mark_and_each_mark_over_the_other() -> None:
    class Owner:
        def greet(self) -> str:
            return "hello"

    def shout(original: Any) -> Any:
        return lambda self: original(self).upper()

    def exclaim(original: Any) -> Any:
        return lambda self: original(self) + "!"

    # WHEN one extension installs twice, and another wraps the same method
    patch_once(Owner, "greet", shout, mark="_first")
    patch_once(Owner, "greet", shout, mark="_first")
    patch_once(Owner, "greet", exclaim, mark="_second")
    patch_once(Owner, "greet", exclaim, mark="_second")
    # THEN each wrapped it once, the second over the first
    assert Owner().greet() == "HELLO!"

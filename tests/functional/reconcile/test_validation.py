"""The daily deep resync checks every credential rule against its upstream (ValidatePullThroughCacheRule)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ecrcache.models.credential import CredentialSpec
from ecrcache.models.rule import RuleSpec
from ecrcache.services.reconcile import Scope
from tests.conftest import REGION
from tests.functional.reconcile.conftest import ALICE, World

pytestmark = pytest.mark.functional


def test_deep_resync_validates_credential_rules_and_fast_resync_does_not(world: World) -> None:
    # GIVEN a converged Docker Hub rule (validated once, when it was created) and a Quay rule
    hub = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ci"})
    world.desired.put_credential("hub", hub, SecretStr("dckr_pat_x"), actor=ALICE)
    docker_hub = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"})
    world.desired.put_rule("docker-hub", docker_hub, actor=ALICE)
    world.desired.put_rule("quay", RuleSpec.model_validate({"upstream_kind": "quay"}), actor=ALICE)
    world.reconcile()
    first = world.reconciler.status.rule_status(REGION, "docker-hub")
    assert first is not None and first.validation.checked_at is not None
    calls = world.registries[REGION].calls

    # WHEN a fast resync runs THEN no credential is validated
    before = calls["ValidatePullThroughCacheRule"]
    world.reconcile()
    assert calls["ValidatePullThroughCacheRule"] == before

    # WHEN a deep resync runs THEN the credential rule (only it) is validated again, its result recorded
    world.reconcile(Scope(deep=True))
    assert calls["ValidatePullThroughCacheRule"] == before + 1
    again = world.reconciler.status.rule_status(REGION, "docker-hub")
    assert again is not None and again.validation.checked_at is not None
    assert again.validation.checked_at > first.validation.checked_at
    quay = world.reconciler.status.rule_status(REGION, "quay")
    assert quay is not None and quay.validation.checked_at is None

"""Repositories really cached through the pull-through path, from a local OCI registry standing in
for ``public.ecr.aws``: the events ECR emits when it creates one reach the reconciler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.aws import ecr_pullthrough, events, upstream
from devstack.registry import LocalRegistry, SeededImage, UpstreamMap
from devstack.registry.images import ALL_MANIFEST_MEDIA_TYPES
from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import Scope
from tests.conftest import REGION
from tests.functional.reconcile.conftest import World
from tests.functional.reconcile.support import CREATION_ROLE, Admin, Look, Principal, Reconciler

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

REPOSITORY = "ecr-public/library/alpine"
SPEC: dict[str, Any] = {
    "upstream_kind": "ecr-public",
    "lifecycle": {"presets": {"keep_last": 10}},
    "repository": {
        "tag_mutability": "IMMUTABLE_WITH_EXCLUSION",
        "tag_mutability_exclusions": ["latest", "3.*"],
        "tags": {"team": "platform"},
        "creation_role_arn": CREATION_ROLE,
    },
}


@pytest.fixture
def public_ecr(world: World, registry: LocalRegistry, seeded: list[SeededImage]) -> Iterator[None]:
    """``public.ecr.aws`` served by the local anonymous registry holding the default images."""
    assert any(image.reference == "library/alpine:3.20" for image in seeded)
    mapping = UpstreamMap({"public.ecr.aws": registry.url})
    with upstream.configured(upstream_map=mapping, timeout=1.0), ecr_pullthrough.layer_imports("immediate"):
        yield


def _pull(world: World) -> None:
    """A CI runner pulls ``alpine:3.20`` through the cache (first pull: ECR creates the repository)."""
    response = world.ecr.batch_get_image(
        repositoryName=REPOSITORY, imageIds=[{"imageTag": "3.20"}], acceptedMediaTypes=list(ALL_MANIFEST_MEDIA_TYPES)
    )
    assert response["failures"] == []


def _rendered_lifecycle() -> dict[str, Any]:
    lifecycle = RuleSpec.model_validate(SPEC).lifecycle
    assert lifecycle is not None
    policy: dict[str, Any] = json.loads(lifecycle.render_text())
    return policy


@pytest.mark.usefixtures("public_ecr")
def test_repository_created_by_a_pull_through_the_template_is_recorded_without_a_write(
    controller: Reconciler, alice: Admin, look: Look, world: World
) -> None:
    # GIVEN a converged rule: its creation template carries the repository settings
    alice.put_rule("ecr-public", SPEC)
    controller.converge()
    controller.reset_calls()

    # WHEN an image is pulled through it for the first time
    _pull(world)

    # THEN ECR created the repository from the template, and told EventBridge twice
    assert look.lifecycle(REPOSITORY) == _rendered_lifecycle()
    routed = controller.pending_events()
    assert [(e["detail-type"], e["detail"].get("eventName")) for e in routed] == [
        ("AWS API Call via CloudTrail", "CreateRepository"),
        ("ECR Pull Through Cache Action", None),
    ]
    assert routed[0]["detail"]["userIdentity"] == {
        "type": "AWSService",
        "invokedBy": ecr_pullthrough.PULL_THROUGH_SERVICE,
    }

    # WHEN the first reaches the function
    (first,) = controller.deliver(routed[:1])
    # THEN it reads that repository deeply, finds it as the rule wants, and writes nothing to ECR
    assert (first.run.trigger, first.run.scope) == (RunTrigger.CLOUDTRAIL, f"{REGION}:fast+1")
    assert set(controller.calls) >= PER_REPOSITORY_READS
    assert controller.writes() == {}
    # THEN what it holds is recorded, with the repository's creation: settled
    assert first.run.summary.get("record_applied") == 1
    assert look.status.applied(REGION)[REPOSITORY].created_at is not None
    # WHEN the second event about the same new repository reaches the function
    controller.reset_calls()
    (second,) = controller.deliver(routed[1:])
    # THEN that repository is not read again (one deep read per new repository, not one per event about it)
    assert (second.run.trigger, second.run.status) == (RunTrigger.CACHE_EVENT, RunStatus.SUCCEEDED)
    assert not PER_REPOSITORY_READS & set(controller.calls)
    assert controller.writes() == {}
    # THEN the fast resync has nothing to do for it either
    assert world.reconciler.plan().is_empty
    assert world.reconciler.plan(Scope(deep=True)).is_empty


@pytest.mark.usefixtures("public_ecr")
def test_a_repository_deleted_and_cached_again_is_read_again(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a repository cached through a converged rule, settled by the reconciler
    alice.put_rule("ecr-public", SPEC)
    controller.converge()
    _pull(world)
    controller.deliver_events()
    first = look.status.applied(REGION)[REPOSITORY].created_at
    assert first is not None
    # WHEN someone deletes it, and the next pull caches it again (no run saw it gone: its record stays)
    bob.ecr.delete_repository(repositoryName=REPOSITORY, force=True)
    controller.pending_events()
    _pull(world)
    controller.reset_calls()
    deliveries = controller.deliver_events()
    # THEN its events read the new repository deeply (its record was of the one deleted), once
    assert [d.run.status for d in deliveries] == [RunStatus.SUCCEEDED] * len(deliveries)
    assert controller.calls["ListTagsForResource"] == 1
    again = look.status.applied(REGION)[REPOSITORY].created_at
    assert again is not None and again != first
    assert world.reconciler.plan(Scope(deep=True)).is_empty


@pytest.mark.usefixtures("public_ecr")
def test_repository_cached_by_a_hand_made_rule_gets_the_settings_once_the_rule_is_desired(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a rule made by hand, and an image already cached through it (no template: ECR defaults)
    bob.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ecr-public", upstreamRegistryUrl="public.ecr.aws")
    _pull(world)
    assert look.lifecycle(REPOSITORY) is None
    controller.pending_events()

    # WHEN the same rule, with repository settings, is PUT through the API: Blocked (someone else's rule,
    # its repositories are left alone) until the rule says adopt: true
    alice.put_rule("ecr-public", SPEC)
    controller.deliver_stream()
    assert controller.writes() == {}
    assert look.lifecycle(REPOSITORY) is None
    alice.put_rule("ecr-public", {**SPEC, "adopt": True})
    controller.deliver_stream()

    # THEN the rule is adopted, the template created, and the cached repository patched
    assert controller.writes() == {
        "CreateRepositoryCreationTemplate": 1,
        "PutLifecyclePolicy": 1,
        "TagResource": 1,
        "PutImageTagMutability": 1,
    }
    assert "ecr-public" in look.owned().rules
    assert look.lifecycle(REPOSITORY) == _rendered_lifecycle()
    assert look.tags(REPOSITORY) == {"team": "platform"}
    assert look.mutability(REPOSITORY) == ("IMMUTABLE_WITH_EXCLUSION", ["latest", "3.*"])
    assert world.reconciler.plan(Scope(deep=True)).is_empty


@pytest.mark.usefixtures("public_ecr")
def test_template_drift_missed_by_its_event_is_repaired_when_the_next_pull_creates_a_repository(
    controller: Reconciler, alice: Admin, bob: Principal, look: Look, world: World
) -> None:
    # GIVEN a converged rule whose template someone stripped of its lifecycle, the event lost
    alice.put_rule("ecr-public", SPEC)
    controller.converge()
    events.faults.drop(count=1, event_name="UpdateRepositoryCreationTemplate")
    bob.ecr.update_repository_creation_template(prefix="ecr-public", lifecyclePolicy="")
    assert controller.pending_events() == []

    # WHEN an image is pulled for the first time: the repository is created without a lifecycle
    _pull(world)
    assert look.lifecycle(REPOSITORY) is None
    [created, _cached] = controller.deliver_events()

    # THEN the first event's run repaired the template and the new repository
    assert created.run.summary.get("update_template") == 1
    assert created.run.summary.get("put_lifecycle_policy") == 1
    template = look.template("ecr-public")
    assert template is not None
    assert json.loads(template["lifecyclePolicy"]) == _rendered_lifecycle()
    assert look.lifecycle(REPOSITORY) == _rendered_lifecycle()
    assert world.reconciler.plan(Scope(deep=True)).is_empty

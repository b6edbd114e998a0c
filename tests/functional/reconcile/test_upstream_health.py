"""Upstream failures reach the rule's status: a real failing upstream, the embedded ECR, the reconciler.

The upstream (``quay.io``) is a local registry behind a fault proxy. A pull through the cache that
fails there makes ECR emit a failed ``ECR Pull Through Cache Action``; EventBridge routes it with the
template's pattern to the reconciler function, which records the rule's ``UpstreamHealthy`` condition
(no reconcile); the next successful pull clears it. A credential rule's validation does the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from devstack.aws import ecr_pullthrough, upstream
from devstack.registry import FaultKind, FaultProxy, SeededImage, UpstreamMap
from devstack.registry.images import ALL_MANIFEST_MEDIA_TYPES
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.rule import RuleSpec
from ecrcache.models.status import ConditionType, RuleStatus
from ecrcache.services.reconcile import Scope
from tests.conftest import REGION
from tests.functional.api.client import ApiClient
from tests.functional.reconcile.conftest import ALICE, World
from tests.functional.reconcile.support import GOOD_TOKEN, Admin, Look, Reconciler

pytest_plugins = ["tests.functional.registry.fixtures"]
pytestmark = pytest.mark.functional

REPOSITORY = "quay/library/alpine"
PTC = "ECR Pull Through Cache Action"


@pytest.fixture
def quay(world: World, fault_proxy: FaultProxy, seeded: list[SeededImage]) -> Iterator[FaultProxy]:
    """``quay.io`` served by the local registry through the fault proxy (client timeout 1 s)."""
    assert any(image.reference == "library/alpine:3.20" for image in seeded)
    mapping = UpstreamMap({"quay.io": fault_proxy.url})
    with upstream.configured(upstream_map=mapping, timeout=1.0), ecr_pullthrough.layer_imports("immediate"):
        yield fault_proxy


def _pull(world: World) -> list[dict[str, Any]]:
    """A client pulls ``alpine:3.20`` through the cache; the failures ECR answers."""
    response = world.ecr.batch_get_image(
        repositoryName=REPOSITORY, imageIds=[{"imageTag": "3.20"}], acceptedMediaTypes=list(ALL_MANIFEST_MEDIA_TYPES)
    )
    return [dict(failure) for failure in response["failures"]]


def _upstream(look: Look, prefix: str = "quay") -> tuple[bool, str, str] | None:
    status = look.rule_status(prefix)
    condition = status.condition(ConditionType.UPSTREAM_HEALTHY) if status else None
    return None if condition is None else (condition.status, condition.reason, condition.message)


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        (FaultKind.UNAUTHORIZED, "UpstreamAccessDenied", "CredentialRejected"),
        (FaultKind.TOO_MANY_REQUESTS, "UpstreamTooManyRequests", "RateLimited"),
        (FaultKind.NOT_FOUND, "ImageNotFound", "ImageNotFound"),
        (FaultKind.TIMEOUT, "UpstreamUnavailable", "UpstreamUnavailable"),  # a hung upstream
    ],
)
def test_a_failing_upstream_reaches_the_rules_status_and_clears_when_pulls_succeed(  # noqa: PLR0917
    controller: Reconciler,
    alice: Admin,
    look: Look,
    world: World,
    quay: FaultProxy,
    api: ApiClient,
    fault: FaultKind,
    code: str,
    reason: str,
) -> None:
    # GIVEN a converged Quay rule (no credential)
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.converge()
    status = look.rule_status("quay")
    assert status is not None and status.synced
    assert _upstream(look) is None  # nothing pulled yet: unknown

    # WHEN the upstream fails a pull through the cache
    quay.faults.add(fault, times=5, path=r"/manifests/", delay=2.0)
    [failure] = _pull(world)
    assert failure["failureCode"] == code
    quay.faults.clear()

    # THEN ECR's failed event is routed to the function by the template's pattern, and recorded, not reconciled
    routed = controller.pending_events()
    [failed] = [e for e in routed if e["detail-type"] == PTC]
    assert failed["detail"]["sync-status"] != "SUCCESS"
    runs_before = len(look.runs())
    deliveries = controller.deliver(routed)
    [answer] = [d.response for d in deliveries if d.envelope["detail-type"] == PTC]
    assert answer == {"upstream": {"region": REGION, "prefix": "quay", "healthy": False, "reason": reason}}
    healthy, why, message = _upstream(look) or (None, "", "")
    assert (healthy, why) == (False, reason)
    assert f"pull of {REPOSITORY}:3.20 failed ({code}" in message
    # ... Synced still says ECR holds the rule; only a CloudTrail event for the new repository ran a reconcile
    status = look.rule_status("quay")
    assert status is not None and status.synced
    assert len(look.runs()) - runs_before == sum(1 for e in routed if e["detail-type"] != PTC)
    # ... and the API shows it
    conditions = {c["type"]: c for c in api.get("/v1/rules/quay/status").json["regions"][0]["status"]["conditions"]}
    assert (conditions["UpstreamHealthy"]["status"], conditions["UpstreamHealthy"]["reason"]) == (False, reason)

    # WHEN the upstream answers again and a pull succeeds
    assert _pull(world) == []
    succeeded = [e for e in controller.pending_events() if e["detail-type"] == PTC]
    assert [e["detail"]["sync-status"] for e in succeeded] == ["SUCCESS"]
    [delivery] = controller.deliver(succeeded)

    # THEN the success ran its reconcile, as before, and cleared the condition
    assert delivery.run.trigger == "cache_event"
    assert _upstream(look) == (True, "PullSucceeded", "")


def test_the_same_failed_event_delivered_twice_is_recorded_once(
    controller: Reconciler, alice: Admin, look: Look, world: World, quay: FaultProxy
) -> None:
    # GIVEN a failed pull's event, delivered (EventBridge delivers at least once)
    alice.put_rule("quay", {"upstream_kind": "quay"})
    controller.converge()
    quay.faults.add(FaultKind.TOO_MANY_REQUESTS, times=5, path=r"/manifests/")
    _pull(world)
    [failed] = [e for e in controller.pending_events() if e["detail-type"] == PTC]
    first = controller.deliver([failed])[0].response
    recorded = look.rule_status("quay")

    # WHEN it is delivered again THEN the same answer, and the status did not change
    assert controller.deliver([failed])[0].response == first
    assert look.rule_status("quay") == recorded


def test_a_credential_rule_validation_sets_and_clears_the_upstream_health(world: World, look: Look) -> None:
    # GIVEN a Docker Hub rule whose token the upstream refuses (the validation's upstream check)
    hub = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ci"})
    world.desired.put_credential("hub", hub, SecretStr("dckr_pat_revoked"), actor=ALICE)
    rule = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"})
    world.desired.put_rule("docker-hub", rule, actor=ALICE)

    # WHEN the rule is created (and validated)
    world.reconcile()

    # THEN its upstream health says the credential is rejected, next to the validation answer
    status: RuleStatus | None = look.rule_status("docker-hub")
    assert status is not None and status.validation.is_valid is False
    healthy, reason, message = _upstream(look, "docker-hub") or (None, "", "")
    assert (healthy, reason) == (False, "CredentialRejected")
    assert message.startswith("validation failed (upstream rejected the credential (401)); ")

    # WHEN the token is renewed and the daily deep resync validates again THEN it clears
    world.desired.put_credential("hub", hub, SecretStr(GOOD_TOKEN), actor=ALICE)
    world.reconcile(Scope(deep=True))
    assert _upstream(look, "docker-hub") == (True, "Validated", "")

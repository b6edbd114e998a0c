"""The daily health check end to end on the embedded AWS: Secrets Manager, DynamoDB (the health items and the
upstream token buckets), ECR's ValidatePullThroughCacheRule, EventBridge (a user's rule on the default bus) and
SNS (the alert topic), with the upstream stand-in as the probe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from ecrcache.engine.upstream_buckets import BucketLimit, bucket_key
from ecrcache.errors import RetryableError
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.credential_health import HealthState
from ecrcache.models.records import ResourceKind
from ecrcache.models.upstream import UpstreamKind
from ecrcache.models.upstream_probe import ProbeResult, ProbeStatus, ProbeTarget
from tests.functional.credential_health.support import START, TOKEN, USERNAME, HealthWorld

pytestmark = pytest.mark.functional

ALICE = "arn:aws:iam::123456789012:user/alice"
HUB_BUCKET = bucket_key("registry-1.docker.io", "hub")
HUB_LIMIT = BucketLimit(200, 21_600)  # Docker Hub's published default


def test_a_working_credential_is_healthy_and_the_change_is_announced_on_the_bus_and_the_topic(
    world: HealthWorld,
) -> None:
    outcome = world.service.check_all()

    assert outcome.states == {"hub": HealthState.HEALTHY}
    health = world.health()
    assert health.state is HealthState.HEALTHY
    assert health.checked_at is not None and health.checked_at > START
    assert health.message is not None and "validated in ECR: docker-hub (us-east-1)" in health.message
    assert health.announced is HealthState.HEALTHY
    assert world.validation.checked == [TOKEN]  # ECR validated the rule using the secret
    [event] = world.events()
    assert (event["source"], event["detail-type"]) == ("ecrcache", "Credential Health Changed")
    assert event["detail"]["state"] == "Healthy" and event["detail"]["previous_state"] == "Unknown"
    [alert] = world.alerts()
    assert "hub is Healthy" in alert["Subject"]


def test_a_second_check_with_nothing_changed_announces_nothing(world: HealthWorld) -> None:
    world.service.check_all()
    world.events()
    world.clock.days(1)
    world.service.check_all()
    assert world.detail_types() == ["Credential Health Changed"]


def test_a_revoked_token_is_invalid_with_the_upstreams_and_ecrs_failure_text(world: HealthWorld) -> None:
    world.service.check_all()
    world.upstream.accepted.clear()
    world.validation.accepted.clear()
    world.clock.days(1)

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.message is not None
    assert "the upstream refused the token" in health.message and "401" in health.message
    assert "ECR refused docker-hub (us-east-1): UpstreamAccessDenied" in health.message
    assert health.evidence is not None and health.evidence.startswith("health check at ")
    changed = [e["detail"] for e in world.events() if e["detail-type"] == "Credential Health Changed"]
    assert [(d["previous_state"], d["state"]) for d in changed] == [("Unknown", "Healthy"), ("Healthy", "Invalid")]


def test_ecr_refusing_the_credential_alone_makes_it_invalid(world: HealthWorld) -> None:
    world.validation.accepted.clear()  # the upstream still takes it; ECR's check does not
    world.service.check_all()
    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.message is not None and "ECR refused docker-hub (us-east-1)" in health.message


def test_each_probe_is_taken_from_the_upstreams_bucket_shared_with_warming(world: HealthWorld) -> None:
    sent: list[ProbeTarget] = []

    class ThreeRequests:
        def probe(self, target: ProbeTarget, login: object) -> ProbeResult:
            sent.append(target)
            return ProbeResult(target, ProbeStatus.OK, "signed in", authenticated=True, requests=3)

    world.service.probe = ThreeRequests()
    world.service.check_all()

    assert len(sent) == 1
    # 4 taken before the probe, 1 refunded after: the bucket (the warm planner's key) spent 3
    left = world.budget.take(HUB_BUCKET, 1000, limit=HUB_LIMIT, now=world.clock.now)
    assert 196 <= left <= 197  # 200 - 3, plus a sliver of refill since (continuous)


def test_an_empty_bucket_defers_the_check_unknown_never_invalid(world: HealthWorld) -> None:
    world.upstream.accepted.clear()  # a token the upstream would refuse: it must not be asked
    assert world.budget.take(HUB_BUCKET, 200, limit=HUB_LIMIT, now=world.clock.now) == 200  # warming spent it all

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.UNKNOWN
    assert health.message is not None and "deferred, the upstream's request budget is empty" in health.message
    assert world.upstream.probed == []


def test_a_blocked_bucket_defers_the_check(world: HealthWorld) -> None:
    until = world.clock.now + timedelta(hours=2)
    world.budget.block(HUB_BUCKET, until=until, limit=HUB_LIMIT, now=world.clock.now)

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.UNKNOWN
    assert health.message is not None and f"blocked until {until.isoformat()}" in health.message
    assert world.upstream.probed == []


def test_a_rate_limited_probe_is_unknown_and_blocks_the_bucket_for_warming_too(world: HealthWorld) -> None:
    reset = world.clock.now + timedelta(minutes=30)
    world.upstream.answer = (ProbeStatus.RATE_LIMIT, "429 Too Many Requests for /v2/", reset)

    world.service.check_all()

    assert world.health().state is HealthState.UNKNOWN
    blocked = world.budget.blocked_until(HUB_BUCKET, now=world.clock.now)
    assert blocked is not None and abs((blocked - reset).total_seconds()) < 1


def test_an_upstream_outage_keeps_an_invalid_credential_invalid(world: HealthWorld) -> None:
    world.upstream.accepted.clear()
    world.service.check_all()
    assert world.health().state is HealthState.INVALID
    world.upstream.answer = (ProbeStatus.UPSTREAM_DOWN, "503 from the upstream for /v2/", None)
    world.clock.days(1)

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.message is not None and health.message.startswith("still Invalid: the check could not tell")


def test_the_next_passing_check_returns_an_invalid_credential_to_healthy(world: HealthWorld) -> None:
    world.upstream.accepted.clear()
    world.service.check_all()
    world.upstream.accepted.add(TOKEN)  # the operator put a working token back
    world.clock.days(1)

    world.service.check_all()

    assert world.health().state is HealthState.HEALTHY
    assert world.health().evidence is None


def test_a_secret_that_is_not_a_credential_is_invalid(world: HealthWorld) -> None:
    world.sm.put_secret_value(SecretId="ecr-pullthroughcache/hub", SecretString="not json")
    world.service.check_all()
    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.message is not None and 'is not {"username", "accessToken"} JSON' in health.message


def test_a_missing_secret_is_invalid(world: HealthWorld) -> None:
    world.sm.delete_secret(SecretId="ecr-pullthroughcache/hub", ForceDeleteWithoutRecovery=True)
    world.service.check_all()
    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.message is not None and "does not exist" in health.message


# -- expiry ------------------------------------------------------------------------------------


def test_expiry_alerts_at_14_7_1_and_0_days_each_once(world: HealthWorld) -> None:
    world.expire_in(20)
    for _ in range(25):
        world.service.check_all()
        world.clock.days(1)

    expiring = [e["detail"] for e in world.events() if e["detail-type"] == "Credential Expiring"]
    assert [d["threshold"] for d in expiring] == [14, 7, 1, 0]
    assert [d["days_to_expiry"] for d in expiring] == [14, 7, 1, 0]
    assert {d["expires_at"] for d in expiring} == {(START + timedelta(days=20)).date().isoformat()}
    subjects = [a["Subject"] for a in world.alerts()]
    assert sum("expires in 14 day(s)" in s for s in subjects) == 1
    assert sum("expires today" in s for s in subjects) == 1
    states = [
        (e["detail"]["previous_state"], e["detail"]["state"])
        for e in world.received
        if e["detail-type"] == "Credential Health Changed"
    ]
    assert states == [("Unknown", "Healthy"), ("Healthy", "Expiring")]


def test_an_expiring_credential_is_expiring_with_the_days_left(world: HealthWorld) -> None:
    world.expire_in(5)
    world.service.check_all()
    health = world.health()
    assert health.state is HealthState.EXPIRING
    assert health.message is not None and health.message.startswith("expires in 5 day(s)")
    [expiring] = [e["detail"] for e in world.events() if e["detail-type"] == "Credential Expiring"]
    assert expiring["threshold"] == 7  # 14 and 7 crossed at once: the most urgent is sent
    assert health.alerts_sent == {f"{(START + timedelta(days=5)).date()}#14", f"{(START + timedelta(days=5)).date()}#7"}


def test_a_new_expiry_date_alerts_again(world: HealthWorld) -> None:
    world.expire_in(10)
    world.service.check_all()
    world.expire_in(12)  # a new token, a new date
    world.clock.days(1)
    world.service.check_all()
    expiring = [e["detail"] for e in world.events() if e["detail-type"] == "Credential Expiring"]
    assert [(d["expires_at"], d["threshold"]) for d in expiring] == [
        ((START + timedelta(days=10)).date().isoformat(), 14),
        ((START + timedelta(days=12)).date().isoformat(), 14),
    ]


def test_a_credential_deleted_from_the_desired_state_loses_its_health(world: HealthWorld) -> None:
    spec = CredentialSpec(upstream_kind=UpstreamKind.DOCKER_HUB, username=USERNAME)
    world.desired.put_credential("other", spec, SecretStr(TOKEN), actor=ALICE)
    world.service.check_all()
    assert set(world.store.all_health()) == {"hub", "other"}
    world.desired.delete(ResourceKind.CREDENTIAL, "other", actor=ALICE)

    world.service.check_all()

    assert set(world.store.all_health()) == {"hub"}


def test_an_azure_credential_no_rule_names_cannot_be_probed_and_is_unknown(world: HealthWorld) -> None:
    spec = CredentialSpec(upstream_kind=UpstreamKind.AZURE_CONTAINER_REGISTRY, username="acr-token")
    world.desired.put_credential("acr", spec, SecretStr(TOKEN), actor=ALICE)

    world.service.check_all()

    health = world.health("acr")
    assert health.state is HealthState.UNKNOWN
    assert health.message is not None and "there is no registry to test the token at" in health.message


def test_a_health_write_contended_twice_is_retried_later_not_lost(
    world: HealthWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.store, "save", lambda health, *, seen: False)  # a mark lands before every write

    with pytest.raises(RetryableError, match="could not be recorded"):
        world.service.check_all()


def test_rules_are_validated_in_every_region_the_secret_is_replicated_to(world: HealthWorld) -> None:
    # GIVEN the secret replicated to eu-west-1 and a rule there on the replica's ARN
    world.sm.replicate_secret_to_regions(
        SecretId="ecr-pullthroughcache/hub", AddReplicaRegions=[{"Region": "eu-west-1"}]
    )
    replica = world.service.ecr("eu-west-1")
    replica.client.create_pull_through_cache_rule(  # type: ignore[attr-defined]
        ecrRepositoryPrefix="hub-eu",
        upstreamRegistryUrl="registry-1.docker.io",
        credentialArn=world.secret_arn.replace(":us-east-1:", ":eu-west-1:"),
    )

    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.HEALTHY
    assert health.message is not None
    assert "validated in ECR: docker-hub (us-east-1), hub-eu (eu-west-1)" in health.message
    assert world.validation.checked == [TOKEN, TOKEN]

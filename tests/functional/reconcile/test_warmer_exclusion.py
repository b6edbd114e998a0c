"""The warm worker's pull-time update exclusion, reconciled on the embedded AWS like any other setting.

The deployed reconciler (its own role session, the template's triggers) with ``WARMER_ROLE_ARN`` set:
it registers the warmer's role in every Region a desired rule names, repairs an out-of-band
deregistration (by its CloudTrail event, or by the schedule when events are lost), replaces the
exclusion when the role changes, deregisters it when no rule names the Region any more, and never
touches an exclusion it did not register. The embedded ECR honours exclusions, so the warmer's pulls
then leave ``lastRecordedPullTime`` (what ``sinceImagePulled`` lifecycle rules count from) alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pytest

from devstack.aws import clock, events
from ecrcache.engine.plan import ActionKind
from ecrcache.models.status import RunStatus, RunTrigger
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile.support import Admin, Look, Principal, Reconciler, clients, reconciler_test_session

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

pytestmark = pytest.mark.functional

WARMER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-WarmWorkerFunctionRole-AB12"
NEW_WARMER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-WarmWorkerFunctionRole-CD34"
SCANNER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/security-scanner"
OTHER: Final = "eu-west-1"
QUAY: Final[dict[str, Any]] = {"upstream_kind": "quay"}
START: Final = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def ecr_in(region: str) -> ECRClient:
    return reconciler_test_session().client("ecr", region_name=region)


def registered(region: str = REGION) -> set[str]:
    return set(ecr_in(region).list_pull_time_update_exclusions()["pullTimeUpdateExclusions"])


def owned(look: Look, region: str = REGION) -> frozenset[str]:
    return look.status.ownership(region).exclusions


@pytest.fixture
def warming(controller: Reconciler, monkeypatch: pytest.MonkeyPatch) -> Reconciler:
    """The deployed reconciler with ``WARMER_ROLE_ARN`` set to :data:`WARMER`."""
    monkeypatch.setattr(controller.service.planner, "warmer_role_arn", WARMER)
    return controller


@pytest.fixture
def quay(warming: Reconciler, alice: Admin) -> Reconciler:
    """A converged quay rule (stack Region): the warmer registered by the controller."""
    alice.put_rule("quay", QUAY)
    warming.converge(deliver_events=True)  # its own Register call comes back as an event: ignored
    warming.reset_calls()
    return warming


def _role_session_ecr(role_arn: str, session: str) -> ECRClient:
    """ECR as a session of ``role_arn`` (moto's STS, as Lambda gives a function its role's credentials)."""
    iam = clients().iam
    name = role_arn.rsplit("/", 1)[1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    creds = clients().sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return reconciler_test_session().client(
        "ecr",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _push(repository: str, tag: str) -> None:
    media_type = "application/vnd.oci.image.manifest.v1+json"
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 7},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "1" * 64, "size": 10}
        ],
    }
    ecr = clients().ecr
    ecr.create_repository(repositoryName=repository)
    ecr.put_image(
        repositoryName=repository,
        imageManifest=json.dumps(document),
        imageTag=tag,
        imageManifestMediaType=media_type,
    )


def _pull_time(repository: str, tag: str) -> datetime | None:
    [detail] = clients().ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    value: Any = detail.get("lastRecordedPullTime")
    return value.astimezone(UTC) if value is not None else None


# --------------------------------------------------------------------------------------------------
# Registered where the rules are, and only there


def test_the_warmer_is_registered_in_every_region_a_rule_names(warming: Reconciler, alice: Admin, look: Look) -> None:
    # GIVEN a rule in the stack's Region and eu-west-1, and a Region no rule names
    alice.put_rule("quay", {**QUAY, "regions": [REGION, OTHER]})
    # WHEN the controller converges
    warming.converge(deliver_events=True)
    # THEN the warmer is excluded, and recorded as ecrcache's, in both Regions
    for region in (REGION, OTHER):
        assert registered(region) == {WARMER}
        assert owned(look, region) == {WARMER}
    assert registered("ap-south-1") == set()
    # AND a resync finds nothing to do (no write reaches ECR)
    warming.reset_calls()
    assert warming.resync().status is RunStatus.SUCCEEDED
    assert warming.writes() == {}


def test_the_plan_shows_the_registration_before_the_reconciler_makes_it(warming: Reconciler, alice: Admin) -> None:
    alice.put_rule("quay", QUAY)
    warming.pending_events()
    planned = warming.service.plan()
    assert [(a.kind, a.target, a.rule_prefix) for a in planned.actions if a.kind.scope == "exclusion"] == [
        (ActionKind.REGISTER_EXCLUSION, WARMER, "")
    ]
    assert registered() == set()  # planning wrote nothing


# --------------------------------------------------------------------------------------------------
# Drift


def test_an_out_of_band_deregistration_is_repaired_by_its_cloudtrail_event(
    quay: Reconciler, bob: Principal, look: Look
) -> None:
    # GIVEN bob deregisters the warmer behind the controller's back
    bob.ecr.deregister_pull_time_update_exclusion(principalArn=WARMER)
    # WHEN its CloudTrail event reaches the controller (the EcrDrift rule's pattern lets it through)
    [delivery] = quay.deliver_events()
    # THEN a reconcile of the Region ran and registered it again; it is still ecrcache's
    assert delivery.caller == bob.arn
    assert (delivery.run.trigger, delivery.run.status) == (RunTrigger.CLOUDTRAIL, RunStatus.SUCCEEDED)
    assert delivery.run.summary.get("register_exclusion") == 1
    assert registered() == {WARMER}
    assert owned(look) == {WARMER}
    # AND the controller's own Register came back as an event it ignores
    assert all(d.ignored for d in quay.deliver_events())


def test_an_out_of_band_deregistration_is_repaired_by_the_schedule_when_events_are_lost(
    quay: Reconciler, bob: Principal
) -> None:
    events.faults.drop(count=None, detail_type=events.CLOUDTRAIL_DETAIL_TYPE)
    bob.ecr.deregister_pull_time_update_exclusion(principalArn=WARMER)
    assert quay.pending_events() == []
    run = quay.resync()
    assert run.status is RunStatus.SUCCEEDED
    assert registered() == {WARMER}


# --------------------------------------------------------------------------------------------------
# Deregistered when no longer wanted, and only what ecrcache registered


def test_a_changed_warmer_role_deregisters_the_old_one(
    quay: Reconciler, bob: Principal, look: Look, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob.ecr.register_pull_time_update_exclusion(principalArn=SCANNER)
    monkeypatch.setattr(quay.service.planner, "warmer_role_arn", NEW_WARMER)
    run = quay.resync()
    assert run.status is RunStatus.SUCCEEDED
    assert registered() == {NEW_WARMER, SCANNER}
    assert owned(look) == {NEW_WARMER}


def test_no_rule_left_deregisters_the_warmer_and_nothing_else(
    quay: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    bob.ecr.register_pull_time_update_exclusion(principalArn=SCANNER)
    alice.delete_rule("quay")
    quay.converge(deliver_events=True)
    assert registered() == {SCANNER}
    assert owned(look) == frozenset()


def test_a_region_no_rule_names_any_more_is_cleaned_up(warming: Reconciler, alice: Admin, look: Look) -> None:
    # GIVEN the rule in both Regions, converged
    alice.put_rule("quay", {**QUAY, "regions": [REGION, OTHER]})
    warming.converge(deliver_events=True)
    # WHEN it is moved out of eu-west-1
    alice.put_rule("quay", {**QUAY, "regions": [REGION]})
    warming.converge(deliver_events=True)
    # THEN the warmer is deregistered there, and kept in the stack's Region
    assert registered(OTHER) == set()
    assert owned(look, OTHER) == frozenset()
    assert registered(REGION) == {WARMER}


def test_an_exclusion_someone_else_registered_is_adopted_by_nobody(
    warming: Reconciler, alice: Admin, bob: Principal, look: Look
) -> None:
    # GIVEN bob registered the warmer himself before ecrcache ran
    bob.ecr.register_pull_time_update_exclusion(principalArn=WARMER)
    alice.put_rule("quay", QUAY)
    # WHEN the controller converges THEN it changes nothing and does not take it over (the plan says so)
    warming.converge(deliver_events=True)
    assert owned(look) == frozenset()
    [report] = [u for u in warming.service.plan().unmanaged if u.kind == "exclusion"]
    assert report.name == WARMER
    # AND once no rule is left, bob's exclusion is still there
    alice.delete_rule("quay")
    warming.converge(deliver_events=True)
    assert registered() == {WARMER}


# --------------------------------------------------------------------------------------------------
# What it is for: warming no longer counts as a pull


def test_the_warm_workers_pulls_then_leave_last_recorded_pull_time_alone(
    warming: Reconciler, alice: Admin, bob: Principal
) -> None:
    # GIVEN an image under the rule's prefix, and the warm worker's role session
    _push("quay/library/nginx", "1.27")
    warmer = _role_session_ecr(WARMER, "warm-run-1")
    pull: Any = {"repositoryName": "quay/library/nginx", "imageIds": [{"imageTag": "1.27"}]}
    with clock.FakeClock(START) as fake:
        # WHEN the warmer pulls before the exclusion exists THEN the pull is recorded (the test can fail)
        warmer.batch_get_image(**pull)
        assert _pull_time("quay/library/nginx", "1.27") == START
        # WHEN the controller converges a rule, and the warmer pulls again later
        alice.put_rule("quay", QUAY)
        warming.converge(deliver_events=True)
        fake.advance(hours=6)
        served = warmer.batch_get_image(**pull)
        # THEN the image is served and its pull time stays
        assert len(served["images"]) == 1
        assert _pull_time("quay/library/nginx", "1.27") == START
        # AND anyone else's pull still moves it
        fake.advance(hours=1)
        bob.ecr.batch_get_image(**pull)
        assert _pull_time("quay/library/nginx", "1.27") == START + timedelta(hours=7)

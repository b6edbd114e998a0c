"""Pull-time update exclusions (botocore ECR model; ECR User Guide, "Pull-time update exclusions").

"When a role in the exclusion list pulls an image, the pull time remains unchanged"; "You can configure
up to 100 exclusions per account"; default page size 100; duplicates and missing entries answer
``ExclusionAlreadyExistsException`` / ``ExclusionNotFoundException``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.aws import clock
from devstack.aws.ecr_exclusions import MAX_EXCLUSIONS
from devstack.aws.events import CALLER_ARN_HEADER
from tests.functional.embedded_aws.conftest import CLOUDTRAIL_PATTERN, EmbeddedAws
from tests.functional.registry.support import PullThrough

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
WARMER = "ecrcache-warm-worker"


def _role(embedded_aws: EmbeddedAws, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{embedded_aws.account_id}:role{path}{name}"


def _error(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def _pull_time(embedded_aws: EmbeddedAws, repository: str, tag: str) -> datetime | None:
    [detail] = embedded_aws.ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    value: Any = detail.get("lastRecordedPullTime")
    return value.astimezone(UTC) if value is not None else None


def test_register_list_and_deregister(embedded_aws: EmbeddedAws) -> None:
    """Shapes per the model: createdAt on Register, ARNs in List (paged), principalArn back on Deregister."""
    queue = embedded_aws.spy({**CLOUDTRAIL_PATTERN, "detail": {"eventSource": ["ecr.amazonaws.com"]}})
    arns = [_role(embedded_aws, f"scanner-{n}") for n in range(3)]
    with clock.FakeClock(START) as fake:
        for arn in arns:
            created = embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=arn)
            assert created["principalArn"] == arn
            assert created["createdAt"] == fake.now()
            fake.advance(seconds=60)
    first = embedded_aws.ecr.list_pull_time_update_exclusions(maxResults=2)
    rest = embedded_aws.ecr.list_pull_time_update_exclusions(maxResults=2, nextToken=first["nextToken"])
    assert first["pullTimeUpdateExclusions"] + rest["pullTimeUpdateExclusions"] == arns
    assert "nextToken" not in rest
    assert embedded_aws.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == arns
    removed = embedded_aws.ecr.deregister_pull_time_update_exclusion(principalArn=arns[1])
    assert removed["principalArn"] == arns[1]
    assert embedded_aws.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == [arns[0], arns[2]]
    # THEN the writes are CloudTrail write events (List is read-only and not emitted)
    names = [(e["detail"]["eventName"], e["detail"]["readOnly"]) for e in embedded_aws.received(queue)]
    assert names == [("RegisterPullTimeUpdateExclusion", False)] * 3 + [("DeregisterPullTimeUpdateExclusion", False)]


@pytest.mark.parametrize(
    ("principal", "constraint"),
    [
        ("arn:aws:iam::123456789012:group/ops", "regular expression pattern"),
        ("arn:aws:sts::123456789012:assumed-role/ci/job", "regular expression pattern"),
        ("arn:aws:iam::123456789012:role/" + "r" * 180, "length less than or equal to 200"),
    ],
    ids=["group", "session-arn", "too-long"],
)
def test_principal_arn_is_validated_against_the_model(
    embedded_aws: EmbeddedAws, principal: str, constraint: str
) -> None:
    """``PrincipalArn``: max 200, pattern ``^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/...$``."""
    with pytest.raises(ClientError) as info:
        embedded_aws.ecr_unchecked.register_pull_time_update_exclusion(principalArn=principal)
    code, message = _error(info)
    assert code == "ValidationException"
    assert "at 'principalArn'" in message
    assert constraint in message


def test_duplicates_missing_entries_and_the_quota(embedded_aws: EmbeddedAws) -> None:
    """Already exists / not found / the 101st exclusion (the guide's "up to 100 exclusions")."""
    arn = _role(embedded_aws, "scanner")
    embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=arn)
    with pytest.raises(ClientError) as duplicate:
        embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=arn)
    assert _error(duplicate)[0] == "ExclusionAlreadyExistsException"
    with pytest.raises(ClientError) as missing:
        embedded_aws.ecr.deregister_pull_time_update_exclusion(principalArn=_role(embedded_aws, "nobody"))
    assert _error(missing)[0] == "ExclusionNotFoundException"
    for n in range(MAX_EXCLUSIONS - 1):
        embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=_role(embedded_aws, f"r{n}"))
    with pytest.raises(ClientError) as quota:
        embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=_role(embedded_aws, "one-too-many"))
    code, message = _error(quota)
    assert code == "LimitExceededException"
    assert str(MAX_EXCLUSIONS) in message
    assert len(embedded_aws.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]) == MAX_EXCLUSIONS


def test_an_excluded_role_does_not_move_last_recorded_pull_time(embedded_aws: EmbeddedAws) -> None:
    """A session of an excluded role (compared by its role ARN) leaves the pull time; others move it."""
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    embedded_aws.put_image("team/app", "v1")
    warmer = embedded_aws.role_session(WARMER, "warm-run-1").client("ecr")
    deployer = embedded_aws.role_session("deployer", "deploy-7").client("ecr")
    embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=_role(embedded_aws, WARMER))
    with clock.FakeClock(START) as fake:
        deployer.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
        assert _pull_time(embedded_aws, "team/app", "v1") == START
        fake.advance(hours=5)
        # WHEN the excluded role pulls THEN the image is served and the pull time stays
        served = warmer.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
        assert len(served["images"]) == 1
        assert _pull_time(embedded_aws, "team/app", "v1") == START
        # WHEN the exclusion is removed THEN its pulls count again
        embedded_aws.ecr.deregister_pull_time_update_exclusion(principalArn=_role(embedded_aws, WARMER))
        fake.advance(hours=1)
        warmer.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
        assert _pull_time(embedded_aws, "team/app", "v1") == START + timedelta(hours=6)


def test_a_role_registered_with_a_path_matches_its_sessions(embedded_aws: EmbeddedAws) -> None:
    """A session ARN has no role path; ``role/ci/<name>`` matches sessions of ``<name>`` (same account) [?]."""
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    embedded_aws.put_image("team/app", "v1")
    embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=_role(embedded_aws, WARMER, path="/ci/"))
    warmer = embedded_aws.role_session(WARMER, "run").client("ecr")
    warmer.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
    assert _pull_time(embedded_aws, "team/app", "v1") is None


def test_an_excluded_user_is_matched_by_its_user_arn(embedded_aws: EmbeddedAws) -> None:
    """The model's pattern admits ``user/`` ARNs: an IAM user's own ARN is compared."""
    embedded_aws.ecr.create_repository(repositoryName="team/app")
    embedded_aws.put_image("team/app", "v1")
    user_arn = f"arn:aws:iam::{embedded_aws.account_id}:user/trivy"
    embedded_aws.ecr.register_pull_time_update_exclusion(principalArn=user_arn)

    def as_user(request: Any, **_: Any) -> None:
        request.headers[CALLER_ARN_HEADER] = user_arn

    client = boto3.client("ecr", region_name=embedded_aws.region)
    client.meta.events.register("before-sign.ecr.*", as_user)
    client.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
    assert _pull_time(embedded_aws, "team/app", "v1") is None
    embedded_aws.ecr.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])
    assert _pull_time(embedded_aws, "team/app", "v1") is not None


def test_pulls_through_a_rule_honour_the_exclusion(ptc: PullThrough) -> None:
    """The pull-through path: the excluded warmer's first pull imports the image without a pull time."""
    aws = ptc.aws
    ptc.anonymous_rule()
    aws.ecr.register_pull_time_update_exclusion(principalArn=_role(aws, WARMER))
    warmer = aws.role_session(WARMER, "warm-run-2").client("ecr")
    with clock.FakeClock(START) as fake:
        warmed = warmer.batch_get_image(repositoryName="ecr-public/library/alpine", imageIds=[{"imageTag": "3.20"}])
        assert warmed["failures"] == []
        assert _pull_time(aws, "ecr-public/library/alpine", "3.20") is None
        fake.advance(seconds=600)
        ptc.pull("ecr-public/library/alpine", tag="3.20")
        assert _pull_time(aws, "ecr-public/library/alpine", "3.20") == START + timedelta(minutes=10)

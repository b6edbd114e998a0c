"""Lifecycle policies of the embedded ECR: full grammar, previews on real images, evaluation (ecr-facts §5, §9.18)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError
from moto.ecr.models import ecr_backends

from devstack.aws import clock, ecr_lifecycle, events
from devstack.aws.state import ext_state, image_ext
from tests.functional.embedded_aws.conftest import OCI_INDEX, OCI_MANIFEST, EmbeddedAws
from tests.functional.embedded_aws.test_pull_through_rules import aws_error

pytestmark = pytest.mark.functional

REPO = "docker-hub/library/node"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def rule(
    priority: int, selection: dict[str, Any], action: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "description": f"rule {priority}",
        "selection": selection,
        "action": action or {"type": "expire"},
        **extra,
    }


def policy(*rules: dict[str, Any]) -> str:
    text = json.dumps({"rules": list(rules)})
    return text if len(text) >= 100 else text[:-1] + " " * (100 - len(text)) + "}"


KEEP_2 = rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2})
UNTAGGED_7D = rule(1, {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7})


@pytest.fixture
def fake_time() -> Iterator[clock.FakeClock]:
    with clock.FakeClock(T0) as fake:
        yield fake


@pytest.fixture
def repo(embedded_aws: EmbeddedAws) -> str:
    embedded_aws.ecr.create_repository(repositoryName=REPO)
    return REPO


def _preview(embedded_aws: EmbeddedAws, text: str | None = None, **get: Any) -> dict[str, Any]:
    kwargs = {"lifecyclePolicyText": text} if text else {}
    assert embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName=REPO, **kwargs)["status"] == "IN_PROGRESS"
    result: dict[str, Any] = dict(embedded_aws.ecr.get_lifecycle_policy_preview(repositoryName=REPO, **get))
    return result


# ------------------------------------------------------------------------------------ grammar §9.18

INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "transition needs a target",
        rule(
            1,
            {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30},
            {"type": "transition"},
        ),
        "targetStorageClass archive is required",
    ),
    (
        "transitioned needs archive",
        rule(1, {"tagStatus": "any", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90}),
        "storageClass must be archive",
    ),
    (
        "archive only with transitioned",
        rule(
            1,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 3,
            },
        ),
        "storageClass archive is only valid",
    ),
    (
        "archived images only expire",
        rule(
            1,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
            {"type": "transition", "targetStorageClass": "archive"},
        ),
        "can only be expired",
    ),
    (
        "countUnit with a count",
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 3}),
        "countUnit cannot be specified",
    ),
    (
        "since* needs countUnit",
        rule(1, {"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 3}),
        "countUnit is required",
    ),
    (
        "countUnit is days",
        rule(1, {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "hours", "countNumber": 3}),
        "not found in enum",
    ),
    (
        "countNumber >= 1",
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}),
        "minimum: 1, found: 0",
    ),
    (
        "at most 4 wildcards",
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["*a*b*c*d*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
        "more than 4 wildcards",
    ),
    (
        "tagged needs a list",
        rule(1, {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}),
        "tagPrefixList or tagPatternList is required",
    ),
    (
        "untagged takes no list",
        rule(1, {"tagStatus": "untagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1}),
        "only be used",
    ),
    (
        "not both lists",
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPrefixList": ["v"],
                "tagPatternList": ["v*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
        "cannot both",
    ),
    (
        "unknown selection key",
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1, "countDays": 3}),
        "not allowed by the schema",
    ),
    (
        "unknown action",
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, {"type": "delete"}),
        "not found in enum",
    ),
    (
        "missing selection",
        {"rulePriority": 1, "action": {"type": "expire"}, "description": "no selection at all here"},
        "missing required properties",
    ),
]


@pytest.mark.parametrize(("case", "bad_rule", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_rules_are_rejected_with_ecr_wording(
    embedded_aws: EmbeddedAws, repo: str, case: str, bad_rule: dict[str, Any], message: str
) -> None:
    """ecr-facts §9.18 / §5.1: each documented grammar constraint -> InvalidParameterException, ECR's message format."""
    prefix = (
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
        "'Lifecycle policy validation failure: "
    )
    with aws_error("InvalidParameterException", prefix):
        embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy(bad_rule))
    with aws_error("InvalidParameterException", message):
        embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy(bad_rule))


def test_policy_level_constraints(embedded_aws: EmbeddedAws, repo: str) -> None:
    """ecr-facts §9.18: unique priorities, `any` last, one untagged rule, <= 50 rules, valid JSON."""
    untagged = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}
    cases = [
        (
            policy(
                rule(1, untagged),
                rule(
                    1,
                    {
                        "tagStatus": "tagged",
                        "tagPrefixList": ["v"],
                        "countType": "imageCountMoreThan",
                        "countNumber": 1,
                    },
                ),
            ),
            "unique",
        ),
        (
            policy(
                rule(2, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}), rule(3, untagged)
            ),
            "highest rulePriority",
        ),
        (
            policy(rule(1, untagged), rule(2, {**untagged, "countNumber": 5})),
            "only one rule is allowed to select untagged",
        ),
        (
            policy(
                *[
                    rule(
                        i + 1,
                        {
                            "tagStatus": "tagged",
                            "tagPrefixList": [f"v{i}"],
                            "countType": "imageCountMoreThan",
                            "countNumber": 1,
                        },
                    )
                    for i in range(51)
                ]
            ),
            "at most 50 rules",
        ),
        ("{" + " " * 120, "Could not map policyString"),
    ]
    for text, message in cases:
        with aws_error("InvalidParameterException", message):
            embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)


def test_policy_text_length_is_100_to_30720(embedded_aws: EmbeddedAws, repo: str) -> None:
    """ecr-facts §9.18: LifecyclePolicyText 100-30,720 chars (botocore checks the minimum, the server both)."""
    short = json.dumps({"rules": [KEEP_2]})[:90]
    with pytest.raises(ParamValidationError):
        embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=short)
    with aws_error("ValidationException", "length greater than or equal to 100"):
        embedded_aws.ecr_unchecked.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=short)
    huge = policy(KEEP_2)[:-1] + " " * 30_720 + "}"
    with aws_error("ValidationException", "length less than or equal to 30720"):
        embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=huge)


def test_full_grammar_is_accepted(embedded_aws: EmbeddedAws, repo: str) -> None:
    """ecr-facts §9.18: transition/archive, sinceImagePulled/-Transitioned, 4 wildcards are valid (moto rejects)."""
    text = policy(
        rule(
            1,
            {"tagStatus": "tagged", "tagPatternList": ["*v*1*2*"], "countType": "imageCountMoreThan", "countNumber": 5},
        ),
        rule(
            2,
            {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
            {"type": "transition", "targetStorageClass": "archive"},
        ),
    )
    embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)
    assert embedded_aws.ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == text
    archived = policy(
        rule(
            1,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
        )
    )
    embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=archived)


# ------------------------------------------------------------------------------------ previews §9.18


def test_preview_is_in_progress_then_complete_with_real_results(
    embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock
) -> None:
    """ecr-facts §9.18: Start -> IN_PROGRESS, then COMPLETE with results from the repository's images."""
    digests = []
    for day in range(5):
        digests.append(embedded_aws.put_image(repo, f"20.{day}", layers=(f"layer-{day}",)))
        fake_time.advance(days=1)
    embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy(KEEP_2))
    result = _preview(embedded_aws)
    assert result["status"] == "COMPLETE"
    assert result["summary"] == {"expiringImageTotalCount": 3}
    assert [r["imageDigest"] for r in result["previewResults"]] == digests[:3]  # the oldest three
    first = result["previewResults"][0]
    assert first["imageTags"] == ["20.0"]
    assert first["imagePushedAt"] == T0
    assert (first["action"], first["appliedRulePriority"], first["storageClass"]) == ({"type": "EXPIRE"}, 1, "STANDARD")
    assert len(embedded_aws.ecr.list_images(repositoryName=repo)["imageIds"]) == 5  # a preview changes nothing


def test_preview_waiter_and_policy_text_argument(embedded_aws: EmbeddedAws, repo: str) -> None:
    """ecr-facts §5.2: the preview waiter works; a text given to Start overrides the stored policy."""
    embedded_aws.put_image(repo, "a", layers=("a",))
    embedded_aws.put_image(repo, None, layers=("b",))
    embedded_aws.ecr.start_lifecycle_policy_preview(
        repositoryName=repo,
        lifecyclePolicyText=policy(
            rule(1, {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})
        ),
    )
    embedded_aws.ecr.get_waiter("lifecycle_policy_preview_complete").wait(
        repositoryName=repo, WaiterConfig={"Delay": 1}
    )
    result = embedded_aws.ecr.get_lifecycle_policy_preview(repositoryName=repo)
    assert result["status"] == "COMPLETE"
    assert result["summary"]["expiringImageTotalCount"] == 0  # one untagged image, keep one


def test_preview_errors(embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock) -> None:
    """ecr-facts §9.18 / §5.2: PreviewNotFound before Start, PolicyNotFound without policy, InProgress while running."""
    with aws_error("LifecyclePolicyPreviewNotFoundException"):
        embedded_aws.ecr.get_lifecycle_policy_preview(repositoryName=repo)
    with aws_error("LifecyclePolicyNotFoundException"):
        embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName=repo)
    with aws_error("RepositoryNotFoundException"):
        embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName="nope/x", lifecyclePolicyText=policy(KEEP_2))
    ecr_lifecycle.settings.preview_delay = timedelta(minutes=10)
    embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=policy(KEEP_2))
    assert embedded_aws.ecr.get_lifecycle_policy_preview(repositoryName=repo)["status"] == "IN_PROGRESS"
    with aws_error("LifecyclePolicyPreviewInProgressException"):
        embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=policy(KEEP_2))
    fake_time.advance(timedelta(minutes=10))
    assert embedded_aws.ecr.get_lifecycle_policy_preview(repositoryName=repo)["status"] == "COMPLETE"


def test_since_image_pushed_uses_the_injectable_clock(
    embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock
) -> None:
    """ecr-facts §9.18 / §5.1: sinceImagePushed: images older than countNumber days, on the fake clock."""
    old = embedded_aws.put_image(repo, None, layers=("old",))
    fake_time.advance(days=5)
    young = embedded_aws.put_image(repo, None, layers=("young",))
    fake_time.advance(days=3)  # old: 8 days, young: 3 days
    pushed = {
        d["imageDigest"]: d["imagePushedAt"]
        for d in embedded_aws.ecr.describe_images(repositoryName=repo)["imageDetails"]
    }
    assert pushed == {old: T0, young: T0 + timedelta(days=5)}
    result = _preview(embedded_aws, policy(UNTAGGED_7D))
    assert [r["imageDigest"] for r in result["previewResults"]] == [old]
    fake_time.advance(days=5)
    result = _preview(embedded_aws, policy(UNTAGGED_7D))
    assert {r["imageDigest"] for r in result["previewResults"]} == {old, young}


def test_rules_apply_by_priority_and_once_per_image(
    embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock
) -> None:
    """ecr-facts §9.18 / §5.1: applied by priority; an image a higher rule matched is not touched by a lower one."""
    prod_old = embedded_aws.put_image(repo, "prod-1", layers=("p1",))
    fake_time.advance(days=1)
    embedded_aws.put_image(repo, "prod-2", layers=("p2",))
    fake_time.advance(days=1)
    dev_old = embedded_aws.put_image(repo, "dev-1", layers=("d1",))
    fake_time.advance(days=1)
    embedded_aws.put_image(repo, "dev-2", layers=("d2",))
    text = policy(
        rule(
            1, {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}
        ),
        rule(2, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}),
    )
    results = _preview(embedded_aws, text)["previewResults"]
    assert [(r["imageDigest"], r["appliedRulePriority"]) for r in results] == [(prod_old, 1), (dev_old, 2)]


def test_images_referenced_by_a_manifest_list_are_protected(
    embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock
) -> None:
    """ecr-facts §9.18 / §5.1: images referenced by a manifest list are not expired with it present."""
    amd64 = embedded_aws.put_image(repo, None, layers=("amd64",))
    arm64 = embedded_aws.put_image(repo, None, layers=("arm64",))
    stray = embedded_aws.put_image(repo, None, layers=("stray",))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": amd64,
                "size": 300,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": arm64,
                "size": 300,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
        ],
    }
    embedded_aws.put_image(repo, "20", manifest=index)
    fake_time.advance(days=30)
    results = _preview(embedded_aws, policy(UNTAGGED_7D))["previewResults"]
    assert [r["imageDigest"] for r in results] == [stray]


def test_transition_and_archive_expiry(embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock) -> None:
    """ecr-facts §9.18 / §5.1: sinceImagePulled archives (pull time, else push); archived ones expire 90+ days on."""
    pulled = embedded_aws.put_image(repo, "pulled", layers=("x",))
    idle = embedded_aws.put_image(repo, "idle", layers=("y",))
    backend = ecr_backends[embedded_aws.account_id][embedded_aws.region]
    fake_time.advance(days=60)
    image_ext(ext_state(backend), repo, pulled).last_recorded_pull_time = clock.now()  # what the data plane records
    fake_time.advance(days=40)
    archive_after_90 = policy(
        rule(
            1,
            {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
            {"type": "transition", "targetStorageClass": "archive"},
        )
    )
    result = _preview(embedded_aws, archive_after_90)
    assert [r["imageDigest"] for r in result["previewResults"]] == [idle]
    assert result["previewResults"][0]["action"] == {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}
    assert result["summary"] == {
        "expiringImageTotalCount": 0,
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 1}],
    }
    embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=archive_after_90)
    taken = ecr_lifecycle.evaluate_lifecycle_now(embedded_aws.account_id, embedded_aws.region, repo)
    assert [(a.image.digest, a.action) for a in taken] == [(idle, "TRANSITION")]
    assert image_ext(ext_state(backend), repo, idle).storage_class == "ARCHIVE"
    expire_archived = policy(
        rule(
            1,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
        )
    )
    fake_time.advance(days=91)
    result = _preview(embedded_aws, expire_archived)
    assert [(r["imageDigest"], r["storageClass"], r["action"]["type"]) for r in result["previewResults"]] == [
        (idle, "ARCHIVE", "EXPIRE")
    ]


def test_preview_filter_image_ids_and_pagination(
    embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock
) -> None:
    """ecr-facts §5.2: Get filters by tagStatus / imageIds and pages (paginator, maxResults 1-100)."""
    tagged = [embedded_aws.put_image(repo, f"t{i}", layers=(f"t{i}",)) for i in range(3)]
    untagged = [embedded_aws.put_image(repo, None, layers=(f"u{i}",)) for i in range(2)]
    fake_time.advance(days=10)
    everything = policy(
        rule(1, {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1})
    )
    result = _preview(embedded_aws, everything, filter={"tagStatus": "UNTAGGED"})
    assert {r["imageDigest"] for r in result["previewResults"]} == set(untagged)
    assert result["summary"]["expiringImageTotalCount"] == 5
    by_id = embedded_aws.ecr.get_lifecycle_policy_preview(repositoryName=repo, imageIds=[{"imageTag": "t1"}])
    assert [r["imageDigest"] for r in by_id["previewResults"]] == [tagged[1]]
    pages = list(
        embedded_aws.ecr.get_paginator("get_lifecycle_policy_preview").paginate(
            repositoryName=repo, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["previewResults"]) for p in pages] == [2, 2, 1]
    with aws_error("ValidationException", "maxResults"):
        embedded_aws.ecr_unchecked.get_lifecycle_policy_preview(repositoryName=repo, maxResults=101)


def test_evaluate_lifecycle_now_expires_images(
    embedded_aws: EmbeddedAws, repo: str, fake_time: clock.FakeClock
) -> None:
    """ecr-facts §9.18: the evaluate hook really deletes what the policy expires and reports ECR Image Action events."""
    queue = embedded_aws.spy({"source": ["aws.ecr"], "detail-type": ["ECR Image Action"]}, name="image-actions")
    digests = []
    for day in range(4):
        digests.append(embedded_aws.put_image(repo, f"v{day}", layers=(f"v{day}",)))
        fake_time.advance(days=1)
    assert (
        ecr_lifecycle.evaluate_lifecycle_now(embedded_aws.account_id, embedded_aws.region, repo) == []
    )  # no policy yet
    embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy(KEEP_2))
    actions = ecr_lifecycle.evaluate_lifecycle_now(embedded_aws.account_id, embedded_aws.region, repo)
    assert [(a.image.digest, a.action) for a in actions] == [(digests[0], "EXPIRE"), (digests[1], "EXPIRE")]
    left = {i["imageTag"] for i in embedded_aws.ecr.list_images(repositoryName=repo)["imageIds"]}
    assert left == {"v2", "v3"}
    delivered = embedded_aws.received(queue)
    assert [(e["detail"]["action-type"], e["detail"]["image-digest"]) for e in delivered] == [
        ("DELETE", digests[0]),
        ("DELETE", digests[1]),
    ]
    assert events.recent_events()[-1]["detail-type"] == "ECR Image Action"

"""Audit of the embedded ECR's lifecycle-policy validation against AWS's documentation (issue 14).

Each case names the documentation sentence (or the report) it checks; sources as in
:mod:`devstack.aws.ecr_lifecycle`: [properties] "Lifecycle policy properties in Amazon ECR", [evaluation]
"Lifecycle policy evaluation rules", [examples] "Examples of lifecycle policies in Amazon ECR", [archive]
"Archiving an image", [quotas] "Amazon ECR service quotas". Refusals must reach both ``PutLifecyclePolicy``
and ``StartLifecyclePolicyPreview`` (one validator); every policy printed in [examples] must be accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.functional.embedded_aws.conftest import EmbeddedAws
from tests.functional.embedded_aws.test_pull_through_rules import aws_error

pytestmark = pytest.mark.functional

REPO = "docker-hub/library/node"
ECR_PREFIX = (
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: "
)


def rule(priority: int, selection: dict[str, Any], action: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "rulePriority": priority,
        "description": f"rule {priority}",
        "selection": selection,
        "action": action or {"type": "expire"},
    }


def text(*rules: dict[str, Any]) -> str:
    body = json.dumps({"rules": list(rules)})
    return body if len(body) >= 100 else body[:-1] + " " * (100 - len(body)) + "}"


def tagged(prefixes: list[str] | None = None, patterns: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    selection: dict[str, Any] = {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    return {**selection, **extra}


COUNT_ANY = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}
UNTAGGED = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}
PULLED_90 = {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90}
ARCHIVED = {
    "tagStatus": "any",
    "storageClass": "archive",
    "countType": "sinceImageTransitioned",
    "countUnit": "days",
    "countNumber": 365,
}
TO_ARCHIVE = {"type": "transition", "targetStorageClass": "archive"}


@dataclass(frozen=True)
class Refused:
    source: str  # the documentation sentence (or report) the case checks
    policy: str
    message: str  # a fragment of the answer's message


REFUSED = [
    Refused(
        "[properties] rulePriority: you must give them each a unique value",
        text(rule(3, tagged(["a"])), rule(3, tagged(["b"]))),
        "rulePriority values must be unique",
    ),
    Refused(
        "[properties] rulePriority: type integer", text(rule(1, COUNT_ANY) | {"rulePriority": "1"}), "rulePriority"
    ),
    Refused(
        "[properties] a rule with tagStatus any must have the highest value for rulePriority",
        text(rule(1, COUNT_ANY), rule(2, tagged(["a"]))),
        "tagStatus any must have the highest rulePriority",
    ),
    Refused(
        "[properties] tagStatus: acceptable options are tagged, untagged, or any",
        text(rule(1, {**COUNT_ANY, "tagStatus": "TAGGED"})),
        "not found in enum",
    ),
    Refused(
        "[properties] tagged: you must also specify a tagPrefixList value or a tagPatternList value",
        text(rule(1, tagged())),
        "tagPrefixList or tagPatternList is required",
    ),
    Refused(
        "[properties] untagged: you must omit both tagPrefixList and tagPatternList",
        text(rule(1, {**UNTAGGED, "tagPatternList": ["a*"]})),
        "can only be used",
    ),
    Refused(
        "[evaluation] tagPatternList or tagPrefixList may only used if the tagStatus is tagged (any)",
        text(rule(1, {**COUNT_ANY, "tagPrefixList": ["a"]})),
        "can only be used",
    ),
    Refused(
        "[evaluation] a rule may specify either tagPatternList or tagPrefixList, but not both",
        text(rule(1, tagged(["a"], ["a*"]))),
        "cannot both be specified",
    ),
    Refused(
        '[properties] maximum of four wildcards per string: ["test*1*2*3*4*5*6"] is invalid',
        text(rule(1, tagged(patterns=["test*1*2*3*4*5*6"]))),
        "more than 4 wildcards",
    ),
    Refused(
        "[properties] storageClass: with sinceImageTransitioned it is required",
        text(rule(1, {**ARCHIVED, "storageClass": "standard"})),
        "storageClass must be archive",
    ),
    Refused(
        "[properties] storageClass: with imageCountMoreThan/sinceImagePushed/sinceImagePulled only standard",
        text(rule(1, {**COUNT_ANY, "storageClass": "archive"})),
        "storageClass archive is only valid",
    ),
    Refused(
        "[properties] countType: one of the four documented types",
        text(rule(1, {**COUNT_ANY, "countType": "imageCountLessThan"})),
        "not found in enum",
    ),
    Refused(
        "[properties] countUnit: required if countType is sinceImagePushed, sinceImagePulled, sinceImageTransitioned",
        text(rule(1, {"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 7})),
        "countUnit is required",
    ),
    Refused(
        "[properties] countUnit: an error will occur if you specify a count unit with another countType",
        text(rule(1, {**COUNT_ANY, "countUnit": "days"})),
        "countUnit cannot be specified",
    ),
    Refused(
        "[properties] countUnit: specify a count unit of days",
        text(rule(1, {**PULLED_90, "countUnit": "weeks"}, TO_ARCHIVE)),
        'possible values: ["days"]',
    ),
    Refused(
        "[properties] countNumber: 0 is not an accepted value",
        text(rule(1, {**COUNT_ANY, "countNumber": 0})),
        "minimum: 1, found: 0",
    ),
    Refused(
        "[properties] countNumber: type integer",
        text(rule(1, {**COUNT_ANY, "countNumber": 1.5})),
        "minimum: 1",
    ),
    Refused(
        "[archive] you cannot configure lifecycle policies that delete images in archive for less than 90 days",
        text(rule(1, {**ARCHIVED, "countNumber": 89})),
        "must be at least 90",
    ),
    Refused(
        "[properties] action type: the supported values are expire and transition",
        text(rule(1, COUNT_ANY, {"type": "archive"})),
        "not found in enum",
    ),
    Refused(
        "[properties] targetStorageClass: required if type is transition",
        text(rule(1, PULLED_90, {"type": "transition"})),
        "targetStorageClass archive is required",
    ),
    Refused(
        "[properties] targetStorageClass: archive is the only supported value",
        text(rule(1, PULLED_90, {"type": "transition", "targetStorageClass": "standard"})),
        "targetStorageClass archive is required",
    ),
    Refused(
        "[properties] targetStorageClass belongs to the transition action",
        text(rule(1, COUNT_ANY, {"type": "expire", "targetStorageClass": "archive"})),
        "targetStorageClass can only be specified",
    ),
    Refused(
        "[examples] sinceImagePulled must be used with the transition action, not with expire",
        text(rule(1, PULLED_90)),
        "sinceImagePulled",
    ),
    Refused(
        "[examples] sinceImageTransitioned must be used with the expire action",
        text(rule(1, ARCHIVED, TO_ARCHIVE)),
        "can only be expired",
    ),
    Refused(
        "[evaluation] only one rule selecting a specific storage class is allowed to select untagged images",
        text(rule(1, UNTAGGED), rule(2, {**UNTAGGED, "countNumber": 5})),
        "only one rule is allowed to select untagged images",
    ),
    Refused(
        "[evaluation] the rules selecting a specific storage class must contain a unique set of prefixes",
        text(rule(1, tagged(["a", "b"])), rule(2, tagged(["b", "a"], countNumber=3))),
        "unique set of prefixes",
    ),
    Refused(
        "[evaluation] a lifecycle policy contains one or more rules",
        '{"rules": []' + " " * 100 + "}",
        "must be a non-empty array",
    ),
    Refused(
        "[quotas] rules per lifecycle policy: 50",
        text(*[rule(n, tagged([f"v{n}"])) for n in range(1, 52)]),
        "at most 50 rules",
    ),
    Refused(
        "[properties]/[examples] template: unknown rule keys are not part of the grammar",
        text(rule(1, COUNT_ANY) | {"enabled": True}),
        "not allowed by the schema",
    ),
    Refused(
        "[properties] required: selection.countNumber",
        text(rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan"})),
        "missing required properties",
    ),
    Refused(
        "reported (cloudposse/terraform-aws-ecr#158): a null targetStorageClass is refused",
        text(rule(1, COUNT_ANY, {"type": "expire", "targetStorageClass": None})),
        "instance failed to match exactly one schema (matched 0 out of 2)",
    ),
    Refused(
        "reported (cloudposse/terraform-aws-ecr#132): a null countUnit is refused",
        text(rule(1, {**COUNT_ANY, "countUnit": None})),
        "instance failed to match exactly one schema (matched 0 out of 2)",
    ),
]


@pytest.fixture
def repo(embedded_aws: EmbeddedAws) -> str:
    embedded_aws.ecr.create_repository(repositoryName=REPO)
    return REPO


@pytest.mark.parametrize("case", REFUSED, ids=[c.source for c in REFUSED])
def test_refuses_what_the_documentation_refuses(embedded_aws: EmbeddedAws, repo: str, case: Refused) -> None:
    with aws_error("InvalidParameterException", ECR_PREFIX):
        embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=case.policy)
    with aws_error("InvalidParameterException", case.message):
        embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=case.policy)
    with pytest.raises(embedded_aws.ecr.exceptions.LifecyclePolicyNotFoundException):
        embedded_aws.ecr.get_lifecycle_policy(repositoryName=repo)


ACCEPTED = {
    "[examples] Filtering on image age": text(
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["prod*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
        )
    ),
    "[examples] Filtering on last pulled time": text(rule(1, PULLED_90, TO_ARCHIVE)),
    "[examples] Filtering on archive transition time": text(rule(1, ARCHIVED)),
    "[examples] Filtering on image count": text(rule(1, UNTAGGED)),
    "[examples] Filtering on multiple rules, Example A": text(
        rule(1, tagged(patterns=["prod*"])), rule(2, tagged(patterns=["beta*"]))
    ),
    "[examples] Filtering on multiple tags in a single rule, Example A": text(
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["alpha*", "beta*"],
                "countType": "sinceImagePushed",
                "countNumber": 5,
                "countUnit": "days",
            },
        )
    ),
    "[examples] Filtering on all images, Example A": text(rule(1, COUNT_ANY)),
    "[examples] Filtering on all images, Example B (untagged and any side by side)": text(
        rule(1, tagged(patterns=["alpha*"])),
        rule(2, {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}),
        rule(3, COUNT_ANY),
    ),
    "[examples] Archiving images older than a specified number of days": text(
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["prod*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 30,
            },
            TO_ARCHIVE,
        )
    ),
    "[examples] Combining archive and expire rules (an any rule per storage class)": text(
        rule(
            1, {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, TO_ARCHIVE
        ),
        rule(2, ARCHIVED),
    ),
    '[properties] four wildcards per string: ["*test*1*2*3", "test*1*2*3*"] is valid': text(
        rule(1, tagged(patterns=["*test*1*2*3", "test*1*2*3*"]))
    ),
    "[properties] rulePriority values don't need to be sequential": text(
        rule(10, tagged(["a"])), rule(200, tagged(["b"]))
    ),
    "[evaluation] different rules may use pattern and prefix lists": text(
        rule(1, tagged(["v"])), rule(2, tagged(patterns=["v*"]))
    ),
    "[properties] storageClass standard may be written explicitly": text(
        rule(1, {**COUNT_ANY, "storageClass": "standard"})
    ),
    "[archive] 90 days in archive is the minimum, and allowed": text(rule(1, {**ARCHIVED, "countNumber": 90})),
    "[evaluation] one untagged rule per storage class: one standard and one archive": text(
        rule(1, UNTAGGED), rule(2, {**ARCHIVED, "tagStatus": "untagged"})
    ),
}


@pytest.mark.parametrize("policy_text", ACCEPTED.values(), ids=list(ACCEPTED))
def test_accepts_every_documented_example(embedded_aws: EmbeddedAws, repo: str, policy_text: str) -> None:
    embedded_aws.ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy_text)
    assert embedded_aws.ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == policy_text
    started = embedded_aws.ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=policy_text)
    assert started["status"] == "IN_PROGRESS"

"""What reaches ECR stays within what ECR accepts: integer bounds, no control characters, real Regions.

Each case was accepted before and passed to ECR as is: ``countNumber`` / ``rulePriority`` / presets of
10**130, descriptions holding NUL, ESC or CR, tag values holding a carriage return.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ecrcache.errors import field_errors_from_pydantic
from ecrcache.models.common import (
    ECR_REGIONS,
    MAX_API_INTEGER,
    check_region_in_partition,
    region_partition,
)
from ecrcache.models.credential import CredentialPut, CredentialSpec
from ecrcache.models.lifecycle import LifecycleSpec
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_set import WarmSetSpec

pytestmark = pytest.mark.unit

HUGE = 10**130
ROLE = "arn:aws:iam::123456789012:role/ecr-ptc-creation"
Json = dict[str, Any]


def _rule(**selection: Any) -> Json:
    sel = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1} | selection
    return {"rulePriority": 1, "selection": sel, "action": {"type": "expire"}}


def _fields(model: type[BaseModel], data: Json) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(e.field, e.message) for e in field_errors_from_pydantic(caught.value)]


# -- integers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [HUGE, MAX_API_INTEGER + 1])
@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (lambda n: {"rules": [_rule(countNumber=n)]}, "rules[0].selection.countNumber"),
        (lambda n: {"rules": [{**_rule(), "rulePriority": n}]}, "rules[0].rulePriority"),
        (lambda n: {"presets": {"keep_last": n}}, "presets.keep_last"),
        (lambda n: {"presets": {"expire_untagged_after_days": n}}, "presets.expire_untagged_after_days"),
        (lambda n: {"presets": {"expire_after_days": n}}, "presets.expire_after_days"),
        (lambda n: {"presets": {"archive_unpulled_after_days": n}}, "presets.archive_unpulled_after_days"),
        (lambda n: {"presets": {"expire_archived_after_days": n}}, "presets.expire_archived_after_days"),
    ],
    ids=["countNumber", "rulePriority", "keep_last", "untagged", "after", "unpulled", "archived"],
)
def test_lifecycle_integers_above_what_ecr_accepts_are_refused(spec: Any, path: str, value: int) -> None:
    # GIVEN a lifecycle integer beyond ECR's (a 32-bit signed integer)
    # WHEN the spec is validated THEN the field is named with the bound
    [(field, message)] = _fields(LifecycleSpec, spec(value))
    assert field == path
    assert f"at most {MAX_API_INTEGER:,}" in message
    assert str(HUGE) not in message


@pytest.mark.parametrize(
    "spec",
    [
        {"rules": [_rule(countNumber=MAX_API_INTEGER)]},
        {"rules": [{**_rule(), "rulePriority": MAX_API_INTEGER}]},
        {"presets": {"keep_last": MAX_API_INTEGER}},
        {"presets": {"expire_archived_after_days": MAX_API_INTEGER}},
    ],
)
def test_lifecycle_integers_up_to_the_bound_are_accepted(spec: Json) -> None:
    # GIVEN the largest integer ECR accepts WHEN validated and rendered THEN it is kept
    assert str(MAX_API_INTEGER) in LifecycleSpec.model_validate(spec).render_text()


def test_lifecycle_json_schema_states_the_bounds() -> None:
    # GIVEN the published schema THEN each bounded integer says its maximum
    text = str(LifecycleSpec.model_json_schema())
    assert text.count(f"'maximum': {MAX_API_INTEGER}") >= 3


# -- control characters ----------------------------------------------------------------------------

CONTROL = ["\x00", "\x1b", "\r", "\n", "\t", "\x7f", "\x85"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
@pytest.mark.parametrize(
    ("model", "data", "path"),
    [
        (RuleSpec, lambda d: {"upstream_kind": "quay", "description": d}, "description"),
        (
            RuleSpec,
            lambda d: {"upstream_kind": "quay", "lifecycle": {"rules": [{**_rule(), "description": d}]}},
            "lifecycle.rules[0].description",
        ),
        (CredentialSpec, lambda d: {"upstream_kind": "docker-hub", "username": "u", "description": d}, "description"),
        (CredentialPut, lambda d: {"upstream_kind": "docker-hub", "username": "u", "description": d}, "description"),
        (WarmSetSpec, lambda d: {"rule": "quay", "images": ["a/b:1"], "description": d}, "description"),
        (
            RuleSpec,
            lambda d: {"upstream_kind": "quay", "repository": {"tags": {"team": d}, "creation_role_arn": ROLE}},
            "repository.tags.team",
        ),
    ],
    ids=["rule", "lifecycle-rule", "credential", "credential-put", "warm-set", "tag-value"],
)
def test_control_characters_never_reach_ecr(model: type[BaseModel], data: Any, path: str, char: str) -> None:
    # GIVEN free text holding a control character
    # WHEN validated THEN it is refused at its field, naming the character, without echoing the text
    [(field, message)] = _fields(model, data(f"before{char}after"))
    assert field == path
    assert "control character" in message
    assert f"U+{ord(char):04X}" in message
    assert "before" not in message


@pytest.mark.parametrize("text", ["Docker Hub images for CI", "café \u2013 ünïcode \u2713", "a  b"])
def test_printable_text_and_spaces_are_accepted(text: str) -> None:
    assert RuleSpec.model_validate({"upstream_kind": "quay", "description": text}).description == text
    tag = "".join(c for c in text if c.isalnum() or c == " ")  # tags take letters, digits and spaces
    repository = {"tags": {"team": tag}, "creation_role_arn": ROLE}
    rule = RuleSpec.model_validate({"upstream_kind": "quay", "repository": repository})
    assert rule.repository is not None


# -- Regions and partitions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-central-2", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_every_ecr_region_has_its_partition(region: str, partition: str) -> None:
    assert region_partition(region) == partition


def test_all_ecr_regions_are_in_a_partition() -> None:
    assert all(region_partition(r) for r in ECR_REGIONS)


@pytest.mark.parametrize(
    ("region", "fragment"),
    [
        ("mars-1", "must be an AWS Region code"),
        ("us-east-9", "is not a Region with Amazon ECR"),
        ("cn-north-1", "is in the aws-cn partition; this stack runs in aws"),
    ],
)
def test_region_outside_the_stacks_partition_is_refused(region: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        check_region_in_partition(region, stack_region="us-east-1")


def test_region_in_the_stacks_partition_is_accepted() -> None:
    assert check_region_in_partition("eu-west-1", stack_region="us-east-1") == "eu-west-1"
    assert check_region_in_partition("cn-northwest-1", stack_region="cn-north-1") == "cn-northwest-1"

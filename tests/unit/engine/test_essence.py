"""Normal forms: what counts as the same policy, rule or template, and the fingerprints recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import JsonValue

from ecrcache.engine.essence import (
    canonical_json,
    changed_fields,
    desired_fingerprints,
    encryption_essence,
    fingerprint,
    lifecycle_essence,
    lifecycle_fingerprint,
    normalise_iam_policy,
    policy_essence,
    policy_fingerprint,
    rule_essence,
    tags_fingerprint,
    template_essence,
)
from ecrcache.models.lifecycle import LifecycleSpec
from ecrcache.models.observed import ObservedRule, ObservedTemplate
from tests.samples import ORG_PULL
from tests.unit.engine.planner_support import CREATION_ROLE, KEEP_10, KMS_KEY, spec

pytestmark = pytest.mark.unit

ALLOW = {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}


def _text(value: Any) -> str:
    return json.dumps(value)


# --------------------------------------------------------------------------------------------------
# IAM policies


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(
            {"Version": "2012-10-17", "Statement": [ALLOW]},
            {"Statement": [ALLOW], "Version": "2012-10-17"},
            id="top-level key order",
        ),
        pytest.param(
            {"Statement": [{"Effect": "Allow", "Action": "a", "Principal": "*"}]},
            {"Statement": [{"Principal": "*", "Action": "a", "Effect": "Allow"}]},
            id="statement key order",
        ),
        pytest.param({"Statement": ALLOW}, {"Statement": [ALLOW]}, id="single statement vs one-element list"),
        pytest.param(
            {"Statement": [{**ALLOW, "Action": "ecr:BatchGetImage"}]},
            {"Statement": [{**ALLOW, "Action": ["ecr:BatchGetImage"]}]},
            id="Action string vs one-element list",
        ),
        pytest.param(
            {"Statement": [{**ALLOW, "Action": ["b", "a"]}]},
            {"Statement": [{**ALLOW, "Action": ["a", "b", "a"]}]},
            id="Action list order and repeats",
        ),
        pytest.param(
            {"Statement": [{**ALLOW, "Resource": "arn:x"}]},
            {"Statement": [{**ALLOW, "Resource": ["arn:x"]}]},
            id="Resource string vs list",
        ),
        pytest.param(
            {"Statement": [{**ALLOW, "Principal": {"AWS": "arn:aws:iam::1:root"}}]},
            {"Statement": [{**ALLOW, "Principal": {"AWS": ["arn:aws:iam::1:root"]}}]},
            id="Principal value string vs list",
        ),
        pytest.param(
            {"Statement": [{**ALLOW, "Sid": "A"}, {**ALLOW, "Sid": "B"}]},
            {"Statement": [{**ALLOW, "Sid": "B"}, {**ALLOW, "Sid": "A"}]},
            id="statement order",
        ),
        pytest.param(
            {"Statement": [{**ALLOW, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}]},
            {"Statement": [{**ALLOW, "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-1"]}}}]},
            id="condition value string vs list",
        ),
    ],
)
def test_normalise_iam_policy_equal_for_equivalent_policies(left: dict[str, Any], right: dict[str, Any]) -> None:
    # GIVEN two texts of the same IAM policy WHEN normalised THEN they are identical
    assert normalise_iam_policy(_text(left)) == normalise_iam_policy(_text(right))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param({"Statement": [ALLOW]}, {"Statement": [{**ALLOW, "Effect": "Deny"}]}, id="effect"),
        pytest.param({"Statement": [ALLOW]}, {"Statement": [{**ALLOW, "Action": ["a", "b"]}]}, id="actions"),
        pytest.param(
            {"Statement": [ALLOW]}, {"Statement": [{**ALLOW, "Principal": {"AWS": "*"}}]}, id="principal shape kept"
        ),
        pytest.param({"Statement": [ALLOW]}, {"Statement": [ALLOW, ALLOW | {"Sid": "x"}]}, id="extra statement"),
    ],
)
def test_normalise_iam_policy_differs_for_different_policies(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert normalise_iam_policy(_text(left)) != normalise_iam_policy(_text(right))


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"'])
def test_normalise_iam_policy_rejects_non_objects(text: str) -> None:
    with pytest.raises(ValueError, match="policy text"):
        normalise_iam_policy(text)


def test_normalise_iam_policy_is_idempotent_canonical_json() -> None:
    once = normalise_iam_policy(_text(ORG_PULL))
    assert normalise_iam_policy(once) == once
    assert once == canonical_json(json.loads(once))


# --------------------------------------------------------------------------------------------------
# Policy essences


def _rules_text(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)}, indent=2)


UNTAGGED: dict[str, Any] = {
    "rulePriority": 1,
    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
    "action": {"type": "expire"},
}
TAGGED: dict[str, Any] = {
    "rulePriority": 2,
    "selection": {
        "tagStatus": "tagged",
        "tagPatternList": ["v*", "*"],
        "countType": "imageCountMoreThan",
        "countNumber": 5,
    },
    "action": {"type": "expire"},
}


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(_rules_text(UNTAGGED, TAGGED), _rules_text(TAGGED, UNTAGGED), id="rule order"),
        pytest.param(
            _rules_text(TAGGED),
            _rules_text({**TAGGED, "selection": {**TAGGED["selection"], "tagPatternList": ["*", "v*"]}}),
            id="tag list order",
        ),
        pytest.param(
            _rules_text(UNTAGGED),
            _rules_text({**UNTAGGED, "selection": {**UNTAGGED["selection"], "storageClass": "standard"}}),
            id="storageClass standard is the default",
        ),
        pytest.param(json.dumps({"rules": [UNTAGGED]}), _rules_text(UNTAGGED), id="formatting"),
    ],
)
def test_lifecycle_essence_equal_for_equivalent_policies(left: str, right: str) -> None:
    assert lifecycle_essence(left) == lifecycle_essence(right)
    assert lifecycle_fingerprint(left) == lifecycle_fingerprint(right)


def test_lifecycle_essence_differs_for_a_different_count() -> None:
    other = {**TAGGED, "selection": {**TAGGED["selection"], "countNumber": 6}}
    assert lifecycle_essence(_rules_text(TAGGED)) != lifecycle_essence(_rules_text(other))


@pytest.mark.parametrize("text", [None, ""])
def test_policy_essences_treat_empty_as_absent(text: str | None) -> None:
    assert lifecycle_essence(text) is None
    assert policy_essence(text) is None
    assert lifecycle_fingerprint(text) is None
    assert policy_fingerprint(text) is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{not json", id="not json"),
        pytest.param(_rules_text({**UNTAGGED, "action": {"type": "delete"}}), id="outside ECR grammar"),
        pytest.param('{"rules": []}', id="too short"),
    ],
)
def test_lifecycle_essence_of_unparsable_text_is_the_raw_text(text: str) -> None:
    # GIVEN an out-of-band policy our model rejects WHEN reduced THEN its essence is the raw string,
    # which never equals a parsed document (so it counts as drift)
    assert lifecycle_essence(text) == text
    assert lifecycle_essence(text) != lifecycle_essence(LifecycleSpec.model_validate(KEEP_10).render_text())


def test_policy_essence_of_unparsable_text_is_the_raw_text() -> None:
    assert policy_essence("[]") == "[]"


# --------------------------------------------------------------------------------------------------
# Fingerprints


def test_fingerprint_is_sha256_hex_of_canonical_json() -> None:
    value: JsonValue = {"b": [1, 2], "a": "x"}
    reordered: JsonValue = {"a": "x", "b": [1, 2]}
    assert fingerprint(value) == fingerprint(reordered)
    assert len(fingerprint(value)) == 64
    assert fingerprint(value) != fingerprint({"a": "x", "b": [2, 1]})


def test_tags_fingerprint_is_none_without_tags_and_order_free_with() -> None:
    assert tags_fingerprint({}) is None
    assert tags_fingerprint({"a": "1", "b": "2"}) == tags_fingerprint({"b": "2", "a": "1"})


def test_desired_fingerprints_cover_the_repository_aspects_a_rule_sets() -> None:
    # GIVEN a rule with a lifecycle, a policy and tags
    rule = spec(lifecycle=KEEP_10, policy=ORG_PULL, tags={"team": "platform"})
    # WHEN fingerprinted THEN each aspect is the fingerprint of its normal form
    found = desired_fingerprints(rule)
    assert found.lifecycle == lifecycle_fingerprint(LifecycleSpec.model_validate(KEEP_10).render_text())
    assert found.policy == policy_fingerprint(json.dumps(ORG_PULL, indent=4))
    assert found.tags == tags_fingerprint({"team": "platform"})


def test_desired_fingerprints_are_none_for_aspects_a_rule_does_not_set() -> None:
    found = desired_fingerprints(spec())
    assert (found.lifecycle, found.policy, found.tags) == (None, None, None)


# --------------------------------------------------------------------------------------------------
# Rules


def _rule(**fields: Any) -> ObservedRule:
    base: dict[str, Any] = {"prefix": "quay", "upstream_registry_url": "quay.io", "upstream_registry": "quay"}
    return ObservedRule.model_validate({**base, **fields})


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(_rule(upstream_repository_prefix="ROOT"), id="ROOT is the default upstream prefix"),
        pytest.param(_rule(upstream_registry=None), id="upstreamRegistry inferred from the URL"),
        pytest.param(_rule(upstream_registry_url="Quay.IO"), id="URL case"),
        pytest.param(
            ObservedRule.from_ecr({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io"}),
            id="from ECR, minimal",
        ),
        pytest.param(
            ObservedRule.from_ecr(
                {
                    "ecrRepositoryPrefix": "quay",
                    "upstreamRegistryUrl": "quay.io",
                    "upstreamRepositoryPrefix": "",
                    "credentialArn": "",
                    "registryId": "123456789012",
                    "createdAt": 1700000000,
                }
            ),
            id="empty strings and server-set fields",
        ),
    ],
)
def test_rule_essence_ignores_defaults_and_server_fields(other: ObservedRule) -> None:
    assert rule_essence(other) == rule_essence(_rule())


def test_rule_essence_trailing_slash_on_the_upstream_prefix_is_implied() -> None:
    assert rule_essence(_rule(upstream_repository_prefix="team/")) == rule_essence(
        _rule(upstream_repository_prefix="team")
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("upstream_repository_prefix", "other"), ("credential_arn", "arn:x"), ("custom_role_arn", "arn:y")],
)
def test_rule_essence_sees_real_changes(field: str, value: str) -> None:
    assert changed_fields(rule_essence(_rule()), rule_essence(_rule(**{field: value}))) == (field,)


# --------------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize(
    ("encryption_type", "kms_key"),
    [(None, None), ("AES256", None), ("AES256", "")],
    ids=["missing", "AES256", "empty key"],
)
def test_encryption_essence_aes256_without_key_is_the_default(encryption_type: str | None, kms_key: str | None) -> None:
    assert encryption_essence(encryption_type, kms_key) is None


def test_encryption_essence_kms_is_compared_with_its_key() -> None:
    assert encryption_essence("KMS", None) == {"type": "KMS", "kms_key": None}
    assert encryption_essence("KMS", KMS_KEY) != encryption_essence("KMS", None)


def _template(**fields: Any) -> ObservedTemplate:
    return ObservedTemplate.model_validate({"prefix": "quay", "applied_for": ("PULL_THROUGH_CACHE",), **fields})


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(_template(encryption_type="AES256"), id="AES256 default"),
        pytest.param(_template(applied_for=("CREATE_ON_PUSH", "PULL_THROUGH_CACHE")), id="other appliedFor kept"),
        pytest.param(_template(description="someone's note"), id="description ignored unless desired"),
        pytest.param(_template(repository_policy="", lifecycle_policy="", custom_role_arn=""), id="empty strings"),
    ],
)
def test_template_essence_ignores_defaults(other: ObservedTemplate) -> None:
    assert template_essence(other, with_description=False) == template_essence(_template(), with_description=False)


def test_template_essence_exclusion_order_does_not_matter() -> None:
    left = _template(image_tag_mutability="IMMUTABLE_WITH_EXCLUSION", tag_mutability_exclusions=("a", "b"))
    right = _template(image_tag_mutability="IMMUTABLE_WITH_EXCLUSION", tag_mutability_exclusions=("b", "a"))
    assert template_essence(left, with_description=False) == template_essence(right, with_description=False)


def test_template_essence_compares_description_only_when_asked() -> None:
    left, right = _template(description="a"), _template(description="b")
    assert template_essence(left, with_description=False) == template_essence(right, with_description=False)
    assert template_essence(left, with_description=True) != template_essence(right, with_description=True)


def test_template_essence_of_a_desired_template_round_trips_through_ecr_shape() -> None:
    # GIVEN a rule's creation template request WHEN read back as ECR would describe it THEN equal essence
    rule = spec(lifecycle=KEEP_10, policy=ORG_PULL, tags={"team": "p"}, repository={"creation_role_arn": CREATION_ROLE})
    request = rule.creation_template_request("quay")
    described = {**request, "registryId": "123456789012", "createdAt": 1, "updatedAt": 2}
    assert template_essence(ObservedTemplate.from_ecr(described), with_description=False) == template_essence(
        ObservedTemplate.from_ecr(request), with_description=False
    )


def test_changed_fields_lists_differing_keys_sorted() -> None:
    assert changed_fields({"a": 1, "b": 2, "c": 3}, {"c": 4, "a": 1, "d": None, "b": 0}) == ("b", "c")

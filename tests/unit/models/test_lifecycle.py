"""Unit tests for the lifecycle policy model: every documented constraint, presets, rendering, parsing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from ecrcache.errors import field_errors_from_pydantic
from ecrcache.models.lifecycle import (
    MAX_POLICY_TEXT_LENGTH,
    MAX_RULES,
    MIN_POLICY_TEXT_LENGTH,
    ActionType,
    CountType,
    CountUnit,
    LifecycleAction,
    LifecyclePolicy,
    LifecyclePresets,
    LifecycleRule,
    LifecycleSelection,
    LifecycleSpec,
    StorageClass,
    TagStatus,
    TargetStorageClass,
    check_policy_text_length,
    normalise_policy_text,
    parse_policy_text,
)

pytestmark = pytest.mark.unit

Json = dict[str, Any]

EXPIRE: Json = {"type": "expire"}
ARCHIVE: Json = {"type": "transition", "targetStorageClass": "archive"}


def _rule(priority: int = 1, action: Json | None = None, description: str | None = None, **selection: Any) -> Json:
    """A rule document; the selection defaults to 'keep one untagged image'."""
    sel: Json = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1} | selection
    rule: Json = {"rulePriority": priority, "selection": {k: v for k, v in sel.items() if v is not None}}
    if description is not None:
        rule["description"] = description
    rule["action"] = EXPIRE if action is None else action
    return rule


def _tagged(priority: int, patterns: list[str], **selection: Any) -> Json:
    return _rule(priority, tagStatus="tagged", tagPatternList=patterns, **selection)


def _errors(exc: ValidationError, prefix: str = "") -> list[tuple[str, str, str]]:
    return [(error.field, error.type, error.message) for error in field_errors_from_pydantic(exc, prefix)]


def _policy_errors(*rules: Json) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationError) as caught:
        LifecyclePolicy.model_validate({"rules": list(rules)})
    return _errors(caught.value)


# --------------------------------------------------------------------------------------------------
# One rule: valid combinations

VALID_RULES: list[tuple[str, Json]] = [
    ("untagged-count", _rule()),
    ("untagged-pushed", _rule(countType="sinceImagePushed", countUnit="days", countNumber=7)),
    ("any-count", _rule(tagStatus="any", countNumber=5)),
    ("tagged-pattern", _tagged(1, ["prod*"])),
    ("tagged-prefix", _rule(tagStatus="tagged", tagPrefixList=["prod", "v"])),
    ("pattern-4-wildcards", _tagged(1, ["*test*1*2*3", "test*1*2*3*"])),
    ("pattern-no-wildcard", _tagged(1, ["latest"])),
    ("standard-explicit", _rule(storageClass="standard")),
    ("pushed-transition", _tagged(1, ["prod*"], countType="sinceImagePushed", countUnit="days", action=ARCHIVE)),
    ("count-transition", _rule(tagStatus="any", countNumber=3, action=ARCHIVE)),
    ("pulled-transition", _rule(countType="sinceImagePulled", countUnit="days", countNumber=90, action=ARCHIVE)),
    (
        "pulled-transition-standard",
        _rule(storageClass="standard", countType="sinceImagePulled", countUnit="days", action=ARCHIVE),
    ),
    (
        "transitioned-expire-90",
        _rule(storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=90),
    ),
    (
        "transitioned-tagged",
        _tagged(
            1, ["v*"], storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=365
        ),
    ),
    ("description", _rule(description="Keep one untagged image")),
    ("empty-description", _rule(description="")),
    ("large-priority", _rule(priority=1_000_000)),
]


@pytest.mark.parametrize("rule", [case for _, case in VALID_RULES], ids=[name for name, _ in VALID_RULES])
def test_lifecycle_rule_accepts_documented_combination(rule: Json) -> None:
    # GIVEN a rule that follows every documented constraint
    # WHEN it is validated
    parsed = LifecycleRule.model_validate(rule)
    # THEN it is accepted and renders back to the same document
    assert parsed.model_dump(mode="json", exclude_none=True) == rule


# --------------------------------------------------------------------------------------------------
# One rule: each broken constraint is reported at its field, with a message naming field and rule

INVALID_RULES: list[tuple[str, Json, str, str, str]] = [
    # (id, rule, path, error type, message fragment)
    (
        "priority-zero",
        _rule(priority=0),
        "rulePriority",
        "lifecycle_rule_priority",
        "rulePriority must be a positive integer",
    ),
    ("priority-negative", _rule(priority=-3), "rulePriority", "lifecycle_rule_priority", "rulePriority must be"),
    ("priority-string", _rule(priority="1"), "rulePriority", "int_type", "valid integer"),  # type: ignore[arg-type]
    ("priority-bool", _rule(priority=True), "rulePriority", "int_type", "valid integer"),
    ("priority-float", _rule(priority=1.0), "rulePriority", "int_type", "valid integer"),  # type: ignore[arg-type]
    ("count-zero", _rule(countNumber=0), "selection.countNumber", "lifecycle_count_number", "countNumber must be a"),
    ("count-string", _rule(countNumber="14"), "selection.countNumber", "int_type", "valid integer"),
    (
        "tagged-without-filter",
        _rule(tagStatus="tagged"),
        "selection.tagPatternList",
        "lifecycle_tag_filter_missing",
        "tagPatternList or tagPrefixList is required when tagStatus is tagged",
    ),
    (
        "tagged-both-filters",
        _tagged(1, ["prod*"], tagPrefixList=["prod"]),
        "selection.tagPrefixList",
        "lifecycle_tag_filter_conflict",
        "tagPatternList and tagPrefixList cannot both be set in one rule",
    ),
    (
        "untagged-with-pattern",
        _rule(tagPatternList=["prod*"]),
        "selection.tagPatternList",
        "lifecycle_tag_filter_not_allowed",
        "tagPatternList is only allowed when tagStatus is tagged; remove it for tagStatus untagged",
    ),
    (
        "untagged-with-prefix",
        _rule(tagPrefixList=["prod"]),
        "selection.tagPrefixList",
        "lifecycle_tag_filter_not_allowed",
        "tagPrefixList is only allowed when tagStatus is tagged",
    ),
    (
        "any-with-pattern",
        _rule(tagStatus="any", tagPatternList=["*"]),
        "selection.tagPatternList",
        "lifecycle_tag_filter_not_allowed",
        "remove it for tagStatus any",
    ),
    (
        "pattern-list-empty",
        _tagged(1, []),
        "selection.tagPatternList",
        "lifecycle_tag_list_empty",
        "tagPatternList must contain at least one entry",
    ),
    (
        "prefix-list-empty",
        _rule(tagStatus="tagged", tagPrefixList=[]),
        "selection.tagPrefixList",
        "lifecycle_tag_list_empty",
        "tagPrefixList must contain at least one entry",
    ),
    (
        "pattern-entry-empty",
        _tagged(1, ["prod*", ""]),
        "selection.tagPatternList[1]",
        "lifecycle_tag_list_entry_empty",
        "tagPatternList entries must not be empty",
    ),
    (
        "prefix-entry-empty",
        _rule(tagStatus="tagged", tagPrefixList=[""]),
        "selection.tagPrefixList[0]",
        "lifecycle_tag_list_entry_empty",
        "tagPrefixList entries must not be empty",
    ),
    (
        "pattern-6-wildcards-doc",
        _tagged(1, ["test*1*2*3*4*5*6"]),
        "selection.tagPatternList[0]",
        "lifecycle_tag_pattern_wildcards",
        "tagPatternList entries may contain at most 4 wildcards (*); this one has 6",
    ),
    (
        "pattern-5-wildcards",
        _tagged(1, ["ok", "*a*b*c*d*"]),
        "selection.tagPatternList[1]",
        "lifecycle_tag_pattern_wildcards",
        "this one has 5",
    ),
    (
        "count-unit-with-image-count",
        _rule(countUnit="days"),
        "selection.countUnit",
        "lifecycle_count_unit_not_allowed",
        "countUnit is only allowed with sinceImagePushed, sinceImagePulled or sinceImageTransitioned",
    ),
    (
        "count-unit-missing-pushed",
        _rule(countType="sinceImagePushed"),
        "selection.countUnit",
        "lifecycle_count_unit_required",
        "countUnit days is required when countType is sinceImagePushed",
    ),
    (
        "count-unit-missing-pulled",
        _rule(countType="sinceImagePulled", action=ARCHIVE),
        "selection.countUnit",
        "lifecycle_count_unit_required",
        "countUnit days is required when countType is sinceImagePulled",
    ),
    (
        "count-unit-missing-transitioned",
        _rule(storageClass="archive", countType="sinceImageTransitioned", countNumber=90),
        "selection.countUnit",
        "lifecycle_count_unit_required",
        "countUnit days is required when countType is sinceImageTransitioned",
    ),
    ("count-unit-hours", _rule(countType="sinceImagePushed", countUnit="hours"), "selection.countUnit", "enum", "days"),
    (
        "archive-with-image-count",
        _rule(storageClass="archive"),
        "selection.storageClass",
        "lifecycle_storage_class_not_allowed",
        "storageClass archive is only allowed with countType sinceImageTransitioned; imageCountMoreThan selects",
    ),
    (
        "archive-with-pushed",
        _rule(storageClass="archive", countType="sinceImagePushed", countUnit="days"),
        "selection.storageClass",
        "lifecycle_storage_class_not_allowed",
        "sinceImagePushed selects standard images only",
    ),
    (
        "archive-with-pulled",
        _rule(storageClass="archive", countType="sinceImagePulled", countUnit="days", action=ARCHIVE),
        "selection.storageClass",
        "lifecycle_storage_class_not_allowed",
        "sinceImagePulled selects standard images only",
    ),
    (
        "transitioned-without-storage-class",
        _rule(countType="sinceImageTransitioned", countUnit="days", countNumber=90),
        "selection.storageClass",
        "lifecycle_storage_class_required",
        "storageClass must be archive when countType is sinceImageTransitioned",
    ),
    (
        "transitioned-standard",
        _rule(storageClass="standard", countType="sinceImageTransitioned", countUnit="days", countNumber=90),
        "selection.storageClass",
        "lifecycle_storage_class_required",
        "storageClass must be archive",
    ),
    (
        "transitioned-under-90-days",
        _rule(storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=89),
        "selection.countNumber",
        "lifecycle_archived_days_minimum",
        "countNumber must be at least 90 when countType is sinceImageTransitioned",
    ),
    ("storage-class-glacier", _rule(storageClass="glacier"), "selection.storageClass", "enum", "'standard'"),
    ("tag-status-unknown", _rule(tagStatus="all"), "selection.tagStatus", "enum", "'tagged', 'untagged' or 'any'"),
    ("count-type-unknown", _rule(countType="sinceImageCreated"), "selection.countType", "enum", "imageCountMoreThan"),
    (
        "pulled-with-expire",
        _rule(countType="sinceImagePulled", countUnit="days", countNumber=30),
        "action.type",
        "lifecycle_pulled_requires_transition",
        "action type expire cannot be used with countType sinceImagePulled; use type transition",
    ),
    (
        "transitioned-with-transition",
        _rule(
            storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=90, action=ARCHIVE
        ),
        "action.type",
        "lifecycle_archive_transition",
        "action type transition is not allowed for storageClass archive",
    ),
    (
        "transition-without-target",
        _rule(action={"type": "transition"}),
        "action.targetStorageClass",
        "lifecycle_target_storage_class_required",
        "targetStorageClass archive is required when type is transition",
    ),
    (
        "expire-with-target",
        _rule(action={"type": "expire", "targetStorageClass": "archive"}),
        "action.targetStorageClass",
        "lifecycle_target_storage_class_not_allowed",
        "targetStorageClass is only allowed when type is transition",
    ),
    (
        "target-standard",
        _rule(action={"type": "transition", "targetStorageClass": "standard"}),
        "action.targetStorageClass",
        "enum",
        "'archive'",
    ),
    ("action-delete", _rule(action={"type": "delete"}), "action.type", "enum", "'expire' or 'transition'"),
    (
        "selection-missing-count-type",
        _rule(countType=None),
        "selection.countType",
        "missing",
        "required field is missing",
    ),
    (
        "selection-extra-field",
        _rule(tagPrefix=["x"]),
        "selection.tagPrefix",
        "extra_forbidden",
        "unknown field",
    ),
    (
        "action-extra-field",
        _rule(action={"type": "expire", "days": 3}),
        "action.days",
        "extra_forbidden",
        "unknown field",
    ),
]


@pytest.mark.parametrize(
    ("rule", "path", "error_type", "fragment"),
    [case[1:] for case in INVALID_RULES],
    ids=[case[0] for case in INVALID_RULES],
)
def test_lifecycle_rule_rejects_broken_constraint(rule: Json, path: str, error_type: str, fragment: str) -> None:
    # GIVEN a policy whose only rule breaks one documented constraint
    # WHEN it is validated
    errors = _policy_errors(rule)
    # THEN exactly that constraint is reported, at the field's path, with a message naming the rule
    assert len(errors) == 1, errors
    field, kind, message = errors[0]
    assert field == f"rules[0].{path}"
    assert kind == error_type
    assert fragment in message


def test_lifecycle_rule_accepts_explicit_null_as_omitted() -> None:
    # GIVEN an expire action with an explicit null targetStorageClass (ECR itself rejects null values)
    rule = _rule(action={"type": "expire", "targetStorageClass": None})
    # WHEN it is validated and rendered
    rendered = LifecycleRule.model_validate(rule).model_dump(mode="json", exclude_none=True)
    # THEN null means omitted, and the rendering never sends a null to ECR
    assert rendered["action"] == {"type": "expire"}


def test_lifecycle_rule_reports_every_broken_selection_constraint_at_once() -> None:
    # GIVEN a selection breaking three cross-field constraints
    rule = _rule(tagStatus="tagged", storageClass="archive", countUnit="days")
    # WHEN it is validated
    errors = _policy_errors(rule)
    # THEN all three are reported, each at its own field
    assert [field for field, _, _ in errors] == [
        "rules[0].selection.tagPatternList",
        "rules[0].selection.storageClass",
        "rules[0].selection.countUnit",
    ]


def test_lifecycle_rule_rejects_missing_top_level_fields() -> None:
    # GIVEN a rule without priority, selection and action
    # WHEN it is validated
    errors = _policy_errors({"description": "nothing else"})
    # THEN each missing field is named
    assert {(field, kind) for field, kind, _ in errors} == {
        ("rules[0].rulePriority", "missing"),
        ("rules[0].selection", "missing"),
        ("rules[0].action", "missing"),
    }


def test_lifecycle_rule_is_frozen() -> None:
    # GIVEN a validated rule
    rule = LifecycleRule.model_validate(_rule())
    # WHEN a field is assigned
    # THEN the model refuses
    with pytest.raises(ValidationError, match="frozen"):
        rule.rulePriority = 2  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# Constraints across the rules of a policy


def test_lifecycle_policy_rejects_duplicate_rule_priority() -> None:
    # GIVEN two rules with the same rulePriority
    # WHEN the policy is validated
    errors = _policy_errors(_tagged(3, ["a*"]), _tagged(3, ["b*"]))
    # THEN the second one is named, with the first as the reason
    assert errors == [
        (
            "rules[1].rulePriority",
            "lifecycle_rule_priority_duplicate",
            "rulePriority 3 is already used by rules[0]; every rule needs a unique rulePriority",
        )
    ]


def test_lifecycle_policy_accepts_non_sequential_priorities_in_any_order() -> None:
    # GIVEN unique priorities that are neither sequential nor sorted
    # WHEN the policy is validated
    policy = LifecyclePolicy.model_validate({"rules": [_tagged(20, ["a*"]), _tagged(5, ["b*"]), _rule(priority=7)]})
    # THEN it is accepted and keeps the given order
    assert [rule.rulePriority for rule in policy.rules] == [20, 5, 7]


def test_lifecycle_policy_rejects_any_rule_that_is_not_last() -> None:
    # GIVEN an any rule with a lower priority than a tagged rule of the same storage class
    # WHEN the policy is validated
    errors = _policy_errors(_rule(priority=2, tagStatus="any"), _tagged(3, ["a*"]))
    # THEN the any rule's priority is reported, naming the later rule
    assert errors == [
        (
            "rules[0].rulePriority",
            "lifecycle_any_rule_not_last",
            "a rule with tagStatus any must have the highest rulePriority of the rules selecting storageClass "
            "standard (it is evaluated last); rules[1] has rulePriority 3",
        )
    ]


def test_lifecycle_policy_rejects_second_any_rule_of_a_storage_class() -> None:
    # GIVEN two any rules for standard images
    # WHEN the policy is validated
    errors = _policy_errors(_rule(priority=1, tagStatus="any"), _rule(priority=2, tagStatus="any", countNumber=3))
    # THEN the second is reported as a duplicate
    assert errors == [
        (
            "rules[1].selection.tagStatus",
            "lifecycle_any_rule_duplicate",
            "only one rule per storageClass may have tagStatus any; rules[0] already does for storageClass standard",
        )
    ]


def test_lifecycle_policy_accepts_one_any_rule_per_storage_class() -> None:
    # GIVEN an any rule for standard images evaluated before an any rule for archived images
    #   (the AWS "Combining archive and expire rules" example has exactly this shape)
    archived = _rule(
        priority=2, tagStatus="any", storageClass="archive", countType="sinceImageTransitioned", countUnit="days"
    )
    archived["selection"]["countNumber"] = 365
    standard = _rule(priority=1, tagStatus="any", countType="sinceImagePushed", countUnit="days", action=ARCHIVE)
    # WHEN the policy is validated
    policy = LifecyclePolicy.model_validate({"rules": [standard, archived]})
    # THEN it is accepted: "any is last" holds within each storage class
    assert len(policy.rules) == 2


def test_lifecycle_policy_accepts_any_rule_last_among_untagged_and_tagged() -> None:
    # GIVEN tagged, untagged, then any (AWS "Filtering on all images", example B)
    rules = [
        _tagged(1, ["alpha*"]),
        _rule(2, countType="sinceImagePushed", countUnit="days"),
        _rule(3, tagStatus="any"),
    ]
    # WHEN the policy is validated
    # THEN it is accepted
    assert len(LifecyclePolicy.model_validate({"rules": rules}).rules) == 3


def test_lifecycle_policy_rejects_second_untagged_rule_of_a_storage_class() -> None:
    # GIVEN two untagged rules for standard images
    # WHEN the policy is validated
    errors = _policy_errors(_rule(1), _rule(2, countType="sinceImagePushed", countUnit="days"))
    # THEN the second is reported: it would never act
    assert errors == [
        (
            "rules[1].selection.tagStatus",
            "lifecycle_untagged_rule_duplicate",
            "only one rule per storageClass may have tagStatus untagged; rules[0] already selects untagged "
            "standard images, so this rule would never act",
        )
    ]


def test_lifecycle_policy_accepts_untagged_rule_per_storage_class() -> None:
    # GIVEN an untagged rule for standard images and one for archived images
    archived = _rule(2, storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=90)
    # WHEN the policy is validated
    # THEN it is accepted
    assert len(LifecyclePolicy.model_validate({"rules": [_rule(1), archived]}).rules) == 2


@pytest.mark.parametrize(
    ("first", "second", "path"),
    [
        (_tagged(1, ["a*", "b*"]), _tagged(2, ["b*", "a*"]), "rules[1].selection.tagPatternList"),
        (
            _rule(1, tagStatus="tagged", tagPrefixList=["prod"]),
            _rule(2, tagStatus="tagged", tagPrefixList=["prod"], countNumber=9),
            "rules[1].selection.tagPrefixList",
        ),
    ],
    ids=["same-patterns-any-order", "same-prefixes"],
)
def test_lifecycle_policy_rejects_duplicate_tag_filter_in_a_storage_class(first: Json, second: Json, path: str) -> None:
    # GIVEN two rules of one storage class with the same tag list (as a set)
    # WHEN the policy is validated
    errors = _policy_errors(first, second)
    # THEN the later one is reported
    assert [(field, kind) for field, kind, _ in errors] == [(path, "lifecycle_tag_filter_duplicate")]
    assert "rules[0] already uses the same" in errors[0][2]


def test_lifecycle_policy_accepts_same_tag_value_as_pattern_and_prefix() -> None:
    # GIVEN a pattern rule and a prefix rule with the same strings (different filters)
    rules = [_tagged(1, ["prod"]), _rule(2, tagStatus="tagged", tagPrefixList=["prod"])]
    # WHEN the policy is validated
    # THEN it is accepted
    assert len(LifecyclePolicy.model_validate({"rules": rules}).rules) == 2


def test_lifecycle_policy_rejects_empty_rules() -> None:
    # GIVEN a policy without rules
    # WHEN it is validated
    # THEN the rules field is named
    assert _policy_errors() == [("rules", "lifecycle_rules_empty", "rules must contain at least one rule")]


def test_lifecycle_policy_accepts_fifty_rules() -> None:
    # GIVEN the maximum number of rules
    rules = [_tagged(i, [f"v{i}*"]) for i in range(1, MAX_RULES + 1)]
    # WHEN the policy is validated
    # THEN it is accepted
    assert len(LifecyclePolicy.model_validate({"rules": rules}).rules) == MAX_RULES


def test_lifecycle_policy_rejects_fifty_one_rules() -> None:
    # GIVEN one rule more than ECR allows
    rules = [_tagged(i, [f"v{i}*"]) for i in range(1, MAX_RULES + 2)]
    # WHEN the policy is validated
    # THEN the count and the limit are named
    assert _policy_errors(*rules) == [
        ("rules", "lifecycle_rules_too_many", "rules has 51 rules; ECR allows at most 50 in one lifecycle policy")
    ]


@pytest.mark.parametrize(
    "document",
    [{}, {"rules": [], "version": 1}, {"Rules": []}],
    ids=["missing-rules", "extra-key", "wrong-case"],
)
def test_lifecycle_policy_rejects_malformed_document(document: Json) -> None:
    # GIVEN a document that is not {"rules": [...]}
    # WHEN it is validated
    # THEN it is refused
    with pytest.raises(ValidationError):
        LifecyclePolicy.model_validate(document)


# --------------------------------------------------------------------------------------------------
# Rendering


def test_lifecycle_policy_render_uses_canonical_key_order_and_drops_nulls() -> None:
    # GIVEN a rule written with keys in an unusual order and explicit nulls
    rule = {
        "action": {"targetStorageClass": None, "type": "expire"},
        "selection": {"countNumber": 5, "countUnit": "days", "countType": "sinceImagePushed", "tagStatus": "untagged"},
        "description": None,
        "rulePriority": 1,
    }
    # WHEN the policy is rendered
    text = LifecyclePolicy.model_validate({"rules": [rule]}).render_text()
    # THEN keys follow ECR's template order, with nothing null, compact
    assert text == (
        '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed",'
        '"countUnit":"days","countNumber":5},"action":{"type":"expire"}}]}'
    )


def test_lifecycle_policy_render_keeps_every_documented_field_in_order() -> None:
    # GIVEN a rule using every field
    policy = LifecyclePolicy(
        rules=[
            LifecycleRule(
                rulePriority=4,
                description="d",
                selection=LifecycleSelection(
                    tagStatus=TagStatus.TAGGED,
                    tagPrefixList=["v"],
                    storageClass=StorageClass.STANDARD,
                    countType=CountType.SINCE_IMAGE_PUSHED,
                    countUnit=CountUnit.DAYS,
                    countNumber=3,
                ),
                action=LifecycleAction(type=ActionType.TRANSITION, targetStorageClass=TargetStorageClass.ARCHIVE),
            )
        ]
    )
    # WHEN it is rendered
    rendered = policy.render()
    # THEN the keys come out in ECR's order
    rule = rendered["rules"][0]  # type: ignore[index]
    assert list(rule) == ["rulePriority", "description", "selection", "action"]
    assert list(rule["selection"]) == [
        "tagStatus",
        "tagPrefixList",
        "storageClass",
        "countType",
        "countUnit",
        "countNumber",
    ]
    assert list(rule["action"]) == ["type", "targetStorageClass"]


def test_lifecycle_spec_render_text_is_deterministic() -> None:
    # GIVEN the same spec built twice, once from differently ordered input
    first = LifecycleSpec.model_validate({"presets": {"keep_last": 10, "expire_untagged_after_days": 7}})
    second = LifecycleSpec.model_validate({"presets": {"expire_untagged_after_days": 7, "keep_last": 10}})
    # WHEN both are rendered, twice
    # THEN the text is identical and is the compact dump of render()
    assert first.render_text() == second.render_text() == first.render_text()
    assert first.render_text() == json.dumps(first.render(), separators=(",", ":"))


def test_lifecycle_spec_render_text_round_trips_through_parse() -> None:
    # GIVEN a spec written with full rules
    spec = LifecycleSpec.model_validate({"rules": [_tagged(1, ["prod*"]), _rule(2)]})
    # WHEN its text is parsed back
    parsed = parse_policy_text(spec.render_text())
    # THEN the policy is equal
    assert parsed == spec.to_policy()


# --------------------------------------------------------------------------------------------------
# Presets


def _preset_text(**presets: int) -> Json:
    result: Json = LifecycleSpec.model_validate({"presets": presets}).render()
    return result


UNTAGGED_7 = {
    "rulePriority": 1,
    "description": "Expire untagged images 7 days after push",
    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
    "action": {"type": "expire"},
}


def _all_tagged_rule(priority: int, description: str, selection: Json, action: Json) -> Json:
    return {
        "rulePriority": priority,
        "description": description,
        "selection": {"tagStatus": "tagged", "tagPatternList": ["*"], **selection},
        "action": action,
    }


PRESET_CASES: list[tuple[str, dict[str, int], list[Json]]] = [
    ("expire-untagged", {"expire_untagged_after_days": 7}, [UNTAGGED_7]),
    (
        "expire-untagged-1-day",
        {"expire_untagged_after_days": 1},
        [
            {
                "rulePriority": 1,
                "description": "Expire untagged images 1 day after push",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": EXPIRE,
            }
        ],
    ),
    (
        "keep-last",
        {"keep_last": 10},
        [
            _all_tagged_rule(
                1,
                "Keep the 10 most recently pushed tagged images, expire older tagged images",
                {"countType": "imageCountMoreThan", "countNumber": 10},
                EXPIRE,
            )
        ],
    ),
    (
        "keep-last-1",
        {"keep_last": 1},
        [
            _all_tagged_rule(
                1,
                "Keep only the most recently pushed tagged image, expire older tagged images",
                {"countType": "imageCountMoreThan", "countNumber": 1},
                EXPIRE,
            )
        ],
    ),
    (
        "expire-after-days",
        {"expire_after_days": 30},
        [
            _all_tagged_rule(
                1,
                "Expire tagged images 30 days after push",
                {"countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
                EXPIRE,
            )
        ],
    ),
    (
        "archive-unpulled",
        {"archive_unpulled_after_days": 60},
        [
            _all_tagged_rule(
                1,
                "Archive tagged images not pulled for 60 days",
                {"countType": "sinceImagePulled", "countUnit": "days", "countNumber": 60},
                ARCHIVE,
            )
        ],
    ),
    (
        "expire-archived",
        {"expire_archived_after_days": 90},
        [
            {
                "rulePriority": 1,
                "description": "Expire archived images 90 days after archiving",
                "selection": {
                    "tagStatus": "any",
                    "storageClass": "archive",
                    "countType": "sinceImageTransitioned",
                    "countUnit": "days",
                    "countNumber": 90,
                },
                "action": EXPIRE,
            }
        ],
    ),
    (
        "untagged-then-keep-last",
        {"keep_last": 5, "expire_untagged_after_days": 7},
        [
            UNTAGGED_7,
            _all_tagged_rule(
                2,
                "Keep the 5 most recently pushed tagged images, expire older tagged images",
                {"countType": "imageCountMoreThan", "countNumber": 5},
                EXPIRE,
            ),
        ],
    ),
    (
        "untagged-archive-then-expire-archived",
        {"expire_archived_after_days": 365, "archive_unpulled_after_days": 30, "expire_untagged_after_days": 7},
        [
            UNTAGGED_7,
            _all_tagged_rule(
                2,
                "Archive tagged images not pulled for 30 days",
                {"countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30},
                ARCHIVE,
            ),
            {
                "rulePriority": 3,
                "description": "Expire archived images 365 days after archiving",
                "selection": {
                    "tagStatus": "any",
                    "storageClass": "archive",
                    "countType": "sinceImageTransitioned",
                    "countUnit": "days",
                    "countNumber": 365,
                },
                "action": EXPIRE,
            },
        ],
    ),
]


@pytest.mark.parametrize(
    ("presets", "expected"),
    [case[1:] for case in PRESET_CASES],
    ids=[case[0] for case in PRESET_CASES],
)
def test_lifecycle_presets_compile_to_exact_ecr_json(presets: dict[str, int], expected: list[Json]) -> None:
    # GIVEN presets
    # WHEN they are compiled and rendered
    rendered = _preset_text(**presets)
    # THEN the ECR document is exactly the expected one, key order included
    assert json.dumps(rendered) == json.dumps({"rules": expected})


def test_lifecycle_presets_to_rules_priorities_are_contiguous_from_one() -> None:
    # GIVEN every compatible preset at once
    presets = LifecyclePresets(expire_untagged_after_days=3, expire_after_days=30, expire_archived_after_days=120)
    # WHEN compiled
    rules = presets.to_rules()
    # THEN priorities are 1..n: untagged first, tagged next, archived last
    assert [(r.rulePriority, r.selection.tagStatus) for r in rules] == [
        (1, TagStatus.UNTAGGED),
        (2, TagStatus.TAGGED),
        (3, TagStatus.ANY),
    ]


@pytest.mark.parametrize(
    ("presets", "errors"),
    [
        (
            {"keep_last": 10, "expire_after_days": 30},
            [("presets.expire_after_days", "expire_after_days cannot be combined with keep_last")],
        ),
        (
            {"keep_last": 10, "archive_unpulled_after_days": 30},
            [("presets.archive_unpulled_after_days", "archive_unpulled_after_days cannot be combined with keep_last")],
        ),
        (
            {"expire_after_days": 10, "archive_unpulled_after_days": 30},
            [
                (
                    "presets.archive_unpulled_after_days",
                    "archive_unpulled_after_days cannot be combined with expire_after_days",
                )
            ],
        ),
        (
            {"keep_last": 1, "expire_after_days": 2, "archive_unpulled_after_days": 3},
            [
                ("presets.expire_after_days", "expire_after_days cannot be combined with keep_last"),
                (
                    "presets.archive_unpulled_after_days",
                    "archive_unpulled_after_days cannot be combined with keep_last",
                ),
            ],
        ),
    ],
    ids=["keep-last+expire-after", "keep-last+archive", "expire-after+archive", "all-three"],
)
def test_lifecycle_presets_reject_tagged_presets_together(presets: Json, errors: list[tuple[str, str]]) -> None:
    # GIVEN two tagged presets, which would select the same images
    # WHEN the spec is validated
    with pytest.raises(ValidationError) as caught:
        LifecycleSpec.model_validate({"presets": presets})
    # THEN the later field is reported, naming both, and why
    found = _errors(caught.value)
    assert [(field, message.split(":")[0]) for field, _, message in found] == errors
    assert all(kind == "lifecycle_presets_conflict" for _, kind, _ in found)
    assert "would never act" in found[0][2]


@pytest.mark.parametrize(
    ("presets", "path", "fragment"),
    [
        ({}, "presets", "set at least one preset: expire_untagged_after_days, keep_last"),
        ({"keep_last": None}, "presets", "set at least one preset"),
        ({"keep_last": 0}, "presets.keep_last", "the value must be a positive integer"),
        ({"expire_untagged_after_days": 0}, "presets.expire_untagged_after_days", "positive integer"),
        ({"expire_after_days": -1}, "presets.expire_after_days", "positive integer"),
        ({"archive_unpulled_after_days": 0}, "presets.archive_unpulled_after_days", "positive integer"),
        ({"expire_archived_after_days": 89}, "presets.expire_archived_after_days", "must be at least 90"),
        ({"keep_last": "10"}, "presets.keep_last", "valid integer"),
        ({"keep_latest": 10}, "presets.keep_latest", "unknown field"),
    ],
    ids=[
        "empty",
        "all-null",
        "keep-zero",
        "untagged-zero",
        "after-negative",
        "unpulled-zero",
        "archived-89",
        "string",
        "unknown",
    ],
)
def test_lifecycle_presets_reject_bad_value(presets: Json, path: str, fragment: str) -> None:
    # GIVEN a preset with a bad value, or none
    # WHEN the spec is validated
    with pytest.raises(ValidationError) as caught:
        LifecycleSpec.model_validate({"presets": presets})
    # THEN the field (or presets) is named with the rule
    [(field, _, message)] = _errors(caught.value)
    assert field == path
    assert fragment in message


# --------------------------------------------------------------------------------------------------
# The spec: presets or rules, exactly one, and the text bounds


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "set one of presets or rules"),
        ({"presets": None, "rules": None}, "set one of presets or rules"),
        ({"presets": {"keep_last": 3}, "rules": [_rule()]}, "set either presets or rules, not both"),
    ],
    ids=["neither", "both-null", "both"],
)
def test_lifecycle_spec_requires_exactly_one_of_presets_and_rules(spec: Json, message: str) -> None:
    # GIVEN a spec with neither or both
    # WHEN validated
    with pytest.raises(ValidationError) as caught:
        LifecycleSpec.model_validate(spec)
    # THEN the error sits on the lifecycle section and names both fields
    assert _errors(caught.value, "lifecycle") == [("lifecycle", "lifecycle_spec", message)]


def test_lifecycle_spec_reports_rule_errors_under_rules_path() -> None:
    # GIVEN a spec whose third rule breaks the countUnit rule
    spec = {"rules": [_tagged(1, ["a*"]), _tagged(2, ["b*"]), _tagged(3, ["c*"], countUnit="days")]}
    # WHEN validated
    with pytest.raises(ValidationError) as caught:
        LifecycleSpec.model_validate(spec)
    # THEN the API detail reads as documented
    [(field, _, message)] = _errors(caught.value, "lifecycle")
    assert f"{field}: {message}" == (
        "lifecycle.rules[2].selection.countUnit: countUnit is only allowed with sinceImagePushed, "
        "sinceImagePulled or sinceImageTransitioned; remove it for imageCountMoreThan"
    )


def test_lifecycle_spec_reports_policy_errors_under_rules_path() -> None:
    # GIVEN a spec with duplicate priorities
    spec = {"rules": [_tagged(1, ["a*"]), _tagged(1, ["b*"])]}
    # WHEN validated
    with pytest.raises(ValidationError) as caught:
        LifecycleSpec.model_validate(spec)
    # THEN the duplicate is named under lifecycle.rules
    assert [field for field, _, _ in _errors(caught.value, "lifecycle")] == ["lifecycle.rules[1].rulePriority"]


def test_lifecycle_spec_rejects_rendered_text_over_ecr_maximum() -> None:
    # GIVEN 50 valid rules with long descriptions (over 30,720 characters once rendered)
    rules = [_tagged(i, [f"v{i}*"], description="x" * 700) for i in range(1, MAX_RULES + 1)]
    # WHEN the spec is validated
    with pytest.raises(ValidationError) as caught:
        LifecycleSpec.model_validate({"rules": rules})
    # THEN the length and the limit are named, with what to do
    [(field, kind, message)] = _errors(caught.value, "lifecycle")
    assert (field, kind) == ("lifecycle", "lifecycle_spec")
    assert "ECR allows at most 30,720 (LifecyclePolicyText)" in message
    assert "use fewer rules, or shorter descriptions" in message


def test_lifecycle_spec_to_policy_for_rules_is_the_same_policy() -> None:
    # GIVEN a spec with rules
    spec = LifecycleSpec.model_validate({"rules": [_rule()]})
    # WHEN it is turned into a policy
    # THEN the rules are the spec's
    assert spec.to_policy().rules == spec.rules


@pytest.mark.parametrize(
    ("length", "fragment"),
    [
        (
            MIN_POLICY_TEXT_LENGTH - 1,
            "is 99 characters; ECR requires at least 100 (LifecyclePolicyText) - add a description",
        ),
        (MAX_POLICY_TEXT_LENGTH + 1, "is 30,721 characters; ECR allows at most 30,720"),
        (0, "is 0 characters"),
    ],
    ids=["99", "30721", "empty"],
)
def test_check_policy_text_length_rejects_out_of_bounds(length: int, fragment: str) -> None:
    # GIVEN a text outside ECR's LifecyclePolicyText bounds
    # WHEN checked
    # THEN a ValueError says how long it is, the bound, and what to do
    with pytest.raises(ValueError, match="lifecycle policy text") as caught:
        check_policy_text_length("x" * length)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("length", [MIN_POLICY_TEXT_LENGTH, MAX_POLICY_TEXT_LENGTH], ids=["100", "30720"])
def test_check_policy_text_length_accepts_bounds(length: int) -> None:
    # GIVEN a text exactly at a bound
    # WHEN checked
    # THEN it passes
    check_policy_text_length("x" * length)


# --------------------------------------------------------------------------------------------------
# Reading ECR's text back


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"rules": [' + " " * 100, "lifecycle policy text is not valid JSON: Expecting value at line 1 column"),
        ("[" + " " * 100 + "]", 'lifecycle policy text must be a JSON object like {"rules": [...]}'),
        ('{"rules":[]}', "is 12 characters; ECR requires at least 100"),
    ],
    ids=["truncated", "array", "too-short"],
)
def test_parse_policy_text_rejects_unreadable_text_with_value_error(text: str, fragment: str) -> None:
    # GIVEN text that is not a lifecycle policy document
    # WHEN parsed
    # THEN a ValueError says why
    with pytest.raises(ValueError, match="lifecycle policy text") as caught:
        parse_policy_text(text)
    assert fragment in str(caught.value)


def test_parse_policy_text_reports_grammar_errors_as_validation_error() -> None:
    # GIVEN well-formed JSON breaking the grammar (expire with sinceImagePulled)
    text = json.dumps({"rules": [_rule(countType="sinceImagePulled", countUnit="days")]})
    # WHEN parsed
    with pytest.raises(ValidationError) as caught:
        parse_policy_text(text)
    # THEN the broken rule is located (a ValidationError is also a ValueError)
    assert isinstance(caught.value, ValueError)
    assert [field for field, _, _ in _errors(caught.value)] == ["rules[0].action.type"]


def test_parse_policy_text_accepts_pretty_printed_text() -> None:
    # GIVEN indented text, as people and the ECR console write it
    text = json.dumps({"rules": [_tagged(1, ["prod*"])]}, indent=4)
    # WHEN parsed
    # THEN it equals the compact form's policy
    assert parse_policy_text(text) == parse_policy_text(json.dumps(json.loads(text)))


# --------------------------------------------------------------------------------------------------
# Normal form for drift detection


def _text(*rules: Json) -> str:
    return json.dumps({"rules": list(rules)})


NORMAL_FORM_EQUAL: list[tuple[str, str, str]] = [
    ("rule-order", _text(_tagged(1, ["a*"]), _rule(2)), _text(_rule(2), _tagged(1, ["a*"]))),
    ("standard-default", _text(_rule(1, storageClass="standard")), _text(_rule(1))),
    ("pattern-order", _text(_tagged(1, ["b*", "a*"])), _text(_tagged(1, ["a*", "b*"]))),
    ("pattern-duplicates", _text(_tagged(1, ["a*", "a*", "b*"])), _text(_tagged(1, ["b*", "a*"]))),
    (
        "prefix-order",
        _text(_rule(1, tagStatus="tagged", tagPrefixList=["v", "prod"])),
        _text(_rule(1, tagStatus="tagged", tagPrefixList=["prod", "v"])),
    ),
    ("whitespace-and-key-order", json.dumps({"rules": [_rule(1)]}, indent=2, sort_keys=True), _text(_rule(1))),
]


@pytest.mark.parametrize(
    ("left", "right"),
    [case[1:] for case in NORMAL_FORM_EQUAL],
    ids=[case[0] for case in NORMAL_FORM_EQUAL],
)
def test_normalise_policy_text_equal_for_semantically_equal_policies(left: str, right: str) -> None:
    # GIVEN two texts of the same policy, written differently
    # WHEN both are normalised
    # THEN the normal forms are equal
    assert normalise_policy_text(left) == normalise_policy_text(right)


NORMAL_FORM_DIFFERENT: list[tuple[str, str, str]] = [
    ("count", _text(_rule(1)), _text(_rule(1, countNumber=2))),
    ("priority", _text(_rule(1)), _text(_rule(2))),
    ("description", _text(_rule(1, description="a")), _text(_rule(1, description="b"))),
    ("action", _text(_rule(1)), _text(_rule(1, action=ARCHIVE))),
    ("pattern-vs-prefix", _text(_tagged(1, ["v"])), _text(_rule(1, tagStatus="tagged", tagPrefixList=["v"]))),
]


@pytest.mark.parametrize(
    ("left", "right"),
    [case[1:] for case in NORMAL_FORM_DIFFERENT],
    ids=[case[0] for case in NORMAL_FORM_DIFFERENT],
)
def test_normalise_policy_text_differs_for_different_policies(left: str, right: str) -> None:
    # GIVEN two texts that differ in something ECR or people can see
    # WHEN both are normalised
    # THEN the normal forms differ
    assert normalise_policy_text(left) != normalise_policy_text(right)


def test_normalise_policy_text_is_compact_sorted_and_idempotent() -> None:
    # GIVEN an unsorted policy with an explicit default
    text = _text(_rule(5, storageClass="standard"), _tagged(2, ["b*", "a*"]))
    # WHEN normalised (twice)
    once = normalise_policy_text(text)
    # THEN rules are sorted, the default dropped, and normalising again changes nothing
    assert once == (
        '{"rules":[{"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["a*","b*"],'
        '"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},'
        '{"rulePriority":5,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},'
        '"action":{"type":"expire"}}]}'
    )
    assert normalise_policy_text(once) == once


def test_normalise_policy_text_matches_desired_preset_render() -> None:
    # GIVEN a preset spec, and ECR's stored (pretty-printed, reordered) copy of its text
    spec = LifecycleSpec.model_validate({"presets": {"keep_last": 10, "expire_untagged_after_days": 7}})
    stored = json.dumps({"rules": list(reversed(spec.render()["rules"]))}, indent=3)  # type: ignore[call-overload]
    # WHEN the reconciler compares normal forms
    # THEN there is no drift
    assert normalise_policy_text(stored) == normalise_policy_text(spec.render_text())


def test_lifecycle_policy_normalised_does_not_change_the_original() -> None:
    # GIVEN a policy
    policy = LifecyclePolicy.model_validate({"rules": [_tagged(2, ["b*", "a*"], storageClass="standard"), _rule(1)]})
    before = copy.deepcopy(policy.render())
    # WHEN normalised
    policy.normalised()
    # THEN the original is untouched
    assert policy.render() == before


def test_lifecycle_spec_json_schema_is_generated() -> None:
    # GIVEN the spec model (it becomes part of the OpenAPI document)
    # WHEN its JSON schema is generated
    schema = LifecycleSpec.model_json_schema()
    # THEN the documented bounds are visible to API users
    defs = schema["$defs"]
    assert defs["LifecycleSelection"]["properties"]["countNumber"]["minimum"] == 1
    assert set(defs["LifecyclePresets"]["properties"]) == {
        "expire_untagged_after_days",
        "keep_last",
        "expire_after_days",
        "archive_unpulled_after_days",
        "expire_archived_after_days",
    }

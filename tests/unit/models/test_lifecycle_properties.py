"""Property tests: any valid policy renders, re-parses to an equal model, and normalises stably."""

from __future__ import annotations

import json
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrcache.models.lifecycle import (
    MAX_RULES,
    MIN_ARCHIVED_DAYS,
    ActionType,
    CountType,
    CountUnit,
    LifecycleAction,
    LifecyclePolicy,
    LifecycleRule,
    LifecycleSelection,
    LifecycleSpec,
    StorageClass,
    TagStatus,
    TargetStorageClass,
    normalise_policy_text,
    parse_policy_text,
)

pytestmark = pytest.mark.unit

EXPIRE = LifecycleAction(type=ActionType.EXPIRE)
TRANSITION = LifecycleAction(type=ActionType.TRANSITION, targetStorageClass=TargetStorageClass.ARCHIVE)

# a rule without its priority: (selection, action, description)
Draft = tuple[LifecycleSelection, LifecycleAction, str | None]

tag_entries = st.text(alphabet="abcxyz019._-", min_size=1, max_size=8)
patterns = st.lists(
    st.builds(lambda head, stars: head + "*" * stars, tag_entries, st.integers(0, 2)), min_size=1, max_size=3
)
prefixes = st.lists(tag_entries, min_size=1, max_size=3)
descriptions = st.none() | st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=40)


@st.composite
def standard_drafts(draw: st.DrawFn, tag_status: TagStatus) -> Draft:
    """A rule selecting standard images, with a consistent countType / countUnit / action."""
    count_type = draw(
        st.sampled_from([CountType.IMAGE_COUNT_MORE_THAN, CountType.SINCE_IMAGE_PUSHED, CountType.SINCE_IMAGE_PULLED])
    )
    is_count = count_type is CountType.IMAGE_COUNT_MORE_THAN
    tag_filter: dict[str, list[str]] = {}
    if tag_status is TagStatus.TAGGED:
        tag_filter = draw(
            st.sampled_from(["tagPatternList", "tagPrefixList"]).flatmap(
                lambda name: (patterns if name == "tagPatternList" else prefixes).map(lambda tags: {name: tags})
            )
        )
    selection = LifecycleSelection(
        tagStatus=tag_status,
        storageClass=draw(st.sampled_from([None, StorageClass.STANDARD])),
        countType=count_type,
        countUnit=None if is_count else CountUnit.DAYS,
        countNumber=draw(st.integers(1, 10_000)),
        **tag_filter,
    )
    action = TRANSITION if count_type is CountType.SINCE_IMAGE_PULLED else draw(st.sampled_from([EXPIRE, TRANSITION]))
    return selection, action, draw(descriptions)


@st.composite
def archived_drafts(draw: st.DrawFn, tag_status: TagStatus) -> Draft:
    """A rule expiring archived images."""
    tag_filter: dict[str, list[str]] = {}
    if tag_status is TagStatus.TAGGED:
        tag_filter = {"tagPatternList": draw(patterns)}
    selection = LifecycleSelection(
        tagStatus=tag_status,
        storageClass=StorageClass.ARCHIVE,
        countType=CountType.SINCE_IMAGE_TRANSITIONED,
        countUnit=CountUnit.DAYS,
        countNumber=draw(st.integers(MIN_ARCHIVED_DAYS, 10_000)),
        **tag_filter,
    )
    return selection, EXPIRE, draw(descriptions)


def _unique_filters(drafts: list[Draft]) -> list[Draft]:
    """Drop tagged drafts whose tag list (as a set) repeats within one storage class."""
    seen: set[tuple[StorageClass, str, frozenset[str]]] = set()
    kept: list[Draft] = []
    for draft in drafts:
        selection = draft[0]
        if selection.tag_list is not None:
            key = (
                selection.effective_storage_class,
                "pattern" if selection.tagPatternList is not None else "prefix",
                frozenset(selection.tag_list),
            )
            if key in seen:
                continue
            seen.add(key)
        kept.append(draft)
    return kept


@st.composite
def policies(draw: st.DrawFn) -> LifecyclePolicy:
    """A valid policy: unique priorities, at most one untagged and one any rule per storage class, each
    any rule last of its class, unique tag lists per class."""
    tagged = draw(st.lists(standard_drafts(TagStatus.TAGGED), max_size=6))
    tagged += draw(st.lists(archived_drafts(TagStatus.TAGGED), max_size=3))
    singles = [
        draw(st.none() | standard_drafts(TagStatus.UNTAGGED)),
        draw(st.none() | archived_drafts(TagStatus.UNTAGGED)),
    ]
    ordinary = draw(st.permutations(_unique_filters(tagged) + [d for d in singles if d is not None]))
    last = [
        draw(st.none() | standard_drafts(TagStatus.ANY)),
        draw(st.none() | archived_drafts(TagStatus.ANY)),
    ]
    drafts = list(ordinary) + [d for d in draw(st.permutations(last)) if d is not None]
    if not drafts:
        drafts = [draw(standard_drafts(TagStatus.UNTAGGED))]
    drafts = drafts[:MAX_RULES]
    priorities = sorted(draw(st.sets(st.integers(1, 10_000), min_size=len(drafts), max_size=len(drafts))))
    rules = [
        LifecycleRule(rulePriority=priority, description=description, selection=selection, action=action)
        for priority, (selection, action, description) in zip(priorities, drafts, strict=True)
    ]
    return LifecyclePolicy(rules=rules)


def _has_null(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_null(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_null(item) for item in value)
    return value is None


@settings(max_examples=300, deadline=None)
@given(policies())
def test_lifecycle_policy_render_text_reparses_to_equal_model(policy: LifecyclePolicy) -> None:
    # GIVEN any valid policy
    # WHEN it is rendered and parsed back (the path to ECR and back)
    text = policy.render_text()
    # THEN the model is equal, the text is deterministic, and no null is ever sent
    assert parse_policy_text(text) == policy
    assert LifecyclePolicy.model_validate_json(text) == policy
    assert parse_policy_text(text).render_text() == text
    assert not _has_null(json.loads(text))


@settings(max_examples=200, deadline=None)
@given(policies(), st.randoms(use_true_random=False))
def test_lifecycle_policy_normal_form_ignores_rule_order_and_is_idempotent(
    policy: LifecyclePolicy, random: Random
) -> None:
    # GIVEN any valid policy, and the same rules in another order
    rules = list(policy.rules)
    random.shuffle(rules)
    shuffled = LifecyclePolicy(rules=rules)
    # WHEN both are normalised
    normal = normalise_policy_text(policy.render_text())
    # THEN the normal forms are equal, and normalising is idempotent
    assert normalise_policy_text(shuffled.render_text()) == normal
    assert normalise_policy_text(normal) == normal


@settings(max_examples=100, deadline=None)
@given(policies())
def test_lifecycle_spec_accepts_every_valid_policy_as_rules(policy: LifecyclePolicy) -> None:
    # GIVEN any valid policy written as a spec's rules
    # WHEN the spec is validated from its JSON form
    spec = LifecycleSpec.model_validate_json(json.dumps({"rules": policy.render()["rules"]}))
    # THEN it renders the same text
    assert spec.render_text() == policy.render_text()

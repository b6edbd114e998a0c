"""The policies from AWS's "Examples of lifecycle policies in Amazon ECR" page, one fixture per section.

Source: https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html; each file
in ``fixtures/lifecycle/`` is the JSON of one section, named after it (the page's syntax template is
not JSON and is left out).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecrcache.models.lifecycle import LifecyclePolicy, LifecycleSpec, normalise_policy_text, parse_policy_text

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "lifecycle"

# fixture file stem -> section of the documentation page
SECTIONS = {
    "filtering_on_image_age": "Filtering on image age",
    "filtering_on_last_pulled_time": "Filtering on last pulled time",
    "filtering_on_archive_transition_time": "Filtering on archive transition time",
    "filtering_on_image_count": "Filtering on image count",
    "filtering_on_multiple_rules_example_a": "Filtering on multiple rules / Example A",
    "filtering_on_multiple_rules_example_b": "Filtering on multiple rules / Example B",
    "filtering_on_multiple_tags_in_a_single_rule_example_a": "Filtering on multiple tags in a single rule / Example A",
    "filtering_on_multiple_tags_in_a_single_rule_example_b": "Filtering on multiple tags in a single rule / Example B",
    "filtering_on_all_images_example_a": "Filtering on all images / Example A",
    "filtering_on_all_images_example_b": "Filtering on all images / Example B",
    "archive_examples_archiving_images_older_than_a_specified_number_of_days": (
        "Archive examples / Archiving images older than a specified number of days"
    ),
    "archive_examples_archiving_images_not_pulled_in_a_specified_number_of_days": (
        "Archive examples / Archiving images not pulled in a specified number of days"
    ),
    "archive_examples_combining_archive_and_expire_rules": "Archive examples / Combining archive and expire rules",
}

EXAMPLES = pytest.mark.parametrize("stem", sorted(SECTIONS), ids=[SECTIONS[stem] for stem in sorted(SECTIONS)])


def _text(stem: str) -> str:
    return (FIXTURES / f"{stem}.json").read_text()


def test_lifecycle_examples_every_fixture_is_listed() -> None:
    # GIVEN the fixture directory
    # WHEN its files are listed
    # THEN each one is a documented section above, and each section has a file
    assert {path.stem for path in FIXTURES.glob("*.json")} == set(SECTIONS)


@EXAMPLES
def test_lifecycle_examples_parse_and_render_to_the_same_document(stem: str) -> None:
    # GIVEN a policy from the AWS documentation, as printed
    text = _text(stem)
    # WHEN it is parsed and rendered
    policy = parse_policy_text(text)
    # THEN the rendering is the same JSON document (key order aside)
    assert policy.render() == json.loads(text)


@EXAMPLES
def test_lifecycle_examples_round_trip_through_render_text(stem: str) -> None:
    # GIVEN a parsed documentation example
    policy = parse_policy_text(_text(stem))
    # WHEN its compact text is parsed again
    again = parse_policy_text(policy.render_text())
    # THEN the model is equal, and the normal form is unchanged
    assert again == policy
    assert normalise_policy_text(policy.render_text()) == normalise_policy_text(_text(stem))


@EXAMPLES
def test_lifecycle_examples_are_valid_rules_specs(stem: str) -> None:
    # GIVEN a documentation example pasted into a rule's lifecycle section
    document = json.loads(_text(stem))
    # WHEN the spec is validated
    spec = LifecycleSpec.model_validate({"rules": document["rules"]})
    # THEN it is accepted and renders the same policy
    assert spec.to_policy() == LifecyclePolicy.model_validate(document)

"""Warm sets: OCI image references, tag patterns, platforms, EventBridge schedules, limits."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ecrcache.errors import field_errors_from_pydantic
from ecrcache.models.common import normalise_schedule
from ecrcache.models.image_reference import (
    ImageReference,
    needs_library_prefix,
    parse_image_reference,
    with_library_prefix,
)
from ecrcache.models.warm_set import (
    DEFAULT_PLATFORMS,
    TopTags,
    WarmBudget,
    WarmSetSpec,
    parse_platform,
    parse_tag_pattern,
)

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a1" * 32


def errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        WarmSetSpec.model_validate(data)
    return {e.field: e.message for e in field_errors_from_pydantic(exc.value)}


def base(**extra: Any) -> dict[str, Any]:
    return {"rule": "docker-hub", "images": ["library/node:18-alpine"], **extra}


# ---------------------------------------------------------------------------------------------- image references


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [
        ("library/node:18-alpine", ImageReference("library/node", "18-alpine")),
        (f"library/python@{DIGEST}", ImageReference("library/python", None, DIGEST)),
        (f"library/python:3.12-slim@{DIGEST}", ImageReference("library/python", "3.12-slim", DIGEST)),
        ("node:18", ImageReference("node", "18")),
        ("a/b/c/d:tag", ImageReference("a/b/c/d", "tag")),
        ("foo.bar:1", ImageReference("foo.bar", "1")),  # one component: a name, not a host
        ("a__b/c--d:_x", ImageReference("a__b/c--d", "_x")),
        ("argoproj/argocd:v2.11.0", ImageReference("argoproj/argocd", "v2.11.0")),
        ("x/y:" + "T" * 128, ImageReference("x/y", "T" * 128)),
    ],
)
def test_parse_image_reference_valid(reference: str, parsed: ImageReference) -> None:
    # GIVEN a reference in the OCI grammar / WHEN parsed / THEN split into repository, tag and digest
    assert parse_image_reference(reference) == parsed
    assert str(parsed) == reference


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("library/node", "add a tag"),
        ("library/node:", "the tag must be"),
        ("library/node:-x", "the tag must be"),
        ("library/node:.x", "the tag must be"),
        ("library/node:" + "x" * 129, "the tag must be"),
        ("library/node:a+b", "the tag must be"),
        ("ghcr.io/owner/image:1", "looks like a registry host"),
        ("localhost:5000/x:1", "looks like a registry host"),
        ("localhost/x:1", "looks like a registry host"),
        ("Library/node:1", "must be lowercase"),
        ("library//node:1", "path component ''"),
        ("/node:1", "path component ''"),
        ("library/node_:1", "path component 'node_'"),
        ("library/no___de:1", "path component"),
        ("library/node@sha256:" + "A1" * 32, "64 lowercase hex"),
        ("library/node@sha256:abc", "64 lowercase hex"),
        ("library/node@sha512:" + "a" * 128, "sha256"),
        ("library/node:1@", "sha256"),
        ("a" * 256 + ":1", "at most 255"),
        (":1", "empty"),
    ],
)
def test_parse_image_reference_invalid(reference: str, message: str) -> None:
    # GIVEN a reference outside the grammar / WHEN parsed / THEN the rule broken is named
    with pytest.raises(ValueError, match=message):
        parse_image_reference(reference)


def test_parse_image_reference_is_linear_on_hostile_input() -> None:
    # GIVEN a long component that fails at its end (exponential for a naive OCI regex in Python)
    # WHEN / THEN it is refused (quickly: no catastrophic backtracking)
    with pytest.raises(ValueError, match="path component"):
        parse_image_reference("a" * 200 + "!:1")


@pytest.mark.parametrize(
    ("image", "needed"),
    [("node:18", True), (f"python@{DIGEST}", True), ("library/node:18", False), ("bitnami/redis:7", False)],
)
def test_needs_library_prefix(image: str, needed: bool) -> None:
    # GIVEN an image / WHEN asking whether Docker Hub needs library/ / THEN only single-component names do
    assert needs_library_prefix(image) is needed
    assert with_library_prefix(image) == (f"library/{image}" if needed else image)


# ---------------------------------------------------------------------------------------------- tag patterns


@pytest.mark.parametrize(
    ("text", "matching", "not_matching"),
    [
        ("library/node:20.*-alpine", "20.11.1-alpine", "20.11.1-slim"),
        ("library/node:*-alpine", "18-alpine", "18-alpine3.19"),
        ("x/y:*-*-*-*", "a-b-c-d", "a-b-c"),
        ("library/python:3.1*.*-slim", "3.12.1-slim", "3.9.1-slim"),
    ],
)
def test_tag_pattern_valid_and_matching(text: str, matching: str, not_matching: str) -> None:
    # GIVEN a repository:glob / WHEN parsed / THEN the glob matches like a shell glob on tags
    pattern = parse_tag_pattern(text)
    assert pattern.matches(matching)
    assert not pattern.matches(not_matching)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20.*-alpine", "<repository>:<tag glob>"),
        ("library/node:20", "no '\\*'"),
        ("library/node:*-*-*-*-*", "at most 4"),
        ("ghcr.io/x:*", "registry host"),
        ("library/node:2?", "tag glob must be"),
        ("library/node:.*", "tag glob must be"),
        ("Library/node:*", "lowercase"),
        ("library/node:a/b*", "<repository>:<tag glob>"),
    ],
)
def test_tag_pattern_invalid(text: str, message: str) -> None:
    # GIVEN a bad tag pattern / WHEN parsed / THEN the rule broken is named
    with pytest.raises(ValueError, match=message):
        parse_tag_pattern(text)


# ---------------------------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("linux/amd64", ("linux", "amd64", None)),
        ("linux/arm64/v8", ("linux", "arm64", "v8")),
        ("linux/arm/v7", ("linux", "arm", "v7")),
        ("linux/amd64/v3", ("linux", "amd64", "v3")),
        ("windows/amd64", ("windows", "amd64", None)),
        ("linux/s390x", ("linux", "s390x", None)),
        ("linux/riscv64/rva22u64", ("linux", "riscv64", "rva22u64")),
    ],
)
def test_parse_platform_valid(text: str, parsed: tuple[str, str, str | None]) -> None:
    # GIVEN os/arch[/variant] from GOOS/GOARCH / WHEN parsed / THEN split
    assert parse_platform(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("linux", "os/arch"),
        ("linux/amd64/v2/x", "os/arch"),
        ("linux//v8", "os/arch"),
        ("Linux/amd64", "unknown os"),
        ("macos/arm64", "unknown os"),
        ("linux/x86_64", "unknown architecture"),
        ("linux/aarch64", "unknown architecture"),
        ("linux/arm64/v7", "unknown variant 'v7' for arm64"),
        ("linux/s390x/v1", "known: none"),
    ],
)
def test_parse_platform_invalid(text: str, message: str) -> None:
    # GIVEN a platform outside the known values / WHEN / THEN refused with the known values
    with pytest.raises(ValueError, match=message):
        parse_platform(text)


# ---------------------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("rate(1 minute)", "rate(1 minute)"),
        ("rate(5 minutes)", "rate(5 minutes)"),
        ("rate(1 hour)", "rate(1 hour)"),
        ("rate(2 hours)", "rate(2 hours)"),
        ("rate(1 day)", "rate(1 day)"),
        ("rate( 7   days )", "rate(7 days)"),
        ("cron(0 10 * * ? *)", "cron(0 10 * * ? *)"),
        ("cron(15 12 * * ? *)", "cron(15 12 * * ? *)"),
        ("cron(0 18 ? * MON-FRI *)", "cron(0 18 ? * MON-FRI *)"),
        ("cron(0 8 1 * ? *)", "cron(0 8 1 * ? *)"),
        ("cron(0/15 * * * ? *)", "cron(0/15 * * * ? *)"),
        ("cron(0/5 8-17 ? * mon-fri *)", "cron(0/5 8-17 ? * mon-fri *)"),
        ("cron(0 9 ? * 2#1 *)", "cron(0 9 ? * 2#1 *)"),
        ("cron(0 0 L * ? *)", "cron(0 0 L * ? *)"),
        ("cron(0 0 LW * ? *)", "cron(0 0 LW * ? *)"),
        ("cron(0 0 3W * ? *)", "cron(0 0 3W * ? *)"),
        ("cron(0 0 ? * 6L *)", "cron(0 0 ? * 6L *)"),
        ("cron(0 0 ? * L *)", "cron(0 0 ? * L *)"),
        ("cron(0 0 1,15 JAN,JUL ? 2026-2030)", "cron(0 0 1,15 JAN,JUL ? 2026-2030)"),
        ("cron(0 0 ? * WED *)", "cron(0 0 ? * WED *)"),
    ],
)
def test_eventbridge_schedule_valid(expression: str, normalised: str) -> None:
    # GIVEN a documented EventBridge expression / WHEN validated / THEN accepted, whitespace collapsed
    assert normalise_schedule(expression) == normalised


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 hours)", "singular unit: rate\\(1 hour\\)"),
        ("rate(5 hour)", "plural unit: rate\\(5 hours\\)"),
        ("rate(0 minutes)", "positive"),
        ("rate(-1 minutes)", "rate\\(<value> <unit>\\)"),
        ("rate(1.5 hours)", "rate\\(<value> <unit>\\)"),
        ("rate(2 weeks)", "minute \\| minutes \\| hour"),
        ("rate(1 Hour)", "rate\\(<value> <unit>\\)"),
        ("cron(0 10 * * ?)", "6 fields, got 5"),
        ("cron(0 10 * * ? * *)", "6 fields, got 7"),
        ("cron(0 10 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 10 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 10 1 * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(60 10 * * ? *)", "minutes field: 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours field: 24 is outside 0-23"),
        ("cron(0 0 0 * ? *)", "day-of-month field: 0 is outside 1-31"),
        ("cron(0 0 32 * ? *)", "day-of-month field: 32 is outside 1-31"),
        ("cron(0 0 * 13 ? *)", "month field: 13 is outside 1-12"),
        ("cron(0 0 * JANUARY ? *)", "not a number or name"),
        ("cron(0 0 ? * 8 *)", "day-of-week field: 8 is outside 1-7"),
        ("cron(0 0 ? * 0 *)", "day-of-week field: 0 is outside 1-7"),
        ("cron(0 0 * * ? 1969)", "year field: 1969 is outside 1970-2199"),
        ("cron(0 0 * * ? 2200)", "year field: 2200 is outside 1970-2199"),
        ("cron(? 0 * * ? *)", "minutes field does not accept \\?"),
        ("cron(0 L * * ? *)", "hours field does not accept L"),
        ("cron(0 0 * L ? *)", "month field does not accept L"),
        ("cron(0 0 ? * 2W *)", "day-of-week field does not accept W"),
        ("cron(0 0 1#2 * ? *)", "day-of-month field does not accept #"),
        ("cron(0 0 ? * 3#1,6#3 *)", "cannot be combined with a ',' list"),
        ("cron(0 0 ? * 3#6 *)", "must be 1-5"),
        ("cron(0 0 5-1 * ? *)", "runs backwards"),
        ("cron(0/0 0 * * ? *)", "increment"),
        ("cron(0 0 1,,2 * ? *)", "empty list item"),
        ("cron(a 0 * * ? *)", "not a number"),
        ("every day", "rate\\(...\\) or cron\\(...\\)"),
        ("", "rate\\(...\\) or cron\\(...\\)"),
    ],
)
def test_eventbridge_schedule_invalid(expression: str, message: str) -> None:
    # GIVEN an expression EventBridge rejects / WHEN validated / THEN the rule broken is named
    with pytest.raises(ValueError, match=message):
        normalise_schedule(expression)


@pytest.mark.parametrize(
    "schedule", ["rate(1 hour)", "rate(60 minutes)", "rate(2 days)", "cron(0 5 * * ? *)", "cron(30 */6 ? * MON-FRI *)"]
)
def test_warm_set_schedule_at_most_hourly_is_accepted(schedule: str) -> None:
    # GIVEN an hourly-or-slower schedule / WHEN / THEN accepted
    assert WarmSetSpec.model_validate(base(schedule=schedule)).schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("rate(1 minute)", "at most once an hour"),
        ("rate(59 minutes)", "at most once an hour"),
        ("cron(*/5 * * * ? *)", "single minute"),
        ("cron(0,30 * * * ? *)", "single minute"),
        ("rate(2 hour)", "plural"),
        ("cron(0 5 * * * *)", "exactly one of"),
    ],
)
def test_warm_set_schedule_invalid(schedule: str, message: str) -> None:
    # GIVEN a schedule too frequent or malformed / WHEN / THEN schedule is named
    assert message in errors(base(schedule=schedule))["schedule"]


# ---------------------------------------------------------------------------------------------- the model


def test_warm_set_defaults() -> None:
    # GIVEN a warm set with only a rule and an image / WHEN / THEN documented defaults
    spec = WarmSetSpec.model_validate(base(rule="docker-hub/"))
    assert spec.rule == "docker-hub"
    assert spec.platforms == DEFAULT_PLATFORMS
    assert spec.schedule == "rate(1 day)"
    assert spec.budget.max_upstream_requests_per_run == 100
    assert spec.top is None
    assert spec.image_references() == (ImageReference("library/node", "18-alpine"),)


def test_warm_set_full() -> None:
    # GIVEN every field set / WHEN validated / THEN parsed helpers agree
    spec = WarmSetSpec.model_validate(
        {
            "rule": "ghcr",
            "images": ["owner/app:1.2.3", f"owner/app@{DIGEST}"],
            "tag_patterns": ["owner/app:1.2.*"],
            "platforms": ["linux/arm64/v8"],
            "top": {"count": 100, "window_days": 90},
            "schedule": "rate(12 hours)",
            "budget": {"max_upstream_requests_per_run": 10_000},
            "description": "app images",
        }
    )
    assert [p.repository for p in spec.parsed_tag_patterns()] == ["owner/app"]
    assert spec.top is not None
    assert spec.top.count == 100


def test_warm_set_needs_something_to_warm() -> None:
    # GIVEN no images, tag_patterns or top / WHEN / THEN refused at the warm set
    found = errors({"rule": "docker-hub"})
    assert found == {"body": "a warm set needs at least one of images, tag_patterns or top"}


@pytest.mark.parametrize("what", [{"tag_patterns": ["library/node:*"]}, {"top": {"count": 5}}])
def test_warm_set_tag_patterns_or_top_alone_are_enough(what: dict[str, Any]) -> None:
    # GIVEN only tag patterns or only top / WHEN / THEN valid
    assert WarmSetSpec.model_validate({"rule": "docker-hub", **what}).images == ()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rule", "Docker-Hub", "lowercase"),
        ("rule", "x", "2-30 characters"),
        ("images", ["library/node:18", "library/node:18"], "unique; repeated: library/node:18"),
        ("images", [f"img{i}:1" for i in range(201)], "at most 200"),
        ("images", ["node"], "add a tag"),
        ("images", "library/node:18", "valid tuple"),
        ("tag_patterns", ["library/node:*", "library/node:*"], "unique"),
        ("tag_patterns", [f"r{i}:*" for i in range(51)], "at most 50"),
        ("tag_patterns", ["library/node:18"], "no '*'"),
        ("platforms", [], "at least one"),
        ("platforms", ["linux/amd64", "linux/amd64"], "unique"),
        (
            "platforms",
            [
                *DEFAULT_PLATFORMS,
                *(f"linux/arm/v{v}" for v in (5, 6, 7, 8)),
                "linux/386",
                "linux/s390x",
                "linux/ppc64le",
            ],
            "8",
        ),
        ("platforms", ["linux/x86_64"], "unknown architecture"),
        ("top", {"count": 0}, "greater than or equal to 1"),
        ("top", {"count": 101}, "less than or equal to 100"),
        ("top", {"count": 5, "window_days": 0}, "greater than or equal to 1"),
        ("top", {"count": 5, "window_days": 91}, "less than or equal to 90"),
        ("top", {"window_days": 7}, "required field is missing"),
        ("budget", {"max_upstream_requests_per_run": 0}, "greater than or equal to 1"),
        ("budget", {"max_upstream_requests_per_run": 10_001}, "less than or equal to 10000"),
        ("budget", {"max_requests": 5}, "unknown field"),
        ("description", "d" * 257, "at most 256"),
        ("schedule", "hourly", "rate(...) or cron(...)"),
        ("surprise", True, "unknown field"),
    ],
)
def test_warm_set_field_invalid(field: str, value: Any, message: str) -> None:
    # GIVEN one bad field / WHEN / THEN an error under that field names the rule broken
    found = errors(base(**{field: value}))
    assert any(path.startswith(field) and message in text for path, text in found.items()), found


def test_warm_set_json_schema_has_patterns_and_descriptions() -> None:
    # GIVEN the published schema / WHEN generated / THEN items carry the grammar and fields describe themselves
    schema = WarmSetSpec.model_json_schema()
    properties = schema["properties"]
    assert all("description" in p for p in properties.values())
    assert properties["images"]["items"]["pattern"].startswith("^")
    assert properties["platforms"]["default"] == list(DEFAULT_PLATFORMS)


@pytest.mark.parametrize("model", [WarmSetSpec, TopTags, WarmBudget])
def test_warm_set_schema_examples_are_valid(model: type[BaseModel]) -> None:
    # GIVEN the examples published in the schema / WHEN validated / THEN every one is accepted
    examples = model.model_json_schema()["examples"]
    assert examples
    for example in examples:
        model.model_validate(example)

"""The one document parser (``ecrcache.parsing``): YAML 1.2 core semantics, explicit limits, where each problem is."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrcache.parsing import (
    LIMITS,
    MAX_PROBLEMS,
    BodyInvalidError,
    BodyProblem,
    BodySyntaxError,
    BodyTooLargeError,
    Limits,
    Syntax,
    dump_yaml,
    media_syntax,
    parse,
    parse_bytes,
)

pytestmark = pytest.mark.unit


def problems(text: str, syntax: Syntax = "yaml", limits: Limits = LIMITS) -> list[BodyProblem]:
    with pytest.raises(BodyInvalidError) as caught:
        parse(text, syntax, limits)
    return list(caught.value.problems)


def only(text: str, syntax: Syntax = "yaml") -> BodyProblem:
    [problem] = problems(text, syntax)
    return problem


# -- YAML 1.2 core schema: https://yaml.org/spec/1.2.2/#1032-tag-resolution --------------------------------

CORE_PLAIN_SCALARS: list[tuple[str, Any]] = [
    # null
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("~", None),
    ("", None),
    # booleans: only these six
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    # integers: decimal (no octal by leading zero), 0o octal, 0x hexadecimal
    ("0", 0),
    ("-19", -19),
    ("+12", 12),
    ("010", 10),
    ("0o17", 15),
    ("0x1F", 31),
    ("0x1", 1),
    # floats
    ("1.0", 1.0),
    ("-1.5", -1.5),
    (".5", 0.5),
    ("1.", 1.0),
    ("1e3", 1000.0),
    ("6.8523015e+5", 685230.15),
    # YAML 1.1 forms that are plain strings under 1.2 core
    ("yes", "yes"),
    ("No", "No"),
    ("on", "on"),
    ("OFF", "OFF"),
    ("y", "y"),
    ("0b101", "0b101"),
    ("1_000", "1_000"),
    ("0x_1F", "0x_1F"),
    ("190:20:30", "190:20:30"),
    ("1:20", "1:20"),
    ("2024-01-01", "2024-01-01"),
    ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
    ("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5"),
    ("<<", "<<"),
    ("=", "="),
    ("nULL", "nULL"),
    ("tRUE", "tRUE"),
    ("0o8", "0o8"),
    ("0X1", "0X1"),
    ("+0x1", "+0x1"),
    ("1e", "1e"),
    ("docker-hub", "docker-hub"),
]


@pytest.mark.parametrize(("text", "expected"), CORE_PLAIN_SCALARS, ids=[repr(t) for t, _ in CORE_PLAIN_SCALARS])
def test_yaml_plain_scalars_resolve_as_the_core_schema_says(text: str, expected: Any) -> None:
    value = parse(f"v: {text}\n", "yaml")["v"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", ["'true'", '"0x1"', "'~'", '"1.0"', "!!str 12", "|\n  12\n"])
def test_quoted_and_str_tagged_scalars_are_strings(text: str) -> None:
    assert isinstance(parse(f"v: {text}\n", "yaml")["v"], str)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("!!int '0x10'", 16), ("!!float '1'", 1.0), ("!!bool 'true'", True), ("!!null ''", None)],
)
def test_explicit_core_tags_read_their_kind(text: str, expected: Any) -> None:
    assert parse(f"v: {text}\n", "yaml")["v"] == expected


@pytest.mark.parametrize(
    "text", ["!!binary aGk=", "!!timestamp 2024-01-01", "!!set {a: null}", "!!omap [a: 1]", "!local x", "!!int abc"]
)
def test_tags_outside_the_core_schema_are_problems_where_they_stand(text: str) -> None:
    problem = only(f"rules:\n  v: {text}\n")
    assert problem.loc == ("rules", "v")
    assert problem.type == "yaml_tag"
    assert (problem.line, problem.column) == (2, 6)


def test_yaml_cannot_construct_python_objects() -> None:
    problem = only("v: !!python/object/apply:os.system ['true']\n")
    assert (problem.loc, problem.type) == (("v",), "yaml_tag")


@pytest.mark.parametrize(
    ("key", "kind"),
    [("~", "null"), ("null", "null"), ("", "null"), ("true", "a boolean"), ("0x1", "an integer"), ("1.0", "a number")],
)
def test_yaml_keys_must_be_strings(key: str, kind: str) -> None:
    problem = only(f"names:\n  {key}: 1\n" if key else "names:\n  ? \n  : 1\n")
    assert problem.type == "key_not_string"
    assert kind in problem.message
    if key:
        assert problem.loc == ("names", key)
        assert f"quote it ('{key}')" in problem.message


@pytest.mark.parametrize(("text", "what"), [("? [a, b]\n: 1\n", "a sequence"), ("? {a: 1}\n: 1\n", "a mapping")])
def test_yaml_collection_keys_are_refused(text: str, what: str) -> None:
    problem = only(text)
    assert (problem.loc, problem.type) == ((), "key_not_string")
    assert what in problem.message


def test_yaml_tagged_keys_are_refused_at_their_mapping() -> None:
    problem = only("a:\n  !!binary aGk=: 1\n")
    assert (problem.loc, problem.type, problem.line) == (("a",), "yaml_tag", 2)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",
        "a: &a [*a]\n",
        "base: &b {x: 1}\nitem:\n  <<: *b\n",
    ],
    ids=["alias", "self-reference", "merge"],
)
def test_yaml_aliases_are_refused_with_their_line(text: str) -> None:
    with pytest.raises(BodySyntaxError) as caught:
        parse(text, "yaml")
    assert caught.value.message == "YAML aliases (&/*) are not accepted"
    assert caught.value.type == "yaml_invalid"
    assert caught.value.line is not None


@pytest.mark.parametrize("text", ["a: [\n", "a: 1\n b: 2\n", "---\na: 1\n---\nb: 2\n", "a: \x07\n"])
def test_yaml_syntax_errors(text: str) -> None:
    with pytest.raises(BodySyntaxError) as caught:
        parse(text, "yaml")
    assert caught.value.type == "yaml_invalid"


def test_empty_yaml_is_null() -> None:
    assert parse("# nothing\n", "yaml") is None


# -- duplicate keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "syntax", "loc"),
    [
        ('{"a": 1, "a": 2}', "json", ("a",)),
        ('{"rules": {"quay": {}, "quay": {}}}', "json", ("rules", "quay")),
        ("a: 1\na: 2\n", "yaml", ("a",)),
        ("rules:\n  quay: {}\n  quay: {}\n", "yaml", ("rules", "quay")),
        ("{a: 1, a: 2}", "yaml", ("a",)),
    ],
)
def test_duplicate_keys_are_problems_at_the_key(text: str, syntax: Syntax, loc: tuple[str, ...]) -> None:
    problem = only(text, syntax)
    assert (problem.loc, problem.type) == (loc, "duplicate_key")


def test_a_yaml_duplicate_key_has_its_line_and_column() -> None:
    problem = only("rules:\n  quay: {}\n  quay: {}\n")
    assert (problem.line, problem.column) == (3, 3)


def test_a_duplicate_secret_like_key_is_not_shown() -> None:
    problem = only('{"x": {"token:abc": 1, "token:abc": 2}}', "json")
    assert problem.loc == ("x",)
    assert "token" not in problem.message
    assert "(value hidden)" in problem.message


# -- limits ----------------------------------------------------------------------------------------------------


def test_size_is_counted_in_utf8_bytes() -> None:
    limits = Limits(max_bytes=10)
    assert parse('"éééé"', "json", limits) == "éééé"  # 10 bytes
    with pytest.raises(BodyTooLargeError):
        parse('"ééééé"', "json", limits)
    with pytest.raises(BodyTooLargeError):
        parse_bytes(b"x" * 11, "yaml", limits)


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_nesting_up_to_the_limit_is_read_and_one_more_is_a_syntax_error(syntax: Syntax) -> None:
    deepest = "[" * LIMITS.max_depth + "]" * LIMITS.max_depth
    assert parse(deepest, syntax) is not None
    with pytest.raises(BodySyntaxError) as caught:
        parse("[" + deepest + "]", syntax)
    assert caught.value.type == "too_deep"
    assert caught.value.message == f"nested more than {LIMITS.max_depth} levels deep"


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_nesting_far_past_the_recursion_limit_is_a_syntax_error(syntax: Syntax) -> None:
    with pytest.raises(BodySyntaxError) as caught:
        parse("[" * 100_000 + "]" * 100_000, syntax)
    assert caught.value.type == "too_deep"


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_integers_up_to_the_digit_limit_are_read(syntax: Syntax) -> None:
    largest = "9" * LIMITS.max_integer_digits
    assert parse(f"[{largest}, -{largest}]", syntax) == [int(largest), -int(largest)]


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ("[1, " + "9" * 21 + "]", "json"),
        ("[1, -" + "9" * 4301 + "]", "json"),
        ("[1, " + "9" * 4301 + "]", "yaml"),
        ("[1, 0x" + "f" * 21 + "]", "yaml"),
    ],
    ids=["json-21", "json-4301", "yaml-4301", "yaml-hex"],
)
def test_integers_past_the_digit_limit_are_problems_at_their_index(text: str, syntax: Syntax) -> None:
    problem = only(text, syntax)
    assert (problem.loc, problem.type) == ((1,), "too_many_digits")


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ('{"n": NaN}', "json"),
        ('{"n": -Infinity}', "json"),
        ('{"n": 1e999}', "json"),
        ("n: .inf\n", "yaml"),
        ("n: -.INF\n", "yaml"),
        ("n: .NaN\n", "yaml"),
        ("n: 1e999\n", "yaml"),
    ],
)
def test_numbers_must_be_finite(text: str, syntax: Syntax) -> None:
    problem = only(text, syntax)
    assert (problem.loc, problem.type) == (("n",), "number_not_finite")


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_strings_longer_than_the_limit_are_problems(syntax: Syntax) -> None:
    at_limit = "x" * LIMITS.max_string_chars
    assert parse(json.dumps({"s": at_limit}), syntax) == {"s": at_limit}
    problem = only(json.dumps({"s": at_limit + "x"}), syntax)
    assert (problem.loc, problem.type) == (("s",), "string_too_long")


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_keys_longer_than_the_limit_are_problems_at_their_mapping(syntax: Syntax) -> None:
    key = "k" * (LIMITS.max_key_chars + 1)
    problem = only(json.dumps({"m": {key: 1}}), syntax)
    assert (problem.loc, problem.type) == (("m",), "key_too_long")
    assert key not in problem.message


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_lone_surrogates_are_problems(syntax: Syntax) -> None:
    problem = only('{"s": "\\ud800"}', syntax)
    assert (problem.loc, problem.type) == (("s",), "string_unicode")


def test_at_most_max_problems_are_reported() -> None:
    text = "{" + ", ".join(f'"k{i}": {"9" * 30}' for i in range(100)) + "}"
    assert len(problems(text, "json")) == MAX_PROBLEMS


# -- JSON ------------------------------------------------------------------------------------------------------


def test_json_syntax_errors_have_line_and_column() -> None:
    with pytest.raises(BodySyntaxError) as caught:
        parse('{"a":\n  }', "json")
    assert (caught.value.type, caught.value.line, caught.value.column) == ("json_invalid", 2, 3)


def test_a_byte_order_mark_is_allowed_and_other_encodings_are_not() -> None:
    assert parse_bytes(b"\xef\xbb\xbf{}", "json") == {}
    assert parse("\ufeff{}", "json") == {}
    with pytest.raises(BodySyntaxError) as caught:
        parse_bytes("{'a': 'é'}".encode("latin-1"), "yaml")
    assert caught.value.type == "not_utf8"


# -- media types -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "json"),
        ("", "json"),
        ("application/json", "json"),
        ("Application/JSON; charset=UTF-8", "json"),
        ("application/yaml", "yaml"),
        ("application/x-yaml", "yaml"),
        ("text/yaml", "yaml"),
        ("text/x-yaml; charset=utf-8", "yaml"),
        ("application/json; charset=latin-1", None),
        ("text/json", None),
        ("application/merge-patch+json", None),
        ("application/x-www-form-urlencoded", None),
        ("multipart/form-data; boundary=x", None),
        ("application/xml", None),
        ("text/plain", None),
        ("application/octet-stream", None),
    ],
)
def test_media_types(content_type: str | None, expected: str | None) -> None:
    assert media_syntax(content_type) == expected


# -- writing YAML that reads back the same -----------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**19), max_value=10**19)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["0o17", "0x1", "yes", "~", "1.0", ".5", "1e3", "2024-01-01", "1:20", "<<", "=", "null", ""])
)
JSON_DATA = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(JSON_DATA)
def test_dumped_yaml_and_json_read_back_equal(data: Any) -> None:
    assert parse(dump_yaml(data), "yaml") == data
    assert parse(json.dumps(data), "json") == data


def test_dumped_yaml_quotes_what_yaml_1_2_would_read_as_another_type() -> None:
    text = dump_yaml({"a": "0o17", "b": ".5", "c": "1e3", "d": "yes"})
    assert parse(text, "yaml") == {"a": "0o17", "b": ".5", "c": "1e3", "d": "yes"}
    assert math.isfinite(parse("x: 1.0\n", "yaml")["x"])

"""Desired-state files: finding, parsing, merging and validating them, and naming the file of every problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecrcache_cli.documents import DocumentError, expand_paths, field_path, load
from ecrcache_cli.output import ExitCode

pytestmark = pytest.mark.unit

QUAY = "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def problems(paths: list[Path]) -> list[str]:
    with pytest.raises(DocumentError) as caught:
        load(paths)
    assert caught.value.exit_code is ExitCode.INVALID_INPUT
    return [str(p) for p in caught.value.problems]


# -- files ---------------------------------------------------------------------------------------------


def test_expand_paths_takes_document_files_of_a_directory_sorted_and_not_recursive(tmp_path: Path) -> None:
    # GIVEN a directory with documents, other files and a subdirectory
    for name in ("b.yml", "a.yaml", "c.json", "notes.txt", "d.YAML"):
        write(tmp_path, name, "")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "e.yaml", "")
    single = write(tmp_path / "sub", "single.txt", "")
    # WHEN it is expanded with an explicit file after it
    files = expand_paths([tmp_path, single])
    # THEN its *.yaml/*.yml/*.json files come sorted, then the explicit file (whatever its suffix)
    assert [f.name for f in files] == ["a.yaml", "b.yml", "c.json", "d.YAML", "single.txt"]


def test_expand_paths_reports_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DocumentError) as caught:
        expand_paths([tmp_path / "missing.yaml", empty])
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
        f"{empty}: no *.yaml, *.yml or *.json files in this directory",
    ]


def test_the_same_file_twice_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", QUAY)
    loaded = load([path, tmp_path, path])
    assert loaded.files == (path,)


# -- parsing -------------------------------------------------------------------------------------------


def test_yaml_syntax_error_reports_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "rules:\n  quay:\n    upstream_kind: quay\n   bad: indentation\n")
    [problem] = problems([path])
    assert problem.startswith(f"{path}:4:4: invalid YAML: ")


def test_yaml_duplicate_key_in_one_file_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", QUAY + "  quay:\n    upstream_kind: k8s\n")
    [problem] = problems([path])
    assert problem == f'{path}:5:3: rules["quay"]: duplicate key: each key may appear once in a mapping'


def test_json_syntax_error_and_duplicate_key(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", '{"rules": {\n  "quay": }\n}')
    dup = write(tmp_path, "dup.json", '{"rules": {}, "rules": {}}')
    assert problems([bad]) == [f"{bad}:2:11: invalid JSON: Expecting value"]
    assert problems([dup]) == [f"{dup}: rules: duplicate key: each key may appear once in a mapping"]


def test_every_syntax_error_is_reported_not_just_the_first(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", "rules: [\n")
    two = write(tmp_path, "two.json", "{")
    found = problems([one, two])
    assert [p.split(":")[0] for p in found] == [str(one), str(two)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "must be a mapping with rules, credentials, warm_sets; got a list"),
        ("version: 2\n", "version: the only document version is 1"),
        ("version: 1\nrule:\n  quay: {}\n", "rule: unknown field (expected version, rules, credentials, warm_sets)"),
        ("version: 1\nrules: [quay]\n", "rules: must be a mapping of names to items; got a list"),
    ],
)
def test_document_shape_problems_name_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "doc.yaml", text)
    assert problems([path]) == [f"{path}: {expected}"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("rules.yaml", "rules:\n  quay:\n    upstream_kind: quay\n"),
        ("empty.json", "{}"),
        ("sections.yaml", "rules: {}\ncredentials: {}\n"),
    ],
)
def test_a_file_without_version_is_an_error_naming_version(tmp_path: Path, name: str, text: str) -> None:
    # every file is a desired-state document: without `version` the API refuses it, and so does the CLI
    path = write(tmp_path, name, text)
    assert problems([path]) == [
        f"{path}: version: required field is missing: a desired-state file starts with `version: 1`, "
        "as the API's document"
    ]


@pytest.mark.parametrize(
    ("key", "kind"),
    [("123", "an integer"), ("0x1", "an integer"), ("1.0", "a number"), ("true", "a boolean"), ("~", "null")],
)
def test_a_name_yaml_reads_as_another_type_is_refused_at_its_line(tmp_path: Path, key: str, kind: str) -> None:
    # GIVEN a rule whose prefix YAML 1.2 core reads as a number, a boolean or null
    path = write(tmp_path, "doc.yaml", f"version: 1\nrules:\n  {key}:\n    upstream_kind: quay\n")
    # WHEN the files are loaded
    # THEN the name is refused where it stands (it was stringified: a rule named "None" or "True")
    assert problems([path]) == [
        f"{path}:3:3: rules[{json.dumps(key)}]: keys must be strings, but YAML reads {key} as {kind}: "
        f"quote it ('{key}') to use it as a name"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1.0\n", "version: the only document version is 1"),
        ("version: true\n", "version: the only document version is 1"),
        (
            "version: 1\nrules:\n  quay: {upstream_kind: quay, lifecycle: {presets: {keep_last: %s}}}\n" % ("9" * 4301),
            None,
        ),
        ("version: 1\nrules:\n  quay: {upstream_kind: quay, description: !!binary aGk=}\n", None),
    ],
    ids=["version-float", "version-bool", "huge-integer", "binary"],
)
def test_the_api_parser_rules_apply_to_files(tmp_path: Path, text: str, expected: str | None) -> None:
    # GIVEN a file with a value the API refuses
    path = write(tmp_path, "doc.yaml", text)
    # WHEN the files are loaded
    [problem] = problems([path])
    # THEN it is refused here too, naming the field
    if expected is not None:
        assert problem == f"{path}: {expected}"
    else:
        assert problem.startswith(f"{path}:3:")
        assert 'rules["quay"]' in problem


def test_a_mistyped_token_key_is_not_echoed(tmp_path: Path) -> None:
    # GIVEN flow YAML with "token:SECRET" (no space: one plain scalar, so one key)
    path = write(
        tmp_path,
        "creds.yaml",
        "version: 1\ncredentials:\n  hub: {upstream_kind: docker-hub, username: u, token:SECRET-VALUE}\n",
    )
    # WHEN the files are loaded
    [problem] = problems([path])
    # THEN the unknown field is reported at its mapping, without the key
    assert problem == f'{path}: credentials["hub"]: unknown field (value hidden)'


def test_null_sections_are_empty(tmp_path: Path) -> None:
    nulls = write(tmp_path, "nulls.yaml", "version: 1\nrules:\ncredentials:\n")
    loaded = load([nulls])
    assert loaded.body == {"version": 1}
    assert loaded.is_empty
    assert not load([write(tmp_path, "quay.yaml", QUAY)]).is_empty


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.yaml", ""),
        ("comments.yaml", "# rules:\n#   quay: {}\n"),
        ("null.yaml", "null\n"),
        ("tilde.yml", "---\n~\n"),
        ("null.json", "null"),
    ],
)
def test_an_empty_comment_only_or_null_file_is_an_error(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    quay = write(tmp_path, "quay.yaml", QUAY)
    # not silently `{}`: with --prune that would delete everything the other files omit
    assert problems([quay, path]) == [
        f"{path}: holds no desired-state document (the file is empty, only comments, or null)"
    ]


def test_a_utf8_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    as_json = tmp_path / "bom.json"
    as_json.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"version": 1, "rules": {"quay": {"upstream_kind": "quay"}}}).encode()
    )
    as_yaml = tmp_path / "bom.yaml"
    as_yaml.write_bytes(
        b"\xef\xbb\xbf" + b"version: 1\ncredentials:\n  hub:\n    upstream_kind: docker-hub\n    username: u\n"
    )
    loaded = load([as_json, as_yaml])
    assert loaded.names("rules") == ["quay"]
    assert loaded.names("credentials") == ["hub"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # a small "billion laughs": must be refused at once, not expanded
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
            "2:8",
        ),
        ("a: &a [*a]\n", "1:8"),  # self-referencing: no RecursionError
        # merge keys take an alias, so they are refused with the same clear message
        ("rules:\n  base: &base\n    upstream_kind: quay\n  quay:\n    <<: *base\n", "5:9"),
    ],
)
def test_yaml_aliases_are_refused_with_file_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, "alias.yaml", text)
    assert problems([path]) == [f"{path}:{where}: invalid YAML: YAML aliases (&/*) are not accepted"]


def test_a_yaml_merge_key_is_a_plain_key_under_yaml_1_2(tmp_path: Path) -> None:
    # GIVEN an inline merge key (YAML 1.1's `<<`; YAML 1.2 core has no merge keys)
    path = write(
        tmp_path,
        "merge.yaml",
        "version: 1\nrules:\n  quay:\n    <<: {upstream_kind: quay}\n    deletion_policy: retain\n",
    )
    # WHEN the files are loaded
    # THEN `<<` is an unknown field, as the API would say, and upstream_kind is missing
    assert sorted(problems([path])) == [
        f'{path}: rules["quay"].upstream_kind: required field is missing',
        f'{path}: rules["quay"]["<<"]: unknown field',
    ]


def test_nesting_too_deep_is_invalid_input_not_a_crash(tmp_path: Path) -> None:
    deep_json = write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    deep_yaml = write(tmp_path, "deep.yaml", "[" * 100_000 + "]" * 100_000)
    assert problems([deep_json]) == [f"{deep_json}: nested more than 32 levels deep"]
    assert problems([deep_yaml]) == [f"{deep_yaml}:1:33: nested more than 32 levels deep"]


# -- merging -------------------------------------------------------------------------------------------


def test_files_merge_section_by_section_and_remember_origins(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", QUAY)
    creds = write(
        tmp_path,
        "creds.json",
        json.dumps(
            {
                "version": 1,
                "credentials": {"dh": {"upstream_kind": "docker-hub", "username": "ci", "expires_at": "2027-01-01"}},
            }
        ),
    )
    warm = write(tmp_path, "warm.yaml", "version: 1\nwarm_sets:\n  base:\n    rule: quay\n    images: [org/app:1]\n")
    loaded = load([rules, creds, warm])
    assert sorted(loaded.body) == ["credentials", "rules", "version", "warm_sets"]
    assert loaded.origins == {("rules", "quay"): rules, ("credentials", "dh"): creds, ("warm_sets", "base"): warm}
    assert loaded.warnings == ()
    assert loaded.rule_prefixes == ["quay"]


def test_same_name_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", QUAY)
    second = write(tmp_path, "b.yaml", QUAY.replace("upstream_kind: quay", "upstream_kind: k8s"))
    assert problems([first, second]) == [
        f'{second}: rules["quay"]: also defined in {first}; each name may appear in one file only'
    ]


def test_a_rule_with_and_without_trailing_slash_in_two_files_is_a_duplicate(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "version: 1\nrules:\n  team/quay/:\n    upstream_kind: quay\n")
    second = write(tmp_path, "b.yaml", "version: 1\nrules:\n  team/quay:\n    upstream_kind: quay\n")
    [problem] = problems([first, second])
    assert problem == (
        f'{second}: rules["team/quay"]: also defined in {first} (as "team/quay/"); '
        "each name may appear in one file only"
    )


def test_same_name_in_different_sections_is_fine(tmp_path: Path) -> None:
    document = write(
        tmp_path,
        "doc.yaml",
        "version: 1\nrules:\n  docker-hub:\n    upstream_kind: docker-hub\n    credential: docker-hub\n"
        "credentials:\n  docker-hub:\n    upstream_kind: docker-hub\n    username: ci\n",
    )
    assert load([document]).origins.keys() == {("rules", "docker-hub"), ("credentials", "docker-hub")}


def test_a_token_in_a_file_is_allowed_with_a_warning(tmp_path: Path) -> None:
    document = write(
        tmp_path,
        "creds.yaml",
        "version: 1\ncredentials:\n  dh:\n    upstream_kind: docker-hub\n    username: ci\n    token: s3cr3t\n",
    )
    loaded = load([document])
    assert loaded.body["credentials"]["dh"]["token"] == "s3cr3t"
    assert loaded.warnings == (
        f'{document}: credentials["dh"].token: keep tokens out of Git; use `ecrcache credentials set`',
    )


def test_unquoted_yaml_dates_become_iso_strings(tmp_path: Path) -> None:
    document = write(
        tmp_path,
        "creds.yaml",
        "version: 1\ncredentials:\n  dh:\n    upstream_kind: docker-hub\n    username: ci\n"
        "    expires_at: 2027-06-30\n",
    )
    assert load([document]).body["credentials"]["dh"]["expires_at"] == "2027-06-30"


# -- validation ----------------------------------------------------------------------------------------


def test_validation_errors_name_the_file_of_each_item_and_the_field_path(tmp_path: Path) -> None:
    # GIVEN a good file and a file with a broken lifecycle rule, a bad prefix and a bad warm-set image
    good = write(tmp_path, "good.yaml", QUAY)
    bad = write(
        tmp_path,
        "bad.yaml",
        """\
version: 1
rules:
  docker-hub:
    upstream_kind: docker-hub
    credential: dockerhub
    lifecycle:
      rules:
        - rulePriority: 1
          selection: {tagStatus: any, countType: imageCountMoreThan, countNumber: 0}
          action: {type: expire}
  Bad Prefix:
    upstream_kind: quay
warm_sets:
  base:
    rule: quay
    images: ["UPPER/case:1"]
    colour: blue
""",
    )
    # WHEN they are loaded
    found = problems([good, bad])
    # THEN every problem names bad.yaml and the path to the field; good.yaml is never blamed
    assert all(p.startswith(f"{bad}: ") for p in found), found
    paths = [p.removeprefix(f"{bad}: ").split(": ")[0] for p in found]
    assert 'rules["docker-hub"].lifecycle.rules[0].selection.countNumber' in paths
    assert 'rules["Bad Prefix"]' in paths
    assert 'warm_sets["base"].images[0]' in paths
    assert f'{bad}: warm_sets["base"].colour: unknown field' in found


def test_validation_error_on_a_whole_section_names_every_contributing_file(tmp_path: Path) -> None:
    # GIVEN 51 rules for the stack's Region spread over two files (ECR allows 50)
    first = write(
        tmp_path,
        "a.yaml",
        "version: 1\nrules:\n" + "".join(f"  r{i:02d}:\n    upstream_kind: quay\n" for i in range(30)),
    )
    second = write(
        tmp_path,
        "b.yaml",
        "version: 1\nrules:\n" + "".join(f"  s{i:02d}:\n    upstream_kind: quay\n" for i in range(21)),
    )
    [problem] = problems([first, second])
    assert problem.startswith(f"{first}, {second}: rules: 51 rules target the stack's Region")


def test_credential_for_another_upstream_points_at_the_rule(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        "rules.yaml",
        "version: 1\nrules:\n  ghcr:\n    upstream_kind: github-container-registry\n    credential: dh\n",
    )
    creds = write(
        tmp_path, "creds.yaml", "version: 1\ncredentials:\n  dh:\n    upstream_kind: docker-hub\n    username: ci\n"
    )
    [problem] = problems([rules, creds])
    assert problem.startswith(f"{rules}: rules[\"ghcr\"].credential: credential 'dh' is for upstream_kind")


def test_document_error_lines_put_each_problem_first_then_the_summary(tmp_path: Path) -> None:
    path = write(tmp_path, "doc.yaml", "version: 3\nwarm: {}\n")
    with pytest.raises(DocumentError) as caught:
        load([path])
    assert caught.value.lines() == [
        f"{path}: version: the only document version is 1",
        f"{path}: warm: unknown field (expected version, rules, credentials, warm_sets)",
        "error: 2 problems in the desired-state files; nothing was applied",
    ]


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("rules", "docker-hub", "lifecycle", "rules", 0, "count"), 'rules["docker-hub"].lifecycle.rules[0].count'),
        (("rules", "Bad Prefix", "[key]"), 'rules["Bad Prefix"]'),
        (("warm_sets", "w", "function-after[check]", "images", 2), 'warm_sets["w"].images[2]'),
        (("rules", "x", "repository", "tags", "team name"), 'rules["x"].repository.tags["team name"]'),
        (("rules",), "rules"),
        (("version",), "version"),
        ((), ""),
    ],
)
def test_field_path(loc: tuple[str | int, ...], expected: str) -> None:
    assert field_path(loc) == expected


def test_an_unknown_top_level_key_that_may_hold_a_secret_is_not_echoed(tmp_path: Path) -> None:
    # GIVEN a file whose top-level key is a mistyped `token:SECRET`
    path = write(tmp_path, "doc.yaml", "version: 1\ntoken:dckr_pat_SECRET-VALUE: x\n")
    # WHEN the files are loaded
    [problem] = problems([path])
    # THEN the problem says an unknown field was found, without the key
    assert "unknown field" in problem and "(value hidden)" in problem
    assert "SECRET-VALUE" not in problem


def test_a_name_that_may_be_a_pasted_token_is_not_echoed_when_defined_twice(tmp_path: Path) -> None:
    # GIVEN two files defining the same credential, named like a pasted token
    text = "version: 1\ncredentials:\n  ghp_SECRET-VALUE:\n    upstream_kind: docker-hub\n    username: u\n"
    first, second = write(tmp_path, "a.yaml", text), write(tmp_path, "b.yaml", text)
    # WHEN the files are loaded
    # THEN no problem shows the name
    assert all("SECRET-VALUE" not in p for p in problems([first, second]))

"""``ecrcache apply / export / get / delete / credentials set`` against the real API handler over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.functional.api.aws_support import secret_value
from tests.functional.api.client import ApiClient, enc
from tests.functional.cli.conftest import CALLER
from tests.unit.cli.support import CliResult, run_cli

pytestmark = pytest.mark.functional

TOKEN = "dckr_pat_cli_functional_0001"
NEW_TOKEN = "dckr_pat_cli_functional_0002"

RULES = """\
version: 1
rules:
  docker-hub:
    upstream_kind: docker-hub
    credential: dockerhub
    lifecycle:
      presets: {expire_untagged_after_days: 7, keep_last: 20}
  team/quay:
    upstream_kind: quay
"""
CREDENTIALS = f"""\
version: 1
credentials:
  dockerhub:
    upstream_kind: docker-hub
    username: ci-bot
    expires_at: 2027-06-30
    token: {TOKEN}
"""
WARM_SETS = """\
version: 1
warm_sets:
  base:
    rule: docker-hub
    images: [library/node:18-alpine]
    platforms: [linux/amd64]
"""


def cli(endpoint: str, *argv: str, input: str | None = None) -> CliResult:
    return run_cli(["--endpoint", endpoint, *argv], input=input)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def desired(api: ApiClient) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/v1/desired-state").json
    return body


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    write(directory, "10-rules.yaml", RULES)
    write(directory, "20-credentials.yml", CREDENTIALS)
    write(directory, "30-warm.json", json.dumps(yaml.safe_load(WARM_SETS)))
    write(directory, "README.md", "not a document")
    return directory


@pytest.fixture
def applied(endpoint: str, state_dir: Path) -> Path:
    """The files applied; then the token is taken out of the credentials file (as the warning advises)."""
    result = cli(endpoint, "apply", "-f", str(state_dir), "--no-wait")
    assert result.code == 0, result.output
    write(state_dir, "20-credentials.yml", CREDENTIALS.replace(f"    token: {TOKEN}\n", ""))
    return state_dir


# -- apply ---------------------------------------------------------------------------------------------


def test_apply_directory_creates_everything_and_warns_about_the_token(
    endpoint: str, state_dir: Path, api: ApiClient
) -> None:
    # GIVEN a directory with rules, a credential (with its token) and a warm set in three files
    # WHEN it is applied without waiting
    result = cli(endpoint, "apply", "-f", str(state_dir), "--no-wait")
    # THEN everything is created, the change list is printed and the token is never echoed
    assert result.code == 0, result.output
    assert 'credentials["dockerhub"].token: keep tokens out of Git; use `ecrcache credentials set`' in result.stderr
    for kind, name in [
        ("rule", "docker-hub"),
        ("rule", "team/quay"),
        ("credential", "dockerhub"),
        ("warm-set", "base"),
    ]:
        assert any(line.split()[:3] == [kind, name, "create"] for line in result.stdout.splitlines()), result.stdout
    assert "4 changes: 4 created." in result.stdout
    assert TOKEN not in result.output
    state = desired(api)
    assert sorted(state["rules"]) == ["docker-hub", "team/quay"]
    assert state["credentials"]["dockerhub"]["expires_at"] == "2027-06-30"
    assert sorted(state["warm_sets"]) == ["base"]


def test_apply_again_reports_no_changes(endpoint: str, applied: Path) -> None:
    # GIVEN the files already applied (the token since removed from the credential's file)
    # WHEN they are applied again
    result = cli(endpoint, "apply", "-f", str(applied), "--no-wait")
    # THEN nothing changes, and there is no token warning
    assert result.code == 0, result.output
    assert result.stdout.strip() == "No changes."
    assert result.stderr == ""


def test_apply_with_a_token_in_a_file_writes_the_token_each_time(endpoint: str, applied: Path) -> None:
    write(applied, "20-credentials.yml", CREDENTIALS.replace(TOKEN, NEW_TOKEN))
    result = cli(endpoint, "apply", "-f", str(applied), "--no-wait")
    assert result.code == 0, result.output
    assert "credential  dockerhub  update  (new token)" in result.stdout
    assert NEW_TOKEN not in result.output


def test_apply_invalid_file_sends_nothing_and_names_file_and_field(
    endpoint: str, tmp_path: Path, api: ApiClient
) -> None:
    # GIVEN one good file and one with a lifecycle rule missing fields and an unknown upstream
    good = write(tmp_path, "good.yaml", "version: 1\nrules:\n  ghcr:\n    upstream_kind: quay\n")
    bad = write(
        tmp_path,
        "bad.yaml",
        "version: 1\nrules:\n  docker-hub:\n    upstream_kind: docker-hub\n    credential: dockerhub\n"
        "    lifecycle:\n      rules:\n        - rulePriority: 1\n          selection: {tagStatus: any, countType: "
        "imageCountMoreThan, countNumber: 0}\n          action: {type: expire}\n"
        "  other:\n    upstream_kind: nope\n",
    )
    # WHEN both are applied
    result = cli(endpoint, "apply", "-f", str(good), "-f", str(bad))
    # THEN it exits 3, each problem names the file and the field path, and nothing was applied
    assert result.code == 3, result.output
    assert f'{bad}: rules["docker-hub"].lifecycle.rules[0].selection.countNumber:' in result.stderr
    assert f'{bad}: rules["other"].upstream_kind: Input should be' in result.stderr
    assert str(good) not in result.stderr
    assert "nothing was applied" in result.stderr
    assert desired(api)["rules"] == {}
    assert api.get("/v1/history").json["items"] == []


def test_apply_same_name_in_two_files_is_an_error_naming_both(endpoint: str, tmp_path: Path, api: ApiClient) -> None:
    # GIVEN two files that both define the rule team/quay (one with the implied trailing "/")
    first = write(tmp_path, "a.yaml", "version: 1\nrules:\n  team/quay:\n    upstream_kind: quay\n")
    second = write(tmp_path, "b.yaml", "version: 1\nrules:\n  team/quay/:\n    upstream_kind: quay\n")
    # WHEN the directory is applied
    result = cli(endpoint, "apply", "-f", str(tmp_path))
    # THEN it exits 3 naming both files, and nothing was applied
    assert result.code == 3, result.output
    assert f'{second}: rules["team/quay/"]: also defined in {first}' in result.stderr
    assert desired(api)["rules"] == {}


def test_apply_yaml_syntax_error_has_line_and_column(endpoint: str, tmp_path: Path) -> None:
    # GIVEN a file with a YAML syntax error on line 3
    bad = write(tmp_path, "bad.yaml", "rules:\n  quay:\n    upstream_kind: [quay\n")
    # WHEN it is applied
    result = cli(endpoint, "apply", "-f", str(bad))
    # THEN the error is FILE:LINE:COLUMN
    assert result.code == 3
    assert f"{bad}:4:1: invalid YAML" in result.stderr


def test_apply_dry_run_writes_nothing(endpoint: str, state_dir: Path, api: ApiClient) -> None:
    # GIVEN an empty desired state
    # WHEN the directory is applied with --dry-run
    result = cli(endpoint, "apply", "-f", str(state_dir), "--dry-run")
    # THEN the changes are listed but nothing was written
    assert result.code == 0, result.output
    assert result.stdout.startswith("Dry run: nothing was written.")
    assert "4 changes: 4 to create." in result.stdout
    assert desired(api) == {"version": 1, "rules": {}, "credentials": {}, "warm_sets": {}}


def test_apply_prune_deletes_what_the_files_omit(endpoint: str, applied: Path, api: ApiClient) -> None:
    # GIVEN rules, a credential and a warm set applied
    # WHEN only the rules file (without team/quay) and the credential are applied with --prune
    (applied / "30-warm.json").unlink()
    write(applied, "10-rules.yaml", RULES.split("  team/quay:", maxsplit=1)[0])
    result = cli(endpoint, "apply", "-f", str(applied), "--prune", "--no-wait", "-o", "json")
    # THEN the omitted rule and warm set are deleted, the rest is kept
    assert result.code == 0, result.output
    body = json.loads(result.stdout)
    assert sorted((c["action"], c["kind"], c["name"]) for c in body["changes"]) == [
        ("delete", "rule", "team/quay"),
        ("delete", "warm-set", "base"),
    ]
    state = desired(api)
    assert sorted(state["rules"]) == ["docker-hub"]
    assert state["warm_sets"] == {}
    assert sorted(state["credentials"]) == ["dockerhub"]


def test_apply_prune_with_allow_empty_passes_it_to_the_api(endpoint: str, applied: Path, api: ApiClient) -> None:
    # GIVEN rules, a credential and a warm set applied
    # WHEN a file that declares nothing is applied with --prune --allow-empty
    empty = write(applied.parent, "empty.yaml", "version: 1\n")
    result = cli(endpoint, "apply", "-f", str(empty), "--prune", "--allow-empty", "--no-wait")
    # THEN the API (which refuses such a prune without allowEmpty) deletes everything, as asked
    assert result.code == 0, result.output
    assert desired(api) == {"version": 1, "rules": {}, "credentials": {}, "warm_sets": {}}


def test_apply_a_file_without_version_sends_nothing(endpoint: str, tmp_path: Path, api: ApiClient) -> None:
    # GIVEN a file without `version` (the API refuses such a document)
    document = write(tmp_path, "rules.yaml", "rules:\n  quay:\n    upstream_kind: quay\n")
    # WHEN it is applied
    result = cli(endpoint, "apply", "-f", str(document))
    # THEN it exits 3 naming the file and version, and nothing was applied
    assert result.code == 3, result.output
    assert f"{document}: version: required field is missing" in result.stderr
    assert desired(api)["rules"] == {}


def test_apply_server_validation_error_shows_field_details(endpoint: str, tmp_path: Path) -> None:
    # GIVEN a warm set for a rule that exists neither in the file nor in the API (valid locally)
    document = write(
        tmp_path, "warm.yaml", "version: 1\nwarm_sets:\n  base:\n    rule: missing-rule\n    images: [library/x:1]\n"
    )
    # WHEN it is applied
    result = cli(endpoint, "apply", "-f", str(document))
    # THEN the API's 422 is shown with its field details, and the exit code is 3
    assert result.code == 3, result.output
    first, *details = result.stderr.splitlines()
    assert first.startswith("error: ") and first.endswith("(ValidationFailed, HTTP 422)")
    assert any(line.startswith("  - warm_sets.base.rule: ") for line in details), result.stderr


# -- export ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_then_apply_of_the_export_is_a_no_op(endpoint: str, applied: Path, tmp_path: Path, fmt: str) -> None:
    # GIVEN a desired state applied from files
    exported = tmp_path / f"export.{fmt}"
    # WHEN it is exported to a file and that file is applied with --prune
    result = cli(endpoint, "export", "-o", fmt, "--file", str(exported))
    assert result.code == 0, result.output
    assert "revision 1" in result.stderr
    again = cli(endpoint, "apply", "-f", str(exported), "--prune", "--no-wait")
    # THEN nothing changes (tokens are never exported, and none are needed to re-apply)
    assert again.code == 0, again.output
    assert again.stdout.strip() == "No changes."
    assert TOKEN not in exported.read_text()


def test_export_to_stdout_is_yaml_by_default(endpoint: str, applied: Path) -> None:
    result = cli(endpoint, "export")
    assert result.code == 0, result.output
    document = yaml.safe_load(result.stdout)
    assert document["version"] == 1
    assert sorted(document["rules"]) == ["docker-hub", "team/quay"]


# -- get -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rules", "rule"])
def test_get_rules_table_lists_key_columns(endpoint: str, applied: Path, kind: str) -> None:
    result = cli(endpoint, "get", kind)
    assert result.code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["PREFIX", "UPSTREAM", "UPSTREAM", "URL"]
    assert [r.split()[0] for r in rows] == ["docker-hub", "team/quay"]
    assert rows[0].split()[1:4] == ["docker-hub", "registry-1.docker.io", "dockerhub"]


def test_get_one_rule_with_a_slash_as_json_and_yaml_is_the_api_body(
    endpoint: str, applied: Path, api: ApiClient
) -> None:
    expected = api.get(f"/v1/rules/{enc('team/quay')}").json
    as_json = cli(endpoint, "get", "rule", "team/quay", "-o", "json")
    as_yaml = cli(endpoint, "get", "rule", "team/quay", "-o", "yaml")
    assert as_json.code == as_yaml.code == 0
    assert json.loads(as_json.stdout) == expected
    assert yaml.safe_load(as_yaml.stdout) == json.loads(json.dumps(expected))


def test_get_one_credential_table_shows_metadata_and_no_token(endpoint: str, applied: Path) -> None:
    result = cli(endpoint, "get", "credential", "dockerhub")
    assert result.code == 0, result.output
    assert "secret:" in result.stdout and "ecr-pullthroughcache/dockerhub" in result.stdout
    assert 'etag:       "1"' in result.stdout
    assert "used by:    docker-hub" in result.stdout
    assert "  username: ci-bot" in result.stdout
    assert TOKEN not in result.output


@pytest.mark.parametrize(("kind", "first_column"), [("credentials", "dockerhub"), ("warm-sets", "base")])
def test_get_other_lists(endpoint: str, applied: Path, kind: str, first_column: str) -> None:
    result = cli(endpoint, "get", kind)
    assert result.code == 0, result.output
    assert result.stdout.splitlines()[1].split()[0] == first_column


def test_get_empty_list_and_missing_item(endpoint: str) -> None:
    empty = cli(endpoint, "get", "warm-sets")
    missing = cli(endpoint, "get", "rule", "nope")
    assert (empty.code, empty.stdout.strip()) == (0, "No warm sets.")
    assert missing.code == 4
    assert missing.stderr.startswith("error: ") and "(NotFound, HTTP 404)" in missing.stderr


# -- delete ----------------------------------------------------------------------------------------------


def test_delete_reads_the_etag_then_deletes(endpoint: str, applied: Path, api: ApiClient) -> None:
    result = cli(endpoint, "delete", "warm-set", "base")
    assert result.code == 0, result.output
    assert result.stdout.strip() == 'Deleted warm-set "base" (version 1).'
    assert api.get("/v1/warm-sets/base").status == 404


def test_delete_with_a_stale_if_match_is_a_conflict(endpoint: str, applied: Path, api: ApiClient) -> None:
    result = cli(endpoint, "delete", "rule", "team/quay", "--if-match", '"7"')
    assert result.code == 5, result.output
    assert "HTTP 412" in result.stderr
    assert api.get(f"/v1/rules/{enc('team/quay')}").status == 200


def test_delete_a_credential_in_use_is_a_conflict_and_a_missing_one_not_found(endpoint: str, applied: Path) -> None:
    in_use = cli(endpoint, "delete", "credential", "dockerhub")
    missing = cli(endpoint, "delete", "rule", "nope")
    assert in_use.code == 5, in_use.output
    assert "docker-hub" in in_use.stderr
    assert missing.code == 4, missing.output


# -- credentials set -------------------------------------------------------------------------------------


def test_credentials_set_creates_with_the_token_from_stdin(endpoint: str, api: ApiClient) -> None:
    # GIVEN no credential
    # WHEN it is set with the token on stdin
    result = cli(
        endpoint,
        "credentials",
        "set",
        "ghcr",
        "--upstream",
        "github-container-registry",
        "--username",
        "octo",
        "--expires-at",
        "2027-01-31",
        "--token-stdin",
        input=TOKEN + "\n",
    )
    # THEN it is created (If-None-Match: *), the secret holds the token without the newline, nothing echoes it
    assert result.code == 0, result.output
    assert result.stdout.startswith('Created credential "ghcr" (version 1, secret ecr-pullthroughcache/ghcr)')
    assert TOKEN not in result.output
    assert secret_value("ecr-pullthroughcache/ghcr") == {"username": "octo", "accessToken": TOKEN}
    assert api.get("/v1/credentials/ghcr").json["spec"]["expires_at"] == "2027-01-31"


def test_credentials_set_updates_the_token_keeping_other_fields(endpoint: str, applied: Path, api: ApiClient) -> None:
    # GIVEN a credential with an expiry date
    # WHEN only a new token is set
    result = cli(endpoint, "credentials", "set", "dockerhub", "--token-stdin", input=NEW_TOKEN)
    # THEN the token is replaced, the metadata kept, and the version moves on
    assert result.code == 0, result.output
    assert result.stdout.startswith('Updated credential "dockerhub" (version 2')
    assert NEW_TOKEN not in result.output
    assert secret_value("ecr-pullthroughcache/dockerhub")["accessToken"] == NEW_TOKEN
    spec = api.get("/v1/credentials/dockerhub").json["spec"]
    assert (spec["username"], spec["expires_at"]) == ("ci-bot", "2027-06-30")


def test_credentials_set_new_without_upstream_or_with_empty_token_fails(endpoint: str, api: ApiClient) -> None:
    no_upstream = cli(endpoint, "credentials", "set", "new", "--username", "u", "--token-stdin", input=TOKEN)
    new = ("credentials", "set", "new", "--username", "u", "--upstream", "docker-hub", "--token-stdin")
    empty = cli(endpoint, *new, input="\n")
    assert no_upstream.code == 64
    assert "--upstream" in no_upstream.stderr
    assert empty.code == 3
    assert "token read from stdin is empty" in empty.stderr
    assert api.get("/v1/credentials/new").status == 404


def test_credentials_set_server_error_never_shows_the_token(endpoint: str) -> None:
    # GIVEN a username ECR would refuse (":" is not allowed)
    result = cli(
        endpoint,
        "credentials",
        "set",
        "bad",
        "--upstream",
        "docker-hub",
        "--username",
        "a:b",
        "--token-stdin",
        input=TOKEN,
    )
    # THEN the field error is shown, the token is not
    assert result.code == 3, result.output
    assert "  - username: " in result.stderr
    assert TOKEN not in result.output


def test_caller_arn_is_recorded_as_the_author(endpoint: str, tmp_path: Path, api: ApiClient) -> None:
    document = write(tmp_path, "r.yaml", "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n")
    bob = "arn:aws:iam::123456789012:user/bob"
    result = run_cli(["--endpoint", endpoint, "--caller-arn", bob, "apply", "-f", str(document), "--no-wait"])
    assert result.code == 0, result.output
    assert api.get("/v1/rules/quay").json["updated_by"] == bob
    default = cli(endpoint, "history")
    assert bob in default.stdout and CALLER not in default.stdout

"""The ``ecrcache`` CLI, as a subprocess, against ``ecrcache local`` (one stack for the session).

The examples are applied once; every other test uses names of its own, so the order does not matter.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml
from botocore.config import Config

from tests.e2e.conftest import TOKEN, Cli, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("e2e-stack")]  # one shared stack

EXAMPLE_RULES = {"docker-hub", "ghcr", "quay", "ecr-public", "k8s"}


def write(tmp_path: Path, name: str, document: dict[str, object]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def revision(cli: Cli) -> str:
    exported = cli.ok("export", "-o", "json")
    return json.dumps(exported.json(), sort_keys=True)


# ---- apply, get, plan, status ---------------------------------------------------------------------


def test_apply_of_the_examples_reaches_ecr(cli: Cli, applied: RunningStack) -> None:
    rules = cli.ok("get", "rules", "-o", "json").json()
    assert {item["prefix"] for item in rules["items"]} >= EXAMPLE_RULES
    in_ecr = applied.client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert {rule["ecrRepositoryPrefix"] for rule in in_ecr} >= EXAMPLE_RULES
    assert cli("plan", "--detailed-exitcode").code == 0


def test_get_in_every_format(cli: Cli, applied: RunningStack) -> None:
    table = cli.ok("get", "rules").stdout
    assert "docker-hub" in table
    assert "registry-1.docker.io" in table or "docker-hub" in table
    one = yaml.safe_load(cli.ok("get", "rule", "docker-hub", "-o", "yaml").stdout)
    assert one["prefix"] == "docker-hub"
    assert one["spec"]["lifecycle"]["presets"]["expire_untagged_after_days"] == 7
    warm = cli.ok("get", "warm-sets", "base-images", "-o", "json").json()
    assert "library/node:18-alpine" in warm["spec"]["images"]
    credentials = cli.ok("get", "credentials", "-o", "json")
    assert "dockerhub" in credentials.stdout
    assert TOKEN not in credentials.output
    assert cli("get", "rule", "no-such-rule").code == 4


def test_status_and_history(cli: Cli, applied: RunningStack) -> None:
    status = cli.ok("status", "-o", "json").json()
    synced = {
        record["prefix"]
        for record in status["rules"]
        if any(c["type"] == "Synced" and c["status"] for c in record["status"]["conditions"])
    }
    assert synced >= EXAMPLE_RULES
    assert "SYNCED" in cli.ok("status").stdout
    history = cli.ok("history", "--kind", "rule", "--name", "docker-hub", "-o", "json").json()
    assert history["items"]
    assert "docker-hub" in cli.ok("history", "--limit", "50").stdout


def test_reconcile_waits_for_its_run(cli: Cli, applied: RunningStack) -> None:
    result = cli.ok("reconcile", "--timeout", "120")
    assert "succeeded" in result.output
    queued = cli.ok("reconcile", "--no-wait", "-o", "json").json()
    assert queued["run_id"]


# ---- bad input, dry runs, prune, delete -----------------------------------------------------------


def test_a_bad_file_is_refused_with_the_path_to_the_field_and_nothing_is_applied(
    cli: Cli, applied: RunningStack, tmp_path: Path
) -> None:
    before = revision(cli)
    good = write(tmp_path, "good.yaml", {"version": 1, "rules": {"e2e-good": {"upstream_kind": "quay"}}})
    bad = write(
        tmp_path,
        "bad.yaml",
        {"version": 1, "rules": {"e2e-bad": {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 0}}}}},
    )

    result = cli("apply", "-f", good, "-f", bad)

    assert result.code == 3
    assert "bad.yaml" in result.stderr
    assert "e2e-bad" in result.stderr
    assert "keep_last" in result.stderr
    assert revision(cli) == before  # not even the good file was applied
    assert cli("get", "rule", "e2e-good").code == 4


def test_yaml_syntax_errors_name_the_line(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nrules:\n  e2e-x: {upstream_kind: quay\n", encoding="utf-8")
    result = cli("apply", "-f", str(path))
    assert result.code == 3
    assert re.search(r"broken\.yaml:\d+:\d+: invalid YAML", result.stderr)


def test_server_side_errors_show_field_details(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    # a warm set of a rule that exists nowhere: only the server knows the stored rules
    document = {"version": 1, "warm_sets": {"e2e-orphan": {"rule": "e2e-no-such-rule", "images": ["library/node:1"]}}}
    result = cli("apply", "-f", write(tmp_path, "orphan.yaml", document))
    assert result.code == 3
    assert "e2e-no-such-rule" in result.stderr
    assert "warm_sets" in result.stderr


def test_dry_run_writes_nothing(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    before = revision(cli)
    path = write(tmp_path, "dry.yaml", {"version": 1, "rules": {"e2e-dry": {"upstream_kind": "quay"}}})
    result = cli.ok("apply", "-f", path, "--dry-run")
    assert "e2e-dry" in result.stdout
    assert "create" in result.stdout
    assert revision(cli) == before
    assert cli("get", "rule", "e2e-dry").code == 4


def test_prune_deletes_what_the_files_omit(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    # GIVEN the current state plus one extra rule
    current = tmp_path / "current.yaml"
    cli.ok("export", "--file", str(current))
    extra = write(tmp_path, "extra.yaml", {"version": 1, "rules": {"e2e-prune": {"upstream_kind": "quay"}}})
    cli.ok("apply", "-f", extra, "--timeout", "120")
    assert cli("get", "rule", "e2e-prune").code == 0

    # WHEN the state without it is applied with --prune (dry run first)
    dry = cli.ok("apply", "-f", str(current), "--prune", "--dry-run")
    assert "e2e-prune" in dry.stdout
    assert cli("get", "rule", "e2e-prune").code == 0
    cli.ok("apply", "-f", str(current), "--prune", "--timeout", "120")

    # THEN only the extra rule is gone
    assert cli("get", "rule", "e2e-prune").code == 4
    rules = {item["prefix"] for item in cli.ok("get", "rules", "-o", "json").json()["items"]}
    assert rules >= EXAMPLE_RULES


def test_export_then_apply_is_a_no_op(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    exported = tmp_path / "exported.yaml"
    cli.ok("export", "--file", str(exported))
    result = cli.ok("apply", "-f", str(exported), "--no-wait")
    assert "No changes" in result.stdout


def test_delete_a_rule(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    path = write(tmp_path, "del.yaml", {"version": 1, "rules": {"e2e-del/team": {"upstream_kind": "ecr-public"}}})
    cli.ok("apply", "-f", path, "--timeout", "120")
    assert cli.ok("get", "rule", "e2e-del/team", "-o", "json").json()["prefix"] == "e2e-del/team"

    cli.ok("delete", "rule", "e2e-del/team")

    assert cli("get", "rule", "e2e-del/team").code == 4
    assert cli("delete", "rule", "e2e-del/team").code == 4
    assert cli("delete", "rule", "docker-hub", "--if-match", '"999"').code == 5


# ---- credentials, import, endpoints ---------------------------------------------------------------


def test_credentials_set_reads_the_token_from_stdin_only(cli: Cli, applied: RunningStack) -> None:
    secret = "e2e-only-on-stdin-4242"
    created = cli(
        "credentials", "set", "e2e-cred", "--upstream", "gitlab-container-registry", "--username", "bot",
        "--token-stdin", stdin=secret,
    )  # fmt: skip
    assert created.code == 0, created.output
    updated = cli("credentials", "set", "e2e-cred", "--username", "bot2", "--token-stdin", stdin=secret + "-2\n")
    assert updated.code == 0, updated.output
    shown = cli.ok("get", "credential", "e2e-cred", "-o", "json")
    assert shown.json()["spec"]["username"] == "bot2"
    # the token is nowhere: not in the CLI's output, not in the API's answers, not in any log line
    for text in (created.output, updated.output, shown.output, applied.log()):
        assert secret not in text
    # a new credential without --upstream, or without a token, is refused before anything is sent
    assert cli("credentials", "set", "e2e-cred2", "--username", "bot", "--token-stdin", stdin="x").code in {3, 64}
    assert cli("credentials", "set", "e2e-cred", "--username", "bot", "--token-stdin", stdin="").code in {3, 64}
    cli.ok("delete", "credential", "e2e-cred")


def test_a_rule_in_a_second_region_gets_its_own_replica_of_the_credentials_secret(
    cli: Cli, applied: RunningStack, tmp_path: Path
) -> None:
    # GIVEN a rule on the examples' Docker Hub credential in the stack's Region and in eu-west-1
    home, other = applied.ready["region"], "eu-west-1"
    rule = {
        "upstream_kind": "docker-hub",
        "credential": "dockerhub",
        "regions": [home, other],
        "deletion_policy": "delete",
    }
    cli.ok(
        "apply", "-f", write(tmp_path, "replica.yaml", {"version": 1, "rules": {"e2e-hub2": rule}}), "--timeout", "120"
    )
    # THEN the secret has an in-sync replica there, and each Region's ECR rule uses its own Region's ARN
    secrets = applied.client("secretsmanager")
    primary = secrets.describe_secret(SecretId="ecr-pullthroughcache/dockerhub")
    assert [(r["Region"], r["Status"]) for r in primary["ReplicationStatus"]] == [(other, "InSync")]
    config = Config(retries={"mode": "standard"}, account_id_endpoint_mode="disabled")
    ecr_other = boto3.client("ecr", endpoint_url=applied.aws, region_name=other, config=config)
    [found] = ecr_other.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["e2e-hub2"])["pullThroughCacheRules"]
    assert found["credentialArn"] == primary["ARN"].replace(f":{home}:", f":{other}:")
    assert cli("plan", "--detailed-exitcode").code == 0
    # AND eu-west-1 has the stack's event forwarder, to the stack Region's bus
    events_other = boto3.client("events", endpoint_url=applied.aws, region_name=other, config=config)
    forwarder = _forwarder_name(applied)
    [target] = events_other.list_targets_by_rule(Rule=forwarder)["Targets"]
    assert f":events:{home}:" in target["Arn"] and target["Arn"].endswith(":event-bus/default"), target
    # WHEN someone deletes the rule by hand in eu-west-1 THEN its CloudTrail event there reaches the reconciler
    # through the forwarder and the rule is back within the event queue's batching window (no resync)
    ecr_other.delete_pull_through_cache_rule(ecrRepositoryPrefix="e2e-hub2")
    assert _eventually(lambda: "e2e-hub2" in _prefixes(ecr_other)), applied.log()[-3000:]
    # WHEN the rule is deleted and a run converges THEN its ECR rules, the replica and the forwarder are gone
    cli.ok("delete", "rule", "e2e-hub2")
    cli.ok("reconcile", "--timeout", "120")
    assert not secrets.describe_secret(SecretId="ecr-pullthroughcache/dockerhub").get("ReplicationStatus")
    assert ecr_other.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []
    assert forwarder not in {r["Name"] for r in events_other.list_rules()["Rules"]}


def _forwarder_name(stack: RunningStack) -> str:
    """The stack's EventForwardRuleName output, as CloudFormation (the local stack's record of it) answers it."""
    cloudformation = stack.client("cloudformation")
    outputs = cloudformation.describe_stacks(StackName="ecrcache-e2e")["Stacks"][0]["Outputs"]
    return str(next(o["OutputValue"] for o in outputs if o["OutputKey"] == "EventForwardRuleName"))


def _prefixes(ecr: Any) -> set[str]:
    return {r["ecrRepositoryPrefix"] for r in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]}


def _eventually(check: Callable[[], bool], seconds: float = 90) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def test_import_adopts_a_hand_made_rule(cli: Cli, applied: RunningStack) -> None:
    ecr = applied.client("ecr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="e2e-handmade", upstreamRegistryUrl="public.ecr.aws")

    dry = cli.ok("import", "--dry-run", "-o", "json").json()
    assert any(r["prefix"] == "e2e-handmade" and r["imported"] for r in dry["rules"])
    assert cli("get", "rule", "e2e-handmade").code == 4

    cli.ok("import")
    rule = cli.ok("get", "rule", "e2e-handmade", "-o", "json").json()
    assert rule["spec"]["deletion_policy"] == "retain"
    assert rule["spec"]["upstream_kind"] == "ecr-public"
    assert rule["spec"]["adopt"] is True  # importing is saying "take it over"


def test_a_hand_made_rule_is_blocked_until_adopted(cli: Cli, applied: RunningStack, tmp_path: Path) -> None:
    # GIVEN a Quay rule made by hand, and a file declaring its prefix with another upstream
    ecr = applied.client("ecr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="e2e-conflict2", upstreamRegistryUrl="quay.io")
    rule = {"upstream_kind": "ecr-public"}
    declared = write(tmp_path, "conflict.yaml", {"version": 1, "rules": {"e2e-conflict2": rule}})

    # WHEN dry-run, applied (waiting) and planned THEN all three say Blocked, and the wait ends at once
    dry = cli.ok("apply", "-f", declared, "--dry-run")
    applied_once = cli("apply", "-f", declared, "--timeout", "60")
    plan = cli.ok("plan", "-o", "json").json()
    assert "Blocked" in dry.stdout and "e2e-conflict2" in dry.stdout
    assert applied_once.code == 6, applied_once.output
    assert "Blocked" in applied_once.stderr and "not converged after" not in applied_once.stderr
    assert "e2e-conflict2" in [b["prefix"] for b in plan["blocked"]]
    # AND the hand-made rule is untouched
    [found] = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["e2e-conflict2"])["pullThroughCacheRules"]
    assert found["upstreamRegistryUrl"] == "quay.io"

    # WHEN the rule says adopt: true THEN it is taken over and converges
    adopted = write(tmp_path, "adopt.yaml", {"version": 1, "rules": {"e2e-conflict2": {**rule, "adopt": True}}})
    cli.ok("apply", "-f", adopted, "--timeout", "60")
    [found] = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["e2e-conflict2"])["pullThroughCacheRules"]
    assert found["upstreamRegistryUrl"] == "public.ecr.aws"
    cli.ok("delete", "rule", "e2e-conflict2")


def test_stack_name_resolves_the_endpoint(cli: Cli, applied: RunningStack) -> None:
    env = {"AWS_ENDPOINT_URL": applied.aws, "AWS_DEFAULT_REGION": applied.ready["region"]}
    result = cli("--stack", "ecrcache-e2e", "get", "rules", "-o", "json", env=env, endpoint=False)
    assert result.code == 0, result.output
    assert "docker-hub" in result.stdout
    missing = cli("--stack", "no-such-stack", "get", "rules", env=env, endpoint=False)
    assert missing.code == 7
    assert "no-such-stack" in missing.stderr


def test_no_endpoint_is_a_usage_error(cli: Cli) -> None:
    result = cli("get", "rules", endpoint=False)
    assert result.code == 64
    assert "ECRCACHE_ENDPOINT" in result.stderr


def test_an_unreachable_endpoint_is_exit_7(cli: Cli) -> None:
    result = cli("--endpoint", "http://127.0.0.1:9/v1", "get", "rules")
    assert result.code == 7


def test_an_endpoint_at_the_aws_port_does_not_look_like_the_api(cli: Cli, local_stack: RunningStack) -> None:
    # GIVEN the endpoint pointed at the embedded AWS instead of the API
    result = cli("--endpoint", local_stack.aws, "get", "rules")
    # THEN the CLI says so, exit 7 (it said "NOT FOUND (HTTP404, HTTP 404)", exit 4)
    assert result.code == 7, result.output
    assert "does not look like the ecrcache API" in result.stderr


def test_a_form_body_is_a_415_through_the_local_gateway(local_stack: RunningStack) -> None:
    # GIVEN the local gateway, set up from the template's (empty) BinaryMediaTypes
    # WHEN a rule is sent as a form, XML or multipart
    for content_type, data in (
        ("application/x-www-form-urlencoded", b"upstream_kind=quay"),
        ("application/xml", b"<rule/>"),
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nq\r\n--b--\r\n"),
    ):
        response = requests.put(
            f"{local_stack.api}/rules/form", data=data, headers={"Content-Type": content_type}, timeout=30
        )
        # THEN it is the API's 415 naming the accepted types (it was "base64-encoded bodies are not accepted")
        assert response.status_code == 415, response.text
        assert "application/yaml" in response.json()["message"]


def test_drift_is_repaired_and_the_plan_is_empty_again(cli: Cli, applied: RunningStack) -> None:
    ecr = applied.client("ecr")
    ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="k8s")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        prefixes = {r["ecrRepositoryPrefix"] for r in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]}
        if "k8s" in prefixes:
            break
        time.sleep(0.5)
    assert "k8s" in prefixes
    assert cli("plan", "--detailed-exitcode").code == 0

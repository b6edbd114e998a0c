"""``ecrcache plan / status / history / reconcile / import`` and ``apply --wait`` against the real API handler.

The API plans against the embedded ECR (moto + the ECR extension). Where a test needs the
reconciler, it runs the reconcile service in-process from the CLI's ``sleep`` hook: the CLI polls,
"sleeps", and meanwhile the controller does its work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.engine.status import UpstreamObservation, upstream_health
from ecrcache.models.status import (
    ConditionType,
    ReconcileRun,
    RuleStatus,
    RuleValidation,
    RunStatus,
    RunTrigger,
    UpstreamCheckSource,
)
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.conftest import REGION
from tests.functional.api.client import ApiClient
from tests.unit.cli.support import CliResult, run_cli

pytestmark = pytest.mark.functional

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def cli(endpoint: str, *argv: str, sleep: Callable[[float], None] | None = None) -> CliResult:
    return run_cli(["--endpoint", endpoint, *argv], sleep=sleep)


QUAY_DOC = "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n"


def apply_rules(endpoint: str, tmp_path: Path, text: str = QUAY_DOC) -> Path:
    document = tmp_path / "rules.yaml"
    document.write_text(text)
    result = cli(endpoint, "apply", "-f", str(document), "--no-wait")
    assert result.code == 0, result.output
    return document


@pytest.fixture
def status_store(state_table: str) -> DynamoDbStatusStore:
    return DynamoDbStatusStore(state_table)


@pytest.fixture
def reconcile(state_table: str) -> Callable[[], ReconcileRun]:
    """One full reconcile by the controller, in-process (no credential rules, so no upstream checks)."""
    registries: dict[str, Boto3EcrRegistry] = {}

    def registry(region: str) -> Boto3EcrRegistry:
        return registries.setdefault(region, Boto3EcrRegistry(region, sleep=lambda _: None))

    service = ReconcileService(
        desired=DynamoDbStateStore(state_table),
        status=DynamoDbStatusStore(state_table),
        registry=registry,
        clock=lambda: datetime.now(UTC),
        stack_region=REGION,
    )
    return lambda: service.reconcile(Scope(), RunTrigger.SCHEDULE)


# -- plan ----------------------------------------------------------------------------------------------


def test_plan_detailed_exitcode_is_0_when_nothing_is_desired(endpoint: str) -> None:
    result = cli(endpoint, "plan", "--detailed-exitcode")
    assert result.code == 0, result.output
    assert result.stdout.strip() == "No changes. ECR matches the desired state."


def test_plan_detailed_exitcode_is_2_when_a_desired_rule_is_not_in_ecr(endpoint: str, tmp_path: Path) -> None:
    # GIVEN a desired rule that ECR does not have
    apply_rules(endpoint, tmp_path)
    # WHEN the plan is shown with --detailed-exitcode
    result = cli(endpoint, "plan", "--detailed-exitcode")
    plain = cli(endpoint, "plan", "-o", "json", "--region", REGION)
    # THEN the actions are listed and the exit code is 2 (0 without the flag)
    assert result.code == 2, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ACTION", "REGION", "TARGET", "RULE", "REASON"]
    assert [r.split()[:3] for r in rows[:2]] == [["create_rule", REGION, "quay"], ["create_template", REGION, "quay"]]
    assert "Plan: 2 actions (create_rule 1, create_template 1)." in result.stdout
    assert plain.code == 0
    assert [a["kind"] for a in json.loads(plain.stdout)["actions"]] == ["create_rule", "create_template"]


def test_plan_reports_unmanaged_rules(endpoint: str) -> None:
    # GIVEN a pull-through cache rule made outside ecrcache
    boto3.client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")
    # WHEN the plan is shown
    result = cli(endpoint, "plan", "--detailed-exitcode")
    # THEN it is reported, and not an action
    assert result.code == 0, result.output
    assert "Unmanaged (reported, never changed):" in result.stdout
    assert any(line.split()[:3] == ["rule", REGION, "k8s"] for line in result.stdout.splitlines())


def test_plan_shows_the_warmers_exclusion_as_a_registry_level_action(
    endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.api import app

    # GIVEN the warm worker's role is set and a rule is desired
    warmer = "arn:aws:iam::123456789012:role/ecrcache-WarmWorkerFunctionRole-AB12"
    monkeypatch.setattr(app.planner, "warmer_role_arn", warmer)
    apply_rules(endpoint, tmp_path)
    # WHEN the plan is shown THEN the registration is an action of the registry, not of a rule
    result = cli(endpoint, "plan")
    assert result.code == 0, result.output
    [row] = [line.split() for line in result.stdout.splitlines() if line.startswith("register_exclusion")]
    assert row[:4] == ["register_exclusion", REGION, warmer, "(registry)"]
    assert "register_exclusion 1" in result.stdout


def _tagged_doc(tags: str) -> str:
    role = "arn:aws:iam::123456789012:role/ecrcache/ecr-ptc-creation"
    return (
        "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n"
        f"    repository:\n      tags: {tags}\n      creation_role_arn: {role}\n"
    )


@pytest.mark.parametrize("deep", [False, True], ids=["fast", "deep"])
def test_plan_shows_a_tag_key_dropped_from_the_rule_as_untag_repository(
    endpoint: str, tmp_path: Path, reconcile: Callable[[], ReconcileRun], deep: bool
) -> None:
    # GIVEN a cached repository the controller tagged with team and env
    boto3.client("ecr").create_repository(repositoryName="quay/library/nginx")
    apply_rules(endpoint, tmp_path, _tagged_doc("{team: platform, env: prod}"))
    assert reconcile().status is RunStatus.SUCCEEDED
    # WHEN the rule drops env and the plan is shown
    apply_rules(endpoint, tmp_path, _tagged_doc("{team: platform}"))
    flags = ["--deep"] if deep else []
    result = cli(endpoint, "plan", *flags)
    plain = cli(endpoint, "plan", *flags, "-o", "json")
    # THEN the removal is an action on the repository, for the rule
    assert result.code == 0, result.output
    [row] = [line.split() for line in result.stdout.splitlines() if line.startswith("untag_repository")]
    assert row[:4] == ["untag_repository", REGION, "quay/library/nginx", "quay"]
    assert "untag_repository 1" in result.stdout
    [untag] = [a for a in json.loads(plain.stdout)["actions"] if a["kind"] == "untag_repository"]
    assert untag["request"]["tagKeys"] == ["env"]
    assert untag["tag_keys"] == ({"env": False, "team": True} if deep else {"env": False})


# -- status --------------------------------------------------------------------------------------------


def test_status_without_anything_reconciled(endpoint: str) -> None:
    result = cli(endpoint, "status")
    assert result.code == 0, result.output
    assert result.stdout.strip() == "No rule status yet (nothing has been reconciled)."


def test_status_shows_conditions_and_runs(endpoint: str, status_store: DynamoDbStatusStore) -> None:
    # GIVEN one synced rule, one terminal rule and a finished run
    synced = RuleStatus(last_reconciled_at=NOW, cached_repositories=3).with_condition(
        ConditionType.SYNCED, status=True, reason="Applied", message="", now=NOW
    )
    broken = (
        RuleStatus(last_reconciled_at=NOW)
        .with_condition(ConditionType.SYNCED, status=False, reason="AccessDenied", message="no", now=NOW)
        .with_condition(ConditionType.TERMINAL, status=True, reason="AccessDenied", message="role cannot", now=NOW)
    )
    status_store.put_rule_status(REGION, "quay", synced)
    status_store.put_rule_status(REGION, "docker-hub", broken)
    run = ReconcileRun(
        run_id="run-1",
        trigger=RunTrigger.API,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        status=RunStatus.PARTIAL,
        summary={"create_rule": 1},
        errors=("docker-hub: AccessDenied",),
    )
    status_store.put_run(run)
    # WHEN the status is shown
    result = cli(endpoint, "status")
    as_json = cli(endpoint, "status", "-o", "json")
    # THEN each rule has its conditions, the terminal reason first, and the run follows
    assert result.code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith(("quay", "docker"))}
    assert rows["quay"][:8] == ["quay", REGION, "yes", "-", "-", "-", "-", "Applied"]
    assert rows["docker-hub"][:10] == [
        "docker-hub",
        REGION,
        "no",
        "yes",
        "-",
        "-",
        "-",
        "AccessDenied",
        "role",
        "cannot",
    ]
    assert "Recent runs:" in result.stdout
    assert any(line.split()[:3] == ["run-1", "api", "partial"] for line in result.stdout.splitlines())
    assert json.loads(as_json.stdout)["runs"][0]["run_id"] == "run-1"


def test_status_shows_upstream_health_and_validation_for_every_rule(
    endpoint: str, status_store: DynamoDbStatusStore
) -> None:
    # GIVEN a synced rule whose upstream rate-limits pulls (no credential: never validated), a credential
    # rule whose validation failed, and one whose validation passed
    synced = RuleStatus(last_reconciled_at=NOW).with_condition(
        ConditionType.SYNCED, status=True, reason="Converged", message="", now=NOW
    )
    limited = UpstreamObservation(
        UpstreamCheckSource.PULL, NOW, healthy=False, failure_code="UpstreamTooManyRequests", repository="quay/a"
    )
    rejected = UpstreamObservation(UpstreamCheckSource.VALIDATION, NOW, healthy=False, failure="HTTP 401")
    valid = UpstreamObservation(UpstreamCheckSource.VALIDATION, NOW, healthy=True)
    for prefix, seen, validation in (
        ("quay", limited, RuleValidation()),
        ("docker-hub", rejected, RuleValidation(is_valid=False, failure="HTTP 401", checked_at=NOW)),
        ("ghcr", valid, RuleValidation(is_valid=True, checked_at=NOW)),
    ):
        status_store.put_rule_status(REGION, prefix, synced.model_copy(update={"validation": validation}))
        health = upstream_health(synced, seen)
        assert health is not None
        assert status_store.record_upstream(REGION, prefix, health)

    # WHEN the status is shown
    result = cli(endpoint, "status")

    # THEN each row says the upstream's health and the validation, and the upstream problem is the reason shown
    assert result.code == 0, result.output
    rows = {
        line.split()[0]: line.split()
        for line in result.stdout.splitlines()
        if line.startswith(("quay", "docker", "ghcr"))
    }
    assert rows["quay"][:10] == ["quay", REGION, "yes", "-", "-", "RateLimited", "-", "RateLimited", "pull", "of"]
    assert rows["docker-hub"][:9] == [
        "docker-hub",
        REGION,
        "yes",
        "-",
        "-",
        "CredentialRejected",
        "invalid",
        "CredentialRejected",
        "validation",
    ]
    assert rows["ghcr"][:8] == ["ghcr", REGION, "yes", "-", "-", "ok", "valid", "Converged"]


# -- history -------------------------------------------------------------------------------------------


def test_history_filters_and_follows_pages(endpoint: str, tmp_path: Path) -> None:
    # GIVEN three writes to two rules
    document = apply_rules(
        endpoint, tmp_path, "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n  k8s:\n    upstream_kind: k8s\n"
    )
    document.write_text("version: 1\nrules:\n  quay:\n    upstream_kind: quay\n    description: changed\n")
    assert cli(endpoint, "apply", "-f", str(document), "--no-wait").code == 0
    # WHEN the history is read one entry per page, with and without --all, and for one rule
    one_page = cli(endpoint, "history", "--limit", "1")
    every = cli(endpoint, "history", "--limit", "1", "--all", "-o", "json")
    quay = cli(endpoint, "history", "--kind", "rule", "--name", "quay")
    # THEN one page says there is more, --all reads them all, and the filter applies
    assert one_page.code == every.code == quay.code == 0
    assert len(one_page.stdout.splitlines()) == 3 and "(older entries: use --all)" in one_page.stdout
    items = json.loads(every.stdout)["items"]
    assert [(i["name"], i["action"]) for i in items] == [("quay", "update"), ("quay", "create"), ("k8s", "create")]
    assert [line.split()[2] for line in quay.stdout.splitlines()[1:]] == ["quay", "quay"]


def test_history_name_without_kind_is_a_usage_error(endpoint: str) -> None:
    result = cli(endpoint, "history", "--name", "quay")
    assert result.code == 64
    assert "--name needs --kind" in result.stderr


# -- reconcile -----------------------------------------------------------------------------------------


def test_reconcile_no_wait_prints_the_run_id(endpoint: str, status_store: DynamoDbStatusStore) -> None:
    result = cli(endpoint, "reconcile", "--no-wait")
    assert result.code == 0, result.output
    run_id = result.stdout.strip().removeprefix("Reconcile queued: run ")
    found = status_store.get_run(run_id)
    assert found is not None and found.status is RunStatus.QUEUED


@pytest.mark.parametrize(("final", "code"), [(RunStatus.SUCCEEDED, 0), (RunStatus.FAILED, 6)])
def test_reconcile_wait_follows_the_run_until_it_ends(
    endpoint: str, status_store: DynamoDbStatusStore, final: RunStatus, code: int
) -> None:
    # GIVEN a controller that finishes the queued run while the CLI sleeps between polls
    def controller_runs(_: float) -> None:
        queued = status_store.latest_runs(1)[0]
        errors = ("quay: AccessDenied",) if final is RunStatus.FAILED else ()
        status_store.put_run(queued.model_copy(update={"status": final, "finished_at": NOW, "errors": errors}))

    # WHEN a reconcile is requested and waited for
    result = cli(endpoint, "reconcile", "--deep", "--timeout", "30", sleep=controller_runs)
    # THEN the CLI reports the run and exits 0 for succeeded, 6 for failed (with the errors)
    assert result.code == code, result.output
    assert result.stdout.startswith("Reconcile queued: run ")
    assert f"status:   {final.value}" in result.stdout
    if final is RunStatus.FAILED:
        assert "  - quay: AccessDenied" in result.stderr


def test_apply_wait_converges_once_the_controller_reconciles(
    endpoint: str, tmp_path: Path, reconcile: Callable[[], ReconcileRun]
) -> None:
    # GIVEN a rule file, and a controller that reconciles while the CLI waits
    document = tmp_path / "rules.yaml"
    document.write_text("version: 1\nrules:\n  quay:\n    upstream_kind: quay\n")

    # WHEN it is applied with --wait
    def controller_reconciles(_: float) -> None:
        reconcile()

    result = cli(endpoint, "apply", "-f", str(document), "--timeout", "60", sleep=controller_reconciles)
    # THEN the CLI waits for the plan to empty and the rule to be Synced
    assert result.code == 0, result.output
    assert "waiting for convergence: 2 actions pending, 0/1 rules synced" in result.stderr
    assert "Converged: no actions pending, 1/1 rules synced." in result.stdout
    assert cli(endpoint, "plan", "--detailed-exitcode").code == 0


def test_apply_wait_times_out_without_a_controller(endpoint: str, tmp_path: Path) -> None:
    document = tmp_path / "rules.yaml"
    document.write_text("version: 1\nrules:\n  quay:\n    upstream_kind: quay\n")
    result = cli(endpoint, "apply", "-f", str(document), "--timeout", "0")
    assert result.code == 6, result.output
    assert "error: not converged after 0 s (2 actions pending, 0/1 rules synced)" in result.stderr
    assert "  - pending: create_rule quay (us-east-1): no pull-through cache rule with this prefix" in result.stderr
    assert "  - not synced: quay: not reconciled yet" in result.stderr


# -- import --------------------------------------------------------------------------------------------


def test_import_dry_run_then_import(endpoint: str, api: ApiClient) -> None:
    # GIVEN a rule in ECR that is not desired
    boto3.client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    # WHEN it is imported with --dry-run, then for real
    dry = cli(endpoint, "import", "--dry-run")
    real = cli(endpoint, "import", "--region", REGION, "-o", "yaml")
    # THEN the dry run lists it and writes nothing; the import adopts it
    assert dry.code == 0, dry.output
    assert dry.stdout.splitlines()[1].split()[:3] == ["quay", REGION, "yes"]
    assert "Dry run: nothing was imported (1 would be)." in dry.stdout
    assert real.code == 0, real.output
    body = yaml.safe_load(real.stdout)
    assert (body["dry_run"], [r["prefix"] for r in body["rules"] if r["imported"]]) == (False, ["quay"])
    assert api.get("/v1/rules/quay").status == 200

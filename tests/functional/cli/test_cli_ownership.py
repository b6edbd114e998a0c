"""Ownership is never a surprise: a rule or template made by hand in ECR is never changed unless the
user says so (``adopt: true``), and ``apply --dry-run``, ``plan`` and ``apply`` all say so the same way.

The CLI runs against the real API handler, the embedded ECR and, from the CLI's ``sleep`` hook while
it waits, the reconcile service in-process (the controller at work).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.models.status import RunTrigger
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.conftest import REGION
from tests.unit.cli.support import CliResult, run_cli

pytestmark = pytest.mark.functional

HAND_MADE = {"ecrRepositoryPrefix": "conflict2", "upstreamRegistryUrl": "quay.io", "upstreamRegistry": "quay"}
DECLARED = "version: 1\nrules:\n  conflict2:\n    upstream_kind: ecr-public\n"
ADOPTED = "version: 1\nrules:\n  conflict2:\n    upstream_kind: ecr-public\n    adopt: true\n"


def cli(endpoint: str, *argv: str, sleep: Callable[[float], None] | None = None) -> CliResult:
    return run_cli(["--endpoint", endpoint, *argv], sleep=sleep)


@pytest.fixture
def reconcile(state_table: str) -> Callable[[float], None]:
    """The CLI's ``sleep`` while it waits: one full reconcile by the controller, in-process."""
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

    def controller_reconciles(_: float) -> None:
        service.reconcile(Scope(), RunTrigger.SCHEDULE)

    return controller_reconciles


def ecr_rule(prefix: str) -> dict[str, Any] | None:
    rules = boto3.client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    found = [r for r in rules if r["ecrRepositoryPrefix"] == prefix]
    return {k: found[0].get(k) for k in ("upstreamRegistryUrl", "upstreamRegistry")} if found else None


def ecr_template(prefix: str) -> dict[str, Any] | None:
    templates = boto3.client("ecr").describe_repository_creation_templates()["repositoryCreationTemplates"]
    found = [t for t in templates if t["prefix"] == prefix]
    if not found:
        return None
    keep = ("appliedFor", "imageTagMutability", "lifecyclePolicy", "description")
    return {k: found[0].get(k) for k in keep}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


def test_a_rule_made_by_hand_is_blocked_everywhere_and_never_replaced_until_adopted(
    endpoint: str, tmp_path: Path, reconcile: Callable[[float], None]
) -> None:
    # GIVEN a pull-through cache rule made by hand in ECR (Quay), and a file declaring its prefix
    # with another upstream
    boto3.client("ecr").create_pull_through_cache_rule(**HAND_MADE)  # type: ignore[arg-type]
    declared = write(tmp_path, DECLARED)

    # WHEN the file is applied with --dry-run
    dry = cli(endpoint, "apply", "-f", declared, "--dry-run")
    # THEN the dry run says the rule is blocked, and what to do
    assert dry.code == 0, dry.output
    assert "Blocked" in dry.stdout, dry.stdout
    blocked_line = next(line for line in dry.stdout.splitlines() if "conflict2" in line and "ecrcache" in line)
    assert "did not create" in blocked_line
    assert "ecrcache import" in dry.stdout
    assert "adopt: true" in dry.stdout

    # WHEN it is applied for real and waited for, with the controller reconciling meanwhile
    applied = cli(endpoint, "apply", "-f", declared, "--timeout", "60", sleep=reconcile)
    # THEN the apply says the same, and stops waiting at once with the rule Blocked (exit 6), not a timeout
    assert applied.code == 6, applied.output
    assert "Blocked" in applied.stdout
    assert "conflict2" in applied.stderr and "Blocked" in applied.stderr
    assert "not converged after" not in applied.stderr
    # AND the plan says the same: Blocked, not planned, not an action
    plan = cli(endpoint, "plan", "-o", "json")
    body = json.loads(plan.stdout)
    assert body["actions"] == []
    assert [(b["prefix"], "adopt: true" in b["reason"]) for b in body["blocked"]] == [("conflict2", True)]
    table = cli(endpoint, "plan")
    assert "Blocked" in table.stdout and "conflict2" in table.stdout
    # AND the rule's status is Blocked (Synced false, Terminal true)
    records = json.loads(cli(endpoint, "status", "-o", "json").stdout)["rules"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in records[0]["status"]["conditions"]}
    assert conditions["Synced"] == (False, "Blocked") and conditions["Terminal"] == (True, "Blocked")
    # AND the ECR rule is exactly as it was made by hand
    assert ecr_rule("conflict2") == {"upstreamRegistryUrl": "quay.io", "upstreamRegistry": "quay"}
    assert ecr_template("conflict2") is None

    # WHEN the user says so: adopt: true
    adopted = cli(endpoint, "apply", "-f", write(tmp_path, ADOPTED), "--timeout", "60", sleep=reconcile)
    # THEN the controller takes the rule over and converges it
    assert adopted.code == 0, adopted.output
    assert "Converged" in adopted.stdout
    assert ecr_rule("conflict2") == {"upstreamRegistryUrl": "public.ecr.aws", "upstreamRegistry": "ecr-public"}
    assert cli(endpoint, "plan", "--detailed-exitcode").code == 0


def test_a_template_made_by_hand_is_not_overwritten_when_an_identical_rule_is_declared(
    endpoint: str, tmp_path: Path, reconcile: Callable[[float], None]
) -> None:
    # GIVEN a rule and a creation template made by hand; the rule is identical to the one declared,
    # the template is not (it says so in its description)
    ecr = boto3.client("ecr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    ecr.create_repository_creation_template(
        prefix="quay", appliedFor=["PULL_THROUGH_CACHE"], description="made by hand", imageTagMutability="MUTABLE"
    )
    before = (ecr_rule("quay"), ecr_template("quay"))
    declared = write(tmp_path, "version: 1\nrules:\n  quay:\n    upstream_kind: quay\n    description: ecrcache's\n")

    # WHEN the identical rule is declared, dry run then for real
    dry = cli(endpoint, "apply", "-f", declared, "--dry-run")
    applied = cli(endpoint, "apply", "-f", declared, "--timeout", "60", sleep=reconcile)

    # THEN both say Blocked, the rule and the template are left exactly as they were
    assert dry.code == 0 and "Blocked" in dry.stdout, dry.output
    assert applied.code == 6, applied.output
    assert "Blocked" in applied.stderr
    assert (ecr_rule("quay"), ecr_template("quay")) == before
    body = json.loads(cli(endpoint, "plan", "-o", "json").stdout)
    assert body["actions"] == []
    assert [b["prefix"] for b in body["blocked"]] == ["quay"]

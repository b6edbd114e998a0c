"""template.yaml passes cfn-lint (with the serverless rules) and ``sam validate --lint`` cleanly."""

from __future__ import annotations

import pytest

from tests.contract.tools import ROOT, TEMPLATE, run, show, tool, tool_env

pytestmark = pytest.mark.contract


def test_template_passes_cfn_lint_with_serverless_rules() -> None:
    # GIVEN the template and cfn-lint with awslabs/serverless-rules
    cfn_lint = tool("cfn-lint")

    # WHEN it is linted (the template first: -a takes several values and would swallow it)
    result = run(
        [cfn_lint, TEMPLATE.name, "--append-rules", "cfn_lint_serverless.rules"],
        cwd=ROOT,
        env=tool_env(),
        timeout=120,
    )

    # THEN there is no error, warning or other finding at all
    assert result.returncode == 0, show(result)
    assert result.stdout.strip() == "", show(result)
    assert result.stderr.strip() == "", show(result)


def test_template_passes_sam_validate_lint() -> None:
    # GIVEN the template and the SAM CLI
    sam = tool("sam")

    # WHEN SAM validates it with its linter
    result = run([sam, "validate", "--lint", "--template", TEMPLATE.name], cwd=ROOT, env=tool_env(), timeout=120)

    # THEN it succeeds and says nothing beyond the success line
    assert result.returncode == 0, show(result)
    said = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert [line for line in said if not line.endswith("is a valid SAM Template")] == [], show(result)

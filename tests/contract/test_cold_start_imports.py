"""A cold start imports only what the function's invocations need (issue 13: cold start).

Each handler module is imported in a fresh interpreter, in its directory and with the environment the cold-start
benchmark gives it (``bench.cold_start.child_env``: Lambda's variables, the Tracer enabled), and the modules it
loaded are checked against what was made lazy: annotation-only imports sit under ``TYPE_CHECKING``, the ECR
adapter is imported on first use by the functions that reach ECR only on some invocations, and the upstream
failure classification (``ecrcache.engine.upstream_reasons``) is apart from the status engine's plan and rule
models, and the API's OpenAPI description is made on its first request. No timing here (``bench/cold_start.py``
measures): which modules, not how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Final

import pytest

from bench.cold_start import FUNCTIONS, child_env

pytestmark = pytest.mark.contract

RULE_MODELS: Final = (
    "ecrcache.engine.plan",
    "ecrcache.engine.status",
    "ecrcache.models.observed",
    "ecrcache.models.rule",
    "ecrcache.models.lifecycle",
)
"""The status engine and the rule models it brings: only the reconciler and the API (plan, rules) need them."""
ECR_ADAPTER: Final = ("ecrcache.adapters.ecr_registry", "ecrcache.engine.essence")
"""The ECR adapter (and the rule essence it compares with): imported on first use where not every invocation reads
ECR."""
WARM_INPUTS: Final = ("ecrcache.models.warm_inputs",)
"""The warm planner's inputs: every handler imported them through ``ecrcache.ports``, for annotations only."""
OTHER_WORK: Final = (
    "ecrcache.models.warm_set",
    "ecrcache.models.warm_run",
    "ecrcache.engine.warm",
    "ecrcache.engine.warm_pull",
    "ecrcache.models.shards",
    "ecrcache.models.pull_stats",
    "ecrcache.engine.pull_stats",
    "ecrcache.models.events",
)
"""Warm sets and runs, the fan-out's shards, pull statistics and EventBridge events: the rotator and the credential
health check read none of them; they imported them for a few names (a failure class, a token bucket's key, an image
reference, a rule's owner, the shard size's limit), now in leaf modules."""
CREDENTIAL_HEALTH: Final = ("ecrcache.engine.credential_health", "ecrcache.models.credential_health")
"""The credential health engine and its models: the reconcilers and the warm planner put state-change events on the
bus, whose ``source`` they imported from there."""
STATUS_MODELS: Final = ("ecrcache.models.status",)
"""The rules' status models: the warm functions announce a finished run, whose module named a condition type from
there."""
OPENAPI_MODELS: Final = ("aws_lambda_powertools.event_handler.openapi.models",)
"""Powertools' OpenAPI models: only the API's description (``/v1/openapi.json``, ``/v1/docs``) uses them, imported on
first use; the requests' validation does not."""

NOT_IMPORTED: Final[dict[str, tuple[str, ...]]] = {
    "api": (
        *WARM_INPUTS,
        *ECR_ADAPTER[:1],
        "ecrcache.services.credential_health",
        "ecrcache.engine.warm_pull",
        *OPENAPI_MODELS,
        # PyYAML and the core-schema reader: imported by a YAML body or a YAML answer only (ecrcache.parsing_yaml).
        "yaml",
        "ecrcache.parsing_yaml",
    ),
    "credential_health": (*WARM_INPUTS, *RULE_MODELS, *ECR_ADAPTER, *OTHER_WORK),
    "pull_stats": (*WARM_INPUTS, *RULE_MODELS, *ECR_ADAPTER),
    "reconciler": (*WARM_INPUTS, "ecrcache.http.app", "ecrcache.models.warm_run", "ecrcache.ports", *CREDENTIAL_HEALTH),
    # The shard worker: the reconciler's planning and apply, none of its triggers, forwarders, rotations or queue.
    "reconcile_worker": (
        *WARM_INPUTS,
        "ecrcache.http.app",
        "ecrcache.models.warm_run",
        "ecrcache.services.triggers",
        "ecrcache.services.forwarders",
        "ecrcache.services.rotation_schedules",
        "ecrcache.adapters.shard_queue",
        "aws_lambda_powertools.utilities.idempotency",
        *CREDENTIAL_HEALTH,
    ),
    "rotator": (*WARM_INPUTS, *RULE_MODELS, *ECR_ADAPTER, *OTHER_WORK),
    "warm_planner": (
        *RULE_MODELS[:3],
        "ecrcache.services.credential_health",
        *ECR_ADAPTER,
        *CREDENTIAL_HEALTH,
        *STATUS_MODELS,
    ),
    "warm_worker": (*WARM_INPUTS, *RULE_MODELS, *ECR_ADAPTER, *STATUS_MODELS),
}
PROBE: Final = "import json, sys\nimport app\nprint(json.dumps(sorted(sys.modules)))"


def _probe(name: str, code: str) -> list[str]:
    """The JSON list ``code`` prints last, run in a fresh interpreter in the function's directory and environment."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=FUNCTIONS / name,
        env=child_env(FUNCTIONS / name),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_every_function_is_checked() -> None:
    assert sorted(NOT_IMPORTED) == sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py"))


@pytest.mark.parametrize("name", sorted(NOT_IMPORTED))
def test_a_handler_module_does_not_import_what_was_made_lazy(name: str) -> None:
    loaded = set(_probe(name, PROBE))
    assert "ecrcache.services" in loaded  # the probe imported the handler, which imported the layer
    assert sorted(m for m in NOT_IMPORTED[name] if m in loaded) == []


SETTINGS_PROBE: Final = (
    "import json\nimport app\nfrom pydantic import BaseModel\nfrom ecrcache import config\n"
    "print(json.dumps(sorted(n for n, c in vars(config).items() if isinstance(c, type) and issubclass(c, BaseModel)"
    " and c.__module__ == config.__name__ and c.__pydantic_complete__)))"
)


@pytest.mark.parametrize("name", sorted(NOT_IMPORTED))
def test_a_cold_start_builds_only_its_own_settings_model(name: str) -> None:
    """``ecrcache.config``'s settings models are built on first use: a function builds the one it reads, not the
    mixins or the other functions' settings (each a pydantic model whose schema costs a build)."""
    built = _probe(name, SETTINGS_PROBE)
    assert len(built) == 1, built

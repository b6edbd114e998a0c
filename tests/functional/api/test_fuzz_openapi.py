"""Fuzz every operation of the served OpenAPI spec against the api ``lambda_handler`` in-process.

Schemathesis generates requests from the spec (valid ones, and invalid ones in negative mode); each
goes through ``lambda_handler`` as an API Gateway event, and every response is checked with
schemathesis's own checks: no server error, a documented status code, a documented content type, a
body matching the documented schema. Hypothesis is derandomized with 60 examples per operation (35
valid, 25 invalid), so the run is the same on every machine. Each operation starts from the same
seeded state.

Then every route that takes a body gets hostile bodies schemathesis does not write
(``fuzz_support.hostile_requests``): huge integers, deep nesting, duplicate keys, YAML 1.1 spellings,
tags and aliases, odd and wrong content types, base64 bodies; none may get a 5xx, every error must be
the one error shape. A run sends at least 2,000 generated requests (a test counts them).

A second part sends realistic requests (the ones a user makes: create, update, delete, the documented
errors) and validates each response the same way, because random input rarely reaches the success paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import moto
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient
from tests.functional.api.fuzz_support import (
    BASE_URL,
    BODY_ROUTES,
    Observation,
    check_failures,
    error_shape_problem,
    event_for,
    hostile_requests,
    invoke,
    load_schema,
    reset_state,
    to_response,
)
from tests.functional.conftest import STATE_TABLE_NAME

pytestmark = pytest.mark.functional

SCHEMA = load_schema()
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# 60 requests per operation: valid ones first, then invalid ones; then hostile bodies on each body route.
EXAMPLES = {GenerationMode.POSITIVE: 35, GenerationMode.NEGATIVE: 25}
HOSTILE_EXAMPLES = 140
MIN_CASES_PER_RUN = 2_000
SPEC_CHECKS = (status_code_conformance, content_type_conformance, response_schema_conformance)
FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

# Where the generated spec and the code disagree (none today; add "METHOD /path": "BUG: ..." entries).
SPEC_BUGS: dict[str, str] = {}
SERVER_ERROR_BUGS: dict[str, str] = {}


@dataclass
class FuzzRun:
    """Runs each (operation, mode) once, on demand, and keeps what it saw."""

    context: FakeLambdaContext = field(default_factory=FakeLambdaContext)
    seen: dict[tuple[str, GenerationMode | str], list[Observation]] = field(default_factory=dict)

    def observations(self, label: str, mode: GenerationMode) -> list[Observation]:
        if (label, mode) not in self.seen:
            self.seen[label, mode] = self._fuzz(label, mode)
        return self.seen[label, mode]

    def _fuzz(self, label: str, mode: GenerationMode) -> list[Observation]:
        reset_state(STATE_TABLE_NAME)
        seed(ApiClient(self.context))
        observed: list[Observation] = []

        @settings(FUZZ_SETTINGS, max_examples=EXAMPLES[mode])
        @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = invoke(case, self.context)
            failures = check_failures(case, response, (not_a_server_error, *SPEC_CHECKS))
            if problem := error_shape_problem(response.status_code, response.content):
                failures["error_shape"] = problem
            request = f"{response.request.method} {response.request.url} {response.request.body!r:.300}"
            observed.append(Observation(request, response.status_code, failures))

        run()
        return observed

    def hostile(self, label: str) -> list[Observation]:
        if (label, "hostile") not in self.seen:
            self.seen[label, "hostile"] = self._hostile(label)
        return self.seen[label, "hostile"]

    def _hostile(self, label: str) -> list[Observation]:
        from functions.api.app import lambda_handler

        reset_state(STATE_TABLE_NAME)
        seed(ApiClient(self.context))
        method, path, base = BODY_ROUTES[label]
        observed: list[Observation] = []

        @settings(FUZZ_SETTINGS, max_examples=HOSTILE_EXAMPLES)
        @given(request=hostile_requests(base))
        def run(request: Any) -> None:
            out = lambda_handler(request.event(method, path), self.context)
            status, content = out["statusCode"], (out.get("body") or "").encode()
            failures = {"not_a_server_error": f"{status}: {content[:300]!r}"} if status >= 500 else {}
            if problem := error_shape_problem(status, content):
                failures["error_shape"] = problem
            observed.append(Observation(f"{method} {path} {request!r:.300}", status, failures))

        run()
        return observed

    def total(self) -> int:
        return sum(len(o) for o in self.seen.values())


def seed(api: ApiClient) -> None:
    """Something for reads, deletes and references to find: the names the spec's examples use."""
    api.put("/v1/credentials/docker-hub", {"upstream_kind": "docker-hub", "username": "ci-bot", "token": "t0k3n"})
    api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "docker-hub"})
    api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    api.put("/v1/warm-sets/base-images", {"rule": "docker-hub", "images": ["library/node:18-alpine"]})


@pytest.fixture(scope="module")
def fuzz() -> Iterator[FuzzRun]:
    """The embedded AWS (moto and its ECR extension) as the ``aws`` fixture sets it up, for the whole module."""
    from devstack.aws import install

    install()
    with moto.mock_aws():
        yield FuzzRun()


def report(observations: list[Observation], *checks: str) -> str:
    failed = [o for o in observations if any(c in o.failures for c in checks)]
    lines = [f"{len(failed)} of {len(observations)} responses failed {', '.join(checks)}:"]
    for o in failed[:3]:
        lines.append(f"--- {o.status} for {o.request}")
        lines.extend(o.failures[c][:1500] for c in checks if c in o.failures)
    return "\n".join(lines)


def server_error_param(label: str, mode: GenerationMode) -> Any:
    reason = SERVER_ERROR_BUGS.get(label)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(label, mode, id=f"{label}-{mode.value}", marks=marks)


@pytest.mark.parametrize(("label", "mode"), [server_error_param(label, mode) for label in OPERATIONS for mode in MODES])
def test_fuzz_never_answers_with_a_server_error(fuzz: FuzzRun, label: str, mode: GenerationMode) -> None:
    # GIVEN a seeded state
    # WHEN the generated requests for the operation are sent
    observations = fuzz.observations(label, mode)
    # THEN none gets a 5xx, and every error is the one error shape
    assert observations
    assert not any("not_a_server_error" in o.failures for o in observations), report(observations, "not_a_server_error")
    assert not any("error_shape" in o.failures for o in observations), report(observations, "error_shape")


@pytest.mark.parametrize("label", sorted(BODY_ROUTES))
def test_hostile_bodies_never_get_a_server_error(fuzz: FuzzRun, label: str) -> None:
    # GIVEN a seeded state
    # WHEN generated hostile bodies (huge integers, deep nesting, duplicate keys, odd YAML, odd content types)
    # are sent to a route that takes a body
    observations = fuzz.hostile(label)
    # THEN none gets a 5xx, and every error is the one error shape
    assert len(observations) == HOSTILE_EXAMPLES
    assert not any("not_a_server_error" in o.failures for o in observations), report(observations, "not_a_server_error")
    assert not any("error_shape" in o.failures for o in observations), report(observations, "error_shape")
    statuses = {o.status for o in observations}
    assert {400, 415, 422} <= statuses, statuses  # the hostile bodies do reach each kind of refusal


def test_hostile_bodies_cover_every_route_with_a_body() -> None:
    with_body = {label for label, op in OPERATIONS.items() if "requestBody" in op.definition.raw}
    assert set(BODY_ROUTES) == with_body


def test_a_fuzz_run_sends_at_least_2000_generated_requests(fuzz: FuzzRun) -> None:
    # GIVEN every operation fuzzed in both modes, and every body route with hostile bodies
    for label in OPERATIONS:
        for mode in MODES:
            fuzz.observations(label, mode)
    for label in BODY_ROUTES:
        fuzz.hostile(label)
    # WHEN the requests are counted
    # THEN there are at least 2,000 of them (each checked by the tests above: 0 server errors allowed)
    assert fuzz.total() >= MIN_CASES_PER_RUN, fuzz.total()


def conformance_param(label: str, mode: GenerationMode) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=SPEC_BUGS[label])] if label in SPEC_BUGS else []
    return pytest.param(label, mode, id=f"{label}-{mode.value}", marks=marks)


@pytest.mark.parametrize(("label", "mode"), [conformance_param(label, mode) for label in OPERATIONS for mode in MODES])
def test_fuzz_responses_conform_to_the_spec(fuzz: FuzzRun, label: str, mode: GenerationMode) -> None:
    # GIVEN a seeded state
    # WHEN the generated requests for the operation are sent
    observations = fuzz.observations(label, mode)
    # THEN each status code, content type and body is the one the spec documents
    # (success statuses are left to the realistic requests below, which reach every one of them on purpose;
    # random input reaches them by chance, so an xfail for them here would be flaky; 5xx are the test above's)
    for o in observations:
        if 200 <= o.status < 300 or o.status >= 500:
            o.failures.pop("status_code_conformance", None)
    names = [c.__name__ for c in SPEC_CHECKS]
    assert not any(n in o.failures for o in observations for n in names), report(observations, *names)


def test_fuzz_covers_every_route_of_the_api() -> None:
    # GIVEN the resolver's routes (the docs and the spec itself are not API operations)
    from functions.api.app import app

    routes = {
        f"{route.method} {route.openapi_path}"
        for route in [*app._static_routes, *app._dynamic_routes]
        if route.include_in_schema
    }
    # WHEN they are compared with the operations the spec describes
    # THEN every route is in the spec, so every route is fuzzed
    assert routes == set(OPERATIONS)
    assert {"GET /v1/rules", "PUT /v1/rules/{prefix}", "PUT /v1/desired-state", "GET /v1/history"} <= routes


# -- realistic requests -------------------------------------------------------------------------------

HUB = {"upstream_kind": "docker-hub", "username": "ci-bot"}
WARM = {"rule": "quay", "images": ["coreos/etcd:v3.5.0"]}
DOC = {"version": 1, "rules": {"k8s": {"upstream_kind": "k8s"}}}


@dataclass(frozen=True)
class Step:
    """One realistic request, the operation it exercises and the status it must get."""

    name: str
    label: str
    method: str
    path: str
    status: int
    body: Any = None
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    path_parameters: dict[str, str] = field(default_factory=dict)


# Run in this order on one state: each step relies on the ones before it.
STEPS = [
    Step("list rules", "GET /v1/rules", "GET", "/v1/rules", 200),
    Step("create rule", "PUT /v1/rules/{prefix}", "PUT", "/v1/rules/quay", 201, body={"upstream_kind": "quay"}),
    Step(
        "update rule",
        "PUT /v1/rules/{prefix}",
        "PUT",
        "/v1/rules/quay",
        200,
        body={"upstream_kind": "quay", "description": "q"},
    ),
    Step("get rule", "GET /v1/rules/{prefix}", "GET", "/v1/rules/quay", 200),
    Step("get missing rule", "GET /v1/rules/{prefix}", "GET", "/v1/rules/nope", 404),
    Step("invalid rule", "PUT /v1/rules/{prefix}", "PUT", "/v1/rules/quay", 422, body={"upstream_kind": "nope"}),
    Step(
        "stale rule",
        "PUT /v1/rules/{prefix}",
        "PUT",
        "/v1/rules/quay",
        412,
        body={"upstream_kind": "quay"},
        headers={"If-Match": '"9"'},
    ),
    Step(
        "rule as text",
        "PUT /v1/rules/{prefix}",
        "PUT",
        "/v1/rules/quay",
        415,
        raw_body="upstream_kind=quay",
        headers={"Content-Type": "text/plain"},
    ),
    Step(
        "create credential",
        "PUT /v1/credentials/{name}",
        "PUT",
        "/v1/credentials/hub",
        201,
        body={**HUB, "token": "t1"},
    ),
    Step(
        "update credential",
        "PUT /v1/credentials/{name}",
        "PUT",
        "/v1/credentials/hub",
        200,
        body={**HUB, "description": "d"},
    ),
    Step("get credential", "GET /v1/credentials/{name}", "GET", "/v1/credentials/hub", 200),
    Step("list credentials", "GET /v1/credentials", "GET", "/v1/credentials", 200),
    Step("create warm set", "PUT /v1/warm-sets/{name}", "PUT", "/v1/warm-sets/ws", 201, body=WARM),
    Step(
        "update warm set", "PUT /v1/warm-sets/{name}", "PUT", "/v1/warm-sets/ws", 200, body={**WARM, "description": "w"}
    ),
    Step("get warm set", "GET /v1/warm-sets/{name}", "GET", "/v1/warm-sets/ws", 200),
    Step("list warm sets", "GET /v1/warm-sets", "GET", "/v1/warm-sets", 200),
    Step("rule in use", "DELETE /v1/rules/{prefix}", "DELETE", "/v1/rules/quay", 409),
    Step("export json", "GET /v1/desired-state", "GET", "/v1/desired-state", 200),
    Step("export yaml", "GET /v1/desired-state", "GET", "/v1/desired-state", 200, query={"format": "yaml"}),
    Step("export bad format", "GET /v1/desired-state", "GET", "/v1/desired-state", 422, query={"format": "xml"}),
    Step("apply", "PUT /v1/desired-state", "PUT", "/v1/desired-state", 200, body=DOC),
    Step(
        "apply stale", "PUT /v1/desired-state", "PUT", "/v1/desired-state", 412, body=DOC, headers={"If-Match": '"1"'}
    ),
    Step("apply invalid", "PUT /v1/desired-state", "PUT", "/v1/desired-state", 422, body={"version": 2}),
    Step("history", "GET /v1/history", "GET", "/v1/history", 200, query={"limit": "2"}),
    Step("history bad token", "GET /v1/history", "GET", "/v1/history", 400, query={"next_token": "garbage!"}),
    Step("history bad limit", "GET /v1/history", "GET", "/v1/history", 422, query={"limit": "0"}),
    Step("delete warm set", "DELETE /v1/warm-sets/{name}", "DELETE", "/v1/warm-sets/ws", 204),
    Step("delete rule", "DELETE /v1/rules/{prefix}", "DELETE", "/v1/rules/quay", 204),
    Step("delete credential", "DELETE /v1/credentials/{name}", "DELETE", "/v1/credentials/hub", 204),
    Step("delete missing", "DELETE /v1/credentials/{name}", "DELETE", "/v1/credentials/hub", 404),
    Step("plan", "GET /v1/plan", "GET", "/v1/plan", 200),
    Step("reconcile", "POST /v1/reconcile", "POST", "/v1/reconcile", 202, body={"deep": False}),
    Step("status", "GET /v1/status", "GET", "/v1/status", 200),
    Step("rule status missing", "GET /v1/rules/{prefix}/status", "GET", "/v1/rules/quay/status", 404),
    Step("run missing", "GET /v1/runs/{run_id}", "GET", "/v1/runs/nope", 404),
    Step("import dry run", "POST /v1/import", "POST", "/v1/import", 200, body={}, query={"dryRun": "true"}),
]

# Realistic steps whose answer disagrees with the spec (none today).
STEP_BUGS: dict[str, str] = {}


@dataclass
class Exchange:
    step: Step
    request: requests.PreparedRequest
    response: Any


@pytest.fixture(scope="module")
def exchanges(fuzz: FuzzRun) -> dict[str, Exchange]:
    """Every step sent once, in order, on a fresh state."""
    from functions.api.app import lambda_handler

    reset_state(STATE_TABLE_NAME)
    done: dict[str, Exchange] = {}
    for step in STEPS:
        headers = {"Accept": "application/json", **step.headers}
        if step.body is not None or step.raw_body is not None:
            headers.setdefault("Content-Type", "application/json")
        data = (
            step.raw_body if step.raw_body is not None else (json.dumps(step.body) if step.body is not None else None)
        )
        request = requests.Request(
            step.method, f"{BASE_URL}{step.path}", headers=headers, params=step.query, data=data
        ).prepare()
        done[step.name] = Exchange(
            step, request, to_response(lambda_handler(event_for(request), fuzz.context), request)
        )
    return done


def step_param(step: Step) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=STEP_BUGS[step.name])] if step.name in STEP_BUGS else []
    return pytest.param(step.name, id=step.name, marks=marks)


@pytest.mark.parametrize("name", [s.name for s in STEPS])
def test_api_answers_realistic_requests_as_designed(exchanges: dict[str, Exchange], name: str) -> None:
    # GIVEN the realistic requests sent in order
    exchange = exchanges[name]
    # WHEN one of them is looked at
    # THEN it got the status the API promises (so the conformance test below checks the right thing)
    assert exchange.response.status_code == exchange.step.status, exchange.response.content[:500]


@pytest.mark.parametrize("name", [step_param(s) for s in STEPS])
def test_api_conforms_to_the_spec_on_realistic_requests(exchanges: dict[str, Exchange], name: str) -> None:
    # GIVEN the realistic requests sent in order
    exchange = exchanges[name]
    operation = OPERATIONS[exchange.step.label]
    # WHEN the response is checked against the operation in the spec
    case = operation.Case(
        path_parameters=path_parameters(operation.path, exchange.step.path),
        query=exchange.step.query or None,
        headers=dict(exchange.step.headers) or None,
        **({"body": exchange.step.body, "media_type": "application/json"} if exchange.step.body is not None else {}),
    )
    failures = check_failures(case, exchange.response, (not_a_server_error, *SPEC_CHECKS))
    # THEN every check passes: documented status, content type and body schema
    assert not failures, "\n".join(f"{k}: {v[:1500]}" for k, v in failures.items())


def path_parameters(template: str, path: str) -> dict[str, str]:
    names = template.split("/")
    values = path.split("/")
    return {n[1:-1]: v for n, v in zip(names, values, strict=True) if n.startswith("{")}

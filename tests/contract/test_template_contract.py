"""template.yaml and the code agree: handlers, settings, auth, IAM scope, logs, layer, events, outputs."""

from __future__ import annotations

import ast
import importlib.resources
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel

import ecrcache
from devstack.local.template import SERVERLESS_FUNCTION
from ecrcache.config import (
    ApiSettings,
    CredentialHealthSettings,
    PullStatsSettings,
    ReconcilerSettings,
    ReconcileWorkerSettings,
    RotatorSettings,
    WarmPlannerSettings,
    WarmWorkerSettings,
)
from tests.template import ROOT, functions, load_template, resources

pytestmark = pytest.mark.contract

# Every function and the settings model its code reads: a new function is one line here.
FUNCTION_SETTINGS: dict[str, type[BaseModel]] = {
    "ApiFunction": ApiSettings,
    "ReconcilerFunction": ReconcilerSettings,
    "ReconcileWorkerFunction": ReconcileWorkerSettings,
    "PullStatsFunction": PullStatsSettings,
    "WarmPlannerFunction": WarmPlannerSettings,
    "WarmWorkerFunction": WarmWorkerSettings,
    "RotatorFunction": RotatorSettings,
    "CredentialHealthFunction": CredentialHealthSettings,
}

# Variables Globals.Function sets for every function (read by Powertools and pydantic, not by our settings).
GLOBAL_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "PYDANTIC_DISABLE_PLUGINS",
}

# ECR actions that take no resource ARN (the Service Authorization Reference lists no resource type
# for them): IAM only matches them with Resource "*". A statement may use "*" only for these.
REGISTRY_LEVEL_ACTIONS = frozenset(
    {
        "ecr:DescribePullThroughCacheRules",
        "ecr:CreatePullThroughCacheRule",
        "ecr:UpdatePullThroughCacheRule",
        "ecr:DeletePullThroughCacheRule",
        "ecr:ValidatePullThroughCacheRule",
        "ecr:DescribeRepositoryCreationTemplates",
        "ecr:CreateRepositoryCreationTemplate",
        "ecr:UpdateRepositoryCreationTemplate",
        "ecr:DeleteRepositoryCreationTemplate",
        "ecr:ListPullTimeUpdateExclusions",
        "ecr:RegisterPullTimeUpdateExclusion",
        "ecr:DeregisterPullTimeUpdateExclusion",
    }
)
# The DynamoDB stream mappings' ListStreams takes no resource ARN either (Service Authorization Reference, Amazon
# DynamoDB): alone on "*" in the stream functions' roles (tests/contract/test_stream_event_sources.py).
STREAM_LIST_ACTIONS = frozenset({"dynamodb:ListStreams"})
ANY_RESOURCE_ACTIONS = REGISTRY_LEVEL_ACTIONS | STREAM_LIST_ACTIONS

OUTPUTS = {
    "ApiUrl",
    "StateTableName",
    "StateTableStreamArn",
    "CoreLayerArn",
    "ReconcilerDlqUrl",
    "ReconcilerEventsQueueUrl",
    "ReconcilerEventsDlqUrl",
    "PullEventsDlqUrl",
    "ReconcileShardQueueUrl",
    "ReconcileShardDlqUrl",
    "WarmQueueUrl",
    "WarmDlqUrl",
    "WarmPlannerDlqUrl",
    "RotatorFunctionArn",
}

API_EVENTS = sorted((ROOT / "events" / "api").glob("*.json"))

FUNCTIONS = sorted(functions())


def _handler_file(properties: dict[str, Any]) -> Path:
    module = str(properties["Handler"]).rpartition(".")[0]
    return ROOT / str(properties["CodeUri"]) / (module.replace(".", "/") + ".py")


def _api_events(properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = properties.get("Events", {})
    return {name: event for name, event in events.items() if event["Type"] in {"Api", "HttpApi"}}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_statements() -> list[tuple[str, dict[str, Any]]]:
    """(owner, statement) for every inline IAM statement in the template."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, properties in functions().items():
        for policy in properties.get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:  # not a SAM policy template
                found += [(name, statement) for statement in _as_list(policy["Statement"])]
    for name, resource in resources().items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        elif resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            documents = [properties["PolicyDocument"]]
        else:
            continue
        found += [(name, statement) for document in documents for statement in _as_list(document["Statement"])]
    return found


def test_every_function_has_a_settings_model() -> None:
    # GIVEN the template's functions WHEN compared with the settings table above
    # THEN each one is listed, so the environment check below covers it
    assert set(functions()) == set(FUNCTION_SETTINGS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_handler_file_defines_lambda_handler(name: str) -> None:
    # GIVEN a function's CodeUri and Handler
    properties = functions()[name]
    handler_file = _handler_file(properties)

    # WHEN the handler module is parsed (not imported)
    assert (ROOT / properties["CodeUri"]).is_dir(), f"{name}: CodeUri {properties['CodeUri']} is not a directory"
    assert handler_file.is_file(), f"{name}: {handler_file.relative_to(ROOT)} does not exist"
    tree = ast.parse(handler_file.read_text(), filename=str(handler_file))

    # THEN it defines the handler function at module level
    handler = properties["Handler"].rpartition(".")[2]
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)} | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert handler in defined, f"{handler_file.relative_to(ROOT)} defines no {handler}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_code_imports_only_what_lambda_can_resolve(name: str) -> None:
    # GIVEN a function's code: in Lambda its CodeUri is the root (app.py is the top-level module
    # `app`), so `functions.<name>...` and relative imports resolve in tests but not in Lambda
    code_dir = ROOT / functions()[name]["CodeUri"]

    # WHEN every module is parsed
    bad = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted(code_dir.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if (isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("functions")))
        or (isinstance(node, ast.Import) and any(alias.name.startswith("functions") for alias in node.names))
    ]

    # THEN none imports the function package or relatively (shared code lives in the layer)
    assert bad == []


def test_globals_environment_holds_only_the_shared_powertools_settings() -> None:
    # GIVEN Globals.Function WHEN its environment is read
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]

    # THEN it is exactly the Powertools and pydantic settings every function shares
    assert set(variables) == GLOBAL_ENVIRONMENT


PLUGIN_PROBE = (
    "import importlib.metadata as metadata\n"
    "def scan(*args, **kwargs):\n"
    "    raise SystemExit('pydantic scanned the entry points')\n"
    "metadata.entry_points = scan\n"
    "from pydantic.plugin._loader import get_plugins\n"
    "print(list(get_plugins()))\n"
)
"""pydantic's plugin loader with the entry-point scan replaced by a failure: it exits if the loader scans."""


def test_pydantic_plugins_are_off_and_no_model_asks_for_one() -> None:
    # GIVEN the value every function gets
    value = load_template()["Globals"]["Function"]["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"]

    # WHEN pydantic's plugin loader runs with it, and without it
    def probe(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), **extra}
        return subprocess.run(
            [sys.executable, "-c", PLUGIN_PROBE], env=env, capture_output=True, text=True, check=False
        )

    off, default = probe({"PYDANTIC_DISABLE_PLUGINS": value}), probe({})

    # THEN with it pydantic loads no plugin and skips its scan of every distribution's entry points (which it makes
    # otherwise, at the first model of a cold start); no model of the layer sets plugin_settings (for a plugin)
    assert (off.returncode, off.stdout.strip()) == (0, "[]"), off.stderr
    assert default.returncode == 1
    assert "pydantic scanned the entry points" in default.stderr
    layer = Path(ecrcache.__file__).parent
    assert [p for p in layer.rglob("*.py") if "plugin_settings" in p.read_text(encoding="utf-8")] == []


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_environment_is_its_settings_model(name: str) -> None:
    # GIVEN a function's settings model and its environment in the template
    own = resources(SERVERLESS_FUNCTION)[name]["Properties"].get("Environment", {}).get("Variables", {})
    merged = functions()[name].get("Environment", {}).get("Variables", {})
    fields = {field.upper() for field in FUNCTION_SETTINGS[name].model_fields}

    # WHEN compared THEN the function sets exactly its model's fields, on top of the globals
    assert set(own) == fields
    assert set(merged) == fields | GLOBAL_ENVIRONMENT


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_has_a_log_group_with_retention(name: str) -> None:
    # GIVEN the template's log groups WHEN the function's own is looked up
    log_groups = [
        resource["Properties"]
        for resource in resources("AWS::Logs::LogGroup").values()
        if resource["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{name}}}"}
    ]

    # THEN there is exactly one, with the stack's retention
    assert len(log_groups) == 1, f"{name} has no /aws/lambda/${{{name}}} log group"
    assert log_groups[0].get("RetentionInDays") == {"Ref": "LogRetentionDays"}


def test_every_log_group_has_retention() -> None:
    # GIVEN every log group WHEN its retention is read THEN none keeps logs forever
    assert {
        name: resource["Properties"].get("RetentionInDays")
        for name, resource in resources("AWS::Logs::LogGroup").items()
        if resource["Properties"].get("RetentionInDays") != {"Ref": "LogRetentionDays"}
    } == {}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_runs_on_the_core_layer_runtime_and_architecture(name: str) -> None:
    # GIVEN a function and the core layer
    properties = functions()[name]
    layer = resources("AWS::Serverless::LayerVersion")["CoreLayer"]["Properties"]

    # WHEN compared THEN the function uses the layer, with a runtime and architecture it was built for
    assert {"Ref": "CoreLayer"} in properties["Layers"]
    assert properties["Runtime"] in layer["CompatibleRuntimes"]
    assert set(properties["Architectures"]) <= set(layer["CompatibleArchitectures"])
    assert properties["Tracing"] == "Active"


def test_every_rest_api_requires_iam_and_invokes_with_its_own_permission() -> None:
    # GIVEN the template's REST APIs
    apis = resources("AWS::Serverless::Api")
    assert apis

    # WHEN their Auth is read
    auth = {name: api["Properties"].get("Auth", {}) for name, api in apis.items()}

    # THEN every method defaults to SigV4 (AWS_IAM), and API Gateway invokes functions through their
    # resource policy (InvokeRole NONE) rather than with each caller's credentials (SAM's default)
    assert {name: a.get("DefaultAuthorizer") for name, a in auth.items()} == dict.fromkeys(apis, "AWS_IAM")
    assert {name: a.get("InvokeRole") for name, a in auth.items()} == dict.fromkeys(apis, "NONE")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_api_events_are_iam_authorised_methods_of_a_template_api(name: str) -> None:
    # GIVEN a function's API events
    apis = resources("AWS::Serverless::Api")
    events = _api_events(functions()[name])

    for event_name, event in events.items():
        properties = event["Properties"]
        # THEN each is a REST API event on an API of this template (no implicit, unauthenticated API)
        assert event["Type"] == "Api", f"{name}.{event_name}: only REST APIs carry AWS_IAM here"
        assert properties.get("RestApiId", {}).get("Ref") in apis, f"{name}.{event_name} has no RestApiId"
        # AND a method-level Auth may only restate AWS_IAM, never NONE
        assert properties.get("Auth", {}).get("Authorizer", "AWS_IAM") == "AWS_IAM", f"{name}.{event_name}"


def test_iam_statements_have_no_wildcard_action_or_any_resource() -> None:
    # GIVEN every inline IAM statement in the template
    statements = _policy_statements()
    assert statements, "no inline IAM statement found; the template parsing is off"

    # WHEN their actions and resources are read
    violations = [
        f"{owner}/{statement.get('Sid', '?')}: {problem}"
        for owner, statement in statements
        for problem in (
            *(f"action {action}" for action in _as_list(statement.get("Action", [])) if "*" in str(action)),
            *(
                f"resource {res}"
                for res in _as_list(statement.get("Resource", []))
                if res == "*" and not set(_as_list(statement.get("Action", []))) <= ANY_RESOURCE_ACTIONS
            ),
            *(["NotAction"] if "NotAction" in statement else []),
            *(["NotResource"] if "NotResource" in statement else []),
        )
    ]

    # THEN no action has a wildcard and no statement applies to every resource
    assert violations == []


def test_actions_on_any_resource_take_no_resource_type_in_the_service_authorization_reference() -> None:
    # GIVEN the Service Authorization Reference's actions, as cfn-lint bundles them (its IAM data)
    reference = json.loads(
        (importlib.resources.files("cfnlint") / "data" / "AdditionalSpecs" / "Policies.json").read_text()
    )
    # THEN each action allowed on "*" exists and lists no resource type (so "*" is the only Resource IAM matches)
    for action in sorted(ANY_RESOURCE_ACTIONS):
        service, name = action.split(":", 1)
        found = reference[service]["Actions"].get(name.lower())
        assert found is not None, f"{action} is not an action of {service}"
        assert not found.get("Resources"), f"{action} takes resource types {found['Resources']}: scope it"


def test_layer_requirements_are_the_project_runtime_dependencies() -> None:
    # GIVEN pyproject's runtime dependencies and the layer's requirements.txt
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "layers" / "core" / "requirements.txt").read_text().splitlines()
    layer = [line.split("#", 1)[0].strip() for line in lines]

    # WHEN compared THEN they pin exactly the same packages at the same versions
    assert sorted(requirement for requirement in layer if requirement) == sorted(project)


def test_api_sample_events_exist() -> None:
    # GIVEN events/api WHEN listed THEN there are events, named <verb>_<noun>.json
    assert API_EVENTS
    assert [
        p.name for p in API_EVENTS if not re.fullmatch(r"(get|put|post|patch|delete)_[a-z0-9_]+\.json", p.name)
    ] == []


@pytest.mark.parametrize("path", API_EVENTS, ids=lambda path: path.stem)
def test_api_sample_event_is_a_rest_proxy_event_of_this_api(path: Path) -> None:
    # GIVEN the paths the template routes to functions
    routes = {
        event["Properties"]["Path"] for properties in functions().values() for event in _api_events(properties).values()
    }

    # WHEN the sample event is read with Powertools' REST proxy event class
    event = APIGatewayProxyEvent(json.loads(path.read_text()))

    # THEN it is a request for a template route, by the method its name says, from an IAM caller
    assert event.resource in routes
    assert event.http_method == path.stem.split("_", 1)[0].upper()
    assert event.path.startswith("/v1/") or event.path == "/v1"
    if event.resource.endswith("{proxy+}"):
        assert event.path_parameters == {"proxy": event.path.removeprefix("/v1/")}
    assert event.request_context.stage == "prod"
    assert event.request_context.identity.user_arn == "arn:aws:iam::123456789012:user/alice"
    assert event.is_base64_encoded is False
    # AND its body, when it has one, is JSON
    if event.body is not None:
        json.loads(event.body)


def test_outputs_give_api_url_table_stream_and_layer() -> None:
    # GIVEN the template's outputs WHEN read
    outputs = load_template()["Outputs"]

    # THEN the ones e2e tests and operators use exist, and the URL ends at the API's /v1 root
    assert set(outputs) >= OUTPUTS
    assert outputs["ApiUrl"]["Value"]["Fn::Sub"].endswith("/${Stage}/v1")


def test_state_table_is_retained_recoverable_encrypted_and_streamed() -> None:
    # GIVEN the state table WHEN its settings are read
    table = resources("AWS::DynamoDB::Table")["StateTable"]
    properties = table["Properties"]

    # THEN deleting or replacing the stack keeps the data, and the data is protected and streamed
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# Alarms the credential health work added (issue 12): each notifies the alert topic. (The older DLQ alarms are
# routed there by issue 13.)
HEALTH_ALARMS = ("CredentialHealthDlqAlarm",)


@pytest.mark.parametrize("logical_id", HEALTH_ALARMS)
def test_credential_health_alarms_notify_the_alert_topic(logical_id: str) -> None:
    # GIVEN the alarm WHEN its actions are read THEN it goes into ALARM on the alert topic (the topic's ARN: Ref)
    alarm = resources("AWS::CloudWatch::Alarm")[logical_id]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]
    assert resources("AWS::SNS::Topic")["AlertTopic"]

"""The operations layer of the template against the code: one metrics namespace, every dead-letter queue alarmed,
every alarm to the alert topic, and the dashboard and alarms naming only metrics (and dimensions) the code emits;
the README's metric table lists exactly those metrics.

The code's metrics are read from its source: ``add_metric(name="X"``, ``count_by("X", dimension="d"`` and
``measure_by("X", dimension="d"``; the few names built from an enum (``f"Credential{state}"``) are expanded from
that enum here, and an f-string name this test does not know fails it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.local.template import PhysicalResource, Resolver
from ecrcache.models.credential_health import HealthState
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.rotation import RotationOutcome
from ecrcache.models.warm_run import Outcome
from tests.conftest import ROOT
from tests.template import load_template, resources

pytestmark = pytest.mark.contract

SOURCES = [*sorted((ROOT / "layers" / "core" / "ecrcache").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]
SERVICE_DIMENSION = "service"


def _pascal(value: str) -> str:
    return "".join(part.capitalize() for part in value.split("_"))


# f-string metric names -> the names they make (from the enums they format).
TEMPLATED = {
    "Credential{delivered.state.value}": {f"Credential{s.value}" for s in HealthState},
    "WarmImages{outcome.outcome.value.capitalize()}": {f"WarmImages{o.value.capitalize()}" for o in Outcome},
    "WarmImages{outcome.outcome.value.capitalize()}{_metric_suffix(outcome.failure_class)}": {
        # ImageOutcome: only a failed or skipped image has a failure_class
        f"WarmImages{o.value.capitalize()}{_pascal(c.value)}"
        for o in (Outcome.FAILED, Outcome.SKIPPED)
        for c in FailureClass
    },
    "Rotation{outcome.value.title().replace('_', '')}": {
        f"Rotation{o.value.title().replace('_', '')}" for o in RotationOutcome
    },
}


def emitted() -> dict[str, frozenset[str]]:
    """Metric name -> its dimensions, as the code publishes it."""
    found: dict[str, frozenset[str]] = {}
    for path in SOURCES:
        source = path.read_text()
        for name in re.findall(r'add_metric\(\s*name="(\w+)"', source):
            found[name] = frozenset({SERVICE_DIMENSION})
        for template in re.findall(r'(?:add_metric\(\s*name=|name = )f"([A-Z][^"]*)"', source):
            assert template in TEMPLATED, f"{path.name}: a metric name this test cannot expand: f{template!r}"
            found.update(dict.fromkeys(TEMPLATED[template], frozenset({SERVICE_DIMENSION})))
        for name, dimension in re.findall(r'(?:count_by|measure_by)\(\s*"(\w+)",\s*dimension="(\w+)"', source):
            found[name] = frozenset({SERVICE_DIMENSION, dimension})
    return found


def _walk(node: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    yield key, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def dead_letter_queues() -> set[str]:
    """Every queue the template names as a dead-letter target (redrive policies, OnFailure destinations, rules'
    and schedules' DeadLetterConfig)."""
    found = set()
    for key, node in _walk(load_template()["Resources"]):
        if key in {"deadLetterTargetArn", "Destination", "DeadLetterConfig"} and isinstance(node, dict):
            ref = node.get("Fn::GetAtt") or node.get("Arn", {}).get("Fn::GetAtt")
            if ref and resources().get(ref[0], {}).get("Type") == "AWS::SQS::Queue":
                found.add(ref[0])
    return found


def alarms() -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in resources("AWS::CloudWatch::Alarm").items()}


def namespace() -> str:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "ecrcache"  # the service dimension's value below
    return str(variables["POWERTOOLS_METRICS_NAMESPACE"])


def alarm_metrics(props: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of an alarm: its single metric or its metric math's metrics."""
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], {d["Name"]: d["Value"] for d in props.get("Dimensions", [])})]
    out = []
    for query in props["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            out.append((metric["Namespace"], metric["MetricName"], dims))
    return out


def dashboard() -> tuple[dict[str, Any], str]:
    [resource] = resources("AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    board: dict[str, Any] = json.loads(re.sub(r"\$\{[^}]+\}", "SUBSTITUTED", body))
    return board, body


def test_the_code_emits_metrics_the_test_can_read() -> None:
    # The reading cannot come back empty and pass everything below vacuously.
    metrics = emitted()
    assert {"ReconcileRuns", "RulesTerminal", "WarmImagesFailed", "CredentialInvalid", "PullEventsCounted"} <= set(
        metrics
    )
    assert metrics["ApiRequests"] == {"service", "status_class"}
    assert metrics["CredentialDaysToExpiry"] == {"service", "credential"}


def test_every_dead_letter_queue_has_an_alarm_to_the_alert_topic() -> None:
    queues = dead_letter_queues()
    assert queues == {name for name in resources("AWS::SQS::Queue") if name.endswith("Dlq")}
    assert len(queues) >= 6
    alarmed = {
        props["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for props in alarms().values()
        if props.get("Namespace") == "AWS/SQS" and props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert queues <= alarmed


def test_every_alarm_notifies_the_alert_topic() -> None:
    assert len(alarms()) >= 11
    for name, props in alarms().items():
        assert props.get("AlarmActions") == [{"Ref": "AlertTopic"}], name


def test_the_alarms_cover_the_operators_questions() -> None:
    named = {metric for props in alarms().values() for _, metric, _ in alarm_metrics(props)}
    assert {
        "ReconcileFailed",
        "ReconcileRegionsFailed",
        "RuleTerminalMinutes",
        "CredentialInvalid",
        "CredentialExpiring",
        "WarmImagesFailed",
        "UpstreamRateLimited",
    } <= named
    terminal = alarms()["RuleTerminalAlarm"]
    assert terminal["Threshold"] == {"Ref": "TerminalAlarmMinutes"}
    assert "TerminalAlarmMinutes" in load_template()["Parameters"]


def test_the_alarms_name_only_metrics_the_code_emits() -> None:
    code, ns = emitted(), namespace()
    for name, props in alarms().items():
        for metric_namespace, metric, dimensions in alarm_metrics(props):
            if metric_namespace == "AWS/SQS":
                continue
            assert metric_namespace == ns, name
            assert metric in code, f"{name}: {metric} is not emitted by the code"
            assert set(dimensions) == code[metric], f"{name}: {metric} is published with {sorted(code[metric])}"
            assert dimensions[SERVICE_DIMENSION] == "ecrcache"


def _dashboard_metrics(board: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    for widget in board["widgets"]:
        if widget["type"] != "metric":
            continue
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # a SEARCH expression: {namespace,dims...} MetricName="X"
                found = re.fullmatch(r"SEARCH\('\{([^}]+)\} MetricName=\"(\w+)\"', '\w+', \d+\)", row[0]["expression"])
                assert found, row[0]["expression"]
                ns, *dims = found.group(1).split(",")
                yield ns, found.group(2), dict.fromkeys(dims, "*")
                continue
            plain = [part for part in row if not isinstance(part, dict)]
            yield plain[0], plain[1], dict(zip(plain[2::2], plain[3::2], strict=True))


def test_the_dashboard_parses_and_names_only_metrics_the_code_emits() -> None:
    board, _ = dashboard()
    code, ns = emitted(), namespace()
    named = list(_dashboard_metrics(board))
    assert len(named) >= 40
    for metric_namespace, metric, dimensions in named:
        if metric_namespace == "AWS/SQS":
            assert set(dimensions) == {"QueueName"}
            continue
        assert metric_namespace == ns
        assert metric in code, f"the dashboard names {metric}, which the code does not emit"
        assert set(dimensions) == code[metric], f"{metric} is published with {sorted(code[metric])}"


def test_the_dashboard_answers_the_operators_questions() -> None:
    board, body = dashboard()
    titles = " ".join(w["properties"].get("markdown", "") for w in board["widgets"] if w["type"] == "text")
    for question in (
        "Are rules synced?",
        "Are credentials healthy?",
        "What is warming doing?",
        "Is the deep resync keeping up?",
        "What failed and why?",
    ):
        assert question in titles
    # Its alarm widget shows every alarm; its DLQ widget every dead-letter queue; its log queries name functions.
    assert set(re.findall(r"\$\{(\w+)\.Arn\}", body)) == set(alarms())
    # ... and the shard queue's depth and age (is the deep resync's fan-out keeping up?)
    assert set(re.findall(r"\$\{(\w+)\.QueueName\}", body)) == dead_letter_queues() | {"ReconcileShardQueue"}
    functions = set(resources("AWS::Serverless::Function"))
    logged = set(re.findall(r"/aws/lambda/\$\{(\w+)\}", body))
    assert logged == functions
    assert sum(1 for w in board["widgets"] if w["type"] == "log") >= 2


def test_the_readme_documents_every_metric_with_its_dimensions() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- metrics:start -->", 1)[1].split("<!-- metrics:end -->", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    documented = {name: frozenset(re.findall(r"`(\w+)`", dims)) for name, dims in rows}
    assert documented == emitted()


@pytest.mark.parametrize(
    ("partition", "region", "console"),
    [
        ("aws", "eu-west-1", "console.aws.amazon.com"),
        ("aws-cn", "cn-north-1", "console.amazonaws.cn"),
        ("aws-us-gov", "us-gov-west-1", "console.amazonaws-us-gov.com"),
    ],
)
def test_the_dashboard_url_names_the_console_of_the_stacks_partition(partition: str, region: str, console: str) -> None:
    """Each partition's AWS Management Console has its own host (China: console.amazonaws.cn; GovCloud (US):
    console.amazonaws-us-gov.com); a commercial link from a China or GovCloud stack leads nowhere."""
    template = load_template()
    dashboard_ = PhysicalResource(ref="stack-ecrcache")
    resolver = Resolver(
        template,
        {"OperationsDashboard": dashboard_},
        pseudo={"AWS::Region": region, "AWS::Partition": partition, "AWS::AccountId": "1", "AWS::StackName": "s"},
    )
    url = resolver.resolve(template["Outputs"]["DashboardUrl"]["Value"])
    assert url == f"https://{console}/cloudwatch/home?region={region}#dashboards:name=stack-ecrcache"

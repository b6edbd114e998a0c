"""Grants scoped to what uses them.

* Queue policies that let EventBridge send to a queue allow exactly the rules that send to it (as a target
  or as the rule's dead-letter queue), and only from this account: no rule of another stack or account can
  put messages into the controller's queues.
* The warm planner reads credential secrets in the stack's Region only: a credential has one secret, which
  the API keeps there (``SecretsManagerStore`` on the function's own Region), and the planner's Secrets
  Manager client is its own Region's (``OciUpstreamRegistry``).
* ECR repository grants name every Region (``ecr:*:<account>:repository/*``): a rule's ``regions`` may name
  any Region, and its cached repositories there are read, configured and pulled through by the same roles.
* The rotator moves the staging labels of credential secrets in the stack's Region only (Secrets Manager
  invokes a secret's rotation function in the secret's Region), and only Secrets Manager of this account
  may invoke it.

The rules of functions' ``Schedule`` and ``EventBridgeRule`` events are made by the SAM transform, named
``<function logical id><event name>`` (SAM "Generated AWS CloudFormation resources"); the last test checks
that naming with SAM's own translator (the tool venv's), so a policy never names a rule that does not exist.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.local.template import SERVERLESS_FUNCTION
from tests.contract.tools import sam_transformed
from tests.template import functions, resources

pytestmark = pytest.mark.contract

EVENTS_PRINCIPAL = "events.amazonaws.com"
SAM_RULE_EVENTS = frozenset({"Schedule", "EventBridgeRule", "CloudWatchEvent"})


def _named(value: Any) -> str | None:
    """The logical id a ``!GetAtt X.Arn`` or ``!Ref X`` names (``None``: neither)."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def senders() -> dict[str, set[str]]:
    """Queue logical id -> the rules (logical ids, SAM's generated ones included) that send to it."""
    found: dict[str, set[str]] = {}
    for name, rule in resources("AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            for arn in (target.get("Arn"), target.get("DeadLetterConfig", {}).get("Arn")):
                if (queue := _named(arn)) is not None:
                    found.setdefault(queue, set()).add(name)
    for function, resource in resources(SERVERLESS_FUNCTION).items():
        for event, spec in (resource["Properties"].get("Events") or {}).items():
            if spec["Type"] in SAM_RULE_EVENTS:
                queue = _named(spec["Properties"].get("DeadLetterConfig", {}).get("Arn"))
                if queue is not None:
                    found.setdefault(queue, set()).add(f"{function}{event}")
    return {
        queue: rules for queue, rules in found.items() if resources().get(queue, {}).get("Type") == "AWS::SQS::Queue"
    }


def eventbridge_statements() -> list[tuple[str, dict[str, Any]]]:
    """(policy logical id, statement) of every queue-policy statement granting EventBridge."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, policy in resources("AWS::SQS::QueuePolicy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if EVENTS_PRINCIPAL in _as_list(statement.get("Principal", {}).get("Service")):
                out.append((name, statement))
    return out


def test_every_queue_eventbridge_sends_to_allows_exactly_its_rules() -> None:
    statements = eventbridge_statements()
    for queue, rules in senders().items():
        granting = [(name, s) for name, s in statements if queue in {_named(r) for r in _as_list(s["Resource"])}]
        assert granting, f"no queue policy lets EventBridge send to {queue} (rules {sorted(rules)})"
        for name, statement in granting:
            allowed = {
                _named(a) for a in _as_list(statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn"))
            }
            queues = {_named(r) for r in _as_list(statement["Resource"])}
            expected = set().union(*(senders().get(str(q), set()) for q in queues))
            assert allowed == expected, (
                f"{name}: aws:SourceArn {sorted(map(str, allowed))} != senders {sorted(expected)}"
            )


def test_every_eventbridge_grant_is_limited_to_this_accounts_rules() -> None:
    statements = eventbridge_statements()
    assert {name for name, _ in statements} >= {"ReconcilerDlqPolicy", "WarmPlannerDlqPolicy", "PullEventsQueuePolicy"}
    for name, statement in statements:
        condition = statement.get("Condition", {})
        source_arns = _as_list(condition.get("ArnEquals", {}).get("aws:SourceArn"))
        assert source_arns and all(_named(a) for a in source_arns), f"{name}: no aws:SourceArn of our own rules"


def test_the_rules_a_policy_names_are_the_ones_the_sam_transform_makes() -> None:
    transformed = {k for k, v in sam_transformed()["Resources"].items() if v["Type"] == "AWS::Events::Rule"}
    named = set().union(*senders().values())
    assert named <= transformed, f"rules named but not made by SAM: {sorted(named - transformed)}"


def test_the_warm_planner_reads_credential_secrets_in_the_stack_region_only() -> None:
    statements = functions()["WarmPlannerFunction"]["Policies"][0]["Statement"]
    [secrets] = [s for s in statements if "secretsmanager:GetSecretValue" in _as_list(s["Action"])]
    assert _as_list(secrets["Action"]) == ["secretsmanager:GetSecretValue"]
    assert secrets["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:ecr-pullthroughcache/*"
    }


def test_the_rotator_rotates_credential_secrets_of_the_stack_region_only_and_writes_no_desired_state() -> None:
    # Secrets Manager invokes a secret's rotation function in the secret's Region; replicas follow their primary.
    statements = functions()["RotatorFunction"]["Policies"][0]["Statement"]
    [secrets] = [s for s in statements if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))]
    assert secrets["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:ecr-pullthroughcache/*"
    }
    [table] = [s for s in statements if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))]
    assert set(_as_list(table["Action"])) == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"}


def test_only_secrets_manager_of_this_account_may_invoke_the_rotator() -> None:
    [permission] = [
        r["Properties"]
        for r in resources("AWS::Lambda::Permission").values()
        if _named(r["Properties"]["FunctionName"]) == "RotatorFunction"
    ]
    assert (permission["Principal"], permission["Action"]) == ("secretsmanager.amazonaws.com", "lambda:InvokeFunction")
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def _resource_texts(resource: Any) -> list[str]:
    items = resource if isinstance(resource, list) else [resource]
    return [str(item.get("Fn::Sub", item)) if isinstance(item, dict) else str(item) for item in items]


def test_ecr_repository_grants_name_every_region_a_rule_may_name_and_this_account_only() -> None:
    # GIVEN every function statement that grants ECR actions on repositories
    found = 0
    for logical_id, function in functions().items():
        for policy in function.get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if not any(str(a).startswith("ecr:") for a in actions):
                    continue
                for text in _resource_texts(statement["Resource"]):
                    if ":repository/" in text:
                        found += 1
                        # THEN each names any Region and this account (a rule in eu-west-1 is served too)
                        assert text == "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*", (logical_id, text)
    assert found >= 3  # the API's reads, the reconciler's settings, the warm worker's pulls

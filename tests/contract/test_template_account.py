"""What a real account needs that the local stack (which enforces no IAM) cannot show (issue 13).

* **Service-linked roles.** ECR creates ``AWSServiceRoleForECRPullThroughCache`` (trusting
  ``pullthroughcache.ecr.amazonaws.com``) on an account's first pull-through cache rule and
  ``AWSServiceRoleForECRTemplate`` (trusting ``ecr.amazonaws.com``) on its first creation template, as the
  caller: ``iam:CreateServiceLinkedRole`` is a dependent action of ``ecr:CreatePullThroughCacheRule`` and
  ``ecr:Create/UpdateRepositoryCreationTemplate`` (Service Authorization Reference, Amazon ECR; ECR User Guide,
  "Using service-linked roles"). A service-linked role's ARN is
  ``role/aws-service-role/<service principal>/<role name>`` (IAM User Guide, "Service-linked role permissions",
  which conditions the grant on ``iam:AWSServiceName``).
* **Creation templates' dependent actions.** ``ecr:CreateRepository``, ``ecr:PutLifecyclePolicy``,
  ``ecr:SetRepositoryPolicy`` and ``iam:PassRole`` (for ``customRoleArn``) (Service Authorization Reference;
  ECR User Guide, "Creating a repository creation template", IAM permissions).
* **Passing roles.** ``iam:PassRole`` only on roles under the ``EcrRolePath`` parameter's path and only to ECR
  (``iam:PassedToService``; IAM User Guide, "Granting a user permissions to pass a role to an AWS service").
* **Own writes.** The reconciler's own ECR writes come back as CloudTrail events; its EventBridge pattern drops
  them (every session of its role: ``arn:aws:sts::<account>:assumed-role/<role>/<session>``, CloudTrail User Guide,
  "CloudTrail userIdentity element") with the matcher the local runner uses (moto's), as EventBridge documents
  ``anything-but`` / ``prefix`` / ``exists`` / ``$or`` ("Comparison operators").
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from devstack.local.filters import compile_pattern
from ecrcache.services.triggers import own_role_prefix
from tests.contract.test_iam_matches_code import adapter_operations, allowed_actions, required_actions
from tests.contract.test_local_wiring import ACCOUNT, REGION, STACK, local_resolver
from tests.contract.tools import sam_transformed
from tests.template import functions, load_template

pytestmark = pytest.mark.contract

PTC_SLR = (
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/pullthroughcache.ecr.amazonaws.com/"
    "AWSServiceRoleForECRPullThroughCache"
)
TEMPLATE_SLR = (
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/ecr.amazonaws.com/AWSServiceRoleForECRTemplate"
)
# The ECR calls that make ECR create a service-linked role, or pass a role, on the caller's behalf.
SLR_CALLS = frozenset(
    {"ecr:CreatePullThroughCacheRule", "ecr:CreateRepositoryCreationTemplate", "ecr:UpdateRepositoryCreationTemplate"}
)
ROLE_PASSING_CALLS = SLR_CALLS | {"ecr:UpdatePullThroughCacheRule"}
TEMPLATE_CALLS = frozenset({"ecr:CreateRepositoryCreationTemplate", "ecr:UpdateRepositoryCreationTemplate"})
REPOSITORY_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in function.get("Policies", [])
        if isinstance(policy, dict)
        for statement in policy.get("Statement", [])
    ]


def _granting(function: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _statements(function) if s.get("Effect") == "Allow" and action in _as_list(s["Action"])]


def _calls(logical_id: str) -> set[str]:
    return required_actions(functions()[logical_id], logical_id)


# --------------------------------------------------------------------------------------------------
# Service-linked roles
# --------------------------------------------------------------------------------------------------


def test_the_reconciler_creates_the_first_rule_and_template() -> None:
    # The code scan sees the calls (so the tests below cannot pass vacuously).
    assert _calls("ReconcilerFunction") >= SLR_CALLS


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_a_function_creating_rules_or_templates_may_create_ecrs_service_linked_roles_only(logical_id: str) -> None:
    # GIVEN a function and whether its code creates a rule or a template (the API only plans: no such call)
    function = functions()[logical_id]
    creates = bool(SLR_CALLS & _calls(logical_id))
    grants = _granting(function, "iam:CreateServiceLinkedRole")
    # THEN it may create ECR's two service-linked roles exactly when it does, and no other role
    assert bool(grants) == creates, f"{logical_id}: creates rules/templates={creates}, grants={grants}"
    for statement in grants:
        assert _as_list(statement["Action"]) == ["iam:CreateServiceLinkedRole"]
        assert sorted(r["Fn::Sub"] for r in _as_list(statement["Resource"])) == sorted([PTC_SLR, TEMPLATE_SLR])
        names = statement["Condition"]["StringEquals"]["iam:AWSServiceName"]
        assert sorted(_as_list(names)) == ["ecr.amazonaws.com", "pullthroughcache.ecr.amazonaws.com"]
        assert set(statement["Condition"]) == {"StringEquals"}


# --------------------------------------------------------------------------------------------------
# Creation templates' dependent actions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_a_function_writing_templates_has_their_dependent_ecr_actions_on_repositories(logical_id: str) -> None:
    function = functions()[logical_id]
    if not TEMPLATE_CALLS & _calls(logical_id):
        return
    # THEN CreateRepository, PutLifecyclePolicy and SetRepositoryPolicy on this account's repositories, any Region
    for action in ("ecr:CreateRepository", "ecr:PutLifecyclePolicy", "ecr:SetRepositoryPolicy"):
        grants = _granting(function, action)
        assert grants, f"{logical_id} writes creation templates without {action}"
        assert all(_as_list(s["Resource"]) == [REPOSITORY_ARN] for s in grants), (action, grants)


def test_the_dependent_actions_are_required_by_the_template_calls_alone() -> None:
    # The reconciler's code never calls CreateRepository itself: the grant is there for the templates (a
    # later removal of the template calls must take it away too, test_iam_matches_code's "no more" check).
    assert "CreateRepository" not in adapter_operations("ecr_registry")
    assert "ecr:CreateRepository" in allowed_actions(functions()["ReconcilerFunction"])


# --------------------------------------------------------------------------------------------------
# iam:PassRole: roles under one path, to ECR only
# --------------------------------------------------------------------------------------------------


def _role_path_parameter() -> dict[str, Any]:
    parameter: dict[str, Any] = load_template()["Parameters"]["EcrRolePath"]
    return parameter


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_roles_are_passed_only_under_the_role_path_and_only_to_ecr(logical_id: str) -> None:
    function = functions()[logical_id]
    forward = {"Fn::GetAtt": ["EventForwardRole", "Arn"]}
    grants = [s for s in _granting(function, "iam:PassRole") if _as_list(s["Resource"]) != [forward]]
    # GIVEN whether the function's code names roles to ECR (rules' and templates' customRoleArn)
    passes = bool(ROLE_PASSING_CALLS & _calls(logical_id))
    assert bool(grants) == passes, f"{logical_id}: passes roles={passes}, grants={grants}"
    for statement in grants:
        # THEN never role/*: the roles under the EcrRolePath parameter's path
        assert _as_list(statement["Resource"]) == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role${EcrRolePath}*"}
        ]
        # AND to ECR only (a template's role trusts ecr.amazonaws.com, an ECR-to-ECR rule's
        # pullthroughcache.ecr.amazonaws.com)
        services = statement["Condition"]["StringEquals"]["iam:PassedToService"]
        assert sorted(_as_list(services)) == ["ecr.amazonaws.com", "pullthroughcache.ecr.amazonaws.com"]


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_the_event_forward_role_is_passed_by_the_reconciler_only_and_to_eventbridge_only(logical_id: str) -> None:
    # The reconciler's forwarding rules name the stack's EventForwardRole as their target's RoleArn (PutTargets).
    forward = {"Fn::GetAtt": ["EventForwardRole", "Arn"]}
    grants = [s for s in _granting(functions()[logical_id], "iam:PassRole") if _as_list(s["Resource"]) == [forward]]
    assert len(grants) == (1 if logical_id == "ReconcilerFunction" else 0), grants
    for statement in grants:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}


def test_the_role_path_defaults_to_a_path_of_its_own_and_takes_only_iam_paths() -> None:
    parameter = _role_path_parameter()
    assert parameter["Default"] == "/ecrcache/"
    allowed = re.compile(parameter["AllowedPattern"])
    # IAM API reference, Role.Path: "/" alone, or "/" + segments each ending with "/"
    for path in ("/", "/ecrcache/", "/platform/ecr/"):
        assert allowed.fullmatch(path), path
    for path in ("", "ecrcache", "/ecrcache", "/a*/", "//", "/ecr cache/"):
        assert not allowed.fullmatch(path), path


# --------------------------------------------------------------------------------------------------
# The reconciler's own writes do not invoke it (the pattern, with the local runner's matcher)
# --------------------------------------------------------------------------------------------------


def _local_drift_pattern() -> dict[str, Any]:
    """The drift rule's pattern (``ReconcilerEcrDriftRule``, feeding the reconciler's event queue) as the local
    stack resolves it (the role is ``<stack>-ReconcilerFunctionRole``)."""
    template = load_template()
    rule = template["Resources"]["ReconcilerEcrDriftRule"]["Properties"]["EventPattern"]
    pattern: dict[str, Any] = dict(local_resolver(template).resolve(rule))
    return pattern


def _cloudtrail(user_identity: dict[str, Any], event_name: str = "PutLifecyclePolicy") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6f1c5f5e-0000-4000-8000-000000000000",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-12-01T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventSource": "ecr.amazonaws.com",
            "eventName": event_name,
            "awsRegion": REGION,
            "userIdentity": user_identity,
            "requestParameters": {"repositoryName": "docker-hub/library/node"},
        },
    }


def _assumed(role: str, session: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLE",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            }
        },
    }


RECONCILER_ROLE = f"{STACK}-ReconcilerFunctionRole"


def test_the_drift_pattern_drops_the_reconcilers_own_calls_and_keeps_everyone_elses() -> None:
    matcher = compile_pattern(_local_drift_pattern())
    # GIVEN the reconciler's own call (any session of its role: the function name, or a new one after a cold start)
    for session in (f"{STACK}-ReconcilerFunction", "another-session"):
        assert not matcher.matches_event(_cloudtrail(_assumed(RECONCILER_ROLE, session))), session
    # THEN it is dropped; other roles (a role named like ours plus a suffix too), IAM users and ECR itself
    # (pull-through creates a repository as an AWS service, without userIdentity.arn) still invoke it
    others = [
        _assumed("ci-deployer", "terraform"),
        _assumed(f"{RECONCILER_ROLE}-2", f"{STACK}-ReconcilerFunction"),
        {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"},
        {"type": "AWSService", "invokedBy": "pullthroughcache.ecr.amazonaws.com"},
    ]
    for identity in others:
        assert matcher.matches_event(_cloudtrail(identity, "CreateRepository")), identity


def test_the_pattern_and_the_code_filter_name_the_same_sessions() -> None:
    # The code keeps its own filter (an event already in flight, another bus): the same prefix.
    pattern = _local_drift_pattern()
    [dropped] = [
        alternative["userIdentity"]["arn"][0]["anything-but"]["prefix"]
        for alternative in pattern["detail"]["$or"]
        if "anything-but" in alternative["userIdentity"]["arn"][0]
    ]
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{RECONCILER_ROLE}/{STACK}-ReconcilerFunction"
    assert dropped == own_role_prefix(session)


def test_the_deployed_drift_rule_names_the_role_sam_gives_the_reconciler() -> None:
    # GIVEN the template as the SAM transform deploys it (the rule ReconcilerEcrDriftRule, the implicit
    # execution role ReconcilerFunctionRole: SAM "Generated AWS CloudFormation resources")
    out = sam_transformed()["Resources"]
    role = out["ReconcilerFunctionRole"]
    found = {
        "pattern": out["ReconcilerEcrDriftRule"]["Properties"]["EventPattern"],
        "role_type": role["Type"],
        "role_path": role["Properties"].get("Path"),
    }
    # THEN the rule keeps the $or, and its prefix names that role, which has no path (an assumed-role
    # session ARN carries the role's name only: the prefix is exact)
    arns = [alternative["userIdentity"]["arn"][0] for alternative in found["pattern"]["detail"]["$or"]]
    assert {"exists": False} in arns
    [prefix] = [a["anything-but"]["prefix"] for a in arns if "anything-but" in a]
    assert prefix == {"Fn::Sub": "arn:${AWS::Partition}:sts::${AWS::AccountId}:assumed-role/${ReconcilerFunctionRole}/"}
    assert (found["role_type"], found["role_path"]) == ("AWS::IAM::Role", None)

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
from ecrcache.services.triggers import own_roles, role_session_prefix
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
WORKER_ROLE = f"{STACK}-ReconcileWorkerFunctionRole"
"""The roles writing ECR for the stack, as the local stack names them: the reconciler's and the reconcile worker's."""


def test_the_drift_pattern_drops_the_controllers_own_writes_and_keeps_everyone_elses() -> None:
    matcher = compile_pattern(_local_drift_pattern())
    # GIVEN a write of the reconciler or of the reconcile worker (any session of their roles: the function name, or
    # a new one after a cold start)
    for role in (RECONCILER_ROLE, WORKER_ROLE):
        for session in (f"{STACK}-ReconcilerFunction", f"{STACK}-ReconcileWorkerFunction", "another-session"):
            assert not matcher.matches_event(_cloudtrail(_assumed(role, session))), (role, session)
    # THEN it is dropped; other roles (a role named like ours plus a suffix too), IAM users, the root user and ECR
    # itself (pull-through creates a repository as an AWS service: no session issuer, no userIdentity.arn) still
    # invoke it
    others = [
        _assumed("ci-deployer", "terraform"),
        _assumed(f"{RECONCILER_ROLE}-2", f"{STACK}-ReconcilerFunction"),
        _assumed(f"{WORKER_ROLE}-2", f"{STACK}-ReconcileWorkerFunction"),
        {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"},
        {"type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root"},
        {"type": "AWSService", "invokedBy": "pullthroughcache.ecr.amazonaws.com"},
    ]
    for identity in others:
        assert matcher.matches_event(_cloudtrail(identity, "CreateRepository")), identity


def _left_out(pattern: dict[str, Any]) -> list[Any]:
    """The roles the drift pattern's ``$or`` leaves out (its ``anything-but`` on the session issuer's ARN); checked
    to let in, by its other branch, every caller without a session issuer."""
    branches = [branch["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] for branch in pattern["detail"]["$or"]]
    assert [{"exists": False}] in branches, branches
    [roles] = [match[0]["anything-but"] for match in branches if "anything-but" in match[0]]
    assert isinstance(roles, list), roles  # a list of exact strings (anything-but takes a single prefix only)
    return roles


def test_the_pattern_and_the_code_filter_name_the_same_roles() -> None:
    # The code keeps its own filter (an event already in flight, another bus): the reconciler's own role by its
    # caller ARN, the worker's by RECONCILE_WORKER_ROLE_ARN, which names the same role as the pattern.
    template = load_template()
    dropped = _left_out(_local_drift_pattern())
    env = local_resolver(template).resolve(template["Resources"]["ReconcilerFunction"]["Properties"]["Environment"])
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{RECONCILER_ROLE}/{STACK}-ReconcilerFunction"
    code = own_roles(session, env["Variables"]["RECONCILE_WORKER_ROLE_ARN"])
    assert sorted(dropped) == sorted(f"arn:aws:iam::{ACCOUNT}:role/{role}" for role in (RECONCILER_ROLE, WORKER_ROLE))
    assert {role_session_prefix(role) for role in dropped} == code


def test_the_deployed_drift_rule_names_the_roles_sam_gives_the_reconciler_and_the_worker() -> None:
    # GIVEN the template as the SAM transform deploys it (the rule ReconcilerEcrDriftRule, the implicit
    # execution roles ReconcilerFunctionRole and ReconcileWorkerFunctionRole: SAM "Generated AWS CloudFormation
    # resources")
    out = sam_transformed()["Resources"]
    # THEN the rule keeps the $or, and leaves out exactly those roles' ARNs (!GetAtt <Role>.Arn, a session issuer's
    # arn); each is a role of its own (least privilege: the worker does not share the reconciler's), without a path
    # (so the ARN is the same whether or not CloudTrail's issuer ARN carries one)
    dropped = _left_out(out["ReconcilerEcrDriftRule"]["Properties"]["EventPattern"])
    assert dropped == [
        {"Fn::GetAtt": ["ReconcilerFunctionRole", "Arn"]},
        {"Fn::GetAtt": ["ReconcileWorkerFunctionRole", "Arn"]},
    ]
    for function in ("ReconcilerFunction", "ReconcileWorkerFunction"):
        role = f"{function}Role"
        assert (out[role]["Type"], out[role]["Properties"].get("Path")) == ("AWS::IAM::Role", None)
        assert out[function]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}

"""A rule's roles against the stack's EcrRolePath: the path of a role ARN, what is outside it (the IAM policy's
``role<EcrRolePath>*``), and the planner blocking such a rule instead of planning a call ECR would deny."""

from __future__ import annotations

import pytest

from ecrcache.engine.planner import plan_region
from ecrcache.engine.role_path import RoleScope, outside_role_path, role_path, roles_of_json
from ecrcache.models.observed import Ownership
from tests.unit.engine.planner_support import ACCOUNT, ECR_URL, desired, region, spec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("arn", "path"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/name", "/"),
        (f"arn:aws:iam::{ACCOUNT}:role/ecrcache/name", "/ecrcache/"),
        (f"arn:aws-cn:iam::{ACCOUNT}:role/a/b/name", "/a/b/"),
    ],
)
def test_the_path_of_a_role_arn(arn: str, path: str) -> None:
    assert role_path(arn) == path


@pytest.mark.parametrize(
    ("arn", "allowed", "outside"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/x", "/", False),
        (f"arn:aws:iam::{ACCOUNT}:role/ecrcache/x", "/ecrcache/", False),
        (f"arn:aws:iam::{ACCOUNT}:role/ecrcache/team/x", "/ecrcache/", False),  # role/ecrcache/* matches it
        (f"arn:aws:iam::{ACCOUNT}:role/x", "/ecrcache/", True),
        (f"arn:aws:iam::{ACCOUNT}:role/ecrcache2/x", "/ecrcache/", True),
        (f"arn:aws:iam::{ACCOUNT}:role/ecrcache", "/ecrcache/", True),  # a role named ecrcache, at the root
    ],
)
def test_a_role_is_outside_unless_its_path_starts_with_the_allowed_one(arn: str, allowed: str, outside: bool) -> None:
    assert bool(outside_role_path([("custom_role_arn", arn)], RoleScope(allowed))) is outside


def test_the_roles_of_a_stored_rule_by_field() -> None:
    stored = {"custom_role_arn": "r1", "repository": {"creation_role_arn": "r2"}}
    assert roles_of_json(stored) == (("custom_role_arn", "r1"), ("repository.creation_role_arn", "r2"))
    assert roles_of_json({"repository": None}) == (("custom_role_arn", None), ("repository.creation_role_arn", None))


def test_the_planner_blocks_a_rule_naming_a_role_outside_the_path() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/ecr-to-ecr"
    rule = desired("mirror", spec("ecr", upstream_url=ECR_URL, custom_role_arn=role))
    planned = plan_region([rule], [], region(), Ownership(), deep=False, role_path=RoleScope("/ecrcache/"))
    assert planned.actions == ()
    [blocked] = planned.blocked
    assert (blocked.prefix, blocked.pending) == ("mirror", False)
    assert blocked.reason.startswith(f"custom_role_arn: {role} has the IAM path /, outside the stack's EcrRolePath")
    # AND under the default path (every role) it is planned
    assert plan_region([rule], [], region(), Ownership(), deep=False).actions


STACK = RoleScope("/ecrcache/", account=ACCOUNT, partition="aws")


@pytest.mark.parametrize(
    ("arn", "outside"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/ecrcache/x", False),
        ("arn:aws:iam::210987654321:role/ecrcache/x", True),  # another account, under the path
        (f"arn:aws-cn:iam::{ACCOUNT}:role/ecrcache/x", True),  # another partition
        (f"arn:aws-us-gov:iam::{ACCOUNT}:role/ecrcache/x", True),
        ("not-an-arn/ecrcache/x", True),
    ],
)
def test_a_role_of_another_account_or_partition_is_outside_whatever_its_path(arn: str, outside: bool) -> None:
    assert bool(outside_role_path([("custom_role_arn", arn)], STACK)) is outside


def test_the_message_names_the_roles_account_and_the_stacks() -> None:
    [found] = outside_role_path([("custom_role_arn", "arn:aws:iam::210987654321:role/ecrcache/x")], STACK)
    assert found.message.startswith(
        "arn:aws:iam::210987654321:role/ecrcache/x is a role of account 210987654321 in partition aws: the "
        f"reconciler may pass (iam:PassRole) only roles of the stack's own account ({ACCOUNT}, partition aws)"
    )


def test_the_stacks_scope_takes_the_partition_of_its_region_and_no_account_when_empty() -> None:
    assert RoleScope.of_stack("/p/", ACCOUNT, "cn-north-1") == RoleScope("/p/", ACCOUNT, "aws-cn")
    assert RoleScope.of_stack("/", "", "us-gov-west-1") == RoleScope("/", None, "aws-us-gov")
    # AND without an account any account's role under the path passes (the partition is still checked)
    scope = RoleScope.of_stack("/", "", "us-east-1")
    assert outside_role_path([("f", "arn:aws:iam::210987654321:role/x")], scope) == []
    assert outside_role_path([("f", "arn:aws-cn:iam::210987654321:role/x")], scope)


def test_the_planner_blocks_a_rule_naming_another_accounts_role() -> None:
    role = "arn:aws:iam::210987654321:role/ecrcache/ecr-to-ecr"
    rule = desired("mirror", spec("ecr", upstream_url=ECR_URL, custom_role_arn=role))
    planned = plan_region([rule], [], region(), Ownership(), deep=False, role_path=STACK)
    assert planned.actions == ()
    [blocked] = planned.blocked
    assert blocked.reason.startswith(f"custom_role_arn: {role} is a role of account 210987654321")

"""Read ``template.yaml`` the way the tests need it.

``load_template()`` understands CloudFormation's short tags (``!Ref X`` becomes ``{"Ref": "X"}``,
``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``, ...), so the result is the template as
CloudFormation sees it before the SAM transform. The helpers derive what tests build from it:
the functions with ``Globals`` applied, and the ``create_table`` arguments of the state table
(so a moto table can never drift from the deployed one).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

from devstack.local.provision import table_definition as provision_table_definition
from devstack.local.template import function_properties, parse_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"


@cache
def _cached_template() -> dict[str, Any]:
    return parse_template(TEMPLATE.read_text())


def load_template() -> dict[str, Any]:
    """``template.yaml`` as data (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_cached_template())


def resources(resource_type: str | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> resource (``Type``, ``Properties``, ...), optionally of one type only (a fresh copy of
    those only: copying the whole template for each look-up was a good part of some tests' time)."""
    found: dict[str, dict[str, Any]] = _cached_template()["Resources"]
    return copy.deepcopy(
        {name: res for name, res in found.items() if resource_type is None or res["Type"] == resource_type}
    )


@cache
def _cached_functions() -> dict[str, dict[str, Any]]:
    return function_properties(load_template())


def functions() -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every ``AWS::Serverless::Function``, with ``Globals.Function`` applied and its
    SQS and stream ``AWS::Lambda::EventSourceMapping`` resources among its ``Events`` as SAM ``SQS`` / ``DynamoDB``
    events (as the local stack reads them: :func:`devstack.local.template.function_properties`); a fresh copy:
    callers may modify it."""
    return copy.deepcopy(_cached_functions())


def table_definition(logical_id: str = "StateTable") -> dict[str, Any]:
    """Keyword arguments for ``dynamodb.create_table`` (all but ``TableName``) from the template
    (the same translation ``ecrcache local`` uses)."""
    return provision_table_definition(resources("AWS::DynamoDB::Table")[logical_id]["Properties"])


def table_ttl_attribute(logical_id: str = "StateTable") -> str | None:
    """The table's TTL attribute, when the template enables one."""
    ttl = resources("AWS::DynamoDB::Table")[logical_id]["Properties"].get("TimeToLiveSpecification", {})
    return str(ttl["AttributeName"]) if ttl.get("Enabled") else None

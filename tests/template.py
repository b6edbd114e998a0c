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

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"

# Short tags whose long form is not "Fn::<Tag>".
_LONG_NAMES = {"Ref": "Ref", "Condition": "Condition"}


class _CfnLoader(yaml.SafeLoader):
    """A safe loader that turns ``!Tag value`` into ``{"Fn::Tag": value}``."""


def _construct_short_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has only these three node kinds
        msg = f"unexpected YAML node {node!r}"
        raise TypeError(msg)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {_LONG_NAMES.get(tag_suffix, f"Fn::{tag_suffix}"): value}


_CfnLoader.add_multi_constructor("!", _construct_short_tag)


def parse_template(text: str) -> dict[str, Any]:
    """Parse CloudFormation YAML (short tags included) into plain data."""
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        msg = "a CloudFormation template is a mapping"
        raise TypeError(msg)
    return data


@cache
def _cached_template() -> dict[str, Any]:
    return parse_template(TEMPLATE.read_text())


def load_template() -> dict[str, Any]:
    """``template.yaml`` as data (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_cached_template())


def resources(resource_type: str | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> resource (``Type``, ``Properties``, ...), optionally of one type only."""
    found: dict[str, dict[str, Any]] = load_template()["Resources"]
    return {name: res for name, res in found.items() if resource_type is None or res["Type"] == resource_type}


def merge_globals(globals_section: Any, local: Any) -> Any:
    """SAM's Globals semantics: maps merge (the resource wins), lists add up, scalars are replaced."""
    if isinstance(globals_section, dict) and isinstance(local, dict):
        merged = dict(globals_section)
        for key, value in local.items():
            merged[key] = merge_globals(globals_section[key], value) if key in globals_section else value
        return merged
    if isinstance(globals_section, list) and isinstance(local, list):
        return [*globals_section, *local]
    return local


def functions() -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every ``AWS::Serverless::Function``, with ``Globals.Function`` applied."""
    global_properties = load_template().get("Globals", {}).get("Function", {})
    return {
        name: merge_globals(global_properties, res.get("Properties", {}))
        for name, res in resources(SERVERLESS_FUNCTION).items()
    }


def table_definition(logical_id: str = "StateTable") -> dict[str, Any]:
    """Keyword arguments for ``dynamodb.create_table`` (all but ``TableName``) from the template.

    KeySchema, AttributeDefinitions, BillingMode, GlobalSecondaryIndexes and StreamSpecification,
    translated where CloudFormation and the DynamoDB API differ (``StreamEnabled``).
    """
    table = resources("AWS::DynamoDB::Table")[logical_id]["Properties"]
    definition: dict[str, Any] = {
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "BillingMode": table["BillingMode"],
    }
    if table.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in table["GlobalSecondaryIndexes"]
        ]
    if "StreamSpecification" in table:
        definition["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": table["StreamSpecification"]["StreamViewType"],
        }
    return definition


def table_ttl_attribute(logical_id: str = "StateTable") -> str | None:
    """The table's TTL attribute, when the template enables one."""
    ttl = resources("AWS::DynamoDB::Table")[logical_id]["Properties"].get("TimeToLiveSpecification", {})
    return str(ttl["AttributeName"]) if ttl.get("Enabled") else None

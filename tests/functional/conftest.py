"""Fixtures for functional tests: AWS resources built from ``template.yaml`` inside moto."""

from __future__ import annotations

import copy
import functools
from typing import Any

import boto3
import pytest

from tests.template import table_definition, table_ttl_attribute

STATE_TABLE_NAME = "ecrcache-state-test"


@functools.cache
def _table_from_template() -> tuple[dict[str, Any], str | None]:
    """The table's ``create_table`` arguments and TTL attribute, read from the template once per run."""
    return table_definition(), table_ttl_attribute()


@pytest.fixture
def state_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The state table, created in moto from the template's definition; ``TABLE_NAME`` points at it."""
    client = boto3.client("dynamodb")
    definition, ttl_attribute = _table_from_template()
    client.create_table(TableName=STATE_TABLE_NAME, **copy.deepcopy(definition))
    client.get_waiter("table_exists").wait(TableName=STATE_TABLE_NAME, WaiterConfig={"Delay": 0})
    if ttl_attribute:
        client.update_time_to_live(
            TableName=STATE_TABLE_NAME,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
        )
    monkeypatch.setenv("TABLE_NAME", STATE_TABLE_NAME)
    return STATE_TABLE_NAME

"""The committed ``docs/desired-state.schema.json`` is the schema of the document the API takes."""

from __future__ import annotations

import json

import pytest
import yaml
from jsonschema import Draft202012Validator

from ecrcache_cli.schema import generate
from tests.conftest import ROOT

pytestmark = pytest.mark.contract

EXAMPLE = """
version: 1
credentials:
  dockerhub: {upstream_kind: docker-hub, username: ci-bot}
rules:
  docker-hub:
    upstream_kind: docker-hub
    credential: dockerhub
    lifecycle: {presets: {expire_untagged_after_days: 7, keep_last: 20}}
  quay: {upstream_kind: quay}
warm_sets:
  base-images: {rule: docker-hub, images: ["library/node:18-alpine"], schedule: "rate(6 hours)"}
"""


def test_schema_committed_matches_the_model() -> None:
    committed = json.loads((ROOT / "docs" / "desired-state.schema.json").read_text())
    assert committed == json.loads(generate()), "docs/desired-state.schema.json is stale: run `make schema`"


def test_schema_accepts_the_readme_example_and_rejects_unknown_fields() -> None:
    validator = Draft202012Validator(json.loads(generate()))
    document = yaml.safe_load(EXAMPLE)
    assert list(validator.iter_errors(document)) == []
    document["rules"]["quay"]["bogus"] = 1
    assert [e.message for e in validator.iter_errors(document)]

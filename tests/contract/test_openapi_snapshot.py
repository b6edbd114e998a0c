"""The committed ``docs/openapi.json`` is the spec the code generates (regenerate: ``make openapi``)."""

from __future__ import annotations

import json

import pytest

from ecrcache_cli.openapi import generate
from tests.conftest import ROOT

pytestmark = pytest.mark.contract


def test_openapi_committed_spec_matches_code() -> None:
    # GIVEN the spec generated from the resolver and the committed copy
    generated = generate()
    committed = (ROOT / "docs" / "openapi.json").read_text()
    # THEN they are identical (a diff means `make openapi` was not run after an API change)
    assert json.loads(committed) == json.loads(generated), "docs/openapi.json is stale: run `make openapi`"


def test_openapi_every_operation_documents_the_error_shape() -> None:
    # GIVEN the generated spec
    spec = json.loads(generate())
    # THEN every write operation documents 422 with the shared ErrorResponse schema
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in {"put", "delete"}:
                content = operation["responses"]["422"]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/ErrorResponse"}, (path, method)

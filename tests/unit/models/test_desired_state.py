"""The desired-state document: keys, cross-checks with precise error paths, references, quota, no leaks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ecrcache.errors import field_errors_from_pydantic
from ecrcache.models.common import ECR_PREFIX_SCHEMA_PATTERN
from ecrcache.models.desired_state import MAX_RULES_PER_REGION, DesiredStateDocument

pytestmark = pytest.mark.unit

TOKEN = "fake-document-token-0123456789abcdef"
DOCKER_HUB_RULE = {"upstream_kind": "docker-hub", "credential": "docker-hub"}
DOCKER_HUB_CREDENTIAL = {"upstream_kind": "docker-hub", "username": "ci-bot", "token": TOKEN}


def validate(data: dict[str, Any]) -> DesiredStateDocument:
    """``data`` as a document of version 1 (unless it says otherwise)."""
    return DesiredStateDocument.model_validate({"version": 1, **data})


def errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        validate(data)
    return {e.field: e.message for e in field_errors_from_pydantic(exc.value)}


def quay_rules(count: int, **extra: Any) -> dict[str, dict[str, Any]]:
    return {f"quay-{i:02d}": {"upstream_kind": "quay", **extra} for i in range(count)}


def test_desired_state_empty_document_is_valid() -> None:
    # GIVEN {"version": 1} / WHEN validated / THEN version 1 and nothing declared
    document = DesiredStateDocument.model_validate({"version": 1})
    assert document.version == 1
    assert document.rules == {}
    assert document.referenced_credentials() == frozenset()
    assert document.declares_nothing


@pytest.mark.parametrize("data", [{}, {"rules": {"quay": {"upstream_kind": "quay"}}}])
def test_desired_state_document_without_version_is_invalid(data: dict[str, Any]) -> None:
    # GIVEN a body without "version" (an empty object is not a desired-state document)
    # WHEN validated / THEN the error names version
    with pytest.raises(ValidationError) as exc:
        DesiredStateDocument.model_validate(data)
    assert [(e.field, e.type) for e in field_errors_from_pydantic(exc.value)] == [("version", "missing")]


def test_desired_state_declares_nothing_only_without_any_item() -> None:
    assert validate({"rules": {}, "credentials": {}, "warm_sets": {}}).declares_nothing
    assert not validate({"rules": {"quay": {"upstream_kind": "quay"}}}).declares_nothing
    assert not validate({"warm_sets": {"ws": {"rule": "quay", "images": ["a/b:1"]}}}).declares_nothing


def test_desired_state_full_document_resolves_every_reference() -> None:
    # GIVEN rules, the credential they use and a warm set naming a rule with a trailing '/'
    document = validate(
        {
            "version": 1,
            "rules": {"docker-hub/": DOCKER_HUB_RULE, "ecr-public": {"upstream_kind": "ecr-public"}},
            "credentials": {"docker-hub": DOCKER_HUB_CREDENTIAL},
            "warm_sets": {"base-images": {"rule": "docker-hub/", "images": ["library/node:18-alpine"]}},
        }
    )
    # WHEN asking for references / THEN everything resolves inside the document, keys normalised
    assert set(document.rules) == {"docker-hub", "ecr-public"}
    assert document.referenced_credentials() == {"docker-hub"}
    assert document.unresolved_credentials() == frozenset()
    assert document.referenced_rules() == {"docker-hub"}
    assert document.unresolved_rules() == frozenset()


def test_desired_state_unresolved_references_are_listed_not_refused() -> None:
    # GIVEN a rule using a credential and a warm set naming a rule, both kept in the store
    document = validate(
        {
            "rules": {"ghcr": {"upstream_kind": "github-container-registry", "credential": "ghcr-bot"}},
            "warm_sets": {"apps": {"rule": "docker-hub", "top": {"count": 10}}},
        }
    )
    # WHEN / THEN the service gets the names to look up
    assert document.unresolved_credentials() == {"ghcr-bot"}
    assert document.unresolved_rules() == {"docker-hub"}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("Docker-Hub", "lowercase"),
        ("d", "2-30 characters"),
        ("d" * 31, "2-30 characters"),
        ("a//b", "empty path component"),
        ("ROOT/", "ROOT takes no trailing"),
    ],
)
def test_desired_state_rule_keys_are_ecr_prefixes(key: str, message: str) -> None:
    # GIVEN a rule keyed by an invalid prefix / WHEN / THEN the key itself is reported
    found = errors({"rules": {key: {"upstream_kind": "quay"}}})
    assert message in found[f"rules.{key}"], found


def test_desired_state_rule_keys_on_the_edges_are_accepted() -> None:
    # GIVEN 2- and 30-character prefixes, ROOT and a 30-character prefix with its '/'
    rules = {
        "ab": {"upstream_kind": "quay"},
        "b" * 30 + "/": {"upstream_kind": "quay"},
        "ROOT": {"upstream_kind": "k8s"},
    }
    # WHEN / THEN accepted, the '/' dropped
    assert set(validate({"rules": rules}).rules) == {"ab", "b" * 30, "ROOT"}


def test_desired_state_refuses_a_prefix_with_and_without_slash() -> None:
    # GIVEN "quay" and "quay/" (the same ECR rule) / WHEN / THEN refused instead of silently merged
    found = errors({"rules": {"quay": {"upstream_kind": "quay"}, "quay/": {"upstream_kind": "quay"}}})
    assert "name the same rule" in found["rules"]


def test_desired_state_root_rule_cannot_map_an_upstream_prefix() -> None:
    # GIVEN a ROOT rule with an upstream namespace / WHEN / THEN the path names the rule and field
    found = errors({"rules": {"ROOT": {"upstream_kind": "quay", "upstream_repository_prefix": "argoproj"}}})
    assert found == {
        "rules.ROOT.upstream_repository_prefix": (
            "upstream_repository_prefix can only be set when the ECR repository prefix is not ROOT"
        )
    }


def test_desired_state_rule_errors_carry_the_rule_path() -> None:
    # GIVEN a Docker Hub rule without credential / WHEN / THEN the path is rules.<prefix>.credential
    found = errors({"rules": {"docker-hub": {"upstream_kind": "docker-hub"}}})
    assert list(found) == ["rules.docker-hub.credential"]


def test_desired_state_credential_kind_must_match_the_rule() -> None:
    # GIVEN a Docker Hub rule pointing at a GHCR credential declared in the document
    found = errors(
        {
            "rules": {"docker-hub": DOCKER_HUB_RULE},
            "credentials": {"docker-hub": {**DOCKER_HUB_CREDENTIAL, "upstream_kind": "github-container-registry"}},
        }
    )
    # WHEN / THEN the rule's credential field names both kinds
    message = found["rules.docker-hub.credential"]
    assert "'github-container-registry'" in message
    assert "'docker-hub'" in message


def test_desired_state_accepts_fifty_rules_in_a_region() -> None:
    # GIVEN ECR's quota of 50 rules per registry / WHEN 50 rules / THEN accepted
    document = validate({"rules": quay_rules(MAX_RULES_PER_REGION)})
    assert len(document.rules) == 50


def test_desired_state_refuses_fifty_one_rules_in_the_stack_region() -> None:
    # GIVEN 51 rules for the stack's Region / WHEN / THEN the quota is named
    message = errors({"rules": quay_rules(51)})["rules"]
    assert "51 rules target the stack's Region" in message
    assert "at most 50" in message


def test_desired_state_refuses_fifty_one_rules_in_an_explicit_region() -> None:
    # GIVEN 51 rules listing eu-west-1 / WHEN / THEN the Region is named
    assert "51 rules target eu-west-1" in errors({"rules": quay_rules(51, regions=["eu-west-1"])})["rules"]


def test_desired_state_rules_by_region_resolves_the_stack_region() -> None:
    # GIVEN 30 rules for the stack's Region and 30 for eu-west-1 (valid per bucket)
    rules = {
        **quay_rules(30),
        **{f"eu-{i:02d}": {"upstream_kind": "quay", "regions": ["eu-west-1"]} for i in range(30)},
    }
    document = validate({"rules": rules})
    # WHEN the stack turns out to be in eu-west-1 / THEN 60 rules land there: the service's exact check
    assert {region: len(p) for region, p in document.rules_by_region("eu-west-1").items()} == {"eu-west-1": 60}
    assert {region: len(p) for region, p in document.rules_by_region("us-east-1").items()} == {
        "eu-west-1": 30,
        "us-east-1": 30,
    }


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"version": 2}, "version"),
        ({"rule": {}}, "rule"),
        ({"credentials": {"Docker": DOCKER_HUB_CREDENTIAL}}, "credentials.Docker"),
        ({"warm_sets": {"-bad": {"rule": "quay", "top": {"count": 1}}}}, "warm_sets.-bad"),
        ({"warm_sets": {"w": {"rule": "quay"}}}, "warm_sets.w"),
        ({"warm_sets": {"w": {"rule": "quay", "images": ["node"]}}}, "warm_sets.w.images[0]"),
        ({"credentials": {"q": {"upstream_kind": "quay", "username": "u"}}}, "credentials.q.upstream_kind"),
    ],
)
def test_desired_state_error_paths(data: dict[str, Any], path: str) -> None:
    # GIVEN a bad document / WHEN / THEN the error path points at the broken part
    assert path in errors(data)


def test_desired_state_never_leaks_the_token() -> None:
    # GIVEN a document with a valid token / WHEN dumped / THEN no token
    document = validate(
        {"rules": {"docker-hub": DOCKER_HUB_RULE}, "credentials": {"docker-hub": DOCKER_HUB_CREDENTIAL}}
    )
    assert TOKEN not in document.model_dump_json()
    assert TOKEN not in repr(document)
    assert TOKEN not in json.dumps(document.model_dump(mode="json"))


@pytest.mark.parametrize(
    "credential",
    [
        {**DOCKER_HUB_CREDENTIAL, "token": TOKEN + "\n"},
        {**DOCKER_HUB_CREDENTIAL, "username": "bad user"},
        {**DOCKER_HUB_CREDENTIAL, "surprise": TOKEN},
        [TOKEN],
    ],
)
def test_desired_state_errors_never_leak_the_token(credential: Any) -> None:
    # GIVEN a document whose credential section is broken somewhere
    data = {"version": 1, "rules": {"docker-hub": DOCKER_HUB_RULE}, "credentials": {"docker-hub": credential}}
    # WHEN validated / THEN no rendering of the error carries the token
    with pytest.raises(ValidationError) as exc:
        DesiredStateDocument.model_validate(data)
    for text in (str(exc.value), exc.value.json(), repr(field_errors_from_pydantic(exc.value))):
        assert TOKEN not in text


def test_desired_state_json_schema_keys_rules_by_prefix_pattern() -> None:
    # GIVEN the published schema / WHEN generated / THEN rule keys carry the ECR prefix pattern
    schema = DesiredStateDocument.model_json_schema()
    assert list(schema["properties"]["rules"]["patternProperties"]) == [ECR_PREFIX_SCHEMA_PATTERN]
    assert schema["additionalProperties"] is False


def test_desired_state_schema_examples_are_valid() -> None:
    # GIVEN the examples published in the schema / WHEN validated / THEN every one is accepted
    examples = DesiredStateDocument.model_json_schema()["examples"]
    assert examples
    for example in examples:
        DesiredStateDocument.model_validate(example)

"""Issue 10's concrete request bodies, each with the exact status and the field its error names.

Every body the API reads goes through one parser (``ecrcache.parsing``) before routing: explicit
limits (size, depth, integer digits, string length, key type, duplicate keys) and YAML 1.2 core
semantics. What it refuses is a 4xx in the one error shape naming the field; nothing here may be a
5xx (or API Gateway's bare 502, which is what an exception escaping the handler becomes).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functional.api.assertions import assert_error, assert_error_shape
from tests.functional.api.client import ApiClient, ApiResponse

pytestmark = pytest.mark.functional

YAML = {"Content-Type": "application/yaml"}
HUGE = "9" * 4301  # one digit past Python's default int-conversion limit (4,300 digits)
QUAY: dict[str, Any] = {"upstream_kind": "quay"}


def seeded(api: ApiClient) -> ApiClient:
    assert api.put("/v1/rules/quay", QUAY).status == 201
    # (a credential with a secret: a rotation of it can be started)
    assert api.put("/v1/credentials/hub", {"upstream_kind": "docker-hub", "username": "u", "token": "t"}).status == 201
    return api


def detail(response: ApiResponse, field: str) -> dict[str, str]:
    """The error detail naming ``field`` (the test fails listing the fields there are)."""
    details = assert_error_shape(response)["details"]
    found = [d for d in details if d["field"] == field]
    assert found, f"no detail for {field!r}: {details}"
    first: dict[str, str] = found[0]
    return first


def refused(response: ApiResponse, field: str, type_: str | None = None, status: int = 422) -> dict[str, str]:
    code = {400: "BadRequest", 415: "UnsupportedMediaType", 422: "ValidationFailed"}[status]
    assert_error(response, status, code)
    found = detail(response, field)
    if type_ is not None:
        assert found["type"] == type_, found
    return found


# -- 5: a 4,301-digit integer on every route with a body ---------------------------------------------------

HUGE_INTEGER = [
    ("PUT", "/v1/rules/quay", '{"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": %s}}}', ""),
    ("PUT", "/v1/warm-sets/ws", '{"rule": "quay", "top": {"count": %s}}', ""),
    ("POST", "/v1/reconcile", '{"deep": %s}', ""),
    ("PUT", "/v1/desired-state", '{"version": %s}', ""),
]
HUGE_FIELDS = ["lifecycle.presets.keep_last", "top.count", "deep", "version"]


@pytest.mark.parametrize(
    ("method", "path", "template", "field"),
    [(m, p, t, f) for (m, p, t, _), f in zip(HUGE_INTEGER, HUGE_FIELDS, strict=True)],
    ids=["rule", "warm-set", "reconcile", "desired-state"],
)
def test_a_4301_digit_json_integer_is_a_422_naming_the_field(
    api: ApiClient, method: str, path: str, template: str, field: str
) -> None:
    # GIVEN a rule for the warm set to use
    seeded(api)
    # WHEN a JSON body carries a 4,301-digit integer
    response = api.call(method, path, raw_body=template % HUGE)
    # THEN it is a 422 naming the field, not a 500 from Python's int-conversion limit
    refused(response, field, "too_many_digits")
    assert HUGE[:30] not in response.text


@pytest.mark.parametrize(
    ("path", "text", "field"),
    [
        ("/v1/desired-state", f"version: {HUGE}\n", "version"),
        (
            "/v1/rules/quay",
            f"upstream_kind: quay\nlifecycle: {{presets: {{keep_last: {HUGE}}}}}\n",
            "lifecycle.presets.keep_last",
        ),
    ],
    ids=["desired-state", "rule"],
)
def test_a_4301_digit_yaml_integer_is_a_422_naming_the_field(api: ApiClient, path: str, text: str, field: str) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML body carries a 4,301-digit integer
    response = api.put(path, raw_body=text, headers=YAML)
    # THEN it is a 422 naming the field (it crashed the handler: API Gateway's bare 502)
    refused(response, field, "too_many_digits")


# -- 5: YAML keys that are not strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "field", "type_"),
    [
        # YAML 1.2 core reads neither dates nor timestamps: these keys are plain strings (unknown fields)
        ("2024-01-01", "2024-01-01", "extra_forbidden"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00", "extra_forbidden"),
        # !!binary is not in the core schema: refused where it stands
        ("!!binary aGVsbG8=", "body", "yaml_tag"),
    ],
    ids=["date", "timestamp", "binary"],
)
def test_yaml_date_timestamp_and_binary_keys_are_a_422(api: ApiClient, key: str, field: str, type_: str) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML rule body has a key that YAML 1.1 would read as a date, a timestamp or bytes
    response = api.put("/v1/rules/quay", raw_body=f"upstream_kind: quay\n{key}: x\n", headers=YAML)
    # THEN it is a 422 naming where (it crashed the handler: API Gateway's bare 502)
    refused(response, field, type_)


def test_yaml_binary_key_deep_in_a_document_names_its_mapping(api: ApiClient) -> None:
    response = api.put(
        "/v1/desired-state", raw_body="rules:\n  quay:\n    upstream_kind: quay\n    !!binary aGk=: 1\n", headers=YAML
    )
    refused(response, "rules.quay", "yaml_tag")


# -- 7: duplicate keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "headers", "field"),
    [
        ("/v1/rules/quay", '{"upstream_kind": "quay", "upstream_kind": "k8s"}', {}, "upstream_kind"),
        ("/v1/rules/quay", "upstream_kind: quay\nupstream_kind: k8s\n", YAML, "upstream_kind"),
        (
            "/v1/desired-state",
            '{"rules": {"quay": {"upstream_kind": "quay"}, "quay": {"upstream_kind": "k8s"}}}',
            {},
            "rules.quay",
        ),
        ("/v1/desired-state", "rules:\n  k8s: {upstream_kind: k8s}\n  k8s: {upstream_kind: quay}\n", YAML, "rules.k8s"),
    ],
    ids=["json", "yaml", "json-nested", "yaml-nested"],
)
def test_duplicate_keys_are_a_422_naming_the_key_path(
    api: ApiClient, path: str, text: str, headers: dict[str, str], field: str
) -> None:
    # GIVEN nothing written yet
    # WHEN a body repeats a key in one mapping
    response = api.put(path, raw_body=text, headers=headers)
    # THEN it is a 422 naming the repeated key (today the last one silently wins)
    refused(response, field, "duplicate_key")
    assert api.get("/v1/rules/quay").status == 404
    assert api.get("/v1/rules/k8s").status == 404


# -- 7: YAML 1.2 core, not 1.1 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reads_as"),
    [
        ("~", "null"),
        ("null", "null"),
        ("true", "a boolean"),
        ("0x1", "an integer"),
        ("1.0", "a number"),
        ("1", "an integer"),
    ],
)
def test_yaml_names_that_core_reads_as_null_bool_or_numbers_are_a_422(api: ApiClient, key: str, reads_as: str) -> None:
    # GIVEN nothing written yet
    # WHEN a credential name in a YAML document is one YAML 1.2 core resolves to null, a bool or a number
    text = f"credentials:\n  {key}:\n    upstream_kind: docker-hub\n    username: u\n"
    response = api.put("/v1/desired-state", raw_body=text, headers=YAML)
    # THEN it is a 422 naming the key (it used to be stringified into a credential named "None"/"True"/"1")
    found = refused(response, f"credentials.{key}", "key_not_string")
    assert reads_as in found["message"]
    assert "quote" in found["message"]


@pytest.mark.parametrize("name", ["yes", "off", "on", "0b101", "1_000", "2024-01-01", "1e3x"])
def test_yaml_1_1_coercions_do_not_happen_to_names(api: ApiClient, name: str) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML document names a credential with a word YAML 1.1 would read as a bool, number or date
    text = f"version: 1\ncredentials:\n  {name}:\n    upstream_kind: docker-hub\n    username: u\n    token: t\n"
    response = api.put("/v1/desired-state", raw_body=text, headers=YAML, query={"dryRun": "true"})
    # THEN it is the name as written (YAML 1.2 core: a plain string)
    assert response.status == 200, response.text
    assert [c["name"] for c in response.json["changes"]] == [name]


@pytest.mark.parametrize(
    "value", ["yes", "No", "off", "0b101", "1_000", "1:20", "2024-01-01", "2001-12-14 21:59:43.10 -5", "=", "<<"]
)
def test_yaml_1_1_coercions_do_not_happen_to_values(api: ApiClient, value: str) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML rule's description is a word YAML 1.1 would read as a bool, number, date or value key
    response = api.put("/v1/rules/quay", raw_body=f"upstream_kind: quay\ndescription: {value}\n", headers=YAML)
    # THEN it is the text as written (YAML 1.2 core: a plain string)
    assert response.status == 201, response.text
    assert response.json["spec"]["description"] == value


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version: 1.0\n", "version"),
        ("version: true\n", "version"),
        ("version: ~\n", "version"),
        ("credentials:\n  hub: {upstream_kind: docker-hub, username: true}\n", "credentials.hub.username"),
        ("warm_sets:\n  ws: {rule: 0x1, images: [a/b:1]}\n", "warm_sets.ws.rule"),
        ("rules:\n  quay: {upstream_kind: quay, description: 1.0}\n", "rules.quay.description"),
    ],
    ids=["version-float", "version-bool", "version-null", "username-bool", "rule-hex", "description-float"],
)
def test_yaml_values_core_reads_as_null_bool_or_numbers_are_not_stringified(
    api: ApiClient, text: str, field: str
) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML value where a string or the version 1 is expected is null, a bool or a number
    response = api.put("/v1/desired-state", raw_body=text, headers=YAML)
    # THEN it is a 422 naming the field
    refused(response, field)


def test_yaml_hex_and_octal_integers_are_core_integers(api: ApiClient) -> None:
    # GIVEN a rule
    seeded(api)
    # WHEN warm-set counts are written in YAML 1.2 core's hexadecimal and octal forms
    response = api.put("/v1/warm-sets/ws", raw_body="rule: quay\ntop: {count: 0x10, window_days: 0o7}\n", headers=YAML)
    # THEN they are the integers 16 and 7
    assert response.status == 201, response.text
    assert response.json["spec"]["top"] == {"count": 16, "window_days": 7}


# -- 7: the model layer takes JSON types as they are -------------------------------------------------------


@pytest.mark.parametrize("deep", ["yes", "true", 1, 0, None], ids=["yes", "string-true", "one", "zero", "null"])
def test_reconcile_deep_must_be_a_json_boolean(api: ApiClient, deep: Any) -> None:
    # GIVEN nothing written yet
    # WHEN POST /v1/reconcile says deep with something that is not true or false
    response = api.call("POST", "/v1/reconcile", body={"deep": deep})
    # THEN it is a 422 naming deep (it was accepted: "yes" read as true)
    refused(response, "deep")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/warm-sets/ws", {"rule": "quay", "top": {"count": True}}, "top.count"),
        ("/v1/warm-sets/ws", {"rule": "quay", "top": {"count": 20.0}}, "top.count"),
        ("/v1/warm-sets/ws", {"rule": "quay", "top": {"count": "20"}}, "top.count"),
        (
            "/v1/warm-sets/ws",
            {"rule": "quay", "budget": {"max_upstream_requests_per_run": True}},
            "budget.max_upstream_requests_per_run",
        ),
        ("/v1/desired-state", {"version": True}, "version"),
        ("/v1/desired-state", {"version": 1.0}, "version"),
    ],
    ids=["count-true", "count-float", "count-string", "budget-true", "version-true", "version-float"],
)
def test_integers_are_json_integers_not_booleans_floats_or_strings(
    api: ApiClient, path: str, body: dict[str, Any], field: str
) -> None:
    # GIVEN a rule
    seeded(api)
    # WHEN an integer field gets true, 20.0 or "20"
    response = api.put(path, body)
    # THEN it is a 422 naming the field (true was read as 1)
    refused(response, field)


# -- limits -----------------------------------------------------------------------------------------------


def test_a_string_longer_than_the_limit_is_a_422_naming_the_field(api: ApiClient) -> None:
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay", "description": "x" * 20_000})
    refused(response, "description", "string_too_long")


def test_nesting_deeper_than_the_limit_is_a_400(api: ApiClient) -> None:
    response = api.put("/v1/rules/quay", raw_body='{"upstream_kind": "quay", "x": ' + "[" * 40 + "]" * 40 + "}")
    refused(response, "body", "too_deep", status=400)


@pytest.mark.parametrize("text", ['{"description": NaN}', '{"description": Infinity}', '{"description": 1e999}'])
def test_non_finite_numbers_are_refused(api: ApiClient, text: str) -> None:
    response = api.put("/v1/rules/quay", raw_body=text)
    assert 400 <= response.status < 500, response.text
    assert_error_shape(response)


# -- 8: content types -------------------------------------------------------------------------------------

FORMS = [
    ("application/x-www-form-urlencoded", "upstream_kind=quay"),
    (
        "multipart/form-data; boundary=b",
        '--b\r\nContent-Disposition: form-data; name="upstream_kind"\r\n\r\nquay\r\n--b--\r\n',
    ),
    ("application/xml", "<rule><upstream_kind>quay</upstream_kind></rule>"),
    ("text/xml", "<rule/>"),
    ("text/plain", json.dumps(QUAY)),
    ("text/json", json.dumps(QUAY)),
]


@pytest.mark.parametrize(("content_type", "text"), FORMS, ids=[f[0].split(";")[0] for f in FORMS])
def test_other_content_types_are_a_415_naming_the_accepted_types(api: ApiClient, content_type: str, text: str) -> None:
    # GIVEN nothing written yet
    # WHEN a rule is sent as a form, XML, multipart or plain text (API Gateway passes the text as-is)
    response = api.put("/v1/rules/quay", raw_body=text, headers={"Content-Type": content_type})
    # THEN it is a 415 that says what is accepted, and nothing is written
    assert_error(response, 415, "UnsupportedMediaType")
    assert "application/json" in response.json["message"]
    assert "application/yaml" in response.json["message"]
    assert api.get("/v1/rules/quay").status == 404


@pytest.mark.parametrize(("content_type", "text"), FORMS, ids=[f[0].split(";")[0] for f in FORMS])
def test_base64_bodies_of_other_types_are_a_415(api: ApiClient, content_type: str, text: str) -> None:
    # GIVEN an event API Gateway marked as base64 (its Content-Type matched a binary media type)
    import base64

    event = api.event(
        "PUT",
        "/v1/rules/quay",
        raw_body=base64.b64encode(text.encode()).decode(),
        headers={"Content-Type": content_type},
    )
    event["isBase64Encoded"] = True
    # WHEN it reaches the handler
    response = api.send(event)
    # THEN it is the same 415 as the text body
    assert_error(response, 415, "UnsupportedMediaType")


def test_a_base64_json_body_is_read(api: ApiClient) -> None:
    # GIVEN an event API Gateway base64-encoded (binary media types that match application/json)
    import base64

    event = api.event("PUT", "/v1/rules/quay", raw_body=base64.b64encode(json.dumps(QUAY).encode()).decode())
    event["isBase64Encoded"] = True
    # WHEN it reaches the handler
    response = api.send(event)
    # THEN the rule is created, as with the text body
    assert response.status == 201, response.text


def test_a_base64_body_that_is_not_base64_is_a_400(api: ApiClient) -> None:
    event = api.event("PUT", "/v1/rules/quay", raw_body="not base64!")
    event["isBase64Encoded"] = True
    assert_error(api.send(event), 400, "BadRequest")


# -- 9: a mistyped token key is never echoed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "headers", "field"),
    [
        (
            "credentials:\n  hub: {upstream_kind: docker-hub, username: u, token:SECRET-VALUE}\n",
            YAML,
            "credentials.hub",
        ),
        ('{"upstream_kind": "docker-hub", "username": "u", "token:SECRET-VALUE": null}', {}, "body"),
        ('{"upstream_kind": "docker-hub", "username": "u", "password=SECRET-VALUE": null}', {}, "body"),
        ('{"upstream_kind": "docker-hub", "username": "u", "%s": 1}' % ("SECRET-VALUE" * 5), {}, "body"),
    ],
    ids=["flow-yaml", "json", "password", "long"],
)
def test_an_unknown_key_that_may_hold_a_secret_is_not_echoed(
    api: ApiClient, text: str, headers: dict[str, str], field: str
) -> None:
    # GIVEN nothing written yet
    # WHEN a credential body has an unknown key that looks like a token, a password, or is longer than a name
    path = "/v1/desired-state" if "credentials:" in text else "/v1/credentials/hub"
    response = api.put(path, raw_body=text, headers=headers)
    # THEN the 422 says "unknown field (value hidden)" at the mapping, and never shows the key
    found = refused(response, field, "extra_forbidden")
    assert found["message"] == "unknown field (value hidden)"
    assert "SECRET-VALUE" not in response.text


def test_an_ordinary_unknown_key_is_still_named(api: ApiClient) -> None:
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay", "descripton": "typo"})
    found = refused(response, "descripton", "extra_forbidden")
    assert found["message"] == "unknown field"


# -- 8: the OpenAPI lists every body type a route accepts ----------------------------------------------------


def spec_request_bodies() -> dict[str, dict[str, Any]]:
    from ecrcache.http.app import openapi_json
    from functions.api.app import app

    spec = json.loads(openapi_json(app))
    return {
        f"{method.upper()} {path}": operation["requestBody"]
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }


def test_the_openapi_lists_json_and_every_yaml_type_on_every_request_body() -> None:
    from ecrcache.parsing import ACCEPTED_MEDIA_TYPES
    from tests.functional.api.fuzz_support import BODY_ROUTES

    bodies = spec_request_bodies()
    assert set(bodies) == set(BODY_ROUTES)
    for route, body in bodies.items():
        assert list(body["content"]) == list(ACCEPTED_MEDIA_TYPES), route
        schemas = {json.dumps(c["schema"], sort_keys=True) for c in body["content"].values()}
        assert len(schemas) == 1, route  # the same document whatever the syntax


@pytest.mark.parametrize("route", sorted(spec_request_bodies()))
def test_each_listed_body_type_is_read_and_no_other(api: ApiClient, route: str) -> None:
    from ecrcache.parsing import dump_yaml
    from tests.functional.api.fuzz_support import BODY_ROUTES

    # GIVEN a rule for warm sets to use, and a valid body of the route
    seeded(api)
    method, path, body = BODY_ROUTES[route]
    # WHEN the body is sent in each media type the spec lists, and in one it does not
    for media in spec_request_bodies()[route]["content"]:
        text = json.dumps(body) if media == "application/json" else dump_yaml(body)
        response = api.call(method, path, raw_body=text, headers={"Content-Type": media})
        # THEN each listed one is read (a success, or a 4xx about the content, never a 415)
        assert response.status < 300 or response.status in (409, 412), (media, response.text)
    refused = api.call(method, path, raw_body=json.dumps(body), headers={"Content-Type": "application/xml"})
    assert_error(refused, 415, "UnsupportedMediaType")


@pytest.mark.parametrize("tag", ["!!float", "!!int", "!!bool", "!!null"])
def test_a_tagged_token_that_is_not_of_its_tag_is_refused_without_echoing_it(api: ApiClient, tag: str) -> None:
    # GIVEN a credential whose token carries an explicit core tag its text does not match
    text = f"upstream_kind: docker-hub\nusername: u\ntoken: {tag} dckr_pat_SECRET-VALUE\n"
    # WHEN it is written
    response = api.put("/v1/credentials/hub", raw_body=text, headers=YAML)
    # THEN the 422 names the field and the tag, never the value
    found = refused(response, "token", "yaml_tag")
    assert tag in found["message"]
    assert "SECRET-VALUE" not in response.text


@pytest.mark.parametrize("key", ["ghp_0123456789abcdefABCDEF0123456789abcd", "glpat-abcDEF123", "dckr_pat_abc123"])
def test_an_unknown_key_that_is_a_pasted_registry_token_is_not_echoed(api: ApiClient, key: str) -> None:
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay", key: "x"})
    assert_error(response, 422, "ValidationFailed")
    assert key not in response.text

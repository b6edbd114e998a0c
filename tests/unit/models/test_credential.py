"""Credentials: metadata, rotation settings, the secret shape, and the write-only token that never leaks."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from ecrcache.errors import field_errors_from_pydantic
from ecrcache.models.common import normalise_rotation_schedule, parse_resource_name
from ecrcache.models.credential import (
    CredentialPut,
    CredentialSpec,
    RotationSettings,
    RotationStrategy,
    check_credential_arn,
    credential_name_from_arn,
    secret_name,
    secret_string,
)
from ecrcache.models.upstream import UpstreamKind, requires_credential

pytestmark = pytest.mark.unit

TOKEN = "fake-token-for-tests-0123456789abcdef"
MINTING_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub-admin-AbCdEf"
PTC_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/m-AbCdEf"
CREDENTIAL_KINDS = [k for k in UpstreamKind if requires_credential(k)]
ANONYMOUS_KINDS = [k for k in UpstreamKind if not requires_credential(k)]


def errors(data: dict[str, Any], model: type[BaseModel] = CredentialSpec) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return {e.field: e.message for e in field_errors_from_pydantic(exc.value)}


def base(**extra: Any) -> dict[str, Any]:
    return {"upstream_kind": "docker-hub", "username": "ci-bot", **extra}


# ---------------------------------------------------------------------------------------------- names and secrets


def test_secret_name_prefixes_the_credential_name() -> None:
    # GIVEN a credential name / WHEN / THEN the secret ECR's service-linked role can read
    assert secret_name("docker-hub") == "ecr-pullthroughcache/docker-hub"


@pytest.mark.parametrize("name", ["a", "docker-hub", "ghcr.ci_bot-2", "a" * 48, "0day"])
def test_resource_name_valid(name: str) -> None:
    # GIVEN a name in the safe subset / WHEN / THEN accepted unchanged
    assert parse_resource_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "1-48 characters"),
        ("a" * 49, "1-48 characters"),
        ("Docker", "lowercase letters"),
        ("-a", "starting and ending"),
        ("a-", "starting and ending"),
        ("a/b", "lowercase letters"),
        ("a b", "lowercase letters"),
        ("café", "lowercase letters"),
        ("a+b", "lowercase letters"),
    ],
)
def test_resource_name_invalid(name: str, message: str) -> None:
    # GIVEN a name Secrets Manager, DynamoDB or EventBridge would make awkward / WHEN / THEN refused
    with pytest.raises(ValidationError, match=message):
        secret_name(name)


def test_credential_name_from_arn() -> None:
    # GIVEN secret ARNs with Secrets Manager's random suffix / WHEN / THEN the credential name, or None
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
    assert credential_name_from_arn(arn) == "docker-hub"
    assert credential_name_from_arn(MINTING_ARN) is None
    assert credential_name_from_arn("ecr-pullthroughcache/docker-hub") is None


@pytest.mark.parametrize(
    ("arn", "ok"),
    [
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf", True),
        ("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:ecr-pullthroughcache/x-AbCdEf", True),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:docker-hub-AbCdEf", False),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/" + "a" * 600, False),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/ecr-pullthroughcache/docker-hub-x", False),
    ],
)
def test_check_credential_arn(arn: str, ok: bool) -> None:
    # GIVEN a credentialArn candidate / WHEN checked with botocore's rule / THEN accepted or refused
    if ok:
        assert check_credential_arn(arn) == arn
    else:
        with pytest.raises(ValueError, match=r"ARN|characters"):
            check_credential_arn(arn)


def test_secret_string_is_the_json_ecr_reads() -> None:
    # GIVEN a username and a token (plain or SecretStr) / WHEN / THEN {"username","accessToken"} JSON
    expected = {"username": "ci-bot", "accessToken": TOKEN}
    assert json.loads(secret_string("ci-bot", TOKEN)) == expected
    assert json.loads(secret_string("ci-bot", SecretStr(TOKEN))) == expected


# ---------------------------------------------------------------------------------------------- spec


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS)
def test_credential_spec_valid_for_every_kind_that_takes_one(kind: UpstreamKind) -> None:
    # GIVEN credential metadata for a secret-based upstream / WHEN validated / THEN defaults are manual, no expiry
    spec = CredentialSpec.model_validate(base(upstream_kind=kind.value))
    assert spec.rotation.strategy is RotationStrategy.MANUAL
    assert spec.expires_at is None


@pytest.mark.parametrize("kind", ANONYMOUS_KINDS)
def test_credential_spec_refuses_kinds_without_credentials(kind: UpstreamKind) -> None:
    # GIVEN a credential for an upstream ECR reads anonymously / WHEN / THEN upstream_kind is refused
    message = errors(base(upstream_kind=kind.value))["upstream_kind"]
    assert "takes no credential" in message
    assert "docker-hub" in message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("username", "", "1-256 printable ASCII"),
        ("username", "ci bot", "without spaces or ':'"),
        ("username", "ci:bot", "':'"),
        ("username", "x" * 257, "1-256"),
        ("username", "jürgen", "ASCII"),
        ("expires_at", "next week", "date"),
        ("expires_at", "2027-13-01", "date"),
        ("description", "d" * 257, "at most 256"),
        ("upstream_kind", "gcr", "'docker-hub'"),
        ("rotation", {"strategy": "auto"}, "'manual' or 'dockerhub-pat'"),
        ("token", TOKEN, "unknown field"),  # the stored metadata has no token
        ("surprise", 1, "unknown field"),
    ],
)
def test_credential_spec_field_invalid(field: str, value: Any, message: str) -> None:
    # GIVEN one bad field / WHEN / THEN the error path starts with the field and names the rule
    found = errors({**base(), field: value})
    assert any(path.startswith(field) and message in text for path, text in found.items()), found


def test_credential_spec_expires_at_is_a_date() -> None:
    # GIVEN an ISO date / WHEN / THEN parsed to a date
    assert CredentialSpec.model_validate(base(expires_at="2027-06-30")).expires_at == date(2027, 6, 30)


# ---------------------------------------------------------------------------------------------- rotation


def test_rotation_dockerhub_pat_valid() -> None:
    # GIVEN a Docker Hub credential rotated by minting PATs
    spec = CredentialSpec.model_validate(
        base(rotation={"strategy": "dockerhub-pat", "schedule": "rate(30 days)", "minting_secret_arn": MINTING_ARN})
    )
    # THEN the schedule is kept normalised
    assert spec.rotation.schedule == "rate(30 days)"


@pytest.mark.parametrize(
    ("rotation", "field", "message"),
    [
        ({"strategy": "manual", "schedule": "rate(30 days)"}, "rotation.schedule", "manual rotation has no schedule"),
        ({"minting_secret_arn": MINTING_ARN}, "rotation.minting_secret_arn", "only used by dockerhub-pat"),
        ({"strategy": "dockerhub-pat", "minting_secret_arn": MINTING_ARN}, "rotation.schedule", "needs a schedule"),
        ({"strategy": "dockerhub-pat", "schedule": "rate(7 days)"}, "rotation.minting_secret_arn", "minting secret"),
        (
            {
                "strategy": "dockerhub-pat",
                "schedule": "rate(7 days)",
                "minting_secret_arn": PTC_SECRET_ARN,
            },
            "rotation.minting_secret_arn",
            "service-linked role",
        ),
        (
            {"strategy": "dockerhub-pat", "schedule": "rate(7 days)", "minting_secret_arn": "dockerhub-admin"},
            "rotation.minting_secret_arn",
            "pattern",
        ),
    ],
)
def test_rotation_settings_invalid(rotation: dict[str, Any], field: str, message: str) -> None:
    # GIVEN inconsistent rotation settings / WHEN / THEN the exact field is named
    found = errors(base(rotation=rotation))
    assert message in found[field], found


@pytest.mark.parametrize("kind", [k for k in CREDENTIAL_KINDS if k is not UpstreamKind.DOCKER_HUB])
def test_rotation_dockerhub_pat_only_for_docker_hub(kind: UpstreamKind) -> None:
    # GIVEN PAT minting on a non-Docker Hub credential / WHEN / THEN rotation.strategy is refused
    rotation = {"strategy": "dockerhub-pat", "schedule": "rate(7 days)", "minting_secret_arn": MINTING_ARN}
    found = errors(base(upstream_kind=kind.value, rotation=rotation))
    assert "only for upstream_kind 'docker-hub'" in found["rotation.strategy"]


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("rate(4 hours)", "rate(4 hours)"),
        ("rate(23 hours)", "rate(23 hours)"),
        ("rate(1 day)", "rate(1 day)"),
        ("rate(999 days)", "rate(999 days)"),
        (" rate(30  days) ", "rate(30 days)"),
        ("cron(0 4/12 * * ? *)", "cron(0 4/12 * * ? *)"),
        ("cron(0 16 L * ? *)", "cron(0 16 L * ? *)"),
        ("cron(0 0 ? * SUN#1 *)", "cron(0 0 ? * SUN#1 *)"),
        ("cron(0 0,20 * * ? *)", "cron(0 0,20 * * ? *)"),
    ],
)
def test_rotation_schedule_valid(expression: str, normalised: str) -> None:
    # GIVEN a Secrets Manager schedule at most every 4 hours / WHEN / THEN accepted, whitespace normalised
    assert normalise_rotation_schedule(expression) == normalised


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(3 hours)", "4-23"),
        ("rate(24 hours)", "4-23"),
        ("rate(1000 days)", "at most 999"),
        ("rate(30 minutes)", "hour | hours | day | days"),
        ("rate(1 days)", "singular"),
        ("rate(2 day)", "plural"),
        ("rate(0 days)", "positive"),
        ("cron(5 0 * * ? *)", "minutes field must be 0"),
        ("cron(0 0 * * ? 2030)", "year field must be \\*"),
        ("cron(0 */2 * * ? *)", "at most every 4 hours"),
        ("cron(0 22,1 * * ? *)", "at most every 4 hours"),
        ("cron(0 0 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("weekly", "rate\\(...\\) or cron\\(...\\)"),
    ],
)
def test_rotation_schedule_invalid(expression: str, message: str) -> None:
    # GIVEN a schedule Secrets Manager refuses / WHEN / THEN the rule broken is named
    with pytest.raises(ValueError, match=message):
        normalise_rotation_schedule(expression)


# ---------------------------------------------------------------------------------------------- the token


def test_credential_put_token_never_appears_in_dumps_or_repr() -> None:
    # GIVEN a credential written with a token
    put = CredentialPut.model_validate(base(token=TOKEN))
    # WHEN dumped, serialised, printed / THEN the token is nowhere
    for text in (put.model_dump_json(), json.dumps(put.model_dump(mode="json")), repr(put), str(put)):
        assert TOKEN not in text
    assert "token" not in put.model_dump()
    # AND the token is still available on purpose
    assert put.token is not None
    assert put.token.get_secret_value() == TOKEN


def test_credential_put_spec_and_secret_string() -> None:
    # GIVEN a credential write
    put = CredentialPut.model_validate(base(token=TOKEN, expires_at="2027-01-31"))
    # WHEN split / THEN metadata without token, and the secret value ECR reads
    assert put.spec() == CredentialSpec.model_validate(base(expires_at="2027-01-31"))
    assert json.loads(put.secret_string() or "") == {"username": "ci-bot", "accessToken": TOKEN}
    assert CredentialPut.model_validate(base()).secret_string() is None


class _Container(BaseModel):
    """An outer model without ``hide_input_in_errors``: the token must redact itself."""

    credential: CredentialPut


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (TOKEN + "\n", "whitespace"),
        ("  " + TOKEN, "whitespace"),
        (TOKEN + "\x00", "control characters"),
        ("", "1-8192"),
        (TOKEN * 300, "1-8192"),
    ],
)
def test_credential_put_token_errors_never_echo_the_token(token: str, message: str) -> None:
    # GIVEN a bad token, alone and nested in a model that does not hide inputs
    for model, data in ((CredentialPut, base(token=token)), (_Container, {"credential": base(token=token)})):
        # WHEN validated
        with pytest.raises(ValidationError) as exc:
            model.model_validate(data)
        # THEN the rule broken is named and the token appears in no rendering of the error
        renderings = [str(exc.value), repr(exc.value), exc.value.json(), json.dumps(exc.value.errors(), default=str)]
        assert all(TOKEN not in text for text in renderings)
        assert any(message in e["msg"] for e in exc.value.errors())


def test_credential_put_other_errors_do_not_echo_the_token() -> None:
    # GIVEN a valid token next to bad fields, nested in a model that does not hide inputs
    data = {"credential": base(token=TOKEN, upstream_kind="quay", username="a b", extra=1)}
    # WHEN validated / THEN no rendering of the error carries the token
    with pytest.raises(ValidationError) as exc:
        _Container.model_validate(data)
    assert TOKEN not in str(exc.value)
    assert TOKEN not in exc.value.json()


@pytest.mark.parametrize("body", [[TOKEN], f"token={TOKEN}", {"username": TOKEN}])
def test_credential_put_malformed_body_is_redacted(body: Any) -> None:
    # GIVEN a body of the wrong shape that carries the token / WHEN nested and validated
    with pytest.raises(ValidationError) as exc:
        _Container.model_validate({"credential": body})
    # THEN the error names the problem without echoing the body
    assert TOKEN not in str(exc.value)
    assert TOKEN not in exc.value.json()


def test_credential_put_token_of_the_wrong_type_is_redacted() -> None:
    # GIVEN a token that is not a string / WHEN / THEN the error is typed and redacted
    with pytest.raises(ValidationError) as exc:
        _Container.model_validate({"credential": base(token=123456789)})
    assert "123456789" not in str(exc.value)
    assert exc.value.errors()[0]["type"] == "string_type"


def test_credential_put_json_schema_marks_token_write_only() -> None:
    # GIVEN the published schema / WHEN generated / THEN token is a write-only password string
    token = CredentialPut.model_json_schema()["properties"]["token"]
    string = next(s for s in token["anyOf"] if s.get("type") == "string")
    assert string["writeOnly"] is True
    assert string["format"] == "password"


@pytest.mark.parametrize("model", [CredentialSpec, CredentialPut, RotationSettings])
def test_credential_schema_examples_are_valid(model: type[BaseModel]) -> None:
    # GIVEN the examples published in the schema / WHEN validated / THEN every one is accepted
    examples = model.model_json_schema()["examples"]
    assert examples
    for example in examples:
        model.model_validate(example)


# ---------------------------------------------------------------------------------------------- rate limit


def test_a_credentials_rate_limit_is_kept_and_left_out_when_unset() -> None:
    # GIVEN a credential with and one without a rate limit WHEN dumped (what the table stores)
    limited = CredentialSpec.model_validate(base(rate_limit={"requests": 5000, "window_seconds": 21600}))
    plain = CredentialSpec.model_validate(base())
    # THEN the limit is kept, and an unset one is absent (stored specs from before stay equal)
    assert limited.model_dump(mode="json")["rate_limit"] == {"requests": 5000, "window_seconds": 21600}
    assert "rate_limit" not in plain.model_dump(mode="json")


@pytest.mark.parametrize(
    ("rate_limit", "field", "message"),
    [
        ({"requests": 0, "window_seconds": 60}, "rate_limit.requests", "greater than or equal to 1"),
        ({"requests": 10, "window_seconds": 604_801}, "rate_limit.window_seconds", "less than or equal to 604800"),
        ({"requests": "10", "window_seconds": 60}, "rate_limit.requests", "valid integer"),
        ({"requests": 10}, "rate_limit.window_seconds", "required"),
        ({"requests": 10, "window_seconds": 60, "burst": 2}, "rate_limit.burst", "unknown field"),
    ],
)
def test_a_bad_rate_limit_is_refused_naming_the_field(rate_limit: dict[str, Any], field: str, message: str) -> None:
    found = errors(base(rate_limit=rate_limit))
    assert field in found, found
    assert message in found[field].lower()


# ---------------------------------------------------------------------------------------------- every_days, probe


def test_every_days_as_the_issue_writes_it_is_a_manual_re_test_schedule() -> None:
    # GIVEN rotation: {every_days: N} with nothing else (strategy defaults to manual)
    spec = CredentialSpec.model_validate(base(rotation={"every_days": 30}))
    # THEN it is kept, and maps onto Secrets Manager's rotation schedule
    assert (spec.rotation.strategy, spec.rotation.every_days) == (RotationStrategy.MANUAL, 30)
    assert spec.rotation.rotation_schedule() == "rate(30 days)"
    assert CredentialSpec.model_validate(base(rotation={"every_days": 1})).rotation.rotation_schedule() == (
        "rate(1 day)"
    )


def test_a_spec_without_every_days_or_probe_dumps_as_before() -> None:
    # GIVEN a spec from before the fields existed WHEN read and dumped (what the table stores)
    dumped = CredentialSpec.model_validate(base(rotation={"strategy": "manual"})).model_dump(mode="json")
    # THEN neither new field appears: stored specs stay equal, so nothing is rewritten or reconciled
    assert "probe" not in dumped
    assert dumped["rotation"] == {"strategy": "manual", "schedule": None, "minting_secret_arn": None}
    assert CredentialSpec.model_validate(base()).rotation.rotation_schedule() is None


def test_every_days_replaces_the_schedule_of_dockerhub_pat() -> None:
    rotation = {"strategy": "dockerhub-pat", "every_days": 30, "minting_secret_arn": MINTING_ARN}
    assert CredentialSpec.model_validate(base(rotation=rotation)).rotation.rotation_schedule() == "rate(30 days)"


@pytest.mark.parametrize(
    ("rotation", "field", "message"),
    [
        ({"every_days": 0}, "rotation.every_days", "greater than or equal to 1"),
        ({"every_days": 366}, "rotation.every_days", "less than or equal to 365"),
        ({"every_days": "30"}, "rotation.every_days", "valid integer"),
        ({"every_days": 30.5}, "rotation.every_days", "valid integer"),
        (
            {
                "strategy": "dockerhub-pat",
                "every_days": 7,
                "schedule": "rate(7 days)",
                "minting_secret_arn": MINTING_ARN,
            },
            "rotation.every_days",
            "not both",
        ),
    ],
)
def test_a_bad_every_days_is_refused_naming_the_field(rotation: dict[str, Any], field: str, message: str) -> None:
    found = errors(base(rotation=rotation))
    assert message in found[field].lower(), found


def test_a_credential_may_name_its_own_probe_image() -> None:
    spec = CredentialSpec.model_validate(base(upstream_kind="azure-container-registry", probe="team/app:latest"))
    assert spec.probe == "team/app:latest"
    assert spec.model_dump(mode="json")["probe"] == "team/app:latest"
    assert "probe" not in CredentialSpec.model_validate(base()).model_dump(mode="json")


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ("team/app", "add a tag"),
        ("ghcr.io/team/app:1", "looks like a registry host"),
        ("Team/App:1", "lowercase"),
    ],
)
def test_a_bad_probe_image_is_refused_naming_the_field(probe: str, message: str) -> None:
    assert message in errors(base(probe=probe))["probe"]

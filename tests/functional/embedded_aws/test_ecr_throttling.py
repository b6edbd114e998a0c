"""The embedded ECR throttles as ECR documents it: a token bucket per account, Region and operation.

ECR User Guide, "Troubleshooting Amazon ECR error messages" (HTTP 429 / ThrottleException): "In each region, each
account receives a bucket" of an operation's credits, replenished at its rate. The answer's shape (HTTP 400,
``{"__type": "ThrottlingException", "message": "Rate exceeded"}``) is what botocore retries as throttling
(``retries/standard.py``, ``data/_retry.json``). Time is a fake monotonic clock: nothing here waits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.aws import aws_server, ecr_throttling, install
from devstack.aws.ecr_throttling import Limit, parse_tps
from devstack.aws.server import EmbeddedAwsServer
from tests.conftest import REGION
from tests.functional.embedded_aws.conftest import EmbeddedAws

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


class Monotonic:
    """A monotonic clock in seconds that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ecr(region: str = REGION, session: boto3.Session | None = None) -> ECRClient:
    """An ECR client that sees ECR's first answer (no botocore retry)."""
    return (session or boto3.Session()).client("ecr", region_name=region, config=NO_RETRY)


def describe(client: ECRClient) -> str:
    """``ok`` or the error code of one DescribeRepositories."""
    try:
        client.describe_repositories()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


# -- parsing ------------------------------------------------------------------------------------------------------


def test_tps_spec_reads_rates_bursts_and_the_default_for_every_operation() -> None:
    limits = parse_tps(" DescribeRepositories=20, GetLifecyclePolicy=50:100 ,*=0.5,")
    assert limits == {
        "DescribeRepositories": Limit(20.0, 20.0),  # burst: one second's worth
        "GetLifecyclePolicy": Limit(50.0, 100.0),
        "*": Limit(0.5, 1.0),  # at least one call's credit
    }
    assert parse_tps({"ListTagsForResource": 3, "PutImage": Limit(10, 10)}) == {
        "ListTagsForResource": Limit(3.0, 3.0),
        "PutImage": Limit(10.0, 10.0),
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("DescribeRepository=20", "'DescribeRepository' is not an ECR operation of botocore's model"),
        ("DescribeRepositories", "must read Operation=TPS or Operation=TPS:BURST"),
        ("DescribeRepositories=fast", "TPS 'fast' is not a number"),
        ("DescribeRepositories=0", "a TPS must be a positive number"),
        ("DescribeRepositories=5:0.5", "a burst must be a number >= 1"),
        ("DescribeRepositories=5:x", "burst 'x' is not a number"),
        ("DescribeRepositories=inf", "a TPS must be a positive number"),
    ],
)
def test_a_bad_tps_spec_is_refused_naming_the_entry_and_the_rule(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="ECR TPS entry") as info:
        parse_tps(spec)
    assert message in str(info.value)


def test_a_bad_tps_mapping_is_refused_naming_the_operation() -> None:
    with pytest.raises(ValueError, match="ECR TPS of 'PutImage': True is not a number"):
        parse_tps({"PutImage": True})
    with pytest.raises(ValueError, match="ECR TPS of 'PutImage': a TPS must be a positive number"):
        parse_tps({"PutImage": -1})


# -- the bucket ---------------------------------------------------------------------------------------------------


def test_off_by_default_nothing_is_throttled(embedded_aws: EmbeddedAws) -> None:
    client = ecr()
    assert [describe(client) for _ in range(50)] == ["ok"] * 50
    assert ecr_throttling.current().snapshot() == {"limits": {}, "admitted": {}, "throttled": {}}


def test_past_the_burst_the_call_is_throttled_then_credits_come_back_at_the_rate(embedded_aws: EmbeddedAws) -> None:
    # GIVEN DescribeRepositories throttled at 2 TPS with a bucket of 3
    clock = Monotonic()
    ecr_throttling.configure("DescribeRepositories=2:3", clock=clock)
    client = ecr()
    # WHEN 4 calls come at once THEN the bucket's 3 credits pass and the 4th is refused as ECR refuses it
    assert [describe(client) for _ in range(4)] == ["ok", "ok", "ok", "ThrottlingException"]
    with pytest.raises(ClientError) as info:
        client.describe_repositories()
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    # AND half a second later one credit is back (2 a second): one call, then refused again
    clock.advance(0.5)
    assert [describe(client) for _ in range(2)] == ["ok", "ThrottlingException"]
    # AND a long pause refills the bucket to its size, not beyond
    clock.advance(3600)
    assert [describe(client) for _ in range(4)] == ["ok", "ok", "ok", "ThrottlingException"]
    assert ecr_throttling.current().snapshot() == {
        "limits": {"DescribeRepositories": {"tps": 2.0, "burst": 3.0}},
        "admitted": {"DescribeRepositories": 7},
        "throttled": {"DescribeRepositories": 4},
    }


def test_each_operation_region_and_account_has_its_own_bucket(embedded_aws: EmbeddedAws) -> None:
    # GIVEN every operation throttled at one call (the '*' entry), DescribeRepositories at two
    ecr_throttling.configure("*=1:1,DescribeRepositories=2:2", clock=Monotonic())
    client = ecr()
    assert [describe(client) for _ in range(3)] == ["ok", "ok", "ThrottlingException"]
    # THEN another operation has a bucket of its own ('*': one call)
    assert client.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.describe_pull_through_cache_rules()
    # AND another Region of the same account has its own buckets
    assert [describe(ecr("eu-west-1")) for _ in range(3)] == ["ok", "ok", "ThrottlingException"]
    # AND so has another account (a role of it assumed through STS: its calls are that account's)
    other = embedded_aws.sts.assume_role(RoleArn="arn:aws:iam::210987654321:role/ci", RoleSessionName="ci-run")
    credentials = other["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    assert session.client("sts", region_name=REGION).get_caller_identity()["Account"] == "210987654321"
    assert [describe(ecr(session=session)) for _ in range(3)] == ["ok", "ok", "ThrottlingException"]


def test_a_throttled_call_changes_nothing(embedded_aws: EmbeddedAws) -> None:
    ecr_throttling.configure("CreateRepository=1:1", clock=Monotonic())
    client = ecr()
    client.create_repository(repositoryName="team/one")
    with pytest.raises(ClientError, match="ThrottlingException"):
        client.create_repository(repositoryName="team/two")
    names = [r["repositoryName"] for r in client.describe_repositories()["repositories"]]
    assert names == ["team/one"]


def test_install_takes_the_tps_and_none_leaves_it(embedded_aws: EmbeddedAws) -> None:
    install(ecr_tps="GetLifecyclePolicy=5")
    assert ecr_throttling.current().limits == {"GetLifecyclePolicy": Limit(5.0, 5.0)}
    install()
    assert ecr_throttling.current().limits == {"GetLifecyclePolicy": Limit(5.0, 5.0)}
    install(ecr_tps="")
    assert ecr_throttling.current().limits == {}


def test_botocores_retries_ride_through_a_throttle_that_clears(embedded_aws: EmbeddedAws, monkeypatch: Any) -> None:
    """botocore's standard retries back off on ThrottlingException (its throttling code): the bucket refills
    meanwhile (the backoff advances the fake clock), and the call succeeds without the caller seeing an error."""
    clock = Monotonic()
    ecr_throttling.configure("DescribeRepositories=1:1", clock=clock)
    backoffs: list[float] = []

    def backoff(seconds: float) -> None:
        backoffs.append(seconds)
        clock.advance(0.5)  # two backoffs make a credit, whatever botocore's jitter drew

    monkeypatch.setattr("botocore.endpoint.time.sleep", backoff)
    client = boto3.client("ecr", region_name=REGION, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    client.describe_repositories()
    response = client.describe_repositories()
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(backoffs) == 2
    assert ecr_throttling.current().throttled["DescribeRepositories"] == 2


# -- over HTTP ----------------------------------------------------------------------------------------------------


def test_over_http_the_answer_is_ecrs_and_the_endpoint_sets_and_reads_the_throttle(embedded_aws_server: str) -> None:
    url = f"{embedded_aws_server}/_ecrcache/ecr/throttling"
    # GIVEN a throttle set through the endpoint
    set_it = requests.post(url, json={"tps": {"DescribeRepositories": 0.001}}, timeout=10)
    assert set_it.status_code == 200, set_it.text
    assert set_it.json()["limits"] == {"DescribeRepositories": {"tps": 0.001, "burst": 1.0}}
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"{ECR_TARGET}.DescribeRepositories",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE12/20260101/us-east-1/ecr/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    # WHEN two calls come (one credit, back in 1,000 s)
    first = requests.post(embedded_aws_server, data="{}", headers=headers, timeout=10)
    second = requests.post(embedded_aws_server, data="{}", headers=headers, timeout=10)
    # THEN the second gets ECR's throttling answer, byte for byte the awsJson1.1 error
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert second.json() == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    state = requests.get(url, timeout=10).json()
    assert (state["admitted"], state["throttled"]) == ({"DescribeRepositories": 1}, {"DescribeRepositories": 1})
    # AND a bad spec is refused naming the entry; null turns throttling off
    bad = requests.post(url, json={"tps": "DescribeRepositories=-1"}, timeout=10)
    assert bad.status_code == 400
    assert "'DescribeRepositories=-1'" in bad.json()["error"]
    assert requests.post(url, json={"tps": None}, timeout=10).json()["limits"] == {}
    assert requests.post(embedded_aws_server, data="{}", headers=headers, timeout=10).status_code == 200


def test_the_server_refuses_a_bad_tps_before_it_starts() -> None:
    with pytest.raises(ValueError, match="'DescribeRepositories=x'"):
        EmbeddedAwsServer("127.0.0.1", 0, ecr_tps="DescribeRepositories=x")


def test_ecrcache_aws_reads_the_environment_and_refuses_a_bad_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ecr_throttling.ENV_VAR, "GetLifecyclePolicy=0")
    assert aws_server.main(["--port", "0"]) == aws_server.EXIT_USAGE
    assert "ECR TPS entry 'GetLifecyclePolicy=0'" in capsys.readouterr().err
    assert aws_server.main(["--port", "0", "--ecr-tps", "Nope=1"]) == aws_server.EXIT_USAGE
    assert "'Nope' is not an ECR operation" in capsys.readouterr().err


def test_make_locals_embedded_aws_throttles_as_its_environment_says() -> None:
    """`ecrcache-aws` (what `make local` starts, with its environment) throttles as $ECRCACHE_EMBEDDED_ECR_TPS says."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), ecr_throttling.ENV_VAR: "DescribeRepositories=0.001:2"}
    command = [sys.executable, "-m", "devstack.aws.aws_server", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        announced = server.stdout.readline().strip()
        assert announced == (
            "ecrcache-aws: ECR throttled per account, Region and operation: DescribeRepositories 0.001/s (burst 2)"
        )
        endpoint = server.stdout.readline().strip().rsplit(" ", 1)[1]
        client = boto3.client("ecr", endpoint_url=endpoint, region_name=REGION, config=NO_RETRY)
        assert [describe(client) for _ in range(3)] == ["ok", "ok", "ThrottlingException"]
        state = requests.get(f"{endpoint}/_ecrcache/ecr/throttling", timeout=10).json()
        assert state["throttled"] == {"DescribeRepositories": 1}
    finally:
        server.terminate()
        server.communicate(timeout=30)

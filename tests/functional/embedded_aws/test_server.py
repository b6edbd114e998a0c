"""The embedded AWS endpoint over HTTP: boto3 with endpoint_url, raw wire format, /_ecrcache/ hooks, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack.aws.server import EmbeddedAwsServer, PortBusyError
from tests.conftest import ACCOUNT_ID, REGION

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[3]
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"


def test_boto3_over_http_creates_and_describes_a_rule(embedded_aws_server: str) -> None:
    """ecr-facts §9.6/§9.7 over HTTP: create a rule, describe it, and see the AWS error codes a caller gets."""
    ecr = boto3.client("ecr", endpoint_url=embedded_aws_server, region_name=REGION)
    secrets = boto3.client("secretsmanager", endpoint_url=embedded_aws_server, region_name=REGION)
    arn = secrets.create_secret(Name="ecr-pullthroughcache/ghcr", SecretString='{"username":"u","accessToken":"t"}')[
        "ARN"
    ]
    created = ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="ghcr", upstreamRegistryUrl="ghcr.io", credentialArn=arn
    )
    assert created["upstreamRegistry"] == "github-container-registry"
    rules = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert [(r["ecrRepositoryPrefix"], r["credentialArn"]) for r in rules] == [("ghcr", arn)]
    with pytest.raises(ClientError) as info:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ghcr", upstreamRegistryUrl="ghcr.io", credentialArn=arn)
    assert info.value.response["Error"]["Code"] == "PullThroughCacheRuleAlreadyExistsException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_wire_format_epoch_seconds_and_error_shape(embedded_aws_server: str) -> None:
    """ecr-facts §9.10: on the wire: epoch-second timestamps, 12-digit registryId, JSON __type errors."""
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"{ECR_TARGET}.CreatePullThroughCacheRule",
        # moto routes by the SigV4 credential scope (service "ecr"); the signature itself is not checked.
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE12/20260101/us-east-1/ecr/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    body = {"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io"}
    response = requests.post(embedded_aws_server, data=json.dumps(body), headers=headers, timeout=10)
    assert response.status_code == 200
    payload = response.json()
    assert isinstance(payload["createdAt"], int | float)
    assert payload["registryId"] == ACCOUNT_ID
    headers["X-Amz-Target"] = f"{ECR_TARGET}.DeletePullThroughCacheRule"
    missing = requests.post(
        embedded_aws_server, data=json.dumps({"ecrRepositoryPrefix": "nope"}), headers=headers, timeout=10
    )
    assert missing.status_code == 400
    assert missing.json()["__type"] == "PullThroughCacheRuleNotFoundException"


def test_ecrcache_hooks_over_http(embedded_aws_server: str) -> None:
    """ecr-facts §9.13/§9.16/§9.18 hooks: advance the clock, inject event faults, evaluate lifecycle over HTTP."""
    hooks = f"{embedded_aws_server}/_ecrcache"
    ecr = boto3.client("ecr", endpoint_url=embedded_aws_server, region_name=REGION)
    before = requests.get(f"{hooks}/clock", timeout=10).json()["now"]
    after = requests.post(f"{hooks}/clock/advance", json={"seconds": 86_400 * 3}, timeout=10).json()["now"]
    assert after > before
    created = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")["createdAt"]
    assert created.isoformat()[:10] == after[:10]
    delivered = len(requests.get(f"{hooks}/events/recent", timeout=10).json()["events"])
    assert requests.post(f"{hooks}/events/faults", json={"action": "drop", "count": None}, timeout=10).ok
    ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay")
    assert len(requests.get(f"{hooks}/events/recent", timeout=10).json()["events"]) == delivered
    assert requests.delete(f"{hooks}/events/faults", timeout=10).ok
    ecr.create_repository(repositoryName="app")
    for tag in ("a", "b"):
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "x", "digest": "sha256:" + "0" * 64, "size": 1},
                "layers": [{"mediaType": "y", "digest": "sha256:" + tag * 64, "size": 1}],
            }
        )
        ecr.put_image(repositoryName="app", imageManifest=manifest, imageTag=tag)
        requests.post(f"{hooks}/clock/advance", json={"seconds": 60}, timeout=10)
    keep_one = {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep one image only",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"},
            }
        ]
    }
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=json.dumps(keep_one))
    evaluated = requests.post(f"{hooks}/lifecycle/evaluate", json={"repositoryName": "app"}, timeout=10).json()
    assert [(a["imageTags"], a["action"]) for a in evaluated["actions"]] == [(["a"], "EXPIRE")]
    assert [i["imageTag"] for i in ecr.list_images(repositoryName="app")["imageIds"]] == ["b"]
    assert requests.post(f"{hooks}/lifecycle/evaluate", json={}, timeout=10).status_code == 400
    assert requests.post(f"{hooks}/clock/advance", json={"seconds": -1}, timeout=10).status_code == 400
    assert requests.get(f"{hooks}/nothing-here", timeout=10).status_code == 404
    missing_repo = requests.post(f"{hooks}/lifecycle/evaluate", json={"repositoryName": "nope"}, timeout=10)
    assert (missing_repo.status_code, missing_repo.json()["code"]) == (400, "RepositoryNotFoundException")


def test_server_binds_loopback_only_and_reports_a_busy_port(embedded_aws_server: str) -> None:
    """The embedded endpoint never binds a non-loopback address, and says so when its port is taken."""
    with pytest.raises(ValueError, match="refusing to bind"):
        EmbeddedAwsServer("0.0.0.0", 0)  # noqa: S104 - the point of the test
    port = int(embedded_aws_server.rsplit(":", 1)[1])
    with pytest.raises(PortBusyError, match=f"port {port} on 127.0.0.1 is already in use"):
        EmbeddedAwsServer("127.0.0.1", port).start()


# The AWS CLI (v1, from PyPI, a dev dependency) sits next to the interpreter running the tests.
AWS_CLI = str(Path(sys.executable).with_name("aws"))


def test_aws_cli_with_endpoint_url(embedded_aws_server: str) -> None:
    """The AWS CLI reaches the extension with --endpoint-url."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    base = [AWS_CLI, "--endpoint-url", embedded_aws_server, "--output", "json", "ecr"]
    subprocess.run(
        [
            *base,
            "create-pull-through-cache-rule",
            "--ecr-repository-prefix",
            "quay",
            "--upstream-registry-url",
            "quay.io",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    out = subprocess.run(
        [*base, "describe-pull-through-cache-rules"], check=True, env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(out.stdout)["pullThroughCacheRules"][0]["upstreamRegistry"] == "quay"


def test_ecrcache_aws_command_ready_busy_and_sigterm() -> None:
    """`ecrcache-aws` prints a ready line, refuses a busy port with a clear message, and stops cleanly on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "devstack.aws.aws_server", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().strip()
        assert ready.startswith("ecrcache-aws: ready at http://127.0.0.1:"), ready
        endpoint = ready.rsplit(" ", 1)[1]
        rules = boto3.client("ecr", endpoint_url=endpoint, region_name=REGION).describe_pull_through_cache_rules()
        assert rules["pullThroughCacheRules"] == []
        port = endpoint.rsplit(":", 1)[1]
        busy = subprocess.run([*command[:-1], port], capture_output=True, text=True, env=env, timeout=60, check=False)
        assert busy.returncode == 3
        assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
        assert server.returncode == 0
        assert "ecrcache-aws: stopped" in out
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)

"""Rotation on the local stack: the embedded Secrets Manager's ``RotateSecret`` runs the real rotation function
(``RotatorFunction``'s host, registered under its ARN) against the token-authenticated ``ghcr.io`` stand-in.

A new token is staged the way the API stages it (issue 12's contract): the rotation function's ``createSecret``
finds the value and puts it in the pending version. Here a small relay in front of the function's host does that
part (``PutSecretValue`` of the pending version before forwarding ``createSecret``), so the test does not depend on
how the API names its staged value; every step is then the real function's, invoked by Secrets Manager.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECRET = "ecr-pullthroughcache/ghcr"
GHCR_IMAGE = ("ghcr/ecrcache/demo", "1.0")
MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]


@dataclass
class Relay:
    """Lambda's ``Invoke`` API in front of the rotation function's host: stages ``value`` before ``createSecret``."""

    target: str
    secretsmanager: Any
    value: str = ""

    def handle(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        event = json.loads(body)
        if event["Step"] == "createSecret" and self.value:
            self.secretsmanager.put_secret_value(
                SecretId=event["SecretId"],
                ClientRequestToken=event["ClientRequestToken"],
                SecretString=self.value,
                VersionStages=["AWSPENDING"],
            )
        answer = requests.post(self.target, data=body, timeout=130)
        headers = {k: v for k, v in answer.headers.items() if k.lower() == "x-amz-function-error"}
        return answer.status_code, headers, answer.content


@pytest.fixture(scope="module")
def rotation(applied: RunningStack) -> Iterator[tuple[str, Relay]]:
    """The rotation function's ARN, with the relay registered for it (the host's own URL again afterwards)."""
    control = f"{applied.aws}/_ecrcache/secrets/rotation/functions"
    (function,) = [f for f in requests.get(control, timeout=10).json()["functions"] if "RotatorFunction" in f["arn"]]
    relay = Relay(function["url"], applied.client("secretsmanager"))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            status, headers, payload = relay.handle(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(payload))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/2015-03-31/functions/rotator/invocations"
    requests.post(control, json={"arn": function["arn"], "url": url}, timeout=10).raise_for_status()
    try:
        yield str(function["arn"]), relay
    finally:
        requests.post(control, json={"arn": function["arn"], "url": function["url"]}, timeout=10).raise_for_status()
        server.shutdown()
        server.server_close()


def _rotate(stack: RunningStack, function_arn: str) -> dict[str, Any]:
    """``RotateSecret``, then the run once it ended (Secrets Manager runs the steps after answering)."""
    token = stack.client("secretsmanager").rotate_secret(SecretId=SECRET, RotationLambdaARN=function_arn)["VersionId"]
    runs = f"{stack.aws}/_ecrcache/secrets/rotation/runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = next(r for r in requests.get(runs, timeout=10).json()["runs"] if r["clientRequestToken"] == token)
        if run["state"] != "running":
            return dict(run)
        time.sleep(0.2)
    pytest.fail(f"the rotation {token} did not end within 120 s:\n{stack.log()[-3000:]}")


def _labels(stack: RunningStack) -> dict[str, list[str]]:
    stages = stack.client("secretsmanager").describe_secret(SecretId=SECRET)["VersionIdsToStages"]
    return {version: sorted(labels) for version, labels in stages.items()}


def _current(stack: RunningStack) -> tuple[str, str]:
    read = stack.client("secretsmanager").get_secret_value(SecretId=SECRET)
    return str(read["VersionId"]), str(json.loads(read["SecretString"])["accessToken"])


def test_a_good_token_is_promoted_and_validated_and_ecr_pulls_with_it(
    applied: RunningStack, rotation: tuple[str, Relay]
) -> None:
    function_arn, relay = rotation
    ghcr = applied.ready["ghcr"]
    old_version, _ = _current(applied)
    relay.value = json.dumps({"username": ghcr["username"], "accessToken": ghcr["token"]})

    run = _rotate(applied, function_arn)

    # THEN every step of the real function ran and succeeded: tested at the stand-in, promoted, validated in ECR
    assert run["state"] == "succeeded", run
    assert [s["step"] for s in run["steps"]] == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert "signed in with the credential" in run["steps"][2]["message"]
    assert "validated in ECR: ghcr" in run["steps"][3]["message"]
    # AND the new version is AWSCURRENT (moved by the function), the old one AWSPREVIOUS, nothing pending
    new_version, token = _current(applied)
    assert (new_version, token) == (run["clientRequestToken"], ghcr["token"])
    labels = _labels(applied)
    assert (labels[old_version], labels[new_version]) == (["AWSPREVIOUS"], ["AWSCURRENT"])
    assert all("AWSPENDING" not in stages for stages in labels.values())
    # AND ECR takes it: the rule validates and a pull through the cache signs in at the stand-in
    ecr = applied.client("ecr")
    assert ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="ghcr")["isValid"] is True
    pulled = ecr.batch_get_image(
        repositoryName=GHCR_IMAGE[0], imageIds=[{"imageTag": GHCR_IMAGE[1]}], acceptedMediaTypes=MANIFEST_TYPES
    )
    assert (pulled["failures"], len(pulled["images"])) == ([], 1)


def test_a_wrong_token_is_refused_and_awscurrent_is_untouched(
    applied: RunningStack, rotation: tuple[str, Relay]
) -> None:
    function_arn, relay = rotation
    ghcr = applied.ready["ghcr"]
    current = _current(applied)
    relay.value = json.dumps({"username": ghcr["username"], "accessToken": "not-the-ghcr-token"})

    run = _rotate(applied, function_arn)

    # THEN the real function's testSecret was refused by the stand-in, and the run stopped there
    assert run["state"] == "failed", run
    assert [s["step"] for s in run["steps"]] == ["createSecret", "setSecret", "testSecret"]
    assert run["steps"][2]["ok"] is False
    assert "not-the-ghcr-token" not in json.dumps(run)
    # AND AWSCURRENT is the version it was, with the good token; AWSPENDING was taken off (nothing blocks)
    assert _current(applied) == current
    assert all("AWSPENDING" not in labels for labels in _labels(applied).values())
    assert applied.client("ecr").validate_pull_through_cache_rule(ecrRepositoryPrefix="ghcr")["isValid"] is True

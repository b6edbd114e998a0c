"""Rotation on the local stack, started the way users start it: ``POST /v1/credentials/{name}/rotations``.

The API stages the new token and calls the embedded Secrets Manager's ``RotateSecret`` (``ClientRequestToken`` =
the rotation id), which invokes the real rotation function (``RotatorFunction``'s host, registered under its ARN)
for each step against the token-authenticated ``ghcr.io`` stand-in. The rotation resource is followed through the
API; the embedded Secrets Manager's run record (``/_ecrcache/secrets/rotation/runs``) shows the steps it invoked.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CREDENTIAL = "ghcr"
SECRET = "ecr-pullthroughcache/ghcr"
WRONG_TOKEN = "not-the-ghcr-token"  # a token the stand-in refuses
GHCR_IMAGE = ("ghcr/ecrcache/demo", "1.0")
MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]


def _rotate(stack: RunningStack, token: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Start a rotation through the API and follow it until it ends: (the rotation, the Secrets Manager run, every
    response body read on the way)."""
    started = requests.post(f"{stack.api}/credentials/{CREDENTIAL}/rotations", json={"token": token}, timeout=30)
    assert started.status_code == 202, started.text
    bodies = [started.text]
    rotation = started.json()
    location = started.headers["Location"]
    assert location.endswith(f"/credentials/{CREDENTIAL}/rotations/{rotation['rotation_id']}")
    deadline = time.monotonic() + 120
    while rotation["state"] == "in_progress":
        if time.monotonic() > deadline:
            pytest.fail(f"the rotation did not end within 120 s: {rotation}\n{stack.log()[-3000:]}")
        time.sleep(0.5)
        answer = requests.get(f"{stack.api}/credentials/{CREDENTIAL}/rotations/{rotation['rotation_id']}", timeout=30)
        assert answer.status_code == 200, answer.text
        bodies.append(answer.text)
        rotation = answer.json()
    listed = requests.get(f"{stack.api}/credentials/{CREDENTIAL}/rotations", timeout=30)
    bodies.append(listed.text)
    assert listed.json()["items"][0]["rotation_id"] == rotation["rotation_id"]  # newest first
    return rotation, _ended_run(stack, rotation["rotation_id"], deadline), bodies


def _ended_run(stack: RunningStack, token: str, deadline: float) -> dict[str, Any]:
    """The embedded Secrets Manager's run record of the rotation, once it has ended. The rotation item turns
    ``promoted`` inside ``finishSecret``; the run ends only when that invocation has returned, a moment later."""
    while True:
        runs = requests.get(f"{stack.aws}/_ecrcache/secrets/rotation/runs", timeout=10).json()["runs"]
        (run,) = [r for r in runs if r["clientRequestToken"] == token]
        if run["state"] != "running":
            return dict(run)
        if time.monotonic() > deadline:
            pytest.fail(f"the Secrets Manager run did not end within 120 s: {run}\n{stack.log()[-3000:]}")
        time.sleep(0.2)


def _labels(stack: RunningStack) -> dict[str, list[str]]:
    stages = stack.client("secretsmanager").describe_secret(SecretId=SECRET)["VersionIdsToStages"]
    return {version: sorted(labels) for version, labels in stages.items()}


def _current(stack: RunningStack) -> tuple[str, str]:
    read = stack.client("secretsmanager").get_secret_value(SecretId=SECRET)
    return str(read["VersionId"]), str(json.loads(read["SecretString"])["accessToken"])


def _table_text(stack: RunningStack) -> str:
    """Every item of the stack's table, as text (rotation items included)."""
    items = stack.client("dynamodb").scan(TableName=stack.ready["table"])["Items"]
    return json.dumps(items)


def test_a_good_token_is_promoted_and_validated_and_ecr_pulls_with_it(applied: RunningStack) -> None:
    ghcr = applied.ready["ghcr"]
    old_version, _ = _current(applied)

    rotation, run, bodies = _rotate(applied, ghcr["token"])

    # THEN the API reports it promoted, and every step of the real function ran and succeeded: tested at the
    # stand-in, promoted, validated in ECR
    assert rotation["state"] == "promoted", rotation
    assert {name: step["status"] for name, step in rotation["steps"].items()} == dict.fromkeys(
        ("createSecret", "setSecret", "testSecret", "finishSecret"), "succeeded"
    )
    assert run["state"] == "succeeded", run
    assert [s["step"] for s in run["steps"]] == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert "signed in with the credential" in run["steps"][2]["message"]
    assert "validated in ECR: ghcr" in run["steps"][3]["message"]
    # AND the new version (the rotation id) is AWSCURRENT with the token, the old one AWSPREVIOUS, nothing pending
    new_version, token = _current(applied)
    assert (new_version, token) == (rotation["rotation_id"], ghcr["token"])
    labels = _labels(applied)
    assert (labels[old_version], labels[new_version]) == (["AWSPREVIOUS"], ["AWSCURRENT"])
    assert all("AWSPENDING" not in stages for stages in labels.values())
    # AND the token is in no response, run record or table item
    assert not [text for text in (*bodies, json.dumps(run), _table_text(applied)) if ghcr["token"] in text]
    # AND ECR takes it: the rule validates and a pull through the cache signs in at the stand-in
    ecr = applied.client("ecr")
    assert ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="ghcr")["isValid"] is True
    pulled = ecr.batch_get_image(
        repositoryName=GHCR_IMAGE[0], imageIds=[{"imageTag": GHCR_IMAGE[1]}], acceptedMediaTypes=MANIFEST_TYPES
    )
    assert (pulled["failures"], len(pulled["images"])) == ([], 1)


def test_a_wrong_token_is_refused_and_awscurrent_is_untouched(applied: RunningStack) -> None:
    current = _current(applied)

    rotation, run, bodies = _rotate(applied, WRONG_TOKEN)

    # THEN the API reports it refused; the real function's testSecret was refused by the stand-in and the run
    # stopped there
    assert rotation["state"] == "refused", rotation
    assert rotation["steps"]["testSecret"]["status"] == "failed"
    assert "finishSecret" not in rotation["steps"]
    assert run["state"] == "failed", run
    assert [s["step"] for s in run["steps"]] == ["createSecret", "setSecret", "testSecret"]
    assert run["steps"][2]["ok"] is False
    # AND the token is in no response, run record or table item
    assert not [text for text in (*bodies, json.dumps(run), _table_text(applied)) if WRONG_TOKEN in text]
    # AND AWSCURRENT is the version it was, with the good token; AWSPENDING was taken off (nothing blocks)
    assert _current(applied) == current
    assert all("AWSPENDING" not in labels for labels in _labels(applied).values())
    assert applied.client("ecr").validate_pull_through_cache_rule(ecrRepositoryPrefix="ghcr")["isValid"] is True

"""A test-local Secrets Manager ``RotateSecret`` for rotations started through the API.

moto 5.2.5's ``rotate_secret`` is not AWS's (tooling.md §2: it enables rotation only with
``AutomaticallyAfterDays``, checks ``AWSPENDING`` the wrong way round, needs the Lambda in its own backend, and
moves ``AWSCURRENT`` itself after invoking it). :class:`FakeRotateSecret` replaces the method on the API's
Secrets Manager client and does what the RotateSecret API reference and the user guide ("Rotation by Lambda
function") describe, nothing more:

* refuses with ``InvalidRequestException`` while ``AWSPENDING`` is on a version other than ``AWSCURRENT``
  ("any later invocation of RotateSecret assumes that a previous rotation request is still in progress and returns
  an error");
* configures the rotation (``RotationEnabled`` true, the function's ARN, the rules when given);
* makes the ``ClientRequestToken`` a new version carrying ``AWSPENDING`` and no value;
* invokes the rotation function's four steps, in order, with ``{"Step", "SecretId": <ARN>, "ClientRequestToken"}``
  -- later, when the test calls :meth:`FakeRotateSecret.run` (RotateSecret is asynchronous), stopping at the first
  failed step as Secrets Manager does; Secrets Manager itself moves no label.

So the tests stay valid whatever the embedded AWS's own ``RotateSecret`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tests.functional.rotation.support import STEPS, RotationWorld, _moto_secret


def _refusal(code: str, message: str) -> ClientError:
    error: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(error, "RotateSecret")


@dataclass
class FakeRotateSecret:
    world: RotationWorld
    calls: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    """Tokens whose steps were not invoked yet."""
    answers: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        name = self.world.secret
        stages = self.world.stages()
        current = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
        if any("AWSPENDING" in labels and v != current for v, labels in stages.items()):
            raise _refusal(
                "InvalidRequestException", "A previous rotation isn't complete. That rotation will be reattempted."
            )
        secret = _moto_secret(name)
        secret.rotation_requested = True  # moto's DescribeSecret reports the rotation fields only then
        secret.rotation_enabled = True
        secret.rotation_lambda_arn = kwargs["RotationLambdaARN"]
        token = kwargs["ClientRequestToken"]
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        secret.versions[token] = {"createdate": 0, "version_id": token, "version_stages": ["AWSPENDING"]}
        self.pending.append(token)
        return {"ARN": secret.arn, "Name": name, "VersionId": token}

    def run(self) -> None:
        """Invoke the steps of every rotation started so far (what the Lambda invocations do)."""
        while self.pending:
            token = self.pending.pop(0)
            for step in STEPS:
                try:
                    self.answers.append(self.world.step(step, token))
                except Exception as exc:
                    self.failures.append(exc)
                    break


def api_rotations() -> Any:
    """The API function's rotation service (module-level in ``functions/api/app.py``)."""
    from functions.api import app as api_app

    return api_app.rotations

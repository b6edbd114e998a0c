"""Rotations started through the API, on the embedded Secrets Manager's ``RotateSecret``.

``devstack.aws.secrets_rotation`` does what the RotateSecret API reference and the user guide ("Rotation by Lambda
function") describe: it refuses while ``AWSPENDING`` is on a version other than ``AWSCURRENT``, configures the
rotation, makes the ``ClientRequestToken`` a new version carrying ``AWSPENDING`` and no value, answers, and then
invokes the rotation function once per step, in order, with ``{"Step", "SecretId": <ARN>, "ClientRequestToken",
"RotationToken"}``, stopping at the first failed step; it moves no label itself. :class:`Rotator` registers the
rotation service these tests drive (:meth:`RotationWorld`'s) as the Lambda function of the ARN the API is configured
with; its invocations wait until the test calls :meth:`Rotator.run` (so a test sees the rotation before its steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecrcache.models.rotation import RotationEvent
from tests.functional.api.aws_support import HeldRotationFunction, RotateSecretCalls
from tests.functional.rotation.support import RotationWorld


@dataclass
class Rotator:
    """The stack's rotation function as the embedded Secrets Manager invokes it, and the ``RotateSecret`` requests
    the API's client sent."""

    function: HeldRotationFunction
    requests: RotateSecretCalls

    @classmethod
    def start(cls, world: RotationWorld) -> Rotator:
        def handler(event: Mapping[str, Any]) -> dict[str, str]:
            rotation = RotationEvent.model_validate(dict(event))
            return {"step": rotation.step.value, "message": world.service.handle(rotation)}

        rotations = api_rotations()
        return cls(HeldRotationFunction(rotations.function_arn, handler), RotateSecretCalls(rotations.secrets.client))

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The ``RotateSecret`` requests, as the API's client was given them."""
        return self.requests.calls

    @property
    def failures(self) -> list[BaseException]:
        """What the function's steps raised."""
        return self.function.failures

    def run(self) -> None:
        """Let Secrets Manager invoke the steps of every rotation started so far; wait until they ended."""
        self.function.run()

    def close(self) -> None:
        self.requests.close()
        self.function.close()


def api_rotations() -> Any:
    """The API function's rotation service (module-level in ``functions/api/app.py``)."""
    from functions.api import app as api_app

    return api_app.rotations

"""CloudTrail events of the ECR repository-settings writes moto serves without one.

"All API calls, including calls from the Amazon ECR console" are captured by CloudTrail (ECR User Guide,
"Logging Amazon ECR actions with AWS CloudTrail"), and EventBridge delivers them as ``AWS API Call via
CloudTrail`` events (ecr-facts §6.3). This module wraps moto's handlers of

* ``SetRepositoryPolicy`` and ``DeleteRepositoryPolicy``,
* ``PutImageTagMutability``,
* ``TagResource`` and ``UntagResource``

so each call emits its event through :func:`devstack.aws.events.emit_api_call`, like the calls the other
modules emit (``userIdentity`` from the request's credentials, ``eventSource: ecr.amazonaws.com``, the
request's Region as ``awsRegion``, ``readOnly: false``; a failed call carries ``errorCode`` /
``errorMessage`` and no ``responseElements``).

``requestParameters`` is the API request as sent (botocore member names). ``responseElements`` is the
API response restricted to the operation's output shape (botocore's model): ``registryId``,
``repositoryName``, ``policyText`` for the repository-policy calls, ``registryId``, ``repositoryName``,
``imageTagMutability`` (and its exclusion filters) for ``PutImageTagMutability``. ``TagResource`` and
``UntagResource`` answer an empty structure; their record has
``"responseElements": null`` (CloudTrail record contents: ``responseElements`` "is present in events for
actions that make changes"; what it holds for an empty answer is not documented [?]). The ECR documentation
shows no CloudTrail record of these five calls; the shape is the one the fake gives its other write calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult

from devstack.aws import events
from devstack.aws.common import output_members, request_params, wrap_response_action

__all__ = ["EVENT_NAMES", "install"]

EVENT_NAMES: Final = {
    "set_repository_policy": "SetRepositoryPolicy",
    "delete_repository_policy": "DeleteRepositoryPolicy",
    "put_image_tag_mutability": "PutImageTagMutability",
    "tag_resource": "TagResource",
    "untag_resource": "UntagResource",
}
"""moto ``ECRResponse`` handler -> the ECR operation (CloudTrail ``eventName``) it serves."""


def _response_elements(event_name: str, result: Any) -> dict[str, Any] | None:
    payload = result.result if isinstance(result, ActionResult) else None
    if not isinstance(payload, dict):
        return None
    elements = output_members(event_name, payload)
    return elements or None


def _emitting(event_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def handler(self: Any) -> Any:
            params = request_params(self)
            try:
                result = original(self)
            except ServiceException as exc:
                events.emit_api_call(self, event_name, params, None, error_code=exc.code, error_message=exc.message)
                raise
            events.emit_api_call(self, event_name, params, _response_elements(event_name, result))
            return result

        handler.__name__ = original.__name__
        handler.__doc__ = f"moto's ECR {event_name}, with its CloudTrail event (ecrcache embedded extension)."
        return handler

    return make


def install() -> None:
    """Wrap moto's handlers once (idempotent)."""
    for handler_name, event_name in EVENT_NAMES.items():
        wrap_response_action(handler_name, _emitting(event_name))

"""ECR pull-time update exclusions for moto: Register/Deregister/ListPullTimeUpdateExclusions.

Spec: botocore's ECR model (shapes ``PrincipalArn`` -- max 200 characters, pattern
``^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/...`` -- ``CreationTimestamp``, ``MaxResults`` 1-1000,
errors ``ExclusionAlreadyExistsException`` / ``ExclusionNotFoundException`` / ``LimitExceededException``)
and the ECR User Guide, "Pull-time update exclusions" and its "Considerations":

* ECR updates ``lastRecordedPullTime`` on every pull except pulls by an excluded principal ("When a
  role in the exclusion list pulls an image, the pull time remains unchanged");
* "You can configure up to 100 exclusions per account" ([doc]; ecr-facts §3.3 had it as ~100 [obs]);
  the model's ``PullTimeUpdateExclusionList`` is capped at 100 members too. The 101st registration
  answers ``LimitExceededException``. The fake keeps the list per registry (account + Region), like
  every other ECR resource here -- whether the quota is per Region is [?];
* "The default page size for listing exclusions is 100" (maxResults / nextToken paging);
* registering an existing exclusion -> ``ExclusionAlreadyExistsException``; deregistering a missing
  one -> ``ExclusionNotFoundException``. The messages are ours [?].

Who is excluded (:func:`is_excluded`): the caller's IAM principal -- for an assumed-role session its role
(``events.principal_arn``), for an IAM user the user ARN. A session ARN carries no role path, so a
registered role ARN with a path (``role/ci/warmer``) matches sessions of the role named ``warmer`` in
the same account [?]. The model's pattern also admits ``user/`` ARNs, though the guide speaks of roles.
Register/Deregister emit their CloudTrail events (write calls); List is read-only and emits none.
"""

from __future__ import annotations

from typing import Any, Final

from moto.ecr.models import ECRBackend

from devstack.aws import clock, events
from devstack.aws.common import EcrError, LimitExceededException, add_response_action, api_action, paginate
from devstack.aws.state import EcrExtState, ext_state

__all__ = [
    "MAX_EXCLUSIONS",
    "ExclusionAlreadyExistsException",
    "ExclusionNotFoundException",
    "install",
    "is_excluded",
]

#: "You can configure up to 100 exclusions per account" (ECR User Guide, Pull-time update exclusions).
MAX_EXCLUSIONS: Final = 100


class ExclusionAlreadyExistsException(EcrError):
    """The specified pull time update exclusion already exists for the registry (botocore error shape)."""

    code = "ExclusionAlreadyExistsException"


class ExclusionNotFoundException(EcrError):
    """The specified pull time update exclusion was not found (botocore error shape)."""

    code = "ExclusionNotFoundException"


def _register(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    state = ext_state(backend)
    principal = str(params["principalArn"])
    with state.lock:
        if principal in state.exclusions:
            raise ExclusionAlreadyExistsException(
                f"The pull time update exclusion for principal '{principal}' already exists "
                f"in the registry with id '{backend.account_id}'"
            )
        if len(state.exclusions) >= MAX_EXCLUSIONS:
            raise LimitExceededException(
                f"The registry with id '{backend.account_id}' already has the maximum of {MAX_EXCLUSIONS} "
                "pull time update exclusions"
            )
        created = clock.now().replace(microsecond=0)
        state.exclusions[principal] = created
    return {"principalArn": principal, "createdAt": created}


def _deregister(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    backend: ECRBackend = response.ecr_backend
    state = ext_state(backend)
    principal = str(params["principalArn"])
    with state.lock:
        if state.exclusions.pop(principal, None) is None:
            raise ExclusionNotFoundException(
                f"The pull time update exclusion for principal '{principal}' does not exist "
                f"in the registry with id '{backend.account_id}'"
            )
    return {"principalArn": principal}


def _list(response: Any, params: dict[str, Any]) -> dict[str, Any]:
    state = ext_state(response.ecr_backend)
    with state.lock:
        ordered = [arn for arn, _ in sorted(state.exclusions.items(), key=lambda item: (item[1], item[0]))]
    page, token = paginate(ordered, params.get("maxResults"), params.get("nextToken"))
    return {"pullTimeUpdateExclusions": page, "nextToken": token}


def _same_role(registered: str, principal: str) -> bool:
    """``role/<path>/<name>`` registered vs the path-less role ARN of a session: same account and name."""
    head, sep, resource = registered.partition(":role/")
    other_head, other_sep, other_resource = principal.partition(":role/")
    if not sep or not other_sep or head != other_head:
        return False
    return resource.rsplit("/", 1)[-1] == other_resource.rsplit("/", 1)[-1]


def is_excluded(state: EcrExtState, identity: events.CallerIdentity) -> bool:
    """Whether pulls by ``identity`` leave ``lastRecordedPullTime`` alone (see the module docstring)."""
    principal = events.principal_arn(identity)
    with state.lock:
        registered = list(state.exclusions)
    if principal in registered:
        return True
    return identity.type == "AssumedRole" and any(_same_role(arn, principal) for arn in registered)


def install() -> None:
    """Patch moto's ``ECRResponse`` with the three operations (idempotent)."""
    add_response_action(
        "register_pull_time_update_exclusion",
        api_action("RegisterPullTimeUpdateExclusion", _register, mutating=True),
    )
    add_response_action(
        "deregister_pull_time_update_exclusion",
        api_action("DeregisterPullTimeUpdateExclusion", _deregister, mutating=True),
    )
    add_response_action(
        "list_pull_time_update_exclusions",
        api_action("ListPullTimeUpdateExclusions", _list, mutating=False),
    )

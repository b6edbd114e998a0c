"""Secrets Manager's ``RotateSecret`` as AWS documents it, where moto 5.2.5 strays.

What AWS documents (botocore's ``secretsmanager`` model 2017-10-17, the API reference of ``RotateSecret``, the
user guide's "Rotation by Lambda function" and "How rotation works", ecr-facts §7):

* "Configures and starts the **asynchronous** process of rotating the secret": the call returns at once with
  ``ARN``, ``Name`` and ``VersionId`` (the new version); Secrets Manager then invokes the rotation function
  "once per step", in order -- ``createSecret``, ``setSecret``, ``testSecret``, ``finishSecret`` -- with
  ``{"Step", "SecretId": <the secret's ARN>, "ClientRequestToken": <the new version>, "RotationToken"}``.
  Before the first step the new version exists, labelled ``AWSPENDING``, without a value ("When rotation is
  unsuccessful, the AWSPENDING staging label might be attached to an empty secret version"; the rotation
  template's steps require the token to be in ``VersionIdsToStages``). Secrets Manager never moves
  ``AWSCURRENT`` itself: the function's ``finishSecret`` does. A failed step ends the run.
* "If the AWSPENDING staging label is present but not attached to the same version as AWSCURRENT, then any
  later invocation of RotateSecret assumes that a previous rotation request is still in progress and returns
  an error." The error is ``InvalidRequestException`` "A previous rotation isn't complete. That rotation will
  be reattempted." (reported, not documented: hashicorp/terraform-provider-aws acceptance tests,
  ``secret_rotation_test.go``; several public write-ups quote the same text).
* ``ClientRequestToken`` (32-64 characters) "helps ensure idempotency ... prevent the accidental creation of
  duplicate versions if there are failures and retries": the same token again while that rotation is running
  answers the same and starts nothing.
* ``RotationRules``: ``AutomaticallyAfterDays`` 1-1000 or ``ScheduleExpression`` (``rate()`` in hours or days,
  at most every four hours, or ``cron()``), "but not both"; ``Duration`` ``[0-9]+h``, a window that "must not
  extend into the next UTC day or into the next rotation window".
* ``RotateImmediately=false``: "Secrets Manager tests the rotation configuration by running the testSecret step
  of the Lambda rotation function. This test creates an AWSPENDING version of the secret and then removes it."
* No ``RotationLambdaARN`` now or before: ``InvalidRequestException`` "You tried to enable rotation on a secret
  that doesn't already have a Lambda function ARN configured and you didn't include such an ARN as a parameter
  in this call." (the model's text).
* A function Secrets Manager cannot invoke: ``AccessDeniedException`` "Secrets Manager cannot invoke the
  specified Lambda function. Ensure that the function policy grants access to the principal
  secretsmanager.amazonaws.com." (reported: hashicorp/terraform-provider-aws retries ``RotateSecret`` on it
  while a new function's permission propagates; the rotation configuration stays as it was). Here: an ARN no
  invoker is registered for (:mod:`devstack.aws.ports`).
* ``DescribeSecret``: ``RotationEnabled``, ``RotationLambdaARN``, ``RotationRules``, ``NextRotationDate``
  ("Secrets Manager schedules the next rotation when the previous one is complete ... adding the rotation
  interval"), ``LastRotatedDate`` (the last successful rotation).

* ``CancelRotateSecret``: "Turns off automatic rotation, and if a rotation is currently in progress, cancels the
  rotation. If you cancel a rotation in progress, it can leave the VersionStage labels in an unexpected state. You
  might need to remove the staging label AWSPENDING from the partially created version" (API reference): the answer's
  ``VersionId`` is "the version of the secret created during the rotation. This version might not be complete"; the
  SDK's example: "The operation sets the RotationEnabled field to false and cancels all scheduled rotations". So:
  ``RotationEnabled`` false, no ``NextRotationDate``, a running rotation invokes no further step (the one already
  invoked finishes) and its labels stay as they are. Not documented [?] and chosen here: the function's ARN and the
  rules stay (``RotateSecret`` without them turns rotation on again); without a rotation in progress the answer has
  no ``VersionId``.

Where moto strays (and what this module replaces): it refuses only when ``AWSPENDING`` is on the *current*
version, passes the secret's name as ``SecretId``, runs the steps synchronously through its own Lambda
backend, moves ``AWSCURRENT`` itself afterwards, copies the current value into the pending version when
``RotateImmediately`` is false, and enables rotation only with ``AutomaticallyAfterDays``; its ``CancelRotateSecret``
answers the *current* version's id as ``VersionId`` and leaves ``NextRotationDate`` set. (A function's own
``finishSecret`` moving ``AWSCURRENT`` left moto's reads without a stage on the old version: see
:mod:`.secrets_versions`.)

**Retries are reported, not specified**: "If any rotation step fails, Secrets Manager retries the entire
rotation process multiple times" (user guide, "Rotation by Lambda function"); how many times and how far
apart is not documented [?]. Here a failed run is not retried unless :attr:`settings.retries` says so
(``POST /_ecrcache/secrets/rotation/settings {"retries": N, "retryDelaySeconds": S}``); each retry runs
every step again from ``createSecret``.

Also not documented [?] and chosen here: a ``ClientRequestToken`` naming a version that already exists and is
not the running rotation's is refused (``InvalidRequestException``) -- unless it is a rotation this process
ran, then the answer is repeated; ``NextRotationDate`` is left out for ``cron()`` schedules.

Server mode: ``POST/DELETE/GET /_ecrcache/secrets/rotation/functions`` (``{"arn", "url", "timeoutSeconds"?}``)
registers a function host's Lambda ``Invoke`` URL for an ARN; ``GET /_ecrcache/secrets/rotation/runs`` lists
the runs (steps and outcomes, never a value). Module name: see the package docstring.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from moto.secretsmanager.exceptions import (
    InvalidParameterException,
    InvalidRequestException,
    OperationNotPermittedOnReplica,
    SecretNotFoundException,
    SecretsManagerClientError,
)
from moto.secretsmanager.models import FakeSecret, ReplicaSecret, SecretsManagerBackend

from devstack.aws import clock, ports
from devstack.aws.common import patch_once
from devstack.aws.secrets_deletion import MARKED_MESSAGE

__all__ = [
    "CANNOT_INVOKE_MESSAGE",
    "IN_PROGRESS_MESSAGE",
    "NO_FUNCTION_MESSAGE",
    "STEPS",
    "RotationRun",
    "RotationSettings",
    "install",
    "reset",
    "runs",
    "settings",
    "wait_idle",
]

STEPS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")
AWSCURRENT: Final = "AWSCURRENT"
AWSPENDING: Final = "AWSPENDING"
IN_PROGRESS_MESSAGE: Final = "A previous rotation isn't complete. That rotation will be reattempted."
CANNOT_INVOKE_MESSAGE: Final = (
    "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access "
    "to the principal secretsmanager.amazonaws.com."
)
NO_FUNCTION_MESSAGE: Final = (
    "You tried to enable rotation on a secret that doesn't already have a Lambda function ARN configured and you "
    "didn't include such an ARN as a parameter in this call."
)
_MARK: Final = "_ecrcache_rotation_patch"
_RULES_ATTR: Final = "_ecrcache_rotation_rules"
_RATE: Final = re.compile(r"rate\((\d+) (hour|hours|day|days)\)")
_CRON: Final = re.compile(r"cron\(([^()]+)\)")
_SCHEDULE_CHARS: Final = re.compile(r"[0-9A-Za-z\(\)#\?\*\-\/, ]+")
_DURATION: Final = re.compile(r"([0-9]+)h")


class AccessDeniedException(SecretsManagerClientError):
    def __init__(self, message: str) -> None:
        super().__init__("AccessDeniedException", message)


@dataclass
class RotationSettings:
    """Knobs of the fake (process-wide)."""

    #: How many times a failed rotation is run again, every step from ``createSecret`` (AWS: "multiple times" [?]).
    retries: int = 0
    #: Wall-clock wait before each retry.
    retry_delay: timedelta = timedelta(0)


settings = RotationSettings()


@dataclass
class StepRecord:
    step: str
    ok: bool
    message: str


@dataclass
class RotationRun:
    """One ``RotateSecret``'s run: its steps as invoked, and how it ended (``running|succeeded|failed|cancelled``)."""

    secret_arn: str
    token: str
    function_arn: str
    steps_planned: tuple[str, ...]
    state: str = "running"
    attempts: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    #: ``CancelRotateSecret`` was called while it ran: no further step is invoked.
    cancelled: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "secretArn": self.secret_arn,
            "clientRequestToken": self.token,
            "functionArn": self.function_arn,
            "state": self.state,
            "attempts": self.attempts,
            "steps": [{"step": s.step, "ok": s.ok, "message": s.message} for s in self.steps],
        }


_lock = threading.Condition(threading.RLock())
_runs: list[RotationRun] = []


def runs(secret_arn: str | None = None) -> list[RotationRun]:
    """Every run this process started (oldest first), or those of one secret."""
    with _lock:
        return [r for r in _runs if secret_arn is None or r.secret_arn == secret_arn]


def wait_idle(timeout: float = 30.0) -> bool:
    """Wait until no rotation is running; whether that happened within ``timeout`` seconds."""
    with _lock:
        return _lock.wait_for(lambda: all(r.state != "running" for r in _runs), timeout=timeout)


def reset() -> None:
    """Back to the defaults; forget finished runs (tests; running ones finish on their own)."""
    with _lock:
        _runs[:] = [r for r in _runs if r.state == "running"]
    settings.retries = 0
    settings.retry_delay = timedelta(0)


# -- validation -------------------------------------------------------------------------------------


def _check_token(token: Any) -> str | None:
    if token is None or token == "":
        return None
    if not isinstance(token, str) or not 32 <= len(token) <= 64:
        raise InvalidParameterException("ClientRequestToken must be 32-64 characters long.")
    return token


def _check_function(arn: Any) -> str | None:
    if arn is None or arn == "":
        return None
    if not isinstance(arn, str) or len(arn) > 2048:
        raise InvalidParameterException("RotationLambdaARN must be a string of at most 2048 characters.")
    return arn


def _check_days(days: Any) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 1000:
        raise InvalidParameterException("RotationRules.AutomaticallyAfterDays must be an integer within 1-1000.")


def _schedule_hours(expression: Any) -> float | None:
    """Hours between windows of a ``rate()`` expression; ``None`` for ``cron()``; raises for anything else."""
    if not isinstance(expression, str) or not 1 <= len(expression) <= 256 or not _SCHEDULE_CHARS.fullmatch(expression):
        raise InvalidParameterException(
            "RotationRules.ScheduleExpression must be 1-256 characters of [0-9A-Za-z()#?*-/, ]."
        )
    rate = _RATE.fullmatch(expression)
    if rate is not None:
        count, unit = int(rate.group(1)), rate.group(2)
        hours = count if unit.startswith("hour") else count * 24
        if count < 1 or (unit.startswith("hour") and hours < 4):
            raise InvalidParameterException(
                "RotationRules.ScheduleExpression: a secret can be rotated at most every four hours (rate(4 hours))."
            )
        return float(hours)
    cron = _CRON.fullmatch(expression)
    if cron is not None and len(cron.group(1).split()) == 6:
        return None
    raise InvalidParameterException(
        "RotationRules.ScheduleExpression must be rate(N hours|days) or cron(minutes hours day-of-month month "
        "day-of-week year)."
    )


def _check_duration(duration: Any, window_hours: float | None) -> None:
    match = _DURATION.fullmatch(duration) if isinstance(duration, str) and 2 <= len(duration) <= 3 else None
    if match is None:
        raise InvalidParameterException("RotationRules.Duration must match [0-9]+h (2-3 characters), e.g. 3h.")
    hours = int(match.group(1))
    if not 1 <= hours <= 24 or (window_hours is not None and hours > window_hours):
        raise InvalidParameterException(
            "RotationRules.Duration: the rotation window must not extend into the next UTC day or into the next "
            "rotation window."
        )


def check_rules(rules: Any) -> dict[str, Any] | None:
    """The rules as given (validated), ``None`` when none were given."""
    if rules is None:
        return None
    if not isinstance(rules, Mapping):
        raise InvalidParameterException("RotationRules must be an object.")
    unknown = set(rules) - {"AutomaticallyAfterDays", "ScheduleExpression", "Duration"}
    if unknown:
        raise InvalidParameterException(f"RotationRules has unknown members: {', '.join(sorted(unknown))}.")
    if "AutomaticallyAfterDays" in rules and "ScheduleExpression" in rules:
        raise InvalidParameterException(
            "RotationRules: set AutomaticallyAfterDays or ScheduleExpression, but not both."
        )
    window: float | None = None
    if "AutomaticallyAfterDays" in rules:
        _check_days(rules["AutomaticallyAfterDays"])
        window = 24.0
    elif "ScheduleExpression" in rules:
        window = _schedule_hours(rules["ScheduleExpression"])
    elif "Duration" in rules:
        raise InvalidParameterException("RotationRules.Duration needs AutomaticallyAfterDays or ScheduleExpression.")
    if "Duration" in rules:
        _check_duration(rules["Duration"], window)
    return dict(rules)


def _interval(rules: Mapping[str, Any]) -> timedelta | None:
    if "AutomaticallyAfterDays" in rules:
        return timedelta(days=int(rules["AutomaticallyAfterDays"]))
    if "ScheduleExpression" in rules:
        hours = _schedule_hours(rules["ScheduleExpression"])
        return timedelta(hours=hours) if hours is not None else None
    return None


# -- RotateSecret -----------------------------------------------------------------------------------


def _rotatable(backend: SecretsManagerBackend, secret_id: str) -> FakeSecret:
    if secret_id not in backend.secrets:
        raise SecretNotFoundException()
    secret = backend.secrets[secret_id]
    if isinstance(secret, ReplicaSecret):
        raise OperationNotPermittedOnReplica
    if secret.is_deleted():
        raise InvalidRequestException(MARKED_MESSAGE)
    assert isinstance(secret, FakeSecret)
    return secret


def _pending_elsewhere(secret: FakeSecret) -> str | None:
    """The version ``AWSPENDING`` is on, when that is not the ``AWSCURRENT`` one (a rotation in progress)."""
    for version_id, version in secret.versions.items():
        stages = version.get("version_stages", [])
        if AWSPENDING in stages and AWSCURRENT not in stages:
            return str(version_id)
    return None


def _running(secret_arn: str, token: str) -> RotationRun | None:
    found = (r for r in _runs if r.secret_arn == secret_arn and r.token == token and r.state == "running")
    return next((r for r in found if not r.cancelled), None)


def _answer(secret: FakeSecret, token: str) -> str:
    return json.dumps({"ARN": secret.arn, "Name": secret.name, "VersionId": token})


def _replay(secret: FakeSecret, token: str | None) -> str | None:
    """The answer again for a request already taken (same token), else ``None``; raises when refused."""
    pending = _pending_elsewhere(secret)
    if pending is not None:
        if token is not None and pending == token and _running(secret.arn, token) is not None:
            return _answer(secret, token)
        raise InvalidRequestException(IN_PROGRESS_MESSAGE)
    if token is not None and token in secret.versions:
        if any(r.secret_arn == secret.arn and r.token == token for r in _runs):
            return _answer(secret, token)
        raise InvalidRequestException(
            f"ClientRequestToken {token} already names a version of this secret that is not being rotated."
        )
    return None


def _configure(secret: FakeSecret, function_arn: str, rules: dict[str, Any] | None) -> None:
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = function_arn
    if rules is not None:
        setattr(secret, _RULES_ATTR, rules)
        secret.auto_rotate_after_days = int(rules.get("AutomaticallyAfterDays", 0))
        _schedule_next(secret, clock.now())


def _schedule_next(secret: FakeSecret, after: datetime) -> None:
    interval = _interval(getattr(secret, _RULES_ATTR, {}))
    secret.next_rotation_date = int((after + interval).timestamp()) if interval is not None else None


def _stage_placeholder(secret: FakeSecret, token: str) -> None:
    """The new version: ``AWSPENDING``, no value (the label leaves the current version, if it was there)."""
    secret.remove_version_stages_from_old_versions([AWSPENDING])
    created = int(clock.epoch_seconds())
    versions = secret.versions.copy()  # a new dict, swapped in: a request thread iterating the old one is unaffected
    versions[token] = {"createdate": created, "version_id": token, "version_stages": [AWSPENDING]}
    secret.versions = versions


def _rotate_secret(original: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(original)
    def rotate_secret(  # noqa: PLR0917 - moto's signature (its responses pass keywords)
        self: SecretsManagerBackend,
        secret_id: str,
        client_request_token: str | None = None,
        rotation_lambda_arn: str | None = None,
        rotation_rules: dict[str, Any] | None = None,
        rotate_immediately: bool = True,
    ) -> str:
        secret = _rotatable(self, secret_id)
        token = _check_token(client_request_token)
        function_arn = _check_function(rotation_lambda_arn) or secret.rotation_lambda_arn or None
        rules = check_rules(rotation_rules)
        with _lock:
            replayed = _replay(secret, token)
            if replayed is not None:
                return replayed
            if function_arn is None:
                raise InvalidRequestException(NO_FUNCTION_MESSAGE)
            invoker = ports.lambda_invoker(function_arn)
            if invoker is None:
                raise AccessDeniedException(CANNOT_INVOKE_MESSAGE)
            _configure(secret, function_arn, rules)
            token = token or str(uuid.uuid4())
            _stage_placeholder(secret, token)
            steps = STEPS if rotate_immediately else ("testSecret",)
            run = RotationRun(secret.arn, token, function_arn, steps)
            _runs.append(run)
        threading.Thread(
            target=_run, args=(secret, run, invoker, rotate_immediately), name="ecrcache-rotation", daemon=True
        ).start()
        return _answer(secret, token)

    return rotate_secret


# -- the run ----------------------------------------------------------------------------------------


def _attempt(run: RotationRun, invoker: ports.LambdaInvoker) -> bool:
    """Every planned step once, in order, stopping at the first that fails; whether all succeeded."""
    for step in run.steps_planned:
        with _lock:
            if run.cancelled:
                return False
        event = {
            "Step": step,
            "SecretId": run.secret_arn,
            "ClientRequestToken": run.token,
            "RotationToken": str(uuid.uuid4()),
        }
        try:
            result = invoker(event)
        except Exception as exc:  # the function failed: the run stops here, as in Secrets Manager
            with _lock:
                run.steps.append(StepRecord(step, False, str(exc) or type(exc).__name__))
            return False
        with _lock:
            run.steps.append(StepRecord(step, True, _summary(result)))
    return True


def _summary(result: Any) -> str:
    if isinstance(result, Mapping) and isinstance(result.get("message"), str):
        return str(result["message"])
    return "" if result is None else json.dumps(result, default=str)[:500]


def _run(secret: FakeSecret, run: RotationRun, invoker: ports.LambdaInvoker, immediately: bool) -> None:
    succeeded = False
    try:
        for attempt in range(settings.retries + 1):
            if attempt and settings.retry_delay > timedelta(0):
                threading.Event().wait(settings.retry_delay.total_seconds())
            if run.cancelled:
                break
            with _lock:
                run.attempts = attempt + 1
            succeeded = _attempt(run, invoker)
            if succeeded:
                break
    finally:
        with _lock:
            _end(secret, run, succeeded=succeeded, immediately=immediately)
            _lock.notify_all()


def _end(secret: FakeSecret, run: RotationRun, *, succeeded: bool, immediately: bool) -> None:
    if run.cancelled:  # the labels stay as the cancelled rotation left them (CancelRotateSecret)
        run.state = "cancelled"
        return
    if not immediately:
        _remove_test_version(secret, run.token)
    elif succeeded:
        secret.last_rotation_date = int(clock.epoch_seconds())
        _schedule_next(secret, clock.now())
    run.state = "succeeded" if succeeded else "failed"


def _remove_test_version(secret: FakeSecret, token: str) -> None:
    """``RotateImmediately=false``: the test "creates an AWSPENDING version of the secret and then removes it"."""
    version = secret.versions.get(token)
    if version is None:
        return
    stages = [s for s in version.get("version_stages", []) if s != AWSPENDING]
    if stages:
        version["version_stages"] = stages
    else:
        # Runs on the rotation's thread: a new dict swapped in, never a pop from the one moto's request threads
        # may be iterating (DescribeSecret would fail with "dictionary changed size during iteration").
        versions = secret.versions.copy()
        versions.pop(token, None)
        secret.versions = versions


# -- CancelRotateSecret -----------------------------------------------------------------------------


def _cancel_rotate_secret(original: Callable[..., str]) -> Callable[..., str]:
    """moto's checks (no such secret, a replica, marked for deletion, no function ever configured), then AWS's
    ``CancelRotateSecret`` (module docstring)."""

    @functools.wraps(original)
    def cancel_rotate_secret(self: SecretsManagerBackend, secret_id: str) -> str:
        original(self, secret_id)  # its refusals; it sets RotationEnabled false
        secret = self.secrets[secret_id]
        assert isinstance(secret, FakeSecret)
        with _lock:
            secret.rotation_enabled = False
            secret.next_rotation_date = None
            for run in _runs:
                if run.secret_arn == secret.arn and run.state == "running":
                    run.cancelled = True
            answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
            pending = _pending_elsewhere(secret)
            if pending is not None:
                answer["VersionId"] = pending
        return json.dumps(answer)

    return cancel_rotate_secret


# -- DescribeSecret ---------------------------------------------------------------------------------


def _describing(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``RotationRules`` as set (moto always answers ``AutomaticallyAfterDays``, 0 when unset: not a valid value)."""

    @functools.wraps(original)
    def to_dict(self: FakeSecret) -> dict[str, Any]:
        answer = original(self)
        if "RotationRules" in answer and (hasattr(self, _RULES_ATTR) or not self.auto_rotate_after_days):
            rules = dict(getattr(self, _RULES_ATTR, {}))
            if "ScheduleExpression" in rules and (interval := _interval(rules)) is not None and interval.days:
                rules["AutomaticallyAfterDays"] = interval.days  # "calculated from the rotation schedule"
            if rules:
                answer["RotationRules"] = rules
            else:
                answer.pop("RotationRules")
        if answer.get("NextRotationDate") is None:
            answer.pop("NextRotationDate", None)
        return answer

    return to_dict


# -- install and endpoints --------------------------------------------------------------------------


_patch: Final = functools.partial(patch_once, mark=_MARK)
"""Wrap a moto method once (this extension's mark: :func:`devstack.aws.common.patch_once`)."""


def install() -> None:
    """Replace moto's ``RotateSecret`` and ``CancelRotateSecret`` once (idempotent, like the ECR extension)."""
    _patch(SecretsManagerBackend, "rotate_secret", _rotate_secret)
    _patch(SecretsManagerBackend, "cancel_rotate_secret", _cancel_rotate_secret)
    _patch(FakeSecret, "to_dict", _describing)
    _install_endpoints()


def _install_endpoints() -> None:
    from devstack.aws import server  # noqa: PLC0415 - the server module imports this package

    server.register_endpoint("POST", "secrets/rotation/functions", _endpoint_register)
    server.register_endpoint("DELETE", "secrets/rotation/functions", _endpoint_unregister)
    server.register_endpoint("GET", "secrets/rotation/functions", _endpoint_functions)
    server.register_endpoint("GET", "secrets/rotation/runs", _endpoint_runs)
    server.register_endpoint("POST", "secrets/rotation/settings", _endpoint_settings)


def _endpoint_register(body: dict[str, Any]) -> dict[str, Any]:
    from devstack.aws import server  # noqa: PLC0415

    arn, url, timeout = body.get("arn"), body.get("url"), body.get("timeoutSeconds", 900)
    if not isinstance(arn, str) or not arn.startswith("arn:") or ":lambda:" not in arn:
        raise server.EndpointError("'arn' must be a Lambda function ARN")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise server.EndpointError("'timeoutSeconds' must be a positive number")
    try:
        invoker = ports.HttpLambdaInvoker(str(url), timeout=float(timeout))
    except ValueError as exc:
        raise server.EndpointError(str(exc)) from exc
    ports.register_lambda(arn, invoker)
    return {"arn": arn, "url": invoker.url}


def _endpoint_unregister(body: dict[str, Any]) -> dict[str, Any]:
    return {"removed": ports.unregister_lambda(str(body.get("arn", "")))}


def _endpoint_functions(_: dict[str, Any]) -> dict[str, Any]:
    return {
        "functions": [
            {"arn": arn, "url": getattr(invoker, "url", None)} for arn, invoker in ports.registered_lambdas().items()
        ]
    }


def _endpoint_runs(body: dict[str, Any]) -> dict[str, Any]:
    arn = body.get("secretArn")
    return {"runs": [r.as_json() for r in runs(arn if isinstance(arn, str) else None)]}


def _endpoint_settings(body: dict[str, Any]) -> dict[str, Any]:
    from devstack.aws import server  # noqa: PLC0415

    if "retries" in body:
        retries = body["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise server.EndpointError("'retries' must be a non-negative integer")
        settings.retries = retries
    if "retryDelaySeconds" in body:
        delay = body["retryDelaySeconds"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise server.EndpointError("'retryDelaySeconds' must be a non-negative number")
        settings.retry_delay = timedelta(seconds=float(delay))
    return {"retries": settings.retries, "retryDelaySeconds": settings.retry_delay.total_seconds()}

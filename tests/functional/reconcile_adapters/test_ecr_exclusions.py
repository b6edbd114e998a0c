"""The ECR adapter's pull-time update exclusions: list (every page), register, deregister, every failure.

On the embedded AWS (its ECR implements the three operations per botocore's model and the ECR User
Guide); ECR answers the embedded AWS cannot be made to give on demand (throttling after botocore's
retries, a 5xx, access denied, a second page) come from botocore's ``Stubber``.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from botocore.stub import Stubber

from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, PlannedAction
from ecrcache.errors import RetryableError, TerminalError
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile_adapters.conftest import Ecr

pytestmark = pytest.mark.functional

WARMER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/ecrcache-WarmWorkerFunctionRole-AB12"
SCANNER: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/security-scanner"
MAX_EXCLUSIONS: Final = 100  # "You can configure up to 100 exclusions per account" (ECR User Guide)


def exclusion(kind: ActionKind, principal: str = WARMER) -> PlannedAction:
    return PlannedAction(
        kind=kind,
        region=REGION,
        target=principal,
        rule_prefix=REGISTRY_LEVEL,
        reason="test",
        request={"principalArn": principal},
    )


def listed(ecr: Ecr) -> set[str]:
    return set(ecr.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"])


# --------------------------------------------------------------------------------------------------
# list


def test_pull_time_exclusions_lists_every_registered_principal(ecr: Ecr) -> None:
    assert ecr.registry.pull_time_exclusions() == frozenset()
    for principal in (WARMER, SCANNER):
        ecr.ecr.register_pull_time_update_exclusion(principalArn=principal)
    assert ecr.registry.pull_time_exclusions() == {WARMER, SCANNER}
    assert ecr.registry.calls["ListPullTimeUpdateExclusions"] == 2
    assert ecr.registry.writes == 0  # a read


def test_pull_time_exclusions_follows_next_token_across_pages(ecr: Ecr) -> None:
    # GIVEN ECR answers in two pages (no botocore paginator exists for this operation)
    registry = Boto3EcrRegistry(REGION)
    with Stubber(registry.client) as stub:
        stub.add_response(
            "list_pull_time_update_exclusions",
            {"pullTimeUpdateExclusions": [WARMER], "nextToken": "page-2"},
            {"maxResults": 1000},
        )
        stub.add_response(
            "list_pull_time_update_exclusions",
            {"pullTimeUpdateExclusions": [SCANNER]},
            {"maxResults": 1000, "nextToken": "page-2"},
        )
        # WHEN listed THEN both pages are read, with the token of the first
        assert registry.pull_time_exclusions() == {WARMER, SCANNER}
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("ServerException", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
        ("ValidationException", 400, TerminalError),
    ],
)
def test_pull_time_exclusions_raises_a_classified_error(
    ecr: Ecr, code: str, status: int, expected: type[Exception]
) -> None:
    registry = Boto3EcrRegistry(REGION)
    with Stubber(registry.client) as stub:
        stub.add_client_error("list_pull_time_update_exclusions", code, f"injected {code}", status)
        with pytest.raises(expected, match=f"ListPullTimeUpdateExclusions failed with {code}"):
            registry.pull_time_exclusions()


# --------------------------------------------------------------------------------------------------
# register / deregister on the embedded AWS


def test_register_then_deregister_the_principal(ecr: Ecr) -> None:
    result = ecr.registry.apply(exclusion(ActionKind.REGISTER_EXCLUSION))
    assert (result.ok, result.existed) == (True, False)
    assert listed(ecr) == {WARMER}
    result = ecr.registry.apply(exclusion(ActionKind.DEREGISTER_EXCLUSION))
    assert (result.ok, result.existed) == (True, False)
    assert listed(ecr) == set()
    assert ecr.registry.writes == 2


def test_register_of_an_existing_exclusion_is_ok_but_says_it_existed(ecr: Ecr) -> None:
    # GIVEN someone registered the warmer already
    ecr.ecr.register_pull_time_update_exclusion(principalArn=WARMER)
    # WHEN the adapter registers it THEN the goal holds, and the result says this call made nothing
    result = ecr.registry.apply(exclusion(ActionKind.REGISTER_EXCLUSION))
    assert (result.ok, result.existed, result.code) == (True, True, None)
    assert listed(ecr) == {WARMER}


def test_deregister_of_a_missing_exclusion_is_ok_already_gone(ecr: Ecr) -> None:
    ecr.ecr.register_pull_time_update_exclusion(principalArn=SCANNER)
    result = ecr.registry.apply(exclusion(ActionKind.DEREGISTER_EXCLUSION))
    assert (result.ok, result.existed) == (True, False)
    assert result.message is not None and "ExclusionNotFoundException" in result.message
    assert listed(ecr) == {SCANNER}  # nothing else touched


def test_register_over_the_quota_is_terminal_at_once_and_says_what_to_do(ecr: Ecr) -> None:
    # GIVEN the account's 100 exclusions are taken
    for n in range(MAX_EXCLUSIONS):
        ecr.ecr.register_pull_time_update_exclusion(principalArn=f"arn:aws:iam::{ACCOUNT_ID}:role/r{n}")
    # WHEN the warmer is registered
    result = ecr.registry.apply(exclusion(ActionKind.REGISTER_EXCLUSION))
    # THEN a terminal failure naming ECR's code and the quota; no wait, nothing registered
    assert (result.ok, result.retryable, result.code) == (False, False, "LimitExceededException")
    assert result.message is not None and "100 pull-time update exclusions per account" in result.message
    assert ecr.sleeps.delays == []
    assert WARMER not in listed(ecr)


def test_a_principal_ecr_rejects_is_terminal(ecr: Ecr) -> None:
    # botocore validates the request's length; ECR's own pattern check answers a ValidationException
    session = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/warmer/run-1"
    result = ecr.registry.apply(exclusion(ActionKind.REGISTER_EXCLUSION, session))
    assert (result.ok, result.retryable, result.code) == (False, False, "ValidationException")


# --------------------------------------------------------------------------------------------------
# every failure class through Stubber (ECR's answers after botocore's own retries)


STUBBED: Final[dict[ActionKind, str]] = {
    ActionKind.REGISTER_EXCLUSION: "register_pull_time_update_exclusion",
    ActionKind.DEREGISTER_EXCLUSION: "deregister_pull_time_update_exclusion",
}


@pytest.mark.parametrize("kind", list(STUBBED))
@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("ThrottlingException", 400, True),
        ("ServerException", 500, True),
        ("AccessDeniedException", 400, False),
        ("InvalidParameterException", 400, False),
        ("LimitExceededException", 400, False),
    ],
)
def test_apply_classifies_each_stubbed_failure(
    *, ecr: Ecr, kind: ActionKind, code: str, status: int, retryable: bool
) -> None:
    registry = Boto3EcrRegistry(REGION, sleep=ecr.sleeps)
    expected: dict[str, Any] = {"principalArn": WARMER}
    with Stubber(registry.client) as stub:
        stub.add_client_error(STUBBED[kind], code, f"injected {code}", status, expected_params=expected)
        result = registry.apply(exclusion(kind))
        stub.assert_no_pending_responses()
    # THEN a failure result, never an exception: retryable for throttling and 5xx, terminal otherwise
    assert (result.ok, result.retryable, result.code) == (False, retryable, code)
    assert result.message is not None and code in result.message
    assert not result.existed


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ActionKind.REGISTER_EXCLUSION, "ExclusionAlreadyExistsException"),
        (ActionKind.DEREGISTER_EXCLUSION, "ExclusionNotFoundException"),
    ],
)
def test_apply_takes_the_stubbed_done_answers_as_success(ecr: Ecr, kind: ActionKind, code: str) -> None:
    registry = Boto3EcrRegistry(REGION)
    with Stubber(registry.client) as stub:
        stub.add_client_error(STUBBED[kind], code, f"injected {code}", 400)
        result = registry.apply(exclusion(kind))
    assert result.ok
    assert result.existed is (kind is ActionKind.REGISTER_EXCLUSION)


def test_forget_exclusion_makes_no_call(ecr: Ecr) -> None:
    forget = exclusion(ActionKind.FORGET_EXCLUSION).model_copy(update={"request": {}})
    assert ecr.registry.apply(forget).ok
    assert sum(ecr.registry.calls.values()) == 0

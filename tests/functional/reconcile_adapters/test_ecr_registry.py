"""The ECR adapter on the embedded AWS: observe (fast and deep), every action kind, idempotence, failures."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS, WRITE_OPERATIONS, Boto3EcrRegistry
from ecrcache.engine.deadline import Deadline
from ecrcache.engine.essence import rule_essence
from ecrcache.engine.plan import ActionKind, PlannedAction
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints, ObservedRule, RepositoryDetails
from ecrcache.ports import EcrRegistry
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.reconcile_adapters.conftest import LIFECYCLE_TEXT, POLICY_TEXT, Ecr

pytestmark = pytest.mark.functional

FAST_PATH_OPERATIONS = {"DescribePullThroughCacheRules", "DescribeRepositoryCreationTemplates", "DescribeRepositories"}
LATE_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:ecr-pullthroughcache/late"


def act(
    kind: ActionKind,
    target: str,
    request: dict[str, Any] | None = None,
    *,
    before: dict[str, Any] | None = None,
) -> PlannedAction:
    return PlannedAction(
        kind=kind,
        region=REGION,
        target=target,
        rule_prefix=target.split("/", maxsplit=1)[0],
        reason="test",
        request=request or {},
        before=before,
    )


def ecr_public_rule(prefix: str = "ecr-public") -> dict[str, Any]:
    return {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": "public.ecr.aws", "upstreamRegistry": "ecr-public"}


def docker_hub_rule(credential_arn: str, prefix: str = "docker-hub") -> dict[str, Any]:
    return {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": "registry-1.docker.io",
        "upstreamRegistry": "docker-hub",
        "credentialArn": credential_arn,
    }


def template_request(prefix: str = "docker-hub", **extra: Any) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "appliedFor": ["PULL_THROUGH_CACHE"],
        "imageTagMutability": "MUTABLE",
        "encryptionConfiguration": {"encryptionType": "AES256"},
        "lifecyclePolicy": LIFECYCLE_TEXT,
        **extra,
    }


def rules(ecr: Ecr) -> dict[str, dict[str, Any]]:
    items = ecr.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    return {str(r["ecrRepositoryPrefix"]): dict(r) for r in items}


def templates(ecr: Ecr) -> dict[str, dict[str, Any]]:
    items = ecr.ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]
    return {str(t["prefix"]): dict(t) for t in items}


# --------------------------------------------------------------------------------------------------
# observe


def test_observe_fast_path_reads_only_describe_calls_one_page_per_thousand_repositories(ecr: Ecr) -> None:
    # GIVEN a managed and an unmanaged rule, a template, and 1,000 repositories under docker-hub/ plus
    # two outside it (one whose name merely starts with "docker-hub")
    ecr.registry.apply(
        act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(ecr.secret("ecr-pullthroughcache/hub")))
    )
    ecr.ecr.create_pull_through_cache_rule(**ecr_public_rule("someone-elses"))
    ecr.ecr.create_repository_creation_template(**template_request())
    names = [f"docker-hub/library/image-{i:04d}" for i in range(1000)]
    for name in names:
        ecr.repository(name)
    ecr.repository("docker-hubx/other")
    ecr.repository("team/app")
    applied = {names[0]: AppliedFingerprints(lifecycle="abc")}
    ecr.registry.calls.clear()
    # WHEN the registry observes the docker-hub prefix on the fast path
    observed = ecr.registry.observe(prefixes=["docker-hub"], deep=False, applied=applied)
    # THEN it sees every rule (unmanaged too) and template, and exactly the repositories under docker-hub/
    assert set(observed.rules) == {"docker-hub", "someone-elses"}
    assert observed.rules["someone-elses"].upstream_repository_prefix == "ROOT"
    assert observed.rules["docker-hub"].upstream_registry == "docker-hub"
    assert set(observed.templates) == {"docker-hub"}
    assert observed.templates["docker-hub"].lifecycle_policy == LIFECYCLE_TEXT
    assert sorted(observed.repositories) == names
    # AND no repository was read one by one: details are absent, applied records attached
    assert all(repo.details is None for repo in observed.repositories.values())
    assert observed.repositories[names[0]].applied == AppliedFingerprints(lifecycle="abc")
    assert observed.repositories[names[1]].applied is None
    assert observed.repositories[names[0]].arn.endswith(f":repository/{names[0]}")
    # AND the calls were Describe* only: one DescribeRepositories per 1,000 repositories, no writes
    assert set(ecr.registry.calls) == FAST_PATH_OPERATIONS
    assert ecr.registry.calls["DescribeRepositories"] == math.ceil(1002 / 1000)
    assert ecr.registry.writes == 0
    assert not PER_REPOSITORY_READS & set(ecr.registry.calls)


def test_observe_deep_reads_lifecycle_policy_and_tags_of_each_repository(ecr: Ecr) -> None:
    # GIVEN three cached repositories: one with a lifecycle policy, a policy and tags, two bare
    full = "quay/argoproj/argocd"
    arn = ecr.repository(full)
    ecr.repository("quay/prometheus/node-exporter")
    ecr.repository("quay/coreos/etcd")
    ecr.ecr.put_lifecycle_policy(repositoryName=full, lifecyclePolicyText=LIFECYCLE_TEXT)
    ecr.ecr.set_repository_policy(repositoryName=full, policyText=POLICY_TEXT)
    ecr.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "platform"}])
    # WHEN the registry observes deeply
    observed = ecr.registry.observe(prefixes=["quay/"], deep=True, applied={})
    # THEN every repository carries its details (absent policies are None, not errors)
    details = {name: repo.details for name, repo in observed.repositories.items()}
    assert details[full] == RepositoryDetails(
        lifecycle_policy=LIFECYCLE_TEXT, repository_policy=POLICY_TEXT, tags={"team": "platform"}
    )
    assert details["quay/coreos/etcd"] == RepositoryDetails()
    # AND it made three reads per repository
    for operation in PER_REPOSITORY_READS:
        assert ecr.registry.calls[operation] == 3


def test_observe_deep_reads_only_the_named_repositories(ecr: Ecr) -> None:
    # GIVEN two repositories under the prefix
    ecr.repository("ghcr/org/a")
    ecr.repository("ghcr/org/b")
    # WHEN only one is named for the deep read
    observed = ecr.registry.observe(prefixes=["ghcr"], deep={"ghcr/org/b", "not/listed"}, applied={})
    # THEN only that one has details, and only it was read
    assert observed.repositories["ghcr/org/a"].details is None
    assert observed.repositories["ghcr/org/b"].details == RepositoryDetails()
    assert ecr.registry.calls["ListTagsForResource"] == 1


@pytest.mark.parametrize("workers", [1, 4])
def test_observe_deep_stops_reading_when_asked_and_lists_the_rest_as_unread(ecr: Ecr, workers: int) -> None:
    # GIVEN six repositories, and a budget that runs out after two deep reads (asked before each one)
    names = [f"quay/org/image-{i}" for i in range(6)]
    for name in names:
        ecr.repository(name)
    registry = Boto3EcrRegistry(REGION, ecr.registry.client, deep_read_workers=workers)
    asked: list[int] = []
    lock = threading.Lock()

    def stop() -> bool:
        with lock:  # the deep read asks from its worker threads
            asked.append(1)
            return len(asked) > 2

    # WHEN observed deeply with that stop
    observed = registry.observe(prefixes=["quay"], deep=True, applied={}, stop=stop)
    # THEN two repositories were read deeply, the other four are listed (fast path: no details) as unread
    read = sorted(name for name, repo in observed.repositories.items() if repo.details is not None)
    assert len(read) == 2
    assert sorted(observed.unread) == sorted(set(names) - set(read))
    assert set(observed.repositories) == set(names)
    assert registry.calls["ListTagsForResource"] == 2
    # AND without a stop every repository is read (nothing unread)
    assert registry.observe(prefixes=["quay"], deep=True, applied={}).unread == ()


def test_observe_root_prefix_keeps_every_repository(ecr: Ecr) -> None:
    # GIVEN repositories with and without a prefix
    for name in ("nginx", "team/app", "docker-hub/library/node"):
        ecr.repository(name)
    # WHEN the ROOT prefix is observed THEN all of them are in scope (the planner decides who owns what)
    observed = ecr.registry.observe(prefixes=["ROOT"], deep=False, applied={})
    assert set(observed.repositories) == {"nginx", "team/app", "docker-hub/library/node"}
    # AND with no prefix no repository is
    assert ecr.registry.observe(prefixes=[], deep=False, applied={}).repositories == {}


def test_observe_drops_a_repository_deleted_before_its_deep_read(ecr: Ecr, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a repository that disappears between DescribeRepositories and the deep read
    ecr.repository("k8s/pause")
    real = ecr.registry.client.get_lifecycle_policy

    def gone(**kwargs: Any) -> Any:
        ecr.ecr.delete_repository(repositoryName="k8s/pause", force=True)
        return real(**kwargs)

    monkeypatch.setattr(ecr.registry.client, "get_lifecycle_policy", gone)
    # WHEN it is observed deeply THEN it is simply not there
    assert ecr.registry.observe(prefixes=["k8s"], deep=True, applied={}).repositories == {}


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("ServerException", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
@pytest.mark.parametrize("method", ["describe_repositories", "get_repository_policy", "list_tags_for_resource"])
def test_observe_raises_a_classified_error_when_a_read_fails(
    *, ecr: Ecr, monkeypatch: pytest.MonkeyPatch, method: str, code: str, status: int, expected: type[Exception]
) -> None:
    # GIVEN a repository and a read that fails
    ecr.repository("ecr-public/nginx/nginx")
    monkeypatch.setattr(ecr.registry.client, method, raiser(code, status, method))
    # WHEN the registry observes deeply THEN the failure surfaces as a domain error naming the call
    with pytest.raises(expected, match=code):
        ecr.registry.observe(prefixes=["ecr-public"], deep=True, applied={})


# --------------------------------------------------------------------------------------------------
# apply: every kind, visible in ECR afterwards


def test_apply_create_update_delete_rule(ecr: Ecr) -> None:
    first, second = ecr.secret("ecr-pullthroughcache/one"), ecr.secret("ecr-pullthroughcache/two")
    # WHEN a rule is created THEN ECR holds it
    assert ecr.registry.apply(act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(first))).ok
    assert rules(ecr)["docker-hub"]["credentialArn"] == first
    # WHEN its credential is updated THEN ECR holds the new one
    update = {"ecrRepositoryPrefix": "docker-hub", "credentialArn": second}
    assert ecr.registry.apply(act(ActionKind.UPDATE_RULE, "docker-hub", update)).ok
    assert rules(ecr)["docker-hub"]["credentialArn"] == second
    # WHEN it is deleted THEN it is gone
    assert ecr.registry.apply(act(ActionKind.DELETE_RULE, "docker-hub", {"ecrRepositoryPrefix": "docker-hub"})).ok
    assert rules(ecr) == {}
    assert ecr.registry.calls["CreatePullThroughCacheRule"] == 1
    assert ecr.registry.writes == 3


def test_apply_replace_rule_deletes_then_creates(ecr: Ecr) -> None:
    # GIVEN a rule whose upstream must change (immutable: delete + create)
    ecr.ecr.create_pull_through_cache_rule(**ecr_public_rule("mirror"))
    create = {"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": "registry.k8s.io", "upstreamRegistry": "k8s"}
    action = act(
        ActionKind.REPLACE_RULE,
        "mirror",
        {"delete": {"ecrRepositoryPrefix": "mirror"}, "create": create},
        before=rules(ecr)["mirror"] | {"createdAt": None, "updatedAt": None},
    )
    # WHEN the replace is applied (twice: at-least-once delivery)
    first, again = ecr.registry.apply(action), ecr.registry.apply(action)
    # THEN ECR holds the new rule
    assert first.ok and again.ok
    assert rules(ecr)["mirror"]["upstreamRegistryUrl"] == "registry.k8s.io"
    assert ecr.registry.calls["DeletePullThroughCacheRule"] == 2


@pytest.mark.parametrize("before_shape", ["ecr", "essence"])
def test_apply_replace_rule_restores_the_old_rule_when_the_create_fails(ecr: Ecr, before_shape: str) -> None:
    # GIVEN a rule and a replacement ECR refuses (docker-hub needs a credential)
    ecr.ecr.create_pull_through_cache_rule(**ecr_public_rule("mirror"))
    before: dict[str, Any] = (
        {"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": "public.ecr.aws", "upstreamRegistry": "ecr-public"}
        if before_shape == "ecr"
        else dict(rule_essence(ObservedRule.from_ecr(ecr_public_rule("mirror"))))  # what the planner puts there
    )
    create = {"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": "registry-1.docker.io"}
    action = act(
        ActionKind.REPLACE_RULE,
        "mirror",
        {"delete": {"ecrRepositoryPrefix": "mirror"}, "create": create},
        before=before,
    )
    # WHEN the replace is applied
    result = ecr.registry.apply(action)
    # THEN it reports the create's terminal failure, and the old rule is back
    assert not result.ok
    assert not result.retryable
    assert result.code == "UnsupportedUpstreamRegistryException"
    assert result.message is not None
    assert "the old rule was restored" in result.message
    assert rules(ecr)["mirror"]["upstreamRegistryUrl"] == "public.ecr.aws"


def test_apply_replace_rule_without_before_reports_it_could_not_restore(ecr: Ecr) -> None:
    ecr.ecr.create_pull_through_cache_rule(**ecr_public_rule("mirror"))
    create = {"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": "registry-1.docker.io"}
    result = ecr.registry.apply(
        act(ActionKind.REPLACE_RULE, "mirror", {"delete": {"ecrRepositoryPrefix": "mirror"}, "create": create})
    )
    assert not result.ok
    assert result.message is not None
    assert "not restored" in result.message


def test_apply_replace_rule_with_a_malformed_request_is_terminal(ecr: Ecr) -> None:
    result = ecr.registry.apply(act(ActionKind.REPLACE_RULE, "mirror", {"create": ecr_public_rule("mirror")}))
    assert (result.ok, result.retryable, result.code) == (False, False, "InvalidPlan")
    assert ecr.registry.writes == 0


def test_apply_create_update_delete_template(ecr: Ecr) -> None:
    # WHEN a template is created, updated and deleted THEN ECR follows each step
    assert ecr.registry.apply(act(ActionKind.CREATE_TEMPLATE, "quay", template_request("quay"))).ok
    assert templates(ecr)["quay"]["lifecyclePolicy"] == LIFECYCLE_TEXT
    update = template_request("quay", resourceTags=[{"Key": "team", "Value": "platform"}], lifecyclePolicy="")
    update["customRoleArn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/ecr-creation"
    assert ecr.registry.apply(act(ActionKind.UPDATE_TEMPLATE, "quay", update)).ok
    assert templates(ecr)["quay"]["resourceTags"] == [{"Key": "team", "Value": "platform"}]
    assert ecr.registry.apply(act(ActionKind.DELETE_TEMPLATE, "quay", {"prefix": "quay"})).ok
    assert templates(ecr) == {}


def test_apply_repository_settings(ecr: Ecr) -> None:
    name = "docker-hub/library/node"
    arn = ecr.repository(name)
    # WHEN each repository action is applied
    steps = [
        act(ActionKind.PUT_LIFECYCLE_POLICY, name, {"repositoryName": name, "lifecyclePolicyText": LIFECYCLE_TEXT}),
        act(ActionKind.SET_REPOSITORY_POLICY, name, {"repositoryName": name, "policyText": POLICY_TEXT}),
        act(ActionKind.TAG_REPOSITORY, name, {"resourceArn": arn, "tags": [{"Key": "team", "Value": "platform"}]}),
        act(
            ActionKind.PUT_IMAGE_TAG_MUTABILITY,
            name,
            {
                "repositoryName": name,
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
            },
        ),
    ]
    results = [ecr.registry.apply(step) for step in steps]
    # THEN each succeeded and the deep read shows the settings
    assert all(r.ok for r in results), results
    repo = ecr.registry.observe(prefixes=["docker-hub"], deep=True, applied={}).repositories[name]
    assert repo.details == RepositoryDetails(
        lifecycle_policy=LIFECYCLE_TEXT, repository_policy=POLICY_TEXT, tags={"team": "platform"}
    )
    assert (repo.image_tag_mutability, repo.tag_mutability_exclusions) == ("IMMUTABLE_WITH_EXCLUSION", ("latest",))
    # WHEN the policies are deleted (twice: the second finds nothing and is fine)
    for _ in range(2):
        assert ecr.registry.apply(act(ActionKind.DELETE_LIFECYCLE_POLICY, name, {"repositoryName": name})).ok
        assert ecr.registry.apply(act(ActionKind.DELETE_REPOSITORY_POLICY, name, {"repositoryName": name})).ok
    # THEN they are gone
    repo = ecr.registry.observe(prefixes=["docker-hub"], deep=True, applied={}).repositories[name]
    assert repo.details == RepositoryDetails(tags={"team": "platform"})


def test_apply_untag_repository_removes_only_the_keys_given(ecr: Ecr) -> None:
    name = "docker-hub/library/node"
    arn = ecr.repository(name)
    ecr.ecr.tag_resource(resourceArn=arn, tags=[{"Key": k, "Value": "v"} for k in ("team", "env", "cost-center")])
    untag = act(ActionKind.UNTAG_REPOSITORY, name, {"resourceArn": arn, "tagKeys": ["env", "team"]})
    # WHEN the keys are removed (twice: the second finds them gone and is fine)
    assert ecr.registry.apply(untag).ok
    assert ecr.registry.apply(untag).ok
    # THEN the other key stays
    repo = ecr.registry.observe(prefixes=["docker-hub"], deep=True, applied={}).repositories[name]
    assert repo.details == RepositoryDetails(tags={"cost-center": "v"})
    assert ecr.registry.calls["UntagResource"] == 2


def test_apply_untag_repository_of_a_repository_gone_is_done(ecr: Ecr) -> None:
    arn = ecr.repository("docker-hub/gone")
    ecr.ecr.delete_repository(repositoryName="docker-hub/gone")
    result = ecr.registry.apply(
        act(ActionKind.UNTAG_REPOSITORY, "docker-hub/gone", {"resourceArn": arn, "tagKeys": ["a"]})
    )
    assert result.ok
    assert result.message is not None
    assert "RepositoryNotFoundException" in result.message


@pytest.mark.parametrize("kind", [ActionKind.ADOPT_RULE, ActionKind.ADOPT_TEMPLATE, ActionKind.RECORD_APPLIED])
def test_apply_record_only_actions_make_no_call(ecr: Ecr, kind: ActionKind) -> None:
    assert ecr.registry.apply(act(kind, "docker-hub")).ok
    assert sum(ecr.registry.calls.values()) == 0


# --------------------------------------------------------------------------------------------------
# idempotence (at-least-once delivery)


def test_apply_twice_is_ok_for_creates_and_deletes(ecr: Ecr) -> None:
    arn = ecr.secret("ecr-pullthroughcache/hub")
    actions = [
        act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(arn)),
        act(ActionKind.CREATE_TEMPLATE, "docker-hub", template_request(description="Docker Hub")),
    ]
    deletes = [
        act(ActionKind.DELETE_RULE, "docker-hub", {"ecrRepositoryPrefix": "docker-hub"}),
        act(ActionKind.DELETE_TEMPLATE, "docker-hub", {"prefix": "docker-hub"}),
    ]
    # WHEN every create is applied twice THEN both times are ok and ECR holds one of each
    for action in actions:
        first, second = ecr.registry.apply(action), ecr.registry.apply(action)
        assert first.ok and second.ok, (first, second)
    assert set(rules(ecr)) == {"docker-hub"}
    assert set(templates(ecr)) == {"docker-hub"}
    # WHEN every delete is applied twice THEN both times are ok
    for action in deletes:
        assert ecr.registry.apply(action).ok
        assert ecr.registry.apply(action).ok
    assert rules(ecr) == {}
    assert templates(ecr) == {}


def test_apply_create_rule_over_a_different_existing_rule_is_terminal(ecr: Ecr) -> None:
    # GIVEN someone else's rule on the prefix
    ecr.ecr.create_pull_through_cache_rule(**ecr_public_rule("mirror"))
    request = {"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": "quay.io", "upstreamRegistry": "quay"}
    # WHEN the controller creates its own THEN it is a terminal conflict and nothing changed
    result = ecr.registry.apply(act(ActionKind.CREATE_RULE, "mirror", request))
    assert (result.ok, result.retryable, result.code) == (False, False, "PullThroughCacheRuleAlreadyExistsException")
    assert rules(ecr)["mirror"]["upstreamRegistryUrl"] == "public.ecr.aws"


def test_apply_create_template_over_a_different_existing_template_is_terminal(ecr: Ecr) -> None:
    ecr.ecr.create_repository_creation_template(**template_request("quay", imageTagMutability="IMMUTABLE"))
    result = ecr.registry.apply(act(ActionKind.CREATE_TEMPLATE, "quay", template_request("quay")))
    assert (result.ok, result.retryable, result.code) == (False, False, "TemplateAlreadyExistsException")


# --------------------------------------------------------------------------------------------------
# a secret ECR cannot see yet


def test_apply_create_rule_retries_until_the_new_secret_is_visible(ecr: Ecr) -> None:
    # GIVEN a rule whose secret appears only after the first wait
    def appear(attempt: int) -> None:
        if attempt == 1:
            ecr.secret("ecr-pullthroughcache/late")

    ecr.sleeps.on_sleep = appear
    # WHEN the rule is created
    result = ecr.registry.apply(act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(LATE_SECRET_ARN)))
    # THEN it succeeded on the second attempt after one 1-second wait
    assert result.ok, result
    assert ecr.sleeps.delays == [1.0]
    assert ecr.registry.calls["CreatePullThroughCacheRule"] == 2
    assert "docker-hub" in rules(ecr)


def test_apply_update_rule_reports_retryable_when_the_secret_never_appears(ecr: Ecr) -> None:
    # GIVEN a rule and an update to a secret that does not exist
    ecr.registry.apply(act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(ecr.secret("ecr-pullthroughcache/a"))))
    update = {"ecrRepositoryPrefix": "docker-hub", "credentialArn": LATE_SECRET_ARN}
    # WHEN it is applied
    result = ecr.registry.apply(act(ActionKind.UPDATE_RULE, "docker-hub", update))
    # THEN three attempts were made with 1 s and 2 s waits, and the failure is retryable
    assert (result.ok, result.retryable, result.code) == (False, True, "SecretNotFoundException")
    assert ecr.sleeps.delays == [1.0, 2.0]
    assert ecr.registry.calls["UpdatePullThroughCacheRule"] == 3


def test_apply_create_rule_retries_an_unreadable_secret(ecr: Ecr) -> None:
    # GIVEN a secret whose resource policy denies reading it until the first wait removes the policy
    arn = ecr.secret("ecr-pullthroughcache/locked")
    deny = {
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]
    }
    ecr.secretsmanager.put_resource_policy(SecretId=arn, ResourcePolicy=json.dumps(deny))

    def unlock(_attempt: int) -> None:
        ecr.secretsmanager.delete_resource_policy(SecretId=arn)

    ecr.sleeps.on_sleep = unlock
    # WHEN the rule is created THEN it went through after one wait
    assert ecr.registry.apply(act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(arn))).ok
    assert ecr.sleeps.delays == [1.0]


# --------------------------------------------------------------------------------------------------
# every failure class on every write call


def raiser(code: str, status: int, operation: str) -> Any:
    """A client method that fails the way botocore does once its own retries are spent."""
    response: Any = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }

    def fail(**_: Any) -> Any:
        raise ClientError(response, operation)

    return fail


WRITE_CASES: list[tuple[str, ActionKind, dict[str, Any]]] = [
    ("create_pull_through_cache_rule", ActionKind.CREATE_RULE, ecr_public_rule()),
    (
        "update_pull_through_cache_rule",
        ActionKind.UPDATE_RULE,
        {"ecrRepositoryPrefix": "ecr-public", "customRoleArn": "x"},
    ),
    ("delete_pull_through_cache_rule", ActionKind.DELETE_RULE, {"ecrRepositoryPrefix": "ecr-public"}),
    (
        "delete_pull_through_cache_rule",
        ActionKind.REPLACE_RULE,
        {"delete": {"ecrRepositoryPrefix": "ecr-public"}, "create": ecr_public_rule()},
    ),
    ("create_repository_creation_template", ActionKind.CREATE_TEMPLATE, template_request()),
    ("update_repository_creation_template", ActionKind.UPDATE_TEMPLATE, template_request()),
    ("delete_repository_creation_template", ActionKind.DELETE_TEMPLATE, {"prefix": "docker-hub"}),
    ("put_lifecycle_policy", ActionKind.PUT_LIFECYCLE_POLICY, {"repositoryName": "a/b", "lifecyclePolicyText": "{}"}),
    ("delete_lifecycle_policy", ActionKind.DELETE_LIFECYCLE_POLICY, {"repositoryName": "a/b"}),
    ("set_repository_policy", ActionKind.SET_REPOSITORY_POLICY, {"repositoryName": "a/b", "policyText": "{}"}),
    ("delete_repository_policy", ActionKind.DELETE_REPOSITORY_POLICY, {"repositoryName": "a/b"}),
    ("tag_resource", ActionKind.TAG_REPOSITORY, {"resourceArn": "arn:x", "tags": [{"Key": "k", "Value": "v"}]}),
    ("untag_resource", ActionKind.UNTAG_REPOSITORY, {"resourceArn": "arn:x", "tagKeys": ["k"]}),
    (
        "put_image_tag_mutability",
        ActionKind.PUT_IMAGE_TAG_MUTABILITY,
        {"repositoryName": "a/b", "imageTagMutability": "MUTABLE"},
    ),
    (
        "register_pull_time_update_exclusion",
        ActionKind.REGISTER_EXCLUSION,
        {"principalArn": f"arn:aws:iam::{ACCOUNT_ID}:role/warmer"},
    ),
    (
        "deregister_pull_time_update_exclusion",
        ActionKind.DEREGISTER_EXCLUSION,
        {"principalArn": f"arn:aws:iam::{ACCOUNT_ID}:role/warmer"},
    ),
]


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("ThrottlingException", 400, True),
        ("ServerException", 500, True),
        ("AccessDeniedException", 400, False),
    ],
)
@pytest.mark.parametrize(("method", "kind", "request_"), WRITE_CASES, ids=[c[1].value for c in WRITE_CASES])
def test_apply_classifies_a_failing_write_and_never_raises(
    *,
    ecr: Ecr,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    kind: ActionKind,
    request_: dict[str, Any],
    code: str,
    status: int,
    retryable: bool,
) -> None:
    # GIVEN the write call fails with the code (after botocore's own retries)
    monkeypatch.setattr(ecr.registry.client, method, raiser(code, status, method))
    # WHEN the action is applied
    result = ecr.registry.apply(act(kind, "ecr-public", request_))
    # THEN the result carries the classification; nothing was raised, nothing slept
    assert (result.ok, result.retryable, result.code) == (False, retryable, code)
    assert result.message is not None
    assert code in result.message
    assert ecr.sleeps.delays == []


def test_apply_classifies_a_connection_error_as_retryable(ecr: Ecr, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(**_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://api.ecr.us-east-1.amazonaws.com")

    monkeypatch.setattr(ecr.registry.client, "put_lifecycle_policy", unreachable)
    request = {"repositoryName": "a/b", "lifecyclePolicyText": LIFECYCLE_TEXT}
    result = ecr.registry.apply(act(ActionKind.PUT_LIFECYCLE_POLICY, "a/b", request))
    assert (result.ok, result.retryable, result.code) == (False, True, "EndpointConnectionError")


def test_apply_classifies_real_ecr_errors(ecr: Ecr) -> None:
    # GIVEN requests ECR (or botocore) rejects, and one for a repository that vanished
    ecr.repository("a/b")
    cases = {
        "ParamValidationError": act(
            ActionKind.PUT_LIFECYCLE_POLICY, "a/b", {"repositoryName": "a/b", "lifecyclePolicyText": "{}"}
        ),
        "UnsupportedUpstreamRegistryException": act(
            ActionKind.CREATE_RULE, "x1", {"ecrRepositoryPrefix": "x1", "upstreamRegistryUrl": "docker.io"}
        ),
        "RepositoryNotFoundException": act(
            ActionKind.PUT_LIFECYCLE_POLICY,
            "gone/repo",
            {"repositoryName": "gone/repo", "lifecyclePolicyText": LIFECYCLE_TEXT},
        ),
        "TemplateNotFoundException": act(ActionKind.UPDATE_TEMPLATE, "nope", template_request("nope")),
    }
    # WHEN each is applied THEN validation is terminal and a vanished target is retryable (a new plan fixes it)
    results = {code: ecr.registry.apply(action) for code, action in cases.items()}
    assert {code: (r.ok, r.code, r.retryable) for code, r in results.items()} == {
        "ParamValidationError": (False, "ParamValidationError", False),
        "UnsupportedUpstreamRegistryException": (False, "UnsupportedUpstreamRegistryException", False),
        "RepositoryNotFoundException": (False, "RepositoryNotFoundException", True),
        "TemplateNotFoundException": (False, "TemplateNotFoundException", True),
    }


# --------------------------------------------------------------------------------------------------
# validate, counting


def test_validate_rule_reports_the_upstream_check(ecr: Ecr) -> None:
    # GIVEN a rule with a good credential and one with a bad credential
    ecr.registry.apply(act(ActionKind.CREATE_RULE, "docker-hub", docker_hub_rule(ecr.secret("ecr-pullthroughcache/g"))))
    bad = ecr.secret("ecr-pullthroughcache/b", token="bad")
    ecr.registry.apply(act(ActionKind.CREATE_RULE, "ghcr", docker_hub_rule(bad, prefix="ghcr")))
    # WHEN each is validated THEN the answers come back as values, not errors
    assert ecr.registry.validate_rule("docker-hub") == (True, None)
    assert ecr.registry.validate_rule("ghcr") == (False, "upstream rejected the credential (401)")
    is_valid, failure = ecr.registry.validate_rule("missing")
    assert not is_valid
    assert failure is not None
    assert "no pull through cache rule" in failure


def test_validate_rule_raises_a_classified_error(ecr: Ecr, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ecr.registry.client,
        "validate_pull_through_cache_rule",
        raiser("ThrottlingException", 400, "ValidatePullThroughCacheRule"),
    )
    with pytest.raises(RetryableError):
        ecr.registry.validate_rule("docker-hub")


def test_every_write_operation_is_counted_as_a_write(ecr: Ecr) -> None:
    # The adapter's write list names real ECR operations, and registries count independently.
    operations = set(ecr.registry.client.meta.service_model.operation_names)
    assert operations >= WRITE_OPERATIONS
    other = Boto3EcrRegistry(REGION)
    ecr.registry.observe(prefixes=[], deep=False, applied={})
    assert sum(other.calls.values()) == 0
    assert ecr.registry.reads == 2  # rules and templates: no prefix asked, no repository listed


def test_the_adapter_implements_the_port(ecr: Ecr) -> None:
    port: EcrRegistry = ecr.registry  # checked by mypy
    assert port.region == REGION


class _Clock:
    """A deep read's :class:`Deadline` on a clock the test moves (never the wall clock)."""

    def __init__(self, left: float) -> None:
        self.left = left

    def __call__(self) -> float:
        return self.left


def _blocking(registry: Boto3EcrRegistry, name: str, on_enter: Any, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make ``name``'s GetLifecyclePolicy call ``on_enter`` and then hang (as a throttled call under botocore's
    retries would) until the returned event is set; the other repositories' reads are untouched."""
    release = threading.Event()
    real = registry.client.get_lifecycle_policy

    def get_lifecycle_policy(**kwargs: Any) -> Any:
        if kwargs["repositoryName"] == name:
            on_enter()
            assert release.wait(timeout=30), "the test never released the blocked read"
        return real(**kwargs)

    monkeypatch.setattr(registry.client, "get_lifecycle_policy", get_lifecycle_policy)
    return release


@pytest.mark.parametrize("workers", [1, 4])
def test_observe_deep_abandons_a_read_still_under_way_at_the_hard_deadline(
    ecr: Ecr, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two repositories, the first read completing and the second hanging in its first call
    for name in ("quay/org/fast", "quay/org/slow"):
        ecr.repository(name)
    registry = Boto3EcrRegistry(REGION, ecr.registry.client, deep_read_workers=workers)
    tagged = {"quay/org/fast": threading.Event(), "quay/org/slow": threading.Event()}
    fast_done = tagged["quay/org/fast"]
    real_tags = registry.client.list_tags_for_resource

    def list_tags_for_resource(**kwargs: Any) -> Any:
        answer = real_tags(**kwargs)
        tagged[kwargs["resourceArn"].split(":repository/", 1)[1]].set()  # the read's last call answered
        return answer

    monkeypatch.setattr(registry.client, "list_tags_for_resource", list_tags_for_resource)
    # AND a deadline (with no grace) that passes while the slow read hangs, once the fast one has been read
    clock = _Clock(left=0.05)

    def slow_entered() -> None:
        assert fast_done.wait(timeout=30)
        clock.left = -1.0

    release = _blocking(registry, "quay/org/slow", slow_entered, monkeypatch)
    try:
        # WHEN observed deeply with that deadline
        observed = registry.observe(prefixes=["quay"], deep=True, applied={}, stop=Deadline(clock))
        # THEN it answered without waiting for the hanging read, which is listed as not read
        assert not release.is_set()
        assert observed.unread == ("quay/org/slow",)
        assert observed.repositories["quay/org/slow"].details is None
        assert observed.repositories["quay/org/fast"].details == RepositoryDetails()
    finally:
        release.set()
    # AND the abandoned read, finishing later, changes nothing in the answer given
    assert tagged["quay/org/slow"].wait(timeout=30)
    assert observed.unread == ("quay/org/slow",)
    assert observed.repositories["quay/org/slow"].details is None


def test_observe_deep_lets_a_read_under_way_finish_within_the_grace(ecr: Ecr, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN two repositories read one after the other, and a deadline passing as the first read starts
    for name in ("quay/org/a", "quay/org/b"):
        ecr.repository(name)
    registry = Boto3EcrRegistry(REGION, ecr.registry.client, deep_read_workers=1)
    clock = _Clock(left=30.0)
    release = _blocking(registry, "quay/org/a", lambda: setattr(clock, "left", -1.0), monkeypatch)
    release.set()  # the read does not hang: it finishes within the grace
    # WHEN observed with a grace of 60 s after the deadline
    observed = registry.observe(prefixes=["quay"], deep=True, applied={}, stop=Deadline(clock, grace=60.0))
    # THEN the read under way is kept, and the next one did not start
    assert observed.repositories["quay/org/a"].details == RepositoryDetails()
    assert observed.unread == ("quay/org/b",)
    assert registry.calls["GetLifecyclePolicy"] == 1


def test_observe_deep_raises_a_reads_error_without_waiting_for_the_others(
    ecr: Ecr, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one repository whose read is denied and one whose read hangs
    for name in ("quay/org/denied", "quay/org/slow"):
        ecr.repository(name)
    registry = Boto3EcrRegistry(REGION, ecr.registry.client, deep_read_workers=2)
    release = _blocking(registry, "quay/org/slow", lambda: None, monkeypatch)
    real_policy = registry.client.get_repository_policy

    def get_repository_policy(**kwargs: Any) -> Any:
        if kwargs["repositoryName"] == "quay/org/denied":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetRepositoryPolicy")
        return real_policy(**kwargs)

    monkeypatch.setattr(registry.client, "get_repository_policy", get_repository_policy)
    try:
        # WHEN observed deeply THEN the error is raised (named), the hanging read not waited for
        with pytest.raises(TerminalError, match="GetRepositoryPolicy"):
            registry.observe(prefixes=["quay"], deep=True, applied={}, stop=Deadline(_Clock(left=30.0)))
        assert not release.is_set()
    finally:
        release.set()

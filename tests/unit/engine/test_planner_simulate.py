"""The in-memory simulation of a plan's effect on ECR and on the state table's records."""

from __future__ import annotations

import pytest

from ecrcache.engine.essence import desired_fingerprints, tags_fingerprint
from ecrcache.engine.plan import ActionKind, Plan, PlannedAction
from ecrcache.engine.planner import plan_region
from ecrcache.models.observed import AppliedFingerprints, Aspect, ObservedTemplate, Ownership, RepositoryDetails
from tests.fakes.simulate import apply_to_observed
from tests.samples import ORG_PULL
from tests.unit.engine.planner_support import (
    CREATION_ROLE,
    HUB_ARN_ROTATED,
    KEEP_10,
    REGION,
    converged,
    desired,
    details_of,
    owned,
    region,
    repo,
    rule_of,
    spec,
    template_of,
)

pytestmark = pytest.mark.unit

QUAY = desired("quay", lifecycle=KEEP_10, tags={"team": "platform"})


def test_apply_to_observed_creates_what_the_rule_describes_and_owns_it() -> None:
    # GIVEN an empty Region and a plan to create a rule and its template
    found = plan_region([QUAY], [], region(), Ownership(), deep=True)
    # WHEN simulated
    after, ownership = apply_to_observed(region(), Ownership(), found)
    # THEN ECR holds what it would describe after the calls, and both are owned
    assert after.rules == {"quay": rule_of(QUAY)}
    assert after.templates == {"quay": template_of(QUAY)}
    assert ownership == owned("quay")


def test_apply_to_observed_update_rule_changes_only_what_it_sends() -> None:
    hub = desired("docker-hub", kind="docker-hub")
    rotated = desired("docker-hub", kind="docker-hub", arn=HUB_ARN_ROTATED)
    found = plan_region([rotated], [], converged([hub]), owned("docker-hub"), deep=True)
    after, _ = apply_to_observed(converged([hub]), owned("docker-hub"), found)
    assert after.rules["docker-hub"] == rule_of(hub).model_copy(update={"credential_arn": HUB_ARN_ROTATED})


def test_apply_to_observed_delete_drops_the_rule_template_and_ownership() -> None:
    retired = desired("quay", deletion_policy="delete")
    before = converged([retired])
    found = plan_region([], [retired], before, owned("quay"), deep=True)
    after, ownership = apply_to_observed(before, owned("quay"), found)
    assert (after.rules, after.templates, ownership) == ({}, {}, Ownership())


def test_apply_to_observed_template_update_clears_and_keeps_like_ecr() -> None:
    # GIVEN a shared template with settings the rule no longer wants
    full = desired("quay", lifecycle=KEEP_10, policy=ORG_PULL, tags={"a": "b"}, description="old")
    shared = template_of(full).model_copy(update={"applied_for": ("CREATE_ON_PUSH", "PULL_THROUGH_CACHE")})
    bare = desired("quay")
    observed = region([rule_of(bare)], [shared])
    found = plan_region([bare], [], observed, owned("quay"), deep=True)
    # WHEN simulated
    after, _ = apply_to_observed(observed, owned("quay"), found)
    # THEN cleared fields are gone, the description (not desired) and other appliedFor values stay
    assert after.templates["quay"] == ObservedTemplate(
        prefix="quay",
        applied_for=("CREATE_ON_PUSH", "PULL_THROUGH_CACHE"),
        encryption_type="AES256",
        description="old",
    )


def test_apply_to_observed_tagging_keeps_other_tags_and_records_fingerprints() -> None:
    observed_repo = repo("quay/x", details=RepositoryDetails(tags={"cost": "1", "team": "old"}))
    observed = converged([QUAY], [observed_repo])
    found = plan_region([QUAY], [], observed, owned("quay"), deep=True)
    after, _ = apply_to_observed(observed, owned("quay"), found)
    result = after.repositories["quay/x"]
    assert result.details is not None
    assert result.details.tags == {"cost": "1", "team": "platform"}
    assert result.details.lifecycle_policy == details_of(QUAY.spec).lifecycle_policy
    assert result.applied == desired_fingerprints(QUAY.spec)


def test_apply_to_observed_keeps_fast_repositories_unread() -> None:
    # GIVEN a repository read on the fast path, with no record
    observed = converged([QUAY], [repo("quay/x")])
    found = plan_region([QUAY], [], observed, owned("quay"), deep=False)
    after, _ = apply_to_observed(observed, owned("quay"), found)
    # THEN its details stay unknown, but the fingerprints are recorded
    assert after.repositories["quay/x"].details is None
    assert after.repositories["quay/x"].applied == desired_fingerprints(QUAY.spec)


def test_apply_to_observed_record_applied_merges_into_the_record() -> None:
    observed = converged([QUAY], [repo("quay/x", applied=AppliedFingerprints(policy="p"))])
    action = PlannedAction(
        kind=ActionKind.RECORD_APPLIED,
        region=REGION,
        target="quay/x",
        rule_prefix="quay",
        reason="r",
        fingerprints={Aspect.TAGS: tags_fingerprint({"a": "b"})},
    )
    after, _ = apply_to_observed(observed, owned("quay"), Plan(actions=(action,)))
    assert after.repositories["quay/x"].applied == AppliedFingerprints(policy="p", tags=tags_fingerprint({"a": "b"}))


def test_apply_to_observed_ignores_other_regions() -> None:
    found = plan_region([QUAY], [], region(name="eu-west-1"), Ownership(), deep=True)
    assert apply_to_observed(region(), Ownership(), found) == (region(), Ownership())


def test_apply_to_observed_replace_and_mutability() -> None:
    # GIVEN an immutable change and a repository with the wrong tag mutability
    new = desired(
        "quay",
        upstream_repository_prefix="team",
        mutability="IMMUTABLE_WITH_EXCLUSION",
        exclusions=["latest"],
        adopt=True,
    )
    observed = converged([desired("quay")], [repo("quay/x", details=details_of(spec()))])
    found = plan_region([new], [], observed, Ownership(), deep=True)
    # WHEN simulated THEN the rule is re-created, owned, and the repository's mutability set
    after, ownership = apply_to_observed(observed, Ownership(), found)
    assert after.rules["quay"] == rule_of(new)
    assert "quay" in ownership.rules
    result = after.repositories["quay/x"]
    assert (result.image_tag_mutability, result.tag_mutability_exclusions) == ("IMMUTABLE_WITH_EXCLUSION", ("latest",))
    assert plan_region([new], [], after, ownership, deep=True).is_empty


def test_apply_to_observed_template_with_kms_role_round_trips() -> None:
    kms = desired("quay", repository={"encryption": {"type": "KMS"}, "creation_role_arn": CREATION_ROLE})
    found = plan_region([kms], [], region([rule_of(kms)]), owned("quay"), deep=True)
    after, ownership = apply_to_observed(region([rule_of(kms)]), owned("quay"), found)
    assert after.templates["quay"].encryption_type == "KMS"
    assert plan_region([kms], [], after, ownership, deep=True).is_empty

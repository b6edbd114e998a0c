"""Properties of the planner over generated worlds (desired rules, ECR contents, records, ownership):

* a converged world plans nothing;
* applying a plan (simulated) and planning again plans nothing, for deep and fast observations;
* planning is deterministic, whatever order the inputs come in;
* rules and templates that are not desired are only ever deleted when owned and retired with
  ``deletion_policy: delete``;
* a rule or template in ECR that ecrcache does not own is never changed (nor recorded as owned,
  nor its cached repositories patched) unless its desired rule says ``adopt: true``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrcache.engine.essence import desired_fingerprints, lifecycle_fingerprint, policy_fingerprint, tags_fingerprint
from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.engine.planner import plan_region
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.lifecycle import LifecycleSpec
from ecrcache.models.observed import (
    AppliedFingerprints,
    DesiredRule,
    ObservedRegion,
    ObservedRepository,
    ObservedRule,
    ObservedTemplate,
    Ownership,
    RepositoryDetails,
)
from ecrcache.models.rule import DeletionPolicy, RuleSpec
from tests.fakes.simulate import apply_to_observed
from tests.samples import ORG_PULL
from tests.unit.engine.planner_support import (
    CREATION_ROLE,
    DENY_DELETE,
    ECR_URL,
    ECR_URL_2,
    HUB_ARN,
    HUB_ARN_ROTATED,
    KEEP_10,
    KEEP_20,
    REGION,
    UPSTREAM_ROLE,
    UPSTREAM_ROLE_2,
    converged_repo,
    repository_arn,
    rule_of,
    spec,
    template_of,
)

pytestmark = pytest.mark.unit

PROPERTY_SETTINGS = settings(max_examples=150, derandomize=True, deadline=None)

PREFIXES = ["quay", "hub", "team", "team/quay", ROOT_PREFIX]
OBSERVED_PREFIXES = [*PREFIXES, "other"]
REPOSITORY_NAMES = [
    "quay/library/nginx",
    "quay/x",
    "hub/library/node",
    "team/app",
    "team/quay/argo",
    "team/quay",
    "other/img",
    "nginx",
]

LIFECYCLE_TEXTS = [
    None,
    LifecycleSpec.model_validate(KEEP_10).render_text(),
    json.dumps(json.loads(LifecycleSpec.model_validate(KEEP_20).render_text()), indent=2),
    '{"rules": "not ECR grammar"}' + " " * 100,
]
POLICY_TEXTS = [
    None,
    json.dumps(ORG_PULL),
    json.dumps({"Statement": ORG_PULL["Statement"][0], "Version": "2012-10-17"}, indent=1),
    json.dumps(DENY_DELETE),
    "not json",
]
TAG_SETS: list[dict[str, str]] = [{}, {"team": "a"}, {"team": "b", "env": "prod"}, {"cost": "1", "team": "a"}]
FINGERPRINTS = [
    None,
    "0" * 64,
    *(lifecycle_fingerprint(t) for t in LIFECYCLE_TEXTS[1:3]),
    *(policy_fingerprint(t) for t in POLICY_TEXTS[1:4]),
    *(tags_fingerprint(t) for t in TAG_SETS[1:]),
]
MUTABILITIES = [
    ("MUTABLE", ()),
    ("IMMUTABLE", ()),
    ("IMMUTABLE_WITH_EXCLUSION", ("latest",)),
    ("MUTABLE_WITH_EXCLUSION", ("v*", "latest")),
]


# --------------------------------------------------------------------------------------------------
# Strategies


POOL_SIZE = 40


def _random_spec(rng: Random, prefix: str) -> RuleSpec:
    """A valid rule for ``prefix``, every setting picked from a small pool."""
    kind = rng.choice(["quay", "docker-hub", "ecr", "ecr-public"])
    fields: dict[str, Any] = {}
    if kind == "ecr":
        fields["upstream_url"] = rng.choice([ECR_URL, ECR_URL_2])
        fields["custom_role_arn"] = rng.choice([None, UPSTREAM_ROLE, UPSTREAM_ROLE_2])
    if prefix != ROOT_PREFIX:
        fields["upstream_repository_prefix"] = rng.choice([ROOT_PREFIX, "library"])
    mutability, exclusions = rng.choice([m for m in MUTABILITIES if m[0] != "IMMUTABLE"])
    repository: dict[str, Any] = {"tag_mutability": mutability, "tag_mutability_exclusions": list(exclusions)}
    if rng.random() < 0.5:
        repository |= {"encryption": {"type": "KMS"}, "creation_role_arn": CREATION_ROLE}
    return spec(
        kind,
        lifecycle=rng.choice([None, KEEP_10, KEEP_20]),
        policy=rng.choice([None, ORG_PULL, DENY_DELETE]),
        tags=rng.choice(TAG_SETS[:3]),
        repository=repository,
        description=rng.choice([None, "mirror"]),
        deletion_policy=rng.choice(list(DeletionPolicy)),
        adopt=rng.random() < 0.5,
        **fields,
    )


def _pool(prefix: str) -> list[DesiredRule]:
    """Valid desired rules for ``prefix`` (credential resolved); built once, so drawing is cheap."""
    rng = Random(prefix)
    pool = []
    for _ in range(POOL_SIZE):
        rule = _random_spec(rng, prefix)
        arn = rng.choice([HUB_ARN, HUB_ARN_ROTATED]) if rule.credential is not None else None
        pool.append(DesiredRule(prefix=prefix, spec=rule, credential_arn=arn))
    return pool


POOLS = {prefix: _pool(prefix) for prefix in OBSERVED_PREFIXES}
RULES_OF = {prefix: [rule_of(r) for r in pool] for prefix, pool in POOLS.items()}
TEMPLATES_OF = {prefix: [template_of(r) for r in pool] for prefix, pool in POOLS.items()}


# Strategies are built once: hypothesis validates each new strategy object, which dominates otherwise.
BOOLS = st.booleans()
ONE_IN_FIVE = st.integers(0, 4)
PICK_DESIRED = {p: st.sampled_from(POOLS[p]) for p in OBSERVED_PREFIXES}
PICK_RULE = {p: st.sampled_from(RULES_OF[p]) for p in OBSERVED_PREFIXES}
PICK_TEMPLATE = {p: st.sampled_from(TEMPLATES_OF[p]) for p in OBSERVED_PREFIXES}
PICK_APPLIED_FOR = st.sampled_from(
    [("PULL_THROUGH_CACHE",), ("CREATE_ON_PUSH", "PULL_THROUGH_CACHE"), ("CREATE_ON_PUSH",)]
)
PICK_DESCRIPTION = st.sampled_from([None, "mirror", "by hand"])
PICK_MUTABILITY = st.sampled_from(MUTABILITIES)
PICK_DETAILS = st.builds(
    RepositoryDetails,
    lifecycle_policy=st.sampled_from(LIFECYCLE_TEXTS),
    repository_policy=st.sampled_from(POLICY_TEXTS),
    tags=st.sampled_from(TAG_SETS),
)
PICK_APPLIED = st.none() | st.builds(
    AppliedFingerprints,
    lifecycle=st.sampled_from(FINGERPRINTS),
    policy=st.sampled_from(FINGERPRINTS),
    tags=st.sampled_from(FINGERPRINTS),
)
PICK_OWNED = st.frozensets(st.sampled_from(OBSERVED_PREFIXES))


@st.composite
def rule_sets(draw: st.DrawFn, *, resolvable: bool = False) -> list[DesiredRule]:
    """Desired rules for some of :data:`PREFIXES`; unless ``resolvable``, some credentials are missing."""
    rules = []
    for prefix in PREFIXES:
        if draw(BOOLS):
            rule = draw(PICK_DESIRED[prefix])
            if not resolvable and rule.credential_arn is not None and draw(ONE_IN_FIVE) == 0:
                rule = rule.model_copy(update={"credential_arn": None})  # the secret is missing: blocked
            rules.append(rule)
    return rules


@st.composite
def observed_rules(draw: st.DrawFn) -> dict[str, ObservedRule]:
    return {p: draw(PICK_RULE[p]) for p in OBSERVED_PREFIXES if draw(BOOLS)}


@st.composite
def observed_templates(draw: st.DrawFn) -> dict[str, ObservedTemplate]:
    found: dict[str, ObservedTemplate] = {}
    for prefix in OBSERVED_PREFIXES:
        if draw(BOOLS):
            template = draw(PICK_TEMPLATE[prefix])
            update: dict[str, Any] = {"applied_for": draw(PICK_APPLIED_FOR), "description": draw(PICK_DESCRIPTION)}
            if draw(ONE_IN_FIVE) == 0:
                update["lifecycle_policy"] = LIFECYCLE_TEXTS[3]  # changed by hand, not ECR grammar
            found[prefix] = template.model_copy(update=update)
    return found


@st.composite
def observed_repositories(draw: st.DrawFn) -> dict[str, ObservedRepository]:
    found: dict[str, ObservedRepository] = {}
    for name in REPOSITORY_NAMES:
        if draw(BOOLS):
            mutability, exclusions = draw(PICK_MUTABILITY)
            found[name] = ObservedRepository(
                name=name,
                arn=repository_arn(name),
                image_tag_mutability=mutability,
                tag_mutability_exclusions=exclusions,
                details=draw(PICK_DETAILS),
                applied=draw(PICK_APPLIED),
            )
    return found


@dataclass(frozen=True)
class World:
    desired: list[DesiredRule]
    retired: list[DesiredRule]
    observed: ObservedRegion
    ownership: Ownership


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Any desired state against any ECR contents, records and ownership (observed deep)."""
    return World(
        desired=draw(rule_sets()),
        retired=draw(rule_sets()),
        observed=ObservedRegion(
            region=REGION,
            rules=draw(observed_rules()),
            templates=draw(observed_templates()),
            repositories=draw(observed_repositories()),
        ),
        ownership=Ownership(rules=draw(PICK_OWNED), templates=draw(PICK_OWNED)),
    )


def fast(observed: ObservedRegion) -> ObservedRegion:
    """The same Region as the fast path reads it: repository details unknown."""
    repositories = {n: r.model_copy(update={"details": None}) for n, r in observed.repositories.items()}
    return observed.model_copy(update={"repositories": repositories})


def run(world: World, observed: ObservedRegion | None = None, ownership: Ownership | None = None) -> Plan:
    found = observed if observed is not None else world.observed
    deep = any(r.details is not None for r in found.repositories.values())
    return plan_region(world.desired, world.retired, found, ownership or world.ownership, deep=deep)


def owner(name: str, rules: list[DesiredRule]) -> DesiredRule | None:
    candidates = [r for r in rules if r.prefix != ROOT_PREFIX and name.startswith(r.prefix + "/")]
    return max(candidates, key=lambda r: len(r.prefix), default=None)


# --------------------------------------------------------------------------------------------------
# Properties


@PROPERTY_SETTINGS
@given(rules=rule_sets(resolvable=True), strangers=observed_repositories(), deep=st.booleans())
def test_plan_region_converged_world_is_empty(
    rules: list[DesiredRule], strangers: dict[str, ObservedRepository], deep: bool
) -> None:
    # GIVEN ECR holding exactly the desired rules and templates (owned), every cached repository
    # converged with its rule's settings, and other repositories with anything at all
    repositories = {}
    for name, stranger in strangers.items():
        rule = owner(name, rules)
        repositories[name] = stranger if rule is None else converged_repo(name, rule.spec, deep=deep)
    observed = ObservedRegion(
        region=REGION,
        rules={r.prefix: rule_of(r) for r in rules},
        templates={r.prefix: template_of(r) for r in rules},
        repositories=repositories,
    )
    ownership = Ownership(rules=frozenset(r.prefix for r in rules), templates=frozenset(r.prefix for r in rules))
    # WHEN planned THEN nothing to do
    found = plan_region(rules, [], observed, ownership, deep=deep)
    assert found.is_empty, found.summary()
    assert found.unmanaged == ()


@PROPERTY_SETTINGS
@given(world=worlds())
def test_plan_region_apply_then_replan_is_empty_deep(world: World) -> None:
    # GIVEN any world, read deep WHEN its plan is applied
    first = run(world)
    after, ownership = apply_to_observed(world.observed, world.ownership, first)
    # THEN planning again, deep or fast, finds nothing to do
    assert run(world, after, ownership).is_empty, run(world, after, ownership).summary()
    assert run(world, fast(after), ownership).is_empty


@PROPERTY_SETTINGS
@given(world=worlds())
def test_plan_region_apply_then_replan_is_empty_fast(world: World) -> None:
    # GIVEN any world, read fast (repository details not read) WHEN its plan is applied to ECR
    first = run(world, fast(world.observed))
    after, ownership = apply_to_observed(world.observed, world.ownership, first)
    # THEN a fast re-read finds nothing to do (the fast path trusts the records it wrote)
    assert run(world, fast(after), ownership).is_empty
    # AND simulating on the fast observation itself agrees
    fast_after, fast_ownership = apply_to_observed(fast(world.observed), world.ownership, first)
    assert fast_after == fast(after)
    assert fast_ownership == ownership


@PROPERTY_SETTINGS
@given(world=worlds(), shuffler=st.randoms(use_true_random=False))
def test_plan_region_is_deterministic_whatever_the_input_order(world: World, shuffler: Random) -> None:
    # GIVEN the same world with every list and dict in another order
    def shuffled[T](items: list[T]) -> list[T]:
        copy = list(items)
        shuffler.shuffle(copy)
        return copy

    observed = world.observed
    reordered = ObservedRegion(
        region=observed.region,
        rules=dict(shuffled(list(observed.rules.items()))),
        templates=dict(shuffled(list(observed.templates.items()))),
        repositories=dict(shuffled(list(observed.repositories.items()))),
    )
    other = World(shuffled(world.desired), shuffled(world.retired), reordered, world.ownership)
    # WHEN planned twice THEN the plans are equal, down to the JSON
    first, second = run(world), run(other)
    assert first == second
    assert json.dumps(first.model_dump(mode="json")) == json.dumps(second.model_dump(mode="json"))


@PROPERTY_SETTINGS
@given(world=worlds())
def test_plan_region_changes_only_desired_or_owned_retired_rules(world: World) -> None:
    found = run(world)
    desired_prefixes = {r.prefix for r in world.desired}
    deletable_rules = {
        r.prefix for r in world.retired if r.spec.deletion_policy is DeletionPolicy.DELETE
    } - desired_prefixes
    for action in found.actions:
        if action.kind in (ActionKind.DELETE_RULE, ActionKind.DELETE_TEMPLATE):
            owned = world.ownership.rules if action.kind is ActionKind.DELETE_RULE else world.ownership.templates
            assert action.target in deletable_rules
            assert action.target in owned
        elif action.kind.scope != "repository":
            assert action.target in desired_prefixes
        else:
            rule = owner(action.target, world.desired)
            assert rule is not None
            assert action.rule_prefix == rule.prefix


@PROPERTY_SETTINGS
@given(world=worlds())
def test_plan_region_records_what_the_rule_wants_after_apply(world: World) -> None:
    # GIVEN any world WHEN its plan is applied THEN every repository of a plannable rule has the
    # rule's fingerprints recorded (or none at all, when the rule wants nothing and none was recorded)
    found = run(world)
    after, _ = apply_to_observed(world.observed, world.ownership, found)
    blocked = {b.prefix for b in found.blocked}
    every_rule = [*world.desired, *world.retired]
    for name, repo in after.repositories.items():
        rule = owner(name, world.desired)
        closest = owner(name, every_rule)
        if rule is None or rule.prefix in blocked or closest is None or closest.prefix != rule.prefix:
            continue
        if _shadowed(name, rule, after):
            continue
        assert (repo.applied or AppliedFingerprints()) == desired_fingerprints(rule.spec)


def _shadowed(name: str, rule: DesiredRule, observed: ObservedRegion) -> bool:
    """Whether a longer ECR rule (not desired) owns the repository instead of ``rule``."""
    return any(p != ROOT_PREFIX and len(p) > len(rule.prefix) and name.startswith(p + "/") for p in observed.rules)


@PROPERTY_SETTINGS
@given(world=worlds())
def test_plan_region_never_touches_what_is_not_ours_without_adopt(world: World) -> None:
    # GIVEN any world WHEN planned THEN every action on a prefix whose rule or template in ECR is not
    # ecrcache's belongs to a desired rule that says adopt: true; the others are Blocked
    found = run(world)
    observed, ownership = world.observed, world.ownership
    not_ours = {
        "rule": {p for p in observed.rules if p not in ownership.rules},
        "template": {p for p in observed.templates if p not in ownership.templates},
    }
    either = not_ours["rule"] | not_ours["template"]
    adopting = {r.prefix for r in world.desired if r.spec.adopt}
    for action in found.actions:
        scope = action.kind.scope
        touched = either if scope == "repository" else not_ours[scope]
        if action.rule_prefix in touched:
            assert action.rule_prefix in adopting, (action.kind, action.target)
    colliding = {r.prefix for r in world.desired if r.prefix in either and not r.spec.adopt}
    assert colliding <= {b.prefix for b in found.blocked}

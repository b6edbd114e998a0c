"""A Region's quiet digest: what it covers (every fast-plan input but the applied fingerprints and the deep read),
and the views a run computes it on (:func:`fast_view`, :func:`with_records`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.engine import quiet
from ecrcache.engine.quiet import fast_view, quiet_digest, with_records
from ecrcache.engine.role_path import RoleScope
from ecrcache.models.observed import (
    AppliedFingerprints,
    CredentialWait,
    DesiredRule,
    ObservedRegion,
    ObservedRepository,
    Ownership,
    RepositoryDetails,
)
from tests.unit.engine.planner_support import (
    ACCOUNT,
    HUB_ARN_ROTATED,
    KEEP_10,
    KEEP_20,
    converged,
    desired,
    owned,
    repo,
    rule_of,
    template_of,
)

pytestmark = pytest.mark.unit

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WARMER = f"arn:aws:iam::{ACCOUNT}:role/ecrcache/ecrcache-WarmWorkerFunctionRole-AB12"
SCANNER = f"arn:aws:iam::{ACCOUNT}:role/security-scanner"
QUAY = desired("quay", lifecycle=KEEP_10)
HUB = desired("docker-hub", kind="docker-hub")
K8S = desired("k8s", kind="k8s")
APPLIED = AppliedFingerprints(lifecycle="l" * 64, tags="t" * 64, tag_keys=frozenset({"team"}), created_at=CREATED)


def _repositories() -> list[ObservedRepository]:
    return [
        repo("quay/a", applied=APPLIED).model_copy(update={"created_at": CREATED}),
        repo("quay/b", mutability="IMMUTABLE_WITH_EXCLUSION", exclusions=["latest", "dev-*"]),
        repo("docker-hub/library/nginx").model_copy(update={"created_at": CREATED + timedelta(days=1)}),
    ]


@dataclass(frozen=True)
class Inputs:
    """Everything :func:`quiet_digest` takes."""

    desired: tuple[DesiredRule, ...]
    retired: tuple[DesiredRule, ...]
    observed: ObservedRegion
    ownership: Ownership
    warmer_role: str | None
    role_path: RoleScope
    code: str = "0123456789abcdef"

    def digest(self) -> str:
        return quiet_digest(
            self.desired,
            self.retired,
            self.observed,
            self.ownership,
            warmer_role=self.warmer_role,
            role_path=self.role_path,
            code=self.code,
        )


BASE = Inputs(
    desired=(QUAY, HUB),
    retired=(),
    observed=converged([QUAY, HUB], _repositories()).model_copy(update={"exclusions": frozenset({WARMER})}),
    ownership=owned("quay", "docker-hub").model_copy(update={"exclusions": frozenset({WARMER})}),
    warmer_role=WARMER,
    role_path=RoleScope(path="/ecrcache/", account=ACCOUNT, partition="aws"),
)


def _observed(inputs: Inputs, **update: object) -> Inputs:
    return replace(inputs, observed=inputs.observed.model_copy(update=update))


def _repos(inputs: Inputs, change: Callable[[dict[str, ObservedRepository]], object]) -> Inputs:
    repositories = dict(inputs.observed.repositories)
    change(repositories)
    return _observed(inputs, repositories=repositories)


def _repo(inputs: Inputs, name: str, **update: object) -> Inputs:
    def change(repositories: dict[str, ObservedRepository]) -> None:
        repositories[name] = repositories[name].model_copy(update=update)

    return _repos(inputs, change)


def _rule(inputs: Inputs, prefix: str, **update: object) -> Inputs:
    rules = {**inputs.observed.rules, prefix: inputs.observed.rules[prefix].model_copy(update=update)}
    return _observed(inputs, rules=rules)


def _owned(inputs: Inputs, **update: object) -> Inputs:
    return replace(inputs, ownership=inputs.ownership.model_copy(update=update))


CHANGES: dict[str, Callable[[Inputs], Inputs]] = {
    "desired spec": lambda i: replace(i, desired=(desired("quay", lifecycle=KEEP_20), HUB)),
    "credential_wait": lambda i: replace(
        i, desired=(QUAY, HUB.model_copy(update={"credential_wait": CredentialWait(reason="r", pending=True)}))
    ),
    "credential_arn": lambda i: replace(i, desired=(QUAY, HUB.model_copy(update={"credential_arn": HUB_ARN_ROTATED}))),
    "retired added": lambda i: replace(i, retired=(K8S,)),
    "ecr rule added": lambda i: _observed(i, rules={**i.observed.rules, "k8s": rule_of(K8S)}),
    "ecr rule changed": lambda i: _rule(i, "quay", custom_role_arn=f"arn:aws:iam::{ACCOUNT}:role/x"),
    "template added": lambda i: _observed(i, templates={**i.observed.templates, "k8s": template_of(K8S)}),
    "template changed": lambda i: _observed(
        i, templates={**i.observed.templates, "quay": i.observed.templates["quay"].model_copy(update={"kms_key": "k"})}
    ),
    "exclusions not read": lambda i: _observed(i, exclusions=None),
    "exclusions empty": lambda i: _observed(i, exclusions=frozenset()),
    "exclusions another": lambda i: _observed(i, exclusions=frozenset({WARMER, SCANNER})),
    "owned rules": lambda i: _owned(i, rules=frozenset({"quay"})),
    "owned templates": lambda i: _owned(i, templates=frozenset({"quay", "docker-hub", "k8s"})),
    "owned exclusions": lambda i: _owned(i, exclusions=frozenset()),
    "no warmer role": lambda i: replace(i, warmer_role=None),
    "another warmer role": lambda i: replace(i, warmer_role=SCANNER),
    "role path": lambda i: replace(i, role_path=replace(i.role_path, path="/")),
    "role account": lambda i: replace(i, role_path=replace(i.role_path, account=None)),
    "role partition": lambda i: replace(i, role_path=replace(i.role_path, partition="aws-cn")),
    "repository added": lambda i: _repos(i, lambda r: r.update({"quay/c": repo("quay/c")})),
    "repository removed": lambda i: _repos(i, lambda r: r.pop("quay/b")),
    "repository re-created": lambda i: _repo(i, "quay/a", created_at=CREATED + timedelta(seconds=1)),
    "repository creation unknown": lambda i: _repo(i, "quay/a", created_at=None),
    "repository mutability": lambda i: _repo(i, "quay/a", image_tag_mutability="IMMUTABLE"),
    "repository exclusions": lambda i: _repo(i, "quay/b", tag_mutability_exclusions=("latest",)),
    "repository arn": lambda i: _repo(i, "quay/a", arn="arn:aws:ecr:us-east-1:210987654321:repository/quay/a"),
    "region": lambda i: _observed(i, region="eu-west-1"),
    "planning code": lambda i: replace(i, code="fedcba9876543210"),
}


def test_the_same_inputs_give_the_same_digest_whatever_their_order() -> None:
    # GIVEN the base inputs, and the same ones listed in another order (rules, templates, repositories, rules)
    observed = BASE.observed
    reordered = replace(
        BASE,
        desired=tuple(reversed(BASE.desired)),
        observed=observed.model_copy(
            update={
                "rules": dict(reversed(observed.rules.items())),
                "templates": dict(reversed(observed.templates.items())),
                "repositories": dict(reversed(observed.repositories.items())),
            }
        ),
    )
    assert list(reordered.observed.repositories) != list(observed.repositories)
    # WHEN each is digested THEN the digests are the same SHA-256 (hex)
    digest = BASE.digest()
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert digest == BASE.digest() == reordered.digest()


@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
def test_the_digest_changes_with_each_fast_plan_input(change: Callable[[Inputs], Inputs]) -> None:
    # GIVEN one fast-plan input changed WHEN digested THEN the digest differs from the base one
    changed = change(BASE)
    assert changed != BASE
    assert changed.digest() != BASE.digest()


def test_every_change_gives_a_digest_of_its_own() -> None:
    # GIVEN every change above (exclusions not read, empty and another set among them)
    digests = [BASE.digest()] + [change(BASE).digest() for change in CHANGES.values()]
    # THEN no two digests are the same
    assert len(set(digests)) == len(CHANGES) + 1


def test_the_digest_changes_with_the_digest_format(monkeypatch: pytest.MonkeyPatch) -> None:
    before = BASE.digest()
    # WHEN the same inputs are digested under another digest format THEN the digest differs
    monkeypatch.setattr(quiet, "DIGEST_FORMAT", "quiet-0")
    assert BASE.digest() != before


def _deep(repository: ObservedRepository) -> ObservedRepository:
    return repository.model_copy(
        update={"details": RepositoryDetails(lifecycle_policy="{}", repository_policy="{}", tags={"team": "x"})}
    )


LEFT_OUT: dict[str, Callable[[ObservedRegion], ObservedRegion]] = {
    "other records": lambda o: with_records(
        o, {name: AppliedFingerprints(policy=f"p-{name}") for name in o.repositories}
    ),
    "no records": lambda o: with_records(o, dict.fromkeys(o.repositories)),  # type: ignore[arg-type]
    "deep read": lambda o: o.model_copy(update={"repositories": {n: _deep(r) for n, r in o.repositories.items()}}),
    "unread": lambda o: o.model_copy(update={"unread": ("quay/b",)}),
}


@pytest.mark.parametrize("change", list(LEFT_OUT.values()), ids=list(LEFT_OUT))
def test_the_digest_leaves_out_records_and_deep_read(
    change: Callable[[ObservedRegion], ObservedRegion],
) -> None:
    # GIVEN the Region with only its repositories' applied fingerprints, deep read or unread list changed
    changed = replace(BASE, observed=change(BASE.observed))
    assert changed.observed != BASE.observed
    # WHEN digested THEN the digest is the same
    assert changed.digest() == BASE.digest()


def test_fast_view_is_the_region_itself_when_nothing_was_read_deeply() -> None:
    assert all(r.details is None for r in BASE.observed.repositories.values())
    assert fast_view(BASE.observed) is BASE.observed


def test_fast_view_drops_the_deep_read_and_the_unread_list_only() -> None:
    # GIVEN a Region with one repository read deeply and one left unread
    repositories = dict(BASE.observed.repositories)
    repositories["quay/a"] = _deep(repositories["quay/a"])
    observed = BASE.observed.model_copy(update={"repositories": repositories, "unread": ("quay/b",)})
    # WHEN seen as a fast run sees it
    fast = fast_view(observed)
    # THEN no deep read and no unread list are left, the records and everything else stay
    assert [r.details for r in fast.repositories.values()] == [None, None, None]
    assert fast.unread == ()
    assert fast.repositories["quay/a"] == BASE.observed.repositories["quay/a"]
    assert fast.repositories["quay/a"].applied == APPLIED
    assert fast.repositories["quay/b"] is repositories["quay/b"]
    assert (fast.rules, fast.templates, fast.exclusions) == (observed.rules, observed.templates, observed.exclusions)
    # AND the Region given is left as it was
    assert observed.repositories["quay/a"].details is not None
    assert observed.unread == ("quay/b",)


def test_fast_view_drops_an_unread_list_with_no_deep_read() -> None:
    observed = BASE.observed.model_copy(update={"unread": ("quay/b",)})
    fast = fast_view(observed)
    assert fast is not observed
    assert fast == BASE.observed


def test_with_records_attaches_the_records_of_listed_repositories_only() -> None:
    # GIVEN records for one listed repository and for one no longer listed
    record = AppliedFingerprints(policy="p" * 64)
    observed = BASE.observed
    # WHEN attached
    found = with_records(observed, {"quay/b": record, "quay/gone": AppliedFingerprints(tags="t")})
    # THEN the listed one has its record, the others keep theirs, the unlisted one is not added
    assert found.repositories["quay/b"].applied == record
    assert found.repositories["quay/a"] is observed.repositories["quay/a"]
    assert found.repositories["quay/a"].applied == APPLIED
    assert found.repositories["docker-hub/library/nginx"].applied is None
    assert list(found.repositories) == list(observed.repositories)
    # AND the rest of the Region, and the Region given, are unchanged
    assert found.model_copy(update={"repositories": observed.repositories}) == observed
    assert observed.repositories["quay/b"].applied is None


def test_with_records_replaces_a_record_already_there() -> None:
    record = AppliedFingerprints(lifecycle="x")
    found = with_records(BASE.observed, {"quay/a": record})
    assert found.repositories["quay/a"].applied == record
    assert found.repositories["quay/a"].created_at == CREATED

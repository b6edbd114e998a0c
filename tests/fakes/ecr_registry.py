"""In-memory fakes of the ECR ports: a reader, and a registry that also applies and validates.

``state`` is what ECR holds (every repository with its full settings); an observation shows it
the way the adapter would (repository details only where read deeply, the caller's applied
fingerprints attached). A successful action changes ``state`` as ECR would
(:func:`tests.fakes.simulate.apply_to_observed`). ``calls`` counts ``observe``,
``validate_rule``, ``pull_time_exclusions`` and each action kind applied. The registry's pull-time
update exclusions are ``state.exclusions`` (``None`` reads as none registered).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence

from ecrcache.engine.plan import ActionKind, ActionResult, Plan, PlannedAction
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.observed import (
    AppliedFingerprints,
    ObservedRegion,
    ObservedRepository,
    ObservedRule,
    Ownership,
)
from tests.fakes.simulate import apply_to_observed

REGION = "us-east-1"


def _under(name: str, prefix: str) -> bool:
    return prefix == ROOT_PREFIX or name.startswith(f"{prefix.rstrip('/')}/")


class MemoryEcrReader:
    """Implements ``EcrReader``; ``observe_error`` is raised by every ``observe`` (and ``rules``) while set."""

    def __init__(self, region: str = REGION, state: ObservedRegion | None = None) -> None:
        self.region = region
        self.state = state or ObservedRegion(region=region)
        self.calls: Counter[str] = Counter()
        self.observe_error: Exception | None = None

    def observe(
        self,
        *,
        prefixes: Sequence[str],
        deep: bool | Collection[str],
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
    ) -> ObservedRegion:
        """As ECR would be read; ``stop`` is asked before each repository read deeply (as the adapter does)."""
        self.calls["observe"] += 1
        if self.observe_error is not None:
            raise self.observe_error
        repositories: dict[str, ObservedRepository] = {}
        unread: list[str] = []
        for name, repo in self.state.repositories.items():
            if not any(_under(name, p) for p in prefixes if p):
                continue
            deep_here = self._reads_deeply(repo, deep)
            if deep_here and stop is not None and stop():
                unread.append(name)
                deep_here = False
            repositories[name] = self._as_read(repo, deep_here, applied.get(name))
        return self.state.model_copy(update={"repositories": repositories, "exclusions": None, "unread": tuple(unread)})

    def observe_repositories(
        self,
        names: Collection[str],
        *,
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
        deep: bool = True,
    ) -> ObservedRegion:
        """The named repositories ECR holds, read deeply when ``deep`` (nothing else: no rule, template or listing);
        those whose turn comes after ``stop`` said so are ``unread``."""
        self.calls["observe_repositories"] += 1
        if self.observe_error is not None:
            raise self.observe_error
        repositories: dict[str, ObservedRepository] = {}
        unread: list[str] = []
        for name, repo in sorted(self.state.repositories.items()):
            if name not in set(names):
                continue
            if deep and stop is not None and stop():
                unread.append(name)
                continue
            repositories[name] = self._as_read(repo, deep, applied.get(name))
        return ObservedRegion(region=self.region, repositories=repositories, unread=tuple(unread))

    def read_details(self, observed: ObservedRegion) -> ObservedRegion:
        """``observed`` with its repositories read deeply (those ECR still holds)."""
        self.calls["read_details"] += 1
        if self.observe_error is not None:
            raise self.observe_error
        repositories = {
            name: repo.model_copy(update={"details": self.state.repositories[name].details})
            for name, repo in observed.repositories.items()
            if name in self.state.repositories
        }
        return observed.model_copy(update={"repositories": repositories})

    def rules(self) -> dict[str, ObservedRule]:
        self.calls["rules"] += 1
        if self.observe_error is not None:
            raise self.observe_error
        return dict(self.state.rules)

    def pull_time_exclusions(self) -> frozenset[str]:
        self.calls["pull_time_exclusions"] += 1
        if self.observe_error is not None:
            raise self.observe_error
        return self.state.exclusions or frozenset()

    @staticmethod
    def _reads_deeply(repo: ObservedRepository, deep: bool | Collection[str]) -> bool:
        return deep is True or (not isinstance(deep, bool) and repo.name in deep)

    @staticmethod
    def _as_read(repo: ObservedRepository, read: bool, applied: AppliedFingerprints | None) -> ObservedRepository:
        return repo.model_copy(update={"details": repo.details if read else None, "applied": applied})


class MemoryEcrRegistry(MemoryEcrReader):
    """Implements ``EcrRegistry``.

    ``failures`` answers an action ``(kind, target)`` with that result every time it is applied;
    ``ignored`` actions are answered ``ok`` but change nothing (ECR lost them: verify finds them
    again). ``validations`` answers ``validate_rule`` per prefix (default: valid); ``validate_error``
    is raised by it while set. ``applied`` lists every action asked for, in order.
    """

    def __init__(self, region: str = REGION, state: ObservedRegion | None = None) -> None:
        super().__init__(region, state)
        self.applied: list[PlannedAction] = []
        self.failures: dict[tuple[ActionKind, str], ActionResult] = {}
        self.ignored: set[tuple[ActionKind, str]] = set()
        self.validations: dict[str, tuple[bool, str | None]] = {}
        self.validate_error: Exception | None = None

    def apply(self, action: PlannedAction) -> ActionResult:
        self.calls[action.kind.value] += 1
        self.applied.append(action)
        key = (action.kind, action.target)
        if key in self.failures:
            return self.failures[key]
        if key not in self.ignored and action.kind.calls_aws:
            held = self.state.exclusions or frozenset()
            state = self.state.model_copy(update={"exclusions": held})
            self.state, _ = apply_to_observed(state, Ownership(), Plan(actions=(action,)))
        return ActionResult.success()

    def validate_rule(self, prefix: str) -> tuple[bool, str | None]:
        self.calls["validate_rule"] += 1
        if self.validate_error is not None:
            raise self.validate_error
        return self.validations.get(prefix, (True, None))


__all__ = ["REGION", "MemoryEcrReader", "MemoryEcrRegistry"]

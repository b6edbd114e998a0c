"""The warm planner's decisions, as values: which fire is due, which images a warm set means, which to warm.

The planner service (:mod:`ecrcache.services.warm_planner`) does the I/O; this module decides:

1. **Due-ness** -- :func:`due_fire`: a set is due when its schedule's most recent fire time
   (:func:`ecrcache.engine.schedule.last_fire`) is after the last fire claimed for it and not before the
   set was created (a new set is not warmed for fires that happened before it existed; ``POST
   /v1/warm-sets/{name}/runs`` warms it now). One tick plans every due set and catches a missed fire up
   (only the most recent one: a run warms the current tags, older fires would warm the same).
   :func:`scheduled_run_id` makes a fire's run id deterministic, so a redelivered tick plans the same run.
2. **Resolution** -- :func:`resolve`: ``images`` as given, ``tag_patterns`` matched against the upstream's
   tags (at most :data:`MAX_PATTERN_MATCHES` per pattern, highest versions first in natural order), ``top``
   from the pull statistics (ECR repository -> upstream path: the rule's ECR prefix stripped, its upstream
   repository prefix applied), de-duplicated by ECR reference. A digest-only reference is warmed by its
   digest: from the cache when ECR has it (its layers imported, an archived one restored); when ECR has
   not, the worker fails it ``not_found`` naming ``tag@digest`` (ECR cannot fetch an uncached image by
   digest alone, containers-roadmap#2837; ``tag@digest`` is warmed by its tag). What cannot be warmed is
   settled at once: an image outside the rule's ``upstream_repository_prefix``, a pattern whose tag
   listing failed.
3. **Order** -- pinned images (``images``) first, then everything else; within each, most pulled first
   over the window, then in the order the set names them. Pinned first because the list is the user's
   promise ("these must be warm"); popularity ranks what the set only discovers (patterns, top), so a
   budget cut drops the least pulled discovered tag before any pinned image.
4. **Freshness and budget** -- :func:`plan_run`: per Region, an image verified by the warmer or refreshed by
   ECR (a pull-through cache ``SUCCESS``) at ``seen`` is ``fresh``, and costs nothing, when ECR's
   :data:`~ecrcache.models.warm_run.REFRESH_WINDOW_HOURS` from ``seen`` last beyond the run's *horizon*
   (:func:`freshness_horizon`, :func:`is_fresh`): the set's next fire when it comes within
   :data:`FRESHNESS_SLACK`, else ``now +`` :data:`FRESHNESS_SLACK`. Either the next run comes before the
   image's window ends (and takes care of it), or more than the slack of the window is left (a pull now
   would land inside ECR's window and refresh nothing). Otherwise it is warmed now: its window ends soon
   and no run of the set comes before. Not "within 24 h of now": a daily set verifies each image just
   after its fire, so at the next day's tick the image was verified 23 h 59 min ago -- "fresh" -- and the
   set warmed every other day. A stale tag is estimated at ``1 + len(platforms)`` upstream requests (the
   manifest or index, and one child per platform), a digest-only reference at 1 (served from the cache,
   or refused: ECR cannot fetch an uncached digest); the worker refunds what it did not spend and charges
   what it spent beyond (an index lists every child, attestations included: the bucket goes into debt).
   Stale images are kept in order while the run's budget lasts; the rest are ``skipped``. :func:`allocate`
   then keeps what the upstream's token bucket granted, in order, and skips the rest as ``rate_limit``.

No I/O, no clock (``now`` is passed in), no environment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from ecrcache.engine.schedule import last_fire
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.image_reference import parse_image_reference
from ecrcache.models.upstream import default_rate_limit
from ecrcache.models.warm_run import REFRESH_WINDOW_HOURS, ImageOutcome, Outcome, RunStatus, WarmTask

if TYPE_CHECKING:
    from ecrcache.models.credential import CredentialSpec
    from ecrcache.models.rule import RuleSpec
    from ecrcache.models.warm_inputs import PulledTag, TagListing
    from ecrcache.models.warm_set import WarmSetSpec

MAX_PATTERN_MATCHES: Final = 100
"""Tags one pattern may add to a run (the highest in natural order): a glob matching thousands of tags
would otherwise record thousands of skipped images per run."""
RUN_NAMESPACE: Final = uuid.UUID("5f0b7c3e-4f3a-4d0e-9a57-ecac4e0a11e1")
"""uuid5 namespace of scheduled run ids (fixed forever: a redelivered tick must find the same id)."""
REFRESH_WINDOW: Final = timedelta(hours=REFRESH_WINDOW_HOURS)
FRESHNESS_SLACK: Final = timedelta(hours=1)
"""How much of ECR's 24-hour window must be left beyond now for an image to be skipped when the set does not
fire again before: more than the spread of one set's runs from day to day (the tick's lateness, up to
5 minutes, and a run's time in the queue), so a daily set's image is not left for tomorrow when its window
ends minutes from now -- and a warm set runs at most hourly, so an hourly set's next fire is within it."""
FIRE_RESOLUTION: Final = timedelta(minutes=1)
"""Fires are whole minutes (``cron`` has no seconds, ``rate`` is at least a minute): two are never closer."""
DIGEST_ONLY_COST: Final = 1
"""Upstream requests a digest-only reference is estimated at: a cached one is served from the cache (0), an
uncached one may reach the upstream once before ECR refuses it."""

# --------------------------------------------------------------------------------------------------
# 1. due-ness


def due_fire(schedule: str, now: datetime, *, last_claimed: datetime | None, created_at: datetime) -> datetime | None:
    """The fire to plan now, or ``None`` (not due: already claimed, before the set existed, never fired)."""
    fire = last_fire(schedule, now)
    if fire is None or fire < created_at:
        return None
    if last_claimed is not None and fire <= last_claimed:
        return None
    return fire


def scheduled_run_id(warm_set: str, fire: datetime) -> str:
    """The run id of ``warm_set``'s fire at ``fire``: the same for every tick that plans that fire."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{warm_set}@{fire.isoformat()}"))


def next_fire(schedule: str, now: datetime, *, within: timedelta) -> datetime | None:
    """The schedule's first fire after ``now`` if it comes within ``within`` (``None``: none does).

    Found with :func:`~ecrcache.engine.schedule.last_fire` alone: a fire after ``now`` at or before
    ``now + within`` is known, then the interval is halved (a fire at or before the middle, after
    ``now``, moves the end to it; none moves the start to the middle) until it is shorter than two fires
    can be apart."""
    end = last_fire(schedule, now + within)
    if end is None or end <= now:
        return None
    start = now
    while end - start >= FIRE_RESOLUTION:
        middle = start + (end - start) / 2
        found = last_fire(schedule, middle)
        if found is not None and found > now:
            end = found
        else:
            start = middle
    return end


def freshness_horizon(now: datetime, schedule: str | None = None) -> datetime:
    """When an image skipped now must still be within ECR's refresh window: the set's next fire if it
    comes within :data:`FRESHNESS_SLACK`, else ``now + FRESHNESS_SLACK`` (no ``schedule``: the latter)."""
    fire = next_fire(schedule, now, within=FRESHNESS_SLACK) if schedule is not None else None
    return fire if fire is not None else now + FRESHNESS_SLACK


def is_fresh(seen: datetime, horizon: datetime) -> bool:
    """Whether an image verified or refreshed at ``seen`` is skipped by a run whose horizon is ``horizon``
    (:func:`freshness_horizon`): ECR's 24 hours from ``seen`` last beyond it."""
    return seen + REFRESH_WINDOW > horizon


def rate_limit_of(rule: RuleSpec, credential: CredentialSpec | None) -> tuple[int, int]:
    """``(requests, window_seconds)`` of the rule's upstream bucket: the credential's ``rate_limit`` when it
    sets one, else the upstream kind's published default. The planner takes with it and the worker refunds
    with it: both must compute the same limit."""
    if credential is not None and credential.rate_limit is not None:
        return credential.rate_limit.requests, credential.rate_limit.window_seconds
    return default_rate_limit(rule.upstream_kind)


# --------------------------------------------------------------------------------------------------
# 2. resolution


def _strip(prefix: str) -> str:
    return prefix.removesuffix("/")


def ecr_repository(prefix: str, rule: RuleSpec, upstream_path: str) -> str | None:
    """The ECR repository that caches ``upstream_path`` through the rule at ``prefix`` (``None``: it cannot).

    ECR maps ``<ecr prefix>/<rest>`` to ``<upstream prefix>/<rest>`` (ecr-facts §1.5); a ``ROOT`` ECR prefix
    caches every upstream path under its own name.
    """
    ecr_prefix = _strip(prefix)
    upstream_prefix = _strip(rule.upstream_repository_prefix)
    rest = upstream_path
    if upstream_prefix != ROOT_PREFIX:
        if not upstream_path.startswith(f"{upstream_prefix}/"):
            return None
        rest = upstream_path.removeprefix(f"{upstream_prefix}/")
    return rest if ecr_prefix == ROOT_PREFIX else f"{ecr_prefix}/{rest}"


def upstream_path(prefix: str, rule: RuleSpec, repository: str) -> str | None:
    """The upstream path an ECR ``repository`` caches through the rule at ``prefix`` (``None``: not under it)."""
    ecr_prefix = _strip(prefix)
    upstream_prefix = _strip(rule.upstream_repository_prefix)
    rest = repository
    if ecr_prefix != ROOT_PREFIX:
        if not repository.startswith(f"{ecr_prefix}/"):
            return None
        rest = repository.removeprefix(f"{ecr_prefix}/")
    return rest if upstream_prefix == ROOT_PREFIX else f"{upstream_prefix}/{rest}"


@dataclass(frozen=True, slots=True)
class Wanted:
    """An image the warm set means, in ECR terms."""

    image: str
    """As the set names it, relative to the upstream (a top tag: its upstream path and tag)."""
    repository: str
    tag: str | None
    digest: str | None = None
    pinned: bool = False
    pulls: int = 0
    order: int = 0
    """Where the set names it (images, then pattern matches, then top tags): the tie-breaker."""

    @property
    def reference(self) -> str:
        """``<repository>:<tag>`` (or ``@<digest>``): the key of freshness and of the image in a run."""
        return f"{self.repository}:{self.tag}" if self.tag is not None else f"{self.repository}@{self.digest}"


@dataclass(frozen=True, slots=True)
class Unwarmable:
    """Something the set names that no worker can warm, with why (settled as ``failed`` in every Region)."""

    image: str
    repository: str
    tag: str | None
    digest: str | None
    failure_class: FailureClass
    message: str
    upstream_requests: int = 0


@dataclass(frozen=True, slots=True)
class Resolution:
    wanted: tuple[Wanted, ...]
    """In warming order (pinned, then by pulls, then as named), each reference once."""
    unwarmable: tuple[Unwarmable, ...] = ()


def _natural_key(tag: str) -> tuple[tuple[int, int | str], ...]:
    """``20.10`` after ``20.9``: digit runs compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", tag))


def _from_images(spec: WarmSetSpec, prefix: str, rule: RuleSpec) -> tuple[list[Wanted], list[Unwarmable]]:
    wanted: list[Wanted] = []
    unwarmable: list[Unwarmable] = []
    for image in spec.images:
        ref = parse_image_reference(image)
        repository = ecr_repository(prefix, rule, ref.repository)
        if repository is None:
            upstream = _strip(rule.upstream_repository_prefix)
            message = f"{image} is outside the rule's upstream_repository_prefix {upstream!r}: ECR cannot pull it"
            unwarmable.append(Unwarmable(image, ref.repository, ref.tag, ref.digest, FailureClass.NOT_FOUND, message))
        else:
            wanted.append(Wanted(image, repository, ref.tag, ref.digest, pinned=True))
    return wanted, unwarmable


def _from_patterns(
    spec: WarmSetSpec, prefix: str, rule: RuleSpec, tag_lists: Mapping[str, TagListing]
) -> tuple[list[Wanted], list[Unwarmable]]:
    wanted: list[Wanted] = []
    unwarmable: list[Unwarmable] = []
    for text, pattern in zip(spec.tag_patterns, spec.parsed_tag_patterns(), strict=True):
        repository = ecr_repository(prefix, rule, pattern.repository)
        listing = tag_lists.get(pattern.repository)
        if repository is None:
            upstream = _strip(rule.upstream_repository_prefix)
            message = f"{text} is outside the rule's upstream_repository_prefix {upstream!r}: ECR cannot pull it"
            unwarmable.append(Unwarmable(text, pattern.repository, pattern.glob, None, FailureClass.NOT_FOUND, message))
            continue
        if listing is None or listing.failure is not None:
            failure = listing.failure if listing is not None and listing.failure else FailureClass.OURS
            reason = listing.message if listing is not None else "the tags were not listed"
            message = f"listing the tags of {pattern.repository} failed: {reason}"
            spent = listing.requests if listing is not None else 0
            unwarmable.append(Unwarmable(text, repository, pattern.glob, None, failure, message, spent))
            continue
        matches = sorted((t for t in listing.tags if pattern.matches(t)), key=_natural_key, reverse=True)
        wanted += [Wanted(f"{pattern.repository}:{tag}", repository, tag) for tag in matches[:MAX_PATTERN_MATCHES]]
    return wanted, unwarmable


def _from_top(top: Sequence[PulledTag], prefix: str, rule: RuleSpec) -> list[Wanted]:
    found: list[Wanted] = []
    for row in top:
        path = upstream_path(prefix, rule, row.repository)
        if path is not None:
            found.append(Wanted(f"{path}:{row.tag}", row.repository, row.tag, pulls=row.pulls))
    return found


def _merge(first: Wanted, second: Wanted) -> Wanted:
    """One image named twice: pinned if either is, the digest if either names one, the first name."""
    return replace(
        first,
        pinned=first.pinned or second.pinned,
        digest=first.digest or second.digest,
        pulls=max(first.pulls, second.pulls),
    )


def order_wanted(candidates: Iterable[Wanted], popularity: Mapping[str, int]) -> tuple[Wanted, ...]:
    """De-duplicated by reference and in warming order: pinned first, then most pulled, then as named."""
    merged: dict[str, Wanted] = {}
    for index, candidate in enumerate(candidates):
        pulls = max(candidate.pulls, popularity.get(candidate.reference, 0))
        current = replace(candidate, pulls=pulls, order=index)
        known = merged.get(current.reference)
        merged[current.reference] = current if known is None else _merge(known, current)
    return tuple(sorted(merged.values(), key=lambda w: (not w.pinned, -w.pulls, w.order)))


def resolve(
    spec: WarmSetSpec,
    *,
    prefix: str,
    rule: RuleSpec,
    tag_lists: Mapping[str, TagListing],
    top: Sequence[PulledTag] = (),
) -> Resolution:
    """The images ``spec`` means through the rule at ``prefix``.

    ``tag_lists`` holds the listing of every pattern's upstream repository (by upstream path); ``top`` the
    rule's most pulled tags, most pulled first: the first ``spec.top.count`` are the set's top tags, and
    all of them rank every candidate by popularity.
    """
    images, unwarmable = _from_images(spec, prefix, rule)
    matched, failed = _from_patterns(spec, prefix, rule, tag_lists)
    chosen = _from_top(top[: spec.top.count], prefix, rule) if spec.top is not None else []
    popularity = {f"{row.repository}:{row.tag}": row.pulls for row in top}
    return Resolution(order_wanted([*images, *matched, *chosen], popularity), tuple(unwarmable + failed))


# --------------------------------------------------------------------------------------------------
# 3. a run: freshness, the run's budget, the upstream's bucket


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every task and outcome of one run shares."""

    run_id: str
    warm_set: str
    rule: str
    upstream: str
    """The upstream's bucket key (:func:`~ecrcache.engine.upstream_buckets.bucket_key`): tasks carry it,
    the worker settles with it."""
    platforms: tuple[str, ...]
    restore_archived: bool
    now: datetime
    limit: tuple[int, int]
    """``(capacity, window_seconds)`` of the upstream's bucket (:func:`rate_limit_of`): tasks carry it, so the
    worker refunds and blocks with exactly the limit the planner took with."""
    schedule: str | None
    """The warm set's schedule: its next fire bounds the freshness horizon (:func:`freshness_horizon`)."""

    def cost(self, item: Wanted) -> int:
        """Upstream requests a stale image is estimated at: a tag's manifest or index and one child per
        platform; a digest-only reference's lookup (:data:`DIGEST_ONLY_COST`)."""
        return 1 + len(self.platforms) if item.tag is not None else DIGEST_ONLY_COST


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One run before the upstream's bucket is asked: what to buy, in order, and what is settled."""

    context: RunContext
    to_warm: tuple[WarmTask, ...]
    settled: tuple[ImageOutcome, ...]

    @property
    def cost(self) -> int:
        return sum(t.reserved_requests for t in self.to_warm)


@dataclass(frozen=True, slots=True)
class Allocation:
    tasks: tuple[WarmTask, ...]
    skipped: tuple[ImageOutcome, ...]
    unused: int
    """Tokens taken from the bucket and not needed (to refund)."""


def _outcome(
    context: RunContext, region: str, item: Wanted | Unwarmable, outcome: Outcome, **extra: object
) -> ImageOutcome:
    return ImageOutcome.model_validate(
        {
            "image": item.image,
            "region": region,
            "repository": item.repository,
            "tag": item.tag,
            "digest": item.digest,
            "outcome": outcome,
            "finished_at": context.now,
            **extra,
        }
    )


def _task(context: RunContext, region: str, item: Wanted, cost: int) -> WarmTask:
    return WarmTask(
        run_id=context.run_id,
        warm_set=context.warm_set,
        region=region,
        rule=context.rule,
        upstream=context.upstream,
        repository=item.repository,
        image=item.image,
        tag=item.tag,
        digest=item.digest,
        platforms=context.platforms,
        restore_archived=context.restore_archived,
        reserved_requests=cost,
        bucket_capacity=context.limit[0],
        bucket_window_seconds=context.limit[1],
    )


def _fresh_message(context: RunContext, at: datetime) -> str:
    hours = max(0, int((context.now - at).total_seconds() // 3600))
    return (
        f"verified or refreshed from the upstream {hours} h ago (ECR re-checks at most every {REFRESH_WINDOW_HOURS} h)"
    )


def plan_run(
    resolution: Resolution,
    context: RunContext,
    *,
    regions: Sequence[str],
    fresh: Mapping[str, Mapping[str, datetime]],
    budget_left: int,
) -> RunPlan:
    """Per Region and in order: fresh images settled, stale ones to buy while ``budget_left`` lasts, the rest skipped.

    ``fresh`` maps a Region to when each reference was last verified or refreshed there (the latest of the
    two); ``budget_left`` is the run's budget less what the planner already spent (tag listings). An image
    is fresh when it is still within ECR's refresh window at the run's horizon (:func:`is_fresh`).
    """
    to_warm: list[WarmTask] = []
    settled: list[ImageOutcome] = []
    left = budget_left
    horizon = freshness_horizon(context.now, context.schedule)
    for item in resolution.wanted:
        cost = context.cost(item)
        for region in regions:
            seen = fresh.get(region, {}).get(item.reference)
            if seen is not None and is_fresh(seen, horizon):
                settled.append(_outcome(context, region, item, Outcome.FRESH, message=_fresh_message(context, seen)))
            elif cost <= left:
                to_warm.append(_task(context, region, item, cost))
                left -= cost
            else:
                message = f"the run's budget of upstream requests ran out ({budget_left} left for images)"
                settled.append(_outcome(context, region, item, Outcome.SKIPPED, message=message))
    for unwarmable in resolution.unwarmable:
        for index, region in enumerate(regions):
            settled.append(
                _outcome(
                    context,
                    region,
                    unwarmable,
                    Outcome.FAILED,
                    failure_class=unwarmable.failure_class,
                    message=unwarmable.message,
                    upstream_requests=unwarmable.upstream_requests if index == 0 else 0,
                )
            )
    return RunPlan(context, tuple(to_warm), tuple(settled))


def allocate(plan: RunPlan, tokens: int, *, why: str) -> Allocation:
    """Keep the tasks the ``tokens`` taken from the upstream's bucket pay for, in order; skip the rest as a
    rate limit (``why`` says which: an empty bucket, a 429's block)."""
    tasks: list[WarmTask] = []
    skipped: list[ImageOutcome] = []
    left = tokens
    for task in plan.to_warm:
        if task.reserved_requests <= left:
            tasks.append(task)
            left -= task.reserved_requests
            continue
        skipped.append(
            ImageOutcome(
                image=task.image,
                region=task.region,
                repository=task.repository,
                tag=task.tag,
                digest=task.digest,
                outcome=Outcome.SKIPPED,
                failure_class=FailureClass.RATE_LIMIT,
                message=why,
                finished_at=plan.context.now,
            )
        )
    return Allocation(tuple(tasks), tuple(skipped), left)


# --------------------------------------------------------------------------------------------------
# 4. how a run ends


def finished_status(counts: Mapping[Outcome, int]) -> RunStatus:
    """A finished run's status: every image warmed or fresh -> succeeded; none -> failed; else partial."""
    good = counts.get(Outcome.WARMED, 0) + counts.get(Outcome.FRESH, 0)
    bad = counts.get(Outcome.SKIPPED, 0) + counts.get(Outcome.FAILED, 0)
    if bad == 0:
        return RunStatus.SUCCEEDED
    return RunStatus.FAILED if good == 0 else RunStatus.PARTIAL


def count_outcomes(outcomes: Iterable[ImageOutcome]) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    return counts

"""Pull statistics: what one ECR pull event counts, the counters it adds to, and what the API answers.

The engine (:mod:`ecrcache.engine.pull_stats`) turns each delivered event into a :class:`PullEvent`
(the :class:`Increment` it adds to each :class:`CounterKey`) or a :class:`DropReason`. Counting is in
two stages, so that the items written do not grow with the batches (:mod:`ecrcache.adapters.pull_stats_store`):

* each batch is written as one :class:`PullDelta` item (its increments coalesced per counter, and each
  event's id, minute and counts), whatever the counters it touches;
* a compaction (:mod:`ecrcache.services.pull_compaction`) folds the pending deltas into the daily
  counter items, each counter written once per compaction, dropping the events whose id is already
  counted (:func:`~ecrcache.engine.pull_stats.fold`), and keeps the ids it counted per minute::

    pk = "PULLS#<yyyy-mm-dd>"             sk = "<region>#<repository>:<tag>"   pulls, first/last_pulled_at,
                                          or  "<region>#<repository>@<digest>" digests, platforms, principals,
                                                                               imports, import_failures,
                                                                               last_sync_at/_status, run,
                                                                               expires_at
    pk = "PULLS#<yyyy-mm-dd>"             sk = "<region>#<repository>"         layer_requests, run, expires_at
    pk = "PULLDELTA"                      sk = "<written at>#<id>"             delta (zlib JSON)
    pk = "PULLSEEN#<yyyy-mm-ddTHH:MM>"    sk = "<run>#<chunk>"                 ids (SS), expires_at
    pk = "PULLCOMPACT"                    sk = "LEASE"                         owner, until, compacted_at, gen,
                                                                               run, deltas, backlog (a run's)

The day is the UTC day of the event's ``time``; the seen items hold the event ids (16-hex sha256
prefixes) counted in that minute. Repository names, tags and digests cannot hold ``#``, and a
repository name holds neither ``:`` nor ``@`` (ECR's patterns), so the sort keys parse back unambiguously.
Readers add the pending deltas to the stored counters (:func:`~ecrcache.engine.pull_stats.plus`), so
what the API answers does not wait for a compaction.

The request parameter models follow the ECR API reference (``BatchGetImage``: ``registryId``,
``repositoryName``, ``imageIds[{imageTag | imageDigest}]``, ``acceptedMediaTypes``;
``GetDownloadUrlForLayer``: ``registryId``, ``repositoryName``, ``layerDigest``). CloudTrail records
them as sent; ``responseElements`` of these read-only calls is ``null`` in the ECR User Guide's
example ("Logging Amazon ECR actions with AWS CloudTrail", image pull action), so digests are known
only when the request named one (or a pull-through cache action reports one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LAYER_EVENT",
    "PULLS_RETENTION",
    "PULL_EVENT",
    "SEEN_RETENTION",
    "BatchGetImageParameters",
    "CompactionState",
    "CounterKey",
    "CounterMark",
    "DailyCounter",
    "DeltaEvent",
    "DropReason",
    "Folded",
    "GetDownloadUrlForLayerParameters",
    "ImageIdentifier",
    "Increment",
    "PullDelta",
    "PullEvent",
    "PulledImage",
    "PullsPage",
]

PULL_EVENT: Final = "BatchGetImage"
LAYER_EVENT: Final = "GetDownloadUrlForLayer"
PULLS_RETENTION: Final = timedelta(days=100)
"""A daily counter item expires 100 days after its day (the API's window is at most 90 days)."""
SEEN_RETENTION: Final = timedelta(days=15)
"""The ids of a minute are kept 15 days after it: longer than the dead-letter queue keeps a message (14
days), so events redriven from it are still counted once."""


class DropReason(StrEnum):
    """Why an event counts nothing (the ``PullEventsDropped`` metric's ``reason`` dimension)."""

    MALFORMED = "malformed"
    """Not an EventBridge event, or a known event with a detail that does not parse: retrying cannot help."""
    IRRELEVANT = "irrelevant"
    """Another event type or ECR call than the ones the rules deliver."""
    FAILED_CALL = "failed_call"
    """A call that failed (``errorCode``): nothing was pulled."""
    WARMER = "warmer"
    """The warmer's own pull: warming must not make an image look popular."""
    UNMANAGED = "unmanaged"
    """A repository under no desired rule's prefix in the event's Region."""
    DUPLICATE = "duplicate"
    """The same EventBridge event id again, in the same batch or already counted by an earlier one."""


# --------------------------------------------------------------------------------------------------
# The request parameters CloudTrail records


class ImageIdentifier(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    image_tag: str | None = Field(default=None, alias="imageTag", min_length=1, max_length=300)
    image_digest: str | None = Field(default=None, alias="imageDigest", min_length=1, max_length=256)


class BatchGetImageParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    repository_name: str = Field(alias="repositoryName", min_length=2, max_length=256)
    image_ids: tuple[ImageIdentifier, ...] = Field(alias="imageIds", min_length=1, max_length=100)


class GetDownloadUrlForLayerParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    repository_name: str = Field(alias="repositoryName", min_length=2, max_length=256)


# --------------------------------------------------------------------------------------------------
# Counters


@dataclass(frozen=True, slots=True)
class CounterKey:
    """One counter item: a repository's ``tag`` or ``digest`` (or neither: its layer requests) on one UTC day."""

    day: date
    region: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.tag is not None and self.digest is not None:
            raise ValueError("a counter key names a tag or a digest, not both")

    @property
    def pk(self) -> str:
        return f"PULLS#{self.day.isoformat()}"

    @property
    def sk(self) -> str:
        return f"{self.region}#{self.reference}"

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.pk, self.sk)

    @property
    def reference(self) -> str:
        """``repository:tag``, ``repository@digest`` or ``repository``."""
        if self.tag is not None:
            return f"{self.repository}:{self.tag}"
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return self.repository

    @property
    def is_image(self) -> bool:
        """A tag or digest counter (a repository's layer-request counter is not)."""
        return self.tag is not None or self.digest is not None

    @classmethod
    def parse(cls, pk: str, sk: str) -> CounterKey:
        """The key of a stored item (the inverse of :attr:`pk` / :attr:`sk`); ``ValueError`` for any other."""
        day = date.fromisoformat(pk.removeprefix("PULLS#"))
        region, sep, reference = sk.partition("#")
        if not pk.startswith("PULLS#") or not sep or not region or not reference:
            raise ValueError(f"not a pull counter key: {pk!r} / {sk!r}")
        if "@" in reference:
            repository, _, digest = reference.partition("@")
            return cls(day, region, repository, digest=digest)
        if ":" in reference:
            repository, _, tag = reference.partition(":")
            return cls(day, region, repository, tag=tag)
        return cls(day, region, reference)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True, slots=True)
class Increment:
    """What events add to one counter item: counts add, sets unite, times keep their min / max.

    ``last_sync_at`` / ``last_sync_status`` are the latest pull-through cache action (at equal times
    the larger status text wins, so merging is order-independent)."""

    pulls: int = 0
    layer_requests: int = 0
    imports: int = 0
    import_failures: int = 0
    first_pulled_at: datetime | None = None
    last_pulled_at: datetime | None = None
    digests: frozenset[str] = frozenset()
    platforms: frozenset[str] = frozenset()
    principals: frozenset[str] = frozenset()
    last_sync_at: datetime | None = None
    last_sync_status: str | None = None

    def merge(self, other: Increment) -> Increment:
        sync = max(
            ((self.last_sync_at, self.last_sync_status or ""), (other.last_sync_at, other.last_sync_status or "")),
            key=lambda pair: (pair[0] is not None, pair[0] or datetime.min, pair[1]),
        )
        return Increment(
            pulls=self.pulls + other.pulls,
            layer_requests=self.layer_requests + other.layer_requests,
            imports=self.imports + other.imports,
            import_failures=self.import_failures + other.import_failures,
            first_pulled_at=_earliest(self.first_pulled_at, other.first_pulled_at),
            last_pulled_at=_latest(self.last_pulled_at, other.last_pulled_at),
            digests=self.digests | other.digests,
            platforms=self.platforms | other.platforms,
            principals=self.principals | other.principals,
            last_sync_at=sync[0],
            last_sync_status=sync[1] or None,
        )

    @property
    def counts(self) -> Increment:
        """Only the counts (what one more copy of the same event would add again; its sets and times
        would add nothing)."""
        return Increment(
            pulls=self.pulls,
            layer_requests=self.layer_requests,
            imports=self.imports,
            import_failures=self.import_failures,
        )

    def minus(self, counts: Increment) -> Increment:
        """These increments without ``counts`` (a duplicate's): sets and times stay, a duplicate adds none."""
        return replace(
            self,
            pulls=self.pulls - counts.pulls,
            layer_requests=self.layer_requests - counts.layer_requests,
            imports=self.imports - counts.imports,
            import_failures=self.import_failures - counts.import_failures,
        )


@dataclass(frozen=True, slots=True)
class PullEvent:
    """One counted event: its SQS message, its EventBridge id (and the 16-hex id the seen items keep),
    the minute it is deduplicated in, and what it adds to which counters."""

    message_id: str
    event_id: str
    seen_id: str
    minute: str
    at: datetime
    contributions: tuple[tuple[CounterKey, Increment], ...] = field(default=())

    @property
    def keys(self) -> tuple[CounterKey, ...]:
        return tuple(key for key, _ in self.contributions)


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    """One counted event as a delta keeps it: its 16-hex id, its minute, and the counts it adds to each
    counter (all a duplicate must take back)."""

    seen_id: str
    minute: str
    counts: tuple[tuple[CounterKey, Increment], ...]


@dataclass(frozen=True, slots=True)
class PullDelta:
    """A batch of events, counted in memory and not yet folded into the daily counters: their
    increments coalesced per counter, and the events (to drop the ones already counted)."""

    increments: Mapping[CounterKey, Increment]
    events: tuple[DeltaEvent, ...]


@dataclass(frozen=True, slots=True)
class Folded:
    """Deltas folded: what they add to each counter (only counters an event counted now touches), the ids
    counted now per minute, and how many events were dropped as already counted."""

    increments: dict[CounterKey, Increment] = field(default_factory=dict)
    counted: dict[str, frozenset[str]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def events(self) -> int:
        return sum(len(ids) for ids in self.counted.values())


@dataclass(frozen=True, slots=True)
class CompactionState:
    """The lease item as read; a missing item is the state of a table that was never compacted."""

    owner: str | None = None
    until: int = 0
    compacted_at: datetime | None = None
    run: str | None = None
    deltas: tuple[str, ...] = ()
    backlog: bool = False
    """The run under way left deltas pending beyond its own (it finishes with the table due at once)."""
    generation: int = 0
    """Runs finished so far: a claim holds only if none finished since the state was read."""

    def held(self, now: datetime) -> bool:
        return self.until > now.timestamp()


@dataclass(frozen=True, slots=True)
class CounterMark:
    """What a run must know of a counter before it folds into it: whether it exists, the run that last
    wrote it, and its times (a time is set only when it moves)."""

    exists: bool = False
    run: str | None = None
    first: datetime | None = None
    last: datetime | None = None
    sync: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class DailyCounter:
    """A counter item as stored (one repository tag or digest, one day); absent attributes are zero / empty."""

    key: CounterKey
    pulls: int = 0
    first_pulled_at: datetime | None = None
    last_pulled_at: datetime | None = None
    digests: frozenset[str] = frozenset()
    platforms: frozenset[str] = frozenset()
    principals: frozenset[str] = frozenset()
    last_sync_at: datetime | None = None
    last_sync_status: str | None = None


# --------------------------------------------------------------------------------------------------
# What the API answers


class PulledImage(BaseModel):
    """One repository tag (or digest) and its pulls over the window, all Regions of its rule together."""

    model_config = ConfigDict(frozen=True)

    repository: str
    tag: str | None = Field(
        default=None, exclude_if=lambda value: value is None, description="The tag pulled; absent for a pull by digest."
    )
    digest: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The digest of a pull by digest (the request named no tag); absent for a tag.",
    )
    pulls: int = Field(description="Pulls (BatchGetImage calls) over the window.")
    daily: list[int] = Field(description="Pulls per UTC day, oldest first; one entry per day of the window.")
    last_pulled_at: datetime | None = Field(description="The latest pull in the window.")
    digests: list[str] = Field(description="Digests seen for it: named in a request or imported by the cache.")
    platforms: list[str] = Field(description="`os/arch` of the pulling clients, where their user agent says it.")
    principals: int = Field(description="How many distinct IAM principals pulled it (counted, never named).")
    regions: list[str] = Field(description="Regions it was pulled in.")


class PullsPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    window_days: int
    rule: str | None = Field(description="The rule asked for; null for every rule.")
    items: list[PulledImage] = Field(description="Most pulled first.")

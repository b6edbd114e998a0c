"""Pull statistics, pure: events -> coalesced counter increments; stored counters -> the most pulled.

Recording (:func:`read_batch`): every event of a batch becomes a :class:`~ecrcache.models.pull_stats.PullEvent`
or is dropped with a :class:`~ecrcache.models.pull_stats.DropReason`:

* ``AWS API Call via CloudTrail`` from ``ecr.amazonaws.com``:

  - ``BatchGetImage``: each distinct image id of the request is one pull of ``repository:tag`` (a
    request naming a tag) or ``repository@digest`` (a digest only): a ``docker pull`` of a
    multi-platform tag is one tag pull plus one digest pull (the platform's manifest). A digest the
    request names (with a tag) or the response holds is added to the tag's ``digests``; CloudTrail
    usually records ``responseElements: null`` for this read-only call.
  - ``GetDownloadUrlForLayer``: one layer request of the repository.
  - The platform is the user agent's ``os/<os> arch/<arch>`` pair, which Docker's agent carries
    (``docker/24.0.7 go/go1.20.10 git-commit/... kernel/... os/linux arch/amd64 UpstreamClient(...)``);
    containerd's and most SDKs' agents carry none, and then no platform is recorded. It is the
    client's platform, which is the one pulled unless the client asked for another (``--platform``).
  - The principal is counted as the 16-hex sha256 prefix of the role a session was issued for
    (``sessionContext.sessionIssuer.arn``), else of the caller's ARN: every session of one role
    (node, task, runner) is one principal; no name is kept.
  - Dropped: a failed call (``errorCode``), a call by the warmer's role (``warmer_role_arn``:
    warming must not make an image popular), a repository under no desired rule's prefix in the
    event's Region (a ``ROOT`` rule covers every repository of its Regions).

* ``ECR Pull Through Cache Action``: an import (``SUCCESS``) or a failed one of the image it names,
  with its time and status as the counter's latest sync.

* Any other event is irrelevant; a body that is not an EventBridge event, or a known event whose
  detail does not parse, is malformed. Both are dropped: delivering them again cannot change them.

Within a batch the same EventBridge ``id`` counts once (:data:`DropReason.DUPLICATE`); across batches
the ids already counted are kept per minute (:func:`seen_id`, :func:`minute_of`).

Two stages (:mod:`ecrcache.models.pull_stats`): :func:`delta_of` turns a batch into one
:class:`~ecrcache.models.pull_stats.PullDelta` (:func:`coalesce` adds its increments per counter), and
:func:`fold` adds deltas together, in the order they were written, taking back the counts of every event
whose id was counted before (in the ids kept, or in an earlier delta of the fold). A copy of an event
adds nothing to a set or a time that the first did not, so only its counts are taken back.
:func:`plus` adds an increment to a stored counter (what a reader does with the deltas still pending).

Reading (:func:`rank`): the stored daily counters of a window -> the most pulled images of a rule
(or of every rule), pulls per day oldest first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from ecrcache.engine.upstream_reasons import owning_rule
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.events import (
    CACHE_ACTION_DETAIL_TYPE,
    CLOUDTRAIL_DETAIL_TYPE,
    CloudTrailDetail,
    PullThroughCacheActionDetail,
)
from ecrcache.models.pull_stats import (
    LAYER_EVENT,
    PULL_EVENT,
    BatchGetImageParameters,
    CounterKey,
    DailyCounter,
    DeltaEvent,
    DropReason,
    Folded,
    GetDownloadUrlForLayerParameters,
    Increment,
    PullDelta,
    PulledImage,
    PullEvent,
)

if TYPE_CHECKING:
    from ecrcache.models.events import (
        CloudTrailIdentity,
    )

__all__ = [
    "BridgeEvent",
    "PullBatch",
    "PullScope",
    "coalesce",
    "delta_of",
    "fold",
    "hash16",
    "minute_of",
    "platform_of",
    "plus",
    "principal_of",
    "rank",
    "read_batch",
    "read_event",
    "seen_id",
    "window",
]

ECR_SOURCE: Final = "ecr.amazonaws.com"
_OS: Final = re.compile(r"(?:^|\s)os/([A-Za-z0-9_.-]{1,32})(?=\s|$)")
_ARCH: Final = re.compile(r"(?:^|\s)arch/([A-Za-z0-9_.-]{1,32})(?=\s|$)")
_ASSUMED_ROLE: Final = re.compile(r"^(arn:[^:]+):sts::(\d{12}):assumed-role/([^/]+)/")
_ROLE: Final = re.compile(r"^(arn:[^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)$")


@dataclass(frozen=True, slots=True)
class BridgeEvent:
    """One SQS record's EventBridge event, as the service parsed it (Powertools' ``EventBridgeModel``)."""

    message_id: str
    event_id: str
    time: datetime
    region: str
    detail_type: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PullScope:
    """What counts: repositories under the desired rules' prefixes, per Region; not the warmer's pulls."""

    managed: frozenset[tuple[str, str]]
    """``(region, prefix)`` of every desired rule in every Region it names (``ROOT``: every repository)."""
    warmer_role_arn: str | None = None

    @classmethod
    def of(
        cls, rules: Mapping[str, Sequence[str]], *, stack_region: str, warmer_role_arn: str | None = None
    ) -> PullScope:
        """From desired rules: prefix -> the Regions the rule names (none: the stack's Region)."""
        managed = frozenset(
            (region, prefix) for prefix, regions in rules.items() for region in regions or (stack_region,)
        )
        return cls(managed=managed, warmer_role_arn=warmer_role_arn or None)

    def manages(self, region: str, repository: str) -> bool:
        return any(
            r == region and (prefix == ROOT_PREFIX or repository.startswith(prefix + "/")) for r, prefix in self.managed
        )

    def is_warmer(self, identity: CloudTrailIdentity) -> bool:
        """The caller is a session of the warmer's role (compared by the role's ARN, and by name for a
        record without its session issuer)."""
        role = self.warmer_role_arn
        if not role:
            return False
        if role in (identity.issuer_arn, identity.arn):
            return True
        named = _ROLE.match(role)
        session = _ASSUMED_ROLE.match(identity.arn or "")
        return bool(named and session and named.group(1, 2, 3) == session.group(1, 2, 3))


@dataclass(frozen=True, slots=True)
class PullBatch:
    """A batch read: the events to count (one per EventBridge id) and the messages dropped, with why."""

    events: tuple[PullEvent, ...] = ()
    dropped: tuple[tuple[str, DropReason], ...] = field(default=())


def hash16(value: str) -> str:
    """The first 16 hex digits of sha256(value): a stable id that does not name what it counts."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def seen_id(event_id: str) -> str:
    return hash16(event_id)


def minute_of(at: datetime) -> str:
    """``yyyy-mm-ddTHH:MM`` (UTC) of an event: the seen item that deduplicates it."""
    return _utc(at).strftime("%Y-%m-%dT%H:%M")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def platform_of(user_agent: str | None) -> str | None:
    """``os/arch`` from a user agent's ``os/<os> arch/<arch>`` tokens (Docker's); ``None`` without both."""
    if not user_agent:
        return None
    found_os, found_arch = _OS.search(user_agent), _ARCH.search(user_agent)
    if found_os is None or found_arch is None:
        return None
    return f"{found_os.group(1).lower()}/{found_arch.group(1).lower()}"


def principal_of(identity: CloudTrailIdentity) -> str | None:
    """The caller, counted but not named: the hash of its role (for a session) or of its ARN.

    A role is written ``arn:<partition>:iam::<account>:role/<name>`` whether the record names it by its
    session issuer (whose ARN may hold a path) or only by the session's ARN: role names are unique in an
    account, so every session of one role is one principal."""
    caller = identity.issuer_arn or identity.arn or identity.invoked_by
    if caller is None:
        return None
    role = _ROLE.match(caller) or _ASSUMED_ROLE.match(caller)
    if role is not None:
        partition, account, name = role.group(1, 2, 3)
        caller = f"{partition}:iam::{account}:role/{name}"
    return hash16(caller)


def read_event(event: BridgeEvent, scope: PullScope) -> PullEvent | DropReason:
    """What one event counts, or why it counts nothing."""
    try:
        if event.detail_type == CLOUDTRAIL_DETAIL_TYPE:
            return _read_call(event, CloudTrailDetail.model_validate(event.detail), scope)
        if event.detail_type == CACHE_ACTION_DETAIL_TYPE:
            return _read_cache_action(event, PullThroughCacheActionDetail.model_validate(event.detail), scope)
    except ValidationError:
        return DropReason.MALFORMED
    return DropReason.IRRELEVANT


def _call_dropped(detail: CloudTrailDetail, scope: PullScope) -> DropReason | None:
    if detail.event_source != ECR_SOURCE or detail.event_name not in (PULL_EVENT, LAYER_EVENT):
        return DropReason.IRRELEVANT
    if detail.error_code:
        return DropReason.FAILED_CALL
    if scope.is_warmer(detail.user_identity):
        return DropReason.WARMER
    return None


def _read_call(event: BridgeEvent, detail: CloudTrailDetail, scope: PullScope) -> PullEvent | DropReason:
    if (dropped := _call_dropped(detail, scope)) is not None:
        return dropped
    at = _utc(event.time)
    region = detail.aws_region
    params = detail.request_parameters or {}
    if detail.event_name == LAYER_EVENT:
        repository = GetDownloadUrlForLayerParameters.model_validate(params).repository_name
        if not scope.manages(region, repository):
            return DropReason.UNMANAGED
        return _event(event, at, ((CounterKey(at.date(), region, repository), Increment(layer_requests=1)),))
    request = BatchGetImageParameters.model_validate(params)
    if not scope.manages(region, request.repository_name):
        return DropReason.UNMANAGED
    return _event(event, at, _pulls(request, detail, at))


def _pulls(
    request: BatchGetImageParameters, detail: CloudTrailDetail, at: datetime
) -> tuple[tuple[CounterKey, Increment], ...]:
    """One pull per distinct image the request names (the API takes at most 100)."""
    platform = platform_of(detail.user_agent)
    principal = principal_of(detail.user_identity)
    common = Increment(
        pulls=1,
        first_pulled_at=at,
        last_pulled_at=at,
        platforms=frozenset({platform} if platform else ()),
        principals=frozenset({principal} if principal else ()),
    )
    answered = _response_digests(detail.response_elements)
    found: dict[CounterKey, Increment] = {}
    for image in request.image_ids:
        if image.image_tag is not None:
            key = CounterKey(at.date(), detail.aws_region, request.repository_name, tag=image.image_tag)
            digests = {image.image_digest} if image.image_digest else set(answered.get(image.image_tag, ()))
        elif image.image_digest is not None:
            key = CounterKey(at.date(), detail.aws_region, request.repository_name, digest=image.image_digest)
            digests = {image.image_digest}
        else:
            continue  # ECR answers MissingDigestAndTag: nothing was pulled
        if key not in found:
            found[key] = replace(common, digests=frozenset(digests))
    return tuple(found.items())


def _response_digests(elements: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Tag -> digests from ``responseElements.images[].imageId`` when CloudTrail recorded them (rarely)."""
    out: dict[str, list[str]] = {}
    images = (elements or {}).get("images")
    for image in images if isinstance(images, list) else ():
        ids = image.get("imageId") if isinstance(image, dict) else None
        if isinstance(ids, dict) and isinstance(ids.get("imageTag"), str) and isinstance(ids.get("imageDigest"), str):
            out.setdefault(ids["imageTag"], []).append(ids["imageDigest"])
    return out


def _read_cache_action(
    event: BridgeEvent, detail: PullThroughCacheActionDetail, scope: PullScope
) -> PullEvent | DropReason:
    if detail.image_tag is None and detail.image_digest is None:
        return DropReason.IRRELEVANT  # names no image: nothing to count it under
    if not scope.manages(event.region, detail.repository_name):
        return DropReason.UNMANAGED
    at = _utc(event.time)
    if detail.image_tag is not None:
        key = CounterKey(at.date(), event.region, detail.repository_name, tag=detail.image_tag)
    else:
        key = CounterKey(at.date(), event.region, detail.repository_name, digest=detail.image_digest)
    increment = Increment(
        imports=1 if detail.succeeded else 0,
        import_failures=0 if detail.succeeded else 1,
        digests=frozenset({detail.image_digest} if detail.image_digest else ()),
        last_sync_at=at,
        last_sync_status=detail.sync_status,
    )
    return _event(event, at, ((key, increment),))


def _event(event: BridgeEvent, at: datetime, contributions: tuple[tuple[CounterKey, Increment], ...]) -> PullEvent:
    return PullEvent(
        message_id=event.message_id,
        event_id=event.event_id,
        seen_id=seen_id(event.event_id),
        minute=minute_of(at),
        at=at,
        contributions=contributions,
    )


def read_batch(items: Iterable[BridgeEvent | tuple[str, DropReason]], scope: PullScope) -> PullBatch:
    """Every record of a batch read (a ``(message_id, reason)`` is one the service could not parse);
    the same EventBridge id twice counts once."""
    events: list[PullEvent] = []
    dropped: list[tuple[str, DropReason]] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, tuple):
            dropped.append(item)
            continue
        if item.event_id in seen:
            dropped.append((item.message_id, DropReason.DUPLICATE))
            continue
        seen.add(item.event_id)
        read = read_event(item, scope)
        if isinstance(read, DropReason):
            dropped.append((item.message_id, read))
        elif read.contributions:
            events.append(read)
        else:
            dropped.append((item.message_id, DropReason.MALFORMED))
    return PullBatch(events=tuple(events), dropped=tuple(dropped))


def coalesce(events: Iterable[PullEvent]) -> dict[CounterKey, Increment]:
    """One increment per counter: what all ``events`` add to it together."""
    out: dict[CounterKey, Increment] = {}
    for event in events:
        for key, increment in event.contributions:
            current = out.get(key)
            out[key] = increment if current is None else current.merge(increment)
    return dict(sorted(out.items(), key=lambda item: item[0].sort_key))


def delta_of(events: Iterable[PullEvent]) -> PullDelta:
    """A batch's events as one delta: their increments coalesced, and each event's id, minute and counts."""
    listed = tuple(events)
    return PullDelta(
        increments=coalesce(listed),
        events=tuple(
            DeltaEvent(event.seen_id, event.minute, tuple((key, inc.counts) for key, inc in event.contributions))
            for event in listed
        ),
    )


def fold(deltas: Iterable[PullDelta], seen: Mapping[str, Collection[str]]) -> Folded:
    """``deltas`` (in the order they were written) added together; an event whose id is in ``seen``
    (minute -> ids already counted) or in an earlier delta is a duplicate: its counts are taken back.
    Only the counters that an event counted now adds to are in the result (a counter only duplicates
    touch holds them already)."""
    total: dict[CounterKey, Increment] = {}
    counted: dict[str, set[str]] = {}
    fresh: set[CounterKey] = set()
    duplicates = 0
    for delta in deltas:
        for key, increment in delta.increments.items():
            current = total.get(key)
            total[key] = increment if current is None else current.merge(increment)
        for event in delta.events:
            ids = counted.setdefault(event.minute, set())
            if event.seen_id in ids or event.seen_id in seen.get(event.minute, ()):
                duplicates += 1
                for key, counts in event.counts:
                    total[key] = total[key].minus(counts)
                continue
            ids.add(event.seen_id)
            fresh.update(key for key, _ in event.counts)
    return Folded(
        increments={key: total[key] for key in sorted(fresh, key=lambda k: k.sort_key)},
        counted={minute: frozenset(ids) for minute, ids in sorted(counted.items()) if ids},
        duplicates=duplicates,
    )


def plus(counter: DailyCounter | None, key: CounterKey, increment: Increment) -> DailyCounter:
    """A stored counter (``None``: none yet) with ``increment`` added."""
    base = counter or DailyCounter(key)
    merged = Increment(
        pulls=base.pulls,
        first_pulled_at=base.first_pulled_at,
        last_pulled_at=base.last_pulled_at,
        digests=base.digests,
        platforms=base.platforms,
        principals=base.principals,
        last_sync_at=base.last_sync_at,
        last_sync_status=base.last_sync_status,
    ).merge(increment)
    return DailyCounter(
        key=key,
        pulls=merged.pulls,
        first_pulled_at=merged.first_pulled_at,
        last_pulled_at=merged.last_pulled_at,
        digests=merged.digests,
        platforms=merged.platforms,
        principals=merged.principals,
        last_sync_at=merged.last_sync_at,
        last_sync_status=merged.last_sync_status,
    )


# --------------------------------------------------------------------------------------------------
# Reading: the most pulled


def window(now: datetime, days: int) -> tuple[date, ...]:
    """The ``days`` UTC days ending today, oldest first."""
    today = _utc(now).date()
    return tuple(today - timedelta(days=offset) for offset in range(days - 1, -1, -1))


@dataclass
class _Total:
    daily: dict[date, int] = field(default_factory=dict)
    last: datetime | None = None
    digests: set[str] = field(default_factory=set)
    platforms: set[str] = field(default_factory=set)
    principals: set[str] = field(default_factory=set)
    regions: set[str] = field(default_factory=set)

    def add(self, counter: DailyCounter) -> None:
        self.daily[counter.key.day] = self.daily.get(counter.key.day, 0) + counter.pulls
        if counter.last_pulled_at is not None and (self.last is None or counter.last_pulled_at > self.last):
            self.last = counter.last_pulled_at
        self.digests |= counter.digests
        self.platforms |= counter.platforms
        self.principals |= counter.principals
        self.regions.add(counter.key.region)


def rank(
    counters: Iterable[DailyCounter],
    *,
    days: Sequence[date],
    top: int,
    rule: str | None = None,
    managed: Iterable[tuple[str, str]] = (),
    tags_only: bool = False,
) -> list[PulledImage]:
    """The ``top`` most pulled images over ``days`` (every Region summed), most pulls first (then the
    latest pull, then the name). With ``rule``, only the images that rule caches (:func:`owning_rule`
    over ``managed``). Images with no pull in the window (only imports) are left out."""
    in_window = set(days)
    owned = frozenset(managed)
    totals: dict[tuple[str, str | None, str | None], _Total] = {}
    for counter in counters:
        key = counter.key
        if key.day not in in_window or not key.is_image or (tags_only and key.tag is None):
            continue
        if rule is not None and owning_rule(key.region, key.repository, owned) != rule:
            continue
        totals.setdefault((key.repository, key.tag, key.digest), _Total()).add(counter)
    ranked = [
        PulledImage(
            repository=repository,
            tag=tag,
            digest=digest,
            pulls=sum(total.daily.values()),
            daily=[total.daily.get(day, 0) for day in days],
            last_pulled_at=total.last,
            digests=sorted(total.digests),
            platforms=sorted(total.platforms),
            principals=len(total.principals),
            regions=sorted(total.regions),
        )
        for (repository, tag, digest), total in totals.items()
    ]
    ranked = [image for image in ranked if image.pulls > 0]
    ranked.sort(key=lambda i: (i.repository, i.tag or "", i.digest or ""))
    ranked.sort(key=lambda i: (i.pulls, i.last_pulled_at or datetime.min.replace(tzinfo=UTC)), reverse=True)
    return ranked[:top]

"""Pull statistics: record an SQS batch of ECR pull events; answer the most pulled images of a rule.

:meth:`PullStatsService.record` reads every record of the batch (its body is the EventBridge event the
``PullEventsRule`` / ``PullCacheActionsRule`` sent to the queue), counts the batch in memory and writes
it as one pending delta item (:mod:`ecrcache.adapters.pull_stats_store`), then runs the compaction if
it is due (:mod:`ecrcache.services.pull_compaction`: the deltas folded into the daily counters, each
event id counted once). What it answers is the partial batch response:

* a record whose body is not an EventBridge event, or an event whose detail does not parse, or an
  event that counts nothing (another call, a failed one, the warmer's, an unmanaged repository) is
  dropped and counted in the ``PullEventsDropped`` metric by reason. Delivering it again would
  change nothing, so it is not reported as a failure (which would only send it to the DLQ after 5
  deliveries); a malformed one is logged with its message id and the fields that did not parse,
  never their values;
* if the delta cannot be written (DynamoDB throttled beyond botocore's retries, access denied), every
  counted record is a batch item failure: SQS delivers it again, and after ``maxReceiveCount`` moves
  it to the DLQ, where the ``PullEventsDlqAlarm`` sees it. A part of the batch written before the
  failure cannot count twice: the compaction counts each event id once;
* if the desired rules cannot be read, nothing is counted and every record fails;
* a pull-through cache action refused on the upstream credential marks that credential ``Invalid`` at once
  (:class:`~ecrcache.services.credential_health.CredentialMarks`: one write per credential per batch); a mark
  that fails is logged and counted, never fails a record (the daily health check sees the credential anyway);
* a compaction that fails is logged and counted (``PullStatsCompactionFailed``) but fails no record:
  the batch is written, and the next batch resumes the compaction.

Powertools' ``BatchProcessor`` handles records one by one (a record fails when its handler raises);
the delta is only written once the whole batch is read, so the failures are known only after that one
write, and the response is built here in Powertools' ``PartialItemFailureResponse`` shape.

:meth:`PullStatsService.pulls` serves ``GET /v1/pulls`` and :meth:`PullStatsService.top_tags` the warm
planner's ``top``: both rank with :func:`ecrcache.engine.pull_stats.rank` the stored counters plus the
deltas still pending (folded against the ids already counted), so they do not wait for a compaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import ValidationError

from ecrcache.engine.credential_errors import cache_action_errors
from ecrcache.engine.pull_stats import BridgeEvent, PullScope, fold, plus, rank, read_batch, window
from ecrcache.errors import EcrcacheError, NotFoundError
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.events import CACHE_ACTION_DETAIL_TYPE, SYNC_SUCCESS
from ecrcache.models.pull_stats import CounterKey, DropReason, PullsPage
from ecrcache.observability import count_by, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

    from ecrcache.models.pull_stats import DailyCounter, Increment, PulledImage
    from ecrcache.ports import PullStatsStore
    from ecrcache.services.credential_health import CredentialMarks
    from ecrcache.services.pull_compaction import CompactionOutcome, PullCompaction

__all__ = ["BatchOutcome", "PullStatsService", "bridge_event"]


def bridge_event(record: SqsRecordModel) -> BridgeEvent | tuple[str, DropReason]:
    """The EventBridge event an SQS record carries, or ``(message_id, malformed)`` (logged without values)."""
    try:
        event = EventBridgeModel.model_validate_json(record.body if isinstance(record.body, str) else "")
    except ValidationError as exc:
        fields = sorted({".".join(map(str, error["loc"])) or "body" for error in exc.errors()})
        logger.warning(
            "a pull event that is not an EventBridge event was dropped",
            extra={"message_id": record.messageId, "fields": fields[:10]},
        )
        return (record.messageId, DropReason.MALFORMED)
    if not isinstance(event.detail, dict):  # the model also admits pydantic models, never parsed from JSON
        return (record.messageId, DropReason.MALFORMED)
    return BridgeEvent(
        message_id=record.messageId,
        event_id=event.id,
        time=event.time,
        region=event.region,
        detail_type=event.detail_type,
        detail=event.detail,
    )


def _failed(event: BridgeEvent) -> bool:
    """A pull-through cache action that did not succeed (cheap: no parsing)."""
    return event.detail_type == CACHE_ACTION_DETAIL_TYPE and event.detail.get("sync-status") != SYNC_SUCCESS


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one batch did: pulls and events counted, events dropped (by reason), the messages that failed."""

    pulls: int = 0
    counted: int = 0
    dropped: Counter[DropReason] = field(default_factory=Counter)
    failed: tuple[str, ...] = ()
    writes: int = 0
    error: str | None = None

    def response(self) -> PartialItemFailureResponse:
        """The partial batch response Lambda's SQS event source reads (``ReportBatchItemFailures``)."""
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failed]}


class PullStatsService:
    """Recording and ranking pulls over a :class:`~ecrcache.ports.PullStatsStore`."""

    def __init__(
        self,
        store: PullStatsStore,
        *,
        stack_region: str,
        warmer_role_arn: str | None = None,
        compaction: PullCompaction | None = None,
        marks: CredentialMarks | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.marks = marks
        self.stack_region = stack_region
        self.warmer_role_arn = warmer_role_arn or None
        self.compaction = compaction
        self.clock = clock

    # -- recording -----------------------------------------------------------------------------

    def record(self, records: Sequence[SqsRecordModel], remaining: Callable[[], float] | None = None) -> BatchOutcome:
        """Count a batch (then compact, if due, within the ``remaining`` seconds of the invocation); the
        messages it could not count are the outcome's ``failed``."""
        try:
            scope = PullScope.of(
                self.store.desired_rules(), stack_region=self.stack_region, warmer_role_arn=self.warmer_role_arn
            )
        except EcrcacheError as exc:
            logger.warning("the desired rules could not be read: every record is retried", extra={"error": str(exc)})
            return self._report(BatchOutcome(failed=tuple(r.messageId for r in records), error=exc.message))
        items = [bridge_event(record) for record in records]
        batch = read_batch(items, scope)
        self._mark_credentials([item for item in items if not isinstance(item, tuple)], scope)
        now = self.clock()
        writes = self._writes()
        dropped = Counter(reason for _, reason in batch.dropped)
        try:
            self.store.add(batch.events, now)
        except EcrcacheError as exc:
            failed = tuple(event.message_id for event in batch.events)
            return self._report(BatchOutcome(dropped=dropped, failed=failed, error=exc.message))
        outcome = BatchOutcome(
            pulls=sum(inc.pulls for event in batch.events for _, inc in event.contributions),
            counted=len(batch.events),
            dropped=dropped,
        )
        compacted = self._compact(now, remaining)
        if compacted is not None and compacted.finished and compacted.duplicates:  # once, by the run that ends
            dropped[DropReason.DUPLICATE] += compacted.duplicates
        return self._report(replace(outcome, writes=self._writes() - writes))

    def _mark_credentials(self, events: Sequence[BridgeEvent], scope: PullScope) -> None:
        """A pull-through cache action refused on the credential marks the rule's credential ``Invalid`` at once
        (one write per credential per batch; the desired rules' credentials are read only when there is one)."""
        if self.marks is None or not any(_failed(event) for event in events):
            return
        try:
            errors = cache_action_errors(events, scope, self.store.rule_credentials())
        except EcrcacheError as exc:
            logger.warning(
                "the rules' credentials could not be read: no credential marked", extra={"error": exc.message}
            )
            return
        if errors:
            self.marks.mark(errors.values())

    def _writes(self) -> int:
        compaction = 0 if self.compaction is None else self.compaction.store.write_items
        return self.store.write_items + compaction

    def _compact(self, now: datetime, remaining: Callable[[], float] | None) -> CompactionOutcome | None:
        if self.compaction is None:
            return None
        try:
            compacted = self.compaction.run_if_due(now, remaining)
        except EcrcacheError as exc:
            metrics.add_metric(name="PullStatsCompactionFailed", unit="Count", value=1)
            logger.warning(
                "the pull statistics compaction failed: the next batch resumes it", extra={"error": exc.message}
            )
            return None
        if compacted is not None:
            metrics.add_metric(name="PullEventsCompacted", unit="Count", value=compacted.events)
            logger.info(
                "pull deltas compacted",
                extra={
                    "run": compacted.run,
                    "resumed": compacted.resumed,
                    "deltas": compacted.deltas,
                    "events": compacted.events,
                    "duplicates": compacted.duplicates,
                    "counters": compacted.counters,
                    "finished": compacted.finished,
                    "paused": compacted.paused,
                },
            )
        return compacted

    @staticmethod
    def _report(outcome: BatchOutcome) -> BatchOutcome:
        metrics.add_metric(name="PullsRecorded", unit="Count", value=outcome.pulls)
        metrics.add_metric(name="PullEventsCounted", unit="Count", value=outcome.counted)
        metrics.add_metric(name="PullStatsWrites", unit="Count", value=outcome.writes)
        metrics.add_metric(name="PullEventsFailed", unit="Count", value=len(outcome.failed))
        for reason, count in sorted(outcome.dropped.items()):
            count_by("PullEventsDropped", dimension="reason", value=reason.value, count=count)
        if outcome.failed:
            logger.warning(
                "pull events could not be counted: their messages are reported for redelivery",
                extra={"failed": len(outcome.failed), "error": outcome.error},
            )
        logger.info(
            "pull events recorded",
            extra={
                "pulls": outcome.pulls,
                "counted": outcome.counted,
                "dropped": {reason.value: count for reason, count in sorted(outcome.dropped.items())},
                "writes": outcome.writes,
            },
        )
        return outcome

    # -- reading -------------------------------------------------------------------------------

    def pulls(self, rule: str | None, *, top: int, window_days: int, now: datetime) -> PullsPage:
        """The ``top`` most pulled images over the last ``window_days`` UTC days: of ``rule`` (a desired
        rule, else :class:`NotFoundError`), or of every rule."""
        return PullsPage(
            window_days=window_days, rule=rule, items=self._ranked(rule, top, window_days, now, tags_only=False)
        )

    def top_tags(self, rule: str, count: int, window_days: int, now: datetime) -> list[tuple[str, str, int]]:
        """The ``count`` most pulled tags of ``rule`` (digest-only pulls left out) as ``(repository, tag,
        pulls)``, most pulled first: a warm set's ``top`` (:class:`~ecrcache.ports.PullStats`)."""
        ranked = self._ranked(rule, count, window_days, now, tags_only=True)
        return [(image.repository, image.tag, image.pulls) for image in ranked if image.tag is not None]

    def last_synced(self, region: str, references: Collection[str], now: datetime) -> dict[str, datetime]:
        """When ECR last refreshed each ``<repository>:<tag>`` from its upstream in ``region``, looked up on the
        UTC day of ``now`` and the day before (enough for the warm planner's 24-hour freshness,
        :class:`~ecrcache.ports.PullStats`). A day counter keeps its last ``ECR Pull Through Cache Action``
        only: a day whose last refresh failed says nothing fresh (ECR will ask the upstream again)."""
        today = now.astimezone(UTC).date()
        keys = [
            CounterKey(day, region, repository, tag=tag)
            for day in (today - timedelta(days=1), today)
            for repository, _, tag in (reference.rpartition(":") for reference in references)
            if repository and tag
        ]
        latest: dict[str, datetime] = {}
        wanted = set(keys)
        for counter in self._with_pending(self.store.counters_of(keys), wanted.__contains__):
            if counter.last_sync_at is not None and counter.last_sync_status == SYNC_SUCCESS:
                reference = counter.key.reference
                latest[reference] = max(counter.last_sync_at, latest.get(reference, counter.last_sync_at))
        return latest

    def _ranked(
        self, rule: str | None, top: int, window_days: int, now: datetime, *, tags_only: bool
    ) -> list[PulledImage]:
        rules = self.store.desired_rules()
        if rule is not None and rule not in rules:
            raise NotFoundError(f"no rule {rule!r}: pulls are kept per desired rule")
        scope = PullScope.of(rules, stack_region=self.stack_region)
        if rule is None:
            prefixes = [""]
        else:
            regions = rules[rule] or (self.stack_region,)
            prefixes = [f"{region}#" if rule == ROOT_PREFIX else f"{region}#{rule}/" for region in regions]
        days = window(now, window_days)
        in_window = set(days)

        def wanted(key: CounterKey) -> bool:
            return key.is_image and key.day in in_window and any(key.sk.startswith(p) for p in prefixes)

        counters = self._with_pending(self.store.counters(days, prefixes), wanted)
        return rank(counters, days=days, top=top, rule=rule, managed=scope.managed, tags_only=tags_only)

    def _with_pending(self, stored: Iterable[DailyCounter], wanted: Callable[[CounterKey], bool]) -> list[DailyCounter]:
        """The stored counters plus what the pending deltas add to the ``wanted`` ones."""
        counters = {counter.key: counter for counter in stored}
        for key, increment in self._pending().items():
            if wanted(key):
                counters[key] = plus(counters.get(key), key, increment)
        return list(counters.values())

    def _pending(self) -> dict[CounterKey, Increment]:
        """What the pending deltas add, each event id counted once (folded against the ids counted)."""
        deltas = [delta for _, delta in self.store.pending(consistent=False)]
        if not deltas:
            return {}
        minutes = {event.minute for delta in deltas for event in delta.events}
        # The ids counted are read consistently: a compaction writes them before its counters, so a reader
        # that sees a run's counters also sees its ids, and drops the run's deltas if they are still there.
        return fold(deltas, self.store.seen(minutes)).increments

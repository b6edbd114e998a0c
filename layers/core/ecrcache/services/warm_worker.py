"""The warm worker: one :class:`~ecrcache.models.warm_run.WarmTask` (one image, one Region) -> its outcome.

:meth:`WarmWorkerService.handle` is what each ``WarmQueue`` message comes to:

1. **Once per image and run.** SQS delivers at least once: a task whose image already has an outcome in
   its run (:meth:`~ecrcache.ports.WarmRunStore.outcome`) is answered with it, nothing is pulled or
   counted again. The run is finished if it is done (:meth:`~ecrcache.ports.WarmRunStore.finish_if_done`):
   the earlier delivery may have recorded the last image and then failed to finish the run. A finished run
   not announced yet is announced, then flagged; only the call whose flag write succeeded counts
   ``WarmRunsFinished`` (:mod:`ecrcache.services.warm_finished`: at least once for the event, exactly once for
   the metric; a redelivery completes an announcement its finisher did not make).
2. **Budget first.** An upstream that answered 429 (to this run or another) is blocked until its
   window resets (:meth:`~ecrcache.ports.UpstreamBudget.blocked_until`): the image is ``skipped`` with
   class ``rate_limit`` and ECR is not called. An image verified since the run was planned (a concurrent
   run warmed it) is ``fresh``: nothing to spend. The planner only queues an image whose 24-hour refresh
   window ends within the hour (or before the set's next fire), so one whose window lasts beyond the
   next hour (:func:`~ecrcache.engine.warm.is_fresh` with no schedule) was verified after planning.
3. **Warm** through ECR (:class:`~ecrcache.ports.WarmEcr`), classify (:func:`ecrcache.engine.warm_pull.outcome_of`).
   ``UpstreamTooManyRequests`` blocks the upstream for its rate-limit window
   (:func:`~ecrcache.engine.upstream_buckets.block_until`) before anything is recorded, so the rest of every run's
   images from that upstream are skipped even if this message is redelivered.
4. **Record** the outcome (the record that makes a redelivery a no-op), then -- only if this delivery
   recorded it (two deliveries of one task can both get here; the store's conditional write lets one
   win), and best effort, logged when they fail, since a redelivery would skip them anyway -- the image's
   freshness (``WARMED#``) when it was warmed, and the budget: the unused part of the tokens the planner
   took is refunded, an overspend is charged (the bucket may go into debt). Both come after the outcome
   on purpose: a redelivered task must neither refund twice nor find its own freshness and call itself
   ``fresh`` (a lost refund only makes the bucket stricter; lost freshness costs the next run one
   re-validation). If recording commits but finishing the run fails, the message is retried; that retry
   finishes the run (step 1) and this image's refund is lost (the bucket is stricter for its window).

5. **Credential errors.** A warm failing with class ``credential`` (the upstream refused the rule's credential)
   is kept until the batch is done: :meth:`WarmWorkerService.flush_marks` then marks each credential ``Invalid``
   at once (one write per credential per batch), with the evidence.

A store or budget error (DynamoDB throttled after botocore's retries ...) is raised: the message is
reported as a batch item failure and SQS delivers it again (and, after ``maxReceiveCount``, to the DLQ).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ecrcache.engine.credential_errors import warm_error
from ecrcache.engine.upstream_buckets import BucketLimit, block_until, bucket_upstream
from ecrcache.engine.warm import freshness_horizon, is_fresh
from ecrcache.engine.warm_pull import fresh_outcome, outcome_of, skipped_outcome
from ecrcache.errors import EcrcacheError
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import Outcome, WarmTask
from ecrcache.observability import count_by, logger, metrics
from ecrcache.services.warm_finished import announce_finished

if TYPE_CHECKING:
    from ecrcache.engine.credential_errors import CredentialError
    from ecrcache.models.warm_run import (
        ImageOutcome,
        WarmRun,
    )
    from ecrcache.ports import RecordedOutcomes, StateEventPublisher, UpstreamBudget, WarmEcr, WarmRunStore
    from ecrcache.services.credential_health import CredentialMarks

__all__ = ["WarmWorkerService", "task_from_body", "task_limit"]


def task_limit(task: WarmTask) -> BucketLimit:
    """The upstream's token bucket as the planner took from it (:func:`ecrcache.engine.warm.rate_limit_of`: the
    credential's ``rate_limit``, else the upstream kind's published default), carried by the task."""
    return BucketLimit(capacity=task.bucket_capacity, window_seconds=task.bucket_window_seconds)


def task_from_body(body: str) -> WarmTask | None:
    """The task a message carries; ``None`` (logged) when the body is not one.

    Such a message is dropped, not retried: the same bytes would fail the same way on every delivery,
    and then sit in the DLQ looking like a warm that failed. Only the planner writes this queue, so a
    malformed body is a bug to read in the log, not an image to warm."""
    try:
        return WarmTask.model_validate_json(body)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "rule": e["msg"]} for e in exc.errors()]
        logger.error("a warm queue message is not a warm task; dropped", extra={"problems": problems[:10]})
        metrics.add_metric(name="WarmTasksMalformed", unit="Count", value=1)
        return None


def verified_reference(task: WarmTask) -> str:
    """The image's key under ``WARMED#<region>``: ``<repository>:<tag>`` (``@<digest>`` for a digest)."""
    return f"{task.repository}:{task.tag}" if task.tag is not None else f"{task.repository}@{task.digest}"


class WarmWorkerService:
    """Warms one image per task and records what it came to."""

    def __init__(
        self,
        *,
        store: WarmRunStore,
        budget: UpstreamBudget,
        ecr: Callable[[str], WarmEcr],
        clock: Callable[[], datetime],
        marks: CredentialMarks | None = None,
        events: StateEventPublisher | None = None,
    ) -> None:
        """``events`` announces each run this worker finishes on the default bus (``Warm Run Finished``)."""
        self.events = events
        self.store = store
        self.budget = budget
        self.ecr = ecr
        self.clock = clock
        self.marks = marks
        self.credential_errors: list[CredentialError] = []
        """Credential errors of the batch so far: :meth:`flush_marks` marks their credentials, one write each."""

    def handle(self, task: WarmTask) -> ImageOutcome:
        """Warm the task's image once per run and record its outcome (see the module)."""
        recorded = self.store.outcome(task.run_id, task.key)
        if recorded is not None:
            logger.info("the image already has an outcome in its run; not warmed again", extra=_fields(task))
            metrics.add_metric(name="WarmTasksRedelivered", unit="Count", value=1)
            self._finished(self.store.finish_if_done(task.warm_set, task.run_id, at=self.clock()))
            return recorded
        outcome = self.warm(task)
        # A rate_limit outcome here is always a 429 (this one, or the block an earlier one left): the run says so.
        stopped = bucket_upstream(task.upstream) if outcome.failure_class is FailureClass.RATE_LIMIT else None
        result = self.store.record_outcome(task.run_id, task.warm_set, outcome, stopped_upstream=stopped)
        if not result.recorded:
            # Another delivery of this task recorded first (and settles the budget), or the run was settled at
            # its deadline, or it is unknown: nothing of this warm is counted or settled.
            if result.run is None:
                logger.warning("the image's run is unknown (expired?): no run counts its outcome", extra=_fields(task))
            else:
                logger.info("the image's outcome was recorded by another delivery; not counted", extra=_fields(task))
                metrics.add_metric(name="WarmTasksRedelivered", unit="Count", value=1)
            return self.store.outcome(task.run_id, task.key) or outcome
        self._record_freshness(task, outcome)
        self._settle(task, outcome)
        _observe(task, outcome)
        if (error := warm_error(task, outcome)) is not None:
            self.credential_errors.append(error)
        self._finished(result)
        return outcome

    def _finished(self, result: RecordedOutcomes) -> None:
        """A finished run not announced yet: announced, flagged, and counted by the call whose flag write succeeded
        (:mod:`ecrcache.services.warm_finished`). A redelivered task of a run whose finisher died before announcing
        it completes the announcement; the run is logged by the call that finished it."""
        if result.run is not None and result.finished:
            _log_finished(result.run)
        announce_finished(self.store, self.events, result.run)

    def flush_marks(self) -> int:
        """Mark the credentials the batch's warms failed on ``Invalid`` (one write per credential, after the batch:
        :class:`~ecrcache.services.credential_health.CredentialMarks`); how many were marked."""
        errors, self.credential_errors = self.credential_errors, []
        if self.marks is None or not errors:
            return 0
        return self.marks.mark(errors)

    def warm(self, task: WarmTask) -> ImageOutcome:
        """The image's outcome, with the budget checked first and a 429 blocking its upstream."""
        now = self.clock()
        blocked = self.budget.blocked_until(task.upstream, now=now)
        if blocked is not None and blocked > now:
            return skipped_outcome(task, now=now, blocked_until=blocked)
        reference = verified_reference(task)
        verified_at = self.store.verified(task.region, [reference]).get(reference)
        if verified_at is not None and is_fresh(verified_at, freshness_horizon(now)):
            return fresh_outcome(task, now=now, verified_at=verified_at)
        pull = self.ecr(task.region).warm(task)
        outcome = outcome_of(task, pull, now=self.clock())
        if outcome.failure_class is FailureClass.RATE_LIMIT:
            limit = task_limit(task)
            until = block_until(outcome.finished_at, limit.window_seconds)
            self.budget.block(task.upstream, until=until, limit=limit, now=outcome.finished_at)
            logger.warning(
                "the upstream answered a rate limit: blocked", extra={"upstream": task.upstream, "until": until}
            )
        return outcome

    def _record_freshness(self, task: WarmTask, outcome: ImageOutcome) -> None:
        if outcome.outcome is not Outcome.WARMED or outcome.digest is None:
            return
        try:
            self.store.record_verified(
                task.region,
                verified_reference(task),
                digest=outcome.digest,
                platforms=outcome.platforms_verified,
                at=outcome.finished_at,
            )
        except EcrcacheError as exc:
            logger.warning("the image's freshness could not be recorded", extra={**_fields(task), "error": str(exc)})

    def _settle(self, task: WarmTask, outcome: ImageOutcome) -> None:
        """Give back the tokens the planner took and the warm did not spend, or charge the overspend.

        The planner reserves an estimate (``1 + len(platforms)``); an imported index costs ``1 +`` every
        child it lists, and Docker Hub's list 8-16 (attestations included). The overspend is *charged*
        (:meth:`~ecrcache.ports.UpstreamBudget.charge`), not taken: a take only gets what the bucket
        holds, so spending beyond it would vanish; a charge leaves the bucket in debt, and later runs
        wait until the refill has paid it back."""
        if outcome.failure_class is FailureClass.RATE_LIMIT:
            return  # the upstream's bucket is blocked and empty until its reset: nothing to give back to
        unused = task.reserved_requests - outcome.upstream_requests
        if unused == 0:
            return
        limit = task_limit(task)
        try:
            if unused > 0:
                self.budget.refund(task.upstream, unused, limit=limit, now=outcome.finished_at)
            else:
                self.budget.charge(task.upstream, -unused, limit=limit, now=outcome.finished_at)
        except EcrcacheError as exc:
            # The outcome is recorded: a retry would skip this task, so the budget stays as it is
            # (a lost refund makes it stricter; a lost charge is at most this image's children).
            logger.warning("the upstream budget could not be settled", extra={**_fields(task), "error": str(exc)})


def _fields(task: WarmTask) -> dict[str, object]:
    return {"run_id": task.run_id, "warm_set": task.warm_set, "image": task.key, "upstream": task.upstream}


def _metric_suffix(failure_class: FailureClass) -> str:
    return "".join(part.capitalize() for part in failure_class.value.split("_"))


def _log_finished(run: WarmRun) -> None:
    logger.info(
        "warm run finished",
        extra={"run_id": run.run_id, "warm_set": run.warm_set, "status": run.status.value, "done": run.done},
    )


def _observe(task: WarmTask, outcome: ImageOutcome) -> None:
    """Metrics (images by outcome and failure class, upstream requests) and the log line of the image."""
    metrics.add_metric(name=f"WarmImages{outcome.outcome.value.capitalize()}", unit="Count", value=1)
    if outcome.failure_class is not None:
        name = f"WarmImages{outcome.outcome.value.capitalize()}{_metric_suffix(outcome.failure_class)}"
        metrics.add_metric(name=name, unit="Count", value=1)  # e.g. WarmImagesFailedCredential
    if outcome.failure_class is FailureClass.RATE_LIMIT and outcome.outcome is Outcome.FAILED:
        # a 429 the upstream answered; an image skipped while its upstream is blocked sent no request
        count_by("UpstreamRateLimited", dimension="source", value="warm", count=1)
    metrics.add_metric(name="WarmUpstreamRequests", unit="Count", value=outcome.upstream_requests)
    extra = {
        **_fields(task),
        "outcome": outcome.outcome.value,
        "failure_class": outcome.failure_class.value if outcome.failure_class else None,
        "digest": outcome.digest,
        "platforms_verified": list(outcome.platforms_verified),
        "upstream_requests": outcome.upstream_requests,
        "detail": outcome.message,
    }
    if outcome.outcome is Outcome.FAILED:
        logger.warning("an image could not be warmed", extra=extra)
    else:
        logger.info("an image was handled", extra=extra)

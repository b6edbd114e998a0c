"""The ports the services depend on; ``ecrcache.adapters`` implements them (ACK manager style)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ecrcache.engine.credential_health import HealthEvent
    from ecrcache.engine.plan import ActionResult, OwnedKind, PlannedAction
    from ecrcache.engine.rotation_schedule import ObservedRotation
    from ecrcache.engine.state_events import StateEvent
    from ecrcache.engine.upstream_buckets import BucketLimit
    from ecrcache.models.credential import UpstreamLogin
    from ecrcache.models.credential_health import CredentialHealth, HealthState
    from ecrcache.models.forwarder import ForwarderStatus, ForwarderStatusRecord, ObservedForwarder
    from ecrcache.models.observed import AppliedFingerprints, ObservedRegion, ObservedRule, Ownership
    from ecrcache.models.pull_stats import (
        CompactionState,
        CounterKey,
        CounterMark,
        DailyCounter,
        Increment,
        PullDelta,
        PullEvent,
    )
    from ecrcache.models.records import HistoryEntry, Page, ResourceKind, Snapshot, StoredResource, Write
    from ecrcache.models.region_records import RegionState, RegionStatus
    from ecrcache.models.rotation import (
        RotationKey,
        RotationOutcome,
        RotationRecord,
        RotationStep,
        SecretVersions,
        StepStatus,
    )
    from ecrcache.models.secret_replica import ObservedSecret
    from ecrcache.models.shards import FanoutMarker, ShardRecord, ShardReport, ShardState, ShardTask
    from ecrcache.models.status import (
        FanoutProgress,
        ReconcileRun,
        RegionStamp,
        RuleStatus,
        RuleStatusRecord,
        UpstreamHealth,
    )
    from ecrcache.models.upstream_probe import ProbeResult, ProbeTarget
    from ecrcache.models.warm_inputs import TagListing
    from ecrcache.models.warm_pull import WarmPull
    from ecrcache.models.warm_run import ImageOutcome, WarmRun, WarmTask


class StateStore(Protocol):
    """Desired state with optimistic concurrency on a global revision and per-item versions."""

    @property
    def max_writes_per_commit(self) -> int:
        """How many writes one :meth:`commit` takes; a larger set is committed in chunks of this size."""
        ...

    def snapshot(self, *, warm_sets: bool = True) -> Snapshot:
        """Every desired item, with the revision they were read at (``warm_sets`` false: none of the warm
        sets, which a reconcile does not use: one read less)."""
        ...

    def get(self, kind: ResourceKind, name: str) -> StoredResource | None: ...

    def commit(
        self, writes: Sequence[Write], *, revision: int, actor: str, now: datetime, lock_owner: str | None = None
    ) -> int:
        """Apply ``writes`` and their history atomically if the state is still at ``revision``.

        Returns the new revision. Raises ``StaleRevisionError`` when anything changed since, and
        ``VersionConflictError`` naming the item whose version no longer matches.
        """
        ...

    def acquire_lock(self, owner: str, *, now: datetime, ttl_seconds: int) -> int:
        """Take the writer lease (for multi-transaction document applies); returns the revision."""
        ...

    def release_lock(self, owner: str) -> None: ...

    def history(
        self, kind: ResourceKind | None, name: str | None, *, limit: int, next_token: str | None
    ) -> Page[HistoryEntry]: ...


@dataclass(frozen=True, slots=True)
class StagedSecret:
    """A secret value written but not yet current (or a new secret, current but unreferenced).

    ``restored``: the secret was scheduled for deletion (its credential had been deleted) and the
    stage restored it; undoing the stage schedules its deletion again.
    """

    name: str
    arn: str
    version_id: str
    created: bool
    restored: bool = False


class SecretStore(Protocol):
    """Upstream credentials in Secrets Manager. Values go in; nothing ever comes back out."""

    def stage(self, name: str, secret_string: str, *, request_token: str) -> StagedSecret: ...

    def promote(self, staged: StagedSecret) -> None: ...

    def discard(self, staged: StagedSecret) -> None: ...

    def delete(self, name: str) -> bool:
        """Schedule the deletion of ``name`` (its replicas in other Regions removed first: Secrets Manager
        refuses to delete a primary that has replicas); ``True`` when this call scheduled it."""
        ...

    def replica_regions(self, name: str) -> tuple[str, ...]:
        """The Regions where ``name`` has a replica (``()``: none, or no such secret)."""
        ...

    def restore(self, name: str) -> None:
        """Cancel the scheduled deletion of ``name`` (undo :meth:`delete`)."""
        ...

    def existing_arn(self, name: str) -> str | None:
        """The ARN of secret ``name`` if it exists and is not scheduled for deletion (adopting it)."""
        ...


class SecretReplicaReader(Protocol):
    """Credentials' secrets and their replicas, read only (the API's plan): ``DescribeSecret`` in the
    primary's Region (the stack's), never a secret value."""

    def describe(self, name: str) -> ObservedSecret | None:
        """The secret ``name`` with its replication status; ``None`` when there is no such secret.
        Raises ``RetryableError`` / ``TerminalError``."""
        ...


class SecretReplicator(SecretReplicaReader, Protocol):
    """The reconciler's: read, and apply one planned replica action at a time (``replicate_secret``,
    ``retry_replica``, ``remove_replica``), calls made in the primary's Region."""

    def apply(self, action: PlannedAction) -> ActionResult:
        """Make exactly the call(s) ``action.request`` describes; never raises for AWS errors."""
        ...


# --------------------------------------------------------------------------------------------------
# Reconciler: ECR (one adapter per Region) and what the reconciler records in the state table


class EcrReader(Protocol):
    """ECR in one Region, read only: all the API needs (its plan and its import). It has no method
    that writes, so a service that holds only readers cannot change ECR whatever it is asked."""

    region: str
    calls: Counter[str]
    """Operations made so far (``DescribeRepositories`` counts once per page)."""

    def observe(
        self,
        *,
        prefixes: Sequence[str],
        deep: bool | Collection[str],
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
    ) -> ObservedRegion:
        """All rules and templates, and the repositories under ``prefixes`` (all of them for ``ROOT``).

        ``deep=False`` (the fast path) makes no per-repository call: ``details`` is ``None``;
        ``deep=True`` reads every repository's lifecycle policy, repository policy and tags, a
        collection reads only the named ones. ``applied`` is attached to each repository by name.
        ``stop``: asked before each repository's deep read; once it answers True the rest are not read
        deeply (``details`` ``None``) and are listed in ``unread`` (a caller's time budget).
        Raises ``RetryableError`` / ``TerminalError``.
        """
        ...

    def rules(self) -> dict[str, ObservedRule]:
        """Every pull-through cache rule of the Region by prefix (``DescribePullThroughCacheRules`` only:
        no template or repository is read). Raises ``RetryableError`` / ``TerminalError``."""
        ...

    def pull_time_exclusions(self) -> frozenset[str]:
        """The principal ARNs registered as pull-time update exclusions in the Region's registry
        (``ListPullTimeUpdateExclusions``, every page). Raises ``RetryableError`` / ``TerminalError``."""
        ...

    def observe_repositories(
        self,
        names: Collection[str],
        *,
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
        deep: bool = True,
    ) -> ObservedRegion:
        """Only the named repositories (a shard's: the registry is never listed): ``DescribeRepositories`` by name
        (100 a call), then, ``deep``, each one's lifecycle policy, repository policy and tags (not ``deep``: a fast
        run's shard, planned from the applied fingerprints). A name ECR does not have is left out (gone); no rule or
        template is read. ``stop`` as :meth:`observe`'s: the repositories not read in time are in ``unread`` (and
        not in ``repositories``). Raises ``RetryableError`` / ``TerminalError``."""
        ...

    def read_details(self, observed: ObservedRegion) -> ObservedRegion:
        """``observed`` (a fast observation of this Region) with every repository read deeply, as
        ``observe(deep=True)`` would have read it: the three per-repository reads, no listing again (a repository
        gone meanwhile is left out). Raises ``RetryableError`` / ``TerminalError``."""
        ...


class EcrWriter(Protocol):
    """ECR in one Region, the write side: apply one planned action at a time."""

    def apply(self, action: PlannedAction) -> ActionResult:
        """Make exactly the call(s) ``action.request`` describes; never raises for AWS errors."""
        ...


class EcrRegistry(EcrReader, EcrWriter, Protocol):
    """ECR in one Region, for the reconciler: read what is there, apply one planned action at a
    time, and ask ECR whether a rule can reach its upstream."""

    def validate_rule(self, prefix: str) -> tuple[bool, str | None]:
        """``ValidatePullThroughCacheRule``: ``(is_valid, failure)``; raises for AWS errors."""
        ...


class ForwarderReader(Protocol):
    """The stack's event forwarding rule in one Region, read only (EventBridge ``DescribeRule`` /
    ``ListTargetsByRule``): :mod:`ecrcache.engine.forwarders`."""

    def observe_forwarder(self, name: str) -> ObservedForwarder | None:
        """The rule and its targets; ``None`` when there is no rule of that name. Raises for AWS errors."""
        ...


class ForwarderProbe(Protocol):
    """Whether one Region holds the stack's forwarding rule (EventBridge ``DescribeRule``): the deep run's sweep."""

    def forwarder_exists(self, name: str) -> bool:
        """``False`` when there is no rule of that name, or the Region is not enabled in the account (it holds
        nothing); raises for other AWS errors."""
        ...


class ForwarderRegistry(ForwarderReader, Protocol):
    """The same, and the writes of a forwarder action (``PutRule`` / ``PutTargets`` / ``RemoveTargets`` /
    ``DeleteRule``)."""

    def apply(self, action: PlannedAction) -> ActionResult:
        """Make one ``*_forwarder`` action; AWS errors come back as a failed result, never raised."""
        ...


class ShardStore(Protocol):
    """The deep resync's fan-out records (:mod:`ecrcache.services.reconcile_shards`): a Region's marker, the run
    record's shard counts and one item per shard, each count moved in the same transaction as its shard."""

    def start_fanout(
        self,
        run: ReconcileRun,
        region: str,
        shards: Sequence[ShardRecord],
        *,
        deadline: datetime,
        prefixes: Collection[str] | None = None,
    ) -> FanoutMarker | None:
        """Record a Region's fan-out before anything is sent: the Region's marker (with ``prefixes``, the rules a fast
        run's shards hold; ``None``: a deep resync's, every rule) and the run's shard total (one transaction; refused
        while the Region has a marker: that marker is returned), then each shard ``queued``. ``None``: recorded."""
        ...

    def shard(self, run_id: str, region: str, index: int) -> ShardRecord | None:
        """One shard as stored (a consistent read); ``None``: no such shard."""
        ...

    def shard_records(self, run_id: str) -> list[ShardRecord]:
        """Every shard of a run, every Region."""
        ...

    def report_shard(
        self,
        run_id: str,
        region: str,
        index: int,
        *,
        expected: ShardState | None,
        state: ShardState,
        report: ShardReport | None = None,
        error: str | None = None,
    ) -> bool:
        """Move the shard from ``expected`` (as read; ``None``: no item, the shard was never recorded) to ``state``
        and the run's counts with it, in one transaction; ``False`` when the shard is no longer as read (another
        delivery reported it). Other failures raise (``RetryableError`` for a transaction still conflicting)."""
        ...

    def fanout_progress(self, run_id: str) -> FanoutProgress | None:
        """The run and its fan-out counts (a consistent read); ``None``: no such run."""
        ...

    def close_fanout(self, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> None:
        """The coordinating run is done: its record (still ``running``: its shards report) with its summary and
        errors, and the stamps of the Regions it reconciled, in one write; the run may finish from now on."""
        ...

    def finish_fanout(self, run: ReconcileRun) -> bool:
        """Write the finished run if it is still ``running`` (``True``: this call finished it, exactly one does)."""
        ...

    def clear_fanout(self, region: str, run_id: str) -> None:
        """Remove the Region's marker if it is ``run_id``'s (a no-op otherwise)."""
        ...

    def applied_of(self, region: str, names: Collection[str]) -> dict[str, AppliedFingerprints]:
        """The applied fingerprints of the named repositories only (a shard's; never the Region's whole partition)."""
        ...


class StatusStore(ShardStore, Protocol):
    """Ownership, applied fingerprints, rule status, the per-Region lease and run records."""

    def ownership(self, region: str) -> Ownership: ...

    def record_owned(self, region: str, kind: OwnedKind, prefix: str) -> None: ...

    def forget_owned(self, region: str, kind: OwnedKind, prefix: str) -> None: ...

    def applied(self, region: str) -> dict[str, AppliedFingerprints]:
        """Repository name -> what the controller last applied there (records of one Region)."""
        ...

    def record_applied(self, region: str, items: Mapping[str, AppliedFingerprints]) -> None: ...

    def forget_applied(self, region: str, names: Iterable[str]) -> None: ...

    def put_rule_status(self, region: str, prefix: str, status: RuleStatus) -> None:
        """Write the rule's status, all but its upstream health (:meth:`record_upstream`'s, kept as it is)."""
        ...

    def rule_status(self, region: str, prefix: str) -> RuleStatus | None:
        """The rule's status, its upstream health included."""
        ...

    def record_upstream(self, region: str, prefix: str, health: UpstreamHealth) -> bool:
        """Record the rule's upstream health, unless a newer observation is recorded already, or the rule
        has no status (not a rule the controller reconciles). ``True`` when recorded.

        Atomic on its own: a reconcile writing the rule's status at the same time neither loses it nor
        is overwritten by it."""
        ...

    def all_status(self) -> list[RuleStatusRecord]: ...

    def delete_rule_status(self, region: str, prefix: str) -> None: ...

    def read_region(self, region: str, *, applied: bool = True) -> RegionState:
        """The Region's statuses, ownership and applied fingerprints in one read (with the stack's Region, every
        Region's statuses): what a run needs to find that it has nothing to do. Without ``applied``: its statuses
        only (:attr:`RegionState.applied_read` false)."""
        ...

    def record_digest(self, region: str, digest: str, *, generation: int) -> bool:
        """Record the Region's quiet digest (:mod:`ecrcache.engine.quiet`), unless its applied fingerprints were
        written since ``generation`` (the :attr:`RegionStatus.generation` read with the records its plan was made
        from), or a fan-out is unfinished there, or no status was ever written there; whether it was."""
        ...

    def region_status(self, region: str) -> RegionStatus: ...

    def write_statuses(
        self,
        region: str,
        put: Mapping[str, RuleStatus],
        drop: Collection[str] = (),
        *,
        version: int | None,
        stamp: RegionStamp | None = None,
    ) -> bool:
        """One write of the Region's statuses (``put`` written, ``drop`` removed, the stamp), conditioned on the
        ``version`` read (``None``: unconditioned); ``False`` when another reconcile wrote them since."""
        ...

    def finish_run(self, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> None:
        """The finished run record with the stamp of every Region it reconciled, in one write."""
        ...

    def migrate_legacy(self, regions: Iterable[str] = ()) -> int:
        """Move the former layout's items into the current one (idempotent); how many were moved."""
        ...

    def put_forwarder_status(self, region: str, status: ForwarderStatus) -> None:
        """Record how the event forwarder of ``region`` was last reconciled (and that one may exist there)."""
        ...

    def forwarder_statuses(self) -> list[ForwarderStatusRecord]:
        """Every Region's forwarder record: where ecrcache made, or tried to make, a forwarder."""
        ...

    def status_overview(self) -> tuple[list[RuleStatusRecord], list[ForwarderStatusRecord]]:
        """:meth:`all_status` and :meth:`forwarder_statuses` in one read (``GET /v1/status``)."""
        ...

    def delete_forwarder_status(self, region: str) -> None: ...

    def acquire_lease(self, region: str, owner: str, *, now: datetime, ttl_seconds: int) -> bool:
        """Take the Region's reconcile lease if free, expired or already ``owner``'s."""
        ...

    def renew_lease(self, region: str, owner: str, *, now: datetime, ttl_seconds: int) -> bool:
        """Extend ``owner``'s lease; ``False`` when ``owner`` no longer holds it."""
        ...

    def release_lease(self, region: str, owner: str) -> None: ...

    def put_run(self, run: ReconcileRun) -> None: ...

    def request_reconcile(self, run: ReconcileRun, *, deep: bool, requested_by: str) -> None:
        """Queue a reconcile for the reconciler (``POST /v1/reconcile``)."""
        ...

    def get_run(self, run_id: str) -> ReconcileRun | None: ...

    def latest_runs(self, limit: int) -> list[ReconcileRun]:
        """The most recently started runs, newest first."""
        ...


class ShardQueue(Protocol):
    """The deep resync's shard queue (SQS): one message per :class:`~ecrcache.models.shards.ShardTask`."""

    def send(self, tasks: Sequence[ShardTask]) -> list[int]:
        """Send every task (``SendMessageBatch``, 10 a call, failed entries retried); returns the ``index`` of each
        task that could not be sent for good (empty: all sent). May raise an ``EcrcacheError`` when the queue
        cannot be used at all (e.g. it does not exist): the coordinator then counts every task as not sent."""
        ...


# --------------------------------------------------------------------------------------------------
# Warming (issue 11): runs and outcomes, the per-upstream budget, the queue, the ECR data plane.


@dataclass(frozen=True, slots=True)
class RecordedOutcomes:
    """What one call recording outcomes (or finishing a run) did: the keys of the images THIS call recorded (a
    redelivered or concurrently delivered task whose image another call recorded first is not among them), the
    run as it is after (finished when its last image was recorded; ``None``: unknown or not planned), and
    whether THIS call finished the run (its conditional write made the transition): only that call counts
    and announces the run finished, so a redelivered or concurrent one does not do it again."""

    keys: frozenset[str]
    run: WarmRun | None
    finished: bool = False

    @property
    def recorded(self) -> bool:
        return bool(self.keys)


class WarmRunStore(Protocol):
    """Warm runs, their per-image outcomes and the images' freshness (item layout: adapters.warm_store)."""

    def create_run(self, run: WarmRun, outcomes: Sequence[ImageOutcome], tasks: Sequence[WarmTask] = ()) -> bool:
        """Write a planned run with the outcomes the planner settled itself (fresh, skipped, failed) and the
        tasks it is about to send (kept until their outcome comes, so a redelivered plan can send them again).

        ``False`` (and nothing written) when the run is already planned: planning is once per run id.
        """
        ...

    def pending_tasks(self, run_id: str) -> list[WarmTask] | None:
        """The tasks of a planned run that have no outcome yet; ``None`` when the run is not planned (yet)."""
        ...

    def request_run(self, run: WarmRun) -> None:
        """Queue a run for the planner (``REQUEST#warm``; the stream is the planner's trigger) and
        record it ``queued``."""
        ...

    def record_outcome(
        self, run_id: str, warm_set: str, outcome: ImageOutcome, *, stopped_upstream: str | None = None
    ) -> RecordedOutcomes:
        """Record one image's outcome (idempotent per image: a redelivered task does not count twice),
        finishing the run when it was the last image. ``recorded`` says whether this call recorded it:
        a duplicate delivery must not settle the budget or count metrics again. ``stopped_upstream``: the
        upstream a rate limit stopped for this image, added to the run's ``stopped_upstreams``."""
        ...

    def record_outcomes(
        self, run_id: str, warm_set: str, outcomes: Sequence[ImageOutcome], *, stopped_upstream: str | None = None
    ) -> RecordedOutcomes:
        """:meth:`record_outcome` for many images at once (the deadline's lost images); images that have an
        outcome already keep it."""
        ...

    def finish_if_done(self, warm_set: str, run_id: str, *, at: datetime, force: bool = False) -> RecordedOutcomes:
        """Finish the run (status from its counts, ``finished_at = at``) if every image has an outcome, or
        with ``force`` whatever it counts; idempotent (a finished run is returned as it is, ``finished`` False).
        No keys; ``run`` ``None``: unknown."""
        ...

    def overdue_runs(self, now: datetime, *, limit: int) -> list[WarmRun]:
        """Up to ``limit`` unfinished runs whose deadline is before ``now``, earliest deadline first."""
        ...

    def mark_announced(self, run: WarmRun) -> bool:
        """Record that the finished ``run``'s Warm Run Finished event was put on the bus: ``True`` only for the call
        whose conditional write set it (it is then no longer listed by :meth:`overdue_runs`)."""
        ...

    def fail_unplanned(self, warm_set: str, run_id: str, *, message: str, at: datetime) -> WarmRun | None:
        """Finish a requested run that was never planned as ``failed`` with ``message``; ``None`` (nothing
        written) when it is planned, finished or unknown."""
        ...

    def get_run(self, warm_set: str, run_id: str) -> WarmRun | None: ...

    def latest_run(self, warm_set: str) -> WarmRun | None: ...

    def outcomes(self, run_id: str) -> list[ImageOutcome]: ...

    def outcome(self, run_id: str, key: str) -> ImageOutcome | None:
        """The outcome recorded for one image of a run (``key``: :attr:`WarmTask.key`), if any: a
        redelivered task whose image has one is not warmed again (one read, not the whole run)."""
        ...

    def verified(self, region: str, references: Collection[str]) -> dict[str, datetime]:
        """When each ``<repository>:<tag>`` was last verified warm in ``region`` (absent: never/expired)."""
        ...

    def record_verified(
        self, region: str, reference: str, *, digest: str, platforms: Sequence[str], at: datetime
    ) -> None: ...

    def claim_fire(self, warm_set: str, fire: datetime) -> bool:
        """Claim a scheduled fire time of ``warm_set`` (true once per fire: ticks are at-least-once)."""
        ...

    def last_fires(self) -> dict[str, datetime]:
        """The last fire claimed per warm set (absent: never)."""
        ...


class UpstreamBudget(Protocol):
    """Per-upstream token buckets shared by every run and the credential checks (DynamoDB, conditional).

    ``upstream`` is the bucket's key: the upstream registry URL, with the credential's name when the rule
    signs in (:attr:`ecrcache.models.warm_run.WarmTask.upstream`): an upstream's limit is per account."""

    def take(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> int:
        """Take up to ``count`` tokens; returns how many were taken (0 when empty or blocked)."""
        ...

    def refund(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> None:
        """Give back ``count`` tokens taken and not spent (never above capacity; nothing while blocked)."""
        ...

    def charge(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> None:
        """Spend ``count`` tokens that were used without being taken first (a warm that cost more than
        the planner reserved), whatever the bucket holds: the tokens may go below zero, a debt that later
        takes wait out until the refill pays it back (at most one window's capacity; nothing while
        blocked: a 429's block already empties the bucket until the upstream's reset)."""
        ...

    def block(self, upstream: str, *, until: datetime, limit: BucketLimit, now: datetime) -> None:
        """Empty the bucket until ``until`` (an upstream answered 429)."""
        ...

    def blocked_until(self, upstream: str, *, now: datetime) -> datetime | None: ...


class WarmQueue(Protocol):
    def send(self, tasks: Sequence[WarmTask]) -> None:
        """Send every task (in batches); raises if any could not be sent, naming how many."""


# Pull statistics


class PullStatsStore(Protocol):
    """Pending pull deltas, the ids counted per minute and the daily counters
    (:mod:`ecrcache.adapters.pull_stats_store`)."""

    write_items: int
    """Items written so far (the benchmark's writes)."""

    def add(self, events: Sequence[PullEvent], now: datetime) -> int:
        """Write a batch's events as pending deltas (usually one item); the items written. Raises
        :class:`~ecrcache.errors.EcrcacheError`: the batch is then delivered again."""
        ...

    def pending(self, *, consistent: bool = True) -> list[tuple[str, PullDelta]]:
        """Every pending delta with its sort key, oldest first."""
        ...

    def pending_keys(self, limit: int) -> list[str]:
        """The sort keys of the oldest ``limit`` pending deltas."""
        ...

    def deltas(self, sort_keys: Collection[str], *, skip_unreadable: bool = False) -> dict[str, PullDelta]:
        """The deltas of ``sort_keys`` that are still pending (one this version cannot read: left out with
        ``skip_unreadable``, else an error)."""
        ...

    def seen(
        self, minutes: Iterable[str], *, except_run: str | None = None, consistent: bool = True
    ) -> dict[str, frozenset[str]]:
        """The ids counted in each minute (absent: none), without those compaction ``except_run`` wrote."""
        ...

    def counters_of(self, keys: Collection[CounterKey]) -> list[DailyCounter]:
        """The stored counters of exactly ``keys`` (times only), absent ones left out."""
        ...

    def counters(self, days: Iterable[date], sort_key_prefixes: Collection[str]) -> list[DailyCounter]:
        """The stored image counters of ``days`` whose sort key starts with one of the prefixes (``""``: all)."""
        ...

    def desired_rules(self) -> dict[str, tuple[str, ...]]:
        """Every desired rule's prefix and the Regions it names (empty: the stack's Region)."""
        ...

    def rule_credentials(self) -> dict[str, str]:
        """Each desired rule's prefix -> the credential it names (rules without one left out)."""
        ...


class PullCompactionStore(Protocol):
    """The compaction's lease, the counters it folds into and the ids it keeps
    (:mod:`ecrcache.adapters.pull_compaction_store`)."""

    write_items: int

    def state(self) -> CompactionState: ...

    def claim(
        self,
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        run: str,
        deltas: Sequence[str] = (),
        resume: bool = False,
        backlog: bool = False,
        generation: int = 0,
    ) -> bool:
        """Take the lease for a new run of ``deltas``, or (``resume``) for the run under way; ``False``: not now."""
        ...

    def release(self, owner: str) -> bool:
        """Free the lease, the run still under way (the next batch resumes it at once)."""
        ...

    def finish(self, owner: str, now: datetime, *, backlog: bool = False) -> bool:
        """The run is done and the lease free (``backlog``: more deltas wait, the next batch compacts again
        at once); ``False``: the lease was lost."""
        ...

    def marks(self, keys: Collection[CounterKey]) -> dict[CounterKey, CounterMark]: ...

    def fold(self, key: CounterKey, increment: Increment, mark: CounterMark, run: str) -> None:
        """Add ``increment`` to the counter, marked with ``run``, if it is still as ``mark`` says."""
        ...

    def put_seen(self, run: str, counted: Mapping[str, Collection[str]]) -> None: ...

    def delete_deltas(self, sort_keys: Collection[str]) -> None: ...


class UpstreamTags(Protocol):
    """An upstream registry's tag lists (OCI distribution ``GET /v2/<name>/tags/list``), with a rule's credential."""

    def list_tags(self, upstream_url: str, repository: str, *, credential: str | None, max_requests: int) -> TagListing:
        """Every tag of ``repository`` at ``upstream_url`` (``registry-1.docker.io``), at most ``max_requests``
        requests to the registry; ``credential`` names the ``ecr-pullthroughcache/<name>`` secret to sign in
        with. Never raises for the upstream's answers: a failure is classified in the listing."""
        ...


class PullStats(Protocol):
    """What the pull statistics know (``services.pull_stats`` on the table's ``PULLS#`` items)."""

    def top_tags(self, rule: str, count: int, window_days: int, now: datetime) -> Sequence[tuple[str, str, int]]:
        """The ``count`` most pulled tags of the rule's cached repositories over the last ``window_days``
        days, most pulled first, as ``(ECR repository, tag, pulls)`` (a
        :class:`~ecrcache.models.warm_inputs.PulledTag` is one)."""
        ...

    def last_synced(self, region: str, references: Collection[str], now: datetime) -> dict[str, datetime]:
        """When ECR last refreshed each ``<repository>:<tag>`` from its upstream (a pull-through cache
        action ``SUCCESS``) in ``region`` during the UTC day of ``now`` or the day before; absent: not seen."""
        ...


class WarmEcr(Protocol):
    """ECR in one Region, the warm worker's data plane: pull one image through the cache and verify it."""

    region: str

    def warm(self, task: WarmTask) -> WarmPull:
        """Pull ``task``'s reference (and, for an index, the children of its platforms) through the cache,
        ask for the download URL of every config and layer (never their bytes), and verify the result
        with ``DescribeImages``. Never raises for a per-image failure: :attr:`WarmPull.failure` says it."""
        ...


# --------------------------------------------------------------------------------------------------
# Credentials: the upstream probe (the rotation function's testSecret, the daily credential health check)


class UpstreamProbe(Protocol):
    """Signs in at an upstream registry with a credential and asks for one image (or ``/v2/``)."""

    def probe(self, target: ProbeTarget, login: UpstreamLogin | None) -> ProbeResult:
        """What the upstream made of ``login`` (``None``: anonymous); never raises for what the upstream answers."""
        ...


# --------------------------------------------------------------------------------------------------
# The rotation function: the secret's versions, the record of each rotation, ECR's rules using the secret


class RotationSecrets(Protocol):
    """A credential secret's versions and staging labels (the only port a secret value comes back through)."""

    def describe(self, secret_id: str) -> SecretVersions: ...

    def pending_value(self, secret_id: str, token: str) -> SecretStr | None:
        """The value staged ``AWSPENDING`` as version ``token``; ``None`` while that version holds none."""
        ...

    def current_value(self, secret_id: str) -> SecretStr: ...

    def version_value(self, secret_id: str, version: str) -> SecretStr:
        """The value of version ``version`` (whatever its labels: the previous token, before a roll-back)."""
        ...

    def stage_pending(self, secret_id: str, token: str, value: SecretStr) -> None: ...

    def unstage_pending(self, secret_id: str, token: str) -> None: ...

    def unstage(self, secret_id: str, *, version: str, label: str) -> None:
        """Take the private staging label ``label`` off ``version`` once the token was copied into AWSPENDING."""
        ...

    def move_current(self, secret_id: str, *, to_version: str, from_version: str) -> None: ...


class RotationStore(Protocol):
    """The record of each rotation (:class:`~ecrcache.models.rotation.RotationRecord`)."""

    def record_step(
        self, key: RotationKey, step: RotationStep, status: StepStatus, *, at: datetime, message: str | None = None
    ) -> None: ...

    def record_start(self, key: RotationKey, *, requested_by: str, at: datetime) -> None:
        """A rotation started through the API, before ``RotateSecret`` is called."""
        ...

    def record_promoted(self, key: RotationKey, *, at: datetime) -> None: ...

    def record_outcome(
        self, key: RotationKey, outcome: RotationOutcome, *, at: datetime, message: str, keep_recorded: bool = False
    ) -> bool:
        """``keep_recorded``: write only when no outcome is recorded yet; ``False`` when one was kept."""
        ...

    def record_retrying(self, key: RotationKey, *, at: datetime, message: str) -> bool:
        """The rotation's message, no outcome (a retryable failure); ``False`` when it already has an outcome."""
        ...

    def get(self, credential: str, rotation_id: str) -> RotationRecord | None: ...

    def recent(self, credential: str, *, limit: int) -> list[RotationRecord]:
        """The credential's rotations, newest first."""
        ...


class RotationStarter(Protocol):
    """What the API does to a credential secret to start a rotation with a token staged through it: it never
    reads a value back, never puts ``AWSPENDING`` (``RotateSecret`` would refuse to start)."""

    def describe(self, secret_id: str) -> SecretVersions: ...

    def stage(self, secret_id: str, *, version: str, label: str, value: SecretStr) -> None:
        """Put ``value`` as version ``version`` carrying only the private staging label ``label``."""
        ...

    def unstage(self, secret_id: str, *, version: str, label: str) -> None:
        """Take ``label`` off ``version`` (a staged token whose rotation did not start)."""
        ...

    def rotate(self, secret_id: str, *, token: str, function_arn: str, schedule: str | None) -> None:
        """``RotateSecret``; raises :class:`~ecrcache.errors.ConflictError` when Secrets Manager refuses because a
        rotation is in progress (``InvalidRequestException``)."""
        ...


class RotationScheduler(Protocol):
    """A credential secret's Secrets Manager rotation schedule, as the reconciler converges it."""

    def observe(self, secret_id: str) -> ObservedRotation | None:
        """``None``: no such secret."""
        ...

    def set_schedule(self, secret_id: str, *, schedule: str, function_arn: str) -> None: ...

    def cancel(self, secret_id: str) -> None: ...

    def remove_label(self, secret_id: str, *, version: str, label: str) -> None:
        """Take staging label ``label`` off ``version`` (an abandoned rotation's ``AWSPENDING`` or staged token)."""
        ...


class EcrRuleChecker(Protocol):
    """ECR in one Region, as the rotation function uses it: list the rules, validate one. Nothing else."""

    region: str

    def rules(self) -> dict[str, ObservedRule]: ...

    def validate_rule(self, prefix: str) -> tuple[bool, str | None]: ...


# --------------------------------------------------------------------------------------------------
# Credential health: the current secret as the check reads it, the stored health, the alerts


class CredentialSecrets(Protocol):
    """A credential secret as the daily health check reads it: where it is (replicas) and its current value."""

    def describe(self, secret_id: str) -> SecretVersions: ...

    def current_value(self, secret_id: str) -> SecretStr: ...


class CredentialHealthReader(Protocol):
    """The stored health of the credentials (the API reads it)."""

    def all_health(self) -> dict[str, CredentialHealth]: ...

    def health(self, credential: str) -> CredentialHealth | None: ...


class CredentialHealthStore(CredentialHealthReader, Protocol):
    """Each credential's health (:class:`~ecrcache.models.credential_health.CredentialHealth`)."""

    def save(self, health: CredentialHealth, *, seen: CredentialHealth | None) -> bool:
        """Write a check's health unless a credential error marked the credential since ``seen`` was read
        (``False``: it did; read again and decide again)."""
        ...

    def mark_invalid(self, health: CredentialHealth) -> CredentialHealth | None:
        """Mark ``Invalid`` at once (one conditional write; an older mark never replaces a newer one): the health
        as it was before (a default one if there was none), ``None`` when a newer mark is recorded."""
        ...

    def record_rotated(self, health: CredentialHealth) -> CredentialHealth | None:
        """A rotation promoted a validated token (``health.rotated_at``): the health as it was before, ``None``
        when a credential error newer than the promotion is recorded (it stands)."""
        ...

    def record_sent(self, credential: str, *, sent: frozenset[str], owed: frozenset[str], done: frozenset[str]) -> None:
        """Add ``sent`` to ``alerts_sent`` and ``owed`` to ``alerts_owed``, take ``done`` off it, whatever else
        changed (the health was written over by a mark since the events were sent)."""
        ...

    def record_announced(self, credential: str, state: HealthState) -> None:
        """``state`` was announced (while it is still the credential's state)."""
        ...

    def delete_health(self, credential: str) -> None: ...


class StateEventPublisher(Protocol):
    """Sends state-change events (``source: ecrcache``: a rule's condition changed, a warm run finished) to the
    account's default event bus."""

    def publish(self, events: Sequence[StateEvent]) -> None:
        """Deliver every event; raises :class:`~ecrcache.errors.EcrcacheError` when the bus did not take one."""
        ...


class HealthNotifier(Protocol):
    """Sends health events to the default bus (``source: ecrcache``) and the alert topic."""

    def publish(self, event: HealthEvent) -> None:
        """Deliver ``event`` to the bus, then the topic; raises :class:`~ecrcache.errors.AlertNotSent` when only the
        topic did not take it, another :class:`~ecrcache.errors.EcrcacheError` when the bus did not."""
        ...

    def alert(self, event: HealthEvent) -> None:
        """Deliver ``event`` to the alert topic only (one owed to it); raises when it could not be."""
        ...

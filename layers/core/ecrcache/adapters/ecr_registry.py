"""ECR in one Region, for the reconciler: read what is there, apply one planned action at a time.

:class:`Boto3EcrReader` only reads (the API plans and imports with it: it has no method that writes);
:class:`Boto3EcrRegistry` is the reader plus validate and apply (the reconciler's).

:meth:`Boto3EcrReader.observe` reads every pull-through cache rule and creation template (the
unmanaged ones too: the planner reports them) and the repositories under the requested prefixes.
The fast path (``deep=False``) makes no per-repository call: ``DescribeRepositories`` (1,000 a
page) gives names, ARNs and tag mutability, and the applied fingerprints the caller read from the
state table say what the controller last put there. A deep read adds ``GetLifecyclePolicy``,
``GetRepositoryPolicy`` and ``ListTagsForResource`` per repository, a few repositories at a time.

:meth:`Boto3EcrReader.pull_time_exclusions` lists the registry's pull-time update exclusions
(``ListPullTimeUpdateExclusions``, ``nextToken`` paging: botocore has no paginator for it); the plan
service reads them only while a warm worker role is set or ecrcache owns one.

:meth:`Boto3EcrRegistry.apply` makes exactly the call(s) an action's ``request`` describes and turns
every AWS error into an :class:`~ecrcache.ports.ActionResult` (it never raises for one):

==========================================================  ===========  =================================
error                                                       result       why
==========================================================  ===========  =================================
throttling codes, ``ServerException``, any HTTP 5xx         retryable    botocore's adaptive retries gave up
``LimitExceededException`` (a quota: 50 rules a Region,    terminal     at the first answer: botocore
100 pull-time update exclusions an account)                              does not retry it (``fail_fast``)
connection errors, timeouts (``BotoCoreError``)             retryable    the network, not the request
``SecretNotFoundException``, ``UnableToAccessSecret…``      retryable    a new secret may not be visible to
(create / update rule, after 3 attempts with 1 s, 2 s)                   ECR yet (DESIGN)
``*NotFoundException`` on update / put / set / tag          retryable    changed underneath; a new plan fixes it
``AlreadyExists`` on create, existing == request            ok           at-least-once: done by an earlier try
``AlreadyExists`` on create, existing != request            terminal     someone else's rule / template
``ExclusionAlreadyExistsException`` on register             ok,          the principal is excluded: the
                                                            ``existed``  goal holds, but not by this call
``*NotFoundException`` on delete, ``ExclusionNotFound…``     ok           already gone
on deregister, ``RepositoryNotFoundException`` on untag
``AccessDeniedException``, ``ValidationException``,          terminal     needs a change of input or
``InvalidParameterException``, ``UnsupportedUpstream…``,                 permissions
``UnableToDecryptSecret…``,
botocore ``ParamValidationError``, anything else
==========================================================  ===========  =================================

``calls`` counts the operations made (botocore's ``before-call`` event: once per call, once per
page of a paginator, retries not counted), so a benchmark or a test can tell reads from writes
(:data:`WRITE_OPERATIONS`). Give every registry its own client, or the counts mix.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Final, cast

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from ecrcache.adapters.aws import ECR_TERMINAL_CODES, RETRY_CONFIG, RETRYABLE_CODES, classify, error_code, fail_fast
from ecrcache.adapters.rate_limit import request_rate_limiter
from ecrcache.engine.deadline import Deadline
from ecrcache.engine.essence import rule_essence, template_essence
from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.ecr_operations import WRITE_OPERATIONS
from ecrcache.models.observed import (
    ObservedRegion,
    ObservedRepository,
    ObservedRule,
    ObservedTemplate,
    RepositoryDetails,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import (
        CreatePullThroughCacheRuleRequestTypeDef,
        CreateRepositoryCreationTemplateRequestTypeDef,
        DeleteLifecyclePolicyRequestTypeDef,
        DeletePullThroughCacheRuleRequestTypeDef,
        DeleteRepositoryCreationTemplateRequestTypeDef,
        DeleteRepositoryPolicyRequestTypeDef,
        DeregisterPullTimeUpdateExclusionRequestTypeDef,
        ListPullTimeUpdateExclusionsRequestTypeDef,
        PutImageTagMutabilityRequestTypeDef,
        PutLifecyclePolicyRequestTypeDef,
        RegisterPullTimeUpdateExclusionRequestTypeDef,
        RepositoryTypeDef,
        SetRepositoryPolicyRequestTypeDef,
        TagResourceRequestTypeDef,
        UntagResourceRequestTypeDef,
        UpdatePullThroughCacheRuleRequestTypeDef,
        UpdateRepositoryCreationTemplateRequestTypeDef,
    )

    from ecrcache.adapters.rate_limit import RequestRateLimiter
    from ecrcache.engine.plan import PlannedAction
    from ecrcache.models.observed import (
        AppliedFingerprints,
    )

__all__ = [
    "PER_REPOSITORY_READS",
    "READ_OPERATIONS",
    "WRITE_OPERATIONS",
    "Boto3EcrReader",
    "Boto3EcrRegistry",
    "ecr_client",
]

READ_OPERATIONS: Final = frozenset(
    {
        "DescribePullThroughCacheRules",
        "DescribeRepositoryCreationTemplates",
        "DescribeRepositories",
        "GetLifecyclePolicy",
        "GetRepositoryPolicy",
        "ListTagsForResource",
        "ValidatePullThroughCacheRule",
        "ListPullTimeUpdateExclusions",
    }
)
PER_REPOSITORY_READS: Final = frozenset({"GetLifecyclePolicy", "GetRepositoryPolicy", "ListTagsForResource"})

REPOSITORIES_PAGE_SIZE: Final = 1000
NAMED_REPOSITORIES_PER_CALL: Final = 100
"""``DescribeRepositories`` ``repositoryNames``: 1-100 names a call (botocore's ECR model, ``RepositoryNameList``)."""
_MISSING_NAME: Final = re.compile(r"repository with name '([^']+)' does not exist")
SECRET_RETRY_DELAYS: Final = (1.0, 2.0)
"""Waits between the attempts of a rule write whose secret ECR cannot see yet (3 attempts)."""
DEEP_READ_WORKERS: Final = 8
MAX_RESULT_MESSAGE: Final = 1024

SECRET_NOT_VISIBLE: Final = frozenset({"SecretNotFoundException", "UnableToAccessSecretException"})
VANISHED: Final = frozenset(
    {
        "RepositoryNotFoundException",
        "PullThroughCacheRuleNotFoundException",
        "TemplateNotFoundException",
    }
)
RULE_EXISTS: Final = "PullThroughCacheRuleAlreadyExistsException"
RULE_NOT_FOUND: Final = "PullThroughCacheRuleNotFoundException"
TEMPLATE_EXISTS: Final = "TemplateAlreadyExistsException"
TEMPLATE_NOT_FOUND: Final = "TemplateNotFoundException"
REPOSITORY_NOT_FOUND: Final = "RepositoryNotFoundException"
EXCLUSION_EXISTS: Final = "ExclusionAlreadyExistsException"
EXCLUSION_NOT_FOUND: Final = "ExclusionNotFoundException"
EXCLUSIONS_PAGE_SIZE: Final = 1000
"""``ListPullTimeUpdateExclusions`` ``maxResults`` (1-1000; ECR answers 100 a page without it)."""


def ecr_client(region: str, *, request_rate: float = 0.0, limiter: RequestRateLimiter | None = None) -> ECRClient:
    """A new ECR client for ``region`` with adaptive retries (not cached: each registry counts its own calls).

    ``request_rate``: at most that many requests a second from this client, every HTTP attempt counted, its
    threads together (:mod:`ecrcache.adapters.rate_limit`); 0 (the default): no ceiling. ``limiter``: a limiter
    of one's own instead (a test's fake clock, or one shared with other clients); not both.
    """
    if limiter is not None and request_rate:
        raise ValueError("ecr_client takes a request_rate or a limiter, not both")
    client = boto3.client("ecr", region_name=region, config=RETRY_CONFIG)
    limiter = limiter or request_rate_limiter(request_rate)
    if limiter is not None:
        limiter.attach(client)
    return client


def _cut(text: str) -> str:
    return text if len(text) <= MAX_RESULT_MESSAGE else text[: MAX_RESULT_MESSAGE - 1] + "…"


def failed(operation: str, exc: Exception) -> ActionResult:
    """Classify a botocore failure of ``operation`` (see the module's table)."""
    if isinstance(exc, ParamValidationError):
        return ActionResult.failure(
            "ParamValidationError", _cut(f"{operation} request is invalid: {exc}"), retryable=False
        )
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status: Any = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = str(exc.response.get("Error", {}).get("Message", "")) or code
        retryable = (
            code in RETRYABLE_CODES
            or code in SECRET_NOT_VISIBLE
            or code in VANISHED
            or (isinstance(status, int) and status >= 500)
        )
        return ActionResult.failure(code, _cut(f"{operation} failed with {code}: {detail}"), retryable=retryable)
    return ActionResult.failure(
        type(exc).__name__, _cut(f"{operation} failed: {type(exc).__name__}; try again"), retryable=True
    )


def _repository(
    item: RepositoryTypeDef, details: RepositoryDetails | None, applied: AppliedFingerprints | None
) -> ObservedRepository:
    """One repository as ``DescribeRepositories`` gives it, with its deep read and applied fingerprints."""
    return ObservedRepository(
        name=item["repositoryName"],
        arn=item["repositoryArn"],
        image_tag_mutability=item.get("imageTagMutability") or "MUTABLE",
        tag_mutability_exclusions=tuple(f["filter"] for f in item.get("imageTagMutabilityExclusionFilters") or ()),
        details=details,
        applied=applied,
        created_at=item.get("createdAt"),
    )


def _named_missing(exc: ClientError, batch: Sequence[str]) -> str | None:
    """The repository of ``batch`` a ``RepositoryNotFoundException`` names, if its message names one of them."""
    found = _MISSING_NAME.search(str(exc.response.get("Error", {}).get("Message", "")))
    return found.group(1) if found is not None and found.group(1) in batch else None


def _prefix_in(name: str, prefix: str) -> bool:
    return prefix == ROOT_PREFIX or name.startswith(f"{prefix.rstrip('/')}/")


class Boto3EcrReader:
    """Implements :class:`ecrcache.ports.EcrReader` for one Region: observe and count, no method that writes."""

    def __init__(
        self, region: str, client: ECRClient | None = None, *, deep_read_workers: int = DEEP_READ_WORKERS
    ) -> None:
        self.region = region
        self.client = client or ecr_client(region)
        self.deep_read_workers = max(1, deep_read_workers)
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self.client.meta.events.register("before-call.ecr", self._count, unique_id=f"ecrcache-count-{id(self)}")
        fail_fast(self.client, ECR_TERMINAL_CODES)  # a quota answer is final: not retried, no slowdown

    # -- call counting -------------------------------------------------------------------------

    def _count(self, model: Any, **_: Any) -> None:
        with self._calls_lock:
            self.calls[str(model.name)] += 1

    @property
    def writes(self) -> int:
        """Write operations made so far."""
        return sum(n for op, n in self.calls.items() if op in WRITE_OPERATIONS)

    @property
    def reads(self) -> int:
        """Read operations made so far (pages counted one by one)."""
        return sum(n for op, n in self.calls.items() if op not in WRITE_OPERATIONS)

    # -- observe -------------------------------------------------------------------------------

    def observe(
        self,
        *,
        prefixes: Sequence[str],
        deep: bool | Collection[str],
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
    ) -> ObservedRegion:
        rules = self.rules()
        templates = {t.prefix: t for t in map(ObservedTemplate.from_ecr, self._template_items())}
        scope = [p for p in prefixes if p]
        listed = {
            item["repositoryName"]: item
            for item in (self._repository_items() if scope else ())  # no prefix: rules and templates only
            if any(_prefix_in(item["repositoryName"], p) for p in scope)
        }
        details, unread = self._deep_read(listed, self._deep_names(deep, listed), stop)
        repositories = {
            name: _repository(item, details.get(name), applied.get(name))
            for name, item in listed.items()
            if not (name in details and details[name] is None)  # deleted between DescribeRepositories and the deep read
        }
        return ObservedRegion(
            region=self.region, rules=rules, templates=templates, repositories=repositories, unread=unread
        )

    def rules(self) -> dict[str, ObservedRule]:
        return {rule.prefix: rule for rule in map(ObservedRule.from_ecr, self._rule_items())}

    def observe_repositories(
        self,
        names: Collection[str],
        *,
        applied: Mapping[str, AppliedFingerprints],
        stop: Callable[[], bool] | None = None,
        deep: bool = True,
    ) -> ObservedRegion:
        """Only the named repositories (a shard's), read deeply when ``deep`` (else as listed: a fast run's shard);
        the registry is never listed. Those ``stop`` kept from being read are ``unread`` (not in ``repositories``)."""
        listed = {item["repositoryName"]: item for item in self._named_repository_items(sorted(set(names)))}
        if not deep:
            found = {name: _repository(item, None, applied.get(name)) for name, item in listed.items()}
            return ObservedRegion(region=self.region, repositories=found)
        details, unread = self._deep_read(listed, list(listed), stop)
        repositories = {
            name: _repository(item, details.get(name), applied.get(name))
            for name, item in listed.items()
            if details.get(name) is not None  # None: deleted between DescribeRepositories and the deep read
        }
        return ObservedRegion(region=self.region, repositories=repositories, unread=unread)

    def read_details(self, observed: ObservedRegion) -> ObservedRegion:
        """``observed`` with every repository read deeply (their ARNs from its listing: no call lists again)."""
        arns: dict[str, RepositoryTypeDef] = {
            name: {"repositoryName": name, "repositoryArn": repo.arn} for name, repo in observed.repositories.items()
        }
        details, _ = self._deep_read(arns, list(arns), None)
        repositories = {
            name: repo.model_copy(update={"details": details[name]})
            for name, repo in observed.repositories.items()
            if details.get(name) is not None
        }
        return observed.model_copy(update={"repositories": repositories})

    def _named_repository_items(self, names: Sequence[str]) -> Iterator[RepositoryTypeDef]:
        """``DescribeRepositories`` of ``names``, :data:`NAMED_REPOSITORIES_PER_CALL` a call. ECR answers a batch
        naming a repository it does not have with ``RepositoryNotFoundException`` for the whole call (botocore's
        model lists it for the operation; moto raises it for the first missing name): the name the message gives
        (``The repository with name 'x' does not exist ...``, moto's text and the one ECR's answers are reported
        with, e.g. turbot/steampipe-plugin-aws#1938) is taken out as gone and the rest asked again; a message naming
        none of the batch is met by halving the batch until the single missing names are found."""
        for start in range(0, len(names), NAMED_REPOSITORIES_PER_CALL):
            yield from self._describe_named(list(names[start : start + NAMED_REPOSITORIES_PER_CALL]))

    def _describe_named(self, batch: list[str]) -> Iterator[RepositoryTypeDef]:
        while batch:
            try:
                yield from self.client.describe_repositories(repositoryNames=batch).get("repositories", [])
            except ClientError as exc:
                if error_code(exc) != REPOSITORY_NOT_FOUND:
                    raise classify(exc, "ECR DescribeRepositories") from exc
                missing = _named_missing(exc, batch)
                if missing is not None:
                    batch = [name for name in batch if name != missing]
                    continue
                if len(batch) == 1:
                    return  # the one name asked for is gone
                half = len(batch) // 2
                yield from self._describe_named(batch[:half])
                yield from self._describe_named(batch[half:])
            except BotoCoreError as exc:
                raise classify(exc, "ECR DescribeRepositories") from exc
            return

    def pull_time_exclusions(self) -> frozenset[str]:
        """The principal ARNs of the registry's pull-time update exclusions (every page)."""
        found: set[str] = set()
        request: ListPullTimeUpdateExclusionsRequestTypeDef = {"maxResults": EXCLUSIONS_PAGE_SIZE}
        try:
            while True:
                page = self.client.list_pull_time_update_exclusions(**request)
                found.update(page.get("pullTimeUpdateExclusions", []))
                token = page.get("nextToken")
                if not token:
                    return frozenset(found)
                request["nextToken"] = token
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "ECR ListPullTimeUpdateExclusions") from exc

    def _rule_items(self) -> Iterator[Mapping[str, Any]]:
        try:
            for page in self.client.get_paginator("describe_pull_through_cache_rules").paginate():
                yield from page.get("pullThroughCacheRules", [])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "ECR DescribePullThroughCacheRules") from exc

    def _template_items(self) -> Iterator[Mapping[str, Any]]:
        try:
            for page in self.client.get_paginator("describe_repository_creation_templates").paginate():
                yield from page.get("repositoryCreationTemplates", [])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "ECR DescribeRepositoryCreationTemplates") from exc

    def _repository_items(self) -> Iterator[RepositoryTypeDef]:
        paginator = self.client.get_paginator("describe_repositories")
        try:
            for page in paginator.paginate(PaginationConfig={"PageSize": REPOSITORIES_PAGE_SIZE}):
                yield from page.get("repositories", [])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "ECR DescribeRepositories") from exc

    @staticmethod
    def _deep_names(deep: bool | Collection[str], listed: Mapping[str, RepositoryTypeDef]) -> list[str]:
        if deep is True:
            return list(listed)
        if deep is False:
            return []
        wanted = {deep} if isinstance(deep, str) else set(deep)
        return [name for name in listed if name in wanted]

    def _deep_read(
        self, listed: Mapping[str, RepositoryTypeDef], names: Sequence[str], stop: Callable[[], bool] | None
    ) -> tuple[dict[str, RepositoryDetails | None], tuple[str, ...]]:
        """Each named repository's details (``None``: deleted meanwhile), and the names not read: those whose turn
        came after ``stop`` said so, and, when ``stop`` is a :class:`~ecrcache.engine.deadline.Deadline`, those
        still under way at its hard deadline (abandoned: the pool is not joined, a late answer is dropped)."""
        if not names:
            return {}, ()

        def read(name: str) -> tuple[bool, RepositoryDetails | None]:
            if stop is not None and stop():
                return False, None
            return True, self._details(name, listed[name]["repositoryArn"])

        hard = stop.hard_seconds_left if isinstance(stop, Deadline) else None
        pool = ThreadPoolExecutor(max_workers=min(self.deep_read_workers, len(names)))
        try:
            futures = {pool.submit(read, name): name for name in names}
            done = _wait_until(set(futures), hard)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a read still under way finishes on its own, unheard
        found: dict[str, RepositoryDetails | None] = {}
        for future, name in futures.items():  # only the futures done by the deadline are looked at
            if future in done:
                read_it, details = future.result()  # a read's error is raised, as before
                if read_it:
                    found[name] = details
        return found, tuple(name for name in names if name not in found)

    def _details(self, name: str, arn: str) -> RepositoryDetails | None:
        """The deep read of one repository; ``None`` when it no longer exists."""
        operation = "ECR GetLifecyclePolicy"
        try:
            lifecycle = self._optional(
                lambda: self.client.get_lifecycle_policy(repositoryName=name).get("lifecyclePolicyText"),
                "LifecyclePolicyNotFoundException",
            )
            operation = "ECR GetRepositoryPolicy"
            policy = self._optional(
                lambda: self.client.get_repository_policy(repositoryName=name).get("policyText"),
                "RepositoryPolicyNotFoundException",
            )
            operation = "ECR ListTagsForResource"
            tags = self.client.list_tags_for_resource(resourceArn=arn).get("tags", [])
        except ClientError as exc:
            if error_code(exc) == REPOSITORY_NOT_FOUND:
                return None
            raise classify(exc, operation) from exc
        except BotoCoreError as exc:
            raise classify(exc, operation) from exc
        return RepositoryDetails(
            lifecycle_policy=lifecycle or None,
            repository_policy=policy or None,
            tags={str(t["Key"]): str(t["Value"]) for t in tags},
        )

    @staticmethod
    def _optional(read: Callable[[], str | None], not_found: str) -> str | None:
        try:
            return read()
        except ClientError as exc:
            if error_code(exc) == not_found:
                return None
            raise


class Boto3EcrRegistry(Boto3EcrReader):
    """Implements :class:`ecrcache.ports.EcrRegistry` for one Region: the reader, plus validate and apply."""

    def __init__(
        self,
        region: str,
        client: ECRClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        secret_retry_delays: Sequence[float] = SECRET_RETRY_DELAYS,
        deep_read_workers: int = DEEP_READ_WORKERS,
    ) -> None:
        super().__init__(region, client, deep_read_workers=deep_read_workers)
        self.sleep = sleep
        self.secret_retry_delays = tuple(secret_retry_delays)
        self._handlers: dict[ActionKind, Callable[[PlannedAction], ActionResult]] = {
            ActionKind.CREATE_RULE: self._create_rule,
            ActionKind.UPDATE_RULE: self._update_rule,
            ActionKind.REPLACE_RULE: self._replace_rule,
            ActionKind.DELETE_RULE: self._delete_rule,
            ActionKind.CREATE_TEMPLATE: self._create_template,
            ActionKind.UPDATE_TEMPLATE: self._update_template,
            ActionKind.DELETE_TEMPLATE: self._delete_template,
            ActionKind.PUT_LIFECYCLE_POLICY: self._put_lifecycle_policy,
            ActionKind.DELETE_LIFECYCLE_POLICY: self._delete_lifecycle_policy,
            ActionKind.SET_REPOSITORY_POLICY: self._set_repository_policy,
            ActionKind.DELETE_REPOSITORY_POLICY: self._delete_repository_policy,
            ActionKind.TAG_REPOSITORY: self._tag_repository,
            ActionKind.UNTAG_REPOSITORY: self._untag_repository,
            ActionKind.PUT_IMAGE_TAG_MUTABILITY: self._put_image_tag_mutability,
            ActionKind.REGISTER_EXCLUSION: self._register_exclusion,
            ActionKind.DEREGISTER_EXCLUSION: self._deregister_exclusion,
        }

    # -- validate ------------------------------------------------------------------------------

    def validate_rule(self, prefix: str) -> tuple[bool, str | None]:
        try:
            out = self.client.validate_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        except ClientError as exc:
            if error_code(exc) == RULE_NOT_FOUND:
                return False, f"ECR has no pull through cache rule with prefix {prefix!r}"
            raise classify(exc, "ECR ValidatePullThroughCacheRule") from exc
        except BotoCoreError as exc:
            raise classify(exc, "ECR ValidatePullThroughCacheRule") from exc
        is_valid = bool(out.get("isValid"))
        failure = out.get("failure") or None
        return is_valid, None if is_valid else _cut(failure or "ECR reported the rule as not valid")

    # -- apply ---------------------------------------------------------------------------------

    def apply(self, action: PlannedAction) -> ActionResult:
        if not action.kind.calls_aws:
            return ActionResult.success()
        handler = self._handlers.get(action.kind)
        if handler is None:
            return ActionResult.failure(
                "UnsupportedAction", f"the ECR adapter cannot apply {action.kind.value}", retryable=False
            )
        return handler(action)

    def _call(self, operation: str, call: Callable[[], object], *, done_codes: Collection[str] = ()) -> ActionResult:
        """Make one call; ``done_codes`` are errors that mean the call's effect already holds."""
        try:
            call()
        except ClientError as exc:
            code = error_code(exc)
            if code in done_codes:
                return ActionResult.success(f"{operation}: {code}, nothing to do")
            return failed(operation, exc)
        except BotoCoreError as exc:
            return failed(operation, exc)
        return ActionResult.success()

    def _with_secret_retry(self, operation: str, call: Callable[[], object]) -> ActionResult:
        """Retry a rule write briefly while ECR cannot see its (new) secret yet."""
        result = self._call(operation, call)
        for delay in self.secret_retry_delays:
            if result.ok or result.code not in SECRET_NOT_VISIBLE:
                return result
            self.sleep(delay)
            result = self._call(operation, call)
        if result.code in SECRET_NOT_VISIBLE:
            attempts = len(self.secret_retry_delays) + 1
            return ActionResult.failure(
                result.code or "",
                _cut(f"{result.message} (after {attempts} attempts; a new secret may not be visible to ECR yet)"),
                retryable=True,
            )
        return result

    # rules

    def _create_rule(self, action: PlannedAction) -> ActionResult:
        return self._create_rule_request(cast("CreatePullThroughCacheRuleRequestTypeDef", action.request))

    def _create_rule_request(self, request: CreatePullThroughCacheRuleRequestTypeDef) -> ActionResult:
        operation = "CreatePullThroughCacheRule"
        result = self._with_secret_retry(operation, lambda: self.client.create_pull_through_cache_rule(**request))
        if result.code != RULE_EXISTS:
            return result
        prefix = request["ecrRepositoryPrefix"]
        try:
            existing = self.client.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])
        except (ClientError, BotoCoreError) as exc:
            return failed("DescribePullThroughCacheRules", exc)
        items = existing.get("pullThroughCacheRules", [])
        wanted = rule_essence(ObservedRule.from_ecr(cast("Mapping[str, Any]", request)))
        if items and rule_essence(ObservedRule.from_ecr(cast("Mapping[str, Any]", items[0]))) == wanted:
            return ActionResult.success(f"{operation}: the rule already exists as requested")
        return ActionResult.failure(
            RULE_EXISTS, f"{operation}: a different rule with prefix {prefix!r} already exists", retryable=False
        )

    def _update_rule(self, action: PlannedAction) -> ActionResult:
        request = cast("UpdatePullThroughCacheRuleRequestTypeDef", action.request)
        return self._with_secret_retry(
            "UpdatePullThroughCacheRule", lambda: self.client.update_pull_through_cache_rule(**request)
        )

    def _delete_rule(self, action: PlannedAction) -> ActionResult:
        request = cast("DeletePullThroughCacheRuleRequestTypeDef", action.request)
        return self._call(
            "DeletePullThroughCacheRule",
            lambda: self.client.delete_pull_through_cache_rule(**request),
            done_codes={RULE_NOT_FOUND},
        )

    def _replace_rule(self, action: PlannedAction) -> ActionResult:
        """Delete then create (the upstream fields are immutable); on a failed create, put the old rule back."""
        delete, create = action.request.get("delete"), action.request.get("create")
        if not isinstance(delete, dict) or not isinstance(create, dict):
            return ActionResult.failure(
                "InvalidPlan", "replace_rule needs request {'delete': {...}, 'create': {...}}", retryable=False
            )
        delete_request = cast("DeletePullThroughCacheRuleRequestTypeDef", delete)
        deleted = self._call(
            "DeletePullThroughCacheRule",
            lambda: self.client.delete_pull_through_cache_rule(**delete_request),
            done_codes={RULE_NOT_FOUND},
        )
        if not deleted.ok:
            return deleted
        created = self._create_rule_request(cast("CreatePullThroughCacheRuleRequestTypeDef", create))
        if created.ok:
            return created
        restore = _restore_request(action.before, delete_request["ecrRepositoryPrefix"])
        if restore is None:
            outcome = "the old rule is unknown and was not restored"
        else:
            restored = self._call(
                "CreatePullThroughCacheRule", lambda: self.client.create_pull_through_cache_rule(**restore)
            )
            outcome = "the old rule was restored" if restored.ok else f"restoring the old rule failed ({restored.code})"
        return ActionResult.failure(
            created.code or "Unknown", _cut(f"{created.message}; {outcome}"), retryable=created.retryable
        )

    # templates

    def _create_template(self, action: PlannedAction) -> ActionResult:
        request = cast("CreateRepositoryCreationTemplateRequestTypeDef", action.request)
        operation = "CreateRepositoryCreationTemplate"
        result = self._call(operation, lambda: self.client.create_repository_creation_template(**request))
        if result.code != TEMPLATE_EXISTS:
            return result
        prefix = request["prefix"]
        try:
            existing = self.client.describe_repository_creation_templates(prefixes=[prefix])
        except (ClientError, BotoCoreError) as exc:
            return failed("DescribeRepositoryCreationTemplates", exc)
        items = existing.get("repositoryCreationTemplates", [])
        with_description = "description" in request
        wanted = template_essence(
            ObservedTemplate.from_ecr(cast("Mapping[str, Any]", request)), with_description=with_description
        )
        if items and (
            template_essence(
                ObservedTemplate.from_ecr(cast("Mapping[str, Any]", items[0])), with_description=with_description
            )
            == wanted
        ):
            return ActionResult.success(f"{operation}: the template already exists as requested")
        return ActionResult.failure(
            TEMPLATE_EXISTS, f"{operation}: a different template with prefix {prefix!r} already exists", retryable=False
        )

    def _update_template(self, action: PlannedAction) -> ActionResult:
        request = cast("UpdateRepositoryCreationTemplateRequestTypeDef", action.request)
        return self._call(
            "UpdateRepositoryCreationTemplate", lambda: self.client.update_repository_creation_template(**request)
        )

    def _delete_template(self, action: PlannedAction) -> ActionResult:
        request = cast("DeleteRepositoryCreationTemplateRequestTypeDef", action.request)
        return self._call(
            "DeleteRepositoryCreationTemplate",
            lambda: self.client.delete_repository_creation_template(**request),
            done_codes={TEMPLATE_NOT_FOUND},
        )

    # repositories

    def _put_lifecycle_policy(self, action: PlannedAction) -> ActionResult:
        request = cast("PutLifecyclePolicyRequestTypeDef", action.request)
        return self._call("PutLifecyclePolicy", lambda: self.client.put_lifecycle_policy(**request))

    def _delete_lifecycle_policy(self, action: PlannedAction) -> ActionResult:
        request = cast("DeleteLifecyclePolicyRequestTypeDef", action.request)
        return self._call(
            "DeleteLifecyclePolicy",
            lambda: self.client.delete_lifecycle_policy(**request),
            done_codes={"LifecyclePolicyNotFoundException", REPOSITORY_NOT_FOUND},
        )

    def _set_repository_policy(self, action: PlannedAction) -> ActionResult:
        request = cast("SetRepositoryPolicyRequestTypeDef", action.request)
        return self._call("SetRepositoryPolicy", lambda: self.client.set_repository_policy(**request))

    def _delete_repository_policy(self, action: PlannedAction) -> ActionResult:
        request = cast("DeleteRepositoryPolicyRequestTypeDef", action.request)
        return self._call(
            "DeleteRepositoryPolicy",
            lambda: self.client.delete_repository_policy(**request),
            done_codes={"RepositoryPolicyNotFoundException", REPOSITORY_NOT_FOUND},
        )

    def _tag_repository(self, action: PlannedAction) -> ActionResult:
        request = cast("TagResourceRequestTypeDef", action.request)
        return self._call("TagResource", lambda: self.client.tag_resource(**request))

    def _untag_repository(self, action: PlannedAction) -> ActionResult:
        """``UntagResource`` of keys ecrcache applied. A repository gone since holds no tag: done."""
        request = cast("UntagResourceRequestTypeDef", action.request)
        return self._call(
            "UntagResource", lambda: self.client.untag_resource(**request), done_codes={REPOSITORY_NOT_FOUND}
        )

    def _put_image_tag_mutability(self, action: PlannedAction) -> ActionResult:
        request = cast("PutImageTagMutabilityRequestTypeDef", action.request)
        return self._call("PutImageTagMutability", lambda: self.client.put_image_tag_mutability(**request))

    # pull-time update exclusions (registry-level)

    def _register_exclusion(self, action: PlannedAction) -> ActionResult:
        """Register the principal. Already registered: the goal holds, but whoever registered it, this
        call did not (``existed``: the service does not record it as ecrcache's)."""
        request = cast("RegisterPullTimeUpdateExclusionRequestTypeDef", action.request)
        operation = "RegisterPullTimeUpdateExclusion"
        result = self._call(operation, lambda: self.client.register_pull_time_update_exclusion(**request))
        if result.code == EXCLUSION_EXISTS:
            return ActionResult.success(f"{operation}: the principal is already excluded", existed=True)
        if result.code == "LimitExceededException":
            return ActionResult.failure(
                result.code,
                _cut(
                    f"{result.message} (ECR allows 100 pull-time update exclusions per account: deregister one "
                    "that is no longer needed, then reconcile)"
                ),
                retryable=False,
            )
        return result

    def _deregister_exclusion(self, action: PlannedAction) -> ActionResult:
        request = cast("DeregisterPullTimeUpdateExclusionRequestTypeDef", action.request)
        return self._call(
            "DeregisterPullTimeUpdateExclusion",
            lambda: self.client.deregister_pull_time_update_exclusion(**request),
            done_codes={EXCLUSION_NOT_FOUND},
        )


def _wait_until(futures: set[Future[Any]], seconds_left: Callable[[], float] | None) -> set[Future[Any]]:
    """The futures done when all are, or when ``seconds_left`` (asked again after each one completes) reaches zero.

    The timeout of each wait is the time left: a read blocked in botocore (throttled, retried) cannot hold the
    deep read past its deadline. Without ``seconds_left`` every future is waited for."""
    done: set[Future[Any]] = set()
    pending = futures
    while pending:
        timeout = None if seconds_left is None else max(0.0, seconds_left())
        finished, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        done |= finished
        if any(f.exception() is not None for f in finished):
            break  # raised by the caller, as ``pool.map`` did
        if timeout == 0.0:
            break
    return done


def _restore_request(before: Mapping[str, Any] | None, prefix: str) -> CreatePullThroughCacheRuleRequestTypeDef | None:
    """A ``CreatePullThroughCacheRule`` request that puts back the rule ``before`` describes.

    ``before`` may be ECR's shape (``upstreamRegistryUrl`` ...) or an ``ObservedRule`` dump
    (``upstream_registry_url`` ...); ``None`` when it is neither.
    """
    if not before:
        return None
    if "upstreamRegistryUrl" in before:
        rule = ObservedRule.from_ecr({**before, "ecrRepositoryPrefix": prefix})
    elif "upstream_registry_url" in before:
        fields = {k: v for k, v in before.items() if k in ObservedRule.model_fields}
        rule = ObservedRule.model_validate({**fields, "prefix": prefix})
    else:
        return None
    request: CreatePullThroughCacheRuleRequestTypeDef = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": rule.upstream_registry_url,
    }
    if rule.upstream_registry:
        request["upstreamRegistry"] = cast("Any", rule.upstream_registry)
    if rule.upstream_repository_prefix != ROOT_PREFIX:
        request["upstreamRepositoryPrefix"] = rule.upstream_repository_prefix
    if rule.credential_arn:
        request["credentialArn"] = rule.credential_arn
    if rule.custom_role_arn:
        request["customRoleArn"] = rule.custom_role_arn
    return request

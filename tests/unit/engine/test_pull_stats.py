"""Pull statistics, pure: what an event counts (or why it is dropped), coalescing, deltas and their fold, ranking."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrcache.engine.pull_stats import (
    BridgeEvent,
    PullScope,
    coalesce,
    delta_of,
    fold,
    hash16,
    minute_of,
    platform_of,
    plus,
    principal_of,
    rank,
    read_batch,
    read_event,
    window,
)
from ecrcache.engine.upstream_reasons import owning_rule
from ecrcache.models.events import CloudTrailIdentity
from ecrcache.models.pull_stats import CounterKey, DailyCounter, DropReason, Increment, PullEvent

pytestmark = pytest.mark.unit

ACCOUNT = "123456789012"
REGION = "us-east-1"
AT = datetime(2026, 11, 29, 12, 31, 7, tzinfo=UTC)
DAY = AT.date()
DOCKER_UA = (
    "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0-1017-aws os/linux arch/arm64 "
    "UpstreamClient(Docker-Client/27.3.1 \\(linux\\))"
)
RUNNER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci-runner"
WARMER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecrcache/ecrcache-WarmWorkerFunctionRole-AB12"
SCOPE = PullScope.of({"docker-hub": (), "quay": ("eu-west-1",)}, stack_region=REGION, warmer_role_arn=WARMER_ROLE)
NODE = "docker-hub/library/node"
DIGEST = "sha256:" + "ab" * 32


def session(role_arn: str = RUNNER_ROLE, name: str = "i-0a1b2c3d4e5f60718", *, issuer: bool = True) -> dict[str, Any]:
    account, role = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    identity: dict[str, Any] = {"type": "AssumedRole", "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{name}"}
    if issuer:
        identity["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": role_arn}}
    return identity


def call(
    name: str = "BatchGetImage",
    *,
    repository: str = NODE,
    image_ids: list[dict[str, str]] | None = None,
    identity: Mapping[str, Any] | None = None,
    event_id: str = "e-1",
    at: datetime = AT,
    region: str = REGION,
    **detail: Any,
) -> BridgeEvent:
    params: dict[str, Any] = {"registryId": ACCOUNT, "repositoryName": repository}
    if name == "BatchGetImage":
        params["imageIds"] = image_ids if image_ids is not None else [{"imageTag": "18-alpine"}]
    else:
        params["layerDigest"] = DIGEST
    body: dict[str, Any] = {
        "eventSource": "ecr.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "userIdentity": dict(identity if identity is not None else session()),
        "userAgent": DOCKER_UA,
        "requestParameters": params,
        "responseElements": None,
        **detail,
    }
    return BridgeEvent(f"m-{event_id}", event_id, at, region, "AWS API Call via CloudTrail", body)


def action(
    status: str = "SUCCESS", *, tag: str | None = "18-alpine", digest: str | None = DIGEST, **kw: Any
) -> BridgeEvent:
    detail: dict[str, Any] = {"sync-status": status, "repository-name": NODE, "ecr-repository-prefix": "docker-hub"}
    if tag:
        detail["image-tag"] = tag
    if digest:
        detail["image-digest"] = digest
    event_id = kw.get("event_id", "a-1")
    return BridgeEvent(f"m-{event_id}", event_id, kw.get("at", AT), REGION, "ECR Pull Through Cache Action", detail)


def counted(event: BridgeEvent, scope: PullScope = SCOPE) -> PullEvent:
    read = read_event(event, scope)
    assert isinstance(read, PullEvent), read
    return read


# --------------------------------------------------------------------------------------------------
# what one event counts


def test_a_tag_pull_counts_one_pull_with_platform_principal_and_time() -> None:
    # GIVEN a docker pull of node:18-alpine by a session of the runner role
    # WHEN the event is read
    event = counted(call())

    # THEN it is one pull of the tag, on the event's day, deduplicated in its minute
    key = CounterKey(DAY, REGION, NODE, tag="18-alpine")
    assert event.contributions == (
        (
            key,
            Increment(
                pulls=1,
                first_pulled_at=AT,
                last_pulled_at=AT,
                platforms=frozenset({"linux/arm64"}),
                principals=frozenset({hash16(RUNNER_ROLE)}),
            ),
        ),
    )
    assert (key.pk, key.sk) == ("PULLS#2026-11-29", "us-east-1#docker-hub/library/node:18-alpine")
    assert (event.minute, event.seen_id, event.message_id) == ("2026-11-29T12:31", hash16("e-1"), "m-e-1")


def test_a_digest_pull_counts_under_the_digest_and_a_named_digest_joins_the_tag() -> None:
    # GIVEN a pull by digest only, and one naming a tag and its digest
    by_digest = counted(call(image_ids=[{"imageDigest": DIGEST}]))
    both = counted(call(image_ids=[{"imageTag": "18", "imageDigest": DIGEST}]))

    # THEN the first counts under repository@digest, the second under the tag with the digest seen
    [(key, inc)] = by_digest.contributions
    assert key == CounterKey(DAY, REGION, NODE, digest=DIGEST)
    assert key.sk == f"us-east-1#{NODE}@{DIGEST}"
    assert (inc.pulls, inc.digests) == (1, frozenset({DIGEST}))
    [(key, inc)] = both.contributions
    assert key == CounterKey(DAY, REGION, NODE, tag="18")
    assert inc.digests == frozenset({DIGEST})


def test_each_distinct_image_of_a_request_is_one_pull_and_the_response_digests_are_kept() -> None:
    # GIVEN a request naming two tags (one twice) and an id with neither; CloudTrail recorded the response
    images = {"images": [{"imageId": {"imageTag": "20", "imageDigest": DIGEST}}]}
    ids = [{"imageTag": "18"}, {"imageTag": "20"}, {"imageTag": "18"}, {}]
    event = counted(call(image_ids=ids, responseElements=images))

    # THEN each tag is one pull, the id naming nothing counts nothing, the answered digest joins its tag
    assert [(k.tag, inc.pulls, inc.digests) for k, inc in event.contributions] == [
        ("18", 1, frozenset()),
        ("20", 1, frozenset({DIGEST})),
    ]


def test_a_request_naming_the_most_images_the_api_takes_counts_each() -> None:
    ids = [{"imageTag": f"t{i}"} for i in range(100)]
    event = counted(call(image_ids=ids))
    assert len(event.contributions) == 100
    assert event.contributions[-1][0].tag == "t99"


def test_a_layer_request_counts_on_the_repository() -> None:
    event = counted(call("GetDownloadUrlForLayer"))
    assert event.contributions == ((CounterKey(DAY, REGION, NODE), Increment(layer_requests=1)),)
    assert event.contributions[0][0].sk == f"us-east-1#{NODE}"


@pytest.mark.parametrize(("status", "imports", "failures"), [("SUCCESS", 1, 0), ("FAILED", 0, 1)])
def test_a_pull_through_cache_action_counts_an_import_or_a_failure_and_its_sync(
    status: str, imports: int, failures: int
) -> None:
    # GIVEN an import attempt of node:18-alpine WHEN read
    [(key, inc)] = counted(action(status)).contributions

    # THEN the tag counts an import (or a failure), its digest, and the sync's time and status; no pull
    assert key == CounterKey(DAY, REGION, NODE, tag="18-alpine")
    assert inc == Increment(
        imports=imports,
        import_failures=failures,
        digests=frozenset({DIGEST}),
        last_sync_at=AT,
        last_sync_status=status,
    )


def test_a_cache_action_of_a_digest_counts_under_the_digest_and_one_naming_no_image_is_irrelevant() -> None:
    [(key, _)] = counted(action(tag=None)).contributions
    assert key.digest == DIGEST
    assert read_event(action(tag=None, digest=None), SCOPE) is DropReason.IRRELEVANT


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (call(errorCode="RepositoryNotFoundException"), DropReason.FAILED_CALL),
        (call(identity=session(WARMER_ROLE)), DropReason.WARMER),
        (call(identity=session(WARMER_ROLE, issuer=False)), DropReason.WARMER),  # recognised by role name
        (call(repository="docker-hub2/library/node"), DropReason.UNMANAGED),  # a prefix is a path, not text
        (call(repository="ghcr/org/app"), DropReason.UNMANAGED),
        (call(region="eu-west-1"), DropReason.UNMANAGED),  # docker-hub is a rule of the stack's Region only
        (call("DescribeImages"), DropReason.IRRELEVANT),
        (call(eventSource="ecr-public.amazonaws.com"), DropReason.IRRELEVANT),
        (BridgeEvent("m", "x", AT, REGION, "ECR Image Action", {"result": "SUCCESS"}), DropReason.IRRELEVANT),
        (call(requestParameters={"imageIds": [{"imageTag": "1"}]}), DropReason.MALFORMED),
        (call(image_ids=[]), DropReason.MALFORMED),
        (
            BridgeEvent("m", "x", AT, REGION, "AWS API Call via CloudTrail", {"eventName": "BatchGetImage"}),
            DropReason.MALFORMED,
        ),
        (BridgeEvent("m", "x", AT, REGION, "ECR Pull Through Cache Action", {"image-tag": "1"}), DropReason.MALFORMED),
    ],
    ids=lambda value: value.value if isinstance(value, DropReason) else "",
)
def test_events_that_count_nothing_say_why(event: BridgeEvent, reason: DropReason) -> None:
    assert read_event(event, SCOPE) is reason


def test_a_warmer_role_with_another_name_or_account_is_not_the_warmer() -> None:
    other = f"arn:aws:iam::{ACCOUNT}:role/ecrcache-WarmWorkerFunctionRole-AB123"
    foreign = session(WARMER_ROLE.replace(ACCOUNT, "210987654321"), issuer=False)
    assert isinstance(read_event(call(identity=session(other)), SCOPE), PullEvent)
    assert isinstance(read_event(call(identity=foreign), SCOPE), PullEvent)
    # AND without a warmer role configured, nothing is the warmer's
    unset = PullScope.of({"docker-hub": ()}, stack_region=REGION)
    assert isinstance(read_event(call(identity=session(WARMER_ROLE)), unset), PullEvent)


def test_a_root_rule_covers_every_repository_of_its_regions_and_rules_cover_the_regions_they_name() -> None:
    root = PullScope.of({"ROOT": ("eu-west-1",), "quay": ()}, stack_region=REGION)
    assert root.manages("eu-west-1", "anything/at/all")
    assert root.manages(REGION, "quay/prometheus/node-exporter")
    assert not root.manages(REGION, "anything/at/all")
    assert SCOPE.manages("eu-west-1", "quay/x") and not SCOPE.manages(REGION, "quay/x")


@pytest.mark.parametrize(
    ("agent", "platform"),
    [
        (DOCKER_UA, "linux/arm64"),
        ("docker/20.10.17 go/go1.17.11 git-commit/a89b842 kernel/5.10.104-linuxkit os/linux arch/amd64", "linux/amd64"),
        ("containerd/v1.7.22", None),
        ("buildkit/v0.16 os/linux", None),
        ("aws-cli/2.17.0 md/arch#x86_64 os/linux#6.8", None),  # the SDK's os#version metadata is not a platform
        (None, None),
        ("", None),
    ],
)
def test_the_platform_is_the_user_agents_os_and_arch(agent: str | None, platform: str | None) -> None:
    assert platform_of(agent) == platform


@pytest.mark.parametrize(
    ("identity", "caller"),
    [
        (session(), RUNNER_ROLE),
        (session(issuer=False), RUNNER_ROLE),
        (session(f"arn:aws:iam::{ACCOUNT}:role/teams/ci/ci-runner"), RUNNER_ROLE),  # a role's path is not its name
        ({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"}, f"arn:aws:iam::{ACCOUNT}:user/alice"),
        ({"type": "AWSService", "invokedBy": "ecs.amazonaws.com"}, "ecs.amazonaws.com"),
    ],
)
def test_the_principal_is_a_hash_of_the_role_or_the_caller(identity: dict[str, Any], caller: str) -> None:
    found = principal_of(CloudTrailIdentity.model_validate(identity))
    assert found == hash16(caller)
    assert found is not None and len(found) == 16 and caller not in found


def test_two_sessions_of_one_role_are_one_principal() -> None:
    a = counted(call(identity=session(name="i-1"), event_id="1"))
    b = counted(call(identity=session(name="i-2", issuer=False), event_id="2"))
    assert coalesce([a, b])[CounterKey(DAY, REGION, NODE, tag="18-alpine")].principals == {hash16(RUNNER_ROLE)}


def test_an_event_without_time_zone_is_utc_and_the_minute_is_utc() -> None:
    naive = counted(call(at=AT.replace(tzinfo=None)))
    assert naive.at == AT
    assert minute_of(datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)) == "2026-11-29T23:59"
    late = datetime(2026, 11, 30, 0, 30, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    assert counted(call(at=late)).contributions[0][0].day == date(2026, 11, 30)


# --------------------------------------------------------------------------------------------------
# a batch


def test_a_batch_counts_each_event_id_once_and_keeps_why_the_others_were_dropped() -> None:
    batch = read_batch(
        [call(event_id="1"), call(event_id="1"), call(event_id="2", errorCode="X"), ("m-bad", DropReason.MALFORMED)],
        SCOPE,
    )
    assert [e.event_id for e in batch.events] == ["1"]
    assert batch.dropped == (
        ("m-1", DropReason.DUPLICATE),
        ("m-2", DropReason.FAILED_CALL),
        ("m-bad", DropReason.MALFORMED),
    )


def test_coalescing_adds_counts_unites_sets_and_keeps_the_time_extremes() -> None:
    # GIVEN three pulls of one tag at different times (one from another platform) and an import
    amd = DOCKER_UA.replace("arch/arm64", "arch/amd64")
    events = [
        counted(call(event_id="1", at=AT)),
        counted(call(event_id="2", at=AT - timedelta(minutes=5), userAgent=amd)),
        counted(call(event_id="3", at=AT + timedelta(minutes=5))),
        counted(action(event_id="4", at=AT + timedelta(minutes=1))),
    ]
    # WHEN coalesced
    [(key, inc)] = coalesce(events).items()
    # THEN one increment holds them all
    assert key.tag == "18-alpine"
    assert inc == Increment(
        pulls=3,
        imports=1,
        first_pulled_at=AT - timedelta(minutes=5),
        last_pulled_at=AT + timedelta(minutes=5),
        digests=frozenset({DIGEST}),
        platforms=frozenset({"linux/arm64", "linux/amd64"}),
        principals=frozenset({hash16(RUNNER_ROLE)}),
        last_sync_at=AT + timedelta(minutes=1),
        last_sync_status="SUCCESS",
    )


EVENT_SHAPES = st.sampled_from(["pull", "digest", "layer", "ok", "failed"])


def _event(index: int, shape: str, minute: int, tag: int) -> PullEvent:
    at = AT + timedelta(minutes=minute, seconds=index % 60)
    ids = {"pull": [{"imageTag": f"t{tag}"}], "digest": [{"imageDigest": f"sha256:{tag:064x}"}]}
    if shape in ids:
        return counted(call(image_ids=ids[shape], event_id=str(index), at=at))
    if shape == "layer":
        return counted(call("GetDownloadUrlForLayer", event_id=str(index), at=at))
    return counted(action("SUCCESS" if shape == "ok" else "FAILED", tag=f"t{tag}", event_id=str(index), at=at))


EVENTS = st.lists(st.tuples(EVENT_SHAPES, st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=25).map(
    lambda specs: [_event(i, *spec) for i, spec in enumerate(specs)]
)


@settings(max_examples=60, deadline=None)
@given(events=EVENTS, seed=st.randoms(use_true_random=False))
def test_coalescing_does_not_depend_on_order(events: list[PullEvent], seed: Any) -> None:
    shuffled = copy.copy(events)
    seed.shuffle(shuffled)
    assert coalesce(shuffled) == coalesce(events)


def _cut(events: list[PullEvent], cuts: list[int]) -> list[list[PullEvent]]:
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=80, deadline=None)
@given(events=EVENTS, cuts=st.lists(st.integers(0, 30), max_size=4), again=st.lists(st.integers(0, 24), max_size=6))
def test_folding_deltas_counts_each_event_once_however_batches_repeat_it(
    events: list[PullEvent], cuts: list[int], again: list[int]
) -> None:
    # GIVEN the events cut into batches, plus batches that deliver some events again (redeliveries)
    batches = _cut(events, cuts) + [[events[i % len(events)]] for i in again]
    # WHEN each batch is a delta and the deltas are folded
    folded = fold([delta_of(batch) for batch in batches], {})
    # THEN the counters are what the distinct events add, and every copy is a duplicate
    assert folded.increments == coalesce(events)
    assert folded.duplicates == len(again)
    assert folded.events == len(events)
    assert set().union(*folded.counted.values()) == {e.seen_id for e in events}


def test_an_event_counted_before_is_a_duplicate_and_a_counter_only_duplicates_touch_is_left_out() -> None:
    # GIVEN two events of two tags; the first was counted by an earlier compaction
    first = counted(call(image_ids=[{"imageTag": "a"}], event_id="1"))
    second = counted(call(image_ids=[{"imageTag": "b"}], event_id="2"))
    seen = {first.minute: frozenset({first.seen_id})}
    # WHEN a delta holding both is folded against the ids counted
    folded = fold([delta_of([first, second])], seen)
    # THEN only the second counts: the first's counter is not written again
    assert [k.tag for k in folded.increments] == ["b"]
    assert folded.increments[second.keys[0]].pulls == 1
    assert folded.duplicates == 1
    assert folded.counted == {second.minute: frozenset({second.seen_id})}


def test_a_duplicate_takes_back_only_its_counts_on_a_counter_other_events_touch() -> None:
    # GIVEN a pull counted before and a new pull of the same tag, each delivered in a later delta
    old = counted(call(event_id="old", at=AT - timedelta(minutes=3)))
    new = counted(call(event_id="new", at=AT))
    # WHEN folded against the ids counted (the old one's)
    folded = fold([delta_of([old]), delta_of([new, old])], {old.minute: {old.seen_id}})
    # THEN the tag counts one pull; the old pull's time stays (the counter already holds it)
    [(key, inc)] = folded.increments.items()
    assert (key.tag, inc.pulls, inc.first_pulled_at, inc.last_pulled_at) == ("18-alpine", 1, old.at, AT)
    assert folded.duplicates == 2


def test_plus_adds_an_increment_to_a_stored_counter_or_to_none() -> None:
    key = CounterKey(DAY, REGION, NODE, tag="18")
    stored = DailyCounter(key, pulls=2, last_pulled_at=AT, platforms=frozenset({"linux/amd64"}))
    added = plus(stored, key, Increment(pulls=1, last_pulled_at=AT + timedelta(1), platforms=frozenset({"a/b"})))
    assert (added.pulls, added.last_pulled_at, added.platforms) == (
        3,
        AT + timedelta(1),
        frozenset({"linux/amd64", "a/b"}),
    )
    assert plus(None, key, Increment(pulls=4)) == DailyCounter(key, pulls=4)


# --------------------------------------------------------------------------------------------------
# ranking


def counter(
    day: date, repository: str, pulls: int, *, tag: str | None = "1", region: str = REGION, **kw: Any
) -> DailyCounter:
    key = CounterKey(day, region, repository, tag=tag, digest=None if tag else DIGEST)
    return DailyCounter(key=key, pulls=pulls, **kw)


def test_the_window_is_the_days_ending_today_oldest_first() -> None:
    assert window(AT, 3) == (date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29))


def test_ranking_sums_days_and_regions_most_pulled_first_with_daily_counts_oldest_first() -> None:
    # GIVEN counters of three images over a 3-day window (one outside it, one in two Regions)
    days = window(AT, 3)
    late = AT - timedelta(hours=1)
    counters = [
        counter(days[0], NODE, 2, last_pulled_at=AT - timedelta(days=2), principals=frozenset({"a"})),
        counter(
            days[2],
            NODE,
            3,
            last_pulled_at=late,
            principals=frozenset({"a", "b"}),
            platforms=frozenset({"linux/amd64"}),
        ),
        counter(days[2], NODE, 1, region="eu-west-1", last_pulled_at=AT, digests=frozenset({DIGEST})),
        counter(days[1], "docker-hub/library/python", 6),
        counter(days[0] - timedelta(days=1), "docker-hub/library/ubuntu", 50),
        counter(days[1], "docker-hub/library/alpine", 2, tag=None),
    ]
    # WHEN ranked
    ranked = rank(counters, days=days, top=10)
    # THEN the most pulled comes first; a pull by digest is listed under its digest
    assert [(i.repository, i.tag, i.digest, i.pulls, i.daily) for i in ranked] == [
        (NODE, "1", None, 6, [2, 0, 4]),
        ("docker-hub/library/python", "1", None, 6, [0, 6, 0]),
        ("docker-hub/library/alpine", None, DIGEST, 2, [0, 2, 0]),
    ]
    node = ranked[0]
    assert (node.last_pulled_at, node.principals, node.regions) == (AT, 2, ["eu-west-1", REGION])
    assert (node.digests, node.platforms) == ([DIGEST], ["linux/amd64"])
    # AND top cuts the list; tags_only leaves out digests
    assert [i.repository for i in rank(counters, days=days, top=1)] == [NODE]
    assert all(i.tag for i in rank(counters, days=days, top=10, tags_only=True))


def test_equal_pulls_rank_by_latest_pull_then_name() -> None:
    days = window(AT, 1)
    counters = [
        counter(DAY, "docker-hub/b", 1, last_pulled_at=AT),
        counter(DAY, "docker-hub/a", 1, last_pulled_at=AT),
        counter(DAY, "docker-hub/c", 1, last_pulled_at=AT + timedelta(seconds=1)),
        counter(DAY, "docker-hub/d", 0, last_pulled_at=AT),  # imports only: not listed
    ]
    assert [i.repository for i in rank(counters, days=days, top=10)] == ["docker-hub/c", "docker-hub/a", "docker-hub/b"]


def test_a_rule_ranks_only_the_repositories_it_caches() -> None:
    # GIVEN rules docker-hub and docker-hub/library (nested), and a ROOT rule in eu-west-1
    managed = PullScope.of(
        {"docker-hub": (), "docker-hub/library": (), "ROOT": ("eu-west-1",)}, stack_region=REGION
    ).managed
    counters = [
        counter(DAY, "docker-hub/library/node", 5),
        counter(DAY, "docker-hub/bitnami/redis", 3),
        counter(DAY, "team/app", 2, region="eu-west-1"),
    ]
    days = window(AT, 1)

    def names(rule: str) -> list[str]:
        return [i.repository for i in rank(counters, days=days, top=10, rule=rule, managed=managed)]

    # THEN each repository belongs to the longest prefix it is under, else the Region's ROOT rule
    assert names("docker-hub") == ["docker-hub/bitnami/redis"]
    assert names("docker-hub/library") == ["docker-hub/library/node"]
    assert names("ROOT") == ["team/app"]
    assert owning_rule(REGION, "team/app", managed) is None


def test_counter_keys_parse_back() -> None:
    for key in (
        CounterKey(DAY, REGION, NODE, tag="18-alpine"),
        CounterKey(DAY, REGION, NODE, digest=DIGEST),
        CounterKey(DAY, REGION, NODE),
    ):
        assert CounterKey.parse(key.pk, key.sk) == key
    with pytest.raises(ValueError, match="not a pull counter key"):
        CounterKey.parse("PULLS#2026-11-29", "no-region")
    with pytest.raises(ValueError, match="not both"):
        CounterKey(DAY, REGION, NODE, tag="1", digest=DIGEST)


def test_merging_sync_at_equal_times_is_order_independent() -> None:
    a = Increment(last_sync_at=AT, last_sync_status="FAILED")
    b = Increment(last_sync_at=AT, last_sync_status="SUCCESS")
    assert a.merge(b) == b.merge(a) == b
    assert a.merge(Increment()) == Increment().merge(a) == a

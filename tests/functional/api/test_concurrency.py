"""Many writers at once: optimistic concurrency on item versions and on the desired-state revision.

How the concurrency is simulated (and why not with plain threads): in production every request runs in
its own Lambda execution environment, and the only thing the writers share is DynamoDB, where each API
call is atomic. In-process, two things are shared that production never shares:

* Powertools keeps the current event in a class attribute (``BaseRouter.current_event``) and the route's
  arguments in ``app.context``: two threads inside ``lambda_handler`` read each other's headers and body.
* moto's DynamoDB backend is not thread-safe: a cancelled transaction restores a copy of the tables it
  took before, wiping writes other threads committed meanwhile (seen as "deleted right after this write").

So each writer runs on its own thread, but only one runs at a time, and it hands over exactly at each
AWS call and while the service sleeps between retries: there it saves its Powertools request state,
lets the other writers run, and restores its state when its turn comes back. Writers interleave
between every two AWS calls (between the snapshot's reads and the commit, where races happen) and
nowhere else, which is the real system's model: isolated functions, one database with atomic calls.

Time is virtual: an AWS call takes ``AWS_CALL_SECONDS``, a retry backoff the seconds the service
asks for, and the writer whose virtual wake-up comes first runs next. So the interleaving depends on
the service's retry policy and the (seeded) jitter, never on how fast this machine runs Python: a
slower run (coverage, a loaded CI box) sees the same races as a fast one.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from moto.core.botocore_stubber import BotocoreStubber

from tests.conftest import FakeLambdaContext
from tests.functional.api.assertions import assert_error
from tests.functional.api.client import ApiClient, ApiResponse

pytestmark = pytest.mark.functional

WRITERS = 16
JITTER_SEED = 20261204


class Interleaver:
    """Runs writers on threads that take turns in virtual time (see the module docstring)."""

    AWS_CALL_SECONDS = 0.01  # one DynamoDB/Secrets Manager call, as seen from a Lambda in the same Region

    def __init__(self, context: FakeLambdaContext) -> None:
        from functions.api.app import app

        self.app = app
        self.context = context
        self.local = threading.local()
        self.switches = 0
        self.now = 0.0
        self.ready = threading.Condition()
        self.waiting: list[tuple[float, int, int]] = []  # (virtual wake-up, order, writer)
        self.order = itertools.count()
        self.running: int | None = None

    def at_aws_call(self) -> None:
        """Called by moto's request dispatch: the call takes its time, the other writers may run meanwhile."""
        self.pause(self.AWS_CALL_SECONDS)

    def pause(self, seconds: float) -> None:
        """Give the other writers a turn for ``seconds`` of virtual time (an AWS call, or the service's retry
        backoff: a Lambda sleeping does not stop the others), then come back with this writer's request state."""
        writer: int | None = getattr(self.local, "writer", None)
        if writer is None:  # the test itself, outside run(): nothing to interleave with
            return
        saved = (BaseRouter.current_event, BaseRouter.lambda_context, dict(self.app.context))
        with self.ready:
            heapq.heappush(self.waiting, (self.now + seconds, next(self.order), writer))
            self._next()
            self.ready.wait_for(lambda: self.running == writer)
        BaseRouter.current_event, BaseRouter.lambda_context = saved[0], saved[1]
        self.app.context.clear()
        self.app.context.update(saved[2])
        self.switches += 1

    def _next(self) -> None:
        """(Holding ``ready``) the writer that wakes first in virtual time runs next."""
        self.running = None
        if self.waiting:
            self.now, _, self.running = heapq.heappop(self.waiting)
        self.ready.notify_all()

    def run(self, writer: Callable[[ApiClient, int], ApiResponse], count: int = WRITERS) -> list[ApiResponse]:
        """Start ``count`` writers together at virtual time 0; each gets its own client and index."""
        self.waiting = [(self.now, next(self.order), index) for index in range(count)]
        heapq.heapify(self.waiting)

        def body(index: int) -> ApiResponse:
            client = ApiClient(self.context)
            self.local.writer = index
            with self.ready:
                self.ready.wait_for(lambda: self.running == index)
            try:
                return writer(client, index)
            finally:
                with self.ready:
                    self._next()

        with ThreadPoolExecutor(max_workers=count) as pool:
            futures = [pool.submit(body, index) for index in range(count)]
            with self.ready:
                self._next()
            return [future.result() for future in futures]


@pytest.fixture
def interleaver(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Interleaver]:
    from ecrcache.services import desired_state
    from functions.api.app import service

    runner = Interleaver(api.context)
    dispatch = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        runner.at_aws_call()
        return dispatch(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    monkeypatch.setattr(service, "sleep", runner.pause)
    # The retry jitter is seeded: with virtual time, every run of a test takes the same interleaving.
    monkeypatch.setattr(desired_state, "random", random.Random(JITTER_SEED))
    yield runner


def history(api: ApiClient, kind: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/history", query={"kind": kind, "name": name, "limit": "100"}).json[
        "items"
    ]
    return items


def full_history(api: ApiClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = api.get("/v1/history", query={"limit": "100", **({"next_token": token} if token else {})}).json
        items.extend(page["items"])
        if not (token := page["next_token"]):
            return items


def test_concurrency_same_if_match_lets_exactly_one_writer_win(api: ApiClient, interleaver: Interleaver) -> None:
    # GIVEN a rule at version 1
    etag = api.put("/v1/rules/quay", {"upstream_kind": "quay"}).etag
    assert etag == '"1"'

    # WHEN 16 writers replace it at once, each with a different description and If-Match "1"
    def writer(client: ApiClient, index: int) -> ApiResponse:
        return client.put(
            "/v1/rules/quay", {"upstream_kind": "quay", "description": f"writer {index}"}, headers={"If-Match": etag}
        )

    responses = interleaver.run(writer)
    # THEN the writers really interleaved, exactly one got 200 and all the others 412
    assert interleaver.switches > WRITERS
    assert Counter(r.status for r in responses) == {200: 1, 412: WRITERS - 1}, [r.text for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status == 200)
    # AND the stored rule is the winner's, at version 2, with exactly one history entry for version 2
    current = api.get("/v1/rules/quay").json
    assert current["version"] == 2
    assert current["spec"]["description"] == f"writer {winner}"
    entries = history(api, "rule", "quay")
    assert [(e["version"], e["action"]) for e in entries] == [(2, "update"), (1, "create")]
    assert entries[0]["after"]["description"] == f"writer {winner}"


def test_concurrency_writers_each_get_their_own_request(api: ApiClient, interleaver: Interleaver) -> None:
    # GIVEN nothing written yet
    # WHEN 16 writers create 16 different warm-set-free rules, each as a different caller
    def writer(client: ApiClient, index: int) -> ApiResponse:
        caller = f"arn:aws:iam::123456789012:user/writer-{index}"
        return client.put(f"/v1/rules/r{index:02d}", {"upstream_kind": "quay"}, caller=caller)

    responses = interleaver.run(writer)
    # THEN every answer is about the writer's own rule (the harness keeps requests apart)
    for index, response in enumerate(responses):
        if response.status == 201:
            assert response.json["prefix"] == f"r{index:02d}"
            assert response.json["updated_by"].endswith(f"writer-{index}")


def test_concurrency_writers_to_different_rules_never_lose_or_duplicate_a_write(
    api: ApiClient, interleaver: Interleaver
) -> None:
    # GIVEN nothing written yet
    # WHEN 16 writers create 16 different rules at once, without preconditions
    def writer(client: ApiClient, index: int) -> ApiResponse:
        return client.put(f"/v1/rules/r{index:02d}", {"upstream_kind": "quay", "description": f"writer {index}"})

    responses = interleaver.run(writer)
    # THEN each write either landed (201) or was refused as retryable (503 with Retry-After); none failed otherwise
    created = {f"r{i:02d}" for i, r in enumerate(responses) if r.status == 201}
    for response in responses:
        assert response.status in (201, 503), response.text
        if response.status == 503:
            assert_error(response, 503, "Retryable")
    # AND exactly the rules that were answered 201 exist, each with one history entry, revisions unique
    assert {r["prefix"] for r in api.get("/v1/rules").json["items"]} == created
    entries = full_history(api)
    assert sorted(e["name"] for e in entries) == sorted(created)
    assert sorted(e["revision"] for e in entries) == list(range(1, len(created) + 1))


def test_concurrency_writers_to_different_rules_all_succeed(api: ApiClient, interleaver: Interleaver) -> None:
    # GIVEN nothing written yet
    # WHEN 16 writers create 16 different rules at once, without preconditions
    def writer(client: ApiClient, index: int) -> ApiResponse:
        return client.put(f"/v1/rules/r{index:02d}", {"upstream_kind": "quay"})

    responses = interleaver.run(writer)
    # THEN every one of them succeeds (the service retries stale revisions), each once in history
    assert [r.status for r in responses] == [201] * WRITERS, Counter(r.status for r in responses)
    assert len(full_history(api)) == WRITERS


@pytest.mark.parametrize("exists", [True, False], ids=["update", "create"])
def test_concurrency_unconditional_writers_to_the_same_rule_never_get_412(
    api: ApiClient, interleaver: Interleaver, exists: bool
) -> None:
    # GIVEN the rule exists, or not
    if exists:
        api.put("/v1/rules/quay", {"upstream_kind": "quay"})

    # WHEN 4 writers write it at once without any precondition
    def writer(client: ApiClient, index: int) -> ApiResponse:
        return client.put("/v1/rules/quay", {"upstream_kind": "quay", "description": f"writer {index}"})

    responses = interleaver.run(writer, count=4)
    # THEN none is refused with 412: last writer wins, every write is in history
    assert 412 not in [r.status for r in responses], [r.text for r in responses]


def test_concurrency_document_applies_and_single_writes_keep_history_complete(
    api: ApiClient, interleaver: Interleaver
) -> None:
    # GIVEN nothing written yet
    # WHEN 4 writers apply documents (3 rules each) while 4 others write single credentials
    def writer(client: ApiClient, index: int) -> ApiResponse:
        if index % 2 == 0:
            rules = {f"d{index}-{n}": {"upstream_kind": "quay"} for n in range(3)}
            return client.put("/v1/desired-state", {"version": 1, "rules": rules})
        return client.put(
            f"/v1/credentials/c{index}", {"upstream_kind": "docker-hub", "username": "u", "token": f"t{index}"}
        )

    responses = interleaver.run(writer, count=8)
    # THEN whatever landed is complete (a document all or nothing), and history matches the state exactly
    exported = api.get("/v1/desired-state").json
    for index, response in enumerate(responses):
        assert response.status in (200, 201, 503), response.text
        if index % 2 == 0:
            landed = {f"d{index}-{n}" for n in range(3)} & set(exported["rules"])
            assert landed == (set() if response.status == 503 else {f"d{index}-{n}" for n in range(3)})
        else:
            assert (f"c{index}" in exported["credentials"]) == (response.status == 201)
    entries = full_history(api)
    assert sorted(e["name"] for e in entries) == sorted([*exported["rules"], *exported["credentials"]])

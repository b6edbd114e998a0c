"""The shard queue on moto SQS: 10 tasks a call, an entry SQS could not take sent once more, what still failed
returned by shard index; a call failing for good loses its batch only; an unusable queue raises."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.shard_queue import MAX_BATCH_BYTES, SqsShardQueue
from ecrcache.errors import TerminalError
from ecrcache.models.shards import ShardTask
from ecrcache.ports import ShardQueue
from tests.conftest import REGION

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.functional


def task(index: int, region: str = REGION) -> ShardTask:
    return ShardTask(
        run_id="run-1",
        region=region,
        index=index,
        repositories=tuple(f"docker-hub/library/image{index:03d}-{n}" for n in range(3)),
        revision=7,
    )


def tasks(count: int) -> list[ShardTask]:
    return [task(index) for index in range(count)]


class Flaky:
    """An SQS client whose calls fail the entries whose ``Id`` (place in the batch) is in ``fail`` on the first
    ``times`` calls (``SenderFault`` ``sender``), or raise ``raises`` on the calls numbered in ``raise_on``."""

    def __init__(
        self,
        client: SQSClient,
        *,
        fail: frozenset[str] = frozenset(),
        code: str = "InternalError",
        sender: bool = False,
        times: int = 1,
        raises: ClientError | None = None,
        raise_on: frozenset[int] = frozenset(),
    ) -> None:
        self.client = client
        self.fail, self.code, self.sender, self.times = fail, code, sender, times
        self.raises, self.raise_on = raises, raise_on
        self.calls: list[list[str]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[Any]) -> Any:
        self.calls.append([entry["Id"] for entry in Entries])
        if len(self.calls) in self.raise_on and self.raises is not None:
            raise self.raises
        failing = [e for e in Entries if e["Id"] in self.fail] if len(self.calls) <= self.times else []
        passing = [e for e in Entries if e not in failing]
        out: Any = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=passing) if passing else {}
        failed = [
            {"Id": e["Id"], "SenderFault": self.sender, "Code": self.code, "Message": "injected"} for e in failing
        ]
        return {"Successful": out.get("Successful", []), "Failed": failed}


def client_error(code: str, status: int) -> ClientError:
    """What botocore raises once its own retries are spent."""
    response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "SendMessageBatch")


@pytest.fixture
def sqs(aws: None) -> SQSClient:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def queue_url(sqs: SQSClient) -> str:
    return sqs.create_queue(QueueName="shards")["QueueUrl"]


def received(sqs: SQSClient, url: str) -> list[ShardTask]:
    found: list[ShardTask] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [ShardTask.model_validate_json(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
    return sorted(found, key=lambda t: t.index)


def test_every_task_is_sent_ten_a_call_as_its_json(sqs: SQSClient, queue_url: str) -> None:
    counting = Flaky(sqs, times=0)
    queue: ShardQueue = SqsShardQueue(queue_url, counting)  # type: ignore[arg-type]
    sent = tasks(23)

    assert queue.send(sent) == []

    assert [len(call) for call in counting.calls] == [10, 10, 3]
    # the body is the task (what the worker parses), nothing else
    assert received(sqs, queue_url) == sent


def test_batches_are_packed_by_size_within_sqss_batch_payload_limit(sqs: SQSClient, queue_url: str) -> None:
    # GIVEN 10 full shards of 500 names of 250 characters (about 130 KB of JSON each: ten are over any batch limit)
    full = [
        ShardTask(
            run_id="run-1",
            region=REGION,
            index=index,
            repositories=tuple(f"quay/{index:02d}/{n:03d}/" + "x" * 238 for n in range(500)),
        )
        for index in range(10)
    ]
    sizes: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch",
        lambda params, **_: sizes.append(sum(len(e["MessageBody"].encode()) for e in params["Entries"])),
    )
    # WHEN they are sent
    assert SqsShardQueue(queue_url, sqs).send(full) == []
    # THEN no call carried more than SendMessageBatch's total payload (256 KiB), and every shard arrived
    assert len(sizes) >= 5
    assert max(sizes) <= MAX_BATCH_BYTES <= 256 * 1024
    assert received(sqs, queue_url) == full


def test_nothing_to_send_makes_no_call(sqs: SQSClient, queue_url: str) -> None:
    counting = Flaky(sqs, times=0)
    assert SqsShardQueue(queue_url, counting).send([]) == []  # type: ignore[arg-type]
    assert counting.calls == []


def test_entry_ids_are_unique_in_a_call_whatever_the_shard_indexes(sqs: SQSClient, queue_url: str) -> None:
    # GIVEN shard 0 of two Regions in one send (SQS refuses a batch whose entry ids repeat)
    both = [task(0, "eu-west-1"), task(0, "us-east-1")]
    # WHEN sent THEN both arrive
    assert SqsShardQueue(queue_url, sqs).send(both) == []
    assert sorted(t.region for t in received(sqs, queue_url)) == ["eu-west-1", "us-east-1"]


def test_entries_sqs_could_not_take_are_sent_once_more(sqs: SQSClient, queue_url: str) -> None:
    # GIVEN the first call fails entries 2 and 5 (SenderFault false: SQS could not take them now)
    sleeps: list[float] = []
    flaky = Flaky(sqs, fail=frozenset({"2", "5"}))
    # WHEN ten tasks are sent THEN the two go again in a second call, after a pause, and all arrive
    assert SqsShardQueue(queue_url, flaky, sleep=sleeps.append).send(tasks(10)) == []  # type: ignore[arg-type]
    assert [len(call) for call in flaky.calls] == [10, 2]
    assert len(sleeps) == 1
    assert [t.index for t in received(sqs, queue_url)] == list(range(10))


def test_entries_failing_again_are_returned_by_shard_index(sqs: SQSClient, queue_url: str) -> None:
    # GIVEN entries 0 and 3 of every call fail (the second batch's places 0 and 3 are shards 10 and 13)
    flaky = Flaky(sqs, fail=frozenset({"0", "3"}), times=99)
    queue = SqsShardQueue(queue_url, flaky, sleep=lambda _: None)  # type: ignore[arg-type]
    # WHEN 14 tasks are sent THEN each failed entry was retried once, and the four are returned
    assert queue.send(tasks(14)) == [0, 3, 10, 13]
    assert [len(call) for call in flaky.calls] == [10, 2, 4, 2]
    assert [t.index for t in received(sqs, queue_url)] == [1, 2, 4, 5, 6, 7, 8, 9, 11, 12]


def test_entries_refused_as_the_senders_fault_are_not_sent_again(sqs: SQSClient, queue_url: str) -> None:
    flaky = Flaky(sqs, fail=frozenset({"1"}), code="InvalidMessageContents", sender=True)
    assert SqsShardQueue(queue_url, flaky).send(tasks(3)) == [1]  # type: ignore[arg-type]
    assert flaky.calls == [["0", "1", "2"]]
    assert [t.index for t in received(sqs, queue_url)] == [0, 2]


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("InternalError", 500), ("ServiceUnavailable", 503)],
)
def test_a_call_failing_after_botocores_retries_loses_its_batch_only(
    sqs: SQSClient, queue_url: str, code: str, status: int
) -> None:
    # GIVEN the second of three calls fails as a whole (botocore's retries spent)
    flaky = Flaky(sqs, times=0, raises=client_error(code, status), raise_on=frozenset({2}))
    # WHEN 25 tasks are sent THEN the second batch's shards are returned; the third batch was still sent
    assert SqsShardQueue(queue_url, flaky).send(tasks(25)) == list(range(10, 20))  # type: ignore[arg-type]
    assert len(flaky.calls) == 3
    assert [t.index for t in received(sqs, queue_url)] == [*range(10), *range(20, 25)]


def test_a_first_call_failing_retryably_is_its_batch_and_the_next_is_tried(sqs: SQSClient, queue_url: str) -> None:
    flaky = Flaky(sqs, times=0, raises=client_error("ThrottlingException", 400), raise_on=frozenset({1}))
    assert SqsShardQueue(queue_url, flaky).send(tasks(12)) == list(range(10))  # type: ignore[arg-type]
    assert [t.index for t in received(sqs, queue_url)] == [10, 11]


def test_a_queue_that_does_not_exist_raises_a_terminal_error_naming_the_call(sqs: SQSClient) -> None:
    # GIVEN a queue URL moto knows nothing of (deleted, or a wrong SHARD_QUEUE_URL)
    url = sqs.create_queue(QueueName="gone")["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    # WHEN tasks are sent THEN the first call's refusal is raised: the queue cannot be used at all
    with pytest.raises(TerminalError, match="SQS SendMessageBatch failed with") as info:
        SqsShardQueue(url, sqs).send(tasks(12))
    # never a body in the error
    assert "docker-hub" not in str(info.value)


def test_access_denied_raises_before_anything_was_sent(sqs: SQSClient, queue_url: str) -> None:
    flaky = Flaky(sqs, times=0, raises=client_error("AccessDenied", 403), raise_on=frozenset({1, 2}))
    with pytest.raises(TerminalError, match="AccessDenied"):
        SqsShardQueue(queue_url, flaky).send(tasks(12))  # type: ignore[arg-type]
    assert len(flaky.calls) == 1
    assert received(sqs, queue_url) == []


def test_access_denied_after_a_batch_went_through_loses_that_batch_only(sqs: SQSClient, queue_url: str) -> None:
    flaky = Flaky(sqs, times=0, raises=client_error("AccessDenied", 403), raise_on=frozenset({2}))
    assert SqsShardQueue(queue_url, flaky).send(tasks(12)) == [10, 11]  # type: ignore[arg-type]
    assert [t.index for t in received(sqs, queue_url)] == list(range(10))


def test_the_client_is_made_on_first_send_only(sqs: SQSClient, queue_url: str) -> None:
    # GIVEN the queue as the reconciler makes it at every cold start (no client given)
    queue = SqsShardQueue(queue_url)
    assert queue._client is None  # a run that never fans out never pays for an SQS client
    # WHEN it sends THEN its own client (the project's retry configuration) delivers to the queue
    assert queue.send(tasks(2)) == []
    assert queue.client.meta.config.retries["mode"] == "adaptive"  # type: ignore[attr-defined]
    assert [t.index for t in received(sqs, queue_url)] == [0, 1]

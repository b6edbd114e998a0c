"""The warm queue on moto SQS: 10 tasks a call, failed entries sent again, what still fails reported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest

from ecrcache.adapters.warm_queue import SqsWarmQueue
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.warm_run import WarmTask
from ecrcache.ports import WarmQueue
from tests.conftest import REGION
from tests.functional.warm.support import raiser

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.functional


def task(index: int) -> WarmTask:
    return WarmTask(
        run_id="run-1",
        warm_set="ci",
        region=REGION,
        rule="docker-hub",
        upstream="registry-1.docker.io",
        repository=f"docker-hub/library/image{index}",
        image=f"library/image{index}:1",
        tag="1",
        platforms=("linux/amd64",),
        reserved_requests=2,
        bucket_capacity=200,
        bucket_window_seconds=21_600,
    )


class Flaky:
    """An SQS client whose batches fail some entries on the first ``times`` calls."""

    def __init__(self, client: SQSClient, *, fail: int, code: str, sender: bool, times: int = 1) -> None:
        self.client = client
        self.fail, self.code, self.sender, self.times = fail, code, sender, times
        self.calls: list[int] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[Any]) -> Any:
        self.calls.append(len(Entries))
        if len(self.calls) > self.times:
            return self.client.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)
        failing, passing = Entries[: self.fail], Entries[self.fail :]
        out: Any = self.client.send_message_batch(QueueUrl=QueueUrl, Entries=passing) if passing else {}
        failed = [
            {"Id": e["Id"], "SenderFault": self.sender, "Code": self.code, "Message": "injected"} for e in failing
        ]
        return {"Successful": out.get("Successful", []), "Failed": failed}


@pytest.fixture
def queue_url(aws: None) -> str:
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName="warm")["QueueUrl"]


def received(url: str) -> list[WarmTask]:
    client = boto3.client("sqs", region_name=REGION)
    found: list[WarmTask] = []
    while messages := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [WarmTask.model_validate_json(m["Body"]) for m in messages]
        client.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
    return found


def test_every_task_is_sent_ten_a_call(queue_url: str) -> None:
    client = boto3.client("sqs", region_name=REGION)
    counting = Flaky(client, fail=0, code="", sender=False, times=0)
    queue: WarmQueue = SqsWarmQueue(queue_url, counting)  # type: ignore[arg-type]
    tasks = [task(i) for i in range(23)]

    queue.send(tasks)

    assert counting.calls == [10, 10, 3]
    assert sorted(received(queue_url), key=lambda t: t.image) == sorted(tasks, key=lambda t: t.image)


def test_nothing_to_send_makes_no_call(queue_url: str) -> None:
    counting = Flaky(boto3.client("sqs", region_name=REGION), fail=0, code="", sender=False, times=0)
    SqsWarmQueue(queue_url, counting).send([])  # type: ignore[arg-type]
    assert counting.calls == []


def test_entries_sqs_could_not_take_are_sent_again(queue_url: str) -> None:
    sleeps: list[float] = []
    flaky = Flaky(boto3.client("sqs", region_name=REGION), fail=4, code="InternalError", sender=False)
    SqsWarmQueue(queue_url, flaky, sleep=sleeps.append).send([task(i) for i in range(10)])  # type: ignore[arg-type]
    assert flaky.calls == [10, 4]
    assert sleeps == [0.1]
    assert len(received(queue_url)) == 10


def test_entries_still_failing_are_reported_retryable_with_how_many(queue_url: str) -> None:
    flaky = Flaky(boto3.client("sqs", region_name=REGION), fail=3, code="InternalError", sender=False, times=99)
    queue = SqsWarmQueue(queue_url, flaky, sleep=lambda _: None, attempts=3)  # type: ignore[arg-type]
    # GIVEN the first 3 entries of every call fail: 3 of the first batch, both of the second
    with pytest.raises(
        RetryableError, match=r"5 of 12 warm tasks could not be sent to the warm queue \(InternalError\)"
    ):
        queue.send([task(i) for i in range(12)])
    assert flaky.calls == [10, 3, 3, 2, 2, 2]
    assert len(received(queue_url)) == 7


def test_entries_refused_as_the_senders_fault_are_not_sent_again(queue_url: str) -> None:
    flaky = Flaky(boto3.client("sqs", region_name=REGION), fail=1, code="InvalidMessageContents", sender=True)
    with pytest.raises(TerminalError, match=r"1 of 2 .*InvalidMessageContents"):
        SqsWarmQueue(queue_url, flaky).send([task(1), task(2)])  # type: ignore[arg-type]
    assert flaky.calls == [2]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("AccessDenied", 403, TerminalError),
        ("InternalError", 500, RetryableError),
    ],
)
def test_a_failing_call_is_classified(queue_url: str, code: str, status: int, expected: type[Exception]) -> None:
    client = boto3.client("sqs", region_name=REGION)
    client.send_message_batch = raiser(code, status)  # type: ignore[method-assign]
    with pytest.raises(expected, match="SQS SendMessageBatch"):
        SqsWarmQueue(queue_url, client).send([task(1)])

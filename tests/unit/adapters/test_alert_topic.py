"""The alert topic's SNS Publish: the subject within SNS's limit ("less than 100 characters long")."""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.adapters.alert_topic import SnsAlerts
from ecrcache.engine.credential_health import HealthEvent

pytestmark = pytest.mark.unit


class RecordingSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": "m"}


def _subject(subject: str) -> str:
    sns = RecordingSns()
    SnsAlerts("arn:aws:sns:us-east-1:123456789012:alerts", sns).send(HealthEvent("Credential Expiring", {}, subject))
    [published] = sns.published
    return str(published["Subject"])


@pytest.mark.parametrize("length", [98, 99])
def test_a_subject_under_100_characters_is_sent_whole(length: int) -> None:
    assert _subject("s" * length) == "s" * length


@pytest.mark.parametrize("length", [100, 101, 250])
def test_a_subject_of_100_characters_or_more_is_cut_to_99(length: int) -> None:
    assert _subject("s" * length) == "s" * 99


def test_a_subject_is_printable_ascii() -> None:
    assert _subject("ecrcache: credential caf\u00e9 is Invalid\n") == "ecrcache: credential caf? is Invalid?"

"""Hunting a canary secret in everything a test can see: log lines, log records, exceptions as a traceback
prints them (the cause chain included) and DynamoDB items. Shared by the API's and the rotator's leak scans."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["PowertoolsLogTap", "leaks", "printed_chain"]


def printed_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes as a traceback prints them (``__suppress_context__`` honoured)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


class PowertoolsLogTap:
    """The Powertools logger's JSON lines, at DEBUG (the most the stack's LogLevel allows), while in use: its
    handler holds the stdout of import time, which capsys does not see."""

    def __init__(self) -> None:
        self.lines = io.StringIO()

    def __enter__(self) -> PowertoolsLogTap:
        from ecrcache.observability import logger

        self._level = logger.log_level
        logger.setLevel("DEBUG")
        handler = logger.registered_handler
        assert isinstance(handler, logging.StreamHandler)
        self._handler = handler
        self._stream = handler.setStream(self.lines)
        return self

    def __exit__(self, *_: object) -> None:
        from ecrcache.observability import logger

        self._handler.setStream(self._stream)
        logger.setLevel(self._level)


def leaks(
    canary: str,
    *,
    lines: Iterable[str] = (),
    records: Iterable[logging.LogRecord] = (),
    exceptions: Iterable[BaseException] = (),
    items: Iterable[dict[str, Any]] = (),
) -> list[str]:
    """Where ``canary`` was found (empty: nowhere)."""
    found = [f"log line: {line[:300]}" for line in lines if canary in line]
    for record in records:
        text = f"{record.getMessage()} {record.__dict__!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(f"{e!s}{e!r}" for e in printed_chain(record.exc_info[1]))
        if canary in text:
            found.append(f"log record: {text[:300]}")
    found += [
        f"exception {type(e).__name__}: {str(e)[:200]}"
        for exc in exceptions
        for e in printed_chain(exc)
        if canary in f"{e!s}{e!r}{getattr(e, '__notes__', '')}"
    ]
    found += [f"DynamoDB item {i['pk']['S']} {i['sk']['S']}" for i in items if canary in json.dumps(i)]
    return found

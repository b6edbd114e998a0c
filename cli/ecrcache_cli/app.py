"""What every ``ecrcache`` command shares: the :class:`App` (global options, client, clock) and common options.

The commands (:mod:`ecrcache_cli.commands`) take the :class:`App` with :data:`pass_app`, so a test can run
them with a scripted client and a fake clock (:func:`ecrcache_cli.main.run`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from ecrcache_cli.client import Api, EndpointOptions, open_client
from ecrcache_cli.output import FORMATS, OutputFormat

__all__ = ["App", "output_option", "pass_app", "wait_options"]


@dataclass
class App:
    """What every command shares: the global options, the client (made on first use) and the clock."""

    client_factory: Callable[[EndpointOptions], Api] = open_client
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    options: EndpointOptions = field(default_factory=EndpointOptions)
    _client: Api | None = None

    def api(self) -> Api:
        if self._client is None:
            self._client = self.client_factory(self.options)
        return self._client


pass_app = click.make_pass_decorator(App, ensure=True)


def output_option(*choices: OutputFormat, default: OutputFormat = "table") -> Callable[..., Any]:
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(choices or FORMATS),
        default=default,
        show_default=True,
        help="Output format.",
    )


def wait_options(
    noun: str,
    *,
    wait: bool = True,
    timeout: float = 300.0,
    interval: float = 1.0,
    wait_help: str | None = None,
) -> Callable[..., Any]:
    """``--wait/--no-wait``, ``--timeout SECONDS`` and the hidden ``--interval`` of a command that can wait for
    ``noun`` (the flags, their defaults and help texts are part of the CLI's contract)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = click.option("--interval", type=click.FloatRange(min=0.0), default=interval, hidden=True)(function)
        function = click.option(
            "--timeout",
            type=click.FloatRange(min=0.0),
            default=timeout,
            show_default=True,
            metavar="SECONDS",
            help=f"How long --wait waits for {noun}.",
        )(function)
        return click.option(
            "--wait/--no-wait",
            default=wait,
            show_default=True,
            help=wait_help or f"Wait for {noun} (exit 6 if it does not come).",
        )(function)

    return decorate

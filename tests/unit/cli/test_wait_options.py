"""The commands that can wait share one option helper; their flags, defaults and help texts are the CLI's contract."""

from __future__ import annotations

from typing import Any

import click
import pytest

from ecrcache_cli.commands.apply import apply_cmd
from ecrcache_cli.commands.credential_rotation import credentials_rotate_cmd
from ecrcache_cli.commands.reconcile import reconcile_cmd
from ecrcache_cli.commands.warm import warm_cmd

pytestmark = pytest.mark.unit


def _waiting(command: click.Command) -> dict[str, tuple[Any, ...]]:
    found = {p.name: p for p in command.params if p.name in {"wait", "timeout", "interval"}}
    return {
        name: (tuple(p.opts), tuple(p.secondary_opts), p.default, p.hidden if isinstance(p, click.Option) else None)
        for name, p in found.items()
    } | {"help": tuple(p.help for p in found.values() if isinstance(p, click.Option))}


@pytest.mark.parametrize(
    ("command", "defaults", "helps"),
    [
        (
            warm_cmd,
            (False, 900.0, 2.0),
            ("Wait for the run to finish (exit 6 if not).", "How long --wait waits for the run."),
        ),
        (
            credentials_rotate_cmd,
            (False, 300.0, 2.0),
            ("Wait for the rotation to end (exit 6 if not promoted).", "How long --wait waits for the rotation."),
        ),
        (
            reconcile_cmd,
            (True, 300.0, 1.0),
            (
                "Wait for the run to finish (exit 6 if it does not come).",
                "How long --wait waits for the run to finish.",
            ),
        ),
    ],
)
def test_each_waiting_command_keeps_its_flags_defaults_and_help(
    command: click.Command, defaults: tuple[bool, float, float], helps: tuple[str, str]
) -> None:
    wait, timeout, interval = defaults
    wait_help, timeout_help = helps
    assert _waiting(command) == {
        "wait": (("--wait",), ("--no-wait",), wait, False),
        "timeout": (("--timeout",), (), timeout, False),
        "interval": (("--interval",), (), interval, True),
        "help": (wait_help, timeout_help, None),
    }


def test_apply_waits_for_convergence_by_default() -> None:
    assert _waiting(apply_cmd)["wait"][2] is True

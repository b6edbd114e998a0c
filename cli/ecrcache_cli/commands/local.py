"""``ecrcache local``: the local embedded stack, delegated to its supervisor when the ``local`` extra is installed.

The supervisor is imported only when the command runs, so ``ecrcache`` works without the extra (and without moto).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Final

import click

from ecrcache_cli.output import ExitCode

__all__ = ["LOCAL_EXTRA_MESSAGE", "local_cmd"]

LOCAL_EXTRA_MESSAGE: Final = (
    "ecrcache local needs the local extra (the development world in devstack/): "
    "from an ecrcache checkout, pip install -e ./devstack -e '.[cli,local]' (or make setup)"
)


@click.command(
    "local",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def local_cmd(args: tuple[str, ...]) -> int:
    """Run the local embedded stack (moto + the API + the event runner); `ecrcache local --help` for more."""
    try:
        supervisor = importlib.import_module("devstack.local.supervisor")
    except ImportError as exc:
        click.echo(LOCAL_EXTRA_MESSAGE, err=True)
        click.echo(f"({exc})", err=True)
        return ExitCode.FAILURE
    entry: Callable[[list[str]], int | None] = supervisor.main
    return int(entry(list(args)) or 0)

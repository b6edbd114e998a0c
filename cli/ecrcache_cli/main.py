"""``ecrcache``: the command-line tool for the ecrcache REST API.

Synopsis (global options go before the command)::

    ecrcache [--endpoint URL] [--stack NAME] [--profile NAME] [--region REGION] [--caller-arn ARN] COMMAND ...
    ecrcache apply -f PATH [-f PATH ...] [--prune [--allow-empty]] [--if-revision N] [--dry-run]
                   [--wait/--no-wait] [--timeout SECONDS] [-o FORMAT]
    ecrcache plan [--deep] [--region REGION] [--detailed-exitcode] [-o FORMAT]
    ecrcache get rules|credentials|warm-sets [NAME] [-o FORMAT]
    ecrcache delete rule|credential|warm-set NAME [--if-match ETAG]
    ecrcache status [--runs N] [-o FORMAT]
    ecrcache history [--kind rule|credential|warm-set] [--name NAME] [--limit N] [--all] [-o FORMAT]
    ecrcache pulls [--rule PREFIX] [--top N] [--window DAYS] [-o FORMAT]
    ecrcache reconcile [--deep] [--wait/--no-wait] [--timeout SECONDS] [-o FORMAT]
    ecrcache warm NAME [--wait] [--timeout SECONDS] [-o FORMAT]
    ecrcache export [-o yaml|json] [--file PATH]
    ecrcache import [--region REGION ...] [--dry-run] [-o FORMAT]
    ecrcache credentials set NAME [--username USER] [--token-stdin] [--upstream KIND] [--expires-at DATE|none]
                                  [--description TEXT] [--rotation-strategy manual|dockerhub-pat]
                                  [--rotation-schedule EXPR] [--minting-secret-arn ARN] [-o FORMAT]
    ecrcache local ...                      (the local embedded stack; needs the `local` extra)

``FORMAT`` is ``table`` (default), ``json`` or ``yaml``. Exit codes: see :mod:`ecrcache_cli.output`
(0 ok, 1 failure, 2 plan has changes, 3 invalid input, 4 not found, 5 conflict, 6 not converged,
7 unreachable/unauthenticated, 64 usage). ``warm --wait`` exits 6 for a partial or failed run, as
``reconcile --wait`` does.

This module is the root group (the global options), the registration of the commands (one module per command
group in :mod:`ecrcache_cli.commands`) and the entry points, which turn every failure into a message and an
exit code.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Final

import click

from ecrcache import __version__
from ecrcache_cli.app import App, pass_app
from ecrcache_cli.client import Api, EndpointOptions, open_client
from ecrcache_cli.commands.apply import apply_cmd
from ecrcache_cli.commands.credential_rotation import credentials_rotate_cmd, credentials_status_cmd
from ecrcache_cli.commands.credentials import credentials_group
from ecrcache_cli.commands.get import delete_cmd, get_cmd
from ecrcache_cli.commands.local import local_cmd
from ecrcache_cli.commands.plan import plan_cmd
from ecrcache_cli.commands.pulls import pulls_cmd
from ecrcache_cli.commands.reconcile import reconcile_cmd
from ecrcache_cli.commands.status import history_cmd, status_cmd
from ecrcache_cli.commands.transfer import export_cmd, import_cmd
from ecrcache_cli.commands.warm import warm_cmd
from ecrcache_cli.output import EXIT_CODES_HELP, CliError, ExitCode, Printer, silence

__all__ = ["cli", "main", "run"]


credentials_group.add_command(credentials_rotate_cmd)
credentials_group.add_command(credentials_status_cmd)

# One module per command group (ecrcache_cli.commands); click lists them by name in --help.
COMMANDS: Final[tuple[click.Command, ...]] = (
    apply_cmd,
    plan_cmd,
    get_cmd,
    delete_cmd,
    status_cmd,
    history_cmd,
    pulls_cmd,
    reconcile_cmd,
    warm_cmd,
    export_cmd,
    import_cmd,
    credentials_group,
    local_cmd,
)


@click.group(
    commands=COMMANDS,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option("--endpoint", metavar="URL", help="API URL (the stack's ApiUrl output); else $ECRCACHE_ENDPOINT.")
@click.option("--stack", metavar="NAME", help="Read the API URL from this CloudFormation stack's ApiUrl output.")
@click.option("--profile", metavar="NAME", help="AWS profile for signing and for --stack.")
@click.option("--region", metavar="REGION", help="AWS Region for --stack and signing (default: the URL's).")
@click.option(
    "--caller-arn", metavar="ARN", help="Act as this IAM ARN (X-Ecrcache-Caller-Arn; honoured by the local stack only)."
)
@click.version_option(__version__, "--version", prog_name="ecrcache", message="%(prog)s %(version)s")
@pass_app
def cli(
    app: App,
    *,
    endpoint: str | None,
    stack: str | None,
    profile: str | None,
    region: str | None,
    caller_arn: str | None,
) -> None:
    """Manage ecrcache: Amazon ECR pull-through cache rules, credentials and warm sets as desired state.

    Requests go to the API of an ecrcache stack, signed with your AWS credentials (SigV4).
    """
    app.options = EndpointOptions(endpoint=endpoint, stack=stack, profile=profile, region=region, caller_arn=caller_arn)


# --------------------------------------------------------------------------------------------------
# entry points


def run(
    argv: Sequence[str] | None = None,
    *,
    client_factory: Callable[[EndpointOptions], Api] = open_client,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run one command; every failure becomes a message on stderr and a documented exit code."""
    app = App(client_factory=client_factory, sleep=sleep, clock=clock)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="ecrcache", standalone_mode=False, obj=app)
    except Exception as exc:
        return _report(exc)
    return int(result or 0)


def _report(exc: Exception) -> int:
    """The message and exit code of a failure (click's usage errors become 64)."""
    if isinstance(exc, CliError):
        Printer().error(exc)
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        exc.show()
        is_usage = isinstance(exc, click.UsageError) or exc.exit_code == 2  # click exits 2 on usage
        return ExitCode.USAGE if is_usage else exc.exit_code
    if isinstance(exc, click.Abort):  # Ctrl-C (a command that writes says more: output.Interrupted)
        click.echo("Aborted.", err=True)
        return ExitCode.INTERRUPTED
    if isinstance(exc, BrokenPipeError):  # a pipe the printer does not guard: the reader left; say nothing more
        silence(sys.stdout)
        return ExitCode.FAILURE
    if os.environ.get("ECRCACHE_DEBUG"):
        traceback.print_exception(exc)
    click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
    return ExitCode.FAILURE


def main(argv: list[str] | None = None) -> int:
    """The ``ecrcache`` console script."""
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())

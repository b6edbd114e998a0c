"""``ecrcache-aws``: the embedded AWS endpoint (moto + the ECR extension) for local runs.

    ecrcache-aws [--host 127.0.0.1] [--port 4566] [--ecr-tps "DescribeRepositories=20,GetLifecyclePolicy=50:100"]

``--ecr-tps`` (default: ``$ECRCACHE_EMBEDDED_ECR_TPS``, else nothing throttled) throttles ECR as it does, per
account, Region and operation: ``Operation=TPS[:BURST]``, ``*`` for every operation not named
(:mod:`devstack.aws.ecr_throttling`).

Prints one ready line (``ecrcache-aws: ready at http://127.0.0.1:4566``) once the port is bound,
serves until SIGINT/SIGTERM, then stops cleanly (exit 0). A port already in use is reported as such
(exit 3; a non-loopback ``--host`` exits 2). Then::

    aws --endpoint-url http://127.0.0.1:4566 ecr describe-pull-through-cache-rules
    boto3.client("ecr", endpoint_url="http://127.0.0.1:4566")

Test hooks live under ``/_ecrcache/`` (see :mod:`devstack.aws.server`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from types import FrameType

from devstack.aws.ecr_throttling import ENV_VAR, current
from devstack.aws.server import DEFAULT_HOST, DEFAULT_PORT, EmbeddedAwsServer, PortBusyError

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_PORT_BUSY = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecrcache-aws",
        description="Embedded AWS endpoint: moto with ECR pull-through cache, creation templates, lifecycle preview.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s; 0 = any free)")
    parser.add_argument(
        "--ecr-tps",
        default=os.environ.get(ENV_VAR, ""),
        metavar="OP=TPS[:BURST],...",
        help=f"throttle ECR per account, Region and operation ('*' = every other operation); default ${ENV_VAR}, "
        "else nothing throttled (ECR publishes no rate for most operations)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # `ecrcache local` records its stack with a placeholder resource moto does not model (harmless).
    warnings.filterwarnings("ignore", message=r"Tried to parse AWS::CloudFormation::WaitConditionHandle")
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        server = EmbeddedAwsServer(args.host, args.port, ecr_tps=args.ecr_tps).start()
    except PortBusyError as exc:
        print(f"ecrcache-aws: error: {exc.strerror}", file=sys.stderr)
        return EXIT_PORT_BUSY
    except ValueError as exc:
        print(f"ecrcache-aws: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        limits = current().limits
        if limits:
            shown = ", ".join(f"{op} {limit.tps:g}/s (burst {limit.burst:g})" for op, limit in sorted(limits.items()))
            print(f"ecrcache-aws: ECR throttled per account, Region and operation: {shown}", flush=True)
        print(f"ecrcache-aws: ready at {server.endpoint_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("ecrcache-aws: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

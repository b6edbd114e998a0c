"""``make demo``: a scripted tour of ecrcache on the local stack that fails loudly if any step does not happen.

1. starts ``ecrcache local`` in the background (free ports, so it runs beside a ``make local``);
2. stores the Docker Hub and GHCR tokens with ``ecrcache credentials set --token-stdin``;
3. ``ecrcache apply -f examples/`` and waits for convergence;
4. lists the pull-through cache rules in ECR through the AWS API;
5. pulls ``node:18-alpine`` through the cache and shows its new repository got the rule's lifecycle policy;
6. changes that rule's lifecycle and shows the controller updating the repository already cached
   (ECR's creation templates only ever touch new repositories);
7. deletes the ``quay`` rule behind the controller's back (AWS API) and shows the controller put it back;
8. ``ecrcache plan --detailed-exitcode``: empty;
9. stops everything (Ctrl-C to the local stack) and checks it exited cleanly.

Exit status 0 only if every step happened; otherwise 1, naming the step and showing the local
stack's last log lines. ``--keep-logs DIR`` keeps the local stack's log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import boto3
import requests
import yaml
from botocore.config import Config

__all__ = ["main"]

T = TypeVar("T")

EXPECTED_RULES: Final = frozenset({"docker-hub", "ghcr", "quay", "ecr-public", "k8s"})
PULLED_REPOSITORY: Final = "docker-hub/library/node"
PULLED_TAG: Final = "18-alpine"
REPAIRED_RULE: Final = "quay"
MANIFEST_TYPES: Final = [
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]
DEMO_TOKEN: Final = "demo-token-not-a-secret"  # noqa: S105 - the local registry accepts any token


class StepFailed(RuntimeError):
    """A step of the tour did not happen."""


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


class Demo:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.log_path = workdir / "local.log"
        self.ready_path = workdir / "ready.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, str] = {}
        self.step_number = 0

    # ---- output -------------------------------------------------------------------------------------

    def step(self, title: str) -> None:
        self.step_number += 1
        print(f"\n==> {self.step_number}. {title}", flush=True)

    @staticmethod
    def show(text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            print(f"    {line}", flush=True)

    # ---- the local stack ------------------------------------------------------------------------

    def start_local(self) -> None:
        ports = [str(_free_port()) for _ in range(3)]
        argv = [
            sys.executable, "-m", "ecrcache_cli", "local",
            "--aws-port", ports[0], "--api-port", ports[1], "--registry-port", ports[2],
            "--ready-file", str(self.ready_path), "--stack-name", "ecrcache-demo",
        ]  # fmt: skip
        self.show("$ ecrcache " + " ".join(argv[3:]) + f"   (log: {self.log_path})")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if self.ready_path.exists():
                self.endpoints = json.loads(self.ready_path.read_text(encoding="utf-8"))
                self.show(
                    f"API {self.endpoints['api']}  AWS {self.endpoints['aws']}  registry {self.endpoints['registry']}"
                )
                return
            if self.process.poll() is not None:
                raise StepFailed(f"ecrcache local exited with status {self.process.returncode}")
            time.sleep(0.2)
        raise StepFailed(f"ecrcache local was not ready within {self.args.timeout} s")

    def stop_local(self) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                return process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                return None
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- clients ---------------------------------------------------------------------------------

    def cli(
        self, *args: str, stdin: str | None = None, expect: Sequence[int] = (0,)
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ECRCACHE_ENDPOINT": self.endpoints["api"], "NO_COLOR": "1"}
        self.show("$ ecrcache " + " ".join(args) + (" <<< (token)" if stdin is not None else ""))
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "ecrcache_cli", *args],
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # progress (stderr) in order with the results (stdout)
            text=True,
            env=env,
            timeout=self.args.timeout + 60,
            check=False,
        )
        self.show(result.stdout)
        self.show(f"(exit {result.returncode}, {time.monotonic() - started:.1f} s)")
        if result.returncode not in expect:
            raise StepFailed(f"`ecrcache {' '.join(args)}` exited {result.returncode}, expected {list(expect)}")
        if stdin is not None and stdin.strip() in result.stdout:
            raise StepFailed("the token appeared in the CLI's output")
        return result

    def ecr(self) -> Any:
        return boto3.client(
            "ecr",
            endpoint_url=self.endpoints["aws"],
            region_name=self.endpoints.get("region", "us-east-1"),
            aws_access_key_id="demo-user",
            aws_secret_access_key="demo-user",  # noqa: S106 - the embedded AWS accepts any key
            config=Config(retries={"mode": "standard"}),
        )

    def api(self, path: str) -> Any:
        response = requests.get(self.endpoints["api"] + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float | None = None) -> tuple[T, float]:
        started = time.monotonic()
        deadline = started + (timeout or self.args.timeout)
        while time.monotonic() < deadline:
            value = check()
            if value is not None:
                return value, time.monotonic() - started
            time.sleep(0.5)
        raise StepFailed(f"{what} did not happen within {timeout or self.args.timeout} s")

    def wait_for_lifecycle(self, ecr: Any, rule: str) -> dict[str, Any]:
        """The pulled repository's lifecycle policy, once it is the one ``rule`` renders now."""
        expected = self.api(f"/rules/{rule}")["rendered"]["lifecycle_policy"]

        def applied() -> dict[str, Any] | None:
            try:
                text = ecr.get_lifecycle_policy(repositoryName=PULLED_REPOSITORY)["lifecyclePolicyText"]
            except ecr.exceptions.LifecyclePolicyNotFoundException:
                return None
            policy: dict[str, Any] = json.loads(text)
            return policy if policy == expected else None

        policy, _ = self.wait_for(f"rule {rule!r}'s lifecycle policy on {PULLED_REPOSITORY}", applied)
        return policy

    # ---- the tour -----------------------------------------------------------------------------------

    def run(self) -> None:
        self.step("Start the local stack (embedded AWS, API, event runner, seeded registry)")
        self.start_local()

        self.step("Store the upstream tokens (read from stdin, never on the command line)")
        for name, kind in (("dockerhub", "docker-hub"), ("ghcr", "github-container-registry")):
            self.cli(
                "credentials", "set", name, "--upstream", kind, "--username", "ecrcache-demo", "--token-stdin",
                stdin=DEMO_TOKEN + "\n",
            )  # fmt: skip

        self.step("Apply examples/ and wait until ECR matches it")
        examples = str(self.args.examples)
        self.cli("apply", "-f", examples, "--timeout", str(int(self.args.timeout)))

        self.step("The rules, as ECR reports them (AWS API: DescribePullThroughCacheRules)")
        ecr = self.ecr()
        rules = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
        for rule in rules:
            self.show(f"{rule['ecrRepositoryPrefix']:<12} -> {rule['upstreamRegistryUrl']}")
        missing = EXPECTED_RULES - {r["ecrRepositoryPrefix"] for r in rules}
        if missing:
            raise StepFailed(f"rules missing in ECR: {sorted(missing)}")

        self.step(f"Pull {PULLED_TAG} through the cache: {PULLED_REPOSITORY}:{PULLED_TAG}")
        pulled = ecr.batch_get_image(
            repositoryName=PULLED_REPOSITORY, imageIds=[{"imageTag": PULLED_TAG}], acceptedMediaTypes=MANIFEST_TYPES
        )
        if pulled.get("failures") or not pulled.get("images"):
            raise StepFailed(f"the pull through the cache failed: {pulled.get('failures')}")
        self.show(f"pulled {PULLED_REPOSITORY}:{PULLED_TAG} {pulled['images'][0]['imageId'].get('imageDigest', '')}")
        policy = self.wait_for_lifecycle(ecr, "docker-hub")
        self.show(f"{PULLED_REPOSITORY} was created with the rule's lifecycle policy:")
        self.show(json.dumps(policy, indent=2))

        self.step("Change the rule's lifecycle (keep_last 20 -> 10): the cached repository follows")
        rules = yaml.safe_load((self.args.examples / "rules.yaml").read_text(encoding="utf-8"))["rules"]
        changed = rules["docker-hub"]
        changed["lifecycle"]["presets"]["keep_last"] = 10
        changed_file = self.workdir / "docker-hub-keep-10.yaml"
        changed_file.write_text(yaml.safe_dump({"version": 1, "rules": {"docker-hub": changed}}), encoding="utf-8")
        self.cli("apply", "-f", str(changed_file), "--timeout", str(int(self.args.timeout)))
        policy = self.wait_for_lifecycle(ecr, "docker-hub")
        kept = [r["selection"].get("countNumber") for r in policy["rules"] if r["selection"]["tagStatus"] == "tagged"]
        self.show(f"{PULLED_REPOSITORY} now keeps {kept[0]} tagged images (updated by the controller, not by ECR)")

        self.step(f"Delete the {REPAIRED_RULE!r} rule behind the controller's back (AWS API)")
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=REPAIRED_RULE)
        self.show(f"deleted {REPAIRED_RULE}; waiting for the controller (CloudTrail event -> reconciler) ...")

        def repaired() -> bool | None:
            current = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
            return True if any(r["ecrRepositoryPrefix"] == REPAIRED_RULE for r in current) else None

        _, took = self.wait_for(f"the repair of rule {REPAIRED_RULE!r}", repaired)
        self.show(f"the controller recreated {REPAIRED_RULE!r} {took:.1f} s later")

        self.step("The plan is empty: ECR matches the desired state")
        self.cli("plan", "--detailed-exitcode")

        self.step("Stop everything")
        status = self.stop_local()
        if status != 0:
            raise StepFailed(f"ecrcache local did not stop cleanly (exit status {status})")
        self.show("stopped (exit status 0)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecrcache-demo", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--examples", type=Path, default=_repo_root() / "examples", help="desired-state files to apply")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each wait may take (default 120)")
    parser.add_argument("--keep-logs", type=Path, default=None, help="keep the local stack's log in this folder")
    args = parser.parse_args(argv)
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):  # the tour never uses the user's AWS account
        os.environ.pop(variable, None)
    workdir_context = tempfile.TemporaryDirectory(prefix="ecrcache-demo-")
    workdir = Path(workdir_context.name)
    demo = Demo(args, workdir)
    failed: str | None = None
    try:
        demo.run()
    except (StepFailed, requests.RequestException, subprocess.TimeoutExpired) as exc:
        failed = str(exc)
    except Exception as exc:  # any other failure is a failed step too, with its type
        failed = f"{type(exc).__name__}: {exc}"
    finally:
        if demo.process is not None:
            demo.stop_local()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            (args.keep_logs / "local.log").write_bytes(demo.log_path.read_bytes() if demo.log_path.exists() else b"")
    if failed is not None:
        print(f"\nDEMO FAILED at step {demo.step_number}: {failed}", file=sys.stderr)
        print("last lines of the local stack's log:", file=sys.stderr)
        print(demo.log_tail(), file=sys.stderr)
        workdir_context.cleanup()
        return 1
    workdir_context.cleanup()
    print(f"\ndemo passed: {demo.step_number} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

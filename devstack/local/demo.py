"""``make demo``: a scripted tour of ecrcache on the local stack that fails loudly if any step does not happen.

1. starts ``ecrcache local`` in the background (free ports, so it runs beside a ``make local``);
2. stores the Docker Hub and GHCR tokens with ``ecrcache credentials set --token-stdin`` (GHCR's stand-in
   requires its token: the one the local stack printed);
3. ``ecrcache apply -f examples/`` and waits for convergence;
4. lists the pull-through cache rules in ECR through the AWS API;
5. pulls ``node:18-alpine`` through the cache and shows its new repository got the rule's lifecycle policy;
6. CI runners (two IAM users of the embedded AWS, Docker's user agent) pull ``golang`` and ``redis``
   through the cache: ECR's CloudTrail ``BatchGetImage`` events go to the pull statistics;
7. changes that rule's lifecycle and shows the controller updating the repository already cached
   (ECR's creation templates only ever touch new repositories);
8. deletes the ``quay`` rule behind the controller's back (AWS API) and shows the controller put it back;
9. ``ecrcache pulls``: the pulls of step 6 counted (once the statistics' 30-second batch is in);
10. a warm set of the ``top`` 2 pulled tags and two pinned images: ``ecrcache warm --wait`` -- the top tags
    are ``fresh`` (ECR fetched them, every platform, on those pulls), the pinned ones are warmed and
    verified for every platform; ``ecrcache status`` lists the warm set;
11. the upstream's rate limit drops to 1 request an hour (the registry's run-time hook): a warm run is
    stopped by the 429 with a clear status (class ``rate_limit``, the rest ``skipped``);
12. rotates GHCR's token with a token the ``ghcr.io`` stand-in refuses: ``ecrcache credentials rotate --wait`` exits
    6, ``refused``; the secret's ``AWSCURRENT`` is untouched (checked with ``GetSecretValue``, never printed) and
    no ``AWSPENDING`` is left;
13. the stand-in issues a new token (its token server's run-time hook) and the rotation with it exits 0:
    ``promoted`` and validated in ECR, ``AWSCURRENT`` holds it, a pull through the ``ghcr`` rule works;
14. ``expires_at`` 3 days ahead, the daily health check run now (``ecrcache local fire CredentialHealthFunction``):
    the ``Credential Expiring`` event reaches a rule's queue on the default bus and the alert topic a subscribed
    queue, and ``ecrcache credentials status ghcr`` shows ``Expiring`` (:mod:`devstack.local.demo_credentials`);
15. ``ecrcache plan --detailed-exitcode``: empty (once the last pulls' queued events are reconciled);
16. stops everything (Ctrl-C to the local stack) and checks it exited cleanly.

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

from devstack.local.demo_credentials import CredentialsChapter

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
DEMO_TOKEN: Final = "demo-token-not-a-secret"  # noqa: S105 - the local Docker Hub stand-in accepts any token
# Warming (seeded by the local stack, devstack.local.supervisor): pulled by CI runners (image -> pulls),
# pinned in a warm set, and stopped by a rate limit. None is touched before its step, so none is fresh early.
CI_PULLS: Final = {"library/golang:1.23": 3, "library/redis:7.4": 2}
PINNED: Final = ("library/postgres:17", "library/busybox:1.37")
LIMITED: Final = ("library/memcached:1.6", "library/traefik:3.1", "library/httpd:2.4")
PLATFORMS: Final = ("linux/amd64", "linux/arm64")
HUB: Final = "registry-1.docker.io"
# What Docker sends; ECR's CloudTrail event keeps it as userAgent, and the statistics read os/ and arch/ in it.
DOCKER_AGENT: Final = "docker/27.3.1 go/go1.22.7 kernel/6.1.0 os/linux arch/{arch} UpstreamClient(Docker-Client)"


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
        self.endpoints: dict[str, Any] = {}
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
        self, *args: str, stdin: str | None = None, expect: Sequence[int] = (0,), section: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ecrcache``, show its output (only from the line starting ``section`` on, if given)."""
        env = {**os.environ, "ECRCACHE_ENDPOINT": self.endpoints["api"], "NO_COLOR": "1", "COLUMNS": "200"}
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
        shown = result.stdout
        if section is not None and f"\n{section}" in shown:
            shown = "(...)\n" + shown[shown.index(f"\n{section}") + 1 :]
        self.show(shown)
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

    def api(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = requests.get(self.endpoints["api"] + path, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def ci_runner(self, name: str, arch: str) -> Any:
        """An ECR client of a new IAM user of the embedded AWS (not the warmer) that sends Docker's agent."""
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoints["aws"],
            region_name=self.endpoints.get("region", "us-east-1"),
            aws_access_key_id="demo-user",
            aws_secret_access_key="demo-user",  # noqa: S106 - the embedded AWS accepts any key
        )
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        ecr = boto3.client(
            "ecr",
            endpoint_url=self.endpoints["aws"],
            region_name=self.endpoints.get("region", "us-east-1"),
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"mode": "standard"}),
        )
        agent = DOCKER_AGENT.format(arch=arch)

        def as_docker(request: Any, **_: Any) -> None:
            request.headers["User-Agent"] = agent

        ecr.meta.events.register("before-send.ecr", as_docker)
        return ecr

    def registry_limit(self, limit: int | None, window: int = 3600) -> dict[str, Any]:
        """Set the upstream registry's Docker Hub-like rate limit at run time (``None`` lifts it)."""
        body = {"limit": limit, "window": window} if limit is not None else {"limit": None}
        response = requests.put(f"{self.endpoints['registry']}/_ecrcache/rate-limit", json=body, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def warm_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.api(f"/warm-sets/{name}/status")
        return status

    def apply_warm_set(self, name: str, spec: dict[str, Any]) -> None:
        path = self.workdir / f"warm-set-{name}.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "warm_sets": {name: spec}}, sort_keys=False), encoding="utf-8")
        self.show(f"# {path.name}:")
        self.show(path.read_text(encoding="utf-8"))
        self.cli("apply", "-f", str(path), "--timeout", str(int(self.args.timeout)))

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float | None = None) -> tuple[T, float]:
        started = time.monotonic()
        deadline = started + (timeout or self.args.timeout)
        while time.monotonic() < deadline:
            value = check()
            if value is not None:
                return value, time.monotonic() - started
            time.sleep(0.5)
        raise StepFailed(f"{what} did not happen within {timeout or self.args.timeout} s")

    def wait_for_lifecycle(self, ecr: Any, rule: str, repository: str = PULLED_REPOSITORY) -> dict[str, Any]:
        """The pulled repository's lifecycle policy, once it is the one ``rule`` renders now."""
        expected = self.api(f"/rules/{rule}")["rendered"]["lifecycle_policy"]

        def applied() -> dict[str, Any] | None:
            try:
                text = ecr.get_lifecycle_policy(repositoryName=repository)["lifecyclePolicyText"]
            except ecr.exceptions.LifecyclePolicyNotFoundException:
                return None
            policy: dict[str, Any] = json.loads(text)
            return policy if policy == expected else None

        policy, _ = self.wait_for(f"rule {rule!r}'s lifecycle policy on {repository}", applied)
        return policy

    # ---- the tour -----------------------------------------------------------------------------------

    def run(self) -> None:
        self.step("Start the local stack (embedded AWS, API, event runner, seeded registry)")
        self.start_local()

        self.step("Store the upstream tokens (read from stdin, never on the command line)")
        # Docker Hub's stand-in is open (any token); GHCR's takes only its user and token (the ready file's).
        ghcr = self.endpoints["ghcr"]
        for name, kind, username, token in (
            ("dockerhub", "docker-hub", "ecrcache-demo", DEMO_TOKEN),
            ("ghcr", "github-container-registry", ghcr["username"], ghcr["token"]),
        ):
            self.cli(
                "credentials", "set", name, "--upstream", kind, "--username", username, "--token-stdin",
                stdin=token + "\n",
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

        self.step("CI runners pull through the cache (two IAM users, Docker's user agent)")
        self.ci_pulls()

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

        self.warming()
        CredentialsChapter(self).run()
        self.finish()

    def finish(self) -> None:
        self.step("The plan is empty: ECR matches the desired state")
        # The last pulls' pull-through events reach the reconciler through its event queue, gathered for up to
        # 15 s: a repository just created is in the plan until the reconciler has recorded its settings.
        _, waited = self.wait_for("an empty plan", lambda: True if not self.api("/plan")["actions"] else None)
        self.show(f"the queued pull-through events are reconciled ({waited:.1f} s)")
        self.cli("plan", "--detailed-exitcode")

        self.step("Stop everything")
        status = self.stop_local()
        if status != 0:
            raise StepFailed(f"ecrcache local did not stop cleanly (exit status {status})")
        self.show("stopped (exit status 0)")

    # ---- warming ------------------------------------------------------------------------------

    def ci_pulls(self) -> None:
        runners = {"ci-runner-amd64": self.ci_runner("ci-runner-amd64", "amd64")}
        runners["ci-runner-arm64"] = self.ci_runner("ci-runner-arm64", "arm64")
        turn = 0
        for image, times in CI_PULLS.items():
            name, tag = image.split(":")
            repository = f"docker-hub/{name}"
            for _ in range(times):
                user, runner = list(runners.items())[turn % len(runners)]
                turn += 1
                pulled = runner.batch_get_image(
                    repositoryName=repository, imageIds=[{"imageTag": tag}], acceptedMediaTypes=MANIFEST_TYPES
                )
                if pulled.get("failures") or not pulled.get("images"):
                    raise StepFailed(f"the pull of {repository}:{tag} failed: {pulled.get('failures')}")
                self.show(f"{user:<16} pulled {repository}:{tag}")
        self.show("each pull is a CloudTrail BatchGetImage event: PullEventsRule -> PullEventsQueue ->")
        self.show("PullStatsFunction, in batches gathered for up to 30 s (the template's batching window)")

    def warming(self) -> None:
        self.step("Pull statistics: what the CI runners pulled (ecrcache pulls)")
        expected = {f"docker-hub/{image}": times for image, times in CI_PULLS.items()}

        def counted() -> dict[str, int] | None:
            items = self.api("/pulls", {"rule": "docker-hub", "window_days": 7})["items"]
            found = {f"{i['repository']}:{i['tag']}": int(i["pulls"]) for i in items if i.get("tag")}
            return found if all(found.get(ref) == n for ref, n in expected.items()) else None

        _, took = self.wait_for("the CI runners' pulls in GET /v1/pulls", counted)
        self.show(f"(counted; waited {took:.1f} s for the pull statistics' batch)")
        self.cli("pulls", "--rule", "docker-hub", "--window", "7")

        self.step("Warm the top 2 pulled tags and two pinned images: every platform verified")
        self.apply_warm_set(
            "popular",
            {
                "rule": "docker-hub",
                "images": list(PINNED),
                "top": {"count": 2, "window_days": 7},
                "platforms": list(PLATFORMS),
                "description": "the 2 most pulled tags of the week, and two pinned images",
            },
        )
        self.cli("warm", "popular", "--wait", "--timeout", str(int(self.args.timeout)))
        self.check_popular(self.warm_status("popular"), expected)
        self.cli("status", section="Warm sets:")

        self.step("A rate-limited upstream stops a warm run (the registry allows 1 request an hour now)")
        self.apply_warm_set("more", {"rule": "docker-hub", "images": list(LIMITED), "platforms": list(PLATFORMS)})
        request = {"limit": 1, "window": 3600}
        self.show(f"$ curl -X PUT {self.endpoints['registry']}/_ecrcache/rate-limit -d '{json.dumps(request)}'")
        self.show(json.dumps(self.registry_limit(request["limit"], request["window"])))
        try:
            self.cli("warm", "more", "--wait", "--timeout", str(int(self.args.timeout)), expect=(6,))
        finally:
            self.registry_limit(None)
        self.check_stopped(self.warm_status("more"))

    def check_popular(self, status: dict[str, Any], pulled: dict[str, int]) -> None:
        """Top picked the pulled tags (fresh: ECR fetched them on those pulls); the pinned ones warmed."""
        images = {f"{i['repository']}:{i['tag']}": i for i in status["images"]}
        pinned = {f"docker-hub/{image}" for image in PINNED}
        if set(images) != pinned | set(pulled):
            raise StepFailed(f"the run's images are {sorted(images)}, expected {sorted(pinned | set(pulled))}")
        for reference in pinned:
            image = images[reference]
            if image["outcome"] != "warmed" or tuple(image["platforms_verified"]) != PLATFORMS:
                raise StepFailed(f"{reference} was not warmed for {', '.join(PLATFORMS)}: {image}")
        for reference in pulled:
            if images[reference]["outcome"] != "fresh":
                raise StepFailed(f"{reference}, pulled minutes ago, was not fresh: {images[reference]}")
        if status["run"]["status"] != "succeeded":
            raise StepFailed(f"the warm run ended {status['run']['status']}")
        self.show(f"top picked {' and '.join(sorted(pulled))}: fresh, no upstream request spent")
        self.show("(ECR fetched them, index and every platform, on those pulls, and re-checks the upstream at")
        self.show("most once a day); the pinned images were pulled through the cache and verified for")
        self.show(" and ".join(PLATFORMS))

    def check_stopped(self, status: dict[str, Any]) -> None:
        """One image failed on the 429, the rest skipped, the run names the upstream that stopped it."""
        outcomes = sorted(i["outcome"] for i in status["images"])
        classes = {i["failure_class"] for i in status["images"]}
        run = status["run"]
        if outcomes != ["failed"] + ["skipped"] * (len(LIMITED) - 1) or classes != {"rate_limit"}:
            raise StepFailed(f"expected 1 failed and {len(LIMITED) - 1} skipped as rate_limit: {status['images']}")
        if run["stopped_upstreams"] != [HUB]:
            raise StepFailed(f"the run does not name {HUB} as stopped: {run}")
        self.show(f"{HUB} answered 429: the run ended {run['status']}, its other images were skipped (never")
        self.show(f"requested), and no run spends on {HUB} until its window resets. (The limit is lifted again.)")


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

"""The worlds of the warming benchmark (:mod:`bench.warm_bench`): the upstream, ecrcache, the naive loop.

* :class:`Upstream` -- a real ``docker-registry`` with Bearer-token auth (the stand-in for Docker Hub)
  behind :class:`~devstack.registry.FrontedRegistry`'s proxy, whose request log and counters are the
  measure of "upstream requests" and "upstream bytes"; seeded with :data:`IMAGE_COUNT` synthetic
  two-platform images whose layers have meaningful sizes (:func:`build_bench_index`).
* :class:`EcrcacheWarming` -- the production services and adapters wired in-process on the embedded AWS,
  as ``functions/api``, ``functions/warm_planner`` and ``functions/warm_worker`` wire them: a run is
  requested as ``POST /v1/warm-sets/{name}/runs`` does (:class:`WarmRunsService`), planned as the
  planner does for the request's stream record (:class:`WarmPlannerService`), and the warm queue (real
  SQS on moto) is drained ten messages at a time (the worker's ``BatchSize``) into
  :meth:`WarmWorkerService.handle`, as the worker's record handler does.
* :class:`NaiveLoop` -- what a team writes without ecrcache: every image, every platform, every run,
  a ``docker pull`` through ECR (``BatchGetImage`` by tag, the platform's child by digest, then
  ``GetDownloadUrlForLayer`` and a ``GET`` of every blob's URL: the bytes pass through the process).

:class:`Traffic` counts what a boto3 client does: calls by operation and the bytes of every HTTP
response body (botocore ``after-call``), plus the manifest bytes inside ``BatchGetImage`` answers.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import boto3
import moto
import requests
from pydantic import SecretStr

from bench.support import Traffic, one_rollback_copy_per_table
from devstack.aws import clock, ecr_pullthrough, events, install, ports, upstream
from devstack.aws.ports import AcceptingChecker
from devstack.registry import (
    AuthMode,
    Credentials,
    FrontedRegistry,
    RecordedRequest,
    Seeder,
    UpstreamMap,
)
from devstack.registry.images import (
    ALL_MANIFEST_MEDIA_TYPES,
    Blob,
    Descriptor,
    ImageBuild,
    IndexBuild,
    ManifestFormat,
    Platform,
)
from devstack.registry.ratelimit import RequestKind, classify
from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.ecr_warm import Boto3EcrWarmer
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.adapters.upstream_registry import OciUpstreamRegistry
from ecrcache.adapters.warm_queue import SqsWarmQueue
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_run import ImageOutcome, WarmRun
from ecrcache.models.warm_set import WarmSetSpec
from ecrcache.observability import metrics
from ecrcache.services.desired_state import DesiredStateService
from ecrcache.services.pull_stats import PullStatsService
from ecrcache.services.warm_planner import WarmPlannerService, WarmRequest
from ecrcache.services.warm_runs import WarmRunsService
from ecrcache.services.warm_worker import WarmWorkerService, task_from_body
from tests.template import table_definition

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_sqs import SQSClient

REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"  # moto's default account
TABLE: Final = "ecrcache-warm-bench"
ACTOR: Final = f"arn:aws:iam::{ACCOUNT_ID}:user/bench"
PREFIX: Final = "docker-hub"
UPSTREAM_HOST: Final = "registry-1.docker.io"
WARM_SET: Final = "bench"
CREDENTIALS: Final = Credentials("ecrcache-puller", "dckr_pat_bench-token")
PLATFORMS: Final = ("linux/amd64", "linux/arm64")
IMAGE_COUNT: Final = 50
LAYERS_PER_IMAGE: Final = 2
"""Layers of each platform's image (plus its config blob)."""
LAYER_BYTES: Final = (256 * 1024, 2 * 1024 * 1024)
"""Smallest and largest layer (compressed bytes); sizes are log-uniform in between, fixed by a seed."""
WORKER_BATCH: Final = 10
"""The warm worker's ``BatchSize`` (template.yaml): messages received and handled together."""
SEED: Final = 20261129


# --------------------------------------------------------------------------------------------------
# The synthetic images


def layer_size(repository: str, platform: str, index: int, generation: int) -> int:
    """A layer's size in bytes, log-uniform in :data:`LAYER_BYTES` (deterministic)."""
    low, high = LAYER_BYTES
    rng = random.Random(f"{SEED}|{repository}|{platform}|{index}|{generation}|size")
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


def _layer(repository: str, platform: str, index: int, generation: int) -> bytes:
    """A gzip tar with one file of random (incompressible) content: the compressed size is the size asked
    for, within the tar and gzip framing (stored, level 0, so building 100 MB of layers stays fast)."""
    size = layer_size(repository, platform, index, generation)
    content = random.Random(f"{SEED}|{repository}|{platform}|{index}|{generation}").randbytes(max(size - 1536, 1))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"opt/bench/layer{index}.bin")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=0, mtime=0)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=3).encode()


def build_bench_image(repository: str, tag: str, platform: str, generation: int) -> ImageBuild:
    """One platform's image: a config blob and :data:`LAYERS_PER_IMAGE` sized layers (Docker v2 media types)."""
    form, plat = ManifestFormat.DOCKER, Platform.parse(platform)
    layers = tuple(
        Blob(form.layer_media_type, _layer(repository, platform, i, generation)) for i in range(LAYERS_PER_IMAGE)
    )
    config = Blob(
        form.config_media_type,
        _json(
            {
                "architecture": plat.architecture,
                "os": plat.os,
                "created": "2026-01-01T00:00:00Z",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
                "history": [{"created_by": f"ecrcache warm bench {repository}:{tag} generation {generation}"}],
            }
        ),
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": form.manifest_media_type,
            "config": config.descriptor().as_json(),
            "layers": [layer.descriptor().as_json() for layer in layers],
        }
    )
    return ImageBuild(form.manifest_media_type, manifest, config, layers, plat)


def build_bench_index(repository: str, tag: str, generation: int = 0) -> IndexBuild:
    """A Docker manifest list of one image per :data:`PLATFORMS` (``generation`` changes every digest)."""
    form = ManifestFormat.DOCKER
    children = tuple(build_bench_image(repository, tag, p, generation) for p in PLATFORMS)
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": form.index_media_type,
            "manifests": [
                Descriptor(child.media_type, child.digest, len(child.manifest), child.platform).as_json()
                for child in children
            ],
        }
    )
    return IndexBuild(form.index_media_type, manifest, children)


@dataclass(frozen=True, slots=True)
class BenchImage:
    """One image of the warm set: its upstream repository and tag."""

    repository: str
    tag: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def ecr_repository(self) -> str:
        return f"{PREFIX}/{self.repository}"


def bench_images(count: int) -> list[BenchImage]:
    return [BenchImage(f"library/bench-{i:02d}", "1.0") for i in range(count)]


# --------------------------------------------------------------------------------------------------
# The upstream


@dataclass(frozen=True, slots=True)
class UpstreamTraffic:
    """What reached the upstream registry (through the proxy) during one run."""

    requests: tuple[RecordedRequest, ...]
    bytes_sent: int

    def count(self, kind: RequestKind, *, challenges: bool = False) -> int:
        """Requests of ``kind`` the registry answered (``challenges``: only its 401 auth challenges)."""
        return sum(
            1
            for r in self.requests
            if classify(r.method, r.path)[0] is kind and (r.status == 401) == challenges and r.fault is None
        )

    @property
    def manifest_requests(self) -> int:
        """Manifest GETs and HEADs answered (the auth challenges before a token are not counted)."""
        return self.count(RequestKind.MANIFEST_GET) + self.count(RequestKind.MANIFEST_HEAD)

    @property
    def challenges(self) -> int:
        """401 answers (the Bearer challenge a client meets before it asks the token server)."""
        return sum(1 for r in self.requests if r.status == 401)

    @property
    def other(self) -> int:
        """``/v2/`` pings and anything else that is neither a manifest nor a blob request (401s left out)."""
        return sum(1 for r in self.requests if classify(r.method, r.path)[0] is RequestKind.OTHER and r.status != 401)

    def manifest_requests_by_repository(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for r in self.requests:
            kind, repository = classify(r.method, r.path)
            if kind in {RequestKind.MANIFEST_GET, RequestKind.MANIFEST_HEAD} and r.status != 401 and repository:
                found[repository] += 1
        return found


class Upstream:
    """The Docker Hub stand-in: token-auth ``docker-registry`` behind the counting proxy, with the images."""

    def __init__(self, images: Sequence[BenchImage]) -> None:
        self.images = list(images)
        self.fronted = FrontedRegistry(auth=AuthMode.TOKEN, credentials=CREDENTIALS)
        self.generation: dict[str, int] = {}
        self.image_bytes = 0
        """Blob bytes (configs and layers) of every platform of every image, as first seeded."""

    def __enter__(self) -> Upstream:
        self.fronted.start()
        try:
            with Seeder.for_registry(self.fronted.registry) as seeder:
                for image in self.images:
                    build = build_bench_index(image.repository, image.tag)
                    seeder.push_build(image.repository, image.tag, build)
                    self.generation[image.reference] = 0
                    self.image_bytes += sum(blob.size for child in build.children for blob in child.blobs)
        except BaseException:
            self.fronted.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.fronted.stop()

    @property
    def proxy_url(self) -> str:
        return self.fronted.url

    def publish(self, image: BenchImage, generation: int) -> None:
        """Move ``image``'s tag to ``generation`` (a new digest for the index, its children and layers; going
        back to 0 pushes the first bytes again, so the tag is exactly as seeded)."""
        with Seeder.for_registry(self.fronted.registry) as seeder:
            seeder.push_build(image.repository, image.tag, build_bench_index(image.repository, image.tag, generation))
        self.generation[image.reference] = generation

    def reset(self) -> None:
        proxy = self.fronted.proxy
        assert proxy is not None
        proxy.clear_log()
        proxy.reset_counters()

    def traffic(self) -> UpstreamTraffic:
        proxy = self.fronted.proxy
        assert proxy is not None
        return UpstreamTraffic(tuple(proxy.requests), int(proxy.counters()["total"]["bytes"]))


# --------------------------------------------------------------------------------------------------
# Counting a client's calls and bytes


@dataclass(frozen=True)
class Sample:
    """What one run did."""

    upstream: UpstreamTraffic
    seconds: float
    ecr: Counter[str]
    ecr_bytes: int
    manifest_bytes: int
    layer_bytes: int = 0
    layer_gets: int = 0
    dynamodb: Counter[str] = field(default_factory=Counter)
    sqs: Counter[str] = field(default_factory=Counter)
    state_bytes: int = 0
    """Response bytes of the state table and the warm queue (not image bytes: reported apart)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    digests: dict[str, str] = field(default_factory=dict)
    """ECR repository -> the digest the run verified (ecrcache's outcomes)."""
    served_blob_bytes: int = 0
    """Blob bytes ECR's download URLs served during the run (to anyone: the warmer must take none)."""
    recorded_upstream_requests: int | None = None
    """Upstream requests the run recorded (the worker's own estimate), for comparison with the registry's."""

    @property
    def process_bytes(self) -> int:
        """Image bytes that passed through the warming process: ECR response bodies and downloaded blobs."""
        return self.ecr_bytes + self.layer_bytes


# --------------------------------------------------------------------------------------------------
# The embedded AWS


class Downloads:
    """Blob bytes the embedded ECR's download URLs serve (its ``LayerUrlServer.resolve``, wrapped)."""

    def __init__(self) -> None:
        self.bytes = 0
        self._lock = threading.Lock()

    def mark(self) -> int:
        """The count so far (a run subtracts it from the count at its end)."""
        with self._lock:
            return self.bytes

    @contextmanager
    def counting(self) -> Iterator[None]:
        server = ecr_pullthrough.layer_server()
        resolve = server.resolve

        def counted(raw_path: str) -> tuple[int, bytes]:
            status, body = resolve(raw_path)
            if status == 200:
                with self._lock:
                    self.bytes += len(body)
            return status, body

        server.resolve = counted  # type: ignore[method-assign]
        try:
            yield
        finally:
            del server.resolve


downloads = Downloads()


@contextmanager
def embedded_aws(upstream_url: str) -> Iterator[None]:
    """A fresh embedded AWS (moto + the ECR extension) whose Docker Hub is the bench's upstream proxy;
    layers imported during the pull (``immediate``), the fake clock at the system time."""
    install()
    events.clear_recent()
    clock.reset()
    # The embedded ECR keeps imported layer bytes in a process-wide store that outlives ``mock_aws()``;
    # a fresh world starts without them, or its first pulls would import nothing from the upstream.
    ecr_pullthrough._blobs = ecr_pullthrough._BlobStore()
    ports.set_upstream_auth_checker(AcceptingChecker())
    mapping = UpstreamMap({UPSTREAM_HOST: upstream_url})
    try:
        with (
            moto.mock_aws(),
            one_rollback_copy_per_table(),
            upstream.configured(upstream_map=mapping, timeout=10.0),
            ecr_pullthrough.layer_imports("immediate"),
            downloads.counting(),
        ):
            yield
    finally:
        ports.set_upstream_auth_checker(None)
        events.clear_recent()
        clock.reset()
        ecr_pullthrough._blobs = ecr_pullthrough._BlobStore()
        metrics.clear_metrics()


# --------------------------------------------------------------------------------------------------
# ecrcache


class EcrcacheWarming:
    """The warm set and its rule in the desired state, the ECR rule, and the warm path wired as deployed."""

    def __init__(self, up: Upstream, images: Sequence[BenchImage]) -> None:
        self.images = list(images)
        setup_dynamodb = boto3.client("dynamodb", region_name=REGION)  # setup writes: not counted
        setup_dynamodb.create_table(TableName=TABLE, **table_definition())
        secrets = boto3.client("secretsmanager", region_name=REGION)
        desired = DesiredStateService(
            DynamoDbStateStore(TABLE, setup_dynamodb), SecretsManagerStore(secrets), clock.now
        )
        credential = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": CREDENTIALS.username})
        desired.put_credential(PREFIX, credential, SecretStr(CREDENTIALS.password), actor=ACTOR)
        rule = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": PREFIX})
        desired.put_rule(PREFIX, rule, actor=ACTOR)
        self.budget_per_run = len(self.images) * (1 + len(PLATFORMS))
        spec = WarmSetSpec.model_validate(
            {
                "rule": PREFIX,
                "images": [image.reference for image in self.images],
                "platforms": list(PLATFORMS),
                "budget": {"max_upstream_requests_per_run": self.budget_per_run},
            }
        )
        desired.put_warm_set(WARM_SET, spec, actor=ACTOR)
        secret_arn = desired.get(ResourceKind.CREDENTIAL, PREFIX).secret_arn
        boto3.client("ecr", region_name=REGION).create_pull_through_cache_rule(
            ecrRepositoryPrefix=PREFIX, upstreamRegistryUrl=UPSTREAM_HOST, credentialArn=str(secret_arn)
        )
        metrics.clear_metrics()

        dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.sqs: SQSClient = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName="ecrcache-warm-bench")["QueueUrl"]
        self.warmer = Boto3EcrWarmer(REGION)
        self.dynamodb_traffic = Traffic(dynamodb, "dynamodb")
        self.sqs_traffic = Traffic(self.sqs, "sqs")
        self.ecr_traffic = Traffic(self.warmer.client, "ecr")
        self.upstream = up
        runs = DynamoDbWarmRunStore(TABLE, dynamodb)
        budget = DynamoDbUpstreamBudget(TABLE, dynamodb)
        state = DynamoDbStateStore(TABLE, dynamodb)
        self.api = WarmRunsService(desired=state, runs=runs, clock=clock.now)
        self.planner = WarmPlannerService(
            desired=state,
            runs=runs,
            budget=budget,
            queue=SqsWarmQueue(self.queue_url, self.sqs),
            tags=OciUpstreamRegistry(endpoints={UPSTREAM_HOST: up.proxy_url}, secrets=secrets, clock=clock.now),
            pulls=PullStatsService(DynamoDbPullStatsStore(TABLE, dynamodb), stack_region=REGION),
            clock=clock.now,
            stack_region=REGION,
        )
        self.worker = WarmWorkerService(store=runs, budget=budget, ecr=lambda _region: self.warmer, clock=clock.now)
        self.runs = runs

    def _reset(self) -> None:
        for traffic in (self.dynamodb_traffic, self.sqs_traffic, self.ecr_traffic):
            traffic.reset()
        self.upstream.reset()

    def run(self) -> tuple[Sample, WarmRun]:
        """One warm run, requested through the API path, planned, and its queue drained into the worker."""
        self._reset()
        served = downloads.mark()
        start = time.perf_counter()
        queued = self.api.request(WARM_SET, actor=ACTOR)
        self.planner.plan(self.planner.requested(WarmRequest(run_id=queued.run_id, warm_set=WARM_SET)))
        self._drain()
        seconds = time.perf_counter() - start
        metrics.clear_metrics()
        run = self.runs.get_run(WARM_SET, queued.run_id)
        assert run is not None, f"run {queued.run_id} was not recorded"
        recorded = list(self.runs.outcomes(run.run_id))
        sample = Sample(
            upstream=self.upstream.traffic(),
            seconds=seconds,
            ecr=Counter(self.ecr_traffic.calls),
            ecr_bytes=self.ecr_traffic.response_bytes,
            manifest_bytes=self.ecr_traffic.manifest_bytes,
            dynamodb=Counter(self.dynamodb_traffic.calls),
            sqs=Counter(self.sqs_traffic.calls),
            state_bytes=self.dynamodb_traffic.response_bytes + self.sqs_traffic.response_bytes,
            outcomes=Counter(o.outcome.value for o in recorded),
            digests={o.repository: o.digest for o in recorded if o.digest is not None},
            served_blob_bytes=downloads.bytes - served,
            recorded_upstream_requests=run.upstream_requests,
        )
        return sample, run

    def _drain(self) -> list[ImageOutcome]:
        """Every task on the warm queue, :data:`WORKER_BATCH` at a time, into the worker (as its handler)."""
        handled: list[ImageOutcome] = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=WORKER_BATCH).get(
            "Messages", []
        ):
            for message in messages:
                task = task_from_body(message["Body"])
                if task is not None:
                    handled.append(self.worker.handle(task))
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return handled


# --------------------------------------------------------------------------------------------------
# The naive baseline


class NaiveLoop:
    """A scheduled ``docker pull`` of every image and platform through ECR, every run (no freshness, no budget).

    Per image and platform, what ``docker pull --platform`` does against ECR's API: ``BatchGetImage`` of the
    tag (the index), ``BatchGetImage`` of the platform's child by digest, then for the config and each layer
    ``GetDownloadUrlForLayer`` and a ``GET`` of the URL -- every blob's bytes pass through the process (what
    ``docker pull`` and ``skopeo copy`` download). No local layer cache between runs (a fresh runner).
    """

    def __init__(self, up: Upstream, images: Sequence[BenchImage]) -> None:
        self.images = list(images)
        self.upstream = up
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=PREFIX,
            upstreamRegistryUrl=UPSTREAM_HOST,
            credentialArn=boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name=f"ecr-pullthroughcache/{PREFIX}",
                SecretString=json.dumps({"username": CREDENTIALS.username, "accessToken": CREDENTIALS.password}),
            )["ARN"],
        )
        self.ecr: ECRClient = boto3.client("ecr", region_name=REGION)
        self.traffic = Traffic(self.ecr, "ecr")
        self.http = requests.Session()

    def run(self) -> Sample:
        self.traffic.reset()
        self.upstream.reset()
        served = downloads.mark()
        downloaded = gets = 0
        start = time.perf_counter()
        for image in self.images:
            for platform in PLATFORMS:
                got, count = self._pull(image, platform)
                downloaded += got
                gets += count
        seconds = time.perf_counter() - start
        return Sample(
            upstream=self.upstream.traffic(),
            seconds=seconds,
            ecr=Counter(self.traffic.calls),
            ecr_bytes=self.traffic.response_bytes,
            manifest_bytes=self.traffic.manifest_bytes,
            layer_bytes=downloaded,
            layer_gets=gets,
            served_blob_bytes=downloads.bytes - served,
        )

    def _get_image(self, repository: str, image_id: dict[str, str]) -> dict[str, Any]:
        answer = self.ecr.batch_get_image(
            repositoryName=repository,
            imageIds=[image_id],  # type: ignore[list-item]
            acceptedMediaTypes=list(ALL_MANIFEST_MEDIA_TYPES),
        )
        if answer.get("failures") or not answer.get("images"):
            raise RuntimeError(f"naive pull of {repository} {image_id}: {answer.get('failures')}")
        manifest: dict[str, Any] = json.loads(answer["images"][0]["imageManifest"])
        return manifest

    def _pull(self, image: BenchImage, platform: str) -> tuple[int, int]:
        """One ``docker pull --platform``: (blob bytes downloaded, blob GETs)."""
        index = self._get_image(image.ecr_repository, {"imageTag": image.tag})
        wanted = Platform.parse(platform)
        child = next(
            m
            for m in index["manifests"]
            if (m["platform"]["os"], m["platform"]["architecture"]) == (wanted.os, wanted.architecture)
        )
        manifest = self._get_image(image.ecr_repository, {"imageDigest": child["digest"]})
        downloaded = gets = 0
        for blob in [manifest["config"], *manifest["layers"]]:
            url = self.ecr.get_download_url_for_layer(repositoryName=image.ecr_repository, layerDigest=blob["digest"])
            response = self.http.get(url["downloadUrl"], timeout=30)
            response.raise_for_status()
            if len(response.content) != blob["size"]:
                raise RuntimeError(f"{image.reference} {platform}: blob {blob['digest']} came with the wrong size")
            downloaded += len(response.content)
            gets += 1
        return downloaded, gets

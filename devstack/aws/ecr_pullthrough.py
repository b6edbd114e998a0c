"""The pull-through cache data plane for moto: ``BatchGetImage`` and ``GetDownloadUrlForLayer`` from real upstreams.

Spec: ecr-facts §3 (population, refresh), §4 (templates at creation), §5.2 (BatchGetImage shapes,
``ImageFailureCode``), §6.1/§6.3 (events) and §9 items 11-16. What a pull of
``<prefix>/<path>:<tag>`` does here, in order:

1. **Rule.** :func:`~.state.rule_for_repository` picks the rule (longest ECR prefix, else ``ROOT``);
   the upstream repository follows ``upstreamRepositoryPrefix`` (§1.5). No rule -> moto's own
   ``BatchGetImage`` (plus ``lastRecordedPullTime``).
2. **Credentials.** For secret-based rules the ``AWSCURRENT`` value of the rule's secret is read from
   moto's Secrets Manager; a missing/unreadable secret or one without ``username``/``accessToken`` is a
   whole-call ``UnableToGetUpstreamImageException`` ("usually caused by an issue with the Secrets
   Manager secret", botocore model).
3. **Repository.** Created when missing, with :func:`~.ecr_templates.best_matching_template` for
   ``PULL_THROUGH_CACHE`` applied (mutability, encryption, tags, repository policy, lifecycle
   policy); no template -> MUTABLE/AES256/nothing else. A template with resource tags or KMS and no
   ``customRoleArn`` makes creation fail and the pull answers ``RepositoryNotFoundException``
   (containers-roadmap#2398). Creation emits a CloudTrail-shaped ``CreateRepository`` event.
4. **Manifest.** Fetched from the upstream (:mod:`.upstream`) with every manifest ``Accept`` type;
   for an index every child is fetched and cached too (§3.4). Images are stored in moto with their
   **real** sha256 digest (``imageDigest`` passed to ``put_image``); children stay untagged.
5. **Layers** (config + layers of every image) are imported asynchronously: ``immediate`` mode
   fetches them during the pull, ``manual`` mode leaves them ``IN_PROGRESS`` until
   :func:`complete_imports` -- until then ``GetDownloadUrlForLayer`` answers
   ``LayerInaccessibleException``. A failed import is retried by the next ``GetDownloadUrlForLayer``
   and, failing again, answers ``UnableToGetUpstreamLayerException``.
6. **Refresh** (§3.2). Each tag remembers when it was last validated against the upstream (injectable
   :mod:`.clock`). A pull within 24 h is served from the cache without contacting the upstream; a
   later pull asks the upstream (``HEAD`` manifest), moves the tag to the new digest if it changed
   and the tag is mutable, and serves the cached image if the upstream fails.
7. **Events.** Every import or refresh attempt emits ``ECR Pull Through Cache Action`` (§6.1) with
   ``sync-status`` ``SUCCESS`` or a failure (``failure-code`` = the ``ImageFailureCode``);
   ``lastRecordedPullTime`` is set on every image served (``DescribeImages`` reports it) unless the
   caller is in the registry's pull-time update exclusions (:mod:`.ecr_exclusions`).
8. **CloudTrail.** Every ``BatchGetImage`` and ``GetDownloadUrlForLayer`` call -- through a rule or on
   a plain repository -- emits one ``AWS API Call via CloudTrail`` event, read-only (``readOnly: true``,
   ``responseElements: null``, ``errorCode``/``errorMessage`` when the call raised; a ``failures[]``
   entry is not an error), with the caller's identity and User-Agent (:func:`_pull_request_parameters`).
   Only EventBridge rules in ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` receive them.
9. **Archive.** An archived or restoring image (:mod:`.ecr_storage`) is a per-image ``ImageNotFound``
   (the guide's 404) and is neither refreshed nor re-imported [?].

Failures per image go to ``failures[]``: ``UpstreamAccessDenied`` (401/403), ``UpstreamTooManyRequests``
(429), ``UpstreamUnavailable`` (5xx, timeouts, unreachable), ``ImageNotFound`` (404 upstream, or an
uncached digest -- see below).

**Download URLs.** ``GetDownloadUrlForLayer`` returns a URL on a loopback HTTP endpoint of this process
(:class:`LayerUrlServer`, started on first use, in ``mock_aws()`` and in server mode alike), shaped like
a presigned URL and signed with a per-process key; ``GET`` on it returns the layer bytes. So a test or
the local stack can download a layer and check its digest, as a client does with the S3 URL.

Deliberate deviations and choices where ECR is silent (documented, not hidden): IAM is not
evaluated (``ecr:CreateRepository`` / ``ecr:BatchImportUpstreamImage`` are assumed granted);
``ecr`` (ECR-to-ECR) upstreams are pulled anonymously
from their mapped URL instead of with the role; ``imageSizeInBytes`` stays moto's (config size);
a failed ``sync-status`` is ``FAILED``; any pull through a rule creates the missing repository
(also a digest pull that then answers ``ImageNotFound``), and a template-driven creation that fails
emits no event; a secret problem is read lazily (only when the upstream must be asked), so cached
images within 24 h are served even with a broken secret; a failed refresh does not reset the
24-hour window (the next pull asks again); an index requested by a client that accepts no index
type gets its ``linux/amd64`` child, as distribution does [?]; the CloudTrail ``requestID`` is a fresh
uuid, not the response's ``x-amzn-RequestId`` (moto makes that one after the handler returns); the pulls
the pull-through service itself makes upstream leave no CloudTrail event.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote, urlsplit

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.exceptions import RepositoryNotFoundException
from moto.ecr.models import ECRBackend, Image, Repository, ecr_backends
from moto.secretsmanager.models import secretsmanager_backends

from devstack.aws import clock, events
from devstack.aws.common import (
    EcrError,
    InvalidParameterException,
    UnableToGetUpstreamImageException,
    UnableToGetUpstreamLayerException,
    add_response_action,
    request_params,
    validate_input,
    wrap_response_action,
)
from devstack.aws.ecr_exclusions import is_excluded
from devstack.aws.ecr_lifecycle import repository_elements
from devstack.aws.ecr_storage import is_pullable
from devstack.aws.ecr_templates import best_matching_template
from devstack.aws.state import (
    EcrExtState,
    PullThroughCacheRule,
    TagValidation,
    ext_state,
    image_ext,
    pull_through_repo,
    rule_for_repository,
    upstream_repository_name,
)
from devstack.aws.upstream import (
    FetchedManifest,
    UpstreamClient,
    UpstreamCredentials,
    UpstreamFailure,
)
from devstack.registry.images import INDEX_MEDIA_TYPES, parse_digest

__all__ = [
    "PTC_DETAIL_TYPE",
    "PULL_THROUGH_SERVICE",
    "REFRESH_WINDOW",
    "LayerImportMode",
    "LayerInaccessibleException",
    "LayerUrlServer",
    "LayersNotFoundException",
    "complete_imports",
    "install",
    "layer_import_mode",
    "layer_imports",
    "layer_server",
    "pending_imports",
    "set_layer_import_mode",
]

PTC_DETAIL_TYPE: Final = "ECR Pull Through Cache Action"
#: The service principal of ECR pull-through cache (its service-linked role's trusted principal, ecr-facts §1.7).
PULL_THROUGH_SERVICE: Final = "pullthroughcache.ecr.amazonaws.com"
#: ecr-facts §3.2: a cached tag is re-validated against the upstream at most once per 24 hours.
REFRESH_WINDOW: Final = timedelta(hours=24)
#: ``sync-status`` of a failed attempt. Only ``SUCCESS`` is documented (ecr-facts §6.1); this value is ours.
FAILED_STATUS: Final = "FAILED"
_DEFAULT_PLATFORM: Final = ("linux", "amd64")  # what distribution serves from a list to a list-unaware client
_URL_TTL_SECONDS: Final = 3600
_MAX_BLOB_STORE_BYTES: Final = 512 * 1024 * 1024


class LayerInaccessibleException(EcrError):
    """The layer is not available (yet): still importing from the upstream (botocore error shape)."""

    code = "LayerInaccessibleException"


class LayersNotFoundException(EcrError):
    """The layer is not referenced by any image of the repository (botocore error shape)."""

    code = "LayersNotFoundException"


class _ImageTagAlreadyExists(EcrError):
    """PutImage's error for an immutable tag; used as the failure of a refused refresh (see ``_refresh``)."""

    code = "ImageTagAlreadyExistsException"


# --------------------------------------------------------------------------------------------------
# Layer import policy (tests control the timing)
# --------------------------------------------------------------------------------------------------


class LayerImportMode(StrEnum):
    IMMEDIATE = "immediate"  # layers are fetched during the pull (the default)
    MANUAL = "manual"  # layers stay IN_PROGRESS until complete_imports()


_mode_lock = threading.Lock()
_mode = LayerImportMode.IMMEDIATE


def layer_import_mode() -> LayerImportMode:
    with _mode_lock:
        return _mode


def set_layer_import_mode(mode: LayerImportMode | str) -> LayerImportMode:
    """Set the process-wide layer import mode; returns the previous one."""
    global _mode
    with _mode_lock:
        previous, _mode = _mode, LayerImportMode(mode)
    return previous


@contextlib.contextmanager
def layer_imports(mode: LayerImportMode | str) -> Iterator[None]:
    """``with layer_imports("manual"): ...`` -- restores the previous mode on exit."""
    previous = set_layer_import_mode(mode)
    try:
        yield
    finally:
        set_layer_import_mode(previous)


# --------------------------------------------------------------------------------------------------
# Layer bytes and their download URLs
# --------------------------------------------------------------------------------------------------


class _BlobStore:
    """Content-addressed bytes of imported layers (bounded; oldest evicted first)."""

    def __init__(self, limit: int = _MAX_BLOB_STORE_BYTES) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        self._size = 0
        self._limit = limit

    def put(self, digest: str, data: bytes) -> None:
        with self._lock:
            if digest in self._blobs:
                return
            self._blobs[digest] = data
            self._size += len(data)
            while self._size > self._limit and len(self._blobs) > 1:
                oldest = next(iter(self._blobs))
                self._size -= len(self._blobs.pop(oldest))

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(digest)

    def __contains__(self, digest: object) -> bool:
        with self._lock:
            return digest in self._blobs


_blobs = _BlobStore()


class LayerUrlServer:
    """A loopback HTTP endpoint serving imported layers at presigned-looking URLs.

    ``http://127.0.0.1:<port>/<account>/<region>/<repository>/blobs/<digest>?X-Amz-Expires=3600&
    X-Amz-Date=<epoch>&X-Amz-Signature=<hmac>`` -- the signature is an HMAC of the path and date with
    a per-process key, checked on ``GET``; expiry follows the injectable clock.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _sign(self, path: str, date: str) -> str:
        return hmac.new(self._key, f"{path}\n{date}".encode(), hashlib.sha256).hexdigest()

    def _ensure_started(self) -> str:
        with self._lock:
            if self._server is None:
                server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
                server.daemon_threads = True
                self._server = server
                self._thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name="ecrcache-layer-urls",
                    daemon=True,
                )
                self._thread.start()
            host, port = self._server.server_address[:2]
            return f"http://{host!s}:{port}"

    def url_for(self, account_id: str, region: str, repository_name: str, digest: str) -> str:
        base = self._ensure_started()
        path = f"/{account_id}/{region}/{quote(repository_name)}/blobs/{digest}"
        date = str(int(clock.epoch_seconds()))
        return (
            f"{base}{path}?X-Amz-Expires={_URL_TTL_SECONDS}&X-Amz-Date={date}&X-Amz-Signature={self._sign(path, date)}"
        )

    def resolve(self, raw_path: str) -> tuple[int, bytes]:
        """(status, body) for a ``GET`` of a URL made by :meth:`url_for`."""
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        date = (query.get("X-Amz-Date") or [""])[0]
        signature = (query.get("X-Amz-Signature") or [""])[0]
        if not date.isdigit() or not hmac.compare_digest(signature, self._sign(parts.path, date)):
            return 403, b"SignatureDoesNotMatch"
        if clock.epoch_seconds() > int(date) + _URL_TTL_SECONDS:
            return 403, b"Request has expired"
        digest = unquote(parts.path.rsplit("/", 1)[-1])
        data = _blobs.get(digest)
        return (200, data) if data is not None else (404, b"NoSuchKey")

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


def _handler_for(owner: LayerUrlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            status, body = owner.resolve(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


_layer_server = LayerUrlServer()


def layer_server() -> LayerUrlServer:
    """The process-wide download-URL endpoint (started on first ``GetDownloadUrlForLayer``)."""
    return _layer_server


# --------------------------------------------------------------------------------------------------
# One pull through one rule
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pull:
    backend: ECRBackend
    state: EcrExtState
    rule: PullThroughCacheRule
    repository_name: str
    upstream_repository: str
    credentials: UpstreamCredentials | None = None

    @property
    def account_id(self) -> str:
        return str(self.backend.account_id)

    @property
    def region(self) -> str:
        return str(self.backend.region_name)

    @property
    def repository_arn(self) -> str:
        repository = self.backend.repositories.get(self.repository_name)
        if repository is not None:
            return str(repository.arn)
        return f"arn:aws:ecr:{self.region}:{self.account_id}:repository/{self.repository_name}"

    def client(self) -> UpstreamClient:
        """An upstream client with the rule's credentials, read from the secret on first use."""
        if self.rule.credential_arn and self.credentials is None:
            self.credentials = _read_credentials(self.backend, self.rule.credential_arn)
        return UpstreamClient(self.rule.upstream_registry_url, self.credentials)


_repo_locks: dict[tuple[str, str, str], threading.Lock] = {}
_repo_locks_guard = threading.Lock()


def _repo_lock(pull: _Pull) -> threading.Lock:
    """Serialises imports into one repository (two concurrent first pulls import once)."""
    key = (pull.account_id, pull.region, pull.repository_name)
    with _repo_locks_guard:
        return _repo_locks.setdefault(key, threading.Lock())


def _read_credentials(backend: ECRBackend, credential_arn: str) -> UpstreamCredentials:
    """``{"username","accessToken"}`` of the ``AWSCURRENT`` version (ecr-facts §2)."""
    try:
        sm = secretsmanager_backends[backend.account_id][backend.region_name]
        value = sm.get_secret_value(credential_arn, None, "AWSCURRENT")  # type: ignore[arg-type]
        data = json.loads(value.get("SecretString") or "")
    except Exception as exc:  # any secret problem fails the whole call, as ECR does
        code = getattr(exc, "code", None) or type(exc).__name__
        raise UnableToGetUpstreamImageException(
            f"Unable to retrieve the upstream registry credentials from secret '{credential_arn}' ({code}). "
            "Verify the secret exists and contains valid credentials."
        ) from exc
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data[k] for k in ("username", "accessToken")
    ):
        raise UnableToGetUpstreamImageException(
            f"The secret '{credential_arn}' must contain a JSON object with the keys 'username' and 'accessToken'."
        )
    return UpstreamCredentials(str(data["username"]), str(data["accessToken"]))


def _start_pull(backend: ECRBackend, repository_name: str) -> _Pull | None:
    state = ext_state(backend)
    rule = rule_for_repository(state, repository_name)
    if rule is None:
        return None
    return _Pull(backend, state, rule, repository_name, upstream_repository_name(rule, repository_name))


# --------------------------------------------------------------------------------------------------
# Repository creation (templates, CloudTrail)
# --------------------------------------------------------------------------------------------------


def _ensure_repository(pull: _Pull) -> Repository:
    """The cache repository, created with the best-matching PULL_THROUGH_CACHE template when missing."""
    existing = pull.backend.repositories.get(pull.repository_name)
    if existing is not None:
        return existing
    template = best_matching_template(pull.state, pull.repository_name, "PULL_THROUGH_CACHE")
    encryption = dict(template.encryption_configuration or {}) if template else {}
    tags = [dict(t) for t in template.resource_tags] if template else []
    needs_role = bool(tags) or encryption.get("encryptionType", "AES256") != "AES256"
    if template is not None and needs_role and not template.custom_role_arn:
        # containers-roadmap#2398: with resource tags or KMS the template needs a repository creation
        # role; without one creation fails and the pull answers "not found" (ecr-facts §4).
        raise RepositoryNotFoundException(pull.repository_name, pull.account_id)
    repository = pull.backend.create_repository(
        repository_name=pull.repository_name,
        registry_id=None,
        encryption_config=encryption or None,  # type: ignore[arg-type]
        image_scan_config=None,
        image_tag_mutability=template.image_tag_mutability if template else "MUTABLE",
        tags=tags,
        image_tag_mutability_exclusion_filters=(
            template.image_tag_mutability_exclusion_filters if template else None  # type: ignore[arg-type]
        ),
    )
    if template is not None and template.repository_policy:
        pull.backend.set_repository_policy(pull.account_id, pull.repository_name, template.repository_policy)
    if template is not None and template.lifecycle_policy:
        pull.backend.put_lifecycle_policy(pull.account_id, pull.repository_name, template.lifecycle_policy)
    pull_through_repo(pull.state, pull.repository_name, pull.rule.ecr_repository_prefix).created_by_pull_through = True
    _emit_create_repository(pull, repository, template_prefix=template.prefix if template else None)
    return repository


def _emit_create_repository(pull: _Pull, repository: Repository, template_prefix: str | None) -> None:
    request: dict[str, Any] = {
        "repositoryName": repository.name,
        "imageTagMutability": repository.image_tag_mutability,
        "encryptionConfiguration": repository.encryption_configuration,
    }
    tags = pull.backend.list_tags_for_resource(repository.arn).get("tags") or []
    if tags:
        request["tags"] = tags
    detail = events.cloudtrail_event(
        pull.account_id,
        pull.region,
        "CreateRepository",
        request,
        {"repository": repository_elements(repository)},
        f"arn:aws:iam::{pull.account_id}:role/aws-service-role/{PULL_THROUGH_SERVICE}/AWSServiceRoleForECRPullThroughCache",
        user_agent=PULL_THROUGH_SERVICE,
        source_ip=PULL_THROUGH_SERVICE,
    )
    # ASSUMED, not documented (ecr-facts §6.3 marks the identity of PTC-initiated creates [?]): CloudTrail's
    # convention for calls an AWS service makes on its own is userIdentity {"type": "AWSService",
    # "invokedBy": "<service principal>"} with the principal as sourceIPAddress and userAgent.
    detail["userIdentity"] = {"type": "AWSService", "invokedBy": PULL_THROUGH_SERVICE}
    if template_prefix is not None:
        detail["additionalEventData"] = {"repositoryCreationTemplatePrefix": template_prefix}
    events.emit(
        pull.account_id, pull.region, source="aws.ecr", detail_type=events.CLOUDTRAIL_DETAIL_TYPE, detail=detail
    )


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------


def _emit_sync(pull: _Pull, *, tag: str | None, digest: str | None, failure: UpstreamFailure | EcrError | None) -> None:
    """One ``ECR Pull Through Cache Action`` event per import or refresh attempt (ecr-facts §6.1)."""
    detail: dict[str, Any] = {
        "sync-status": "SUCCESS" if failure is None else FAILED_STATUS,
        "ecr-repository-prefix": pull.rule.ecr_repository_prefix,
        "repository-name": pull.repository_name,
        "upstream-registry-url": pull.rule.upstream_registry_url,
    }
    if tag is not None:
        detail["image-tag"] = tag
    if digest is not None:
        detail["image-digest"] = digest
    if isinstance(failure, UpstreamFailure):
        detail["failure-code"] = failure.failure_code
        detail["failure-reason"] = failure.reason
    elif failure is not None:
        detail["failure-code"] = failure.code
        detail["failure-reason"] = failure.message
    events.emit(
        pull.account_id,
        pull.region,
        source="aws.ecr",
        detail_type=PTC_DETAIL_TYPE,
        detail=detail,
        resources=[pull.repository_arn],
    )


# --------------------------------------------------------------------------------------------------
# Importing images and layers
# --------------------------------------------------------------------------------------------------


def _find_image(repository: Repository, *, digest: str | None = None, tag: str | None = None) -> Image | None:
    for image in repository.images:
        if digest is not None and image.get_image_digest() != digest:
            continue
        if tag is not None and tag not in image.image_tags:
            continue
        return image
    return None


def _detach_tag(repository: Repository, tag: str) -> None:
    """Move ``tag`` off whatever image carries it; that image stays, untagged if it was its last tag (as in ECR)."""
    for image in repository.images:
        if tag in image.image_tags:
            image.image_tags.remove(tag)
            image.image_tag = image.image_tags[-1] if image.image_tags else None  # type: ignore[assignment]


def _store(pull: _Pull, repository: Repository, manifest: FetchedManifest, tag: str | None) -> Image:
    """Put one manifest into moto under its real digest (and ``tag``, moved from any other image)."""
    existing = _find_image(repository, digest=manifest.digest)
    if tag is not None:
        _detach_tag(repository, tag)
    if existing is not None:
        if tag is not None and tag not in existing.image_tags:
            existing.update_tag(tag)
        return existing
    image: Image = pull.backend.put_image(
        repository_name=repository.name,
        image_manifest=manifest.body.decode(),
        image_tag=tag,  # type: ignore[arg-type]
        image_manifest_mediatype=manifest.media_type,
        digest=manifest.digest,
    )
    if tag is None:
        image.image_tag = None  # type: ignore[assignment]
    return image


def _import(pull: _Pull, repository: Repository, tag: str) -> Image:
    """Fetch ``tag`` (and every child of an index) from the upstream and cache it; raises UpstreamFailure."""
    with pull.client() as client:
        top = client.get_manifest(pull.upstream_repository, tag)
        children = [client.get_manifest(pull.upstream_repository, child.digest) for child in top.children]
    with pull.state.lock:
        for child in children:
            _store(pull, repository, child, None)
        image = _store(pull, repository, top, tag)
        record = pull_through_repo(pull.state, pull.repository_name, pull.rule.ecr_repository_prefix)
        record.tags[tag] = TagValidation(last_validated_at=clock.now(), upstream_digest=top.digest)
        blobs = list(dict.fromkeys(d.digest for m in (top, *children) for d in m.blobs))
        for digest in blobs:
            if record.layer_imports.get(digest) != "COMPLETE":
                record.layer_imports[digest] = "IN_PROGRESS"
    if layer_import_mode() is LayerImportMode.IMMEDIATE:
        for digest in blobs:
            _import_layer(pull, digest)
    return image


def _import_layer(pull: _Pull, digest: str) -> bool:
    """Fetch one blob from the upstream into the blob store; True when the layer is now COMPLETE."""
    record = pull_through_repo(pull.state, pull.repository_name, pull.rule.ecr_repository_prefix)
    ok = digest in _blobs
    if not ok:
        try:
            with pull.client() as client:
                _blobs.put(digest, client.get_blob(pull.upstream_repository, digest))
            ok = True
        except (UpstreamFailure, UnableToGetUpstreamImageException):
            ok = False
    with pull.state.lock:
        record.layer_imports[digest] = "COMPLETE" if ok else "FAILED"
    return ok


def complete_imports(repository_name: str | None = None) -> int:
    """Finish every ``IN_PROGRESS`` (or ``FAILED``) layer import, in every live ECR backend; returns how many."""
    done = 0
    for account_backends in list(ecr_backends.values()):
        for backend in list(account_backends.values()):
            state = ext_state(backend)
            with state.lock:
                records = [r for r in state.pull_through.values() if repository_name in (None, r.repository_name)]
            for record in records:
                pull = _start_pull(backend, record.repository_name)
                if pull is None:
                    continue
                with state.lock:
                    waiting = [d for d, s in record.layer_imports.items() if s in ("IN_PROGRESS", "PENDING", "FAILED")]
                done += sum(_import_layer(pull, digest) for digest in waiting)
    return done


def pending_imports() -> list[tuple[str, str]]:
    """``(repositoryName, layerDigest)`` of every layer still importing, in every live backend."""
    pending: list[tuple[str, str]] = []
    for account_backends in list(ecr_backends.values()):
        for backend in list(account_backends.values()):
            state = ext_state(backend)
            with state.lock:
                for record in state.pull_through.values():
                    pending.extend(
                        (record.repository_name, d)
                        for d, s in record.layer_imports.items()
                        if s in ("IN_PROGRESS", "PENDING")
                    )
    return pending


# --------------------------------------------------------------------------------------------------
# Serving: refresh, media types, pull time
# --------------------------------------------------------------------------------------------------


def _tag_is_mutable(repository: Repository, tag: str) -> bool:
    mutability = str(getattr(repository.image_tag_mutability, "value", repository.image_tag_mutability))
    filters = [f.get("filter", "") for f in (repository.image_tag_mutability_exclusion_filters or [])]
    excluded = any(fnmatch.fnmatchcase(tag, f) for f in filters)
    if mutability == "IMMUTABLE":
        return False
    if mutability == "IMMUTABLE_WITH_EXCLUSION":
        return excluded
    if mutability == "MUTABLE_WITH_EXCLUSION":
        return not excluded
    return True


def _last_validated(pull: _Pull, image: Image, tag: str) -> datetime | None:
    record = pull.state.pull_through.get(pull.repository_name)
    validation = record.tags.get(tag) if record is not None else None
    if validation is not None:
        return validation.last_validated_at
    return image_ext(pull.state, pull.repository_name, image.get_image_digest()).pushed_at


def _refresh(pull: _Pull, repository: Repository, image: Image, tag: str) -> Image:
    """ecr-facts §3.2: after 24 h ask the upstream; move the tag if it changed (mutable tags only)."""
    validated = _last_validated(pull, image, tag)
    now = clock.now()
    if validated is not None and now - validated < REFRESH_WINDOW:
        return image
    try:
        with pull.client() as client:
            upstream_digest, _ = client.head_manifest(pull.upstream_repository, tag)
    except (UpstreamFailure, UnableToGetUpstreamImageException) as failure:
        # "If upstream is unreachable the last cached image is served" -- and the next pull tries again.
        _emit_sync(pull, tag=tag, digest=image.get_image_digest(), failure=failure)
        return image
    record = pull_through_repo(pull.state, pull.repository_name, pull.rule.ecr_repository_prefix)
    if upstream_digest and upstream_digest == image.get_image_digest():
        with pull.state.lock:
            record.tags[tag] = TagValidation(last_validated_at=now, upstream_digest=upstream_digest)
        _emit_sync(pull, tag=tag, digest=upstream_digest, failure=None)
        return image
    if not _tag_is_mutable(repository, tag):
        # ecr-facts §3.2: IMMUTABLE prevents ECR from updating a cached tag. The event for this case is
        # not documented; we report it as a failed sync with PutImage's error code [?].
        with pull.state.lock:
            record.tags[tag] = TagValidation(last_validated_at=now, upstream_digest=upstream_digest or None)
        refused = _ImageTagAlreadyExists(
            f"The image tag '{tag}' already exists in the '{pull.repository_name}' repository "
            "and cannot be overwritten because the tag is immutable."
        )
        _emit_sync(pull, tag=tag, digest=upstream_digest or None, failure=refused)
        return image
    try:
        fresh = _import(pull, repository, tag)
    except UpstreamFailure as failure:
        _emit_sync(pull, tag=tag, digest=image.get_image_digest(), failure=failure)
        return image
    _emit_sync(pull, tag=tag, digest=fresh.get_image_digest(), failure=None)
    return fresh


def _acceptable(repository: Repository, image: Image, accepted: list[str] | None) -> Image | None:
    """The image itself if its media type is accepted; for an index, the linux/amd64 child if that is.

    ECR's handling of an index for a client that does not accept index types is undocumented [?]; we
    do what distribution does for list-unaware clients (serve the default platform's manifest).
    """
    media_type = image.image_manifest_media_type or ""
    if not accepted or media_type in accepted:
        return image
    if media_type in INDEX_MEDIA_TYPES:
        for entry in json.loads(image.image_manifest).get("manifests", []):
            platform = entry.get("platform") or {}
            if (platform.get("os"), platform.get("architecture")) == _DEFAULT_PLATFORM and entry.get(
                "mediaType"
            ) in accepted:
                return _find_image(repository, digest=entry.get("digest"))
    return None


def _record_pull(pull_state: EcrExtState, repository_name: str, image: Image, *, excluded: bool) -> None:
    """``lastRecordedPullTime`` (ecr-facts §5.2/§9.15), on the extension record and on moto's image.

    Not for a caller in the registry's pull-time update exclusions (``ecr_exclusions``): "When a role in
    the exclusion list pulls an image, the pull time remains unchanged" (ECR User Guide).
    """
    if excluded:
        return
    now = clock.now().replace(microsecond=0)
    image_ext(pull_state, repository_name, image.get_image_digest()).last_recorded_pull_time = now
    image.last_recorded_pull_time = now  # type: ignore[attr-defined]  # serialised by moto as lastRecordedPullTime


def _image_entry(repository: Repository, image: Image, image_id: dict[str, str]) -> dict[str, Any]:
    served_id = {"imageDigest": image.get_image_digest()}
    if image_id.get("imageTag") and image_id["imageTag"] in image.image_tags:
        served_id["imageTag"] = image_id["imageTag"]
    return {
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
        "imageId": served_id,
        "imageManifest": image.image_manifest,
        "imageManifestMediaType": image.image_manifest_media_type,
    }


def _failure(image_id: dict[str, str], code: str, reason: str) -> dict[str, Any]:
    return {"imageId": dict(image_id), "failureCode": code, "failureReason": reason}


def _check_image_id(image_id: dict[str, str]) -> dict[str, Any] | None:
    """Per-image request problems, as ECR reports them in ``failures[]``."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if not digest and not tag:
        return _failure(
            image_id, "MissingDigestAndTag", "Invalid request parameters: both tag and digest cannot be null"
        )
    if digest:
        try:
            parse_digest(digest)
        except ValueError:
            return _failure(
                image_id, "InvalidImageDigest", f"Invalid request parameters: image digest '{digest}' is invalid"
            )
    return None


# --------------------------------------------------------------------------------------------------
# BatchGetImage
# --------------------------------------------------------------------------------------------------


class _ImageFailed(Exception):
    """One image id of a BatchGetImage failed: ``failures[]`` gets ``entry``."""

    def __init__(self, image_id: dict[str, str], code: str, reason: str) -> None:
        super().__init__(reason)
        self.entry = _failure(image_id, code, reason)


_TAG_DIGEST_MISMATCH: Final = "Invalid request parameters: the image tag does not match the digest"
_NOT_FOUND: Final = "Requested image not found"


def _resolve(pull: _Pull, repository: Repository, image_id: dict[str, str]) -> Image:
    """The cached image for ``image_id``: imported on first pull by tag, refreshed after 24 h."""
    tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
    with pull.state.lock:
        cached = _find_image(repository, digest=digest, tag=tag)
        known_digest = digest is not None and _find_image(repository, digest=digest) is not None
    if cached is None and tag is not None and known_digest:
        raise _ImageFailed(image_id, "ImageTagDoesNotMatchDigest", _TAG_DIGEST_MISMATCH)
    if cached is not None and not is_pullable(pull.state, pull.repository_name, cached.get_image_digest()):
        # An archived (or restoring) image answers 404 and is not refreshed (ecr_storage) [?].
        raise _ImageFailed(image_id, "ImageNotFound", _NOT_FOUND)
    if cached is not None:
        return _refresh(pull, repository, cached, tag) if tag is not None and digest is None else cached
    if tag is None:
        # REPORTED, not documented (aws/containers-roadmap#2837): a first pull *by digest* of an image
        # that is not cached yet answers not-found; users warm by tag first, then pin the digest.
        raise _ImageFailed(image_id, "ImageNotFound", _NOT_FOUND)
    try:
        imported = _import(pull, repository, tag)
    except UnableToGetUpstreamImageException as exc:
        _emit_sync(pull, tag=tag, digest=digest, failure=exc)
        raise  # a secret problem fails the whole call (botocore model)
    except UpstreamFailure as failure:
        _emit_sync(pull, tag=tag, digest=digest, failure=failure)
        raise _ImageFailed(image_id, failure.failure_code, failure.reason) from failure
    _emit_sync(pull, tag=tag, digest=imported.get_image_digest(), failure=None)
    if digest is not None and imported.get_image_digest() != digest:
        raise _ImageFailed(image_id, "ImageTagDoesNotMatchDigest", _TAG_DIGEST_MISMATCH)
    return imported


def _pull_one(pull: _Pull, image_id: dict[str, str], accepted: list[str] | None, *, excluded: bool) -> dict[str, Any]:
    """Serve one image id of a BatchGetImage through the rule: ``{"image": ...}`` or ``{"failure": ...}``."""
    problem = _check_image_id(image_id)
    if problem is not None:
        return {"failure": problem}
    repository = _ensure_repository(pull)
    try:
        cached = _resolve(pull, repository, image_id)
    except _ImageFailed as failed:
        return {"failure": failed.entry}
    served = _acceptable(repository, cached, accepted)
    if served is None:
        reason = f"Requested image not found in any of the accepted media types ({', '.join(accepted or [])})"
        return {"failure": _failure(image_id, "ImageNotFound", reason)}
    if not is_pullable(pull.state, pull.repository_name, served.get_image_digest()):
        return {"failure": _failure(image_id, "ImageNotFound", _NOT_FOUND)}  # an archived child of an index
    _record_pull(pull.state, pull.repository_name, served, excluded=excluded)
    return {"image": _image_entry(repository, served, image_id)}


def _batch_get_image_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    def batch_get_image(self: Any) -> ActionResult:
        params = request_params(self)
        identity = events.request_identity(self)
        try:
            validate_input("BatchGetImage", params)
            result = _batch_get_image(self, original, params, identity)
        except ServiceException as exc:
            _emit_pull_call(self, "BatchGetImage", params, identity, exc)
            raise
        # One event per call; per-image failures inside a successful call are not an errorCode.
        _emit_pull_call(self, "BatchGetImage", params, identity, None)
        return result

    return batch_get_image


def _batch_get_image(
    response: Any, original: Callable[..., Any], params: dict[str, Any], identity: events.CallerIdentity
) -> ActionResult:
    backend: ECRBackend = response.ecr_backend
    excluded = is_excluded(ext_state(backend), identity)
    registry_id = params.get("registryId")
    pull = _start_pull(backend, str(params.get("repositoryName", "")))
    if pull is None or registry_id not in (None, backend.account_id):
        result = original(response)
        _serve_plain(backend, params, result, excluded=excluded)
        return result  # type: ignore[no-any-return]
    accepted = params.get("acceptedMediaTypes") or None
    images: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    with _repo_lock(pull):
        for image_id in params.get("imageIds") or []:
            outcome = _pull_one(pull, dict(image_id), accepted, excluded=excluded)
            if "image" in outcome:
                images.append(outcome["image"])
            else:
                failures.append(outcome["failure"])
    return ActionResult({"images": images, "failures": failures})


def _serve_plain(backend: ECRBackend, params: dict[str, Any], result: Any, *, excluded: bool) -> None:
    """moto's answer for a repository without a rule: archived images become failures; pull times recorded."""
    payload = result.result if isinstance(result, ActionResult) else None
    if not isinstance(payload, dict):
        return
    state = ext_state(backend)
    requested_tags = {str(i["imageTag"]) for i in params.get("imageIds") or [] if i.get("imageTag")}
    served: list[Any] = []
    for image in payload.get("images", []):
        if not isinstance(image, Image):
            served.append(image)
        elif is_pullable(state, image.repository_name, image.get_image_digest()):
            _record_pull(state, image.repository_name, image, excluded=excluded)
            served.append(image)
        else:
            image_id = {"imageDigest": image.get_image_digest()}
            tags = sorted(requested_tags.intersection(image.image_tags))
            if tags:
                image_id["imageTag"] = tags[0]
            payload.setdefault("failures", []).append(_failure(image_id, "ImageNotFound", _NOT_FOUND))
    payload["images"] = served


def _pull_request_parameters(account_id: str, event_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``requestParameters`` as CloudTrail logs a pull's calls.

    BatchGetImage: the ECR User Guide's example ("Logging Amazon ECR actions with AWS CloudTrail", image
    pull) logs ``imageIds``, ``acceptedMediaTypes``, ``repositoryName`` and ``registryId`` -- the registry
    id also for a docker pull, which names none, so the fake fills in the caller's registry. No example of
    GetDownloadUrlForLayer was found; it is logged the same way with its own members
    (``registryId``, ``repositoryName``, ``layerDigest``) [?]. ``acceptedMediaTypes`` only when sent [?].
    """
    logged: dict[str, Any] = {
        "registryId": str(params.get("registryId") or account_id),
        "repositoryName": params.get("repositoryName"),
    }
    if event_name == "BatchGetImage":
        logged["imageIds"] = params.get("imageIds")
        if params.get("acceptedMediaTypes") is not None:
            logged["acceptedMediaTypes"] = params.get("acceptedMediaTypes")
    else:
        logged["layerDigest"] = params.get("layerDigest")
    return logged


def _emit_pull_call(
    response: Any,
    event_name: str,
    params: dict[str, Any],
    identity: events.CallerIdentity,
    error: ServiceException | None,
) -> None:
    """The read-only CloudTrail event of a pull's call (``responseElements: null``, as the guide's example)."""
    account_id, region = str(response.current_account), str(response.region)
    logged = _pull_request_parameters(account_id, event_name, params)
    registry = str(logged["registryId"])
    arn = f"arn:{events.partition_for(region)}:ecr:{region}:{registry}:repository/{params.get('repositoryName', '')}"
    events.emit_api_call(
        response,
        event_name,
        logged,
        None,
        error_code=error.code if error is not None else None,
        error_message=error.message if error is not None else None,
        read_only=True,
        resources=[{"ARN": arn, "accountId": registry}],
        identity=identity,
    )


# --------------------------------------------------------------------------------------------------
# GetDownloadUrlForLayer
# --------------------------------------------------------------------------------------------------


def _referenced(repository: Repository, digest: str) -> bool:
    for image in repository.images:
        try:
            manifest = json.loads(image.image_manifest)
        except ValueError:
            continue
        config = manifest.get("config") or {}
        if config.get("digest") == digest or any(layer.get("digest") == digest for layer in manifest.get("layers", [])):
            return True
    return False


def _get_download_url_for_layer(self: Any) -> ActionResult:
    """GetDownloadUrlForLayer for every repository, with its read-only CloudTrail event (one per call)."""
    params = request_params(self)
    identity = events.request_identity(self)
    try:
        validate_input("GetDownloadUrlForLayer", params)
        result = _download_url(self, params)
    except ServiceException as exc:
        _emit_pull_call(self, "GetDownloadUrlForLayer", params, identity, exc)
        raise
    _emit_pull_call(self, "GetDownloadUrlForLayer", params, identity, None)
    return result


def _download_url(self: Any, params: dict[str, Any]) -> ActionResult:
    backend: ECRBackend = self.ecr_backend
    repository_name, digest = str(params["repositoryName"]), str(params["layerDigest"])
    try:
        parse_digest(digest)
    except ValueError as exc:
        raise InvalidParameterException(
            f"Invalid parameter at 'layerDigest' failed to satisfy constraint: '{exc}'"
        ) from exc
    repository = backend._get_repository(repository_name, params.get("registryId"))
    state = ext_state(backend)
    with state.lock:
        record = state.pull_through.get(repository_name)
        status = record.layer_imports.get(digest) if record is not None else None
    if status is None:
        if digest not in repository.layers and not _referenced(repository, digest):
            raise LayersNotFoundException(
                f"The specified layer '{digest}' could not be found in the repository '{repository_name}' "
                f"in the registry with id '{repository.registry_id}'"
            )
    elif status in ("IN_PROGRESS", "PENDING"):
        # The import from the upstream is asynchronous; until it completes the layer is not available [?]
        # (ecr-facts §3.3 step 4 retries on this exception).
        raise LayerInaccessibleException(
            f"The specified layer '{digest}' is not available yet: "
            "it is still being imported from the upstream registry"
        )
    elif status == "FAILED":
        pull = _start_pull(backend, repository_name)
        if pull is None or not _import_layer(pull, digest):
            raise UnableToGetUpstreamLayerException(
                f"There was an issue getting the upstream layer '{digest}' for the repository '{repository_name}' "
                "matching the pull through cache rule"
            )
    url = _layer_server.url_for(str(backend.account_id), str(backend.region_name), repository_name, digest)
    return ActionResult({"downloadUrl": url, "layerDigest": digest})


# --------------------------------------------------------------------------------------------------
# Server-mode hooks and installation
# --------------------------------------------------------------------------------------------------


def _endpoint_complete(body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("repositoryName")
    return {"completed": complete_imports(str(name) if name else None), "pending": len(pending_imports())}


def _endpoint_settings(body: dict[str, Any]) -> dict[str, Any]:
    if "layerImport" in body:
        try:
            set_layer_import_mode(str(body["layerImport"]))
        except ValueError as exc:
            raise InvalidParameterException("layerImport must be 'immediate' or 'manual'") from exc
    return {"layerImport": layer_import_mode().value}


def _endpoint_pending(_: dict[str, Any]) -> dict[str, Any]:
    return {"pending": [{"repositoryName": r, "layerDigest": d} for r, d in pending_imports()]}


def install() -> None:
    """Patch moto (idempotent): BatchGetImage through rules, GetDownloadUrlForLayer, ``/_ecrcache/pullthrough/*``."""
    wrap_response_action("batch_get_image", _batch_get_image_wrapper)
    add_response_action("get_download_url_for_layer", _get_download_url_for_layer)
    from devstack.aws import server  # noqa: PLC0415 - server imports the package; avoid a cycle

    server.register_endpoint("POST", "pullthrough/layers/complete", _endpoint_complete)
    server.register_endpoint("GET", "pullthrough/layers/pending", _endpoint_pending)
    server.register_endpoint("GET", "pullthrough/settings", _endpoint_settings)
    server.register_endpoint("POST", "pullthrough/settings", _endpoint_settings)

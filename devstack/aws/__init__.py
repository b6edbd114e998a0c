"""Embedded AWS for tests and local runs: moto, extended with the ECR operations it lacks.

One entry point, :func:`install`, patches moto's ECR service (and where moto strays from AWS, its
Secrets Manager) in this process (idempotently):

* ``ecr_rules`` -- Create/Describe/Update/Delete/ValidatePullThroughCacheRule;
* ``ecr_templates`` -- Create/Describe/Update/DeleteRepositoryCreationTemplate;
* ``ecr_lifecycle`` -- full-grammar ``PutLifecyclePolicy`` validation, Start/GetLifecyclePolicyPreview,
  lifecycle evaluation, CloudTrail events for Put/DeleteLifecyclePolicy and Create/DeleteRepository;
* ``ecr_cloudtrail`` -- CloudTrail events for Set/DeleteRepositoryPolicy, PutImageTagMutability and
  Tag/UntagResource;
* ``ecr_repositories`` -- ``DescribeRepositories`` paginated as ECR does (moto ignores ``maxResults``);
* ``ecr_exclusions`` -- Register/Deregister/ListPullTimeUpdateExclusions (pulls by an excluded
  principal leave ``lastRecordedPullTime`` alone);
* ``ecr_storage`` -- the archive storage class: ``UpdateImageStorageClass``, ``imageStatus`` /
  ``lastArchivedAt`` / ``lastActivatedAt`` and the ``imageStatus`` filter of DescribeImages/ListImages,
  restores that take time;
* ``ecr_pullthrough`` -- the pull-through data plane (``BatchGetImage``/``GetDownloadUrlForLayer``
  from real OCI registries, with their read-only CloudTrail events), installed too when that module
  is present;
* ``eventbridge_rules`` (through ``events``) -- EventBridge rule states: read-only management events
  reach only rules in ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``;
* ``secrets_deletion`` -- Secrets Manager's recovery window: a secret scheduled for deletion refuses
  ``CreateSecret`` of its name, writes and reads with ``InvalidRequestException`` until restored.
* ``secrets_replication`` -- multi-Region secrets: a new replica is ``InProgress`` (and not readable in
  its Region) for a settable delay, a failed one says why as AWS documents, the answers name the
  primary's ARN, and DeleteSecret refuses a primary with replicas in AWS's words.
* ``secrets_rotation`` -- ``RotateSecret`` as AWS documents it: validated rules, an empty ``AWSPENDING``
  version, the rotation function's four steps invoked asynchronously with the secret's ARN (through the
  Lambda invokers registered in ``ports``), a rotation in progress refused, ``AWSCURRENT`` left to the function;
  ``CancelRotateSecret`` turns rotation off, stops a running rotation, leaves its labels.
* ``secrets_versions`` -- staging labels as documented: a plain ``GetSecretValue`` reads the version that carries
  ``AWSCURRENT`` after ``UpdateSecretVersionStage`` moves it, and a label stays on one version.
* ``ecr_throttling`` -- ECR's request-rate throttling: a token bucket per account, Region and operation, answering
  ``ThrottlingException`` (HTTP 400) when empty; off unless configured (ECR publishes no rate for most operations):
  ``install(ecr_tps="DescribeRepositories=20,GetLifecyclePolicy=50:100")``, ``ecr_throttling.configure(...)``.

Use it before ``moto.mock_aws()`` (or before starting a moto server in this process)::

    from devstack.aws import install
    install()                                  # or install(ecr_tps="DescribeRepositories=20,*=50")
    with moto.mock_aws():
        boto3.client("ecr").create_pull_through_cache_rule(...)

Supporting modules: ``state`` (per-backend extension state), ``clock`` (injectable time),
``events`` (EventBridge/CloudTrail emission and fault injection), ``ports`` (upstream auth check
and Lambda invoker seams), ``common`` (errors, validation, paging, patch helpers), ``server`` (HTTP server +
``/_ecrcache/`` endpoints).

Module names deliberately do not start with ``moto``: moto derives the service of an exception
from ``exception.__module__.split(".")[1]`` for modules starting with "moto" (tooling.md §2).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.aws.ecr_throttling import TpsSpec

__all__ = ["PULLTHROUGH_MODULE", "install", "installed"]

PULLTHROUGH_MODULE = "devstack.aws.ecr_pullthrough"

_lock = threading.Lock()
_installed = False


def install(ecr_tps: TpsSpec | None = None) -> None:
    """Patch moto's ECR backend and response classes with the extension (safe to call repeatedly).

    ``ecr_tps`` (``"Operation=TPS[:BURST],..."`` or ``{"Operation": TPS}``; ``*`` = every other operation): throttle
    the embedded ECR per account, Region and operation from now on (:mod:`devstack.aws.ecr_throttling`); ``""``
    turns throttling off; ``None`` (the default) leaves it as it is (off unless configured).
    """
    global _installed  # noqa: PLW0603 - process-wide, like the patch itself
    with _lock:
        if not _installed:
            _install_all()
            _installed = True
    if ecr_tps is not None:
        from devstack.aws import ecr_throttling  # noqa: PLC0415

        ecr_throttling.configure(ecr_tps)


def _install_all() -> None:
    from devstack.aws import (  # noqa: PLC0415
        ecr_cloudtrail,
        ecr_exclusions,
        ecr_lifecycle,
        ecr_repositories,
        ecr_rules,
        ecr_storage,
        ecr_templates,
        ecr_throttling,
        events,
        secrets_deletion,
        secrets_replication,
        secrets_rotation,
        secrets_versions,
    )

    events.install()
    ecr_rules.install()
    ecr_templates.install()
    ecr_lifecycle.install()
    ecr_cloudtrail.install()
    ecr_repositories.install()
    ecr_exclusions.install()
    ecr_storage.install()
    secrets_deletion.install()
    secrets_replication.install()
    secrets_rotation.install()
    secrets_versions.install()
    ecr_throttling.install()
    if importlib.util.find_spec(PULLTHROUGH_MODULE) is not None:
        module = importlib.import_module(PULLTHROUGH_MODULE)
        module_install = getattr(module, "install", None)
        if callable(module_install):
            module_install()


def installed() -> bool:
    """Whether :func:`install` has run in this process."""
    return _installed

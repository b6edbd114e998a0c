"""Helpers shared by the registry and pull-through tests (a plain module, not a pytest plugin).

Test modules import from here; the plugins :mod:`tests.functional.registry.fixtures` and
:mod:`tests.functional.registry.pullthrough` do too (importing a plugin module from a test module
would stop pytest from rewriting its asserts). The ``ptc`` fixture builds a :class:`PullThrough`,
mapping the upstream hosts ECR knows to local registries:

=========================  =============================  =====================================
upstream host              local registry                 auth
=========================  =============================  =====================================
``registry-1.docker.io``   ``token_registry``             Bearer tokens (like Docker Hub)
``ghcr.io``                ``auth_registry``              htpasswd, HTTP Basic
``public.ecr.aws``         ``registry``                   anonymous
``quay.io``                ``fault_proxy`` -> registry    anonymous, faults on demand
``*.dkr.ecr.*...``         ``registry``                   anonymous (ECR-to-ECR, role not modelled)
=========================  =============================  =====================================

The default images are seeded into ``registry`` and ``token_registry``; tests that move tags seed
their own repository (``unique_repo``). ``PullThrough`` spies on ``ECR Pull Through Cache Action``
and CloudTrail ``CreateRepository`` events through EventBridge rules with SQS targets, as in AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack.registry import (
    Credentials,
    FaultProxy,
    LocalRegistry,
)
from devstack.registry.images import ALL_MANIFEST_MEDIA_TYPES

if TYPE_CHECKING:
    from mypy_boto3_ecr.type_defs import BatchGetImageResponseTypeDef

    from tests.functional.embedded_aws.conftest import EmbeddedAws

__all__ = ["AUTH_CREDENTIALS", "CREATE_REPOSITORY_PATTERN", "PTC_PATTERN", "PullThrough"]

#: The credentials the authenticated registries accept (also what tests store in Secrets Manager).
AUTH_CREDENTIALS = Credentials("ecrcache-puller", "dckr_pat_local-test-token")

#: ecr-facts §6.1: every pull-through cache action, successful or not.
PTC_PATTERN: dict[str, Any] = {"source": ["aws.ecr"], "detail-type": ["ECR Pull Through Cache Action"]}
#: ecr-facts §6.3: repositories created (by anyone, here by the pull-through service).
CREATE_REPOSITORY_PATTERN: dict[str, Any] = {
    "source": ["aws.ecr"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["ecr.amazonaws.com"], "eventName": ["CreateRepository"]},
}


@dataclass
class PullThrough:
    """The embedded AWS plus the upstream registries it pulls from, and helpers."""

    aws: EmbeddedAws
    registry: LocalRegistry
    auth_registry: LocalRegistry
    token_registry: LocalRegistry
    fault_proxy: FaultProxy
    actions_queue: str
    trail_queue: str
    _secrets: dict[str, str] = field(default_factory=dict)

    def secret(self, name: str, username: str, access_token: str) -> str:
        """An ``ecr-pullthroughcache/<name>`` secret (created once per test); returns its ARN."""
        if name not in self._secrets:
            self._secrets[name] = self.aws.secret(
                f"ecr-pullthroughcache/{name}", {"username": username, "accessToken": access_token}
            )
        return self._secrets[name]

    def docker_hub_rule(self, prefix: str = "docker-hub", *, access_token: str | None = None) -> None:
        """A Docker Hub rule (Bearer upstream) with a secret holding ``access_token`` (default: the right one)."""
        token = access_token if access_token is not None else AUTH_CREDENTIALS.password
        arn = self.secret(f"{prefix}-{len(self._secrets)}", AUTH_CREDENTIALS.username, token)
        self.aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
        )

    def ghcr_rule(self, prefix: str = "ghcr", *, access_token: str | None = None) -> None:
        """A GitHub Container Registry rule (Basic upstream)."""
        token = access_token if access_token is not None else AUTH_CREDENTIALS.password
        arn = self.secret(f"{prefix}-{len(self._secrets)}", AUTH_CREDENTIALS.username, token)
        self.aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=prefix, upstreamRegistryUrl="ghcr.io", credentialArn=arn
        )

    def anonymous_rule(self, prefix: str = "ecr-public", url: str = "public.ecr.aws") -> None:
        """A rule for an upstream without credentials (``public.ecr.aws``, ``quay.io``, ``registry.k8s.io``)."""
        self.aws.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=url)

    def pull(
        self,
        repository: str,
        *,
        tag: str | None = None,
        digest: str | None = None,
        accepted: tuple[str, ...] = ALL_MANIFEST_MEDIA_TYPES,
    ) -> BatchGetImageResponseTypeDef:
        """``BatchGetImage`` of one image, the way the warmer (and ecr-facts §3.3) calls it."""
        image_id: dict[str, str] = {}
        if tag is not None:
            image_id["imageTag"] = tag
        if digest is not None:
            image_id["imageDigest"] = digest
        return self.aws.ecr.batch_get_image(
            repositoryName=repository,
            imageIds=[image_id],  # type: ignore[list-item]
            acceptedMediaTypes=list(accepted),
        )

    def actions(self) -> list[dict[str, Any]]:
        """``ECR Pull Through Cache Action`` events delivered since the last call (oldest first)."""
        return self.aws.received(self.actions_queue)

    def trail(self) -> list[dict[str, Any]]:
        """CloudTrail ``CreateRepository`` events delivered since the last call."""
        return self.aws.received(self.trail_queue)

    def digests(self, repository: str) -> set[str]:
        listed = self.aws.ecr.list_images(repositoryName=repository)["imageIds"]
        return {str(i["imageDigest"]) for i in listed}

    def tagged(self, repository: str, tag: str) -> str:
        """The digest the cache has under ``tag`` (without pulling, so without a refresh)."""
        listed = self.aws.ecr.list_images(repositoryName=repository, filter={"tagStatus": "TAGGED"})["imageIds"]
        return next(str(i["imageDigest"]) for i in listed if i.get("imageTag") == tag)

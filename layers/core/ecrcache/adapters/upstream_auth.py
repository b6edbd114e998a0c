"""Does a credential sign in at its upstream registry? The probe the rotation function's ``testSecret`` runs.

ECR reads a credential's secret only as ``AWSCURRENT`` (ecr-facts §7.1): a pending token can only be tried
against the upstream directly, the way ECR's pull-through cache will use it (distribution "Token
Authentication Specification"):

1. ``GET /v2/`` without credentials: ``401`` with ``WWW-Authenticate`` (``Bearer realm=...,service=...`` as
   Docker Hub, GHCR, Quay, GitLab, ACR and Chainguard answer; or ``Basic``); a ``200`` means the registry
   lets anyone in there (the manifest below may still ask);
2. the realm, with HTTP Basic ``username:accessToken`` and ``scope=repository:<probe repository>:pull``, for a
   bearer token (``Basic`` challenges take the credential directly);
3. ``HEAD /v2/<probe repository>/manifests/<tag>`` with that token: ``200`` is a token that pulls. With no
   probe image (ACR: the user's own registry), ``GET /v2/`` again with the token instead.

The requests, redirects (registry.k8s.io sends ``/v2/`` to Artifact Registry), the refusal to send a
credential to a plain-HTTP realm of an HTTPS registry or to another host's Basic challenge, and the
classification of failures are :mod:`ecrcache.adapters.registry_auth`'s, which the warm planner's tag
lister shares; ``UPSTREAM_ENDPOINTS`` maps hosts to local registries in the local stack. Outcomes are
:class:`~ecrcache.models.upstream_probe.ProbeStatus` (see there); nothing is raised for what the upstream
answers, and no message, log line or result ever holds the token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from ecrcache.adapters.registry_auth import (
    RegistryFailure,
    RegistryHttp,
    base_url,
    basic_authorization,
    followed,
    host_of,
    http_pool,
    normalise_endpoints,
    retry_at,
)
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.upstream_probe import ProbeResult, ProbeStatus

if TYPE_CHECKING:
    import urllib3

    from ecrcache.adapters.registry_auth import (
        Answer,
    )
    from ecrcache.models.credential import UpstreamLogin
    from ecrcache.models.upstream_probe import ProbeTarget

__all__ = ["MANIFEST_MEDIA_TYPES", "RegistryAuthProbe"]

USER_AGENT: Final = "ecrcache-rotator"
MANIFEST_MEDIA_TYPES: Final = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
"""What a ``HEAD`` of a manifest accepts: a registry answers 404 to a client that accepts none of an image's types."""
_BODY_LIMIT: Final = 64 * 1024
_STATUS: Final = {
    FailureClass.CREDENTIAL: ProbeStatus.CREDENTIAL,
    FailureClass.RATE_LIMIT: ProbeStatus.RATE_LIMIT,
    FailureClass.NOT_FOUND: ProbeStatus.NOT_FOUND,
    FailureClass.UPSTREAM_DOWN: ProbeStatus.UPSTREAM_DOWN,
}


class _Conversation:
    """One probe's requests: the ``Authorization`` of each host it signed in at, and whether the credential was
    taken (asked for by a challenge and answered with a token or accepted directly)."""

    def __init__(self, registry: RegistryHttp, base: str, target: ProbeTarget, login: UpstreamLogin | None) -> None:
        self.registry = registry
        self.base = base
        self.target = target
        self.login = login
        self.signed: dict[str, str] = {}
        self.authenticated = False

    def ask(self, method: str, url: str, *, accept: str = "application/json") -> Answer:
        """One request, signed in where a 401 sends it (once per host), then asked again at the URL it was
        redirected to (a redirect to another host drops ``Authorization``: that host's own is sent there)."""
        answer = self._send(method, url, accept)
        final = followed(self.base, answer.url)
        if answer.status != 401:
            return answer
        if host_of(final) not in self.signed:
            self.signed[host_of(final)] = self.registry.sign_in(
                self.base,
                answer,
                self._basic,
                subject=str(self.target),
                no_credential=f"the upstream asks for a credential at {self.target} and none was given",
                scope=f"repository:{self.target.image.repository}:pull" if self.target.image is not None else None,
            )
        elif host_of(final) == host_of(url):
            return answer  # signed in there already, and refused all the same
        answer = self._send(method, final, accept)
        followed(self.base, answer.url)
        return answer

    def _send(self, method: str, url: str, accept: str) -> Answer:
        return self.registry.send(method, url, self.signed.get(host_of(url)), accept=accept, limit=_BODY_LIMIT)

    def _basic(self) -> str | None:
        if self.login is None:
            return None
        self.authenticated = True  # asked for and sent: a refusal from here on is the credential's
        return basic_authorization(self.login.username, self.login.token.get_secret_value())


class RegistryAuthProbe:
    """Implements :class:`ecrcache.ports.UpstreamProbe` over HTTP (urllib3)."""

    def __init__(
        self,
        *,
        endpoints: Mapping[str, str] | None = None,
        http: urllib3.PoolManager | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.endpoints = normalise_endpoints(endpoints)
        self.registry = RegistryHttp(http or http_pool(user_agent=USER_AGENT), clock)

    def probe(self, target: ProbeTarget, login: UpstreamLogin | None) -> ProbeResult:
        """Sign in at ``target``'s upstream with ``login`` and ask for its probe image (or ``/v2/``)."""
        base = base_url(self.endpoints, target.upstream_url)
        talk = _Conversation(self.registry, base, target, login)
        sent = self.registry.sent
        try:
            status, message = self._probe(talk)
        except RegistryFailure as failed:
            status, message = _STATUS.get(failed.failure, ProbeStatus.UPSTREAM_DOWN), failed.message
            return ProbeResult(target, status, message, failed.retry_at, talk.authenticated, self.registry.sent - sent)
        return ProbeResult(target, status, message, None, talk.authenticated, self.registry.sent - sent)

    def _probe(self, talk: _Conversation) -> tuple[ProbeStatus, str]:
        target = talk.target
        root = talk.ask("GET", f"{talk.base}/v2/")
        self._check(
            root,
            talk,
            what="/v2/",
            missing=(FailureClass.UPSTREAM_DOWN, "the upstream answered /v2/ with 404: not a registry API"),
        )
        if target.image is not None:
            reference = target.image.digest or target.image.tag
            url = f"{talk.base}/v2/{target.image.repository}/manifests/{reference}"
            head = talk.ask("HEAD", url, accept=MANIFEST_MEDIA_TYPES)
            self._check(
                head,
                talk,
                what=f"the probe image {target.image}",
                missing=(
                    FailureClass.NOT_FOUND,
                    f"404: the probe image {target} is not at the upstream; this is the probe's problem, not the "
                    "credential's: set the credential's probe to an image it can pull",
                ),
            )
        if not talk.authenticated:
            return ProbeStatus.OK, f"{target}: the upstream asked for no credential (it was not checked)"
        return ProbeStatus.OK, f"{target}: signed in with the credential and {_found(target)}"

    def _check(self, answer: Answer, talk: _Conversation, *, what: str, missing: tuple[FailureClass, str]) -> None:
        """Raise the failure an answer other than ``200`` stands for."""
        status = answer.status
        if status == 200:
            return
        if status == 429:
            reset = retry_at(answer.headers, self.registry.clock())
            raise RegistryFailure(FailureClass.RATE_LIMIT, f"429 Too Many Requests for {what}", retry_at=reset)
        if status in (401, 403):
            refused = "refused the credential" if talk.authenticated else "refused anonymous access"
            raise RegistryFailure(FailureClass.CREDENTIAL, f"{status}: the upstream {refused} for {what}")
        if status == 404:
            raise RegistryFailure(*missing)
        raise RegistryFailure(FailureClass.UPSTREAM_DOWN, f"{status} from the upstream for {what}")


def _found(target: ProbeTarget) -> str:
    return "found the probe image" if target.image is not None else "was let in at /v2/"

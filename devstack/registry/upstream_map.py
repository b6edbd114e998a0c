"""Where an upstream registry host really is: ``registry-1.docker.io`` -> ``http://127.0.0.1:5000``.

ECR's pull-through cache only knows a fixed set of upstream hosts (ecr-facts §1.4). On our machines
none of them is reachable, so the fake ECR and the CLI look every upstream host up in an
:class:`UpstreamMap` and talk to a local OCI registry (or a :class:`~.faults.FaultProxy` in front
of one) instead. A host with no mapping is an error, never a real network call.

Configure it from the environment::

    ECRCACHE_UPSTREAM_MAP="registry-1.docker.io=http://127.0.0.1:5000,ghcr.io=http://127.0.0.1:5001"

or in code (``UpstreamMap({"ghcr.io": url})``, ``.set(...)``, ``UpstreamMap.all_to(url)``).
Keys are exact hosts or ``fnmatch`` patterns (``*.azurecr.io``, ``*.dkr.ecr.*.amazonaws.com``);
an exact host wins over a pattern, and a longer pattern over a shorter one.
"""

from __future__ import annotations

import fnmatch
import os
import threading
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

__all__ = [
    "ENV_VAR",
    "KNOWN_UPSTREAM_HOSTS",
    "UnmappedUpstreamError",
    "UpstreamMap",
    "normalise_host",
]

ENV_VAR = "ECRCACHE_UPSTREAM_MAP"

#: The upstream registry hosts ECR pull-through cache accepts (ecr-facts §1.4), as map keys.
KNOWN_UPSTREAM_HOSTS: tuple[str, ...] = (
    "registry-1.docker.io",
    "ghcr.io",
    "quay.io",
    "public.ecr.aws",
    "registry.k8s.io",
    "registry.gitlab.com",
    "cgr.dev",
    "*.azurecr.io",
    "*.dkr.ecr.*.amazonaws.com",
)


class UnmappedUpstreamError(LookupError):
    """No local registry is mapped for this upstream host."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"no local registry is mapped for upstream host {host!r}; "
            f"add it to {ENV_VAR} (e.g. {host}=http://127.0.0.1:5000) or to the UpstreamMap"
        )
        self.host = host


def normalise_host(value: str) -> str:
    """``https://Registry-1.docker.io/`` -> ``registry-1.docker.io`` (lower case, no scheme or path)."""
    text = value.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    return text.split("/", 1)[0].lower()


def _normalise_base_url(url: str) -> str:
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid registry base URL {url!r}: expected http(s)://host[:port]")
    return text


class UpstreamMap:
    """Thread-safe host (or host pattern) -> base URL table."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        for host, url in (mapping or {}).items():
            self.set(host, url)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> UpstreamMap:
        """``host=url[,host=url...]`` (whitespace and empty items ignored)."""
        result = cls()
        for item in text.split(","):
            if not item.strip():
                continue
            host, sep, url = item.partition("=")
            if not sep or not host.strip() or not url.strip():
                raise ValueError(f"invalid {ENV_VAR} entry {item.strip()!r}: expected host=http://127.0.0.1:PORT")
            result.set(host, url)
        return result

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UpstreamMap:
        """The map in ``$ECRCACHE_UPSTREAM_MAP`` (empty when unset)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ENV_VAR, ""))

    @classmethod
    def all_to(cls, base_url: str, hosts: tuple[str, ...] = KNOWN_UPSTREAM_HOSTS) -> UpstreamMap:
        """Every known upstream host served by one local registry."""
        return cls(dict.fromkeys(hosts, base_url))

    # -- mutation -------------------------------------------------------------------------------
    def set(self, host: str, base_url: str) -> None:
        key = normalise_host(host)
        if not key:
            raise ValueError("an upstream host must not be empty")
        url = _normalise_base_url(base_url)
        with self._lock:
            self._entries[key] = url

    def remove(self, host: str) -> None:
        with self._lock:
            self._entries.pop(normalise_host(host), None)

    def update(self, other: UpstreamMap | Mapping[str, str]) -> None:
        items = other.items() if isinstance(other, UpstreamMap) else list(other.items())
        for host, url in items:
            self.set(host, url)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    # -- lookup ---------------------------------------------------------------------------------
    def get(self, host: str) -> str | None:
        """The base URL for ``host``, or ``None``: exact key first, then the longest matching pattern."""
        key = normalise_host(host)
        with self._lock:
            exact = self._entries.get(key)
            if exact is not None:
                return exact
            patterns = sorted(
                ((k, v) for k, v in self._entries.items() if any(c in k for c in "*?[")),
                key=lambda kv: len(kv[0]),
                reverse=True,
            )
        for pattern, url in patterns:
            if fnmatch.fnmatchcase(key, pattern):
                return url
        return None

    def resolve(self, host: str) -> str:
        """Like :meth:`get`, but an unmapped host raises :class:`UnmappedUpstreamError`."""
        url = self.get(host)
        if url is None:
            raise UnmappedUpstreamError(normalise_host(host))
        return url

    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._entries.items())

    def to_env(self) -> str:
        """The ``$ECRCACHE_UPSTREAM_MAP`` value that recreates this map."""
        return ",".join(f"{host}={url}" for host, url in self.items())

    def __iter__(self) -> Iterator[str]:
        return iter([host for host, _ in self.items()])

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and self.get(host) is not None

    def __repr__(self) -> str:
        return f"UpstreamMap({dict(self.items())!r})"

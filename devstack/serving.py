"""Local servers in the background: one way to run a socketserver in a daemon thread, one way to stop it.

Every local endpoint (the embedded AWS, the API gateway, a function host, the token server, the
fault proxy) is a ``socketserver`` server -- werkzeug's or the standard library's -- served by
:class:`ServerThread`; :class:`Background` gives the services that own one (or a process) their
``with`` form.
"""

from __future__ import annotations

import socketserver
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Final, Self

from werkzeug.serving import WSGIRequestHandler

__all__ = ["POLL_INTERVAL", "Background", "QuietRequestHandler", "ServerThread"]

POLL_INTERVAL: Final = 0.05
"""How often ``serve_forever`` checks for shutdown: ``stop()`` returns within about this long."""


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler without its access log (our servers log what matters themselves)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class ServerThread:
    """``server.serve_forever()`` in a daemon thread named ``name``; :meth:`stop` shuts it down and joins."""

    def __init__(self, server: socketserver.BaseServer, name: str) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound address."""
        address = self.server.server_address
        host, port = (address[0], address[1]) if isinstance(address, tuple) else (address, 0)
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        address = self.server.server_address
        return int(address[1]) if isinstance(address, tuple) else 0

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop serving, release the port and wait for the thread (at most ``timeout`` seconds)."""
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=timeout)


class Background(ABC):
    """Something started and stopped around a ``with`` block."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

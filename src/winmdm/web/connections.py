"""Connections a slow or greedy client cannot use up (uvicorn protocol classes).

- A client has `header_timeout` seconds to send a request's headers: from the connection's start,
  and again after each response on a kept-alive one. uvicorn's keep-alive timer is cancelled by
  any byte received, so a client sending a header line every few seconds would otherwise hold its
  connection (and a file descriptor) for ever. Too slow: 408, closed.
- At most `max_connections` connections at once: one more is answered 503 with Retry-After and
  closed before uvicorn sees it, so the clients already connected are still served.
- `raise_open_file_limit` lifts the soft RLIMIT_NOFILE to what the connections need.
Body timeouts are web/body.py's.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from winmdm.web.client_cert import TLSScopeMixin

log = logging.getLogger("winmdm.http")

# File descriptors beyond the connections: database, log files, the listening socket, TLS files.
RESERVED_FILES = 256
_LOG_EVERY = 60.0  # seconds between two log lines about refused connections


def _response(status: str, text: str, *extra: str) -> bytes:
    body = (text + "\n").encode("utf-8")
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


BUSY = _response(
    "503 Service Unavailable",
    "The server has as many connections open as it allows; try again in a few seconds.",
    "Retry-After: 5",
)
TOO_SLOW = _response("408 Request Timeout", "The request headers did not arrive in time.")


class _GuardMixin:
    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 1000
    _last_refusal_log: ClassVar[float] = 0.0

    app: Any
    loop: asyncio.AbstractEventLoop
    server_state: Any
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer: asyncio.TimerHandle | None = None
        self._refused = len(self.server_state.connections) >= self.max_connections
        if self._refused:
            transport.write(BUSY)
            transport.close()
            _log_refusal(type(self), len(self.server_state.connections))
            return
        super().connection_made(transport)  # type: ignore[misc]
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            self._disarm()  # the headers are in
            try:
                await inner(scope, receive, send)
            finally:
                self._arm()  # the next request's headers, on a kept-alive connection

        self.app = app
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection whose request headers took over %.0f s", self.header_timeout)
            self.transport.write(TOO_SLOW)
            self.transport.close()


def _log_refusal(protocol: type[_GuardMixin], open_now: int) -> None:
    now = time.monotonic()
    if now - protocol._last_refusal_log >= _LOG_EVERY:
        protocol._last_refusal_log = now
        log.warning(
            "refusing new connections: %d are open, the limit (WINMDM_MAX_CONNECTIONS) is %d",
            open_now,
            protocol.max_connections,
        )


class GuardedHttpToolsProtocol(_GuardMixin, TLSScopeMixin, HttpToolsProtocol):
    """uvicorn's httptools protocol, guarded, with the ASGI TLS extension."""


class GuardedH11Protocol(_GuardMixin, TLSScopeMixin, H11Protocol):
    """uvicorn's h11 protocol, guarded, with the ASGI TLS extension."""


def guarded_protocol(*, header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """httptools when installed, else h11 (uvicorn's own `http="auto"` choice), with these limits."""
    try:
        import httptools  # noqa: F401

        base: type = GuardedHttpToolsProtocol
    except ImportError:  # pragma: no cover
        base = GuardedH11Protocol
    attributes = {"header_timeout": header_timeout, "max_connections": max_connections}
    return type(base.__name__, (base,), attributes)


def raise_open_file_limit(max_connections: int) -> int:
    """Lift the soft RLIMIT_NOFILE (often 1024) toward the hard limit, enough for
    `max_connections`; returns how many connections the limit it got allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FILES
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, ceiling, exc)
    allowed = (
        max_connections if soft == resource.RLIM_INFINITY else min(max_connections, soft - RESERVED_FILES)
    )
    if allowed < max_connections:
        log.warning(
            "the open-file limit (%d) allows %d connections, not WINMDM_MAX_CONNECTIONS=%d; "
            "raise the hard limit (ulimit -Hn, LimitNOFILE=) to allow more",
            soft,
            allowed,
            max_connections,
        )
    return max(allowed, 1)

"""Bounded request bodies: never read more than the limit, whatever the client claims, nor wait
for ever on a client that sends slowly or goes away (one line in the log, no traceback)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from winmdm.errors import HostileInput, MalformedMessage

log = logging.getLogger("winmdm.http")

DEFAULT_BODY_TIMEOUT = 30.0
# After the body timeout, a body may go on as long as a client sending this many bytes a second
# needs: a large upload on a slow link gets there, a client trickling bytes to hold the
# connection does not.
MIN_RATE = 16 * 1024

T = TypeVar("T")


class BodyNotReceived(MalformedMessage):
    """The client went away, or was too slow, before its whole body arrived."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Pace:
    """The time a body may take so far (see MIN_RATE), from its first read on."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._start = time.monotonic()

    async def within(self, received: int, step: Awaitable[T]) -> T:
        left = self._start + self._timeout + received / MIN_RATE - time.monotonic()
        try:
            # asyncio.timeout, not wait_for: no task of its own per read (every request body).
            async with asyncio.timeout(max(left, 0.001)):
                return await step
        except TimeoutError:
            log.info(
                "request body too slow: %d bytes in %.0f s; connection dropped", received, self._elapsed()
            )
            raise BodyNotReceived(
                f"the request body did not arrive in time ({received} bytes in {self._elapsed():.0f} s)",
                timed_out=True,
            ) from None

    def _elapsed(self) -> float:
        return time.monotonic() - self._start


def body_timeout(request: Request) -> float:
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.config.body_timeout if runtime is not None else DEFAULT_BODY_TIMEOUT


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedMessage("Content-Length is not a number")
        if int(declared) > limit:
            raise HostileInput(f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    pace = Pace(body_timeout(request))
    stream = request.stream()
    try:
        while True:
            try:
                chunk = await pace.within(size, anext(stream))
            except StopAsyncIteration:
                break
            size += len(chunk)
            if size > limit:
                raise HostileInput(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        log.info("client went away after %d bytes of its request body to %s", size, request.url.path)
        raise BodyNotReceived("the client went away before sending its whole body", timed_out=False) from None
    return b"".join(chunks)

"""Bounds every API request body before the app sees it (design.md: every endpoint bounds size).

The body is read here, up to the limit, and replayed to the app: a declared Content-Length over
the limit is refused before reading, and a chunked body is refused as soon as it passes the limit.
A body that comes too slowly (web/body.py Pace) gets 408; a client that goes away, one log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from winmdm.web.api.errors import error_body
from winmdm.web.body import BodyNotReceived, Pace

log = logging.getLogger("winmdm.http")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int], timeout: float) -> None:
        self._app = app
        self._limit_for = limit_for
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        pace = Pace(self._timeout)
        while more:
            try:
                message = await pace.within(size, receive())
            except BodyNotReceived as exc:
                await _send_error(send, 408, "timeout", exc.message)
                return
            if message["type"] == "http.disconnect":
                log.info("client went away after %d bytes of its request body to %s", size, scope.get("path"))
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    message = f"the request body is larger than this endpoint's limit of {limit} bytes"
    await _send_error(send, 413, "too_large", message)


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    payload = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

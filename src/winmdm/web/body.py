"""Bounded request bodies: never read more than the limit, whatever the client claims."""

from __future__ import annotations

from starlette.requests import Request

from winmdm.errors import HostileInput, MalformedMessage


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedMessage("Content-Length is not a number")
        if int(declared) > limit:
            raise HostileInput(f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HostileInput(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

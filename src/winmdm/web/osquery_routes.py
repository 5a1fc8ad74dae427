"""osquery's TLS remote API (docs/agent-channel.md): enroll, config, log, distributed read and
write, at the paths Fleet serves them (so `--tls_hostname` and the `--*_tls_endpoint` flags an
admin already knows work unchanged).

osquery reads the answer's body whatever the HTTP status (osquery/remote/transports/tls.cpp):
`"node_invalid": true` makes it enroll again, a top-level `"error"` string fails the request
(osquery/remote/utility.h). Errors are that shape, never a stack trace or a 500 for input.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from winmdm.errors import HostileInput, MalformedMessage, WinMDMError
from winmdm.runtime import Runtime
from winmdm.services.osquery import NodeInvalid
from winmdm.web.body import BodyNotReceived, read_bounded

log = logging.getLogger("winmdm.osquery")

PREFIX = "/api/osquery"
# Enroll, config and distributed read bodies are a few kB (host_details the largest).
SMALL_BODY = 64 * 1024
# Log and distributed-write bodies are bounded by WINMDM_MAX_BODY_BYTES (1 MiB by default);
# osquery's --logger_tls_max_lines keeps a batch below it (docs/agent-channel.md "Limits").


def _error(message: str, status: int, *, node_invalid: bool = False) -> JSONResponse:
    return JSONResponse({"error": message, "node_invalid": node_invalid}, status_code=status)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# osquery sends one member; a few more are allowed, a body of thousands of empty ones is not.
MAX_GZIP_MEMBERS = 16


def _gunzip(raw: bytes, limit: int) -> bytes:
    """osquery's --logger_tls_compress body, inflated to at most `limit` bytes. A gzip body is a
    series of members (RFC 1952 2.2), each inflated in turn. zlib inflates a stream cut short
    without a word, so each member's end (with the CRC-32 and size checked) must be seen: a body
    that lost its last bytes on the way is refused, not read as if whole."""
    inflated = bytearray()
    rest = raw
    for _ in range(MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(wbits=31)
        try:
            inflated += inflater.decompress(rest, limit + 1 - len(inflated))
        except zlib.error:
            raise MalformedMessage("the gzip body cannot be inflated") from None
        if len(inflated) > limit or inflater.unconsumed_tail:
            raise HostileInput(f"the inflated request body exceeds the limit of {limit} bytes")
        if not inflater.eof:
            raise MalformedMessage("the gzip body is cut short: its stream does not end")
        rest = inflater.unused_data
        if not rest:
            return bytes(inflated)
    raise MalformedMessage(f"the gzip body has more than {MAX_GZIP_MEMBERS} members")


async def _body(request: Request, limit: int) -> dict[str, Any]:
    raw = await read_bounded(request, limit)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, limit)
    elif encoding not in ("", "identity"):
        raise MalformedMessage(f"Content-Encoding {encoding[:32]!r} is not supported: send gzip or none")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedMessage("the body is not JSON: osquery sends a JSON object") from None
    if not isinstance(body, dict):
        raise MalformedMessage("the body must be a JSON object")
    if "node_key" not in body:  # osquery also sends it as "Authorization: NodeKey <key>"
        scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "nodekey" and key.strip():  # schemes are case-insensitive (RFC 9110)
            body["node_key"] = key.strip()
    return body


Call = Callable[[Runtime, dict[str, Any]], dict[str, Any]]


def _endpoint(name: str, call: Call, *, large: bool) -> Callable:
    async def handle(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        limit = runtime.config.max_body_bytes if large else SMALL_BODY
        try:
            body = await _body(request, limit)
            answer = await run_in_threadpool(call, runtime, body)
        except BodyNotReceived as exc:
            return _error(exc.message, 408 if exc.timed_out else 400)
        except NodeInvalid as exc:
            log.info("osquery %s refused: %s", name, exc.message)
            return _error(exc.message, 401, node_invalid=True)
        except HostileInput as exc:
            return _error(exc.message, 413)
        except WinMDMError as exc:
            log.info("osquery %s refused: %s", name, exc.message)
            return _error(exc.message, 400)
        except SQLAlchemyError:
            log.exception("storage failed during an osquery %s request", name)
            return _error("the server could not save the request; osquery will retry", 503)
        return JSONResponse(answer)

    return handle


def _enroll(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    return {"node_key": runtime.osquery.enroll(body), "node_invalid": False}


def _config(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    return runtime.osquery.config(body)


def _log(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    runtime.osquery.write_logs(body)
    return {"node_invalid": False}


def _read(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    return runtime.osquery.distributed_read(body)


def _write(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    runtime.osquery.distributed_write(body)
    return {"node_invalid": False}


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/enroll", _endpoint("enroll", _enroll, large=False), methods=["POST"]),
        Route(f"{PREFIX}/config", _endpoint("config", _config, large=False), methods=["POST"]),
        Route(f"{PREFIX}/log", _endpoint("log", _log, large=True), methods=["POST"]),
        Route(f"{PREFIX}/distributed/read", _endpoint("read", _read, large=False), methods=["POST"]),
        Route(f"{PREFIX}/distributed/write", _endpoint("write", _write, large=True), methods=["POST"]),
    ]

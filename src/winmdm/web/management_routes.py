"""The OMA-DM management endpoint (MS-MDM): the URL the provisioning document's w7 ADDR names.

Windows POSTs SyncML here (appending ?mode=...&Platform=...); the device is authenticated by its
digest Cred and, when presented, its enrollment certificate (protocol.md decision 4).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from winmdm import log_context
from winmdm.errors import HostileInput, MalformedMessage, WinMDMError
from winmdm.runtime import Runtime
from winmdm.services import endpoints as paths
from winmdm.web.body import BodyNotReceived, read_bounded
from winmdm.web.client_cert import peer_certificate

log = logging.getLogger("winmdm.management")

SYNCML_TYPE = "application/vnd.syncml.dm+xml"
# The check-in metric's result, by the HTTP status the message was answered with.
_RESULTS = {
    200: "answered",
    400: "bad_request",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


async def management(request: Request) -> Response:
    """One management message (a check-in), counted by how it was answered."""
    runtime: Runtime = request.app.state.runtime
    response = await _management(request, runtime)
    runtime.metrics.checkin(_RESULTS.get(response.status_code, "other"))
    return response


async def _management(request: Request, runtime: Runtime) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != SYNCML_TYPE:
        return PlainTextResponse(f"Send OMA-DM SyncML with Content-Type {SYNCML_TYPE}.", status_code=415)
    try:
        body = await read_bounded(request, runtime.config.max_body_bytes)
    except BodyNotReceived as exc:
        return PlainTextResponse(exc.message, status_code=408 if exc.timed_out else 400)
    except (HostileInput, MalformedMessage) as exc:
        return PlainTextResponse(exc.message, status_code=413 if isinstance(exc, HostileInput) else 400)
    cert = peer_certificate(
        request.scope,
        trusted_proxies=runtime.config.trusted_proxies,
        header_name=runtime.config.client_cert_header,
    )
    if cert is not None:
        log_context.bind(device=_common_name(cert))
    try:
        handle = functools.partial(runtime.management.handle, body, client_cert=cert)
        answer = await _in_thread(request, runtime, handle)
    except MalformedMessage as exc:
        return PlainTextResponse(f"Not an OMA-DM message: {exc.message}", status_code=400)
    except WinMDMError as exc:
        log.warning("management message refused: %s", exc.message)
        return PlainTextResponse(exc.message, status_code=400)
    except SQLAlchemyError:
        log.exception("storage failed during a management session")
        return PlainTextResponse(
            "The server could not save the session; the device will retry.", status_code=503
        )
    return Response(answer, media_type=SYNCML_TYPE)


async def _in_thread(request: Request, runtime: Runtime, handle: Callable[[], bytes]) -> bytes:
    """`handle` off the event loop: it waits on the database.

    SQLite has one writer, and every answered message writes: one thread of its own handles
    messages in turn, from its executor's queue, rather than many threads queueing on the
    database lock (and on each other for the GIL). A queue of one thread, not anyio's limiter of
    one: the thread takes the next message without a trip through the event loop (~100 µs less CPU
    per check-in, benchmarks/README.md). PostgreSQL takes anyio's threads: its writes wait on the
    network, and there one thread per message measured the same.
    """
    executor = _sqlite_executor(request, runtime)
    if executor is None:
        return await anyio.to_thread.run_sync(handle)
    # As anyio does: the message's log context (log_context.bind) goes with it.
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, context.run, handle)


def _sqlite_executor(request: Request, runtime: Runtime) -> ThreadPoolExecutor | None:
    executor = getattr(request.app.state, "management_executor", False)
    if executor is False:
        sqlite = runtime.engine is not None and runtime.engine.dialect.name == "sqlite"
        executor = request.app.state.management_executor = (
            ThreadPoolExecutor(1, thread_name_prefix="winmdm-management") if sqlite else None
        )
    return executor


def _common_name(cert: x509.Certificate) -> str | None:
    """The DeviceID winmdm wrote as the certificate's CN at enrollment (as presented: the
    service, not this, decides whether the certificate proves anything)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value)[:64] if names else None


def routes() -> list[Route]:
    return [Route(paths.MANAGEMENT_PATH, management, methods=["POST"])]

"""Device enrollment endpoints: discovery (MS-MDE2 §3.1), policy (MS-XCEP), enrollment (MS-WSTEP).

Each SOAP path dispatches on a:Action, since Windows may use one URL for policy and enrollment.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from winmdm.errors import EnrollmentServerError, HostileInput, MalformedMessage, WinMDMError
from winmdm.protocol import discovery, soap, wstep, xcep
from winmdm.protocol import namespaces as ns
from winmdm.runtime import Runtime, utc_now
from winmdm.services import endpoints as paths
from winmdm.services.deep_link import LINK_TOKEN_PARAMETER
from winmdm.web.body import read_bounded
from winmdm.web.faults import SOAP_CONTENT_TYPE, fault_response

log = logging.getLogger("winmdm.enrollment")

_RESPONSE_ACTION = {
    ns.ACTION_DISCOVER: ns.ACTION_DISCOVER_RESPONSE,
    ns.ACTION_GET_POLICIES: ns.ACTION_GET_POLICIES_RESPONSE,
    ns.ACTION_RST: ns.ACTION_RSTRC,
}
_DEFAULT_ACTION = {
    paths.DISCOVERY_PATH: ns.ACTION_DISCOVER_RESPONSE,
    paths.POLICY_PATH: ns.ACTION_GET_POLICIES_RESPONSE,
    paths.ENROLLMENT_PATH: ns.ACTION_RSTRC,
}
_SOAP_TYPES = ("application/soap+xml", "text/xml", "application/xml")


async def discovery_probe(request: Request) -> Response:
    """Windows GETs the discovery URL before POSTing Discover: 200 with an empty body."""
    return Response(b"", status_code=200, media_type="text/html")


async def soap_endpoint(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    activity_id = str(uuid.uuid4())
    fallback_action = _DEFAULT_ACTION[request.url.path]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _SOAP_TYPES:
        return PlainTextResponse(
            "Send a SOAP 1.2 message with Content-Type application/soap+xml.", status_code=415
        )
    try:
        body = await read_bounded(request, runtime.config.max_body_bytes)
        envelope = soap.parse_envelope(body, max_bytes=runtime.config.max_body_bytes)
    except HostileInput as exc:
        return fault_response(exc, action=fallback_action, relates_to=None, activity_id=activity_id)
    except soap.UnreadableSecurity as exc:
        return fault_response(
            exc,
            action=_RESPONSE_ACTION.get(exc.action, fallback_action),
            relates_to=exc.message_id,
            activity_id=activity_id,
            soap_ns=exc.soap_ns,
        )
    except MalformedMessage as exc:
        # Not SOAP at all: the only case answered with a 4xx (protocol.md decision 1).
        return PlainTextResponse(f"Not a SOAP message: {exc.message}", status_code=400)
    action = _RESPONSE_ACTION.get(envelope.action, fallback_action)
    reply = {
        "action": action,
        "relates_to": envelope.message_id,
        "activity_id": activity_id,
        "soap_ns": envelope.soap_ns,
    }
    try:
        link_token = request.query_params.get(LINK_TOKEN_PARAMETER)
        answer = await run_in_threadpool(_answer, runtime, envelope, activity_id, link_token)
    except WinMDMError as exc:
        return fault_response(exc, **reply)
    except SQLAlchemyError:
        log.exception("storage failed (activity %s)", activity_id)
        return fault_response(
            EnrollmentServerError("the server could not save the enrollment; try again later"), **reply
        )
    except Exception:
        log.exception("unexpected failure (activity %s)", activity_id)
        return fault_response(None, **reply)
    return Response(answer, status_code=200, media_type=SOAP_CONTENT_TYPE)


def _answer(
    runtime: Runtime, envelope: soap.Envelope, activity_id: str, link_token: str | None = None
) -> bytes:
    service = runtime.enrollment
    common = {"relates_to": envelope.message_id, "activity_id": activity_id, "soap_ns": envelope.soap_ns}
    if envelope.action == ns.ACTION_DISCOVER:
        result = service.discover(discovery.parse_discover(envelope), link_token=link_token)
        return discovery.build_discover_response(result, **common)
    if envelope.action == ns.ACTION_GET_POLICIES:
        xcep.parse_get_policies(envelope)
        return xcep.build_get_policies_response(service.policy_terms(envelope.security), **common)
    if envelope.action == ns.ACTION_RST:
        document = service.request_token(wstep.parse_rst(envelope))
        return wstep.build_rstr(document, now=utc_now(), **common)
    raise MalformedMessage(f"unknown SOAP action {envelope.action[:200]!r}")


def routes() -> list[Route]:
    return [
        Route(paths.DISCOVERY_PATH, discovery_probe, methods=["GET", "HEAD"]),
        Route(paths.DISCOVERY_PATH, soap_endpoint, methods=["POST"]),
        Route(paths.POLICY_PATH, soap_endpoint, methods=["POST"]),
        Route(paths.ENROLLMENT_PATH, soap_endpoint, methods=["POST"]),
    ]

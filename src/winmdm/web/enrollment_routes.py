"""Device enrollment endpoints: discovery (MS-MDE2 §3.1), policy (MS-XCEP), enrollment (MS-WSTEP).

Each SOAP path dispatches on a:Action, since Windows may use one URL for policy and enrollment.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from winmdm import log_context
from winmdm.errors import EnrollmentServerError, HostileInput, MalformedMessage, WinMDMError
from winmdm.metrics import path_label
from winmdm.protocol import discovery, soap, wstep, xcep
from winmdm.protocol import namespaces as ns
from winmdm.protocol.soap import FaultCode
from winmdm.runtime import Runtime, utc_now
from winmdm.services import endpoints as paths
from winmdm.services.deep_link import LINK_TOKEN_PARAMETER
from winmdm.services.enrollment import EnrollmentOutcome
from winmdm.services.enrollment_path import RENEWAL, claimed_path, path_of
from winmdm.web.body import read_bounded
from winmdm.web.faults import SOAP_CONTENT_TYPE, fault_code, fault_response

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


@dataclass
class _Attempt:
    """What one SOAP request turned out to be, for the metrics: an enrollment (RST) and the
    path it claimed, then the path it enrolled by."""

    enrollment: bool = False
    path: str | None = None
    fault: FaultCode | None = None  # the fault it was answered with

    def refused(self, error: WinMDMError | None, **reply) -> Response:
        """The SOAP fault for `error` (None: unexpected), remembered for the metrics."""
        self.fault = FaultCode.INTERNAL_SERVICE_FAULT if error is None else fault_code(error)
        return fault_response(error, **reply)


async def discovery_probe(request: Request) -> Response:
    """Windows GETs the discovery URL before POSTing Discover: 200 with an empty body."""
    return Response(b"", status_code=200, media_type="text/html")


async def soap_endpoint(request: Request) -> Response:
    """A SOAP request, counted: every fault by its code, every enrollment by path and result."""
    runtime: Runtime = request.app.state.runtime
    attempt = _Attempt()
    response = await _soap(request, runtime, attempt)
    result = "success"
    if attempt.fault is not None:
        result = attempt.fault.value[1]  # MessageFormat, Authentication, ...
        runtime.metrics.soap_faults.labels(result).inc()
    elif response.status_code != 200:
        result = "not_soap"  # 415 or 400: not a SOAP message at all
    if attempt.enrollment:
        runtime.metrics.enrollments.labels(path_label(attempt.path), result).inc()
    return response


async def _soap(request: Request, runtime: Runtime, attempt: _Attempt) -> Response:
    activity_id = str(uuid.uuid4())
    log_context.bind(activity=activity_id)
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
        return attempt.refused(exc, action=fallback_action, relates_to=None, activity_id=activity_id)
    except soap.UnreadableSecurity as exc:
        attempt.enrollment = exc.action == ns.ACTION_RST
        return attempt.refused(
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
    attempt.enrollment = envelope.action == ns.ACTION_RST
    reply = {
        "action": action,
        "relates_to": envelope.message_id,
        "activity_id": activity_id,
        "soap_ns": envelope.soap_ns,
    }
    try:
        link_token = request.query_params.get(LINK_TOKEN_PARAMETER)
        answer = await run_in_threadpool(_answer, runtime, envelope, activity_id, link_token, attempt)
    except WinMDMError as exc:
        return attempt.refused(exc, **reply)
    except SQLAlchemyError:
        log.exception("storage failed (activity %s)", activity_id)
        return attempt.refused(
            EnrollmentServerError("the server could not save the enrollment; try again later"), **reply
        )
    except Exception:
        log.exception("unexpected failure (activity %s)", activity_id)
        return attempt.refused(None, **reply)
    return Response(answer, status_code=200, media_type=SOAP_CONTENT_TYPE)


def _answer(
    runtime: Runtime,
    envelope: soap.Envelope,
    activity_id: str,
    link_token: str | None = None,
    attempt: _Attempt | None = None,
) -> bytes:
    attempt = attempt or _Attempt()
    service = runtime.enrollment
    common = {"relates_to": envelope.message_id, "activity_id": activity_id, "soap_ns": envelope.soap_ns}
    if envelope.action == ns.ACTION_DISCOVER:
        result = service.discover(discovery.parse_discover(envelope), link_token=link_token)
        return discovery.build_discover_response(result, **common)
    if envelope.action == ns.ACTION_GET_POLICIES:
        xcep.parse_get_policies(envelope)
        return xcep.build_get_policies_response(service.policy_terms(envelope.security), **common)
    if envelope.action == ns.ACTION_RST:
        rst = wstep.parse_rst(envelope)
        attempt.path = claimed_path(rst)
        log_context.bind(device=(rst.context.get("DeviceID") or "")[:64] or None)
        outcome = service.request_token(rst)
        if isinstance(outcome, EnrollmentOutcome):
            attempt.path = path_of(outcome.enrollment)
            log_context.bind(host=outcome.host.id)
        else:
            attempt.path = RENEWAL
            log_context.bind(host=outcome.certificate.host_id)
        return wstep.build_rstr(outcome.document, now=utc_now(), **common)
    raise MalformedMessage(f"unknown SOAP action {envelope.action[:200]!r}")


def routes() -> list[Route]:
    return [
        Route(paths.DISCOVERY_PATH, discovery_probe, methods=["GET", "HEAD"]),
        Route(paths.DISCOVERY_PATH, soap_endpoint, methods=["POST"]),
        Route(paths.POLICY_PATH, soap_endpoint, methods=["POST"]),
        Route(paths.ENROLLMENT_PATH, soap_endpoint, methods=["POST"]),
    ]

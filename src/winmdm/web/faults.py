"""Translates winmdm errors into the MS-MDE2 SOAP fault Windows understands (protocol.md §4).

HTTP 500 for every fault (protocol.md decision 1): with 200 or 400 Windows shows a generic
code instead of the fault's own.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    CertificateRequestRejected,
    InvalidSecurity,
    MalformedMessage,
    WinMDMError,
)
from winmdm.protocol import namespaces as ns
from winmdm.protocol.soap import FaultCode, FaultDetailType, build_fault

log = logging.getLogger("winmdm.enrollment")

SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"

_CODES: tuple[tuple[type[WinMDMError], FaultCode], ...] = (
    (InvalidSecurity, FaultCode.INVALID_SECURITY),
    (MalformedMessage, FaultCode.MESSAGE_FORMAT),
    (AuthenticationFailed, FaultCode.AUTHENTICATION),
    (AuthorizationFailed, FaultCode.AUTHORIZATION),
    (CertificateRequestRejected, FaultCode.CERTIFICATE_REQUEST),
)


def fault_code(error: WinMDMError) -> FaultCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return FaultCode.ENROLLMENT_SERVER  # storage, upstream IdP, anything else of ours


def fault_response(
    error: WinMDMError | None,
    *,
    action: str,
    relates_to: str | None,
    activity_id: str,
    soap_ns: str = ns.SOAP12,
) -> Response:
    """The fault for `error`; None means an unexpected failure (InternalServiceFault)."""
    if error is None:
        code, reason, detail = FaultCode.INTERNAL_SERVICE_FAULT, "the server failed unexpectedly", None
    else:
        code, reason = fault_code(error), error.message
        detail = FaultDetailType(error.detail_type) if error.detail_type else None
    log.warning("answered %s (activity %s): %s", code.qname, activity_id, reason)
    body = build_fault(
        code,
        reason,
        action=action,
        relates_to=relates_to,
        activity_id=activity_id,
        detail=detail,
        soap_ns=soap_ns,
    )
    return Response(body, status_code=500, media_type=SOAP_CONTENT_TYPE)

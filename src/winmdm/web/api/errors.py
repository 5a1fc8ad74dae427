"""One JSON error shape for the whole API: {"error": {"code", "message", "field"}} (docs/api.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    Conflict,
    HostileInput,
    InvalidInput,
    MalformedMessage,
    NotFound,
    PremiumRequired,
    RateLimited,
    UpstreamUnavailable,
    WinMDMError,
)

log = logging.getLogger("winmdm.api")

# Most specific first: PremiumRequired is an InvalidInput, HostileInput a MalformedMessage.
_STATUS: tuple[tuple[type[WinMDMError], int, str], ...] = (
    (PremiumRequired, 422, "premium_required"),
    (InvalidInput, 422, "invalid"),
    (HostileInput, 413, "too_large"),
    (MalformedMessage, 400, "bad_request"),
    (AuthenticationFailed, 401, "unauthenticated"),
    (AuthorizationFailed, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "rate_limited"),
    (UpstreamUnavailable, 502, "upstream_unavailable"),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(error: WinMDMError) -> JSONResponse:
    status, code = 500, "server_error"
    for kind, http_status, name in _STATUS:
        if isinstance(error, kind):
            status, code = http_status, name
            break
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="winmdm"'
    field = getattr(error, "field", None)
    return JSONResponse(error_body(code, error.message, field), status_code=status, headers=headers)


def field_path(loc: Sequence[str | int]) -> str | None:
    """pydantic's loc ("body", "mdm", "x") -> "mdm.x"; list positions become [n]."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def install(app: FastAPI) -> None:
    @app.exception_handler(WinMDMError)
    async def _winmdm(request: Request, exc: WinMDMError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = field_path(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            return JSONResponse(
                error_body("bad_request", "the body is not valid JSON: send a JSON object"), status_code=400
            )
        message = str(first.get("msg", "invalid value"))
        if first.get("type") == "missing":
            message = "this field is required"
        elif first.get("type") == "extra_forbidden":
            message = "this field is not known here; see /api/v1/docs for the fields this endpoint takes"
        text = f"{field}: {message}" if field else message
        return JSONResponse(error_body("invalid", text, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is no API endpoint {request.url.path}; see /api/v1/docs"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /api/v1/docs"
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API %s %s failed", request.method, request.url.path)
        return JSONResponse(
            error_body("server_error", "the server failed unexpectedly; the error was logged"),
            status_code=500,
        )

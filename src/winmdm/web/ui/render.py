"""Pages: one Jinja2 environment (autoescaped), the security headers every page carries, and
the notice that survives a redirect after a successful form.

Every page is self-contained in the sense of the Content-Security-Policy: styles and scripts come
only from /static/, never inline, so a value an admin or a device sent can never run as code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

STATIC_PREFIX = "/static"
NOTICE_COOKIE = "winmdm_notice"
_NOTICE_MAX = 300

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _when(value: datetime | None) -> str:
    """Times in UTC, minutes precision: what an admin compares across hosts."""
    if value is None:
        return "Never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


_env = Environment(
    loader=PackageLoader("winmdm.web.ui", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.filters["iso"] = _iso
_env.globals["static"] = lambda name: f"{STATIC_PREFIX}/{name}"


def html(template: str, context: Mapping[str, Any], *, status: int = 200) -> Response:
    body = _env.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def redirect(url: str, *, notice: str | None = None) -> Response:
    """303 after a POST that worked; `notice` is shown once on the next page."""
    response = RedirectResponse(url, status_code=303, headers=HEADERS)
    if notice:
        response.set_cookie(
            NOTICE_COOKIE,
            quote(notice[:_NOTICE_MAX], safe=""),
            max_age=60,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
    return response


def take_notice(cookies: Mapping[str, str], response: Response) -> None:
    """Nothing to do if there is no notice; the cookie is cleared by the page that shows it."""
    if NOTICE_COOKIE in cookies:
        response.delete_cookie(NOTICE_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def read_notice(cookies: Mapping[str, str]) -> str | None:
    raw = cookies.get(NOTICE_COOKIE)
    if not raw:
        return None
    text = unquote(raw)[:_NOTICE_MAX]
    return "".join(c for c in text if c.isprintable()) or None

"""What every admin page shares: the signed-in admin, the CSRF check on every POST, the role a
POST needs (checked here, whatever the page showed), and the answer for errors the services raise.

Handlers are plain functions of a `Page`; they run in a worker thread because the services are
synchronous (SQLAlchemy), as the REST API's endpoints do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from winmdm import log_context
from winmdm.domain.admin import Principal, Role
from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    HostileInput,
    InvalidInput,
    MalformedMessage,
    NotFound,
    WinMDMError,
)
from winmdm.runtime import Runtime
from winmdm.web.ids import MAX_ID
from winmdm.web.ui import render
from winmdm.web.ui.forms import FORM_LIMIT, Form, read_form
from winmdm.web.ui.session import CSRF_FIELD, CSRF_REFUSED, csrf_matches, csrf_token, session_token

log = logging.getLogger("winmdm.ui")

Handler = Callable[["Page"], Response]

NAV = (
    ("dashboard", "Dashboard", "/"),
    ("hosts", "Hosts", "/hosts"),
    ("teams", "Teams", "/teams"),
    ("profiles", "Profiles", "/profiles"),
    ("policies", "Policies", "/policies"),
    ("activities", "Activities", "/activities"),
    ("settings", "Settings", "/settings/mdm/windows"),
)


@dataclass
class Page:
    request: Request
    runtime: Runtime
    principal: Principal
    csrf: str
    section: str
    form: Form = field(default_factory=Form)

    @property
    def admin(self):
        return self.principal.admin

    @property
    def actor(self) -> str:
        return self.principal.admin.email

    def can(self, role: Role | str) -> bool:
        return self.principal.admin.role.allows(Role(role))

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def path_id(self, name: str) -> int:
        """An id of the path (routes declare them `:int`, so digits): one past what the id
        columns hold names nothing, so it is not found rather than a database error."""
        value = int(self.request.path_params[name])
        if value > MAX_ID:
            raise NotFound(f"no {name.removesuffix('_id')} with id {value}")
        return value

    def render(self, template: str, *, status: int = 200, **context: Any) -> Response:
        notice = render.read_notice(self.request.cookies)
        values = {
            "page": self,
            "nav": NAV,
            "section": self.section,
            "organization": self.runtime.config.organization,
            "csrf_field": CSRF_FIELD,
            "notice": notice,
            **context,
        }
        response = render.html(template, values, status=status)
        if notice is not None:
            render.take_notice(self.request.cookies, response)
        return response

    def error(self, status: int, title: str, message: str) -> Response:
        return self.render("error.html", status=status, title=title, message=message, back=self.back())

    def back(self) -> str:
        """The page the form was on (same site only), for the link on an error page."""
        referer = urlsplit(self.request.headers.get("referer", ""))
        if referer.netloc and referer.netloc != self.request.url.netloc:
            return "/"
        path = referer.path or "/"
        return path + (f"?{referer.query}" if referer.query else "") if path.startswith("/") else "/"


def whole_number(value: str, field: str) -> int | None:
    """A query string's page number or id: None when empty, else a whole number from 1 that an
    id column can hold."""
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > len(str(MAX_ID)) or not 1 <= int(value) <= MAX_ID:
        shown = value[:20]
        raise InvalidInput(f"{field} must be a whole number from 1 to {MAX_ID}, not {shown!r}", field=field)
    return int(value)


def admin_page(
    section: str, *, needs: Role | None = None, limit: int = FORM_LIMIT
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wraps a handler: signed in or off to /login; POSTs carry the session's CSRF token and
    need `needs` (every GET is open to every role: observers read everything)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            runtime: Runtime = request.app.state.runtime
            token = session_token(request.cookies)
            principal = None
            if token is not None:
                try:
                    principal = await run_in_threadpool(runtime.accounts.authenticate, token)
                except AuthenticationFailed:
                    principal = None
            if principal is None or token is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                notice = None if token is None else "Your session has ended. Sign in again."
                return render.redirect("/login?next=" + quote(target, safe="/"), notice=notice)
            log_context.bind(admin=principal.admin.email)
            page = Page(request, runtime, principal, csrf_token(runtime, token), section)
            if request.method == "POST":
                try:
                    page.form = await read_form(request, limit)
                except HostileInput:
                    return page.error(413, "The upload is too large", f"The limit is {limit} bytes.")
                except MalformedMessage as exc:
                    return page.error(400, "The form can't be read", exc.message)
                if not csrf_matches(page.csrf, page.form.get(CSRF_FIELD)):
                    log.warning("UI: POST %s without a valid CSRF token refused", request.url.path)
                    return page.error(403, "This form can't be accepted", CSRF_REFUSED)
                if needs is not None:
                    try:
                        principal.require(needs)  # the API's check, so the API's 403 message
                    except AuthorizationFailed as exc:
                        return page.error(403, "You can't do this", exc.message)
            try:
                return await run_in_threadpool(handler, page)
            except NotFound as exc:
                return page.error(404, "Not found", exc.message)
            except AuthorizationFailed as exc:
                return page.error(403, "You can't do this", exc.message)
            except WinMDMError as exc:
                return page.error(400, "That didn't work", exc.message)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap

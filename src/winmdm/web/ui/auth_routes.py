"""Sign-in and sign-out of admins, and the end-user enrollment page (no admin sign-in)."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from winmdm.errors import AuthenticationFailed, HostileInput, MalformedMessage, RateLimited
from winmdm.runtime import Runtime
from winmdm.services.instructions import enrollment_instructions
from winmdm.web.ui import render
from winmdm.web.ui.forms import read_form
from winmdm.web.ui.page import Page, admin_page
from winmdm.web.ui.session import (
    CSRF_REFUSED,
    csrf_matches,
    end_session,
    login_csrf,
    new_login_csrf,
    session_token,
    set_login_csrf,
    start_session,
)

log = logging.getLogger("winmdm.ui")

LOGIN_PATH = "/login"
ENROLL_PATH = "/enroll"
_MAX_EMAIL = 320
_MAX_PASSWORD = 1024


def safe_next(value: str | None) -> str:
    """Only a path on this site: never //host or a scheme, so sign-in cannot send anyone away."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(not c.isprintable() for c in value) or len(value) > 2000:
        return "/"
    return value


def _login_page(
    request: Request, *, status: int = 200, error: str | None = None, email: str = "", next_url: str = "/"
) -> Response:
    runtime: Runtime = request.app.state.runtime
    csrf = new_login_csrf()
    notice = render.read_notice(request.cookies)
    response = render.html(
        "login.html",
        {
            "title": "Sign in",
            "organization": runtime.config.organization,
            "csrf": csrf,
            "error": error,
            "email": email,
            "next": next_url,
            "notice": notice,
        },
        status=status,
    )
    set_login_csrf(response, csrf)
    if notice is not None:
        render.take_notice(request.cookies, response)
    return response


async def login_form(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    token = session_token(request.cookies)
    next_url = safe_next(request.query_params.get("next"))
    if token is not None:
        try:
            await run_in_threadpool(runtime.accounts.authenticate, token)
            return render.redirect(next_url)
        except AuthenticationFailed:
            pass
    return _login_page(request, next_url=next_url)


async def login(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        form = await read_form(request)
    except (HostileInput, MalformedMessage):
        return _login_page(request, status=400, error="The sign-in form can't be read. Try again.")
    next_url = safe_next(form.get("next"))
    email = form.text("email")[:_MAX_EMAIL]
    expected = login_csrf(request.cookies)
    if expected is None or not csrf_matches(expected, form.get("csrf_token")):
        log.warning("UI: sign-in POST without a valid CSRF token refused")
        return _login_page(request, status=403, error=CSRF_REFUSED, email=email, next_url=next_url)
    password = form.get("password")[:_MAX_PASSWORD]
    if not email or not password:
        return _login_page(
            request, status=400, error="Enter your email and password.", email=email, next_url=next_url
        )
    client = request.client.host if request.client else "unknown"
    try:
        issued = await run_in_threadpool(runtime.accounts.login, email, password, client)
    except RateLimited as exc:
        response = _login_page(request, status=429, error=exc.message, email=email, next_url=next_url)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthenticationFailed as exc:
        return _login_page(request, status=401, error=exc.message, email=email, next_url=next_url)
    response = render.redirect(next_url)
    start_session(response, issued.token, issued.expires_at)
    return response


@admin_page("account")
def logout(page: Page) -> Response:
    page.runtime.accounts.logout(page.principal.token_id)
    response = render.redirect(LOGIN_PATH, notice="You signed out.")
    end_session(response)
    return response


async def enroll(request: Request) -> Response:
    """For end users, no sign-in: what to do in Settings, the deep link, the server address."""
    runtime: Runtime = request.app.state.runtime
    if runtime.deep_links is None:
        raise RuntimeError("the end-user page needs the runtime's deep links")
    instructions = enrollment_instructions(
        runtime.endpoints,
        runtime.deep_links,
        entra=bool(runtime.config.entra_tenant_ids),
        now=runtime.clock(),
    )
    return render.html(
        "enroll.html",
        {
            "title": "Turn on device management",
            "organization": runtime.config.organization,
            "instructions": instructions,
        },
    )


def routes() -> list[Route]:
    return [
        Route(LOGIN_PATH, login_form, methods=["GET"]),
        Route(LOGIN_PATH, login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route(ENROLL_PATH, enroll, methods=["GET"]),
    ]

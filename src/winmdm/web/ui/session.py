"""The admin UI's session: a cookie holding the session token AdminAccounts.login issued, and a
CSRF token for every form.

The cookie is ``__Host-`` prefixed (Secure, Path=/, no Domain: no other host can set or read it),
HttpOnly and SameSite=Lax. The CSRF token is an HMAC of the session token under a key derived
from the data dir's master key, so it is per session, needs no storage, and every instance sharing
the data dir's keys accepts it. Sign-in itself is protected by a double-submit token (a random
cookie the form must repeat), so no other site can sign a browser in to an account of its choice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from starlette.responses import Response

from winmdm.runtime import Runtime

SESSION_COOKIE = "__Host-winmdm_session"
LOGIN_COOKIE = "__Host-winmdm_login"
CSRF_FIELD = "csrf_token"
_MAX_TOKEN = 512

CSRF_REFUSED = (
    "This form wasn't sent from a winmdm page, or it is out of date: its security token is missing "
    "or wrong. Go back, reload the page and try again."
)


def _key(runtime: Runtime) -> bytes:
    tokens = runtime.enrollment_tokens
    if tokens is None:  # build() always makes it; a hand-made Runtime may not
        raise RuntimeError("the admin UI needs the runtime's enrollment-token key")
    return tokens.subkey("admin ui csrf")


def session_token(cookies: dict[str, str]) -> str | None:
    token = cookies.get(SESSION_COOKIE)
    if not token or len(token) > _MAX_TOKEN or not token.isascii():
        return None
    return token


def csrf_token(runtime: Runtime, token: str) -> str:
    return hmac.new(_key(runtime), token.encode(), hashlib.sha256).hexdigest()


def csrf_matches(expected: str, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(expected.encode(), sent.encode())


def start_session(response: Response, token: str, expires_at: datetime) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        expires=expires_at,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def login_csrf(cookies: dict[str, str]) -> str | None:
    value = cookies.get(LOGIN_COOKIE)
    return value if value and len(value) <= 64 and value.isascii() else None


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_login_csrf(response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, value, max_age=3600, path="/", secure=True, httponly=True, samesite="strict"
    )

"""winmdm's own sign-in page: the AuthenticationServiceUrl of MDM-only enrollment (protocol.md §5).

Windows opens ``GET /EnrollmentServer/Authenticate?appru=...&login_hint=...`` in its web view. The
page sends the user to the configured OIDC provider (code + PKCE + nonce, idp/oidc.py); the
provider sends them back to ``/EnrollmentServer/Authenticate/callback``, and the answer is the
auto-POST form of MS-MDE2 §3.2 that hands Windows ``wresult``, an enrollment token
(idp/enrollment_token.py), at exactly the ``appru`` it came with.

What must survive the round trip (appru, login_hint, PKCE verifier, nonce, state) rides in a
signed cookie that expires with the sign-in, so any winmdm instance can finish a sign-in another
one started. Every value put in a page is HTML-escaped; every page is self-contained, so a strict
Content-Security-Policy holds. Whatever the query says, the answer is a page, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from winmdm.errors import AuthenticationFailed, UpstreamUnavailable
from winmdm.runtime import Runtime, utc_now
from winmdm.services.authentication import NOT_SET_UP, OIDC_SETTINGS
from winmdm.services.deep_link import LINK_TOKEN_PARAMETER
from winmdm.services.endpoints import AUTHENTICATION_PATH

__all__ = ["CALLBACK_PATH", "COOKIE", "SignInFlow", "routes", "seal", "unseal"]

log = logging.getLogger("winmdm.signin")

CALLBACK_PATH = AUTHENTICATION_PATH + "/callback"
COOKIE = "winmdm_signin"
FLOW_LIFETIME = timedelta(minutes=10)
# Windows posts back to ms-app:// addresses only (MS-MDE2 §3.2: "<appid> is of the form
# ms-app://string"; desktop Settings sends ms-app://windows.immersivecontrolpanel): any other
# address would receive the enrollment token. https ones only as an admin lists them exactly.
_WINDOWS_SCHEME = "ms-app"
_NOT_IN_URLS = frozenset("<>\"'\\`{}|^")  # RFC 3986 never allows them unencoded
_LIMITS = {"appru": 2048, "login_hint": 256, "code": 4096, "state": 256}
_START_AGAIN = (
    "Start again from Settings > Accounts > Access work or school: select Enroll only in device management."
)
_STYLE = (
    "body{font-family:'Segoe UI',system-ui,sans-serif;margin:1.5rem;max-width:36rem;"
    "line-height:1.45;color:#1b1b1b}h1{font-size:1.3rem;font-weight:600}"
    "input[type=submit]{font:inherit;padding:.4rem 1.2rem}"
)
_SCRIPT = "window.onload=function(){document.forms[0].submit();};"


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_CSP = (
    f"default-src 'none'; style-src {_sha256_source(_STYLE)}; script-src {_sha256_source(_SCRIPT)}; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class SignInFlow:
    """One sign-in between the first page and the callback."""

    state: str
    appru: str
    login_hint: str | None
    code_verifier: str
    nonce: str


def seal(flow: SignInFlow, key: bytes, now: datetime, lifetime: timedelta = FLOW_LIFETIME) -> str:
    issued = int(now.timestamp())
    claims = {
        "st": flow.state,
        "ap": flow.appru,
        "lh": flow.login_hint,
        "cv": flow.code_verifier,
        "n": flow.nonce,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def unseal(value: str | None, key: bytes, now: datetime) -> SignInFlow | None:
    """The flow in a cookie this server sealed and that has not expired; None otherwise."""
    if not value or len(value) > 8192:
        return None
    options: Any = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
    try:
        claims = jwt.decode(value, key, algorithms=["HS256"], options=options)
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or now.timestamp() >= exp:
        return None
    values = [claims.get(k) for k in ("st", "ap", "cv", "n")]
    hint = claims.get("lh")
    if not all(isinstance(v, str) and v for v in values) or not (hint is None or isinstance(hint, str)):
        return None
    state, appru, verifier, nonce = values
    return SignInFlow(state, appru, hint, verifier, nonce)


def appru_problem(appru: str | None, allowed: tuple[str, ...] = ()) -> str | None:
    """Why ``appru`` cannot be posted to, or None: Windows' ms-app:// addresses, and the exact
    URLs an admin allowed (WINMDM_ALLOWED_APPRU; docs/configuration.md)."""
    if not appru:
        return "the page was opened without a return address (appru)"
    if len(appru) > _LIMITS["appru"]:
        return "the return address (appru) is too long"
    if any(not c.isprintable() or c.isspace() or c in _NOT_IN_URLS for c in appru):
        return "the return address (appru) contains characters a URL cannot hold"
    try:
        parts = urlsplit(appru)
    except ValueError:
        return "the return address (appru) is not a URL"
    if appru in allowed:
        return None
    if parts.scheme.lower() != _WINDOWS_SCHEME or not parts.netloc:
        return "the return address (appru) is not a Windows ms-app:// address"
    return None


# -- routes ------------------------------------------------------------------------------------


async def authenticate(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    params = request.query_params  # other parameters are allowed and left alone (protocol.md §5)
    appru = params.get("appru")
    problem = appru_problem(appru, runtime.config.allowed_appru)
    if problem is not None:
        return _page(
            400,
            "This sign-in page can't continue",
            [
                f"{problem[0].upper()}{problem[1:]}: {_shown(appru)}.",
                "Windows opens this page itself during enrollment.",
            ],
            then=_START_AGAIN,
        )
    assert appru is not None
    hint = (params.get("login_hint") or "").strip() or None
    if hint is not None and (len(hint) > _LIMITS["login_hint"] or not hint.isprintable()):
        hint = None  # only a convenience for the IdP's form
    oidc, tokens = runtime.oidc, runtime.enrollment_tokens
    link_token = params.get(LINK_TOKEN_PARAMETER)
    if link_token is not None and tokens is not None:
        return _preauthorized(tokens, appru, link_token)
    if oidc is None or tokens is None:
        log.warning(
            "MDM-only enrollment page opened, but no OIDC identity provider is set: set %s", OIDC_SETTINGS
        )
        return _page(
            200,
            "Sign-in isn't available",
            [
                f"{NOT_SET_UP}.",
                "This server can't check who you are for a device-management-only enrollment yet. "
                "Select Close to go back to Windows.",
            ],
            form=(appru, "sign-in-not-configured", "Close"),
        )
    now = utc_now()
    try:
        start = await run_in_threadpool(
            oidc.authorization_request,
            redirect_uri=runtime.endpoints.base_url + CALLBACK_PATH,
            now=now,
            login_hint=hint,
        )
    except UpstreamUnavailable as exc:
        log.error("sign-in page: %s", exc.message)
        return _unreachable()
    flow = SignInFlow(start.state, appru, hint, start.code_verifier, start.nonce)
    response = RedirectResponse(start.url, status_code=302, headers=_HEADERS)
    response.set_cookie(
        COOKIE,
        seal(flow, tokens.subkey("sign-in state"), now),
        max_age=int(FLOW_LIFETIME.total_seconds()),
        path=AUTHENTICATION_PATH,
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response


async def callback(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    oidc, tokens = runtime.oidc, runtime.enrollment_tokens
    if oidc is None or tokens is None:
        return _page(400, "Sign-in isn't available", [f"{NOT_SET_UP}."])
    params = request.query_params
    error = params.get("error")
    if error is not None:
        description = params.get("error_description") or ""
        log.warning(
            "sign-in page: the identity provider answered %s: %s", _clip(error, 100), _clip(description, 300)
        )
        said = _clip(error, 100) + (f" ({_clip(description, 300)})" if description else "")
        return _forget(
            _page(
                400,
                "Sign-in wasn't completed",
                [f"Your organization's sign-in service ended the sign-in: {said}."],
                then=_START_AGAIN,
            )
        )
    now = utc_now()
    flow = unseal(request.cookies.get(COOKIE), tokens.subkey("sign-in state"), now)
    state = params.get("state") or ""
    if (
        flow is None
        or len(state) > _LIMITS["state"]
        or not hmac.compare_digest(state.encode(), flow.state.encode())
    ):
        log.info("sign-in page: callback without a matching sign-in in progress (expired or another window)")
        return _forget(
            _page(
                400,
                "This sign-in has expired",
                ["The sign-in took too long, or it was started in another window."],
                then=_START_AGAIN,
            )
        )
    iss = params.get("iss")
    if iss is not None and iss.rstrip("/") != oidc.issuer.rstrip("/"):
        log.warning("sign-in page: callback names issuer %r, not %s", _clip(iss, 200), oidc.issuer)
        return _forget(
            _page(
                400,
                "Sign-in wasn't completed",
                ["The answer came from another sign-in service."],
                then=_START_AGAIN,
            )
        )
    code = params.get("code") or ""
    if not code or len(code) > _LIMITS["code"]:
        return _forget(
            _page(
                400,
                "Sign-in wasn't completed",
                ["The sign-in service sent no answer winmdm can use."],
                then=_START_AGAIN,
            )
        )
    try:
        user = await run_in_threadpool(
            oidc.exchange,
            code=code,
            redirect_uri=runtime.endpoints.base_url + CALLBACK_PATH,
            code_verifier=flow.code_verifier,
            nonce=flow.nonce,
            now=now,
        )
        token = tokens.issue(user.username, now)
    except AuthenticationFailed as exc:
        log.warning("sign-in page: sign-in refused: %s", exc.message)
        return _forget(
            _page(
                403,
                "Your sign-in couldn't be verified",
                ["If this happens again, tell your administrator."],
                then=_START_AGAIN,
            )
        )
    except UpstreamUnavailable as exc:
        log.error("sign-in page: %s", exc.message)
        return _forget(_unreachable())
    log.info("sign-in page: %s signed in; enrollment token issued", user.username)
    return _forget(
        _page(
            200,
            "Signed in",
            [
                f"Signed in as {user.username}.",
                "Returning to Windows to finish setting up device management…",
            ],
            form=(flow.appru, token, "Continue"),
            auto_submit=True,
        )
    )


def _preauthorized(tokens, appru: str, link_token: str) -> Response:
    """A pre-authorized deep link (services/deep_link.py): its token stands in for signing in.
    It is checked here for a clear page, and again (and consumed) by the enrollment."""
    try:
        verified = tokens.verify(link_token, utc_now())
    except AuthenticationFailed as exc:
        log.warning("sign-in page: enrollment link refused: %s", exc.message)
        return _page(
            403,
            "This enrollment link can't be used",
            ["It has expired or isn't valid. Ask your administrator for a new link."],
            then=_START_AGAIN,
        )
    log.info("sign-in page: pre-authorized enrollment link for %s", verified.username)
    return _page(
        200,
        "Enrollment link accepted",
        [f"Setting up device management for {verified.username}…"],
        form=(appru, link_token, "Continue"),
        auto_submit=True,
    )


def routes() -> list[Route]:
    return [
        Route(AUTHENTICATION_PATH, authenticate, methods=["GET"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
    ]


# -- pages -------------------------------------------------------------------------------------


def _page(
    status: int,
    title: str,
    paragraphs: list[str],
    *,
    then: str | None = None,
    form: tuple[str, str, str] | None = None,
    auto_submit: bool = False,
) -> Response:
    """A small self-contained page; every text is escaped here, nowhere else."""
    e = html.escape
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e('Working...' if auto_submit else title)}</title>",
        f"<style>{_STYLE}</style>",
    ]
    if auto_submit:
        head.append(f"<script>{_SCRIPT}</script>")
    body = [f"</head><body><h1>{e(title)}</h1>"]
    body += [f"<p>{e(p)}</p>" for p in paragraphs]
    if then:
        body.append(f"<p>{e(then)}</p>")
    if form is not None:
        action, wresult, label = form
        body.append(
            f'<form method="post" action="{e(action)}">'
            f'<p><input type="hidden" name="wresult" value="{e(wresult)}"/></p>'
            f'<input type="submit" value="{e(label)}"/></form>'
        )
    body.append("</body></html>")
    return Response(
        "\n".join(head + body), status_code=status, media_type="text/html; charset=UTF-8", headers=_HEADERS
    )


def _unreachable() -> Response:
    return _page(
        502,
        "Sign-in isn't available right now",
        [
            "Your organization's sign-in service can't be reached. Try again in a few minutes; "
            "if this keeps happening, tell your administrator."
        ],
        then=_START_AGAIN,
    )


def _forget(response: Response) -> Response:
    """The sign-in is over, whichever way: its cookie goes."""
    response.delete_cookie(COOKIE, path=AUTHENTICATION_PATH, secure=True, httponly=True, samesite="lax")
    return response


def _clip(value: str, limit: int) -> str:
    return "".join(c for c in value if c.isprintable())[:limit]


def _shown(value: str | None) -> str:
    return "(none)" if not value else repr(_clip(value, 200))

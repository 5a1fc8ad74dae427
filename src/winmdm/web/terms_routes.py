"""The Entra MDM terms-of-use page (protocol.md §6): GET shows the terms, POST answers them.

The rules live in :mod:`winmdm.services.terms`; this module renders its decisions. The page is
self-contained (no scripts, no external resources; a Content-Security-Policy says so), dark in
OOBE (``CXH-HOST: FRX``), and every value it shows is HTML-escaped. Nothing a client sends gets a
500 or a traceback: unexpected failures become the contract's ``server_error`` redirect.

With end-user authentication (the device's team's setting, or No team's for a PC winmdm does not
know: services/end_user_auth.py) the GET first sends the user to the OIDC identity provider
(code, PKCE and nonce; ``login_hint`` = the Entra UPN; idp/oidc.py), which sends them back to
``<terms>/callback``; what must survive the round trip rides in a signed cookie scoped to the
terms path (services/terms.py seals it). The callback then shows the terms, naming both users.
The cookie is ``SameSite=None`` (and Secure, HttpOnly): Windows 11 shows the terms inside a frame
of its own host, where a Lax cookie would not come back; the provider's ``state``, compared with
the cookie's, is what ties the callback to the sign-in.
"""

from __future__ import annotations

import logging
from html import escape
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from winmdm.errors import AuthenticationFailed, UpstreamUnavailable, WinMDMError
from winmdm.runtime import Runtime, utc_now
from winmdm.services.endpoints import TERMS_PATH
from winmdm.services.terms import SIGN_IN_LIFETIME, Decision, ErrorCode, Outcome, Prompt, error_redirect
from winmdm.web.body import read_bounded

log = logging.getLogger("winmdm.terms")

CALLBACK_PATH = TERMS_PATH + "/callback"
COOKIE = "winmdm_terms_signin"
_MAX_CODE = 4096

HTML_TYPE = "text/html; charset=UTF-8"
FORM_TYPE = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 16 * 1024
# No form-action: Chromium applies it to the redirect after the POST, which goes to ms-appx-web://.
# No frame-ancestors: Windows 11 shows the terms in an iframe of its own host.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = """
body{margin:0;font-family:"Segoe UI",system-ui,sans-serif;font-size:15px;line-height:1.5;
background:#fff;color:#1b1b1b}
body.dark{background:#1f1f1f;color:#f3f3f3}
main{max-width:40em;margin:0 auto;padding:1.5em}
h1{font-size:1.5em;font-weight:600;margin:0 0 .5em}
.who{opacity:.8}
.terms{border:1px solid #8a8a8a;border-radius:4px;padding:0 1em;margin:1em 0}
form{display:flex;gap:.75em;justify-content:flex-end}
button{font:inherit;padding:.4em 1.6em;border-radius:4px;border:1px solid #8a8a8a;
background:#f3f3f3;color:#1b1b1b;cursor:pointer}
button.primary{background:#005fb8;border-color:#005fb8;color:#fff}
body.dark button{background:#2d2d2d;color:#f3f3f3}
body.dark button.primary{background:#4cc2ff;border-color:#4cc2ff;color:#000}
"""


def _page(title: str, body: str, *, dark: bool, status: int) -> Response:
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body class="{"dark" if dark else "light"}"><main>{body}</main></body></html>'
    )
    headers = {**_HEADERS, "Content-Security-Policy": _CSP}
    return Response(html, status_code=status, media_type=HTML_TYPE, headers=headers)


def _terms_text(organization: str, join: bool) -> str:
    """The default terms (an admin-configurable text is a later issue)."""
    org = escape(organization)
    paragraphs = [
        f"{org} manages devices that use its work or school resources. By accepting, you agree "
        f"that {org} turns on device management (MDM) for this PC.",
        f"{org} can then install and remove its apps, settings and certificates, require "
        "security settings such as a password or disk encryption, and see information about the "
        "device: its name, model, serial number, operating system and the apps it installed.",
        f"Ask your IT administrator what else {org} can see and do.",
    ]
    if not join:
        paragraphs.append(f"If you decline, {org} does not manage this PC.")
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def _prompt(prompt: Prompt, organization: str, *, dark: bool) -> Response:
    org = escape(organization)
    decline = "" if prompt.join else '<button type="submit" name="answer" value="decline">Decline</button>'
    who = f'<p class="who">Signed in as {escape(prompt.user)}</p>'
    if prompt.end_user:
        who += f'<p class="who">Identity provider: signed in as {escape(prompt.end_user)}</p>'
    body = (
        f"<h1>{org}: terms of use</h1>"
        f"{who}"
        f'<div class="terms">{_terms_text(organization, prompt.join)}</div>'
        f'<form method="post" action="{escape(TERMS_PATH)}">'
        f'<input type="hidden" name="state" value="{escape(prompt.state)}">'
        f"{decline}"
        '<button type="submit" name="answer" value="accept" class="primary">Accept</button>'
        "</form>"
    )
    return _page(f"{organization}: terms of use", body, dark=dark, status=200)


def _refusal(message: str, *, dark: bool, status: int) -> Response:
    body = f"<h1>The terms of use cannot be shown</h1><p>{escape(message)}</p>"
    return _page("Terms of use", body, dark=dark, status=status)


def _render(decision: Decision, runtime: Runtime, *, dark: bool, status: int = 400) -> Response:
    if decision.outcome is Outcome.REDIRECT and decision.location:
        return Response(b"", status_code=302, headers={**_HEADERS, "Location": decision.location})
    if decision.outcome is Outcome.SHOW and decision.prompt is not None:
        return _prompt(decision.prompt, runtime.config.organization, dark=dark)
    return _refusal(decision.message, dark=dark, status=status)


def _dark(request: Request) -> bool:
    return request.headers.get("cxh-host", "").strip().upper() == "FRX"


async def show_terms(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    dark = _dark(request)
    params = dict(request.query_params)
    try:
        decision = await run_in_threadpool(runtime.terms.check, request.headers.get("authorization"), params)
        if decision.outcome is Outcome.SIGN_IN:
            return await _start_sign_in(runtime, decision, params, dark=dark)
        return _render(decision, runtime, dark=dark)
    except Exception:
        log.exception("terms of use: unexpected failure showing the page")
        return _render(runtime.terms.server_error(params), runtime, dark=dark, status=503)


async def _start_sign_in(
    runtime: Runtime, decision: Decision, params: dict[str, str], *, dark: bool
) -> Response:
    """End-user authentication: off to the identity provider, the flow in a signed cookie."""
    # check() answers SIGN_IN only after validating both (and only when an IdP is configured).
    redirect_uri, crid = params["redirect_uri"], params["client-request-id"]
    oidc = runtime.oidc
    assert oidc is not None and decision.state is not None
    try:
        start = await run_in_threadpool(
            oidc.authorization_request,
            redirect_uri=runtime.endpoints.base_url + CALLBACK_PATH,
            now=utc_now(),
            login_hint=decision.login_hint,
        )
    except UpstreamUnavailable as exc:
        log.error("terms of use: end-user sign-in unavailable: %s", exc.message)
        description = (
            "Your organization's sign-in service can't be reached, and this organization requires "
            "signing in with it before accepting. Try again in a few minutes; if it keeps failing, "
            "ask your IT administrator."
        )
        return _render(
            error_redirect(redirect_uri, ErrorCode.SERVER_ERROR, description, crid), runtime, dark=dark
        )
    cookie = runtime.terms.begin_sign_in(
        decision.state, state=start.state, code_verifier=start.code_verifier, nonce=start.nonce
    )
    response = Response(b"", status_code=302, headers={**_HEADERS, "Location": start.url})
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(SIGN_IN_LIFETIME.total_seconds()),
        path=TERMS_PATH,
        secure=True,
        httponly=True,
        samesite="none",
    )
    return response


async def sign_in_callback(request: Request) -> Response:
    """The identity provider's answer: the terms, naming both users, or the contract's error."""
    runtime: Runtime = request.app.state.runtime
    dark = _dark(request)
    try:
        return _forget(await _finish_sign_in(request, runtime, dark=dark))
    except Exception:
        log.exception("terms of use: unexpected failure finishing the end-user sign-in")
        pending = runtime.terms.resume_sign_in(request.cookies.get(COOKIE))
        description = (
            "The server failed while checking your sign-in; the error was logged. Try again in a "
            "few minutes; if it keeps failing, ask your IT administrator."
        )
        if pending is None:
            return _forget(_refusal(description, dark=dark, status=503))
        decision = runtime.terms.sign_in_failed(pending, description, server=True)
        return _forget(_render(decision, runtime, dark=dark, status=503))


async def _finish_sign_in(request: Request, runtime: Runtime, *, dark: bool) -> Response:
    terms, oidc = runtime.terms, runtime.oidc
    pending = terms.resume_sign_in(request.cookies.get(COOKIE))
    params = request.query_params
    # The cookie exists only because the GET required the sign-in for this device: that decision
    # stands (the device's team, not necessarily No team's: services/end_user_auth.py).
    if pending is None or oidc is None:
        log.info("terms of use: sign-in callback without a matching sign-in (expired, altered or elsewhere)")
        return _refusal(
            "This sign-in has expired, or it was started in another window. Start again from "
            "Settings > Accounts > Access work or school.",
            dark=dark,
            status=400,
        )
    error = params.get("error")
    if error is not None:
        said = _clip(error, 100)
        detail = _clip(params.get("error_description") or "", 300)
        log.warning("terms of use: the identity provider answered %s: %s", said, detail)
        description = f"Your organization's sign-in service ended the sign-in: {said}" + (
            f" ({detail})." if detail else "."
        )
        return _render(terms.sign_in_failed(pending, description), runtime, dark=dark)
    if not terms.matches(pending, params.get("state")):
        log.warning("terms of use: sign-in callback whose state is not the sign-in's")
        return _refusal(
            "This sign-in answer does not belong to the sign-in this window started. Start again "
            "from Settings > Accounts > Access work or school.",
            dark=dark,
            status=400,
        )
    iss = params.get("iss")
    if iss is not None and iss.rstrip("/") != oidc.issuer.rstrip("/"):
        log.warning("terms of use: sign-in callback names issuer %r, not %s", _clip(iss, 200), oidc.issuer)
        return _render(
            terms.sign_in_failed(pending, "The sign-in answer came from another sign-in service."),
            runtime,
            dark=dark,
        )
    code = params.get("code") or ""
    if not code or len(code) > _MAX_CODE:
        return _render(
            terms.sign_in_failed(pending, "The sign-in service sent no answer this server can use."),
            runtime,
            dark=dark,
        )
    try:
        user = await run_in_threadpool(
            oidc.exchange,
            code=code,
            redirect_uri=runtime.endpoints.base_url + CALLBACK_PATH,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            now=utc_now(),
        )
    except AuthenticationFailed as exc:
        log.warning("terms of use: end-user sign-in refused: %s", exc.message)
        return _render(
            terms.sign_in_failed(
                pending, "Your sign-in with your organization's sign-in service couldn't be verified."
            ),
            runtime,
            dark=dark,
        )
    except UpstreamUnavailable as exc:
        log.error("terms of use: end-user sign-in: %s", exc.message)
        return _render(
            terms.sign_in_failed(
                pending,
                "Your organization's sign-in service can't be reached. Try again in a few minutes.",
                server=True,
            ),
            runtime,
            dark=dark,
        )
    return _render(terms.signed_in(pending, user.username), runtime, dark=dark)


def _forget(response: Response) -> Response:
    """The sign-in is over, whichever way: its cookie goes."""
    response.delete_cookie(COOKIE, path=TERMS_PATH, secure=True, httponly=True, samesite="none")
    return response


def _clip(value: str, limit: int) -> str:
    return "".join(c for c in value if c.isprintable())[:limit]


async def answer_terms(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    dark = _dark(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return _refusal(
            "Answer the terms with the Accept or Decline button of the terms page.", dark=dark, status=415
        )
    try:
        body = await read_bounded(request, _MAX_FORM_BYTES)
        fields = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=16
        )
    except (WinMDMError, UnicodeDecodeError, ValueError):
        return _refusal(
            "The answer could not be read. Start again from Settings > Accounts > Access work or school.",
            dark=dark,
            status=400,
        )
    form = {name: values[0] for name, values in fields.items()}
    try:
        # In a thread: the answer may ask the database (the device's team's setting).
        decision = await run_in_threadpool(runtime.terms.answer, form)
        return _render(decision, runtime, dark=dark)
    except Exception:
        log.exception("terms of use: unexpected failure answering the page")
        return _render(runtime.terms.server_error(form), runtime, dark=dark, status=503)


def routes() -> list[Route]:
    return [
        Route(TERMS_PATH, show_terms, methods=["GET"]),
        Route(TERMS_PATH, answer_terms, methods=["POST"]),
        Route(CALLBACK_PATH, sign_in_callback, methods=["GET"]),
    ]

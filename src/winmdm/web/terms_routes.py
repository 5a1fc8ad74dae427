"""The Entra MDM terms-of-use page (protocol.md §6): GET shows the terms, POST answers them.

The rules live in :mod:`winmdm.services.terms`; this module renders its decisions. The page is
self-contained (no scripts, no external resources; a Content-Security-Policy says so), dark in
OOBE (``CXH-HOST: FRX``), and every value it shows is HTML-escaped. Nothing a client sends gets a
500 or a traceback: unexpected failures become the contract's ``server_error`` redirect.
"""

from __future__ import annotations

import logging
from html import escape
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from winmdm.errors import WinMDMError
from winmdm.runtime import Runtime
from winmdm.services.endpoints import TERMS_PATH
from winmdm.services.terms import Decision, Outcome, Prompt
from winmdm.web.body import read_bounded

log = logging.getLogger("winmdm.terms")

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
    body = (
        f"<h1>{org}: terms of use</h1>"
        f'<p class="who">Signed in as {escape(prompt.user)}</p>'
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
        return _render(decision, runtime, dark=dark)
    except Exception:
        log.exception("terms of use: unexpected failure showing the page")
        return _render(runtime.terms.server_error(params), runtime, dark=dark, status=503)


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
        return _render(runtime.terms.answer(form), runtime, dark=dark)
    except Exception:
        log.exception("terms of use: unexpected failure answering the page")
        return _render(runtime.terms.server_error(form), runtime, dark=dark, status=503)


def routes() -> list[Route]:
    return [
        Route(TERMS_PATH, show_terms, methods=["GET"]),
        Route(TERMS_PATH, answer_terms, methods=["POST"]),
    ]

"""winmdm's sign-in page (AuthenticationServiceUrl, protocol.md §5) in-process, against a real OIDC
provider (npm oidc-provider on loopback): appru validation, escaping, the signed state, provider
errors, and the auto-POST form whose wresult GetPolicies accepts."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from tests.support.oidc import USERS, TestIdP, forms, login_at_idp
from tests.support.server import free_port
from tests.web.conftest import POLICY, SERVER_URL, message_id, policies_body, post
from winmdm.config import load_config
from winmdm.idp.enrollment_token import PREFIX
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap
from winmdm.runtime import Runtime, build
from winmdm.services.authentication import NOT_SET_UP
from winmdm.services.deep_link import LINK_TOKEN_PARAMETER
from winmdm.web.app import create_app
from winmdm.web.signin_routes import CALLBACK_PATH, COOKIE, SignInFlow, seal

PAGE = "/EnrollmentServer/Authenticate"
CALLBACK = SERVER_URL + CALLBACK_PATH
APPRU = "ms-app://windows.immersivecontrolpanel"
ALLOWED_HTTPS_APPRU = "https://login.corp.example/wab/return?a=1&b=%20x"  # WINMDM_ALLOWED_APPRU
ODD_USER = "o'hara<b>&co@corp.example"  # a real account whose name needs escaping


@dataclass
class App:
    client: TestClient
    runtime: Runtime


def make_app(data_dir: Path, extra_env: dict[str, str]) -> App:
    env = {"WINMDM_DATA_DIR": str(data_dir), "WINMDM_SERVER_URL": SERVER_URL, **extra_env}
    runtime = build(load_config(env), with_tls=False)
    client = TestClient(create_app(runtime), base_url=SERVER_URL, raise_server_exceptions=False)
    return App(client, runtime)


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP.start() as running:
        running.configure(redirect_uris=[CALLBACK], users=[*USERS, ODD_USER])
        yield running


@pytest.fixture(scope="module")
def app(idp: TestIdP, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    made = make_app(
        tmp_path_factory.mktemp("signin") / "data", {**idp.env(), "WINMDM_ALLOWED_APPRU": ALLOWED_HTTPS_APPRU}
    )
    with made.client:
        yield made
    made.runtime.close()


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    """The Windows web view: a fresh cookie jar per test."""
    app.client.cookies.clear()
    yield app.client
    app.client.cookies.clear()


def start(
    web: TestClient, appru: str = APPRU, hint: str | None = "alice@corp.example", **extra: str
) -> httpx.Response:
    params = {"appru": appru, **({"login_hint": hint} if hint is not None else {}), **extra}
    return web.get(PAGE + "?" + urlencode(params), follow_redirects=False)


def at_idp(first: httpx.Response, username: str) -> str:
    """The person at the provider; returns the callback URL the provider redirects to."""
    assert first.status_code == 302, first.text
    with httpx.Client(timeout=10) as browser:
        answer = login_at_idp(browser, browser.get(first.headers["location"]), username, stop_at=CALLBACK)
    assert answer.is_redirect, answer.text[:300]
    return answer.headers["location"]


def callback(web: TestClient, url: str) -> httpx.Response:
    parts = urlsplit(url)
    return web.get(parts.path + "?" + parts.query, follow_redirects=False)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def check_page(response: httpx.Response, status: int) -> str:
    """Every page: the status, HTML in UTF-8, a strict CSP that its own inline parts satisfy, no
    external resources, no caching, no 500."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        for inline in re.findall(rf"<{tag}>(.*?)</{tag}>", response.text, re.S):
            digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp.split(directive, 1)[1].split(";", 1)[0]
    assert not re.search(r"""(src|href)\s*=""", response.text), "no external resources"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    return response.text


def cookie_gone(response: httpx.Response) -> bool:
    header = response.headers.get("set-cookie", "")
    return header.startswith(f"{COOKIE}=") and ("Max-Age=0" in header or "expires=Thu, 01 Jan 1970" in header)


# -- the whole sign-in -------------------------------------------------------------------------------


def test_sign_in_posts_a_token_for_the_verified_user_to_exactly_the_appru(
    web: TestClient, app: App, idp: TestIdP
) -> None:
    first = start(web)
    location = first.headers["location"]
    assert location.startswith(idp.issuer + "/auth?")
    sent = query(location)
    assert sent["login_hint"] == "alice@corp.example"
    assert sent["redirect_uri"] == CALLBACK
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] and sent["state"]
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", f"Path={PAGE}", "Max-Age=600"):
        assert attribute in set_cookie

    page = callback(web, at_idp(first, "alice@corp.example"))
    text = check_page(page, 200)
    assert cookie_gone(page)
    (form,) = forms(text, SERVER_URL)
    assert form.action == APPRU
    assert set(form.fields) == {"wresult"}
    assert '<form method="post" action="ms-app://windows.immersivecontrolpanel">' in text
    assert "document.forms[0].submit()" in text
    assert "Signed in as alice@corp.example" in text
    token = form.fields["wresult"]
    assert token.startswith(PREFIX)
    verified = app.runtime.enrollment_tokens.verify(token, datetime.now(UTC))
    assert verified.username == "alice@corp.example"


def test_the_wresult_passes_get_policies_twice_without_being_used_up(web: TestClient, app: App) -> None:
    token = forms(check_page(callback(web, at_idp(start(web), "bob@corp.example")), 200), SERVER_URL)[
        0
    ].fields["wresult"]
    security = soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_USER_TOKEN, token.encode()),))
    for _ in range(2):
        answer = post(web, POLICY, policies_body(message_id(), security))
        assert answer.response.status_code == 200, answer.response.text
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    bad = soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_USER_TOKEN, forged.encode()),))
    mid = message_id()
    fault = post(web, POLICY, policies_body(mid, bad)).assert_fault(
        "s:Authentication", relates_to=mid, action=ns.ACTION_GET_POLICIES_RESPONSE
    )
    assert "start the enrollment again from Settings" in fault.reason
    assert fault.detail_type and fault.detail_type.lower() == "customservererror"


def test_an_https_appru_an_admin_allowed_comes_back_exactly(web: TestClient) -> None:
    appru = ALLOWED_HTTPS_APPRU
    page = callback(web, at_idp(start(web, appru), "alice@corp.example"))
    text = check_page(page, 200)
    assert 'action="https://login.corp.example/wab/return?a=1&amp;b=%20x"' in text
    assert forms(text, SERVER_URL)[0].action == appru


def test_other_query_parameters_are_allowed(web: TestClient) -> None:
    first = start(web, **{"api-version": "1.0", "mode": "mdm"})
    assert first.status_code == 302
    assert "api-version" not in query(first.headers["location"])


def test_without_login_hint_the_provider_asks_for_the_name(web: TestClient) -> None:
    first = start(web, hint=None)
    assert "login_hint" not in query(first.headers["location"])
    assert (
        check_page(callback(web, at_idp(first, "bob@corp.example")), 200).count(
            "Signed in as bob@corp.example"
        )
        == 1
    )


# -- appru and escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "appru",
    [
        "javascript:alert(1)",
        "http://windows.immersivecontrolpanel/",
        "data:text/html,<script>alert(1)</script>",
        "ms-app:windows",
        "https://",
        "file:///etc/passwd",
        "ms-app://x\"><script>alert('appru')</script>",
        "ms-app://a b",
        "ms-app://a\x00b",
        "ms-app://" + "a" * 3000,
        "",
    ],
    ids=[
        "javascript",
        "http",
        "data",
        "no-authority",
        "no-host",
        "file",
        "xss",
        "space",
        "nul",
        "long",
        "empty",
    ],
)
def test_an_appru_that_is_not_ms_app_is_refused_and_shown_escaped(web: TestClient, appru: str) -> None:
    response = start(web, appru)
    text = check_page(response, 400)
    assert "location" not in response.headers and "set-cookie" not in response.headers
    assert "<script>alert" not in text and "<form" not in text
    assert "Access work or school" in text
    if "xss" in appru or "<script>" in appru:
        assert "&lt;script&gt;" in text


@pytest.mark.parametrize(
    "appru",
    [
        "https://attacker.example/collect",
        "https://login.corp.example/wab/return?a=1",  # not exactly the allowed one
        "HTTPS://login.corp.example/wab/return?a=1&b=%20x",
    ],
)
def test_an_https_appru_nobody_allowed_never_gets_the_token(web: TestClient, appru: str) -> None:
    """Windows posts back only to ms-app:// addresses: an https appru is someone collecting
    enrollment tokens, before and after the sign-in (and for a pre-authorized deep link)."""
    for params in ({}, {LINK_TOKEN_PARAMETER: "a-pre-authorized-token"}):
        response = start(web, appru, **params)
        text = check_page(response, 400)
        assert "not a Windows ms-app:// address" in text
        assert "location" not in response.headers and "<form" not in text
        assert "a-pre-authorized-token" not in text


def test_a_missing_appru_is_refused(web: TestClient) -> None:
    text = check_page(web.get(PAGE + "?login_hint=alice%40corp.example"), 400)
    assert "without a return address (appru)" in text


def test_a_hostile_login_hint_goes_to_the_provider_encoded_and_is_never_echoed(web: TestClient) -> None:
    hint = "\"><script>alert('hint')</script>"
    first = start(web, hint=hint)
    assert query(first.headers["location"])["login_hint"] == hint
    assert "<script>" not in first.headers["location"]
    assert "alert('hint')" not in first.text
    long_hint = start(web, hint="a" * 300)
    assert "login_hint" not in query(long_hint.headers["location"])


def test_a_user_name_with_markup_is_escaped_in_the_page(web: TestClient, app: App) -> None:
    text = check_page(callback(web, at_idp(start(web, hint=None), ODD_USER)), 200)
    assert "o&#x27;hara&lt;b&gt;&amp;co@corp.example" in text
    assert "<b>" not in text
    token = forms(text, SERVER_URL)[0].fields["wresult"]
    assert app.runtime.enrollment_tokens.verify(token, datetime.now(UTC)).username == ODD_USER


# -- the state ------------------------------------------------------------------------------------


def test_a_changed_state_is_refused(web: TestClient) -> None:
    url = at_idp(start(web), "alice@corp.example")
    params = query(url)
    params["state"] = params["state"][:-1] + ("A" if params["state"][-1] != "A" else "B")
    page = web.get(CALLBACK_PATH + "?" + urlencode(params), follow_redirects=False)
    assert "This sign-in has expired" in check_page(page, 400)
    assert cookie_gone(page)


def test_a_callback_without_the_cookie_is_refused(web: TestClient) -> None:
    url = at_idp(start(web), "alice@corp.example")
    web.cookies.clear()
    assert "started in another window" in check_page(callback(web, url), 400)


def test_a_forged_cookie_is_refused(web: TestClient) -> None:
    url = at_idp(start(web), "alice@corp.example")
    state = query(url)["state"]
    flow = SignInFlow(state, "ms-app://attacker", None, "v" * 64, "n")
    web.cookies.set(COOKIE, seal(flow, b"k" * 32, datetime.now(UTC)), domain="mdm.test", path=PAGE)
    assert "This sign-in has expired" in check_page(callback(web, url), 400)


def test_an_expired_sign_in_is_refused(web: TestClient, app: App) -> None:
    first = start(web)
    url = at_idp(first, "alice@corp.example")
    key = app.runtime.enrollment_tokens.subkey("sign-in state")
    old = datetime.now(UTC) - timedelta(minutes=11)
    flow = SignInFlow(query(url)["state"], APPRU, None, "v" * 64, "n")
    web.cookies.clear()
    web.cookies.set(COOKIE, seal(flow, key, old), domain="mdm.test", path=PAGE)
    assert "took too long" in check_page(callback(web, url), 400)


def test_a_second_sign_in_replaces_the_first(web: TestClient) -> None:
    first_url = at_idp(start(web), "alice@corp.example")
    second_url = at_idp(start(web), "bob@corp.example")
    assert "Signed in as bob@corp.example" in check_page(callback(web, second_url), 200)
    assert "This sign-in has expired" in check_page(callback(web, first_url), 400)


def test_a_code_the_provider_does_not_know_is_refused_and_logged(web: TestClient, caplog) -> None:
    url = at_idp(start(web), "alice@corp.example")
    params = query(url)
    params["code"] = "not-a-code"
    page = web.get(CALLBACK_PATH + "?" + urlencode(params), follow_redirects=False)
    assert "couldn't be verified" in html.unescape(check_page(page, 403))
    assert "invalid_grant" in caplog.text
    assert "not-a-code" not in caplog.text


def test_an_answer_naming_another_issuer_is_refused(web: TestClient) -> None:
    params = query(at_idp(start(web), "alice@corp.example"))
    params["iss"] = "https://evil.example"
    page = web.get(CALLBACK_PATH + "?" + urlencode(params), follow_redirects=False)
    assert "another sign-in service" in check_page(page, 400)


def test_a_callback_without_a_code_is_refused(web: TestClient) -> None:
    params = query(at_idp(start(web), "alice@corp.example"))
    del params["code"]
    page = web.get(CALLBACK_PATH + "?" + urlencode(params), follow_redirects=False)
    assert "no answer winmdm can use" in check_page(page, 400)


# -- provider errors -------------------------------------------------------------------------------


def test_an_unknown_user_gets_the_providers_refusal_plainly(web: TestClient) -> None:
    url = at_idp(start(web, hint="mallory@corp.example"), "mallory@corp.example")
    assert query(url)["error"] == "access_denied"
    page = callback(web, url)
    text = check_page(page, 400)
    assert "access_denied (no such user)" in text and "Start again from Settings" in text
    assert "<form" not in text
    assert cookie_gone(page)


def test_a_hostile_error_description_is_escaped(web: TestClient) -> None:
    params = {"error": "access_denied<img>", "error_description": "<script>alert(1)</script>", "state": "x"}
    text = check_page(web.get(CALLBACK_PATH + "?" + urlencode(params)), 400)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert" not in text
    assert "&lt;img&gt;" in text


def test_methods_and_sizes_never_give_a_500(web: TestClient) -> None:
    assert web.post(PAGE, content=b"x" * 100).status_code == 405
    assert web.post(CALLBACK_PATH, content=b"x").status_code == 405
    huge = web.get(CALLBACK_PATH + "?" + urlencode({"code": "c" * 5000, "state": "s" * 5000}))
    check_page(huge, 400)
    bad = web.get(CALLBACK_PATH + "?state=%ff%fe&code=%00")
    check_page(bad, 400)


# -- without an identity provider, and with one that is down ------------------------------------


def test_without_an_idp_the_page_says_so_and_windows_gets_a_fault_it_shows(tmp_path: Path, caplog) -> None:
    made = make_app(tmp_path / "data", {})
    try:
        with made.client as web:
            response = start(web)
            text = check_page(response, 200)
            assert NOT_SET_UP.replace("'", "&#x27;") in text
            assert "WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID and WINMDM_OIDC_CLIENT_SECRET" in caplog.text
            (form,) = forms(text, SERVER_URL)
            assert form.action == APPRU  # Close: back to Windows, which then asks GetPolicies
            security = soap.Security(
                tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_USER_TOKEN, form.fields["wresult"].encode()),)
            )
            mid = message_id()
            fault = post(web, POLICY, policies_body(mid, security)).assert_fault(
                "s:Authentication", relates_to=mid, action=ns.ACTION_GET_POLICIES_RESPONSE
            )
            assert fault.reason.startswith(NOT_SET_UP)
            assert fault.detail_type and fault.detail_type.lower() == "customservererror"
            assert "Sign-in isn" in check_page(web.get(CALLBACK_PATH + "?code=x&state=y"), 400)
            check_page(start(web, "javascript:alert(1)"), 400)
    finally:
        made.runtime.close()


def test_a_provider_that_is_down_gives_a_plain_page(tmp_path: Path, caplog) -> None:
    env = {
        "WINMDM_OIDC_ISSUER": f"http://127.0.0.1:{free_port()}",
        "WINMDM_OIDC_CLIENT_ID": "c",
        "WINMDM_OIDC_CLIENT_SECRET": "s",
    }
    made = make_app(tmp_path / "data", env)
    try:
        with made.client as web:
            text = check_page(start(web), 502)
            assert "can't be reached" in html.unescape(text)
            assert "check WINMDM_OIDC_ISSUER" in caplog.text
    finally:
        made.runtime.close()

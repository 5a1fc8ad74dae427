"""The terms-of-use page over HTTP (protocol.md §6), in-process, with real RS256 tokens from a
local Entra stand-in: the page Windows shows, the 302s it waits for, and the refusals."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from tests.support.entra_issuer import EntraIssuer
from tests.support.oidc import TestIdP, login_at_idp
from tests.web.conftest import OTHER_TENANT, SERVER_URL, TENANT
from winmdm.config import load_config
from winmdm.runtime import Runtime, build
from winmdm.web.app import create_app
from winmdm.web.terms_routes import CALLBACK_PATH, COOKIE

TERMS = "/EnrollmentServer/TermsOfUse"
REDIRECT = "ms-appx-web://Microsoft.AAD.BrokerPlugin/ToUResponse"
ORGANIZATION = 'Corp <img src=x onerror="alert(1)"> & Co'


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory, entra: EntraIssuer) -> Iterator[TestClient]:
    """An app of this module's own (its runtime is patched to fail in the server_error tests)."""
    env = {
        "WINMDM_DATA_DIR": str(tmp_path_factory.mktemp("terms") / "data"),
        "WINMDM_SERVER_URL": SERVER_URL,
        "WINMDM_ENTRA_TENANT_IDS": TENANT,
        "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        "WINMDM_ORGANIZATION": ORGANIZATION,
    }
    runtime = build(load_config(env), with_tls=False)
    with TestClient(create_app(runtime), base_url=SERVER_URL, raise_server_exceptions=False) as client:
        yield client
    runtime.close()


@pytest.fixture
def runtime(app_client: TestClient) -> Runtime:
    return app_client.app.state.runtime


@pytest.fixture
def crid() -> str:
    return str(uuid.uuid4())


def query(crid: str, **changes: str | None) -> str:
    values: dict[str, str | None] = {
        "redirect_uri": REDIRECT,
        "client-request-id": crid,
        "api-version": "1.0",
    }
    values.update(changes)
    return urlencode({k: v for k, v in values.items() if v is not None})


def get(
    client: TestClient, crid: str, token: str | None, *, host: str = "MOSET", **changes
) -> httpx.Response:
    headers = {"CXH-HOST": host}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(f"{TERMS}?{query(crid, **changes)}", headers=headers, follow_redirects=False)


def post(client: TestClient, form: dict[str, str], **headers: str) -> httpx.Response:
    return client.post(TERMS, data=form, headers=headers, follow_redirects=False)


def assert_page(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert "location" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    # Self-contained: no scripts, no external resources.
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r"<[^>]*\b(src|href)\s*=", text, re.IGNORECASE)
    return text


def state_of(page: str) -> str:
    found = re.search(r'<input type="hidden" name="state" value="([^"]*)">', page)
    assert found, page
    return html.unescape(found.group(1))


def redirect_answer(response: httpx.Response, redirect: str = REDIRECT) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text)
    location = response.headers["location"]
    assert location.startswith(redirect + "?")
    assert " " not in location
    answer = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in answer.values()), answer
    return {k: v[0] for k, v in answer.items()}


def assert_error_redirect(response: httpx.Response, code: str, crid: str | None, *words: str) -> str:
    answer = redirect_answer(response)
    assert answer["error"] == code
    assert "IsAccepted" not in answer
    assert answer.get("client-request-id") == crid
    for word in words:
        assert word in answer["error_description"], answer["error_description"]
    assert "%20" in response.headers["location"]
    return answer["error_description"]


# -- accept and decline -------------------------------------------------------------------------


def test_accept_redirects_with_a_blob_the_enrollment_can_read(app_client, runtime, token, crid) -> None:
    page = assert_page(get(app_client, crid, token(upn="alice@corp.example")), 200)
    assert "Signed in as alice@corp.example" in page
    assert html.escape(ORGANIZATION) in page
    assert 'value="accept"' in page and 'value="decline"' in page
    assert f'action="{TERMS}"' in page and 'method="post"' in page

    answer = redirect_answer(post(app_client, {"state": state_of(page), "answer": "accept"}))
    assert answer["IsAccepted"] == "true"
    assert answer["client-request-id"] == crid
    blob = runtime.terms.read_blob(answer["OpaqueBlob"], datetime.now(UTC))
    assert blob is not None
    assert (blob["upn"], blob["tid"], blob["client_request_id"]) == ("alice@corp.example", TENANT, crid)
    assert blob["end_user_username"] is None  # no end-user authentication on this server


def test_decline_redirects_is_accepted_false(app_client, token, crid) -> None:
    page = assert_page(get(app_client, crid, token()), 200)
    answer = redirect_answer(post(app_client, {"state": state_of(page), "answer": "decline"}))
    assert answer == {"IsAccepted": "false", "client-request-id": crid}


def test_entra_join_offers_no_decline(app_client, token, crid) -> None:
    page = assert_page(get(app_client, crid, token(), mode="azureadjoin"), 200)
    assert 'value="accept"' in page
    assert 'value="decline"' not in page and "Decline" not in page
    answer = redirect_answer(post(app_client, {"state": state_of(page), "answer": "accept"}))
    assert answer["IsAccepted"] == "true"


# -- theme -------------------------------------------------------------------------------------


def test_oobe_gets_the_dark_theme_and_settings_the_light_one(app_client, token, crid) -> None:
    assert '<body class="dark">' in assert_page(get(app_client, crid, token(), host="FRX"), 200)
    assert '<body class="light">' in assert_page(get(app_client, crid, token(), host="MOSET"), 200)
    refused = get(app_client, crid, token(), host="FRX", redirect_uri="https://evil.example/")
    assert '<body class="dark">' in assert_page(refused, 400)


# -- error redirects ---------------------------------------------------------------------------


def test_no_token_is_unauthorized_client(app_client, crid) -> None:
    assert_error_redirect(get(app_client, crid, None), "unauthorized_client", crid, "Bearer")


@pytest.mark.parametrize("case", ["stranger key", "other tenant", "other audience", "garbage"])
def test_an_invalid_token_is_unauthorized_client(app_client, entra, token, crid, case) -> None:
    raw = {
        "stranger key": lambda: entra.token_signed_by_stranger(tenant_id=TENANT, audience=SERVER_URL),
        "other tenant": lambda: token(tenant_id=OTHER_TENANT),
        "other audience": lambda: token(audience="https://other.example"),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    description = assert_error_redirect(
        get(app_client, crid, raw), "unauthorized_client", crid, "could not be verified"
    )
    assert raw not in description


def test_an_unsupported_api_version_is_invalid_request(app_client, token, crid) -> None:
    response = get(app_client, crid, token(), **{"api-version": "2.0"})
    description = assert_error_redirect(response, "invalid_request", crid, "api-version 1.0")
    assert "'2.0'" in description


def test_a_bad_client_request_id_is_invalid_request(app_client, token) -> None:
    response = get(app_client, "<script>", token())
    assert_error_redirect(response, "invalid_request", None, "client-request-id")
    assert "<script>" not in response.headers["location"]


def test_an_unexpected_failure_is_server_error(app_client, runtime, token, crid, monkeypatch) -> None:
    page = assert_page(get(app_client, crid, token()), 200)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(runtime.terms, "check", broken)
    assert_error_redirect(get(app_client, crid, token()), "server_error", crid, "error was logged")
    monkeypatch.setattr(runtime.terms, "answer", broken)
    response = post(app_client, {"state": state_of(page), "answer": "accept"})
    assert_error_redirect(response, "server_error", crid, "Try again")
    # Nothing to redirect to: a page, still no 500.
    page = assert_page(get(app_client, crid, token(), redirect_uri="https://evil.example/"), 503)
    assert "boom" not in page


# -- refusals without a redirect ---------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect",
    [
        None,
        "https://evil.example/collect",
        "javascript:alert(1)",
        'ms-appx-web://a/"><script>alert(1)</script>',
    ],
)
def test_a_bad_redirect_uri_gets_a_page_not_a_redirect(app_client, token, crid, redirect) -> None:
    page = assert_page(get(app_client, crid, token(), redirect_uri=redirect), 400)
    assert "ms-appx-web://" in page
    assert "evil.example" not in page and "alert(1)" not in page


def test_a_forged_or_missing_state_gets_a_page_not_a_redirect(app_client, token, crid) -> None:
    state = state_of(assert_page(get(app_client, crid, token()), 200))
    body, mac = state.split(".")
    for form in (
        {"state": body + "." + mac[::-1], "answer": "accept"},
        {"state": "<script>alert(1)</script>", "answer": "accept"},
        {"answer": "accept"},
    ):
        page = assert_page(post(app_client, form), 400)
        assert "alert(1)" not in page


def test_a_post_that_is_not_a_form_is_refused(app_client) -> None:
    response = app_client.post(
        TERMS, content=b'{"answer":"accept"}', headers={"Content-Type": "application/json"}
    )
    assert_page(response, 415)
    huge = app_client.post(TERMS, data={"state": "x" * 20_000, "answer": "accept"}, follow_redirects=False)
    assert_page(huge, 400)
    bad_utf8 = app_client.post(
        TERMS,
        content=b"state=\xff\xfe&answer=accept",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_page(bad_utf8, 400)


# -- escaping ----------------------------------------------------------------------------------


def test_the_user_and_organization_are_html_escaped(app_client, token, crid) -> None:
    upn = '"><script>alert(1)</script><b x="@corp.example'
    page = assert_page(get(app_client, crid, token(upn=upn)), 200)
    assert f"Signed in as {html.escape(upn)}" in page
    assert "<img" not in page and "<b " not in page
    assert html.escape(ORGANIZATION) in page


# -- end-user authentication (WINMDM_END_USER_AUTH): the IdP sign-in before Accept ---------------

CALLBACK = SERVER_URL + CALLBACK_PATH


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP.start() as running:
        running.configure(redirect_uris=[CALLBACK])
        yield running


def _env(data_dir, entra: EntraIssuer, idp: TestIdP, *, end_user_auth: bool) -> dict[str, str]:
    return {
        "WINMDM_DATA_DIR": str(data_dir),
        "WINMDM_SERVER_URL": SERVER_URL,
        "WINMDM_ENTRA_TENANT_IDS": TENANT,
        "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        **idp.env(),
        "WINMDM_END_USER_AUTH": "true" if end_user_auth else "false",
    }


@pytest.fixture(scope="module")
def eua_data_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("terms-eua") / "data"


@pytest.fixture(scope="module")
def eua_app(eua_data_dir, entra: EntraIssuer, idp: TestIdP) -> Iterator[TestClient]:
    runtime = build(load_config(_env(eua_data_dir, entra, idp, end_user_auth=True)), with_tls=False)
    with TestClient(create_app(runtime), base_url=SERVER_URL, raise_server_exceptions=False) as client:
        yield client
    runtime.close()


@pytest.fixture
def web(eua_app: TestClient) -> Iterator[TestClient]:
    """The Windows web view: a fresh cookie jar per test."""
    eua_app.cookies.clear()
    yield eua_app
    eua_app.cookies.clear()


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


def params_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def cookie_gone(response: httpx.Response) -> bool:
    header = response.headers.get("set-cookie", "")
    return header.startswith(f"{COOKIE}=") and ("Max-Age=0" in header or "01 Jan 1970" in header)


def test_end_user_auth_sends_the_user_to_the_idp_with_the_entra_upn_as_login_hint(
    web, idp, token, crid
) -> None:
    first = get(web, crid, token(upn="alice@corp.example"))
    assert first.status_code == 302, first.text
    location = first.headers["location"]
    assert location.startswith(idp.issuer + "/auth?")
    sent = params_of(location)
    assert sent["login_hint"] == "alice@corp.example"
    assert sent["redirect_uri"] == CALLBACK
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    assert sent["nonce"] and sent["state"] and sent["response_type"] == "code"
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=none", f"Path={TERMS}", "Max-Age=600"):
        assert attribute in set_cookie, set_cookie
    assert "Accept" not in first.text


def test_the_idp_user_is_shown_and_carried_in_the_blob_beside_the_entra_upn(
    web, eua_app, token, crid
) -> None:
    first = get(web, crid, token(upn="alice@corp.example"), mode="azureadjoin")
    page = callback(web, at_idp(first, "bob@corp.example"))
    text = assert_page(page, 200)
    assert cookie_gone(page)
    assert "Signed in as alice@corp.example" in text
    assert "Identity provider: signed in as bob@corp.example" in text
    assert 'value="accept"' in text and 'value="decline"' not in text  # join mode kept
    answer = redirect_answer(post(web, {"state": state_of(text), "answer": "accept"}))
    assert answer["IsAccepted"] == "true" and answer["client-request-id"] == crid
    blob = eua_app.app.state.runtime.terms.read_blob(answer["OpaqueBlob"], datetime.now(UTC))
    assert blob is not None
    assert (blob["upn"], blob["end_user_username"]) == ("alice@corp.example", "bob@corp.example")


def test_a_callback_whose_state_was_changed_is_refused_without_a_redirect(web, token, crid) -> None:
    url = at_idp(get(web, crid, token()), "alice@corp.example")
    sent = params_of(url)
    tampered = url.replace("state=" + sent["state"], "state=" + sent["state"][::-1])
    page = assert_page(callback(web, tampered), 400)
    assert "does not belong to the sign-in" in page and 'value="accept"' not in page
    # The same answer in another window (no cookie), or with the cookie altered: refused too.
    web.cookies.clear()
    assert "expired" in assert_page(callback(web, url), 400)
    first = get(web, crid, token())
    url = at_idp(first, "alice@corp.example")
    value = web.cookies.get(COOKIE)
    assert value
    body, mac = value.split(".")
    terms = web.app.state.runtime.terms
    assert terms.resume_sign_in(value) is not None
    assert terms.resume_sign_in(body[:-2] + "AA." + mac) is None
    web.cookies.clear()
    web.cookies.set(COOKIE, body[:-2] + "AA." + mac, domain="mdm.test", path=TERMS)
    assert "expired" in assert_page(callback(web, url), 400)


def test_the_sign_in_cookie_is_no_answer_to_the_terms(web, token, crid) -> None:
    get(web, crid, token())
    cookie = web.cookies.get(COOKIE)
    assert cookie
    assert_page(post(web, {"state": cookie, "answer": "accept"}), 400)


def test_an_idp_refusal_is_the_contracts_unauthorized_client(web, token, crid) -> None:
    first = get(web, crid, token())
    url = at_idp(first, "mallory@corp.example")  # a user the IdP does not know: access_denied
    response = callback(web, url)
    assert cookie_gone(response)
    assert_error_redirect(response, "unauthorized_client", crid, "access_denied")


def test_an_invalid_entra_token_never_reaches_the_idp(web, token, crid) -> None:
    response = get(web, crid, token(audience="https://other.example"))
    assert_error_redirect(response, "unauthorized_client", crid, "could not be verified")
    assert COOKIE not in response.headers.get("set-cookie", "")


def test_a_page_shown_before_end_user_auth_was_turned_on_cannot_accept(
    web, eua_data_dir, entra, idp, token, crid
) -> None:
    """Same data dir (same keys), end-user authentication off: a state without an IdP user."""
    before = build(load_config(_env(eua_data_dir, entra, idp, end_user_auth=False)), with_tls=False)
    try:
        with TestClient(create_app(before), base_url=SERVER_URL) as old:
            state = state_of(assert_page(get(old, crid, token()), 200))
    finally:
        before.close()
    response = post(web, {"state": state, "answer": "accept"})
    assert_error_redirect(response, "unauthorized_client", crid, "sign in with its identity provider")

"""The OIDC relying party against a real provider: npm oidc-provider on loopback (tests/support/oidc_idp).

Each test signs in through the provider's own login and consent forms, the way the Windows web
view does, then exchanges the code the provider redirected with.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, TestIdP, forms, login_at_idp
from tests.support.server import free_port
from winmdm.errors import AuthenticationFailed, UpstreamUnavailable
from winmdm.idp.oidc import AuthorizationRequest, OIDCClient

REDIRECT = "https://mdm.test:8443/EnrollmentServer/Authenticate/callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP.start() as running:
        running.configure(redirect_uris=[REDIRECT])
        yield running


@pytest.fixture
def rp(idp: TestIdP) -> Iterator[OIDCClient]:
    client = OIDCClient(idp.issuer, CLIENT_ID, CLIENT_SECRET)
    yield client
    client.close()


def now() -> datetime:
    return datetime.now(UTC)


def sign_in(
    rp: OIDCClient, username: str = "alice@corp.example", *, hint: str | None = None
) -> tuple[AuthorizationRequest, dict[str, str]]:
    """The browser part: returns the request and the callback's query parameters."""
    request = rp.authorization_request(redirect_uri=REDIRECT, now=now(), login_hint=hint)
    with httpx.Client(timeout=10) as browser:
        answer = login_at_idp(browser, browser.get(request.url), username, stop_at=REDIRECT)
    assert answer.is_redirect, answer.text[:500]
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return request, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_a_user_signs_in_and_is_named_by_email(rp: OIDCClient, idp: TestIdP) -> None:
    request, callback = sign_in(rp)
    assert callback["state"] == request.state
    assert callback["iss"] == idp.issuer  # RFC 9207, checked by the page
    user = rp.exchange(
        code=callback["code"],
        redirect_uri=REDIRECT,
        code_verifier=request.code_verifier,
        nonce=request.nonce,
        now=now(),
    )
    assert user.username == "alice@corp.example"
    assert user.subject == "alice@corp.example"
    assert user.claims["aud"] == CLIENT_ID


def test_the_authorization_url_asks_for_code_with_pkce_nonce_and_the_hint(
    rp: OIDCClient, idp: TestIdP
) -> None:
    request = rp.authorization_request(redirect_uri=REDIRECT, now=now(), login_hint="bob@corp.example")
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    digest = hashlib.sha256(request.code_verifier.encode()).digest()
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid email profile",
        "state": request.state,
        "nonce": request.nonce,
        "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "login_hint": "bob@corp.example",
    }
    assert request.url.startswith(idp.issuer + "/auth?")
    assert 43 <= len(request.code_verifier) <= 128
    other = rp.authorization_request(redirect_uri=REDIRECT, now=now())
    assert {other.state, other.nonce, other.code_verifier}.isdisjoint(
        {request.state, request.nonce, request.code_verifier}
    )
    assert "login_hint" not in other.url
    # The provider's login form is pre-filled with the hint.
    with httpx.Client(timeout=10) as browser:
        page = browser.get(request.url, follow_redirects=True)
    login = [f for f in forms(page.text, str(page.url)) if f.fields.get("prompt") == "login"]
    assert login and login[0].fields["login"] == "bob@corp.example"


def test_the_nonce_of_another_sign_in_is_refused(rp: OIDCClient) -> None:
    request, callback = sign_in(rp)
    with pytest.raises(AuthenticationFailed, match="nonce of this sign-in") as raised:
        rp.exchange(
            code=callback["code"],
            redirect_uri=REDIRECT,
            code_verifier=request.code_verifier,
            nonce="another",
            now=now(),
        )
    assert callback["code"] not in raised.value.message


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(rp: OIDCClient) -> None:
    request, callback = sign_in(rp)
    with pytest.raises(AuthenticationFailed, match="refused the sign-in code \\(invalid_grant") as raised:
        rp.exchange(
            code=callback["code"],
            redirect_uri=REDIRECT,
            code_verifier="x" * 64,
            nonce=request.nonce,
            now=now(),
        )
    assert callback["code"] not in raised.value.message


def test_a_code_works_once(rp: OIDCClient) -> None:
    request, callback = sign_in(rp, "bob@corp.example")
    args = {"code": callback["code"], "redirect_uri": REDIRECT, "code_verifier": request.code_verifier}
    assert rp.exchange(**args, nonce=request.nonce, now=now()).username == "bob@corp.example"
    with pytest.raises(AuthenticationFailed, match="invalid_grant"):
        rp.exchange(**args, nonce=request.nonce, now=now())


def test_a_wrong_redirect_uri_at_exchange_is_refused(rp: OIDCClient) -> None:
    request, callback = sign_in(rp)
    with pytest.raises(AuthenticationFailed, match="redirect URI registered"):
        rp.exchange(
            code=callback["code"],
            redirect_uri=REDIRECT + "x",
            code_verifier=request.code_verifier,
            nonce=request.nonce,
            now=now(),
        )


@pytest.mark.parametrize(
    ("shift", "pattern"),
    [(timedelta(hours=2), "expired .* check the clocks"), (timedelta(hours=-1), "in the future")],
    ids=["expired", "issued-in-the-future"],
)
def test_the_id_token_times_are_checked_against_our_clock(
    rp: OIDCClient, shift: timedelta, pattern: str
) -> None:
    request, callback = sign_in(rp)
    with pytest.raises(AuthenticationFailed, match=pattern):
        rp.exchange(
            code=callback["code"],
            redirect_uri=REDIRECT,
            code_verifier=request.code_verifier,
            nonce=request.nonce,
            now=now() + shift,
        )


def test_a_wrong_client_secret_is_the_admins_to_fix(idp: TestIdP) -> None:
    with closing(OIDCClient(idp.issuer, CLIENT_ID, "not-the-secret")) as wrong:
        request, callback = sign_in(wrong)
        with pytest.raises(UpstreamUnavailable, match="WINMDM_OIDC_CLIENT_SECRET") as raised:
            wrong.exchange(
                code=callback["code"],
                redirect_uri=REDIRECT,
                code_verifier=request.code_verifier,
                nonce=request.nonce,
                now=now(),
            )
        assert "not-the-secret" not in raised.value.message


def test_an_unknown_user_never_gets_a_code(rp: OIDCClient) -> None:
    """The dev login form takes any name; the provider's account list does not."""
    request = rp.authorization_request(redirect_uri=REDIRECT, now=now())
    with httpx.Client(timeout=10) as browser:
        answer = login_at_idp(browser, browser.get(request.url), "mallory@corp.example", stop_at=REDIRECT)
    assert answer.is_redirect
    callback = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
    assert callback["error"] == "access_denied" and "code" not in callback
    assert callback["state"] == request.state


def test_client_secret_post_when_that_is_all_the_provider_takes() -> None:
    with TestIdP.start() as post_only:
        post_only.configure(redirect_uris=[REDIRECT], auth_method="client_secret_post")
        rp = OIDCClient(post_only.issuer, CLIENT_ID, CLIENT_SECRET)
        try:
            request, callback = sign_in(rp)
            user = rp.exchange(
                code=callback["code"],
                redirect_uri=REDIRECT,
                code_verifier=request.code_verifier,
                nonce=request.nonce,
                now=now(),
            )
        finally:
            rp.close()
    assert user.username == "alice@corp.example"


def test_a_configured_issuer_that_is_not_the_providers_is_refused(idp: TestIdP) -> None:
    other_spelling = idp.issuer.replace("127.0.0.1", "localhost")
    rp = OIDCClient(other_spelling, CLIENT_ID, CLIENT_SECRET)
    try:
        with pytest.raises(UpstreamUnavailable, match="set WINMDM_OIDC_ISSUER to exactly"):
            rp.authorization_request(redirect_uri=REDIRECT, now=now())
    finally:
        rp.close()


def test_an_unreachable_provider_is_reported_with_the_setting() -> None:
    rp = OIDCClient(f"http://127.0.0.1:{free_port()}", CLIENT_ID, CLIENT_SECRET, timeout=2)
    try:
        with pytest.raises(UpstreamUnavailable, match="check WINMDM_OIDC_ISSUER"):
            rp.authorization_request(redirect_uri=REDIRECT, now=now())
    finally:
        rp.close()

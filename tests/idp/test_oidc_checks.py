"""The ID token and metadata checks of the OIDC relying party, against a provider that misbehaves
on purpose (an in-process httpx transport serving discovery, JWKS, token and userinfo answers
with a real RSA key), for the failures a conforming provider never produces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from winmdm.errors import AuthenticationFailed, UpstreamUnavailable
from winmdm.idp.oidc import OIDCClient

ISSUER = "https://idp.corp.example"
CLIENT = "winmdm-client"
SECRET = "s3cret/with+special=chars"
REDIRECT = "https://mdm.test/EnrollmentServer/Authenticate/callback"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NONCE = "the-nonce"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeProvider:
    def __init__(self) -> None:
        self.discovery: dict[str, Any] = {
            "issuer": ISSUER,
            "authorization_endpoint": ISSUER + "/authorize",
            "token_endpoint": ISSUER + "/token",
            "jwks_uri": ISSUER + "/jwks",
            "userinfo_endpoint": ISSUER + "/userinfo",
        }
        self.claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": CLIENT,
            "sub": "00u1abcd",
            "email": "alice@corp.example",
            "iat": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 3600,
            "nonce": NONCE,
        }
        self.header: dict[str, Any] = {"kid": "k1"}
        self.signing_key: Any = KEY
        self.algorithm = "RS256"
        self.token_answer: Callable[[], httpx.Response] | None = None
        self.userinfo: dict[str, Any] = {"sub": "00u1abcd", "email": "alice@corp.example"}
        self.requests: list[httpx.Request] = []
        self.down = False
        self.down_paths: set[str] = set()

    def id_token(self) -> str:
        return jwt.encode(self.claims, self.signing_key, algorithm=self.algorithm, headers=self.header)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.down or path in self.down_paths:
            raise httpx.ConnectError("connection refused")
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/jwks":
            jwk = RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
            return httpx.Response(200, json={"keys": [{**jwk, "kid": "k1", "use": "sig"}]})
        if path == "/token":
            if self.token_answer is not None:
                return self.token_answer()
            return httpx.Response(200, json={"id_token": self.id_token(), "access_token": "at-123"})
        if path == "/userinfo":
            return httpx.Response(200, json=self.userinfo)
        return httpx.Response(404)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def rp(provider: FakeProvider) -> OIDCClient:
    return OIDCClient(
        ISSUER, CLIENT, SECRET, http=httpx.Client(transport=httpx.MockTransport(provider.handle))
    )


def exchange(rp: OIDCClient, now: datetime = NOW, nonce: str = NONCE):
    return rp.exchange(code="the-code", redirect_uri=REDIRECT, code_verifier="v" * 64, nonce=nonce, now=now)


def test_the_token_request_authenticates_with_basic_and_sends_the_verifier(rp, provider) -> None:
    assert exchange(rp).username == "alice@corp.example"
    token_request = next(r for r in provider.requests if r.url.path == "/token")
    form = dict(x.split("=", 1) for x in token_request.content.decode().split("&"))
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https%3A%2F%2Fmdm.test%2FEnrollmentServer%2FAuthenticate%2Fcallback",
        "code_verifier": "v" * 64,
    }
    basic = base64.b64decode(token_request.headers["authorization"].removeprefix("Basic ")).decode()
    assert basic == "winmdm-client:s3cret%2Fwith%2Bspecial%3Dchars"  # RFC 6749 §2.3.1


def test_post_when_basic_is_not_offered(rp, provider) -> None:
    provider.discovery["token_endpoint_auth_methods_supported"] = ["client_secret_post", "private_key_jwt"]
    exchange(rp)
    token_request = next(r for r in provider.requests if r.url.path == "/token")
    assert "authorization" not in token_request.headers
    assert b"client_secret=s3cret%2Fwith%2Bspecial%3Dchars" in token_request.content


def test_no_secret_method_at_all_is_reported(rp, provider) -> None:
    provider.discovery["token_endpoint_auth_methods_supported"] = ["private_key_jwt"]
    with pytest.raises(UpstreamUnavailable, match="neither client_secret_basic nor client_secret_post"):
        exchange(rp)


@pytest.mark.parametrize(
    ("claims", "pattern"),
    [
        ({"iss": "https://evil.example"}, "names issuer 'https://evil.example'"),
        ({"aud": "another-client"}, "issued for 'another-client', not for client 'winmdm-client'"),
        ({"aud": ["another-client", "third"]}, "not for client"),
        ({"aud": [CLIENT, "another-client"]}, "obtained by another client"),
        ({"aud": [CLIENT, "another-client"], "azp": "another-client"}, "obtained by another client"),
        ({"azp": "another-client"}, "obtained by another client"),
        ({"exp": None}, "lacks its expiry"),
        ({"iat": None}, "lacks its expiry .* or issue time"),
        ({"exp": int(NOW.timestamp()) - 61}, "expired 61 s ago"),
        ({"iat": int(NOW.timestamp()) + 61}, "issued 61 s in the future"),
        ({"nonce": "another"}, "nonce of this sign-in"),
        ({"nonce": None}, "nonce of this sign-in"),
        ({"sub": None}, "names no subject"),
        ({"sub": "  "}, "names no subject"),
    ],
    ids=[
        "issuer",
        "audience",
        "audience-list",
        "azp-missing",
        "azp-other",
        "azp-single",
        "no-exp",
        "no-iat",
        "expired",
        "future",
        "nonce",
        "no-nonce",
        "no-sub",
        "blank-sub",
    ],
)
def test_claim_failures(rp, provider, claims: dict[str, Any], pattern: str) -> None:
    provider.claims.update(claims)
    provider.claims = {k: v for k, v in provider.claims.items() if v is not None}
    with pytest.raises(AuthenticationFailed, match=pattern):
        exchange(rp)


def test_the_leeway_is_small_but_there(rp, provider) -> None:
    provider.claims.update(exp=int(NOW.timestamp()) - 60, iat=int(NOW.timestamp()) + 60)
    assert exchange(rp).username == "alice@corp.example"
    provider.claims.update(aud=[CLIENT, "other"], azp=CLIENT)
    assert exchange(rp).username == "alice@corp.example"


def test_a_signature_by_another_key_is_refused(rp, provider) -> None:
    provider.signing_key = STRANGER
    with pytest.raises(AuthenticationFailed, match="does not verify with key 'k1'"):
        exchange(rp)


def test_an_unknown_key_id_is_refused_without_naming_entra(rp, provider) -> None:
    provider.header = {"kid": "k-unknown"}
    with pytest.raises(AuthenticationFailed, match="key 'k-unknown', which is not in") as raised:
        exchange(rp)
    assert "Entra" not in raised.value.message


def test_hs256_signed_with_the_public_key_is_refused(rp, provider) -> None:
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": "k1"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(provider.claims).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    ).rstrip(b"=")
    forged = (header + b"." + payload + b"." + signature).decode()
    provider.token_answer = lambda: httpx.Response(200, json={"id_token": forged})
    with pytest.raises(AuthenticationFailed, match="signed with 'HS256'"):
        exchange(rp)


def test_alg_none_is_refused(rp, provider) -> None:
    unsigned = jwt.encode(provider.claims, None, algorithm="none", headers={"kid": "k1"})
    provider.token_answer = lambda: httpx.Response(200, json={"id_token": unsigned})
    with pytest.raises(AuthenticationFailed, match="signed with 'none'"):
        exchange(rp)


@pytest.mark.parametrize(
    "id_token", ["garbage", "a.b.c", "x" * 40000, "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.bm90LWpzb24.c2ln"]
)
def test_garbage_id_tokens_are_refused(rp, provider, id_token: str) -> None:
    provider.token_answer = lambda: httpx.Response(200, json={"id_token": id_token})
    with pytest.raises(AuthenticationFailed):
        exchange(rp)


def test_a_header_without_kid_is_refused(rp, provider) -> None:
    provider.header = {}
    with pytest.raises(AuthenticationFailed, match="no key id"):
        exchange(rp)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"email": "alice@corp.example", "preferred_username": "alice", "upn": "a@corp"},
            "alice@corp.example",
        ),
        ({"email": "alice@corp.example", "email_verified": False, "preferred_username": "alice"}, "alice"),
        ({"preferred_username": "alice", "upn": "a@corp"}, "alice"),
        ({"upn": "a@corp"}, "a@corp"),
    ],
    ids=["email", "unverified-email", "preferred_username", "upn"],
)
def test_the_username_claim_order(rp, provider, claims: dict[str, Any], expected: str) -> None:
    provider.claims.pop("email")
    provider.claims.update(claims)
    user = exchange(rp)
    assert user.username == expected and user.subject == "00u1abcd"
    assert not any(r.url.path == "/userinfo" for r in provider.requests)


def test_userinfo_fills_in_when_the_id_token_names_no_user(rp, provider) -> None:
    provider.claims.pop("email")
    provider.userinfo = {"sub": "00u1abcd", "preferred_username": "alice.smith"}
    assert exchange(rp).username == "alice.smith"
    userinfo = next(r for r in provider.requests if r.url.path == "/userinfo")
    assert userinfo.headers["authorization"] == "Bearer at-123"


def test_userinfo_about_another_subject_is_refused(rp, provider) -> None:
    provider.claims.pop("email")
    provider.userinfo = {"sub": "someone-else", "email": "mallory@corp.example"}
    with pytest.raises(AuthenticationFailed, match="another user than the ID token"):
        exchange(rp)


def test_sub_is_the_last_resort(rp, provider) -> None:
    provider.claims.pop("email")
    provider.userinfo = {"sub": "00u1abcd"}
    assert exchange(rp).username == "00u1abcd"


@pytest.mark.parametrize(
    ("answer", "kind", "pattern"),
    [
        (httpx.Response(401, json={"error": "invalid_client"}), UpstreamUnavailable, "WINMDM_OIDC_CLIENT_ID"),
        (httpx.Response(400, json={"error": "invalid_client"}), UpstreamUnavailable, "client credentials"),
        (
            httpx.Response(400, json={"error": "invalid_grant"}),
            AuthenticationFailed,
            r"sign-in code \(invalid_grant\)",
        ),
        (httpx.Response(400, content=b"<html>"), AuthenticationFailed, "no error code"),
        (httpx.Response(503, content=b"down"), UpstreamUnavailable, "HTTP 503"),
        (httpx.Response(200, content=b"not json"), UpstreamUnavailable, "did not answer JSON"),
        (httpx.Response(200, json=["a list"]), UpstreamUnavailable, "JSON object"),
        (httpx.Response(200, json={"access_token": "x"}), UpstreamUnavailable, "without an ID token"),
        (httpx.Response(200, content=b" " * 300_000), UpstreamUnavailable, "far too many"),
    ],
    ids=[
        "401",
        "invalid-client",
        "invalid-grant",
        "html-400",
        "503",
        "not-json",
        "not-object",
        "no-id-token",
        "huge",
    ],
)
def test_token_endpoint_failures(rp, provider, answer, kind, pattern: str) -> None:
    provider.token_answer = lambda: answer
    with pytest.raises(kind, match=pattern) as raised:
        exchange(rp)
    assert "the-code" not in raised.value.message and SECRET not in raised.value.message


def test_error_descriptions_are_cut_and_cleaned(rp, provider) -> None:
    provider.token_answer = lambda: httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "bad\r\ncode " + "x" * 1000}
    )
    with pytest.raises(AuthenticationFailed) as raised:
        exchange(rp)
    assert "\n" not in raised.value.message and "x" * 201 not in raised.value.message


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"issuer": "https://other.example"}, "names issuer 'https://other.example'"),
        ({"token_endpoint": "http://idp.corp.example/token"}, "no usable token_endpoint"),
        ({"jwks_uri": None}, "no usable jwks_uri"),
        ({"authorization_endpoint": 42}, "no usable authorization_endpoint"),
    ],
    ids=["issuer", "plain-http", "no-jwks", "not-a-string"],
)
def test_bad_discovery_documents(rp, provider, change: dict[str, Any], pattern: str) -> None:
    provider.discovery.update(change)
    with pytest.raises(UpstreamUnavailable, match=pattern):
        rp.authorization_request(redirect_uri=REDIRECT, now=NOW)


def test_a_trailing_slash_in_the_setting_is_forgiven(provider) -> None:
    rp = OIDCClient(
        ISSUER + "/", CLIENT, SECRET, http=httpx.Client(transport=httpx.MockTransport(provider.handle))
    )
    assert rp.authorization_request(redirect_uri=REDIRECT, now=NOW).url.startswith(ISSUER + "/authorize?")
    assert exchange(rp).username == "alice@corp.example"


def test_metadata_is_cached_and_an_outage_costs_one_attempt_per_interval(provider) -> None:
    rp = OIDCClient(ISSUER, CLIENT, SECRET, http=httpx.Client(transport=httpx.MockTransport(provider.handle)))
    rp.authorization_request(redirect_uri=REDIRECT, now=NOW)
    rp.authorization_request(redirect_uri=REDIRECT, now=NOW + timedelta(minutes=59))
    discoveries = [r for r in provider.requests if r.url.path.endswith("openid-configuration")]
    assert len(discoveries) == 1
    # After the TTL, an outage keeps the old metadata (retried 30 s later) rather than failing sign-ins.
    provider.down = True
    later = NOW + timedelta(hours=2)
    assert rp.authorization_request(redirect_uri=REDIRECT, now=later).url.startswith(ISSUER)
    assert rp.authorization_request(redirect_uri=REDIRECT, now=later + timedelta(seconds=10))
    attempts = len([r for r in provider.requests if r.url.path.endswith("openid-configuration")])
    assert attempts == 2
    rp.authorization_request(redirect_uri=REDIRECT, now=later + timedelta(seconds=31))
    assert len([r for r in provider.requests if r.url.path.endswith("openid-configuration")]) == 3


def test_a_provider_down_from_the_start_is_not_hammered(provider) -> None:
    provider.down = True
    rp = OIDCClient(ISSUER, CLIENT, SECRET, http=httpx.Client(transport=httpx.MockTransport(provider.handle)))
    for seconds in (0, 5, 29):
        with pytest.raises(UpstreamUnavailable, match="check WINMDM_OIDC_ISSUER"):
            rp.authorization_request(redirect_uri=REDIRECT, now=NOW + timedelta(seconds=seconds))
    assert len(provider.requests) == 1
    provider.down = False
    assert rp.authorization_request(redirect_uri=REDIRECT, now=NOW + timedelta(seconds=31))


def test_jwks_outage_is_reported_as_the_providers(rp, provider) -> None:
    provider.down_paths.add("/jwks")
    with pytest.raises(UpstreamUnavailable, match=f"signing keys of {ISSUER}") as raised:
        exchange(rp)
    assert "Entra" not in raised.value.message

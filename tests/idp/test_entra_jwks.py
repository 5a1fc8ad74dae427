"""JWKSCache over real HTTP: caching, rotation, rate limiting, outages, pinned keys."""

from __future__ import annotations

import socket
import threading
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.idp.entra_setup import CLIENT_ID, TENANT, make_verifier
from tests.support.entra_issuer import EntraIssuer
from winmdm.errors import AuthenticationFailed, ConfigError, UpstreamUnavailable
from winmdm.idp import JWKSCache


def test_many_verifications_fetch_once(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url) as cache:
        verifier = make_verifier(cache)
        assert issuer.jwks_requests == 0, "construction must not fetch"
        for i in range(20):
            token = issuer.token(
                tenant_id=TENANT, audience=CLIENT_ID, issued_at=now, upn=f"u{i}@corp.example"
            )
            assert verifier.verify(token, now + timedelta(seconds=i)).upn == f"u{i}@corp.example"
        assert issuer.jwks_requests == 1


def test_keys_are_fetched_again_after_ttl(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url, ttl=timedelta(hours=1)) as cache:
        kid = issuer.current_kid
        cache.key_for(kid, now)
        cache.key_for(kid, now + timedelta(minutes=59))
        assert issuer.jwks_requests == 1
        cache.key_for(kid, now + timedelta(hours=1))
        assert issuer.jwks_requests == 2


def test_rotation_is_picked_up_on_unknown_kid(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url) as cache:
        verifier = make_verifier(cache)
        old = issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
        verifier.verify(old, now)
        new_kid = issuer.rotate()
        new = issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
        assert new_kid in issuer.kids and issuer.current_kid == new_kid
        # Rotation is honoured only once the refresh interval allows a fetch.
        later = now + timedelta(seconds=61)
        assert verifier.verify(new, later).upn == "alice@corp.example"
        assert verifier.verify(old, later).upn == "alice@corp.example"
        assert issuer.jwks_requests == 2


def test_unknown_kid_right_after_a_fetch_waits_for_the_interval(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url, min_refresh_interval=timedelta(seconds=60)) as cache:
        cache.key_for(issuer.current_kid, now)
        new_kid = issuer.rotate()
        with pytest.raises(AuthenticationFailed) as info:
            cache.key_for(new_kid, now + timedelta(seconds=30))
        assert new_kid in info.value.message
        assert issuer.jwks_url in info.value.message
        assert "60 s" in info.value.message
        assert issuer.jwks_requests == 1
        assert cache.key_for(new_kid, now + timedelta(seconds=60)) is not None
        assert issuer.jwks_requests == 2


def test_random_kids_cannot_hammer_the_idp(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url) as cache:
        cache.key_for(issuer.current_kid, now)
        for i in range(50):
            kid = uuid.uuid4().hex
            with pytest.raises(AuthenticationFailed, match="is not in the JWKS at"):
                cache.key_for(kid, now + timedelta(seconds=61 + i))
        # One refresh for the first random kid, none for the next 49 within the interval.
        assert issuer.jwks_requests == 2
        with pytest.raises(AuthenticationFailed, match="just fetched again"):
            cache.key_for("still-unknown", now + timedelta(seconds=125))
        assert issuer.jwks_requests == 3


def test_unknown_kid_after_refresh_says_so(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url) as cache:
        with pytest.raises(AuthenticationFailed) as info:
            cache.key_for("nope", now)
        assert info.value.message.startswith(f"signing key 'nope' is not in the JWKS at {issuer.jwks_url}; ")


def test_cold_cache_fetches_once_for_many_threads(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url) as cache:
        kid = issuer.current_kid
        start = threading.Barrier(16)
        results: list[object] = []

        def worker() -> None:
            start.wait()
            results.append(cache.key_for(kid, now))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 16
        assert len({id(r) for r in results}) == 1
        assert issuer.jwks_requests == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_is_upstream_unavailable(now: datetime) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/keys"
    with JWKSCache(url, timeout=2) as cache:
        with pytest.raises(UpstreamUnavailable) as info:
            cache.key_for("any", now)
        assert url in info.value.message
        assert "ConnectError" in info.value.message


def test_issuer_stopped_after_first_fetch(issuer: EntraIssuer, now: datetime) -> None:
    with JWKSCache(issuer.jwks_url, ttl=timedelta(hours=1)) as cache:
        kid = issuer.current_kid
        cache.key_for(kid, now)
        issuer.close()
        assert cache.key_for(kid, now + timedelta(minutes=5)) is not None
        with pytest.raises(UpstreamUnavailable):
            cache.key_for(kid, now + timedelta(hours=2))


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (503, b"busy", ("HTTP 503",)),
        (404, b"{}", ("HTTP 404",)),
        (200, b"<html>login</html>", ("not JSON",)),
        (200, b"[1, 2]", ("not a JSON object",)),
        (200, b'{"issuer": "x"}', ("no 'keys' list",)),
        (200, b'{"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}]}', ("no RSA signing key",)),
    ],
    ids=["503", "404", "html", "array", "no keys", "no rsa"],
)
def test_bad_answers_are_upstream_unavailable(
    issuer: EntraIssuer, now: datetime, status: int, body: bytes, words: tuple[str, ...]
) -> None:
    issuer.respond_with(status, body)
    with JWKSCache(issuer.jwks_url) as cache, pytest.raises(UpstreamUnavailable) as info:
        cache.key_for(issuer.current_kid, now)
    assert issuer.jwks_url in info.value.message
    for word in words:
        assert word in info.value.message


def test_failed_fetch_is_not_retried_within_the_interval(issuer: EntraIssuer, now: datetime) -> None:
    issuer.respond_with(503, b"busy")
    with JWKSCache(issuer.jwks_url) as cache:
        kid = issuer.current_kid
        with pytest.raises(UpstreamUnavailable):
            cache.key_for(kid, now)
        issuer.respond_normally()
        with pytest.raises(UpstreamUnavailable, match="not retried"):
            cache.key_for(kid, now + timedelta(seconds=10))
        assert issuer.jwks_requests == 1
        assert cache.key_for(kid, now + timedelta(seconds=60)) is not None
        assert issuer.jwks_requests == 2


def test_verifier_passes_an_outage_through(issuer: EntraIssuer, now: datetime) -> None:
    token = issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    issuer.close()
    with JWKSCache(issuer_url := f"http://127.0.0.1:{_closed_port()}/k", timeout=2) as cache:
        with pytest.raises(UpstreamUnavailable) as info:
            make_verifier(cache).verify(token, now)
        assert issuer_url in info.value.message
        assert token not in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://login.microsoftonline.com/common/discovery/v2.0/keys",
        "http://10.0.0.5/keys",
        "http://127.0.0.1.evil.example/keys",
        "ftp://127.0.0.1/keys",
        "login.microsoftonline.com/keys",
        "https:///keys",
    ],
)
def test_bad_urls_are_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        JWKSCache(url)
    assert info.value.setting == "WINMDM_ENTRA_JWKS_URL"


@pytest.mark.parametrize(
    "url",
    [
        "https://login.microsoftonline.com/common/discovery/v2.0/keys",
        "http://127.0.0.1:8080/keys",
        "http://127.9.8.7/keys",
        "http://[::1]:9000/keys",
        "http://localhost/keys",
        "http://LOCALHOST:1/keys",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    with JWKSCache(url) as cache:
        assert cache.url == url


def test_a_given_client_is_used_and_not_closed(issuer: EntraIssuer, now: datetime) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=issuer.jwks())

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with JWKSCache("https://keys.example/jwks", client=client) as cache:
        assert cache.key_for(issuer.current_kid, now) is not None
    assert seen == ["https://keys.example/jwks"]
    assert not client.is_closed
    client.close()


def test_pinned_jwks_needs_no_network(issuer: EntraIssuer, now: datetime) -> None:
    pinned = issuer.jwks()
    token = issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    issuer.close()
    cache = JWKSCache.from_jwks(pinned)
    assert cache.url is None
    identity = make_verifier(cache).verify(token, now)
    assert identity.upn == "alice@corp.example"
    assert issuer.jwks_requests == 0
    with pytest.raises(AuthenticationFailed) as info:
        cache.key_for("rotated-away", now)
    assert "pinned JWKS" in info.value.message
    assert "update the pinned" in info.value.message


def test_pinned_jwks_skips_non_rsa_and_encryption_keys(issuer: EntraIssuer, now: datetime) -> None:
    ec_jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    rsa_jwk = issuer.jwks()["keys"][0]
    document = {
        "keys": [
            {**ec_jwk, "kid": "ec"},
            {**rsa_jwk, "kid": "enc", "use": "enc"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
            rsa_jwk,
        ]
    }
    cache = JWKSCache.from_jwks(document)
    assert cache.key_for(rsa_jwk["kid"], now) is not None
    for kid in ("ec", "enc", "broken"):
        with pytest.raises(AuthenticationFailed):
            cache.key_for(kid, now)


def test_pinned_jwks_without_rsa_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        JWKSCache.from_jwks({"keys": []}, setting="WINMDM_ENTRA_JWKS_FILE")
    assert info.value.setting == "WINMDM_ENTRA_JWKS_FILE"
    assert "no RSA signing key" in info.value.message

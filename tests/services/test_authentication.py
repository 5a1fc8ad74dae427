"""The Authenticator reads every WS-Security credential and remembers verified Entra tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.services.conftest import SERVER, TENANT
from winmdm.domain.models import TokenKind
from winmdm.errors import AuthenticationFailed, InvalidSecurity
from winmdm.idp.entra import EntraVerifier
from winmdm.idp.jwks import JWKSCache
from winmdm.protocol import namespaces as ns
from winmdm.protocol.soap import BinarySecurityToken, Security, UsernameToken
from winmdm.services.authentication import Authenticator


class CountingVerifier:
    def __init__(self, inner: EntraVerifier) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, token: str, now):
        self.calls += 1
        return self.inner.verify(token, now)


@pytest.fixture
def counting(entra) -> CountingVerifier:
    return CountingVerifier(EntraVerifier([TENANT], [SERVER], JWKSCache(entra.jwks_url)))


def _jwt(token: str, value_type: str = ns.VALUE_TYPE_JWT) -> Security:
    return Security(tokens=(BinarySecurityToken(value_type, token.encode()),))


def test_a_verified_token_is_remembered_until_it_expires(counting, token, clock) -> None:
    auth = Authenticator(counting)
    jwt = token(lifetime=timedelta(minutes=10))
    first = auth.authenticate(_jwt(jwt), clock.now)
    second = auth.authenticate(_jwt(jwt), clock.now)
    assert first == second and first.kind is TokenKind.ENTRA_JWT and first.username == "alice@corp.example"
    assert counting.calls == 1
    auth.authenticate(_jwt(token(upn="bob@corp.example")), clock.now)
    assert counting.calls == 2
    clock.advance(timedelta(minutes=16))  # past exp + 5 minutes of leeway
    with pytest.raises(AuthenticationFailed, match="expired"):
        auth.authenticate(_jwt(jwt), clock.now)
    assert counting.calls == 3


def test_a_jwt_under_the_user_token_value_type_is_verified(counting, token, clock) -> None:
    identity = Authenticator(counting).authenticate(_jwt(token(), ns.VALUE_TYPE_USER_TOKEN), clock.now)
    assert identity.tenant_id == TENANT


def test_refusals_name_what_to_do(counting, clock) -> None:
    auth = Authenticator(counting)
    with pytest.raises(InvalidSecurity):
        auth.authenticate(Security(), clock.now)
    with pytest.raises(AuthenticationFailed, match="certificate"):
        auth.authenticate(Security(tokens=(BinarySecurityToken(ns.VALUE_TYPE_X509, b"\x30\x00"),)), clock.now)
    with pytest.raises(AuthenticationFailed, match="not issued by this server"):
        auth.authenticate(
            Security(tokens=(BinarySecurityToken(ns.VALUE_TYPE_USER_TOKEN, b"opaque"),)), clock.now
        )
    with pytest.raises(AuthenticationFailed, match="administrator"):
        auth.authenticate(Security(username=UsernameToken("a@b.c", "pw")), clock.now)
    with pytest.raises(AuthenticationFailed, match="WINMDM_ENTRA_TENANT_IDS"):
        Authenticator(None).authenticate(_jwt("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), clock.now)
    assert counting.calls == 0

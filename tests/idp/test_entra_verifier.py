"""EntraVerifier against real RS256 tokens whose keys come over HTTP (protocol.md decision 3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.idp.entra_setup import (
    APP_ID_URI,
    CLIENT_ID,
    OTHER_TENANT,
    TENANT,
    hs256_token,
    make_verifier,
    unsigned_token,
)
from tests.support.entra_issuer import EntraIssuer
from winmdm.errors import AuthenticationFailed, ConfigError
from winmdm.idp import MICROSOFT_JWKS_URL, EntraIdentity, EntraVerifier, JWKSCache

DEVICE = "0a8f2c4e-3b1d-4e6f-9a7b-5c3d2e1f0a9b"


def _verify_ok(cache: JWKSCache, token: str, now: datetime, **kwargs: Any) -> EntraIdentity:
    return make_verifier(cache, **kwargs).verify(token, now)


def _refused(verifier: EntraVerifier, token: str, now: datetime) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        verifier.verify(token, now)
    message = info.value.message
    if len(token) > 8:
        assert token not in message
    for part in token.split("."):
        if len(part) > 8:
            assert part not in message, "a piece of the token leaked into the message"
    return message


def test_default_jwks_url_is_microsofts_common_keys() -> None:
    assert MICROSOFT_JWKS_URL == "https://login.microsoftonline.com/common/discovery/v2.0/keys"


def test_v2_token_gives_the_identity(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(
        tenant_id=TENANT,
        audience=CLIENT_ID,
        upn="bob@corp.example",
        device_id=DEVICE,
        issued_at=now,
    )
    identity = _verify_ok(shared_cache, token, now)
    claims = shared_issuer.claims(tenant_id=TENANT, audience=CLIENT_ID, upn="bob@corp.example")
    assert identity.upn == "bob@corp.example"
    assert identity.username == "bob@corp.example"
    assert identity.tenant_id == TENANT
    assert identity.object_id == claims["oid"]
    assert identity.device_id == DEVICE
    assert identity.token_version == "2.0"
    assert identity.audience == CLIENT_ID
    assert identity.principal == "bob@corp.example"
    assert identity.claims["scp"] == "mdm_delegation"
    assert identity.claims["iss"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"


def test_v1_token_gives_the_identity(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(tenant_id=TENANT, audience=APP_ID_URI, version="1.0", issued_at=now)
    identity = _verify_ok(shared_cache, token, now)
    assert identity.token_version == "1.0"
    assert identity.audience == APP_ID_URI
    assert identity.upn == "alice@corp.example"
    assert identity.device_id is None
    assert identity.claims["iss"] == f"https://sts.windows.net/{TENANT}/"


def test_audience_list_and_tenant_case_are_accepted(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(
        tenant_id=TENANT,
        audience=CLIENT_ID,
        issued_at=now,
        extra_claims={"aud": ["https://other.example", APP_ID_URI]},
    )
    identity = _verify_ok(shared_cache, token, now, tenant_ids=[TENANT.upper(), OTHER_TENANT])
    assert identity.audience == APP_ID_URI
    assert identity.tenant_id == TENANT


def test_token_tenant_in_upper_case_matches(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(tenant_id=TENANT.upper(), audience=CLIENT_ID, issued_at=now)
    identity = _verify_ok(shared_cache, token, now)
    assert identity.tenant_id == TENANT


def test_identity_claims_cannot_be_changed(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    identity = _verify_ok(shared_cache, token, now)
    with pytest.raises(TypeError):
        identity.claims["upn"] = "mallory@corp.example"  # type: ignore[index]


@pytest.mark.parametrize(
    ("dropped", "extra", "username", "principal"),
    [
        ((), {}, "alice@corp.example", "alice@corp.example"),
        (("upn",), {"preferred_username": "pref@corp.example"}, "pref@corp.example", None),
        (("upn", "preferred_username"), {"unique_name": "uniq@corp.example"}, "uniq@corp.example", None),
        (("upn", "preferred_username", "unique_name"), {"deviceid": DEVICE}, None, DEVICE),
        (("upn", "preferred_username", "unique_name", "deviceid"), {}, None, "oid"),
    ],
    ids=["upn", "preferred_username", "unique_name", "deviceid", "oid"],
)
def test_upn_fallback_chain(
    shared_issuer: EntraIssuer,
    shared_cache: JWKSCache,
    now: datetime,
    dropped: tuple[str, ...],
    extra: dict[str, str],
    username: str | None,
    principal: str | None,
) -> None:
    token = shared_issuer.token(
        tenant_id=TENANT,
        audience=CLIENT_ID,
        issued_at=now,
        drop_claims=dropped,
        extra_claims=extra,
    )
    identity = _verify_ok(shared_cache, token, now)
    assert identity.username == username
    expected = principal or username
    if principal == "oid":
        expected = identity.object_id
        assert expected
    assert identity.principal == expected


def test_token_naming_nobody_is_refused(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(
        tenant_id=TENANT, audience=CLIENT_ID, upn=None, issued_at=now, drop_claims=["oid"]
    )
    message = _refused(make_verifier(shared_cache), token, now)
    assert "neither a user" in message


@dataclass(frozen=True)
class Case:
    make: Callable[[EntraIssuer, datetime], str]
    words: tuple[str, ...]


def _tampered(idp: EntraIssuer, now: datetime) -> str:
    token = idp.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    head, _, sig = token.split(".")
    other = idp.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now, upn="root@corp.example")
    return f"{head}.{other.split('.')[1]}.{sig}"


def _alg_none(idp: EntraIssuer, now: datetime) -> str:
    claims = idp.claims(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    return unsigned_token({"alg": "none", "typ": "JWT", "kid": idp.current_kid}, claims)


def _hs256_public_key(idp: EntraIssuer, now: datetime) -> str:
    claims = idp.claims(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    header = {"alg": "HS256", "typ": "JWT", "kid": idp.current_kid}
    return hs256_token(header, claims, idp.public_key_pem())


def _no_kid(idp: EntraIssuer, now: datetime) -> str:
    import jwt

    claims = idp.claims(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    return jwt.encode(claims, idp._keys[-1].private, algorithm="RS256")


def _tok(**kwargs: Any) -> Callable[[EntraIssuer, datetime], str]:
    def make(idp: EntraIssuer, now: datetime) -> str:
        args: dict[str, Any] = {"tenant_id": TENANT, "audience": CLIENT_ID, "issued_at": now}
        args.update(kwargs)
        return idp.token(**args)

    return make


REFUSALS: dict[str, Case] = {
    "bad signature": Case(_tampered, ("signature",)),
    "stranger key": Case(
        lambda idp, now: idp.token_signed_by_stranger(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now),
        ("signature", "not issued by Entra"),
    ),
    "alg none": Case(_alg_none, ("algorithm", "'none'", "RS256")),
    "HS256 with public key": Case(_hs256_public_key, ("algorithm", "'HS256'", "RS256")),
    "no kid": Case(_no_kid, ("key id",)),
    "unknown tenant": Case(
        _tok(tenant_id=OTHER_TENANT), (OTHER_TENANT, "WINMDM_ENTRA_TENANT_IDS", "not allowed")
    ),
    "no tenant": Case(_tok(drop_claims=["tid"]), ("tid",)),
    "issuer of another tenant": Case(
        _tok(extra_claims={"iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"}),
        ("issuer", OTHER_TENANT),
    ),
    "issuer not entra": Case(_tok(extra_claims={"iss": f"https://evil.example/{TENANT}/v2.0"}), ("issuer",)),
    "v1 issuer without trailing slash": Case(
        _tok(version="1.0", extra_claims={"iss": f"https://sts.windows.net/{TENANT}"}),
        ("issuer",),
    ),
    "no issuer": Case(_tok(drop_claims=["iss"]), ("issuer", "missing")),
    "ver contradicts issuer": Case(_tok(extra_claims={"ver": "1.0"}), ("version",)),
    "wrong audience": Case(
        _tok(audience="https://graph.microsoft.com"),
        ("audience", "'https://graph.microsoft.com'", "WINMDM_ENTRA_AUDIENCES"),
    ),
    "no audience": Case(_tok(drop_claims=["aud"]), ("audience",)),
    "expired": Case(_tok(issued_at=None, lifetime=timedelta(hours=-1)), ("expired",)),
    "not yet valid": Case(
        lambda idp, now: idp.token(
            tenant_id=TENANT,
            audience=CLIENT_ID,
            issued_at=now,
            extra_claims={"nbf": int(now.timestamp()) + 3600},
        ),
        ("not valid before",),
    ),
    "issued in the future": Case(
        lambda idp, now: idp.token(
            tenant_id=TENANT,
            audience=CLIENT_ID,
            issued_at=now + timedelta(hours=1),
            drop_claims=["nbf"],
        ),
        ("issued in the future",),
    ),
    "missing exp": Case(_tok(drop_claims=["exp"]), ("expiry", "exp")),
    "exp not a number": Case(_tok(extra_claims={"exp": "tomorrow"}), ("exp", "not a number")),
    "wrong scp": Case(
        _tok(extra_claims={"scp": "User.Read openid"}), ("scp", "mdm_delegation", "'User.Read")
    ),
    "scope only as prefix": Case(_tok(extra_claims={"scp": "mdm_delegation_extra"}), ("mdm_delegation",)),
    "no scp": Case(_tok(drop_claims=["scp"]), ("scp", "mdm_delegation")),
}


@pytest.mark.parametrize("case", list(REFUSALS.values()), ids=list(REFUSALS))
def test_refusals_name_the_check(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime, case: Case
) -> None:
    token = case.make(shared_issuer, now)
    message = _refused(make_verifier(shared_cache), token, now)
    for word in case.words:
        assert word in message


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("", ("empty",)),
        ("not-a-jwt", ("not a JWT", "three")),
        ("a.b", ("not a JWT",)),
        ("a.b.c.d.e", ("not a JWT",)),
        ("!!!.###.$$$", ("not a JWT", "header")),
        ("eyJhbGciOiJSUzI1NiJ9.e30", ("not a JWT",)),
        ("x" * 40000, ("characters",)),
    ],
    ids=["empty", "one part", "two parts", "five parts", "bad base64", "no signature", "huge"],
)
def test_garbage_is_refused(
    shared_cache: JWKSCache, now: datetime, token: str, words: tuple[str, ...]
) -> None:
    message = _refused(make_verifier(shared_cache), token, now)
    for word in words:
        assert word in message


def test_garbage_payload_with_valid_header_is_refused(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    head, _, sig = token.split(".")
    message = _refused(make_verifier(shared_cache), f"{head}.%%%%.{sig}", now)
    assert "not a JWT" in message


@pytest.mark.parametrize(
    ("shift", "accepted"),
    [
        (timedelta(minutes=4), True),
        (timedelta(minutes=6), False),
    ],
)
def test_leeway_after_expiry(
    shared_issuer: EntraIssuer,
    shared_cache: JWKSCache,
    now: datetime,
    shift: timedelta,
    accepted: bool,
) -> None:
    token = shared_issuer.token(
        tenant_id=TENANT, audience=CLIENT_ID, issued_at=now, lifetime=timedelta(hours=1)
    )
    later = now + timedelta(hours=1) + shift
    verifier = make_verifier(shared_cache)
    if accepted:
        assert verifier.verify(token, later).upn == "alice@corp.example"
    else:
        assert "expired" in _refused(verifier, token, later)


@pytest.mark.parametrize(
    ("shift", "accepted"),
    [
        (timedelta(minutes=4), True),
        (timedelta(minutes=6), False),
    ],
)
def test_leeway_before_validity(
    shared_issuer: EntraIssuer,
    shared_cache: JWKSCache,
    now: datetime,
    shift: timedelta,
    accepted: bool,
) -> None:
    token = shared_issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now + shift)
    verifier = make_verifier(shared_cache)
    if accepted:
        assert verifier.verify(token, now).upn == "alice@corp.example"
    else:
        assert "not valid before" in _refused(verifier, token, now)


def test_leeway_is_configurable(shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime) -> None:
    token = shared_issuer.token(
        tenant_id=TENANT, audience=CLIENT_ID, issued_at=now, lifetime=timedelta(minutes=10)
    )
    strict = make_verifier(shared_cache, leeway=timedelta(0))
    lenient = make_verifier(shared_cache, leeway=timedelta(minutes=30))
    assert strict.verify(token, now + timedelta(minutes=10)).upn
    assert "expired" in _refused(strict, token, now + timedelta(minutes=10, seconds=1))
    assert lenient.verify(token, now + timedelta(minutes=39)).upn


def test_empty_tenant_list_refuses_everything(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    verifier = make_verifier(shared_cache, tenant_ids=[], audiences=[])
    token = shared_issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    message = _refused(verifier, token, now)
    assert "not configured" in message
    assert "WINMDM_ENTRA_TENANT_IDS" in message


def test_tenant_without_audiences_is_a_config_error(shared_cache: JWKSCache) -> None:
    with pytest.raises(ConfigError) as info:
        make_verifier(shared_cache, audiences=[" "])
    assert info.value.setting == "WINMDM_ENTRA_AUDIENCES"


def test_tenant_id_must_be_a_guid(shared_cache: JWKSCache) -> None:
    with pytest.raises(ConfigError) as info:
        make_verifier(shared_cache, tenant_ids=["corp.onmicrosoft.com"])
    assert info.value.setting == "WINMDM_ENTRA_TENANT_IDS"
    assert "corp.onmicrosoft.com" in info.value.message


def test_naive_now_is_a_programming_error(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    token = shared_issuer.token(tenant_id=TENANT, audience=CLIENT_ID, issued_at=now)
    with pytest.raises(ValueError, match="timezone"):
        make_verifier(shared_cache).verify(token, now.replace(tzinfo=None))


def test_random_tenant_ids_are_refused_by_name(
    shared_issuer: EntraIssuer, shared_cache: JWKSCache, now: datetime
) -> None:
    verifier = make_verifier(shared_cache)
    for _ in range(5):
        tenant = str(uuid.uuid4())
        token = shared_issuer.token(tenant_id=tenant, audience=CLIENT_ID, issued_at=now)
        assert tenant in _refused(verifier, token, now)

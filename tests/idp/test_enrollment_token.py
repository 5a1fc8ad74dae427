"""The enrollment token (wresult): issued for a verified user, verified once per call, refused when
expired, altered, signed by another key, or not one at all; its key file is made once and shared."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from winmdm.domain.models import TokenKind
from winmdm.errors import AuthenticationFailed, ConfigError
from winmdm.idp.enrollment_token import KEY_FILE, PREFIX, EnrollmentTokens, load_or_create_key
from winmdm.protocol import namespaces as ns
from winmdm.protocol.soap import BinarySecurityToken, FaultDetailType, Security
from winmdm.services.authentication import NOT_SET_UP, Authenticator

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = bytes(range(32))


@pytest.fixture
def tokens() -> EnrollmentTokens:
    return EnrollmentTokens(KEY)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> list[str]:
    assert token.startswith(PREFIX)
    return token[len(PREFIX) :].split(".")


def test_issue_then_verify_names_the_user_with_a_fresh_id_and_a_ten_minute_expiry(tokens) -> None:
    first = tokens.issue("alice@corp.example", NOW)
    second = tokens.issue("alice@corp.example", NOW)
    assert not first.startswith("eyJ"), "must never be taken for an Entra JWT"
    username, jti, expires = tokens.verify(first, NOW + timedelta(minutes=9, seconds=59))
    assert username == "alice@corp.example"
    assert expires == NOW + timedelta(minutes=10)
    assert len(jti) >= 20
    assert tokens.verify(second, NOW).jti != jti
    claims = json.loads(base64.urlsafe_b64decode(_parts(first)[1] + "=="))
    assert claims["sub"] == claims["upn"] == "alice@corp.example"


def test_expired_at_its_expiry(tokens) -> None:
    token = tokens.issue("alice@corp.example", NOW)
    with pytest.raises(AuthenticationFailed, match=r"expired .* start the enrollment again"):
        tokens.verify(token, NOW + timedelta(minutes=10))


def test_lifetime_is_configurable() -> None:
    short = EnrollmentTokens(KEY, lifetime=timedelta(minutes=2))
    token = short.issue("bob@corp.example", NOW)
    assert short.verify(token, NOW + timedelta(seconds=119)).username == "bob@corp.example"
    with pytest.raises(AuthenticationFailed, match="expired"):
        short.verify(token, NOW + timedelta(minutes=2))


def test_tampered_claims_are_refused(tokens) -> None:
    header, payload, signature = _parts(tokens.issue("alice@corp.example", NOW))
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    for change in ({"sub": "mallory@corp.example"}, {"exp": claims["exp"] + 86400}, {"jti": "reused"}):
        forged = _b64url(json.dumps({**claims, **change}).encode())
        with pytest.raises(AuthenticationFailed, match="signature does not match"):
            tokens.verify(f"{PREFIX}{header}.{forged}.{signature}", NOW)


def test_a_changed_signature_byte_is_refused(tokens) -> None:
    token = tokens.issue("alice@corp.example", NOW)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(AuthenticationFailed):
        tokens.verify(flipped, NOW)


def test_another_installation_key_is_refused(tokens) -> None:
    other = EnrollmentTokens(bytes(32))
    with pytest.raises(AuthenticationFailed, match="another winmdm installation"):
        tokens.verify(other.issue("alice@corp.example", NOW), NOW)


def test_the_state_cookie_key_cannot_sign_tokens(tokens) -> None:
    """A JWT made with a derived key for another purpose is not an enrollment token."""
    _, payload, _ = _parts(tokens.issue("alice@corp.example", NOW))
    resigned = jwt.encode(
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        tokens.subkey("sign-in state"),
        algorithm="HS256",
        headers={"typ": "winmdm-enrollment+jwt"},
    )
    with pytest.raises(AuthenticationFailed):
        tokens.verify(PREFIX + resigned, NOW)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "opaque-wresult",
        "sign-in-not-configured",
        PREFIX,
        PREFIX + "a.b.c",
        PREFIX + "x" * 5000,
        "eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
        PREFIX + jwt.encode({"sub": "a"}, "k" * 32, algorithm="HS256"),
        PREFIX
        + _b64url(b'{"alg":"none","typ":"winmdm-enrollment+jwt"}')
        + "."
        + _b64url(b'{"sub":"a"}')
        + ".",
    ],
    ids=[
        "empty",
        "opaque",
        "not-configured",
        "prefix-only",
        "not-base64",
        "huge",
        "no-prefix",
        "other-key",
        "alg-none",
    ],
)
def test_garbage_is_refused(tokens, garbage: str) -> None:
    with pytest.raises(AuthenticationFailed):
        tokens.verify(garbage, NOW)


def test_a_token_without_its_type_or_ids_is_refused(tokens) -> None:
    key = tokens.subkey("enrollment token")
    base = {"iss": "winmdm enrollment", "sub": "a@corp.example", "jti": "j", "iat": 1, "exp": 2**32}
    for claims, headers in (
        (base, {}),  # no typ
        ({**base, "jti": ""}, {"typ": "winmdm-enrollment+jwt"}),
        ({k: v for k, v in base.items() if k != "sub"}, {"typ": "winmdm-enrollment+jwt"}),
        ({**base, "iss": "someone else"}, {"typ": "winmdm-enrollment+jwt"}),
        ({**base, "exp": 2.0**32}, {"typ": "winmdm-enrollment+jwt"}),
        ({**base, "exp": 2**40}, {"typ": "winmdm-enrollment+jwt"}),
    ):
        token = PREFIX + jwt.encode(claims, key, algorithm="HS256", headers=headers)
        with pytest.raises(AuthenticationFailed, match="not one winmdm issued"):
            tokens.verify(token, NOW)
    assert (
        tokens.verify(
            PREFIX + jwt.encode(base, key, algorithm="HS256", headers={"typ": "winmdm-enrollment+jwt"}), NOW
        ).jti
        == "j"
    )


@pytest.mark.parametrize("name", ["", "   ", "a" * 257, "bad\x00name"])
def test_unrecordable_usernames_are_not_issued(tokens, name: str) -> None:
    with pytest.raises(AuthenticationFailed):
        tokens.issue(name, NOW)


def test_weak_keys_and_lifetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        EnrollmentTokens(b"short")
    with pytest.raises(ValueError):
        EnrollmentTokens(KEY, lifetime=timedelta(0))


# -- the key file --------------------------------------------------------------------------------


def test_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    path = tmp_path / KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path) == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_instances_starting_together_share_one_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create_key(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 8
    token = EnrollmentTokens(keys[0]).issue("alice@corp.example", NOW)
    assert EnrollmentTokens(load_or_create_key(tmp_path)).verify(token, NOW).username == "alice@corp.example"


def test_a_damaged_key_file_stops_the_start_with_advice(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with pytest.raises(ConfigError, match="not a 32-byte key; copy it from another winmdm"):
        load_or_create_key(tmp_path)


# -- the Authenticator branch (services/authentication.py) ----------------------------------------


def _security(token: str) -> Security:
    return Security(tokens=(BinarySecurityToken(ns.VALUE_TYPE_USER_TOKEN, token.encode()),))


def test_authenticator_turns_a_token_into_an_identity_with_its_id(tokens) -> None:
    auth = Authenticator(None, enrollment_tokens=tokens, sign_in_configured=True)
    token = tokens.issue("alice@corp.example", NOW)
    identity = auth.authenticate(_security(token), NOW)
    assert identity.kind is TokenKind.ENROLLMENT_TOKEN
    assert identity.username == "alice@corp.example"
    assert identity.token_expires == NOW + timedelta(minutes=10)
    assert identity.token_id == tokens.verify(token, NOW).jti
    # Verifying does not use it up: GetPolicies and the RST both pass (the enrollment consumes it).
    assert auth.authenticate(_security(token), NOW) == identity


def test_authenticator_refusals_are_shown_by_windows(tokens, caplog) -> None:
    auth = Authenticator(None, enrollment_tokens=tokens, sign_in_configured=True)
    expired = tokens.issue("alice@corp.example", NOW - timedelta(minutes=11))
    with pytest.raises(AuthenticationFailed, match="start the enrollment again from Settings") as raised:
        auth.authenticate(_security(expired), NOW)
    assert raised.value.detail_type == FaultDetailType.CUSTOM_SERVER_ERROR
    assert "expired" in caplog.text  # the admin log says why


def test_without_an_idp_unknown_tokens_say_contact_your_admin_and_the_log_names_the_settings(
    tokens, caplog
) -> None:
    auth = Authenticator(None, enrollment_tokens=tokens, sign_in_configured=False)
    with pytest.raises(AuthenticationFailed) as raised:
        auth.authenticate(_security("sign-in-not-configured"), NOW)
    assert raised.value.message.startswith(NOT_SET_UP)
    assert "contact your administrator" in raised.value.message
    assert raised.value.detail_type == FaultDetailType.CUSTOM_SERVER_ERROR
    assert "WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID and WINMDM_OIDC_CLIENT_SECRET" in caplog.text
    # A token this server did issue (the deep link, later) still counts without an IdP.
    assert (
        auth.authenticate(_security(tokens.issue("bob@corp.example", NOW)), NOW).username
        == "bob@corp.example"
    )

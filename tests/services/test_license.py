"""License keys: real ES256 JWTs signed here with a keypair of the test's own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from winmdm.errors import ConfigError
from winmdm.services.license import (
    FREE,
    License,
    Tier,
    load_license,
    public_key_from_file,
    shipped_public_key,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def public_pem(signing_key) -> bytes:
    return _pem(signing_key)


def claims(**changes) -> dict:
    base = {
        "iss": "winmdm",
        "tier": "premium",
        "organization": "Contoso Ltd",
        "iat": int((NOW - timedelta(days=10)).timestamp()),
        "exp": int((NOW + timedelta(days=365)).timestamp()),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(key, payload: dict, algorithm: str = "ES256", headers: dict | None = None) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_no_key_is_free_without_a_warning(public_pem) -> None:
    assert load_license(None, public_pem, NOW) == FREE
    assert load_license("   ", public_pem, NOW) == License(Tier.FREE, None, None, None)


def test_a_valid_premium_key(signing_key, public_pem) -> None:
    key = sign(signing_key, claims())
    found = load_license(f"  {key}\n", public_pem, NOW)
    assert found == License(
        Tier.PREMIUM, "Contoso Ltd", datetime.fromtimestamp(claims()["exp"], UTC), warning=None
    )
    assert found.premium


def test_organization_may_come_from_sub(signing_key, public_pem) -> None:
    key = sign(signing_key, claims(organization=None, sub="Fabrikam"))
    assert load_license(key, public_pem, NOW).organization == "Fabrikam"


def test_a_valid_free_key_is_free_without_warning(signing_key, public_pem) -> None:
    found = load_license(sign(signing_key, claims(tier="free")), public_pem, NOW)
    assert found.tier is Tier.FREE and found.warning is None and found.organization == "Contoso Ltd"


def test_an_expired_key_is_free_and_says_when_and_what_to_do(signing_key, public_pem) -> None:
    expired = datetime(2026, 5, 3, 9, 0, tzinfo=UTC)
    found = load_license(sign(signing_key, claims(exp=int(expired.timestamp()))), public_pem, NOW)
    assert found.tier is Tier.FREE
    assert found.expires_at == expired
    assert found.warning == (
        "The license key expired on 2026-05-03; winmdm runs as Free. Renew the license and set "
        "WINMDM_LICENSE_KEY to the new key."
    )


def test_a_key_about_to_expire_is_premium_with_a_warning(signing_key, public_pem) -> None:
    soon = NOW + timedelta(days=12, hours=1)
    found = load_license(sign(signing_key, claims(exp=int(soon.timestamp()))), public_pem, NOW)
    assert found.tier is Tier.PREMIUM
    assert found.warning.startswith(f"The license key expires on {soon:%Y-%m-%d} (in 12 days)")
    assert "WINMDM_LICENSE_KEY" in found.warning


def test_a_license_read_at_a_later_time_expires(signing_key, public_pem) -> None:
    ends = NOW + timedelta(days=100)
    found = load_license(sign(signing_key, claims(exp=int(ends.timestamp()))), public_pem, NOW)
    assert found.at(NOW + timedelta(days=99)) is found
    later = found.at(ends)
    assert later.tier is Tier.FREE and "expired on" in later.warning and later.organization == "Contoso Ltd"
    assert FREE.at(ends) is FREE


def test_a_key_signed_by_another_key_is_free(public_pem) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    found = load_license(sign(other, claims()), public_pem, NOW)
    assert found.tier is Tier.FREE
    assert "signature does not match" in found.warning
    assert "winmdm runs as Free" in found.warning and "WINMDM_LICENSE_KEY" in found.warning
    assert "WINMDM_LICENSE_PUBLIC_KEY_FILE" in found.warning  # the key given is not the shipped one


def test_an_altered_key_is_free(signing_key, public_pem) -> None:
    header, _payload, signature = sign(signing_key, claims(tier="free")).split(".")
    forged = _b64(json.dumps(claims()).encode())
    found = load_license(f"{header}.{forged}.{signature}", public_pem, NOW)
    assert found.tier is Tier.FREE and "signature does not match" in found.warning


def test_alg_none_is_refused(public_pem) -> None:
    unsigned = sign(None, claims(), algorithm="none")
    found = load_license(unsigned, public_pem, NOW)
    assert found.tier is Tier.FREE
    assert "'none', not ES256" in found.warning


def test_hs256_keyed_with_the_public_key_is_refused(public_pem) -> None:
    """The classic confusion attack: an HMAC whose secret is the (public) verification key."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    found = load_license(f"{header}.{payload}.{_b64(mac)}", public_pem, NOW)
    assert found.tier is Tier.FREE and "'HS256', not ES256" in found.warning


def test_es256_header_over_another_algorithm_is_refused(public_pem) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs = sign(rsa_key, claims(), algorithm="RS256")
    found = load_license(rs, public_pem, NOW)
    assert found.tier is Tier.FREE and "'RS256'" in found.warning
    # The header claims ES256 but the signature is RSA: no match.
    header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    _, payload, signature = rs.split(".")
    assert load_license(f"{header}.{payload}.{signature}", public_pem, NOW).tier is Tier.FREE


@pytest.mark.parametrize(
    "text", ["not a jwt", "a.b.c", "....", "é" * 10, "x" * 10000, "eyJhbGciOiJFUzI1NiJ9"]
)
def test_malformed_keys_are_free_with_a_warning(public_pem, text: str) -> None:
    found = load_license(text, public_pem, NOW)
    assert found.tier is Tier.FREE
    assert found.warning and "winmdm runs as Free" in found.warning


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"iss": "someone-else"}, "not issued by winmdm"),
        ({"iss": None}, "'iss' claim"),
        ({"exp": None}, "'exp' claim"),
        ({"iat": None}, "'iat' claim"),
        ({"tier": None}, "names tier 'None'"),
        ({"tier": "gold"}, "names tier 'gold'"),
        ({"iat": int((NOW + timedelta(days=2)).timestamp())}, "issued in the future"),
        ({"exp": "next year"}, "are not dates"),
        ({"iat": "yesterday"}, "are not dates"),
        ({"exp": True}, "are not dates"),
    ],
)
def test_keys_with_wrong_claims_are_free(signing_key, public_pem, changes, said) -> None:
    found = load_license(sign(signing_key, claims(**changes)), public_pem, NOW)
    assert found.tier is Tier.FREE
    assert said in found.warning, found.warning
    assert "winmdm runs as Free" in found.warning


def test_the_shipped_public_key_is_a_p256_key_and_refuses_our_test_keys(signing_key) -> None:
    shipped = shipped_public_key()
    assert shipped.startswith(b"-----BEGIN PUBLIC KEY-----")
    key = serialization.load_pem_public_key(shipped)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    found = load_license(sign(signing_key, claims()), shipped, NOW)
    assert found.tier is Tier.FREE and "signature does not match" in found.warning
    assert "WINMDM_LICENSE_PUBLIC_KEY_FILE" not in found.warning


def test_no_private_key_ships() -> None:
    from importlib import resources

    for entry in resources.files("winmdm.services").iterdir():
        if entry.name.endswith(".pem"):
            assert b"PRIVATE" not in entry.read_bytes(), entry.name


def test_public_key_file_override(tmp_path, public_pem) -> None:
    assert public_key_from_file(None) == shipped_public_key()
    path = tmp_path / "license.pem"
    path.write_bytes(public_pem)
    assert public_key_from_file(path) == public_pem
    with pytest.raises(ConfigError) as raised:
        public_key_from_file(tmp_path / "missing.pem")
    assert raised.value.setting == "WINMDM_LICENSE_PUBLIC_KEY_FILE"


def test_a_public_key_that_is_not_p256_is_a_config_error() -> None:
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    for pem in (b"junk", rsa_pem, _pem(ec.generate_private_key(ec.SECP384R1()))):
        with pytest.raises(ConfigError) as raised:
            load_license(None, pem, NOW)
        assert raised.value.setting == "WINMDM_LICENSE_PUBLIC_KEY_FILE"


def test_the_settings_name_the_key_and_the_public_key_file(tmp_path, signing_key, public_pem) -> None:
    from winmdm.config import load_config

    with pytest.raises(ConfigError) as raised:
        load_config({"WINMDM_LICENSE_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")})
    assert raised.value.setting == "WINMDM_LICENSE_PUBLIC_KEY_FILE"
    path = tmp_path / "license.pem"
    path.write_bytes(public_pem)
    key = sign(signing_key, claims())
    config = load_config({"WINMDM_LICENSE_KEY": f" {key} ", "WINMDM_LICENSE_PUBLIC_KEY_FILE": str(path)})
    assert config.license_key == key
    found = load_license(config.license_key, public_key_from_file(config.license_public_key_file), NOW)
    assert found.tier is Tier.PREMIUM and found.organization == "Contoso Ltd"

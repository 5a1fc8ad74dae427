"""The license: Free, or Premium unlocked by a signed license key (design.md §1 "tiers").

A license key is a JWT signed with ES256 (ECDSA P-256, SHA-256) by winmdm's license private key,
which never ships. The public key ships with the code (`license_public_key.pem`);
WINMDM_LICENSE_PUBLIC_KEY_FILE replaces it (a test installation, or a re-keyed vendor). Claims:

- ``iss``: ``"winmdm"``
- ``tier``: ``"premium"`` (or ``"free"``)
- ``organization`` (or ``sub``): who the license is for
- ``exp``, ``iat``: NumericDate seconds

A missing key is Free without a word. A key that cannot be trusted (altered, another key, another
algorithm, expired, malformed) is Free too, never a refusal to start: the server keeps running
and the warning says what is wrong and what to do. Premium is never unlocked by a flag.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from winmdm.errors import ConfigError

__all__ = [
    "FREE",
    "ISSUER",
    "KEY_SETTING",
    "PUBLIC_KEY_SETTING",
    "License",
    "Tier",
    "load_license",
    "shipped_public_key",
]

ISSUER = "winmdm"
ALGORITHM = "ES256"
KEY_SETTING = "WINMDM_LICENSE_KEY"
PUBLIC_KEY_SETTING = "WINMDM_LICENSE_PUBLIC_KEY_FILE"
EXPIRY_NOTICE = timedelta(days=30)
"""How long before its expiry a Premium license starts warning."""
_SKEW = timedelta(minutes=5)
_MAX_KEY = 8192
_RUNS_FREE = "winmdm runs as Free"
_AS_RECEIVED = f"Set {KEY_SETTING} to the license key exactly as you received it"
_NOT_A_KEY = f"{KEY_SETTING} is not a winmdm license key (not a signed JWT); {_RUNS_FREE}. {_AS_RECEIVED}."


class Tier(enum.StrEnum):
    FREE = "free"
    PREMIUM = "premium"


@dataclass(frozen=True, slots=True)
class License:
    tier: Tier
    organization: str | None = None
    expires_at: datetime | None = None
    warning: str | None = None  # what is wrong with the key and what to do; None when all is well

    @property
    def premium(self) -> bool:
        return self.tier is Tier.PREMIUM

    def at(self, now: datetime) -> License:
        """This license as it stands at `now`: a Premium license past its expiry is Free."""
        if self.tier is Tier.PREMIUM and self.expires_at is not None and now >= self.expires_at:
            return replace(self, tier=Tier.FREE, warning=_expired(self.expires_at))
        return self


FREE = License(Tier.FREE)


def shipped_public_key() -> bytes:
    """The license public key that ships with winmdm (PEM)."""
    return resources.files("winmdm.services").joinpath("license_public_key.pem").read_bytes()


def public_key_from_file(path: Path | None) -> bytes:
    """The PEM at `path` (WINMDM_LICENSE_PUBLIC_KEY_FILE), or the shipped key when None."""
    if path is None:
        return shipped_public_key()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(PUBLIC_KEY_SETTING, f"{path} cannot be read: {exc.strerror or exc}") from None


def load_license(key: str | None, public_key_pem: bytes, now: datetime) -> License:
    """The license a key proves at `now`; Free (with a warning) for any key that proves nothing.

    ConfigError when the public key itself is not a P-256 public key in PEM: that is the
    server's own setting, not the customer's key, and is fixed by whoever runs the server.
    """
    public_key = _public_key(public_key_pem)
    text = (key or "").strip()
    if not text:
        return FREE
    if len(text) > _MAX_KEY or not text.isascii():
        return _free(_NOT_A_KEY)
    try:
        header = jwt.get_unverified_header(text)
    except jwt.DecodeError:
        return _free(_NOT_A_KEY)
    algorithm = header.get("alg")
    if algorithm != ALGORITHM:
        shown = repr(algorithm)[:40] if algorithm else "no algorithm"
        return _free(
            f"The license key is signed with {shown}, not {ALGORITHM}, so it was not issued by "
            f"winmdm; {_RUNS_FREE}. {_AS_RECEIVED}."
        )
    try:
        claims = jwt.decode(
            text,
            public_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=_SKEW,
            # Times are checked below against `now`, not against PyJWT's own clock.
            options={
                "require": ["exp", "iat", "iss"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        return _free(
            "The license key's signature does not match winmdm's license public key (the key was "
            f"altered, or issued for another public key); {_RUNS_FREE}. {_AS_RECEIVED}"
            + (f", or check {PUBLIC_KEY_SETTING}." if _is_override(public_key_pem) else ".")
        )
    except jwt.InvalidIssuerError:
        return _free(f"The license key was not issued by winmdm; {_RUNS_FREE}. {_AS_RECEIVED}.")
    except jwt.MissingRequiredClaimError as exc:
        return _free(f"The license key has no {exc.claim!r} claim; {_RUNS_FREE}. {_AS_RECEIVED}.")
    except jwt.InvalidTokenError as exc:
        return _free(f"The license key cannot be read ({exc}); {_RUNS_FREE}. {_AS_RECEIVED}.")
    return _from_claims(claims, now)


def _from_claims(claims: dict[str, Any], now: datetime) -> License:
    tier = claims.get("tier")
    if tier not in (Tier.FREE.value, Tier.PREMIUM.value):
        return _free(
            f"The license key names tier {str(tier)[:40]!r}, not premium or free; {_RUNS_FREE}. "
            f"{_AS_RECEIVED}."
        )
    named = claims.get("organization") or claims.get("sub")
    organization = str(named).strip()[:200] or None if named is not None else None
    exp, iat = claims["exp"], claims["iat"]
    if not _is_time(exp) or not _is_time(iat):
        return _free(f"The license key's dates (exp, iat) are not dates; {_RUNS_FREE}. {_AS_RECEIVED}.")
    if datetime.fromtimestamp(iat, UTC) > now + _SKEW:
        return _free(
            f"The license key was issued in the future (after {now:%Y-%m-%d %H:%M} UTC); {_RUNS_FREE}. "
            "Check the server's clock."
        )
    expires_at = datetime.fromtimestamp(exp, UTC)
    found = License(Tier(tier), organization, expires_at)
    if now >= expires_at:
        return License(Tier.FREE, organization, expires_at, _expired(expires_at))
    if found.premium and expires_at - now <= EXPIRY_NOTICE:
        days = max(1, (expires_at - now).days)
        left = f"{days} day" if days == 1 else f"{days} days"
        warning = (
            f"The license key expires on {expires_at:%Y-%m-%d} (in {left}); winmdm then runs as Free. "
            f"Renew the license and set {KEY_SETTING} to the new key."
        )
        return replace(found, warning=warning)
    return found


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 253402300800


def _expired(expires_at: datetime) -> str:
    return (
        f"The license key expired on {expires_at:%Y-%m-%d}; {_RUNS_FREE}. Renew the license and set "
        f"{KEY_SETTING} to the new key."
    )


def _free(warning: str) -> License:
    return License(Tier.FREE, warning=warning.strip())


def _public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ConfigError(PUBLIC_KEY_SETTING, "is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(PUBLIC_KEY_SETTING, "must be an EC P-256 public key (license keys are ES256)")
    return key


def _is_override(pem: bytes) -> bool:
    return pem.strip() != shipped_public_key().strip()

"""The enrollment token: what winmdm's sign-in page hands Windows as ``wresult`` (protocol.md §5).

Windows treats it as opaque and sends it back, base64-encoded, as the DeviceEnrollmentUserToken of
GetPolicies and RequestSecurityToken. It is an HS256 JWT behind a ``winmdm-et1.`` prefix, so it can
never be mistaken for an Entra JWT (those start ``eyJ``), naming the user the IdP verified
(``sub``/``upn``), with a random ``jti`` the enrollment consumes once, and an expiry a few
minutes ahead (design.md §2 step 3).

The key is ``enrollment-token.key`` in the data dir: 32 random bytes, mode 0600, made on first
start. Instances sharing a database must share it, as they share the device CA. Other short-lived
secrets of the sign-in (its state cookie) use keys derived from it for their own purpose, so one
token type can never be passed off as another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import jwt

from winmdm.errors import AuthenticationFailed
from winmdm.pki.secret_key import load_or_create_secret_key

__all__ = ["KEY_FILE", "PREFIX", "EnrollmentTokens", "VerifiedToken", "load_or_create_key"]

KEY_FILE = "enrollment-token.key"
PREFIX = "winmdm-et1."
_ISSUER = "winmdm enrollment"
_TYPE = "winmdm-enrollment+jwt"
_MAX_CHARS = 4096
_MAX_USERNAME = 256


class VerifiedToken(NamedTuple):
    username: str
    jti: str
    expires: datetime


def load_or_create_key(data_dir: Path) -> bytes:
    """The master key, made on first start. Written aside and linked into place, so a second
    process starting at the same moment reads a whole key or makes none."""
    return load_or_create_secret_key(
        data_dir / KEY_FILE, if_lost="sign-ins in progress then fail and must be started again"
    )


class EnrollmentTokens:
    """Issues and verifies enrollment tokens. Stateless: single use is the enrollment's job."""

    def __init__(self, key: bytes, *, lifetime: timedelta = timedelta(minutes=10)) -> None:
        if len(key) < 32:
            raise ValueError("the enrollment token key must be at least 32 bytes")
        if lifetime <= timedelta(0):
            raise ValueError("the enrollment token lifetime must be positive")
        self._master = key
        self._key = self.subkey("enrollment token")
        self.lifetime = lifetime

    def subkey(self, purpose: str) -> bytes:
        """A key for one purpose, derived from the master key (HMAC-SHA256 as a PRF)."""
        return hmac.new(self._master, b"winmdm/" + purpose.encode(), hashlib.sha256).digest()

    def issue(self, username: str, now: datetime, *, lifetime: timedelta | None = None) -> str:
        """A token naming `username`; `lifetime` overrides the default (pre-authorized deep links)."""
        name = username.strip()
        if not name or len(name) > _MAX_USERNAME or not name.isprintable():
            raise AuthenticationFailed("the identity provider named a user winmdm cannot record")
        issued = int(now.timestamp())
        claims = {
            "iss": _ISSUER,
            "sub": name,
            "upn": name,
            "jti": secrets.token_urlsafe(18),
            "iat": issued,
            "exp": issued + int((lifetime or self.lifetime).total_seconds()),
        }
        return PREFIX + jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": _TYPE})

    def verify(self, token: str, now: datetime) -> VerifiedToken:
        """(username, jti, expires) of a token this server issued and that has not expired.

        Raises AuthenticationFailed for anything else: garbage, another key, a changed byte, expiry.
        """
        if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > _MAX_CHARS:
            raise AuthenticationFailed("the sign-in token is not one winmdm issued")
        compact = token[len(PREFIX) :]
        options: Any = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
        try:
            header = jwt.get_unverified_header(compact)
            claims = jwt.decode(compact, self._key, algorithms=["HS256"], options=options, issuer=_ISSUER)
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed(
                "the sign-in token's signature does not match this server's key; it was altered, "
                "or issued by another winmdm installation (instances must share enrollment-token.key)"
            ) from None
        except jwt.PyJWTError:
            raise AuthenticationFailed("the sign-in token is not one winmdm issued") from None
        username, jti, exp = claims.get("sub"), claims.get("jti"), claims.get("exp")
        if (
            header.get("typ") != _TYPE
            or not isinstance(username, str)
            or not username
            or not isinstance(jti, str)
            or not jti
            or not isinstance(exp, int)
            or isinstance(exp, bool)
            or not 0 < exp < 2**33  # within datetime's range
        ):
            raise AuthenticationFailed("the sign-in token is not one winmdm issued")
        expires = datetime.fromtimestamp(exp, UTC)
        if now >= expires:
            minutes = max(1, int(self.lifetime.total_seconds() // 60))
            raise AuthenticationFailed(
                f"the sign-in token expired at {expires:%H:%M:%S} UTC (it lasts {minutes} minutes); "
                "start the enrollment again from Settings"
            )
        return VerifiedToken(username, jti, expires)

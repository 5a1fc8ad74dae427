"""Who is enrolling: reads the WS-Security credential of GetPolicies and RequestSecurityToken.

This issue accepts the Entra access token (protocol.md §3, decision 3) and the enrollment token of
winmdm's own sign-in page (protocol.md §5: ``wresult``, sent back as a DeviceEnrollmentUserToken).
The other credentials Windows can send are recognised and refused with a reason the admin can act on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from winmdm.domain.models import TokenKind
from winmdm.errors import AuthenticationFailed, InvalidSecurity
from winmdm.protocol import namespaces as ns
from winmdm.protocol.soap import BinarySecurityToken, FaultDetailType, Security

log = logging.getLogger("winmdm.enrollment")

# Shown by Windows (CustomServerError) when MDM-only enrollment is tried without an IdP.
NOT_SET_UP = "MDM-only enrollment isn't set up on this server; contact your administrator"
OIDC_SETTINGS = "WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID and WINMDM_OIDC_CLIENT_SECRET"


class TokenVerifier(Protocol):
    """What EntraVerifier offers (idp/entra.py)."""

    def verify(self, token: str, now: datetime): ...


class EnrollmentTokenVerifier(Protocol):
    """What EnrollmentTokens offers (idp/enrollment_token.py): (username, jti, expires)."""

    def verify(self, token: str, now: datetime) -> tuple[str, str, datetime]: ...


@dataclass(frozen=True, slots=True)
class Identity:
    kind: TokenKind
    username: str | None  # the UPN, when the token names a user
    tenant_id: str | None = None
    entra_device_id: str | None = None
    object_id: str | None = None
    # An enrollment token (sign-in page): its id, consumed once by the enrollment that succeeds.
    token_id: str | None = None
    token_expires: datetime | None = None


def _is_jwt(token: BinarySecurityToken) -> bool:
    # Some clients send the Entra token under DeviceEnrollmentUserToken: decoded, a JWT starts "eyJ".
    return token.value_type == ns.VALUE_TYPE_JWT or token.data.startswith(b"eyJ")


class Authenticator:
    """Windows sends the same token with GetPolicies and then RequestSecurityToken, seconds apart:
    a verified token is remembered (bounded, by digest) until its own expiry, so the second
    call skips the signature check. Expiry is still checked on every use."""

    CACHE_SIZE = 1024

    def __init__(
        self,
        entra: TokenVerifier | None,
        *,
        leeway: timedelta = timedelta(minutes=5),
        enrollment_tokens: EnrollmentTokenVerifier | None = None,
        sign_in_configured: bool = False,
    ) -> None:
        """``sign_in_configured``: an OIDC IdP backs the sign-in page. Without one, tokens this
        server issued (by other means) still count; anything else is refused as "not set up"."""
        self._entra = entra
        self._enrollment_tokens = enrollment_tokens
        self._sign_in_configured = sign_in_configured
        self._leeway = leeway
        self._verified: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, security: Security, now: datetime) -> Identity:
        if security.empty:
            raise InvalidSecurity("the request has no credential in its WS-Security header")
        for token in security.tokens:
            if _is_jwt(token):
                return self._entra_identity(token, now)
        if security.tokens and security.tokens[0].value_type == ns.VALUE_TYPE_X509:
            raise AuthenticationFailed(
                "certificate-authenticated enrollment is not supported by this server; "
                "enroll with a work account or the sign-in page"
            )
        if security.tokens:
            return self._enrollment_identity(security.tokens[0], now)
        raise AuthenticationFailed(
            "username and password enrollment is not set up on this server; "
            "ask your administrator how to enroll this PC"
        )

    def _enrollment_identity(self, token: BinarySecurityToken, now: datetime) -> Identity:
        """The ``wresult`` of winmdm's sign-in page. Verified on every call: GetPolicies and the
        RST both check it; only the enrollment that succeeds consumes its id."""
        reason = "no enrollment token verifier"
        if self._enrollment_tokens is not None:
            try:
                username, token_id, expires = self._enrollment_tokens.verify(
                    token.data.decode("ascii", errors="replace"), now
                )
            except AuthenticationFailed as exc:
                reason = exc.message
            else:
                return Identity(
                    kind=TokenKind.ENROLLMENT_TOKEN,
                    username=username,
                    token_id=token_id,
                    token_expires=expires,
                )
        if not self._sign_in_configured:
            log.warning(
                "MDM-only enrollment refused: no OIDC identity provider is configured for the "
                "sign-in page; set %s",
                OIDC_SETTINGS,
            )
            raise AuthenticationFailed(
                f"{NOT_SET_UP} (the sign-in token was not issued by this server)",
                detail_type=FaultDetailType.CUSTOM_SERVER_ERROR.value,
            )
        log.warning("enrollment token refused: %s", reason)
        raise AuthenticationFailed(
            "the sign-in token was not issued by this server or has expired; "
            "start the enrollment again from Settings",
            detail_type=FaultDetailType.CUSTOM_SERVER_ERROR.value,
        )

    def _entra_identity(self, token: BinarySecurityToken, now: datetime) -> Identity:
        if self._entra is None:
            raise AuthenticationFailed(
                "Entra enrollment is not configured on this server (set WINMDM_ENTRA_TENANT_IDS)"
            )
        try:
            jwt = token.data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise AuthenticationFailed("the Entra token is not text") from None
        key = hashlib.sha256(token.data).digest()
        with self._lock:
            cached = self._verified.get(key)
        if cached is not None and now.timestamp() <= cached[1] + self._leeway.total_seconds():
            return cached[0]
        verified = self._entra.verify(jwt, now)
        identity = Identity(
            kind=TokenKind.ENTRA_JWT,
            username=verified.username,
            tenant_id=verified.tenant_id,
            entra_device_id=verified.device_id,
            object_id=verified.object_id,
        )
        expires = verified.claims.get("exp")
        if isinstance(expires, int | float):
            with self._lock:
                self._verified[key] = (identity, float(expires))
                while len(self._verified) > self.CACHE_SIZE:
                    self._verified.popitem(last=False)
        return identity

"""Verification of the Entra access token Windows sends in the enrollment request.

In the Entra enrollment paths (design.md §2, protocol.md §6) the BinarySecurityToken of
RequestSecurityToken is an Entra access token for winmdm's MDM application. What is checked, and
why, is protocol.md decision 3:

- RS256 signature by a key of the Entra JWKS (nothing else: ``none`` and HS* are refused before
  any key is looked up, so a public key can never be used as an HMAC secret);
- ``tid`` in the configured allow-list (WINMDM_ENTRA_TENANT_IDS), compared case-insensitively;
- ``iss`` exactly the v1 (``https://sts.windows.net/<tid>/``) or v2
  (``https://login.microsoftonline.com/<tid>/v2.0``) issuer of the token's own tenant;
- ``aud`` (string or list) one of WINMDM_ENTRA_AUDIENCES (v1: the App ID URI, v2: the client id);
- ``exp`` required, ``nbf`` and ``iat`` not in the future, each with a skew allowance (5 min);
- ``scp`` contains ``mdm_delegation``: decision 3 requires it for every token, so a token without
  ``scp`` is refused too (the conservative reading; verify with a Group Policy enrollment, whose
  device-credential token has not been captured).

The identity is the UPN (``upn``, then ``preferred_username``, then ``unique_name``); a
device-credential token may carry none of them, and then the device (``deviceid``) or object
(``oid``) id stands in, as decision 3 says.

Every refusal is an :class:`AuthenticationFailed` whose message names the failed check and what an
admin can do; no message ever contains the token. Time comes from the ``now`` argument (design.md
§3: the clock is an argument), so PyJWT's own time checks are switched off and done here.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt

from winmdm.errors import AuthenticationFailed, ConfigError
from winmdm.idp.jwks import JWKSCache

__all__ = [
    "AUDIENCES_SETTING",
    "MICROSOFT_JWKS_URL",
    "REQUIRED_SCOPE",
    "TENANT_IDS_SETTING",
    "EntraIdentity",
    "EntraVerifier",
]

MICROSOFT_JWKS_URL = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
"""Entra's common signing keys; they sign v1 and v2 tokens of every tenant (protocol.md §6)."""

REQUIRED_SCOPE = "mdm_delegation"
"""The delegated permission of an MDM application (protocol.md decision 3)."""

TENANT_IDS_SETTING = "WINMDM_ENTRA_TENANT_IDS"
AUDIENCES_SETTING = "WINMDM_ENTRA_AUDIENCES"

_ALGORITHM = "RS256"
# Entra access tokens are a few kB; refuse absurd input before decoding anything.
_MAX_TOKEN_CHARS = 32 * 1024
_V1 = "1.0"
_V2 = "2.0"


@dataclass(frozen=True)
class EntraIdentity:
    """Who a verified Entra token speaks for (claims as issued, ``tenant_id`` lower-cased)."""

    upn: str | None
    tenant_id: str
    object_id: str | None
    device_id: str | None
    token_version: str
    audience: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def username(self) -> str | None:
        """The UPN fallback chain of protocol.md decision 3: upn, preferred_username, unique_name."""
        for name in ("upn", "preferred_username", "unique_name"):
            value = self.claims.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def principal(self) -> str:
        """The username, else the Entra device id, else the object id (decision 3's fallback).

        Never empty: :meth:`EntraVerifier.verify` refuses tokens that name none of them.
        """
        for value in (self.username, self.device_id, self.object_id):
            if value:
                return value
        raise AssertionError("EntraVerifier.verify refuses tokens without a principal")


class EntraVerifier:
    """Checks Entra access tokens against the configured tenants and audiences."""

    def __init__(
        self,
        tenant_ids: Iterable[str],
        audiences: Iterable[str],
        jwks: JWKSCache,
        leeway: timedelta = timedelta(minutes=5),
    ) -> None:
        """Validate the settings now, so a typo fails at start-up with the setting's name.

        An empty tenant list is allowed: Entra enrollment is then off and every token is refused.
        """
        tenants: set[str] = set()
        for raw in tenant_ids:
            value = raw.strip()
            if not value:
                continue
            try:
                uuid.UUID(value)
            except ValueError:
                raise ConfigError(
                    TENANT_IDS_SETTING,
                    f"{value!r} is not a tenant id; use the Directory (tenant) ID, a GUID shown "
                    "on the Entra admin center's Overview page, not a domain name",
                ) from None
            tenants.add(value.lower())
        wanted = frozenset(a.strip() for a in audiences if a.strip())
        if tenants and not wanted:
            raise ConfigError(
                AUDIENCES_SETTING,
                f"is empty while {TENANT_IDS_SETTING} is set; add the MDM application's "
                "Application ID URI (v1 tokens) and client id (v2 tokens)",
            )
        if leeway < timedelta(0):
            raise ConfigError("WINMDM_ENTRA_LEEWAY", f"must not be negative, got {leeway}")
        self._tenants = frozenset(tenants)
        self._audiences = wanted
        self._jwks = jwks
        self._leeway = leeway

    @property
    def tenant_ids(self) -> frozenset[str]:
        """The allowed tenant ids, lower-cased."""
        return self._tenants

    @property
    def audiences(self) -> frozenset[str]:
        return self._audiences

    def verify(self, token: str, now: datetime, *, require_scope: bool = True) -> EntraIdentity:
        """The identity ``token`` proves at ``now``, or :class:`AuthenticationFailed` saying why not.

        ``require_scope=False`` skips only the ``scp`` check, for the terms-of-use token, whose
        expected claims (oid, upn, tid, resource: protocol.md §6) do not include a scope; every
        other check (signature, issuer, tenant, audience, times) still applies.

        :class:`winmdm.errors.UpstreamUnavailable` comes through from the JWKS when Entra's keys
        cannot be fetched: that is not the device's fault, and the edge reports it differently.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if not self._tenants:
            raise AuthenticationFailed(
                f"Entra enrollment is not configured: {TENANT_IDS_SETTING} is empty, so every "
                f"Entra token is refused; set it (and {AUDIENCES_SETTING}) to enable it"
            )
        header = _header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed(
                "Entra token header has no key id (kid), so its signing key cannot be found"
            )
        key = self._jwks.key_for(kid, now)
        claims = _signed_claims(token, key, kid, self._jwks.source)
        tenant = self._check_tenant(claims)
        version = _check_issuer(claims, tenant)
        audience = self._check_audience(claims)
        self._check_times(claims, now)
        if require_scope:
            _check_scope(claims)
        identity = EntraIdentity(
            upn=_text(claims, "upn"),
            tenant_id=tenant.lower(),
            object_id=_text(claims, "oid"),
            device_id=_text(claims, "deviceid"),
            token_version=version,
            audience=audience,
            claims=MappingProxyType(dict(claims)),
        )
        if not (identity.username or identity.device_id or identity.object_id):
            raise AuthenticationFailed(
                "Entra token names neither a user (upn, preferred_username, unique_name) nor a "
                "device (deviceid) nor an object (oid); it cannot be tied to anyone"
            )
        return identity

    def _check_tenant(self, claims: Mapping[str, Any]) -> str:
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant:
            raise AuthenticationFailed(
                "Entra token has no tenant id (tid claim); it is not an Entra access token"
            )
        if tenant.lower() not in self._tenants:
            raise AuthenticationFailed(
                f"Entra token is from tenant {_shown(tenant)}, which is not allowed to enroll; "
                f"to allow it, add it to {TENANT_IDS_SETTING}"
            )
        return tenant

    def _check_audience(self, claims: Mapping[str, Any]) -> str:
        aud = claims.get("aud")
        found = [aud] if isinstance(aud, str) else aud
        if not isinstance(found, list) or not found or not all(isinstance(a, str) for a in found):
            raise AuthenticationFailed("Entra token has no audience (aud claim)")
        for candidate in found:
            if candidate in self._audiences:
                return candidate
        shown = ", ".join(_shown(a) for a in found[:5])
        raise AuthenticationFailed(
            f"Entra token audience {shown} is not one of {AUDIENCES_SETTING}; the token was "
            "issued for another application: add winmdm's MDM application Application ID URI "
            f"(v1) or client id (v2) to {AUDIENCES_SETTING} if it is winmdm's"
        )

    def _check_times(self, claims: Mapping[str, Any], now: datetime) -> None:
        """exp required and not passed, nbf/iat not in the future, all with the leeway."""
        skew = self._leeway.total_seconds()
        clock = now.timestamp()
        advice = "check the clocks of the PC and of the winmdm server"
        exp = _number(claims, "exp", "expiry")
        if exp is None:
            raise AuthenticationFailed(
                "Entra token has no expiry (exp claim); winmdm refuses tokens that never expire"
            )
        if clock > exp + skew:
            raise AuthenticationFailed(
                f"Entra token expired at {_when(exp)} (now {_when(clock)}, allowed skew "
                f"{int(skew)} s); Windows must fetch a new one: retry the enrollment, and {advice}"
            )
        nbf = _number(claims, "nbf", "not-before time")
        if nbf is not None and clock + skew < nbf:
            raise AuthenticationFailed(
                f"Entra token is not valid before {_when(nbf)} (now {_when(clock)}, allowed "
                f"skew {int(skew)} s); {advice}"
            )
        iat = _number(claims, "iat", "issue time")
        if iat is not None and clock + skew < iat:
            raise AuthenticationFailed(
                f"Entra token was issued in the future, at {_when(iat)} (now {_when(clock)}, "
                f"allowed skew {int(skew)} s); {advice}"
            )


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, refusing everything but RS256 before any key is used."""
    if not isinstance(token, str) or not token:
        raise AuthenticationFailed("Entra token is empty; expected a JWT")
    if len(token) > _MAX_TOKEN_CHARS:
        raise AuthenticationFailed(
            f"Entra token is {len(token)} characters, more than the {_MAX_TOKEN_CHARS} "
            "an Entra access token ever needs; it is not one"
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationFailed(
            f"Entra token is not a JWT: expected three dot-separated parts, found {len(parts)}"
        )
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthenticationFailed(
            "Entra token is not a JWT: its header is not base64url-encoded JSON"
        ) from None
    alg = header.get("alg")
    if alg != _ALGORITHM:
        shown = _shown(alg) if isinstance(alg, str) else "missing"
        raise AuthenticationFailed(
            f"Entra token algorithm (alg) is {shown}; winmdm accepts only {_ALGORITHM}, the "
            "algorithm Entra signs access tokens with"
        )
    return header


def _signed_claims(token: str, key: Any, kid: str, source: str) -> dict[str, Any]:
    """The payload, once the signature checks out; every claim check is done by the caller."""
    options: Any = {
        "verify_signature": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": [],
    }
    try:
        return jwt.decode(token, key, algorithms=[_ALGORITHM], options=options)
    except jwt.InvalidSignatureError:
        raise AuthenticationFailed(
            f"Entra token signature does not verify with signing key {_shown(kid)} from "
            f"{source}; the token was altered or not issued by Entra"
        ) from None
    except jwt.PyJWTError:
        raise AuthenticationFailed(
            "Entra token is not a JWT: its payload or signature is not valid base64url/JSON"
        ) from None


def _check_issuer(claims: Mapping[str, Any], tenant: str) -> str:
    """The token version, from an issuer that must be Entra's for the token's own tenant."""
    issuers = {
        f"https://login.microsoftonline.com/{tenant}/v2.0": _V2,
        f"https://sts.windows.net/{tenant}/": _V1,
    }
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss not in issuers:
        shown = _shown(iss) if isinstance(iss, str) else "missing"
        expected = " or ".join(repr(i) for i in issuers)
        raise AuthenticationFailed(
            f"Entra token issuer (iss) is {shown}; for tenant {_shown(tenant)} it must be "
            f"{expected}; the token was not issued by Entra for that tenant"
        )
    version = issuers[iss]
    ver = claims.get("ver")
    if ver is not None and ver != version:
        raise AuthenticationFailed(
            f"Entra token version (ver) is {_shown(str(ver))} but its issuer is the v{version} "
            "issuer; the token is inconsistent"
        )
    return version


def _check_scope(claims: Mapping[str, Any]) -> None:
    scp = claims.get("scp")
    if not isinstance(scp, str):
        raise AuthenticationFailed(
            f"Entra token has no delegated scopes (scp claim); winmdm requires {REQUIRED_SCOPE}: "
            f"grant winmdm's MDM application the {REQUIRED_SCOPE} permission in Entra"
        )
    if REQUIRED_SCOPE not in scp.split():
        raise AuthenticationFailed(
            f"Entra token scopes (scp) {_shown(scp)} do not include {REQUIRED_SCOPE}; grant "
            f"winmdm's MDM application the {REQUIRED_SCOPE} permission in Entra"
        )


def _number(claims: Mapping[str, Any], name: str, what: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthenticationFailed(f"Entra token {what} ({name} claim) is not a number")
    return float(value)


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _when(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:g} (seconds since 1970)"


def _shown(value: str, limit: int = 80) -> str:
    """A value from the token, quoted and cut short, safe to put in a message."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)

"""winmdm as an OpenID Connect relying party, for its own sign-in page (design.md §2, MDM-only).

Authorization code flow (OIDC Core §3.1) with PKCE S256 (RFC 7636) and a nonce, against any
standard provider named by WINMDM_OIDC_ISSUER (Okta, Entra, Google, Keycloak, ...):

- the provider's metadata comes from ``<issuer>/.well-known/openid-configuration`` (OIDC
  Discovery §4), cached for an hour; its ``issuer`` must be the configured one (§4.3);
- the code is exchanged at the token endpoint with ``client_secret_basic``, or
  ``client_secret_post`` when that is all the provider lists;
- the ID token is checked as OIDC Core §3.1.3.7 says: an RSA signature by a key of the provider's
  JWKS (``none`` and HS* refused before any key is used), ``iss``, ``aud`` containing the client
  id (and ``azp`` when there are several audiences), ``exp``/``iat`` with a small leeway, and the
  ``nonce`` of this sign-in;
- the user is ``email`` (unless ``email_verified`` is false), else ``preferred_username``, else
  ``upn``, else ``sub``. Providers that keep those claims out of the ID token (oidc-provider,
  Okta's defaults) are asked at the userinfo endpoint, whose ``sub`` must match (§5.3.2).

Time is an argument. Failures are :class:`AuthenticationFailed` (the sign-in does not prove who
the user is) or :class:`UpstreamUnavailable` (the provider cannot be reached or answers nonsense),
worded for the admin; no message ever holds a code, token or secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx
import jwt

from winmdm.errors import AuthenticationFailed, UpstreamUnavailable
from winmdm.idp.jwks import JWKSCache, _is_loopback

__all__ = ["SCOPE", "AuthorizationRequest", "OIDCClient", "OIDCUser"]

log = logging.getLogger(__name__)

SCOPE = "openid email profile"
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]  # what JWKSCache's RSA keys verify
_MAX_DOCUMENT_BYTES = 256 * 1024
_MAX_TOKEN_CHARS = 32 * 1024
_USER_CLAIMS = ("email", "preferred_username", "upn")
_RETRY_AFTER = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One sign-in in progress: where to send the browser and what the callback must match."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class OIDCUser:
    username: str  # email, preferred_username, upn or sub, in that order
    subject: str
    claims: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    auth_method: str  # client_secret_basic or client_secret_post
    fetched_at: datetime


class OIDCClient:
    """The relying party; safe to share between threads (metadata and keys are cached under locks)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        leeway: timedelta = timedelta(seconds=60),
        metadata_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self.issuer = issuer.strip()
        self._client_id = client_id
        self._client_secret = client_secret
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout, follow_redirects=False)
        self._timeout = timeout
        self._leeway = leeway
        self._ttl = metadata_ttl
        self._lock = threading.Lock()
        self._metadata: _Metadata | None = None
        self._jwks: JWKSCache | None = None
        self._last_failure: tuple[datetime, str] | None = None

    @property
    def client_id(self) -> str:
        return self._client_id

    # -- step 1: send the browser to the provider ----------------------------------------------

    def authorization_request(
        self, *, redirect_uri: str, now: datetime, login_hint: str | None = None
    ) -> AuthorizationRequest:
        """A fresh state, nonce and PKCE verifier, and the provider URL that carries them."""
        metadata = self._metadata_at(now)
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters, RFC 7636 §4.1
        params = {
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        separator = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
        url = metadata.authorization_endpoint + separator + urlencode(params)
        return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    # -- step 2: the code back from the provider --------------------------------------------------

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, now: datetime
    ) -> OIDCUser:
        """The verified user behind ``code``; the ID token must carry ``nonce``."""
        metadata = self._metadata_at(now)
        tokens = self._token_request(metadata, code, redirect_uri, code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise UpstreamUnavailable(
                f"the identity provider {self.issuer} answered the code exchange without an ID "
                "token; check that the winmdm client there is an OpenID Connect (not plain OAuth) "
                "application with the openid scope"
            )
        claims = self.verify_id_token(id_token, nonce=nonce, now=now)
        username = _username(claims)
        if username is None:
            access_token = tokens.get("access_token")
            if metadata.userinfo_endpoint and isinstance(access_token, str) and access_token:
                username = _username(self._userinfo(metadata, access_token, claims["sub"])) or None
        return OIDCUser(username=username or claims["sub"], subject=claims["sub"], claims=claims)

    def verify_id_token(self, id_token: str, *, nonce: str, now: datetime) -> dict[str, Any]:
        """The claims of an ID token issued to this client for this sign-in (OIDC Core §3.1.3.7)."""
        metadata = self._metadata_at(now)
        who = f"the ID token from {self.issuer}"
        if len(id_token) > _MAX_TOKEN_CHARS or id_token.count(".") != 2:
            raise AuthenticationFailed(f"{who} is not a signed JWT")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise AuthenticationFailed(f"{who} is not a JWT: its header cannot be read") from None
        alg = header.get("alg")
        if alg not in _ALGORITHMS:
            raise AuthenticationFailed(
                f"{who} is signed with {_shown(alg)}; winmdm accepts RSA signatures "
                f"({', '.join(_ALGORITHMS)}): set the provider's ID token signing algorithm to RS256"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed(f"{who} has no key id (kid) in its header")
        key = self._key(metadata, kid, now)
        # Times, audience and issuer are checked by _check_claims, against ``now``.
        checks = ("verify_exp", "verify_iat", "verify_nbf", "verify_aud", "verify_iss")
        options: Any = dict.fromkeys(checks, False)
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg], options=options)
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed(
                f"{who} has a signature that does not verify with key {_shown(kid)} of "
                f"{metadata.jwks_uri}; it was altered or not issued by this provider"
            ) from None
        except jwt.PyJWTError:
            raise AuthenticationFailed(f"{who} is not a valid JWT") from None
        self._check_claims(claims, metadata, nonce, now)
        return claims

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._jwks is not None:
            self._jwks.close()

    # -- checks -----------------------------------------------------------------------------------

    def _check_claims(self, claims: dict[str, Any], metadata: _Metadata, nonce: str, now: datetime) -> None:
        who = f"the ID token from {self.issuer}"
        if claims.get("iss") != metadata.issuer:
            raise AuthenticationFailed(
                f"{who} names issuer {_shown(claims.get('iss'))}, not {metadata.issuer!r}; "
                "it was issued by another provider"
            )
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or self._client_id not in audiences:
            raise AuthenticationFailed(
                f"{who} was issued for {_shown(aud)}, not for client {self._client_id!r}; "
                "check WINMDM_OIDC_CLIENT_ID"
            )
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self._client_id:
            raise AuthenticationFailed(
                f"{who} was obtained by another client (azp {_shown(azp)}, expected {self._client_id!r})"
            )
        skew = self._leeway.total_seconds()
        clock = now.timestamp()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(exp) or not _is_number(iat):
            raise AuthenticationFailed(f"{who} lacks its expiry (exp) or issue time (iat)")
        if clock > exp + skew:
            raise AuthenticationFailed(
                f"{who} expired {int(clock - exp)} s ago; check the clocks of winmdm and the provider"
            )
        if iat > clock + skew:
            raise AuthenticationFailed(
                f"{who} was issued {int(iat - clock)} s in the future; check the clocks of winmdm "
                "and the provider"
            )
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise AuthenticationFailed(
                f"{who} does not carry the nonce of this sign-in; it was replayed or belongs to "
                "another sign-in"
            )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise AuthenticationFailed(f"{who} names no subject (sub)")

    # -- network ----------------------------------------------------------------------------------

    def _metadata_at(self, now: datetime) -> _Metadata:
        with self._lock:
            current = self._metadata
            if current is not None and now - current.fetched_at < self._ttl:
                return current
            failed = self._last_failure
            if failed is not None and now - failed[0] < _RETRY_AFTER:
                # One timeout per interval during an outage, not one per sign-in.
                raise UpstreamUnavailable(failed[1])
            try:
                fresh = self._fetch_metadata(now)
            except UpstreamUnavailable as exc:
                if current is not None:
                    log.warning("%s; keeping the metadata fetched at %s", exc.message, current.fetched_at)
                    # Tried again after _RETRY_AFTER, not after a whole TTL.
                    self._metadata = replace(current, fetched_at=now - self._ttl + _RETRY_AFTER)
                    return self._metadata
                self._last_failure = (now, exc.message)
                log.warning("%s", exc.message)
                raise
            self._last_failure = None
            if current is None or fresh.jwks_uri != current.jwks_uri:
                if self._jwks is not None:
                    self._jwks.close()
                self._jwks = JWKSCache(fresh.jwks_uri, client=self._http, timeout=self._timeout)
            self._metadata = fresh
            return fresh

    def _key(self, metadata: _Metadata, kid: str, now: datetime) -> Any:
        """The provider's key ``kid``; JWKSCache's own messages speak of Entra, so reworded here."""
        with self._lock:
            jwks = self._jwks
        assert jwks is not None
        try:
            return jwks.key_for(kid, now)
        except UpstreamUnavailable as exc:
            detail = exc.message.split(": ", 1)[-1]
            raise UpstreamUnavailable(
                f"cannot fetch the signing keys of {self.issuer} from {metadata.jwks_uri}: {detail}"
            ) from None
        except AuthenticationFailed:
            raise AuthenticationFailed(
                f"the ID token from {self.issuer} is signed with key {_shown(kid)}, which is not in "
                f"{metadata.jwks_uri}; it was not issued by this provider"
            ) from None

    def _fetch_metadata(self, now: datetime) -> _Metadata:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._json(self._get(url, f"the OIDC discovery document {url}"), url)
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer.rstrip("/"):
            raise UpstreamUnavailable(
                f"the OIDC discovery document {url} names issuer {_shown(issuer)}; set "
                "WINMDM_OIDC_ISSUER to exactly the provider's issuer"
            )
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            value = doc.get(name)
            if value is None and name == "userinfo_endpoint":
                endpoints[name] = None
                continue
            if not isinstance(value, str) or not _safe_url(value):
                raise UpstreamUnavailable(
                    f"the OIDC discovery document {url} has no usable {name} (https, or http on "
                    f"loopback): {_shown(value)}"
                )
            endpoints[name] = value
        methods = doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        if not isinstance(methods, list):
            methods = ["client_secret_basic"]
        if "client_secret_basic" in methods:
            method = "client_secret_basic"
        elif "client_secret_post" in methods:
            method = "client_secret_post"
        else:
            raise UpstreamUnavailable(
                f"the identity provider {self.issuer} offers neither client_secret_basic nor "
                f"client_secret_post at its token endpoint ({_shown(methods)}); give winmdm's "
                "client a client secret"
            )
        log.info("loaded the OIDC metadata of %s (token endpoint auth: %s)", issuer, method)
        return _Metadata(issuer=issuer, auth_method=method, fetched_at=now, **endpoints)

    def _token_request(
        self, metadata: _Metadata, code: str, redirect_uri: str, verifier: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth = None
        if metadata.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
            auth = (quote_plus(self._client_id), quote_plus(self._client_secret))
        else:
            form.update(client_id=self._client_id, client_secret=self._client_secret)
        what = f"the token endpoint of {self.issuer}"
        try:
            response = self._http.post(
                metadata.token_endpoint,
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"cannot reach {what}: {type(exc).__name__}") from None
        if response.status_code in (400, 401):
            error, description = _oauth_error(response)
            if error in ("invalid_client", "unauthorized_client") or response.status_code == 401:
                raise UpstreamUnavailable(
                    f"{what} refused winmdm's client credentials ({error}); check "
                    "WINMDM_OIDC_CLIENT_ID and WINMDM_OIDC_CLIENT_SECRET"
                )
            raise AuthenticationFailed(
                f"{what} refused the sign-in code ({error}{': ' + description if description else ''}); "
                "it expired, was used already, or the redirect URI registered for winmdm is not "
                "<server_url>/EnrollmentServer/Authenticate/callback"
            )
        if response.status_code != 200:
            raise UpstreamUnavailable(f"{what} answered HTTP {response.status_code}")
        return self._json(response, what)

    def _userinfo(self, metadata: _Metadata, access_token: str, sub: str) -> dict[str, Any]:
        assert metadata.userinfo_endpoint is not None
        what = f"the userinfo endpoint of {self.issuer}"
        try:
            response = self._http.get(
                metadata.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"cannot reach {what}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise UpstreamUnavailable(f"{what} answered HTTP {response.status_code}")
        info = self._json(response, what)
        if info.get("sub") != sub:
            raise AuthenticationFailed(f"{what} describes another user than the ID token (sub differs)")
        return info

    def _get(self, url: str, what: str) -> httpx.Response:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"}, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"cannot fetch {what}: {type(exc).__name__}; check WINMDM_OIDC_ISSUER and that "
                "winmdm can reach the provider"
            ) from None
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"cannot fetch {what}: HTTP {response.status_code}; check WINMDM_OIDC_ISSUER"
            )
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise UpstreamUnavailable(f"{what} answered {len(response.content)} bytes, far too many")
        try:
            doc = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamUnavailable(f"{what} did not answer JSON") from None
        if not isinstance(doc, dict):
            raise UpstreamUnavailable(f"{what} did not answer a JSON object")
        return doc


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _username(claims: Mapping[str, Any]) -> str | None:
    for name in _USER_CLAIMS:
        if name == "email" and claims.get("email_verified") is False:
            continue
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    """RFC 6749 §5.2 error and description, cut short and stripped of anything but printable text."""
    try:
        doc = json.loads(response.content[:_MAX_DOCUMENT_BYTES])
    except (ValueError, UnicodeDecodeError):
        return "no error code", ""
    if not isinstance(doc, dict):
        return "no error code", ""
    error, description = doc.get("error"), doc.get("error_description")
    return _printable(error) or "no error code", _printable(description)


def _printable(value: object, limit: int = 200) -> str:
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value if c.isprintable())[:limit]


def _safe_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."

"""The signing keys of the Entra tenant(s) winmdm trusts, fetched from a JWKS document and cached.

Entra signs access tokens with keys it publishes at a JWKS URL (protocol.md §6, "Token
validation") and rotates them without notice, so winmdm caches the document for a while and
refreshes it when a token names a key it has not seen. Two limits keep that safe:

- a refresh happens at most once per ``min_refresh_interval``, so tokens carrying random key ids
  cannot make winmdm hammer the IdP (failed fetches count too, so an IdP outage costs one timeout
  per interval instead of one per enrollment);
- one lock guards the cache, so worker threads that all meet a new key id trigger one fetch.

Air-gapped installs pin the keys offline instead: :meth:`JWKSCache.from_jwks` never touches the
network. This is the only module of winmdm that fetches signing keys (design.md §3, ``idp/``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from winmdm.errors import AuthenticationFailed, ConfigError, UpstreamUnavailable

__all__ = ["JWKS_URL_SETTING", "PINNED_JWKS_SETTING", "JWKSCache"]

log = logging.getLogger(__name__)

JWKS_URL_SETTING = "WINMDM_ENTRA_JWKS_URL"
PINNED_JWKS_SETTING = "WINMDM_ENTRA_JWKS_FILE"

# A real JWKS is a few kB; anything far larger is not one and is not worth parsing.
_MAX_DOCUMENT_BYTES = 1024 * 1024


class JWKSCache:
    """RSA signing keys by key id (``kid``), from a JWKS URL or from a pinned JWKS document.

    :meth:`key_for` is safe to call from many threads at once.
    """

    def __init__(
        self,
        url: str,
        client: httpx.Client | None = None,
        ttl: timedelta = timedelta(hours=24),
        min_refresh_interval: timedelta = timedelta(seconds=60),
        timeout: float = 10.0,
    ) -> None:
        """Check ``url`` now, so a wrong setting fails at start-up rather than at the first enrollment.

        HTTPS is required: the keys decide who may enroll. Plain HTTP is accepted only on loopback
        (tests, or a local proxy that does the TLS). No network I/O happens here.
        """
        _check_url(url)
        if ttl <= timedelta(0):
            raise ConfigError("WINMDM_ENTRA_JWKS_TTL", f"must be positive, got {ttl}")
        if min_refresh_interval < timedelta(0):
            raise ConfigError(
                "WINMDM_ENTRA_JWKS_MIN_REFRESH", f"must not be negative, got {min_refresh_interval}"
            )
        self._url: str | None = url
        self._source = f"the JWKS at {url}"
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._ttl = ttl
        self._min_refresh_interval = min_refresh_interval
        self._lock = threading.Lock()
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: datetime | None = None
        self._last_attempt: datetime | None = None
        self._last_failure: str | None = None

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], *, setting: str = PINNED_JWKS_SETTING) -> JWKSCache:
        """A cache holding pinned keys only, for air-gapped installs: it never uses the network.

        ``setting`` names where the document came from, for the :class:`ConfigError` raised when
        it holds no usable RSA signing key.
        """
        self = cls.__new__(cls)
        self._url = None
        self._source = f"the pinned JWKS ({setting})"
        self._owns_client = False
        self._client = None
        self._timeout = 0.0
        self._ttl = timedelta.max
        self._min_refresh_interval = timedelta.max
        self._lock = threading.Lock()
        self._fetched_at = None
        self._last_attempt = None
        self._last_failure = None
        try:
            self._keys = _parse_jwks(jwks)
        except ValueError as exc:
            raise ConfigError(setting, str(exc)) from None
        return self

    @property
    def source(self) -> str:
        """Where the keys come from, worded for messages ("the JWKS at https://...")."""
        return self._source

    @property
    def url(self) -> str | None:
        """The JWKS URL, or None for pinned keys."""
        return self._url

    def key_for(self, kid: str, now: datetime) -> RSAPublicKey:
        """The public key named ``kid``, fetching or refreshing the JWKS when needed.

        Raises :class:`UpstreamUnavailable` when the JWKS cannot be fetched and
        :class:`AuthenticationFailed` when ``kid`` is not in it (even after a refresh).
        """
        with self._lock:
            if self._url is None:
                return self._known_or_fail(kid, refreshed=False)
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if stale:
                # Without current keys no token can be checked: this fetch is not optional, but a
                # recent failure is reported again instead of waiting for another timeout.
                self._refresh(now, required=True)
                return self._known_or_fail(kid, refreshed=True)
            if kid in self._keys:
                return self._keys[kid]
            refreshed = self._refresh(now, required=False)
            return self._known_or_fail(kid, refreshed=refreshed)

    def close(self) -> None:
        """Close the HTTP client if this cache created it."""
        if self._owns_client and self._client is not None:
            self._client.close()

    def __enter__(self) -> JWKSCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals (called with the lock held) ------------------------------------------------

    def _known_or_fail(self, kid: str, *, refreshed: bool) -> RSAPublicKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        shown = _shown(kid)
        if self._url is None:
            hint = (
                "the pinned keys are out of date or the token was not issued by Entra; "
                "export the current keys of the tenant and update the pinned JWKS"
            )
        elif refreshed:
            hint = (
                "the keys were just fetched again, so the token was not signed by a key of this "
                "identity provider (or WINMDM_ENTRA_JWKS_URL points at the wrong one)"
            )
        else:
            hint = (
                "the keys were fetched (or tried) less than "
                f"{int(self._min_refresh_interval.total_seconds())} s ago, and winmdm refreshes "
                "them at most that often; if Entra has just rotated its keys, retry in a minute"
            )
        raise AuthenticationFailed(f"signing key {shown} is not in {self._source}; {hint}")

    def _refresh(self, now: datetime, *, required: bool) -> bool:
        """Fetch the JWKS unless one was tried within ``min_refresh_interval``.

        Returns whether a fetch happened. A failed fetch raises :class:`UpstreamUnavailable`;
        within the interval after a failure, a ``required`` refresh raises it again at once.
        """
        recent = self._last_attempt is not None and now - self._last_attempt < self._min_refresh_interval
        if recent:
            if required and self._last_failure is not None:
                raise UpstreamUnavailable(
                    f"{self._last_failure} (not retried until "
                    f"{int(self._min_refresh_interval.total_seconds())} s after the last attempt)"
                )
            if required and self._fetched_at is None:
                raise UpstreamUnavailable(f"the signing keys from {self._source} are not loaded")
            if not required:
                return False
        self._last_attempt = now
        try:
            keys = self._fetch()
        except UpstreamUnavailable as exc:
            self._last_failure = exc.message
            log.warning("%s", exc.message)
            raise
        self._keys = keys
        self._fetched_at = now
        self._last_failure = None
        log.info("fetched %d signing key(s) from %s", len(keys), self._url)
        return True

    def _fetch(self) -> dict[str, RSAPublicKey]:
        assert self._client is not None and self._url is not None
        url = self._url
        what = f"cannot fetch the Entra signing keys (JWKS) from {url}"
        try:
            response = self._client.get(url, timeout=self._timeout)
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"{what}: no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{what}: {type(exc).__name__}: {exc or 'connection failed'}") from None
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"{what}: the server answered HTTP {response.status_code}, expected 200"
            )
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise UpstreamUnavailable(
                f"{what}: the answer is {len(response.content)} bytes, too large for a JWKS"
            )
        try:
            document = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UpstreamUnavailable(f"{what}: the answer is not JSON ({exc})") from None
        try:
            return _parse_jwks(document)
        except ValueError as exc:
            raise UpstreamUnavailable(f"{what}: {exc}") from None


def _check_url(url: str) -> None:
    """HTTPS anywhere, HTTP on loopback only (127.0.0.0/8, ::1, localhost)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(JWKS_URL_SETTING, f"{url!r} is not a URL ({exc})") from None
    if not host:
        raise ConfigError(JWKS_URL_SETTING, f"{url!r} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if _is_loopback(host):
            return
        raise ConfigError(
            JWKS_URL_SETTING,
            f"{url!r} uses plain http to a host that is not loopback; the signing keys decide who "
            "may enroll, so use https (http is allowed only for 127.0.0.1, ::1 and localhost)",
        )
    raise ConfigError(JWKS_URL_SETTING, f"{url!r} must be an https:// URL (scheme {parts.scheme!r})")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_jwks(document: object) -> dict[str, RSAPublicKey]:
    """The RSA signing keys of a JWKS document by kid; other keys are skipped (RFC 7517 §4-5).

    Raises ValueError, worded for a message, when the document has no usable key at all.
    """
    if not isinstance(document, Mapping):
        raise ValueError("the document is not a JSON object")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("the document has no 'keys' list")
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        kid = entry.get("kid")
        if entry.get("kty") != "RSA" or not isinstance(kid, str) or not kid:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = RSAAlgorithm.from_jwk(dict(entry))
        except Exception as exc:  # PyJWT raises several types for malformed members
            log.warning("skipping JWKS key %s: %s", _shown(kid), exc)
            continue
        if isinstance(key, RSAPublicKey):
            keys[kid] = key
    if not keys:
        raise ValueError("the document holds no RSA signing key with a kid")
    return keys


def _shown(value: str, limit: int = 80) -> str:
    """A value from a token or document, quoted and cut short, safe to put in a message."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)

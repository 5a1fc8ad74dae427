"""A real, local stand-in for Entra: RSA keys, a JWKS over HTTP and RS256 access tokens.

Tokens are shaped like the enrollment-time Entra access tokens of protocol.md §6 (v1 and v2
issuers, tid, oid, upn, scp ``mdm_delegation``, deviceid, ver), so winmdm's verifier and the
integration tests of the whole server run against real signatures fetched over real HTTP.

    with EntraIssuer() as idp:
        cache = JWKSCache(idp.jwks_url)
        token = idp.token(tenant_id=TENANT, audience=APP_ID)
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["MDM_CLIENT_APP_ID", "EntraIssuer", "b64url"]

# The client Windows obtains enrollment tokens with (Microsoft Authentication Broker's app id).
MDM_CLIENT_APP_ID = "29d9ed98-a469-4536-ade2-f981bc1d605e"


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), for tests that assemble tokens by hand."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Key:
    def __init__(self, kid: str, key_size: int) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "kty": "RSA"}


class EntraIssuer:
    """Signs Entra-like access tokens and serves its JWKS on ``http://127.0.0.1:<free port>``.

    Use as a context manager (or :meth:`start` / :meth:`close`). Thread-safe enough for servers
    that fetch the JWKS from worker threads: the request counter is guarded by a lock.
    """

    def __init__(self, *, key_size: int = 2048) -> None:
        self._key_size = key_size
        self._keys: list[_Key] = [_Key(_new_kid(), key_size)]
        self._stranger: _Key | None = None
        self._lock = threading.Lock()
        self._jwks_requests = 0
        self._override: tuple[int, bytes] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> EntraIssuer:
        """Start serving the JWKS (idempotent)."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="entra-issuer", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; the port is released, so fetches fail with a connection error."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EntraIssuer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the JWKS -------------------------------------------------------------------------------

    @property
    def jwks_url(self) -> str:
        if self._server is None:
            raise RuntimeError("EntraIssuer is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/common/discovery/v2.0/keys"

    @property
    def jwks_requests(self) -> int:
        """How many times the JWKS was requested (whatever was answered)."""
        with self._lock:
            return self._jwks_requests

    @property
    def current_kid(self) -> str:
        return self._keys[-1].kid

    @property
    def kids(self) -> list[str]:
        return [k.kid for k in self._keys]

    def jwks(self) -> dict[str, Any]:
        """The JWKS document served, e.g. to pin it offline."""
        return {"keys": [k.jwk() for k in self._keys]}

    def public_key_pem(self, kid: str | None = None) -> bytes:
        """A signing key's public half in PEM (for algorithm-confusion tests)."""
        from cryptography.hazmat.primitives import serialization

        key = self._key(kid or self.current_kid)
        return key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def rotate(self) -> str:
        """Add a new signing key that becomes current; old keys stay in the JWKS. Returns its kid."""
        key = _Key(_new_kid(), self._key_size)
        self._keys.append(key)
        return key.kid

    def respond_with(self, status: int, body: bytes) -> None:
        """Answer JWKS requests with this status and body instead (outage and garbage tests)."""
        self._override = (status, body)

    def respond_normally(self) -> None:
        self._override = None

    # -- tokens ---------------------------------------------------------------------------------

    @staticmethod
    def issuer_for(tenant_id: str, version: str) -> str:
        """Entra's issuer string for a tenant and token version (protocol.md decision 3)."""
        if version == "1.0":
            return f"https://sts.windows.net/{tenant_id}/"
        if version == "2.0":
            return f"https://login.microsoftonline.com/{tenant_id}/v2.0"
        raise ValueError(f"unknown Entra token version {version!r}")

    def claims(
        self,
        *,
        tenant_id: str,
        audience: str,
        upn: str | None = "alice@corp.example",
        device_id: str | None = None,
        version: str = "2.0",
        issued_at: datetime | None = None,
        lifetime: timedelta = timedelta(hours=1),
        extra_claims: dict[str, Any] | None = None,
        drop_claims: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The payload :meth:`token` signs."""
        iat = int((issued_at or datetime.now(UTC)).timestamp())
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{upn or device_id or 'device'}"))
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer_for(tenant_id, version),
            "iat": iat,
            "nbf": iat,
            "exp": iat + int(lifetime.total_seconds()),
            "aio": b64url(secrets.token_bytes(24)),
            "amr": ["pwd", "mfa"],
            "idtyp": "user",
            "name": "Alice Example",
            "oid": oid,
            "rh": "0.AAAA" + b64url(secrets.token_bytes(12)),
            "scp": "mdm_delegation",
            "sub": b64url(secrets.token_bytes(32)),
            "tid": tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": version,
        }
        if version == "1.0":
            claims["appid"] = MDM_CLIENT_APP_ID
            claims["appidacr"] = "0"
            if upn is not None:
                claims["upn"] = upn
                claims["unique_name"] = upn
        else:
            claims["azp"] = MDM_CLIENT_APP_ID
            claims["azpacr"] = "0"
            if upn is not None:
                claims["upn"] = upn
                claims["preferred_username"] = upn
        if device_id is not None:
            claims["deviceid"] = device_id
        claims.update(extra_claims or {})
        for name in drop_claims:
            claims.pop(name, None)
        return claims

    def token(
        self,
        *,
        tenant_id: str,
        audience: str,
        upn: str | None = "alice@corp.example",
        device_id: str | None = None,
        version: str = "2.0",
        issued_at: datetime | None = None,
        lifetime: timedelta = timedelta(hours=1),
        kid: str | None = None,
        extra_claims: dict[str, Any] | None = None,
        drop_claims: Iterable[str] = (),
    ) -> str:
        """An RS256 access token signed with the current key.

        ``kid`` naming one of this issuer's keys signs with that key; any other ``kid`` is put in
        the header while the current key signs (a key id the JWKS does not hold).
        """
        claims = self.claims(
            tenant_id=tenant_id,
            audience=audience,
            upn=upn,
            device_id=device_id,
            version=version,
            issued_at=issued_at,
            lifetime=lifetime,
            extra_claims=extra_claims,
            drop_claims=drop_claims,
        )
        known = {k.kid: k for k in self._keys}
        signer = known.get(kid or "", self._keys[-1])
        return _sign(claims, signer, kid or signer.kid)

    def token_signed_by_stranger(self, **kwargs: Any) -> str:
        """Same claims and the current kid, signed by a key that is not in the JWKS."""
        kid = kwargs.pop("kid", None) or self.current_kid
        if self._stranger is None:
            self._stranger = _Key(kid, self._key_size)
        return _sign(self.claims(**kwargs), self._stranger, kid)

    # -- internals ------------------------------------------------------------------------------

    def _key(self, kid: str) -> _Key:
        for key in self._keys:
            if key.kid == kid:
                return key
        raise KeyError(kid)

    def _served(self) -> tuple[int, bytes]:
        with self._lock:
            self._jwks_requests += 1
        if self._override is not None:
            return self._override
        return 200, json.dumps(self.jwks()).encode()


def _sign(claims: dict[str, Any], key: _Key, kid: str) -> str:
    headers = {"typ": "JWT", "kid": kid, "x5t": kid}
    return jwt.encode(claims, key.private, algorithm="RS256", headers=headers)


def _new_kid() -> str:
    return b64url(secrets.token_bytes(20))


def _handler_for(issuer: EntraIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = issuer._served()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler

"""Constants and helpers shared by the Entra tests (imported as ``tests.idp.entra_setup``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tests.support.entra_issuer import EntraIssuer, b64url
from winmdm.idp import EntraVerifier, JWKSCache

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
CLIENT_ID = "5f5a9a0e-5a5c-4f63-9a0f-0f5c2d7e2c11"
APP_ID_URI = "https://mdm.corp.example"


def make_verifier(
    cache: JWKSCache,
    *,
    tenant_ids: list[str] | None = None,
    audiences: list[str] | None = None,
    **kwargs: Any,
) -> EntraVerifier:
    return EntraVerifier(
        tenant_ids=[TENANT] if tenant_ids is None else tenant_ids,
        audiences=[CLIENT_ID, APP_ID_URI] if audiences is None else audiences,
        jwks=cache,
        **kwargs,
    )


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand, for algorithm-confusion tests."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HS256 over header and claims with ``secret`` (PyJWT refuses PEM secrets, so by hand)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


__all__ = [
    "APP_ID_URI",
    "CLIENT_ID",
    "OTHER_TENANT",
    "TENANT",
    "EntraIssuer",
    "hs256_token",
    "make_verifier",
    "unsigned_token",
]

"""OMA-DM MD5 digest credentials (OMA-DM security, protocol.md decision 4).

Digest = b64(md5(b64(md5("name:secret")) + ":" + nonce)). The server keeps only the inner
b64(md5("name:secret")), which checks a Cred without being the secret itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def credential_hash(name: str, secret: str) -> str:
    return base64.b64encode(hashlib.md5(f"{name}:{secret}".encode()).digest()).decode("ascii")


def digest(credential: str, nonce: bytes) -> str:
    """The Cred/Data value a client sends for this nonce (the raw nonce bytes, not its base64)."""
    return base64.b64encode(hashlib.md5(credential.encode("ascii") + b":" + nonce).digest()).decode("ascii")


def matches(credential: str, nonce: bytes, presented: str) -> bool:
    """Constant-time comparison, as bytes: a Cred is whatever text the client sent."""
    return hmac.compare_digest(digest(credential, nonce).encode(), presented.strip().encode("utf-8"))

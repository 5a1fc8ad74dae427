"""License keys for tests: a P-256 keypair of the test run's own, its public half in a PEM file
(WINMDM_LICENSE_PUBLIC_KEY_FILE), and real ES256 license JWTs signed with the private half."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class LicenseKeys:
    private: ec.EllipticCurvePrivateKey
    public_file: Path

    @classmethod
    def create(cls, folder: Path) -> LicenseKeys:
        private = ec.generate_private_key(ec.SECP256R1())
        path = folder / "license-public.pem"
        path.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(private, path)

    def key(self, *, now: datetime | None = None, tier: str = "premium", days: int = 365) -> str:
        """A license of `tier` for Corp Example, valid `days` from `now` (negative: expired)."""
        now = now or datetime.now(UTC)
        claims = {
            "iss": "winmdm",
            "tier": tier,
            "organization": "Corp Example",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(days=days)).timestamp()),
        }
        return jwt.encode(claims, self.private, algorithm="ES256")

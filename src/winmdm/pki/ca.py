"""winmdm's device CA: the root Windows installs at enrollment, issuer of client certificates.

The enrollment reply (protocol.md §3, wap-provisioningdoc) puts this root in
CertificateStore/Root/System and the certificate issued for the device's CSR key in
CertificateStore/My/User|System; management sessions then authenticate with that client
certificate over TLS (decision 4), which must chain to this CA.

Key size: RSA 3072. NIST SP 800-57 rates RSA 2048 (112-bit strength) acceptable only through
2030, and the root lives ten years; 3072 costs a little more to generate once and nothing that
matters to verify, and every Windows 10/11 build accepts it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from winmdm.errors import ConfigError

CA_KEY_SIZE: Final = 3072
DATA_DIR_SETTING: Final = "WINMDM_DATA_DIR"
MAX_SERIAL_BITS: Final = 159  # RFC 5280 §4.1.2.2: positive, at most 20 octets


class DeviceCA:
    """A CA certificate and its private key; issues the devices' MDM client certificates."""

    def __init__(self, certificate: x509.Certificate, private_key: rsa.RSAPrivateKey) -> None:
        if not _key_matches(certificate, private_key):
            raise ValueError("the CA private key does not match the CA certificate")
        self.certificate = certificate
        self.private_key = private_key

    @classmethod
    def generate(
        cls, common_name: str, now: datetime, lifetime: timedelta = timedelta(days=3652)
    ) -> DeviceCA:
        """A new self-signed root. pathlen 0: it signs end-entity certificates only."""
        _require_aware(now)
        key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_SIZE)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(random_serial())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load_or_create(
        cls, directory: Path, *, common_name: str, now: datetime, stem: str = "device-ca"
    ) -> tuple[DeviceCA, bool]:
        """Load `<stem>.key`/`<stem>.crt` from `directory`, or create both; True when created.

        Losing or replacing this CA strands every enrolled device, so anything odd (one file
        without the other, a readable key, a key that does not match) is a ConfigError for the
        admin to resolve, never a silent regeneration.
        """
        _require_aware(now)
        key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
        if not key_path.exists() and not cert_path.exists():
            ca = cls.generate(common_name, now)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private_key(key_path, ca.private_key)
            write_certificate(cert_path, ca.certificate)
            return ca, True
        for present, missing in ((key_path, cert_path), (cert_path, key_path)):
            if present.exists() and not missing.exists():
                raise ConfigError(
                    DATA_DIR_SETTING,
                    f"{present} exists but {missing} does not; restore the missing file from a "
                    "backup (or remove both to create a new CA, which forces every device to "
                    "enroll again)",
                )
        key = read_private_key(key_path)
        certificate = read_certificate(cert_path)
        if not _key_matches(certificate, key):
            raise ConfigError(DATA_DIR_SETTING, f"{key_path} is not the private key of {cert_path}")
        if certificate.not_valid_after_utc <= now:
            raise ConfigError(
                DATA_DIR_SETTING,
                f"the CA certificate {cert_path} expired on {certificate.not_valid_after_utc.isoformat()}",
            )
        return cls(certificate, key), False

    def issue_client_certificate(
        self,
        public_key: CertificatePublicKeyTypes,
        *,
        common_name: str,
        serial: int,
        now: datetime,
        lifetime: timedelta = timedelta(days=365),
        backdate: timedelta = timedelta(minutes=5),
    ) -> x509.Certificate:
        """Sign an MDM client certificate for a verified CSR key.

        The subject is what winmdm chooses (protocol.md "Known trap": never the CSR's bytes).
        clientAuth is what Windows needs to present it over TLS; back-dating covers clock skew.
        """
        _require_aware(now)
        if not 0 < serial < 2**MAX_SERIAL_BITS:
            raise ValueError(f"serial must be positive and at most {MAX_SERIAL_BITS} bits")
        issuer_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - backdate)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
                critical=False,
            )
            .sign(self.private_key, hashes.SHA256())
        )

    def issued_by_me(self, cert: x509.Certificate) -> bool:
        """True when this CA's key signed `cert` (issuer name and signature); never raises."""
        try:
            cert.verify_directly_issued_by(self.certificate)
        except Exception:  # ValueError, TypeError, InvalidSignature, unsupported algorithms
            return False
        return True


def thumbprint_sha1(cert: x509.Certificate) -> str:
    """Upper-case hex SHA-1 of the DER: how the provisioning document names certificates."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def der(cert: x509.Certificate) -> bytes:
    """The certificate's DER bytes (what goes base64 into EncodedCertificate)."""
    return cert.public_bytes(serialization.Encoding.DER)


def random_serial() -> int:
    """A positive serial of at most 159 bits from `secrets` (RFC 5280 §4.1.2.2)."""
    return secrets.randbelow(2**MAX_SERIAL_BITS - 1) + 1


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM key, created 0600 from the first byte, then renamed."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(path, pem, 0o600)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """Write a PEM certificate (public: 0644), via a temporary file and a rename."""
    _write_atomically(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def read_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Read an RSA key that nobody but its owner can read; else ConfigError(WINMDM_DATA_DIR).

    OpenSSL's full check of a 3072-bit key (primality of its factors) costs 0.15 s at every
    start; this is a key winmdm wrote itself into a 0600 file, so a signature made with it and
    checked with its public half (a few milliseconds) stands in: a damaged key fails it."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                DATA_DIR_SETTING,
                f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"run `chmod 600 {path}` and consider the key compromised if others could log in",
            )
        key = serialization.load_pem_private_key(
            path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
        )
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(DATA_DIR_SETTING, f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(DATA_DIR_SETTING, f"{path} holds a non-RSA key")
    try:
        proof = key.sign(_KEY_CHECK, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(proof, _KEY_CHECK, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise ConfigError(
            DATA_DIR_SETTING, f"{path} is damaged (its signatures do not verify): restore it from a backup"
        ) from exc
    return key


_KEY_CHECK = b"winmdm: does this key sign what its public half verifies?"


def read_certificate(path: Path) -> x509.Certificate:
    """Read a PEM certificate; unreadable or malformed is a ConfigError(WINMDM_DATA_DIR)."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(DATA_DIR_SETTING, f"cannot read certificate {path}: {exc}") from None


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL + mode at creation: the key is never world-readable, not even for an instant.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _key_matches(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (UTC)")

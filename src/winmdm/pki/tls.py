"""Development TLS material for `winmdm serve` when the admin supplies no server certificate.

Windows only enrolls over HTTPS with a server certificate it trusts, so a test setup needs a root
the admin can install on the test PC (`dev-tls-ca.crt`) and a server certificate for the host
name the PC will use. The dev root is separate from the device CA on purpose: it only vouches
for this server's TLS name and must never be able to sign device identities (or the reverse).
No ssl.SSLContext is built here: that belongs to whoever starts the server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from winmdm.errors import ConfigError
from winmdm.pki.ca import (
    DeviceCA,
    random_serial,
    read_certificate,
    read_private_key,
    write_certificate,
    write_private_key,
)

CA_STEM: Final = "dev-tls-ca"
SERVER_CERT_NAME: Final = "dev-tls-server.crt"
SERVER_KEY_NAME: Final = "dev-tls-server.key"
# CA/Browser Forum baseline requirements cap server certificates at 397 days (Apple enforces it).
SERVER_LIFETIME: Final = timedelta(days=397)
RENEW_BEFORE: Final = timedelta(days=30)
SERVER_KEY_SIZE: Final = 2048

SubjectAltName: TypeAlias = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class DevTLS:
    """Paths of the dev TLS material; `created` is True when this call (re)issued the server
    certificate (so the caller can tell the admin what to install)."""

    ca_cert_path: Path
    cert_path: Path
    key_path: Path
    created: bool


def ensure_dev_tls(directory: Path, host: str, *, now: datetime) -> DevTLS:
    """Reuse or create the dev root and a server certificate for `host`.

    The server certificate is kept when it is valid for more than 30 more days, was signed by
    the current dev root, matches its key and covers `host`; otherwise only it is re-issued, so
    a PC that already trusts the dev root keeps working.
    """
    wanted = subject_alt_names(host)
    ca, _ca_created = DeviceCA.load_or_create(
        directory, common_name="winmdm development TLS root", now=now, stem=CA_STEM
    )
    ca_cert_path = directory / f"{CA_STEM}.crt"
    cert_path, key_path = directory / SERVER_CERT_NAME, directory / SERVER_KEY_NAME
    if _reusable(ca, cert_path, key_path, wanted, now):
        return DevTLS(ca_cert_path, cert_path, key_path, created=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=SERVER_KEY_SIZE)
    cert = _issue_server_certificate(ca, key, host, wanted, now)
    write_private_key(key_path, key)
    write_certificate(cert_path, cert)
    return DevTLS(ca_cert_path, cert_path, key_path, created=True)


def subject_alt_names(host: str) -> list[SubjectAltName]:
    """SANs for `host`: an IP literal as an IPAddress, else a DNS name; loopback adds
    localhost, 127.0.0.1 and ::1 so any of the usual local spellings works."""
    name = host.strip().strip("[]").rstrip(".")
    if not name:
        raise ConfigError("WINMDM_SERVER_URL", "the TLS host name is empty")
    names: list[SubjectAltName] = []
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        names.append(x509.IPAddress(ip))
        loopback = ip.is_loopback
    else:
        try:
            dns = name.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise ConfigError("WINMDM_SERVER_URL", f"{host!r} is not a valid host name: {exc}") from None
        names.append(x509.DNSName(dns))
        loopback = dns == "localhost" or dns.endswith(".localhost")
    if loopback:
        for extra in (
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ):
            if extra not in names:
                names.append(extra)
    return names


def _reusable(
    ca: DeviceCA, cert_path: Path, key_path: Path, wanted: list[SubjectAltName], now: datetime
) -> bool:
    if not cert_path.exists() or not key_path.exists():
        return False
    key = read_private_key(key_path)  # a readable key is a ConfigError, never silently replaced
    try:
        cert = read_certificate(cert_path)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ConfigError, x509.ExtensionNotFound):
        return False
    return (
        cert.public_key() == key.public_key()
        and ca.issued_by_me(cert)
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > RENEW_BEFORE
        and all(name in sans for name in wanted)
    )


def _issue_server_certificate(
    ca: DeviceCA,
    key: rsa.RSAPrivateKey,
    host: str,
    sans: list[SubjectAltName],
    now: datetime,
) -> x509.Certificate:
    issuer_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_after = min(now + SERVER_LIFETIME, ca.certificate.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())
    )

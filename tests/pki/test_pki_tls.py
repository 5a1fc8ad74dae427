"""ensure_dev_tls: development TLS material for `winmdm serve` without an admin certificate."""

from __future__ import annotations

import ipaddress
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from winmdm.errors import ConfigError
from winmdm.pki.ca import read_certificate
from winmdm.pki.tls import DevTLS, ensure_dev_tls


def _sans(tls: DevTLS) -> tuple[list[str], list[str]]:
    cert = read_certificate(tls.cert_path)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        sans.get_values_for_type(x509.DNSName),
        [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)],
    )


def test_dns_name(tmp_path: Path, now: datetime) -> None:
    tls = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    assert tls.created
    assert _sans(tls) == (["mdm.corp.example"], [])
    cert = read_certificate(tls.cert_path)
    ca = read_certificate(tls.ca_cert_path)
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=397, minutes=5)
    assert cert.not_valid_after_utc - now == timedelta(days=397)
    key = serialization.load_pem_private_key(tls.key_path.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()


def test_files_and_permissions(tmp_path: Path, now: datetime) -> None:
    tls = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    assert tls.ca_cert_path == tmp_path / "dev-tls-ca.crt"
    assert (tmp_path / "dev-tls-ca.key").exists()
    for key_path in (tls.key_path, tmp_path / "dev-tls-ca.key"):
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert not (tmp_path / "device-ca.key").exists()  # separate from the device CA


def test_ip_address(tmp_path: Path, now: datetime) -> None:
    tls = ensure_dev_tls(tmp_path, "192.0.2.10", now=now)
    assert _sans(tls) == ([], ["192.0.2.10"])


def test_ipv6_literal(tmp_path: Path, now: datetime) -> None:
    tls = ensure_dev_tls(tmp_path, "[2001:db8::1]", now=now)
    assert _sans(tls) == ([], ["2001:db8::1"])


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_loopback_adds_localhost_and_127_0_0_1(tmp_path: Path, now: datetime, host: str) -> None:
    dns, ips = _sans(ensure_dev_tls(tmp_path, host, now=now))
    assert dns == ["localhost"]
    assert set(ips) == {"127.0.0.1", "::1"}


def test_reused_on_a_second_call(tmp_path: Path, now: datetime) -> None:
    first = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    before = first.cert_path.read_bytes(), first.key_path.read_bytes()
    second = ensure_dev_tls(tmp_path, "MDM.corp.example", now=now + timedelta(days=300))
    assert not second.created
    assert (second.cert_path.read_bytes(), second.key_path.read_bytes()) == before


def test_reissued_for_a_different_host_with_the_same_ca(tmp_path: Path, now: datetime) -> None:
    first = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    ca_before = first.ca_cert_path.read_bytes()
    cert_before = first.cert_path.read_bytes()
    second = ensure_dev_tls(tmp_path, "other.corp.example", now=now)
    assert second.created
    assert second.cert_path.read_bytes() != cert_before
    assert second.ca_cert_path.read_bytes() == ca_before  # PCs that trust it keep working
    assert _sans(second) == (["other.corp.example"], [])


def test_reissued_within_30_days_of_expiry(tmp_path: Path, now: datetime) -> None:
    ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    kept = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now + timedelta(days=366))
    assert not kept.created
    renewed = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now + timedelta(days=368))
    assert renewed.created
    cert = read_certificate(renewed.cert_path)
    assert cert.not_valid_after_utc == now + timedelta(days=368 + 397)


def test_reissued_when_the_key_no_longer_matches(tmp_path: Path, now: datetime) -> None:
    first = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    other = ensure_dev_tls(tmp_path / "other", "mdm.corp.example", now=now)
    first.key_path.write_bytes(other.key_path.read_bytes())
    assert ensure_dev_tls(tmp_path, "mdm.corp.example", now=now).created


def test_readable_server_key_is_refused(tmp_path: Path, now: datetime) -> None:
    tls = ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)
    tls.key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        ensure_dev_tls(tmp_path, "mdm.corp.example", now=now)


def test_empty_host_is_refused(tmp_path: Path, now: datetime) -> None:
    with pytest.raises(ConfigError, match="empty"):
        ensure_dev_tls(tmp_path, " ", now=now)


def test_ip_san_is_an_ip_not_a_dns_name(tmp_path: Path, now: datetime) -> None:
    cert = read_certificate(ensure_dev_tls(tmp_path, "10.1.2.3", now=now).cert_path)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]

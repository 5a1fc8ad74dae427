"""DeviceCA: the root, the client certificates it issues, and its files on disk."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki_builders import rsa_key

from winmdm.errors import ConfigError
from winmdm.pki.ca import DeviceCA, der, random_serial, thumbprint_sha1, write_private_key


def test_generated_root_is_a_ca(device_ca: DeviceCA, now) -> None:
    cert = device_ca.certificate
    assert cert.subject == cert.issuer
    assert device_ca.private_key.key_size == 3072
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(device_ca.private_key.public_key())
    assert cert.not_valid_after_utc - now >= timedelta(days=3650)
    cert.verify_directly_issued_by(cert)  # self-signed


def test_issued_client_certificate_fields(device_ca: DeviceCA, now) -> None:
    key = rsa_key()
    cert = device_ca.issue_client_certificate(key.public_key(), common_name="DEVICE-1", serial=1234, now=now)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DEVICE-1"
    assert cert.issuer == device_ca.certificate.subject
    assert cert.serial_number == 1234
    assert cert.public_key() == key.public_key()
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = device_ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.value.digest


def test_validity_is_backdated_five_minutes_and_lasts_365_days(device_ca: DeviceCA, now) -> None:
    cert = device_ca.issue_client_certificate(rsa_key().public_key(), common_name="d", serial=7, now=now)
    assert cert.not_valid_before_utc == now - timedelta(minutes=5)
    assert now - cert.not_valid_before_utc <= timedelta(minutes=5)
    assert cert.not_valid_after_utc == now + timedelta(days=365)


def test_lifetime_and_backdate_are_arguments(device_ca: DeviceCA, now) -> None:
    cert = device_ca.issue_client_certificate(
        rsa_key().public_key(),
        common_name="d",
        serial=8,
        now=now,
        lifetime=timedelta(days=30),
        backdate=timedelta(0),
    )
    assert cert.not_valid_before_utc == now
    assert cert.not_valid_after_utc == now + timedelta(days=30)


def test_serial_is_validated(device_ca: DeviceCA, now) -> None:
    for serial in (0, -1, 2**159):
        with pytest.raises(ValueError, match="serial"):
            device_ca.issue_client_certificate(
                rsa_key().public_key(), common_name="d", serial=serial, now=now
            )


def test_naive_now_is_refused(device_ca: DeviceCA, now) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        device_ca.issue_client_certificate(
            rsa_key().public_key(), common_name="d", serial=9, now=now.replace(tzinfo=None)
        )


def test_random_serials_are_unique_positive_and_fit_20_octets(device_ca: DeviceCA, now) -> None:
    serials = [random_serial() for _ in range(1000)]
    assert len(set(serials)) == len(serials)
    assert all(0 < serial < 2**159 for serial in serials)
    certs = [
        device_ca.issue_client_certificate(rsa_key().public_key(), common_name="d", serial=serial, now=now)
        for serial in serials[:3]
    ]
    assert len({cert.serial_number for cert in certs}) == 3
    assert len({thumbprint_sha1(cert) for cert in certs}) == 3


def test_issued_certificate_chains_to_the_ca(device_ca: DeviceCA, foreign_ca: DeviceCA, now) -> None:
    cert = device_ca.issue_client_certificate(rsa_key().public_key(), common_name="d", serial=10, now=now)
    cert.verify_directly_issued_by(device_ca.certificate)
    assert device_ca.issued_by_me(cert)
    assert not foreign_ca.issued_by_me(cert)  # same CA name, different key
    assert not device_ca.issued_by_me(
        foreign_ca.issue_client_certificate(rsa_key().public_key(), common_name="d", serial=10, now=now)
    )
    assert device_ca.issued_by_me(device_ca.certificate)  # self-signed root


def test_issued_by_me_never_raises_for_a_different_issuer_name(device_ca: DeviceCA, now) -> None:
    other = DeviceCA.generate("some other CA", now)
    cert = other.issue_client_certificate(rsa_key().public_key(), common_name="d", serial=1, now=now)
    assert device_ca.issued_by_me(cert) is False


def test_thumbprint_and_der(device_ca: DeviceCA) -> None:
    cert = device_ca.certificate
    assert der(cert) == cert.public_bytes(serialization.Encoding.DER)
    thumbprint = thumbprint_sha1(cert)
    assert len(thumbprint) == 40 and thumbprint == thumbprint.upper()
    assert thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()
    int(thumbprint, 16)


def test_mismatched_key_is_refused_at_construction(device_ca: DeviceCA) -> None:
    with pytest.raises(ValueError, match="does not match"):
        DeviceCA(device_ca.certificate, rsa_key())


def test_load_or_create_creates_then_loads_the_same_ca(tmp_path: Path, now) -> None:
    directory = tmp_path / "data"
    first, created = DeviceCA.load_or_create(directory, common_name="Test CA", now=now)
    assert created
    second, created_again = DeviceCA.load_or_create(directory, common_name="ignored", now=now)
    assert not created_again
    assert der(second.certificate) == der(first.certificate)
    assert second.private_key.private_numbers() == first.private_key.private_numbers()
    key_text = (directory / "device-ca.key").read_text()
    assert key_text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert (directory / "device-ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert sorted(p.name for p in directory.iterdir()) == ["device-ca.crt", "device-ca.key"]


def test_key_file_is_0600_even_with_a_permissive_umask(tmp_path: Path, now) -> None:
    previous = os.umask(0)
    try:
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "device-ca.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_readable_key_is_refused(tmp_path: Path, now, mode: int) -> None:
    DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    (tmp_path / "device-ca.key").chmod(mode)
    with pytest.raises(ConfigError, match="readable by group or others") as caught:
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    assert caught.value.setting == "WINMDM_DATA_DIR"
    assert "chmod 600" in caught.value.message


def test_key_not_matching_certificate_is_refused(tmp_path: Path, now) -> None:
    DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    key_path = tmp_path / "device-ca.key"
    key_path.write_bytes(
        rsa_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match="is not the private key of") as caught:
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    assert caught.value.setting == "WINMDM_DATA_DIR"


@pytest.mark.parametrize("missing", ["device-ca.key", "device-ca.crt"])
def test_one_file_without_the_other_is_refused(tmp_path: Path, now, missing: str) -> None:
    DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    (tmp_path / missing).unlink()
    with pytest.raises(ConfigError, match=f"{missing} does not") as caught:
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    assert caught.value.setting == "WINMDM_DATA_DIR"


def test_garbage_key_file_is_a_config_error(tmp_path: Path, now) -> None:
    DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    (tmp_path / "device-ca.key").write_bytes(b"not a key")
    with pytest.raises(ConfigError, match="cannot read private key"):
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)


def test_expired_ca_is_a_config_error(tmp_path: Path, now) -> None:
    DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    with pytest.raises(ConfigError, match="expired"):
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now + timedelta(days=3653))


def test_a_damaged_key_is_refused(tmp_path: Path, now) -> None:
    """The key is loaded without OpenSSL's slow primality check; a signature round trip stands in."""
    DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)
    key = serialization.load_pem_private_key((tmp_path / "device-ca.key").read_bytes(), password=None)
    numbers = key.private_numbers()
    damaged = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d + 2,
        dmp1=numbers.dmp1 + 2,
        dmq1=numbers.dmq1,
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    (tmp_path / "device-ca.key").unlink()
    write_private_key(tmp_path / "device-ca.key", damaged)
    with pytest.raises(ConfigError, match="is damaged"):
        DeviceCA.load_or_create(tmp_path, common_name="Test CA", now=now)

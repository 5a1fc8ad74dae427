"""parse_csr: the genuine Windows 10 CSR, and every way a CSR is refused (protocol.md §3)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from pki_builders import make_csr, rsa_key, win10_csr_der

from winmdm.errors import CertificateRequestRejected
from winmdm.pki.ca import DeviceCA
from winmdm.pki.csr import parse_csr

WIN10_DEVICE_ID = "DB257C3A08778F4FB61E2749066C1F27"


def test_cryptography_refuses_the_genuine_win10_csr() -> None:
    """Why asn1crypto is used at all: if this ever starts passing, the trap is gone."""
    with pytest.raises(ValueError):
        x509.load_der_x509_csr(win10_csr_der()).subject  # noqa: B018


def test_genuine_win10_csr_parses_and_verifies() -> None:
    request = parse_csr(win10_csr_der())
    assert request.key_size == 2048
    assert request.signature_hash == "sha1"  # signed under the OIW OID 1.3.14.3.2.29
    assert request.der == win10_csr_der()
    assert WIN10_DEVICE_ID in request.subject_text
    assert request.subject_text.endswith("\\x00")  # the NUL is shown, escaped
    assert request.subject_text.isprintable()


def test_certificate_for_win10_key_has_the_subject_winmdm_chose(device_ca: DeviceCA, now) -> None:
    request = parse_csr(win10_csr_der())
    cert = device_ca.issue_client_certificate(
        request.public_key, common_name=WIN10_DEVICE_ID, serial=42, now=now
    )
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, WIN10_DEVICE_ID)])
    assert cert.public_key() == request.public_key
    assert b"\x00" not in cert.subject.public_bytes()
    assert b"2B9B52AC" not in cert.subject.public_bytes()


def test_flipped_signature_is_rejected() -> None:
    der = bytearray(win10_csr_der())
    der[-1] ^= 0x01  # the signature BIT STRING ends the CSR
    with pytest.raises(CertificateRequestRejected, match="signature does not verify"):
        parse_csr(bytes(der))


def test_altered_request_info_is_rejected() -> None:
    der = bytearray(win10_csr_der())
    index = bytes(der).index(WIN10_DEVICE_ID.encode())
    der[index] = ord("E")  # same length, still a PrintableString: only the signature fails
    with pytest.raises(CertificateRequestRejected, match="signature does not verify"):
        parse_csr(bytes(der))


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_csrs_made_by_cryptography_are_accepted(algorithm: hashes.HashAlgorithm) -> None:
    key = rsa_key()
    request = parse_csr(make_csr(key, algorithm))
    assert request.signature_hash == algorithm.name
    assert request.public_key == key.public_key()
    assert "csr-subject-chosen-by-client" in request.subject_text


def test_3072_bit_key_is_accepted() -> None:
    assert parse_csr(make_csr(rsa_key(3072))).key_size == 3072


def test_1024_bit_key_is_rejected_naming_both_sizes() -> None:
    with pytest.raises(CertificateRequestRejected) as caught:
        parse_csr(make_csr(rsa_key(1024)))
    assert "1024" in caught.value.message
    assert "2048" in caught.value.message


def test_min_key_size_is_the_callers_choice() -> None:
    assert parse_csr(make_csr(rsa_key(1024)), min_key_size=1024).key_size == 1024
    with pytest.raises(CertificateRequestRejected, match="2048 bits; the minimum is 3072"):
        parse_csr(make_csr(rsa_key()), min_key_size=3072)


def test_ec_key_is_rejected_naming_the_algorithm() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateRequestRejected, match=r"is ec \(1\.2\.840\.10045\.2\.1\), not RSA"):
        parse_csr(make_csr(key))


def test_sha224_signature_is_rejected_naming_the_oid() -> None:
    with pytest.raises(CertificateRequestRejected, match=r"1\.2\.840\.113549\.1\.1\.14"):
        parse_csr(make_csr(rsa_key(), hashes.SHA224()))


def test_unsupported_signature_oid_is_rejected() -> None:
    der = bytearray(win10_csr_der())
    oid = bytes.fromhex("06052b0e03021d")  # 1.3.14.3.2.29
    index = bytes(der).rindex(oid)
    der[index + 6] = 0x1B  # 1.3.14.3.2.27: OIW dsaWithSHA1
    with pytest.raises(CertificateRequestRejected, match=r"unsupported algorithm 1\.3\.14\.3\.2\.27"):
        parse_csr(bytes(der))


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "empty"),
        (b"\x30", "not DER"),
        (b"garbage that is not ASN.1 at all", "not DER"),
        (b"\x04\x03abc", "does not start with a SEQUENCE"),
        (b"\x30\x00", "not a valid PKCS#10 structure"),
        (b"\x30\x03\x02\x01\x00", "not a valid PKCS#10 structure"),
    ],
)
def test_garbage_is_rejected(der: bytes, message: str) -> None:
    with pytest.raises(CertificateRequestRejected, match=message):
        parse_csr(der)


def test_truncated_csr_is_rejected() -> None:
    whole = win10_csr_der()
    for cut in (1, 10, len(whole) // 2, len(whole) - 1):
        with pytest.raises(CertificateRequestRejected, match="truncated"):
            parse_csr(whole[:cut])


def test_trailing_garbage_is_rejected() -> None:
    with pytest.raises(CertificateRequestRejected, match="3 bytes of trailing data"):
        parse_csr(win10_csr_der() + b"\x00\x01\x02")


def test_non_bytes_is_rejected() -> None:
    with pytest.raises(CertificateRequestRejected, match="not a byte string"):
        parse_csr("MIIC...")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_ever_raise_certificate_request_rejected(data: bytes) -> None:
    try:
        parse_csr(data)
    except CertificateRequestRejected as exc:
        assert exc.message
    else:
        pytest.fail("random bytes were accepted as a CSR")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_win10_csr_is_accepted_or_rejected_cleanly(data: st.DataObject) -> None:
    """Byte edits deep inside the structure hit asn1crypto's lazy parsing paths."""
    der = bytearray(win10_csr_der())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(der) - 1))
        der[index] = data.draw(st.integers(0, 255))
    try:
        request = parse_csr(bytes(der))
    except CertificateRequestRejected as exc:
        assert exc.message
    else:
        # Only edits the signature does not cover (or no-op edits) may survive.
        assert request.key_size == 2048

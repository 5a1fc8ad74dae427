"""parse_renewal_request: PKCS#7 renewal requests (MS-WSTEP Renew, "ROBO")."""

from __future__ import annotations

from datetime import datetime

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from pki_builders import NOW, hand_signed_data, make_csr, pkcs7_sign, rsa_key, win10_csr_der

from winmdm.errors import CertificateRequestRejected
from winmdm.pki.ca import DeviceCA, der
from winmdm.pki.renewal import parse_renewal_request

SIGNER_SERIAL = 0x5EED


@pytest.fixture(scope="module")
def signer(device_ca: DeviceCA) -> x509.Certificate:
    return device_ca.issue_client_certificate(
        rsa_key().public_key(), common_name="DEVICE-1", serial=SIGNER_SERIAL, now=NOW
    )


@pytest.fixture(scope="module")
def new_csr() -> bytes:
    return make_csr(rsa_key(2048, 1))


@pytest.mark.parametrize("attributes", [True, False], ids=["signed-attrs", "no-attrs"])
def test_request_from_cryptography_verifies(
    signer: x509.Certificate, new_csr: bytes, device_ca: DeviceCA, attributes: bool
) -> None:
    renewal = parse_renewal_request(pkcs7_sign(new_csr, signer, rsa_key(), attributes=attributes))
    assert der(renewal.signer) == der(signer)
    assert renewal.csr.der == new_csr
    assert renewal.csr.public_key == rsa_key(2048, 1).public_key()
    assert device_ca.issued_by_me(renewal.signer)  # what the caller checks next


@pytest.mark.parametrize("attributes", [True, False], ids=["signed-attrs", "no-attrs"])
@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha384"])
def test_hand_built_requests_verify(
    signer: x509.Certificate, new_csr: bytes, hash_name: str, attributes: bool
) -> None:
    renewal = parse_renewal_request(
        hand_signed_data(new_csr, signer, rsa_key(), hash_name=hash_name, attributes=attributes)
    )
    assert renewal.csr.der == new_csr


def test_signer_named_by_subject_key_identifier(signer: x509.Certificate, new_csr: bytes) -> None:
    data = hand_signed_data(new_csr, signer, rsa_key(), by_key_identifier=True)
    assert der(parse_renewal_request(data).signer) == der(signer)


@pytest.mark.parametrize("attributes", [True, False], ids=["signed-attrs", "no-attrs"])
def test_pkcs7_v15_content_without_octet_string(
    signer: x509.Certificate, new_csr: bytes, attributes: bool
) -> None:
    data = hand_signed_data(new_csr, signer, rsa_key(), v15_sequence=True, attributes=attributes)
    assert parse_renewal_request(data).csr.der == new_csr


def test_inner_csr_may_be_the_win10_shape(signer: x509.Certificate) -> None:
    renewal = parse_renewal_request(hand_signed_data(win10_csr_der(), signer, rsa_key()))
    assert renewal.csr.signature_hash == "sha1"


def test_tampered_content_with_signed_attributes_fails_the_digest(
    signer: x509.Certificate, new_csr: bytes
) -> None:
    data = bytearray(pkcs7_sign(new_csr, signer, rsa_key(), attributes=True))
    data[bytes(data).index(new_csr) + len(new_csr) - 1] ^= 0x01
    with pytest.raises(CertificateRequestRejected, match="messageDigest does not match"):
        parse_renewal_request(bytes(data))


def test_tampered_content_without_signed_attributes_fails_the_signature(
    signer: x509.Certificate, new_csr: bytes
) -> None:
    data = bytearray(pkcs7_sign(new_csr, signer, rsa_key(), attributes=False))
    data[bytes(data).index(new_csr) + len(new_csr) - 1] ^= 0x01
    with pytest.raises(CertificateRequestRejected, match="signature does not verify with its"):
        parse_renewal_request(bytes(data))


@pytest.mark.parametrize("attributes", [True, False], ids=["signed-attrs", "no-attrs"])
def test_tampered_signature_is_rejected(signer: x509.Certificate, new_csr: bytes, attributes: bool) -> None:
    data = bytearray(pkcs7_sign(new_csr, signer, rsa_key(), attributes=attributes))
    data[-1] ^= 0x01  # the SignerInfo signature ends the structure
    with pytest.raises(CertificateRequestRejected, match="signature does not verify with its"):
        parse_renewal_request(bytes(data))


def test_signed_by_a_key_other_than_the_certificates(signer: x509.Certificate, new_csr: bytes) -> None:
    data = pkcs7_sign(new_csr, signer, rsa_key(2048, 2))
    with pytest.raises(CertificateRequestRejected, match="signature does not verify with its"):
        parse_renewal_request(data)


def test_wrong_signer_certificate_with_same_issuer_and_serial(
    device_ca: DeviceCA, new_csr: bytes, now: datetime
) -> None:
    impostor = device_ca.issue_client_certificate(
        rsa_key(2048, 3).public_key(), common_name="DEVICE-1", serial=SIGNER_SERIAL, now=now
    )
    data = hand_signed_data(new_csr, impostor, rsa_key())  # cert says key 3, signed by key 0
    with pytest.raises(CertificateRequestRejected, match="signature does not verify"):
        parse_renewal_request(data)


def test_no_certificate_matches_the_signer(
    signer: x509.Certificate, device_ca: DeviceCA, new_csr: bytes, now: datetime
) -> None:
    other = device_ca.issue_client_certificate(
        rsa_key(2048, 4).public_key(), common_name="DEVICE-1", serial=SIGNER_SERIAL + 1, now=now
    )
    for by_key_identifier in (True, False):
        data = hand_signed_data(
            new_csr,
            signer,
            rsa_key(),
            by_key_identifier=by_key_identifier,
            certificates=[other, device_ca.certificate],
        )
        with pytest.raises(CertificateRequestRejected, match="no certificate matching its signer"):
            parse_renewal_request(data)


@pytest.mark.parametrize("by_key_identifier", [True, False])
def test_signer_is_found_among_several_certificates(
    signer: x509.Certificate,
    device_ca: DeviceCA,
    new_csr: bytes,
    now: datetime,
    by_key_identifier: bool,
) -> None:
    other = device_ca.issue_client_certificate(
        rsa_key(2048, 4).public_key(), common_name="DEVICE-1", serial=SIGNER_SERIAL + 1, now=now
    )
    data = hand_signed_data(
        new_csr,
        signer,
        rsa_key(),
        by_key_identifier=by_key_identifier,
        certificates=[device_ca.certificate, other, signer],
    )
    assert der(parse_renewal_request(data).signer) == der(signer)


def test_missing_certificates_are_rejected(signer: x509.Certificate, new_csr: bytes) -> None:
    data = pkcs7_sign(new_csr, signer, rsa_key(), certs=False)
    with pytest.raises(CertificateRequestRejected, match="carries no certificates"):
        parse_renewal_request(data)


def test_detached_signature_has_no_content(signer: x509.Certificate, new_csr: bytes) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    data = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(new_csr)
        .add_signer(signer, rsa_key(), hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.DetachedSignature],
        )
    )
    with pytest.raises(CertificateRequestRejected, match="no content"):
        parse_renewal_request(data)


def test_inner_csr_problems_are_reported(signer: x509.Certificate) -> None:
    weak = make_csr(rsa_key(1024))
    with pytest.raises(CertificateRequestRejected, match="1024 bits; the minimum is 2048"):
        parse_renewal_request(pkcs7_sign(weak, signer, rsa_key()))
    with pytest.raises(CertificateRequestRejected, match="not DER"):
        parse_renewal_request(pkcs7_sign(b"just some bytes", signer, rsa_key()))


def test_a_bare_csr_is_not_pkcs7() -> None:
    with pytest.raises(CertificateRequestRejected, match="not PKCS#7"):
        parse_renewal_request(win10_csr_der())


def test_other_pkcs7_types_are_rejected() -> None:
    data_content_info = bytes.fromhex("300f06092a864886f70d010701a0020400")  # id-data, ""
    with pytest.raises(CertificateRequestRejected, match=r"not signedData"):
        parse_renewal_request(data_content_info)


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x00", b"MIIB"])
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(CertificateRequestRejected):
        parse_renewal_request(data)


def test_trailing_data_is_rejected(signer: x509.Certificate, new_csr: bytes) -> None:
    with pytest.raises(CertificateRequestRejected, match="trailing data"):
        parse_renewal_request(pkcs7_sign(new_csr, signer, rsa_key()) + b"\x00")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1024))
def test_arbitrary_bytes_only_raise_certificate_request_rejected(data: bytes) -> None:
    with pytest.raises(CertificateRequestRejected):
        parse_renewal_request(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_requests_are_accepted_or_rejected_cleanly(
    signer: x509.Certificate, new_csr: bytes, data: st.DataObject
) -> None:
    attributes = data.draw(st.booleans())
    request = bytearray(pkcs7_sign(new_csr, signer, rsa_key(), attributes=attributes))
    for _ in range(data.draw(st.integers(1, 3))):
        request[data.draw(st.integers(0, len(request) - 1))] = data.draw(st.integers(0, 255))
    try:
        renewal = parse_renewal_request(bytes(request))
    except CertificateRequestRejected as exc:
        assert exc.message
    else:
        assert renewal.csr.der == new_csr  # whatever survives still carries the signed CSR

"""Builders for the pki tests: keys, CSRs, and hand-made CMS SignedData.

`cryptography`'s PKCS7SignatureBuilder cannot sign with SHA-1, name the signer by subject key
identifier, or put the CSR itself (not an OCTET STRING) under eContent as PKCS#7 v1.5 allows, so
those shapes are assembled here with asn1crypto and signed with cryptography.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
VECTOR = Path("/work/shared/vectors/enroll/rst_request_win10_22h2_captured.xml")
_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384}


def win10_csr_der() -> bytes:
    """The genuine Windows 10 22H2 CSR: base64 inside the PKCS10 BinarySecurityToken."""
    text = VECTOR.read_text(encoding="utf-8")
    match = re.search(r'ValueType="[^"]*#PKCS10"[^>]*>([^<]+)<', text)
    assert match is not None, "no PKCS10 BinarySecurityToken in the vector"
    return base64.b64decode("".join(match.group(1).split()))


@functools.cache
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    """Cached keys: generation dominates test time. `index` gives distinct keys of one size."""
    del index
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_csr(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    algorithm: hashes.HashAlgorithm | None = None,
    common_name: str = "csr-subject-chosen-by-client",
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    csr = builder.sign(key, algorithm or hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def pkcs7_sign(
    content: bytes,
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    *,
    attributes: bool = True,
    certs: bool = True,
) -> bytes:
    """A renewal request as cryptography's PKCS7SignatureBuilder makes it (SHA-256)."""
    options = [pkcs7.PKCS7Options.Binary]  # Binary: no S/MIME newline canonicalisation
    if not attributes:
        options.append(pkcs7.PKCS7Options.NoAttributes)
    if not certs:
        options.append(pkcs7.PKCS7Options.NoCerts)
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, options)
    )


def hand_signed_data(
    csr_der: bytes,
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    *,
    hash_name: str = "sha1",
    attributes: bool = True,
    by_key_identifier: bool = False,
    v15_sequence: bool = False,
    certificates: list[x509.Certificate] | None = None,
) -> bytes:
    """CMS SignedData built by hand, covering shapes PKCS7SignatureBuilder cannot make.

    `certificates` replaces the default [cert] in the SignedData certificates field."""
    acert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    if v15_sequence:
        # RFC 2315 §9.3: the content itself under [0]; the digest covers its contents octets.
        content_type = "1.3.6.1.4.1.311.10.10.1"
        explicit_content = csr_der
        digested = csr_der[_header_length(csr_der) :]
    else:
        content_type = "1.2.840.113549.1.7.1"  # data: the CSR inside an OCTET STRING
        explicit_content = _tlv(0x04, csr_der)
        digested = csr_der
    encap = _tlv(0x30, cms.ContentType(content_type).dump() + _tlv(0xA0, explicit_content))
    algorithm = _HASHES[hash_name]()
    signer: dict[str, object] = {
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
    }
    if by_key_identifier:
        signer["version"] = "v3"
        signer["sid"] = cms.SignerIdentifier({"subject_key_identifier": acert.key_identifier})
    else:
        signer["version"] = "v1"
        signer["sid"] = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                    {"issuer": acert.issuer, "serial_number": acert.serial_number}
                )
            }
        )
    if attributes:
        digest = hashlib.new(hash_name, digested).digest()
        attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
                cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
            ]
        )
        signer["signed_attrs"] = attrs
        message = attrs.dump()
    else:
        message = digested
    signer["signature"] = key.sign(message, padding.PKCS1v15(), algorithm)
    version = core.Integer(3 if by_key_identifier or v15_sequence else 1).dump()
    signed_data = _tlv(
        0x30,
        version
        + _tlv(0x31, algos.DigestAlgorithm({"algorithm": hash_name}).dump())
        + encap
        + _tlv(0xA0, b"".join(_der(c) for c in (certificates or [cert])))
        + _tlv(0x31, cms.SignerInfo(signer).dump()),
    )
    return _tlv(0x30, cms.ContentType("signed_data").dump() + _tlv(0xA0, signed_data))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _tlv(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(contents)) + contents


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _header_length(tlv: bytes) -> int:
    return 2 if tlv[1] < 0x80 else 2 + (tlv[1] & 0x7F)

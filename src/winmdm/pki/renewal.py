"""Certificate renewal requests: MS-WSTEP RequestType Renew ("ROBO", protocol.md §3).

Windows renews its MDM client certificate by sending, as BinarySecurityToken ValueType #PKCS7, a
CMS SignedData (RFC 5652) whose encapsulated content is a new PKCS#10 CSR and whose signer is the
CURRENT client certificate. This module proves only that the holder of the certificate found in
the SignedData signed this CSR. Whether that certificate is winmdm's, still active and the
device's own is the caller's decision (DeviceCA.issued_by_me, the enrollment store).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from asn1crypto import cms
from asn1crypto import core as asn1_core
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from winmdm.errors import CertificateRequestRejected
from winmdm.pki.csr import (
    HASH_ALGORITHMS,
    RSA_ENCRYPTION_OID,
    SIGNATURE_HASHES,
    CertificateRequest,
    parse_csr,
)

DIGEST_OIDS: Final[dict[str, str]] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_OCTET_STRING_TAG: Final = 4


@dataclass(frozen=True)
class RenewalRequest:
    """A verified renewal: the certificate that signed it and the new CSR (itself verified)."""

    signer: x509.Certificate
    csr: CertificateRequest


def parse_renewal_request(der: bytes, *, min_key_size: int = 2048) -> RenewalRequest:
    """Read a DER PKCS#7/CMS renewal request, verify its signer's signature, then its CSR."""
    if not isinstance(der, bytes | bytearray | memoryview):
        raise CertificateRequestRejected("the renewal request is not a byte string")
    der = bytes(der)
    if not der:
        raise CertificateRequestRejected("the renewal request is empty")
    signed_data = _signed_data(der)
    content = _encapsulated_content(der)
    signer_info = _only_signer(signed_data)
    signer_der = _signer_certificate(signed_data, signer_info)
    try:
        signer = x509.load_der_x509_certificate(signer_der)
        signer_key = signer.public_key()
    except Exception as exc:  # cryptography refuses some certificates asn1crypto reads
        raise CertificateRequestRejected(
            f"the renewal request's signer certificate cannot be read: {exc}"
        ) from None
    if not isinstance(signer_key, rsa.RSAPublicKey):
        raise CertificateRequestRejected("the renewal request's signer certificate does not hold an RSA key")
    _verify_signer_info(signer_info, signer_key, content)
    return RenewalRequest(signer=signer, csr=parse_csr(content.csr_der, min_key_size=min_key_size))


def _signed_data(der: bytes) -> cms.SignedData:
    try:
        _c, _m, _t, header, contents, trailer = asn1_parser.parse(der)
        if len(header) + len(contents) + len(trailer) != len(der):
            raise CertificateRequestRejected("the renewal request has trailing data after PKCS#7")
        info = cms.ContentInfo.load(der)
        content_type = info["content_type"].dotted
    except CertificateRequestRejected:
        raise
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, OverflowError...
        raise CertificateRequestRejected(
            f"the renewal request is not PKCS#7 (DER ContentInfo): {_short(exc)}"
        ) from None
    if content_type != "1.2.840.113549.1.7.2":
        raise CertificateRequestRejected(
            f"the renewal request is PKCS#7 of type {content_type}, not signedData (1.2.840.113549.1.7.2)"
        )
    try:
        signed_data = info["content"]
        if not isinstance(signed_data, cms.SignedData):
            raise ValueError("content is not SignedData")
        # Force the lazy parse of every part used below (encapContentInfo is read raw).
        for signer_info in signed_data["signer_infos"]:
            signer_info["sid"].chosen  # noqa: B018
            signer_info["digest_algorithm"]["algorithm"].dotted  # noqa: B018
            signer_info["signature_algorithm"]["algorithm"].dotted  # noqa: B018
            signer_info["signed_attrs"].contents  # noqa: B018
            bytes(signer_info["signature"].native or b"")
    except Exception as exc:
        raise CertificateRequestRejected(
            f"the renewal request's SignedData cannot be read: {_short(exc)}"
        ) from None
    return signed_data


@dataclass(frozen=True)
class _Content:
    content_type: str  # dotted OID of eContentType
    csr_der: bytes
    digested: bytes  # the octets messageDigest (or a bare signature) covers


def _encapsulated_content(der: bytes) -> _Content:
    """Walk the raw DER down to encapContentInfo, so the bytes are exactly what was signed.

    CMS (RFC 5652 §5.2) wraps eContent in an OCTET STRING: the CSR and the digested octets are
    its value. PKCS#7 v1.5 (RFC 2315 §9.3) also allows the content itself under [0] for non-data
    types: the CSR is then that element and the digest covers its contents octets only.
    """
    try:
        content_info = _elements(asn1_parser.parse(der)[4])
        signed_data = _elements(asn1_parser.parse(content_info[1][4])[4])
        encap = _elements(signed_data[2][4])
        content_type = asn1_core.ObjectIdentifier.load(encap[0][3] + encap[0][4]).dotted
        if len(encap) < 2:
            raise CertificateRequestRejected(
                "the renewal request has no content (detached signature): the CSR is missing"
            )
        class_, _method, tag, header, contents, trailer = asn1_parser.parse(encap[1][4])
        if class_ == 0 and tag == _OCTET_STRING_TAG:
            value = bytes(asn1_core.OctetString.load(header + contents + trailer).native)
            return _Content(content_type, value, value)
    except CertificateRequestRejected:
        raise
    except Exception as exc:
        raise CertificateRequestRejected(
            f"the renewal request's encapsulated content cannot be read: {_short(exc)}"
        ) from None
    return _Content(content_type, header + contents + trailer, contents)


def _elements(contents: bytes) -> list[tuple[int, int, int, bytes, bytes, bytes]]:
    """The TLVs one after another in a constructed value's contents."""
    found = []
    offset = 0
    while offset < len(contents):
        element = asn1_parser.parse(contents[offset:])
        found.append(element)
        offset += len(element[3]) + len(element[4]) + len(element[5])
    return found


def _only_signer(signed_data: cms.SignedData) -> cms.SignerInfo:
    signer_infos = list(signed_data["signer_infos"])
    if len(signer_infos) != 1:
        raise CertificateRequestRejected(
            f"the renewal request must have exactly one signer, it has {len(signer_infos)}"
        )
    return signer_infos[0]


def _signer_certificate(signed_data: cms.SignedData, signer_info: cms.SignerInfo) -> bytes:
    """The DER of the SignedData certificate that `sid` names (RFC 5652 §5.3)."""
    sid = signer_info["sid"]
    try:
        candidates = [
            choice.chosen for choice in (signed_data["certificates"] or []) if choice.name == "certificate"
        ]
    except Exception as exc:
        raise CertificateRequestRejected(
            f"the renewal request's certificates cannot be read: {_short(exc)}"
        ) from None
    for cert in candidates:
        if _names_signer(cert, sid):
            return cert.dump()
    if not candidates:
        raise CertificateRequestRejected(
            "the renewal request carries no certificates; Windows includes the signer's current "
            "MDM certificate"
        )
    raise CertificateRequestRejected(
        f"the renewal request carries no certificate matching its signer ({sid.name.replace('_', ' ')})"
    )


def _names_signer(cert: asn1_x509.Certificate, sid: cms.SignerIdentifier) -> bool:
    """Whether `sid` designates `cert`; an unreadable certificate simply does not match."""
    try:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if cert.serial_number != wanted["serial_number"].native:
                return False
            issuer = cert["tbs_certificate"]["issuer"]
            # Signers copy the issuer bytes; fall back to RFC 5280 §7.1 name comparison.
            return bool(issuer.dump() == wanted["issuer"].dump() or issuer == wanted["issuer"])
        key_identifier = cert.key_identifier
        return key_identifier is not None and hmac.compare_digest(key_identifier, sid.chosen.native)
    except Exception:
        return False


def _verify_signer_info(
    signer_info: cms.SignerInfo,
    key: rsa.RSAPublicKey,
    content: _Content,
) -> None:
    digest_oid = signer_info["digest_algorithm"]["algorithm"].dotted
    hash_name = DIGEST_OIDS.get(digest_oid)
    if hash_name is None:
        raise CertificateRequestRejected(
            f"the renewal request uses unsupported digest algorithm {digest_oid}; "
            "winmdm accepts SHA-1, SHA-256, SHA-384 and SHA-512"
        )
    sig_oid = signer_info["signature_algorithm"]["algorithm"].dotted
    named_hash = SIGNATURE_HASHES.get(sig_oid)
    if sig_oid != RSA_ENCRYPTION_OID and named_hash is None:
        raise CertificateRequestRejected(
            f"the renewal request is signed with unsupported algorithm {sig_oid}; "
            "winmdm accepts RSA PKCS#1 v1.5"
        )
    if named_hash is not None and named_hash != hash_name:
        raise CertificateRequestRejected(
            f"the renewal request's signature algorithm {sig_oid} contradicts its digest "
            f"algorithm {digest_oid}"
        )
    algorithm = HASH_ALGORITHMS[hash_name]()
    signed_attrs = signer_info["signed_attrs"]
    if signed_attrs.contents:
        _check_signed_attributes(signed_attrs, algorithm, content)
        raw = signed_attrs.dump()
        # RFC 5652 §5.4: the signature covers the attributes' DER with the SET OF tag, not [0].
        message = b"\x31" + raw[1:]
    else:
        message = content.digested
    try:
        key.verify(bytes(signer_info["signature"].native), message, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise CertificateRequestRejected(
            "the renewal request's signature does not verify with its signer certificate"
        ) from None


def _check_signed_attributes(
    signed_attrs: cms.CMSAttributes,
    algorithm: hashes.HashAlgorithm,
    content: _Content,
) -> None:
    """messageDigest must be the content's digest; contentType must match (RFC 5652 §11)."""
    digest = hashes.Hash(algorithm)
    digest.update(content.digested)
    expected = digest.finalize()
    found_digest: bytes | None = None
    try:
        for attribute in signed_attrs:
            kind = attribute["type"].dotted
            values = list(attribute["values"])
            if kind == "1.2.840.113549.1.9.4":  # messageDigest
                if len(values) != 1:
                    raise ValueError("messageDigest must have exactly one value")
                found_digest = bytes(values[0].native)
            elif kind == "1.2.840.113549.1.9.3" and (  # contentType
                len(values) != 1 or values[0].dotted != content.content_type
            ):
                raise CertificateRequestRejected(
                    "the renewal request's contentType attribute does not match its content"
                )
    except CertificateRequestRejected:
        raise
    except Exception as exc:
        raise CertificateRequestRejected(
            f"the renewal request's signed attributes cannot be read: {_short(exc)}"
        ) from None
    if found_digest is None:
        raise CertificateRequestRejected(
            "the renewal request has signed attributes but no messageDigest attribute"
        )
    if not hmac.compare_digest(found_digest, expected):
        raise CertificateRequestRejected(
            "the renewal request's messageDigest does not match its content (content altered)"
        )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]

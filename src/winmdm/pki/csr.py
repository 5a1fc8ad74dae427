"""PKCS#10 certificate requests as Windows sends them (MS-WSTEP, protocol.md §3 "Known trap").

`cryptography` refuses the CSR a real Windows 10 PC sends: its subject is a PrintableString that
ends in a NUL byte, and it is signed under the OIW OID 1.3.14.3.2.29. So the structure is read
with asn1crypto (lenient about string contents) and the signature is checked here, with
`cryptography`, over the raw bytes of CertificationRequestInfo exactly as the client sent them.
The subject is never trusted: winmdm chooses the subject of what it issues (see `ca.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import parser as asn1_parser
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from winmdm.errors import CertificateRequestRejected

# Decision 2 (protocol.md): SHA-1 under either OID, SHA-256 and up. Nothing else.
SIGNATURE_HASHES: Final[dict[str, str]] = {
    "1.2.840.113549.1.1.5": "sha1",  # sha1WithRSAEncryption
    "1.3.14.3.2.29": "sha1",  # OIW sha1WithRSASignature, what Windows 10 sends
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}

HASH_ALGORITHMS: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

RSA_ENCRYPTION_OID: Final = "1.2.840.113549.1.1.1"
_SUBJECT_TEXT_MAX: Final = 256
_SEQUENCE_TAG: Final = 16


@dataclass(frozen=True)
class CertificateRequest:
    """A CSR whose signature has been verified with the public key it carries."""

    der: bytes
    public_key: rsa.RSAPublicKey
    key_size: int
    signature_hash: str  # "sha1" | "sha256" | "sha384" | "sha512"
    subject_text: str  # best effort, printable, for logs only: never put it in a certificate


def parse_csr(der: bytes, *, min_key_size: int = 2048) -> CertificateRequest:
    """Read and verify a DER PKCS#10 CSR; raise CertificateRequestRejected saying what is wrong.

    Proof of possession (the CSR is signed by the key it asks a certificate for) is required by
    MS-WSTEP §3.1.4.1.3 and decision 2, so an unverifiable CSR is never signed.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise CertificateRequestRejected("the certificate request is not a byte string")
    der = bytes(der)
    if not der:
        raise CertificateRequestRejected("the certificate request is empty")
    info_der, spki_der, sig_oid, signature, subject_text = _read_structure(der)

    public_key = _load_rsa_key(spki_der, min_key_size)
    hash_name = SIGNATURE_HASHES.get(sig_oid)
    if hash_name is None:
        raise CertificateRequestRejected(
            f"the certificate request is signed with unsupported algorithm {sig_oid}; "
            "winmdm accepts RSA with SHA-1 (1.2.840.113549.1.1.5 or 1.3.14.3.2.29), "
            "SHA-256, SHA-384 or SHA-512"
        )
    try:
        public_key.verify(signature, info_der, padding.PKCS1v15(), HASH_ALGORITHMS[hash_name]())
    except InvalidSignature:
        raise CertificateRequestRejected(
            "the certificate request's signature does not verify with the public key it carries"
        ) from None
    return CertificateRequest(
        der=der,
        public_key=public_key,
        key_size=public_key.key_size,
        signature_hash=hash_name,
        subject_text=subject_text,
    )


def _read_structure(der: bytes) -> tuple[bytes, bytes, str, bytes, str]:
    """Return (raw CertificationRequestInfo, raw SubjectPublicKeyInfo, signature OID, signature,
    subject text), forcing every lazy asn1crypto parse we rely on inside one guard."""
    try:
        class_, _method, tag, header, contents, trailer = asn1_parser.parse(der)
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, OverflowError...
        raise CertificateRequestRejected(
            f"the certificate request is not DER (truncated or garbage): {_short(exc)}"
        ) from None
    consumed = len(header) + len(contents) + len(trailer)
    if consumed != len(der):
        raise CertificateRequestRejected(
            f"the certificate request has {len(der) - consumed} bytes of trailing data"
        )
    if tag != _SEQUENCE_TAG or class_ != 0:
        raise CertificateRequestRejected(
            "the certificate request is not DER PKCS#10: it does not start with a SEQUENCE"
        )
    try:
        # The exact bytes the client signed: the first element of the outer SEQUENCE.
        _c, _m, _t, info_header, info_contents, info_trailer = asn1_parser.parse(contents)
        info_der = info_header + info_contents + info_trailer
        request = asn1_csr.CertificationRequest.load(der)
        info = request["certification_request_info"]
        info["version"].native  # noqa: B018 - forces the lazy parse
        spki = info["subject_pk_info"]
        spki_der = spki.dump()
        spki["algorithm"]["algorithm"].dotted  # noqa: B018 - forces the lazy parse
        sig_oid = request["signature_algorithm"]["algorithm"].dotted
        signature = bytes(request["signature"].native)
        subject = info["subject"]
        subject.contents  # noqa: B018 - forces the lazy parse
    except Exception as exc:  # asn1crypto parses lazily and raises many types
        raise CertificateRequestRejected(
            f"the certificate request is not a valid PKCS#10 structure: {_short(exc)}"
        ) from None
    return info_der, spki_der, sig_oid, signature, _subject_text(subject)


def _load_rsa_key(spki_der: bytes, min_key_size: int) -> rsa.RSAPublicKey:
    """The CSR's key, which must be RSA of at least `min_key_size` bits (decision 2)."""
    try:
        public_key = serialization.load_der_public_key(spki_der)
    except Exception as exc:  # unsupported or malformed key: cryptography raises several types
        raise CertificateRequestRejected(
            f"the certificate request's public key cannot be read ({_key_algorithm(spki_der)}): {_short(exc)}"
        ) from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateRequestRejected(
            f"the certificate request's public key is {_key_algorithm(spki_der)}, "
            "not RSA; winmdm issues certificates for RSA keys only"
        )
    if public_key.key_size < min_key_size:
        raise CertificateRequestRejected(
            f"the certificate request's RSA key is {public_key.key_size} bits; "
            f"the minimum is {min_key_size} bits"
        )
    return public_key


def _key_algorithm(spki_der: bytes) -> str:
    """Name the key algorithm for a message, e.g. "ec (1.2.840.10045.2.1)"."""
    try:
        oid = asn1_keys.PublicKeyInfo.load(spki_der)["algorithm"]["algorithm"]
        name, dotted = oid.native, oid.dotted
    except Exception:
        return "an unreadable algorithm"
    return dotted if name == dotted else f"{name} ({dotted})"


def _subject_text(subject: object) -> str:
    """A printable rendering of the subject for logs; never raises."""
    try:
        text = str(subject.human_friendly)  # type: ignore[attr-defined]
    except Exception:
        return "<unreadable subject>"
    printable = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    if len(printable) > _SUBJECT_TEXT_MAX:
        printable = printable[: _SUBJECT_TEXT_MAX - 3] + "..."
    return printable


def _short(exc: BaseException) -> str:
    """One printable line of a library's error, for a message a human reads."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]

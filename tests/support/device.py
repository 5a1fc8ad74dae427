"""A Windows 10/11 device emulator built on winmdm.protocol.

It knows only the discovery URL; every other URL comes from the server's answers. It checks the
provisioning document the way Windows does: thumbprints, chain, EKU, key match, stores.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from winmdm.protocol import discovery, provisioning, soap, wstep, xcep
from winmdm.protocol import namespaces as ns

SOAP_HEADERS = {"Content-Type": "application/soap+xml; charset=utf-8", "User-Agent": "ENROLLClient"}
HASHES = {"2.16.840.1.101.3.4.2.1": hashes.SHA256(), "1.3.14.3.2.29": hashes.SHA1()}


_KEYS: dict[int, list[rsa.RSAPrivateKey]] = {}
_NEXT: dict[int, int] = {}
_POOL = 16


def device_key(size: int) -> rsa.RSAPrivateKey:
    """A key pair as Windows makes for its CSR. Taken in turn from a few made once per test
    process (RSA generation is most of an enrollment's cost, and which key a PC holds is no part
    of the protocol); two calls in a row never give the same key."""
    keys = _KEYS.setdefault(size, [])
    turn = _NEXT.get(size, 0)
    _NEXT[size] = (turn + 1) % _POOL
    if len(keys) <= turn:
        keys.append(rsa.generate_private_key(public_exponent=65537, key_size=size))
    return keys[turn]


class EnrollmentRefused(Exception):
    """The server answered with a SOAP fault, as Windows would show it."""

    def __init__(self, fault: soap.Fault, status: int) -> None:
        super().__init__(f"{fault.subcode}: {fault.reason}")
        self.fault = fault
        self.status = status


@dataclass
class Enrolled:
    """What Windows keeps after enrolling."""

    document: provisioning.Characteristic
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    root: x509.Certificate
    management_url: str
    enrollment_url: str
    provider_id: str
    raw_document: bytes


@dataclass
class WindowsDevice:
    device_id: str = field(default_factory=lambda: secrets.token_hex(16).upper())
    hw_dev_id: str | None = field(default_factory=lambda: secrets.token_hex(32).upper())
    device_name: str = "DESKTOP-0C89RC0"
    os_version: str = "10.0.19045.2965"
    enrollment_type: str = "Full"
    not_in_oobe: bool = True
    ux_initiated: bool = True
    request_version: str = "5.0"
    key_size: int = 2048
    enrolled: Enrolled | None = None
    last_discovery: discovery.DiscoverResult | None = None

    # -- the three enrollment calls ---------------------------------------------------------
    def enroll(self, client: httpx.Client, discovery_url: str, *, email: str, token: str) -> Enrolled:
        probe = client.get(discovery_url)
        assert probe.status_code == 200, probe.text
        found = self.discover(client, discovery_url, email=email)
        security = soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_JWT, token.encode()),))
        policy = self.get_policies(client, found.policy_url or found.enrollment_url, security)
        key = device_key(max(self.key_size, 0) or 2048)
        assert key.key_size >= policy.min_key_length
        csr = self.csr(key, HASHES[policy.hash_oid])
        reply = self._post(
            client,
            found.enrollment_url,
            wstep.build_rst(
                message_id=self._message_id(),
                to=found.enrollment_url,
                security=security,
                request=csr,
                context=self.context(),
            ),
        )
        self.enrolled = self._accept(wstep.parse_rstr(reply), key, found.enrollment_url)
        return self.enrolled

    def discover(self, client: httpx.Client, url: str, *, email: str) -> discovery.DiscoverResult:
        body = discovery.build_discover_request(
            email=email, request_version=self.request_version, message_id=self._message_id(), to=url
        )
        result = discovery.parse_discover_response(self._post(client, url, body))
        assert discovery.parse_version(self.request_version) >= result.enrollment_version
        policy_host = urlsplit(result.policy_url or result.enrollment_url).hostname
        assert policy_host == urlsplit(result.enrollment_url).hostname, "MS-MDE2: one host"
        self.last_discovery = result
        return result

    def get_policies(self, client: httpx.Client, url: str, security: soap.Security) -> xcep.PolicyAnswer:
        body = xcep.build_get_policies_request(message_id=self._message_id(), to=url, security=security)
        return xcep.parse_get_policies_response(self._post(client, url, body))

    def renew(self, client: httpx.Client) -> x509.Certificate:
        """ROBO renewal: a PKCS#7 around a new CSR, signed with the current certificate."""
        assert self.enrolled is not None
        key = device_key(2048)
        signed = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(self.csr(key, hashes.SHA256()))
            .add_signer(self.enrolled.certificate, self.enrolled.key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
        url = self.enrolled.enrollment_url
        reply = self._post(
            client,
            url,
            wstep.build_rst(
                message_id=self._message_id(),
                to=url,
                security=soap.Security(),
                request=signed,
                context=self.context(),
                request_type=wstep.RequestType.RENEW,
                value_type=ns.VALUE_TYPES_PKCS7[0],
            ),
        )
        doc = provisioning.parse_document(wstep.parse_rstr(reply))
        cert, _ = self._client_certificate(doc)
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        self.enrolled.certificate, self.enrolled.key = cert, key
        return cert

    # -- what Windows builds ----------------------------------------------------------------
    def csr(self, key: rsa.RSAPrivateKey, algorithm: hashes.HashAlgorithm) -> bytes:
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"{str(uuid.uuid4()).upper()[:30]}!{self.device_id}")]
        )
        return (
            x509.CertificateSigningRequestBuilder()
            .subject_name(subject)
            .sign(key, algorithm)
            .public_bytes(serialization.Encoding.DER)
        )

    def context(self) -> list[tuple[str, str]]:
        items = [
            ("UXInitiated", str(self.ux_initiated).lower()),
            ("Locale", "en-US"),
            ("TargetedUserLoggedIn", "true"),
            ("OSEdition", "48"),
            ("DeviceName", self.device_name),
            ("MAC", "00-0C-29-7B-4E-4C"),
            ("MAC", "00-0C-29-7B-4E-56"),
            ("DeviceID", self.device_id),
            ("EnrollmentType", self.enrollment_type),
            ("DeviceType", "CIMClient_Windows"),
            ("OSVersion", self.os_version),
            ("ApplicationVersion", self.os_version),
            ("NotInOobe", str(self.not_in_oobe).lower()),
            ("RequestVersion", self.request_version),
        ]
        if self.hw_dev_id:
            items.insert(1, ("HWDevID", self.hw_dev_id))
        return items

    # -- checks Windows makes ---------------------------------------------------------------
    def _accept(self, raw: bytes, key: rsa.RSAPrivateKey, enrollment_url: str) -> Enrolled:
        doc = provisioning.parse_document(raw)
        cert, root = self._client_certificate(doc)
        assert cert.public_key().public_numbers() == key.public_key().public_numbers(), "key mismatch"
        app = doc.find("APPLICATION")
        assert app is not None and app.value("APPID") == "w7"
        provider_id = app.value("PROVIDER-ID")
        assert doc.find("DMClient", "Provider", provider_id, "Poll") is not None
        addr = app.value("ADDR")
        assert addr and addr.startswith("https://")
        criteria = app.value("SSLCLIENTCERTSEARCHCRITERIA") or ""
        subject_part, _, stores = criteria.partition("&")
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert unquote(subject_part) == f"Subject=CN={cn}", criteria
        scope = "System" if self.enrollment_type == "Device" else "User"
        assert stores == f"Stores=My%5C{scope}"
        assert {c.value("AAUTHLEVEL") for c in app.all("APPAUTH")} == {"CLIENT", "APPSRV"}
        return Enrolled(doc, cert, key, root, addr, enrollment_url, provider_id, raw)

    def _client_certificate(
        self, doc: provisioning.Characteristic
    ) -> tuple[x509.Certificate, x509.Certificate]:
        roots = doc.find("CertificateStore", "Root", "System")
        assert roots is not None and len(roots.children) == 1
        root_node = roots.children[0]
        root = x509.load_der_x509_certificate(base64.b64decode(root_node.value("EncodedCertificate")))
        assert (
            root_node.type == hashlib.sha1(root.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
        )
        scope = "System" if self.enrollment_type == "Device" else "User"
        store = doc.find("CertificateStore", "My", scope)
        assert store is not None, f"no My/{scope} store"
        assert any(c.type == "PrivateKeyContainer" for c in store.children)
        node = next(c for c in store.children if c.type != "PrivateKeyContainer")
        encoded = node.value("EncodedCertificate") or ""
        assert "\n" not in encoded
        cert = x509.load_der_x509_certificate(base64.b64decode(encoded))
        assert node.type == hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
        cert.verify_directly_issued_by(root)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        return cert, root

    # -- transport --------------------------------------------------------------------------
    def _post(self, client: httpx.Client, url: str, body: bytes) -> bytes:
        response = client.post(url, content=body, headers=SOAP_HEADERS)
        assert response.headers.get("transfer-encoding") != "chunked"
        assert response.headers["content-type"].startswith("application/soap+xml")
        fault = soap.parse_fault(response.content)
        if fault is not None:
            assert response.status_code == 500
            raise EnrollmentRefused(fault, response.status_code)
        assert response.status_code == 200, response.text
        return response.content

    @staticmethod
    def _message_id() -> str:
        return f"urn:uuid:{uuid.uuid4()}"

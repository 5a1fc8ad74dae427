"""Every readable-but-wrong request answers the MS-MDE2 fault that fits (issue 3 item 4).

protocol.md decision 1 and §4: HTTP 500, application/soap+xml, Content-Length, a:Action the
operation's response action, a:RelatesTo the request's MessageID, the precise subcode.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from starlette.testclient import TestClient

from tests.support.device import WindowsDevice
from tests.support.entra_issuer import EntraIssuer
from tests.web.conftest import (
    DISCOVERY,
    ENROLLMENT,
    OTHER_TENANT,
    POLICY,
    SERVER_URL,
    TENANT,
    discover_body,
    jwt_security,
    make_client,
    message_id,
    policies_body,
    post,
    rst_body,
)
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap

WSSE_BST = f"{{{ns.WSSE}}}BinarySecurityToken"


def edit(body: bytes, change: Callable[[etree._Element], None]) -> bytes:
    """Change a built request the way a broken or hostile client would."""
    root = etree.fromstring(body)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def csr_token(root: etree._Element) -> etree._Element:
    return root.find(f".//{{{ns.WST}}}RequestSecurityToken/{WSSE_BST}")


def header_token(root: etree._Element) -> etree._Element:
    return root.find(f".//{{{ns.WSSE}}}Security/{WSSE_BST}")


def rsa_csr(key_size: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return WindowsDevice().csr(key, hashes.SHA256())


# -- s:MessageFormat -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "action"),
    [
        (DISCOVERY, ns.ACTION_DISCOVER_RESPONSE),
        (POLICY, ns.ACTION_GET_POLICIES_RESPONSE),
        (ENROLLMENT, ns.ACTION_RSTRC),
    ],
)
def test_unknown_action_is_a_message_format_fault(client: TestClient, path: str, action: str) -> None:
    mid = message_id()

    def unknown(root):
        root.find(f".//{{{ns.ADDRESSING}}}Action").text = "http://example.com/IEvil/DropTables"

    answer = post(client, path, edit(discover_body(mid), unknown))
    fault = answer.assert_fault("s:MessageFormat", relates_to=mid, action=action)
    assert "action" in fault.reason.lower()


def test_discover_without_email_address(client: TestClient) -> None:
    mid = message_id()

    def drop_email(root):
        email = root.find(f".//{{{ns.DISCOVERY}}}EmailAddress")
        email.getparent().remove(email)

    answer = post(client, DISCOVERY, edit(discover_body(mid), drop_email))
    fault = answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_DISCOVER_RESPONSE)
    assert "EmailAddress" in fault.reason


def test_discover_with_another_body_element(client: TestClient, token) -> None:
    """A GetPolicies body under the Discover action: the content does not fit the action."""
    mid = message_id()
    body = policies_body(mid, jwt_security(token())).replace(
        ns.ACTION_GET_POLICIES.encode(), ns.ACTION_DISCOVER.encode()
    )
    answer = post(client, DISCOVERY, body)
    answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_DISCOVER_RESPONSE)


def test_garbage_base64_in_the_csr(client: TestClient, token) -> None:
    mid = message_id()

    def garbage(root):
        csr_token(root).text = "!!this is *not* base64%%"

    answer = post(client, ENROLLMENT, edit(rst_body(mid, jwt_security(token())), garbage))
    fault = answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "base64" in fault.reason


def test_empty_csr(client: TestClient, token) -> None:
    mid = message_id()

    def empty(root):
        csr_token(root).text = ""

    answer = post(client, ENROLLMENT, edit(rst_body(mid, jwt_security(token())), empty))
    answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_RSTRC)


def test_missing_device_id_context_item(client: TestClient, token) -> None:
    mid = message_id()
    context = [(name, value) for name, value in WindowsDevice().context() if name != "DeviceID"]
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token()), context=context))
    fault = answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "DeviceID" in fault.reason


def test_overlong_device_id(client: TestClient, token) -> None:
    mid = message_id()
    device = WindowsDevice(device_id="D" * 5000)
    body = rst_body(mid, jwt_security(token()), device=device, csr=rsa_csr())
    answer = post(client, ENROLLMENT, body)
    answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "D" * 100 not in answer.response.text


# -- s:CertificateRequest ------------------------------------------------------------------------


def test_csr_with_a_flipped_signature_byte(client: TestClient, token) -> None:
    mid = message_id()
    csr = bytearray(rsa_csr())
    csr[-10] ^= 0x01  # inside the signature BIT STRING, the last field of the CSR
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token()), csr=bytes(csr)))
    fault = answer.assert_fault("s:CertificateRequest", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "signature" in fault.reason.lower()


def test_csr_with_a_1024_bit_key(client: TestClient, token) -> None:
    mid = message_id()
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token()), csr=rsa_csr(1024)))
    fault = answer.assert_fault("s:CertificateRequest", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "1024" in fault.reason and "2048" in fault.reason


def test_csr_with_an_ec_key(client: TestClient, token) -> None:
    mid = message_id()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = WindowsDevice().csr(key, hashes.SHA256())  # type: ignore[arg-type]
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token()), csr=csr))
    answer.assert_fault("s:CertificateRequest", relates_to=mid, action=ns.ACTION_RSTRC)


@pytest.mark.parametrize(
    "der",
    [
        random.Random(5).randbytes(600),
        b"\x30\x82\xff\xff" + b"\x00" * 32,  # a SEQUENCE claiming 64 KiB, then nothing
        b"\x30\x03\x02\x01\x01",  # a well-formed SEQUENCE that is not a CSR
    ],
    ids=["random", "overlong-length", "not-a-csr"],
)
def test_csr_that_is_garbage_der(client: TestClient, token, der: bytes) -> None:
    mid = message_id()
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token()), csr=der))
    answer.assert_fault("s:CertificateRequest", relates_to=mid, action=ns.ACTION_RSTRC)


def test_certificate_instead_of_csr(client: TestClient, token) -> None:
    """A PEM CSR (text, not DER) inside the base64: still not a CSR Windows would send."""
    mid = message_id()
    from cryptography import x509

    pem = x509.load_der_x509_csr(rsa_csr()).public_bytes(serialization.Encoding.PEM)
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token()), csr=pem))
    answer.assert_fault("s:CertificateRequest", relates_to=mid, action=ns.ACTION_RSTRC)


# -- a:InvalidSecurity ---------------------------------------------------------------------------


def test_get_policies_without_security_header(client: TestClient) -> None:
    mid = message_id()
    answer = post(client, POLICY, policies_body(mid, soap.Security()))
    answer.assert_fault("a:InvalidSecurity", relates_to=mid, action=ns.ACTION_GET_POLICIES_RESPONSE)


def test_enrollment_without_security_header(client: TestClient) -> None:
    mid = message_id()
    answer = post(client, ENROLLMENT, rst_body(mid, soap.Security()))
    answer.assert_fault("a:InvalidSecurity", relates_to=mid, action=ns.ACTION_RSTRC)


@pytest.mark.parametrize(
    ("path", "action"), [(POLICY, ns.ACTION_GET_POLICIES_RESPONSE), (ENROLLMENT, ns.ACTION_RSTRC)]
)
def test_unreadable_security_token(client: TestClient, token, path: str, action: str) -> None:
    mid = message_id()
    security = jwt_security(token())
    body = policies_body(mid, security) if path == POLICY else rst_body(mid, security)

    def garble(root):
        header_token(root).text = "%%% not base64 at all %%%"

    answer = post(client, path, edit(body, garble))
    answer.assert_fault("a:InvalidSecurity", relates_to=mid, action=action)


def test_username_token_without_name(client: TestClient) -> None:
    mid = message_id()
    body = rst_body(mid, soap.Security(username=soap.UsernameToken(" ", "secret")))
    answer = post(client, ENROLLMENT, body)
    answer.assert_fault("a:InvalidSecurity", relates_to=mid, action=ns.ACTION_RSTRC)


# -- s:Authentication ----------------------------------------------------------------------------


def test_username_token_is_refused(client: TestClient) -> None:
    mid = message_id()
    body = rst_body(mid, soap.Security(username=soap.UsernameToken("alice@corp.example", "hunter2")))
    answer = post(client, ENROLLMENT, body)
    fault = answer.assert_fault("s:Authentication", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "hunter2" not in answer.response.text
    assert "username" in fault.reason.lower()


@pytest.mark.parametrize(
    ("path", "action"), [(POLICY, ns.ACTION_GET_POLICIES_RESPONSE), (ENROLLMENT, ns.ACTION_RSTRC)]
)
def test_expired_token(client: TestClient, token, path: str, action: str) -> None:
    mid = message_id()
    jwt = token(issued_at=datetime.now(UTC) - timedelta(hours=3), lifetime=timedelta(hours=1))
    security = jwt_security(jwt)
    body = policies_body(mid, security) if path == POLICY else rst_body(mid, security)
    answer = post(client, path, body)
    fault = answer.assert_fault("s:Authentication", relates_to=mid, action=action)
    assert "expired" in fault.reason.lower()
    assert jwt not in answer.response.text


def test_token_of_another_tenant(client: TestClient, token) -> None:
    mid = message_id()
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(token(tenant_id=OTHER_TENANT))))
    fault = answer.assert_fault("s:Authentication", relates_to=mid, action=ns.ACTION_RSTRC)
    assert "tenant" in fault.reason.lower()


def test_token_for_another_audience(client: TestClient, token) -> None:
    mid = message_id()
    jwt = token(audience="https://someone-else.example")
    answer = post(client, POLICY, policies_body(mid, jwt_security(jwt)))
    answer.assert_fault("s:Authentication", relates_to=mid, action=ns.ACTION_GET_POLICIES_RESPONSE)


def test_token_signed_by_a_stranger(client: TestClient, entra: EntraIssuer) -> None:
    mid = message_id()
    jwt = entra.token_signed_by_stranger(tenant_id=TENANT, audience=SERVER_URL)
    answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(jwt)))
    answer.assert_fault("s:Authentication", relates_to=mid, action=ns.ACTION_RSTRC)


@pytest.mark.parametrize(
    "data",
    [b"eyJnot-a-jwt", b"eyJ" + bytes(range(256)), b"eyJhbGciOiJub25lIn0.e30."],
    ids=["text", "binary", "alg-none"],
)
def test_unreadable_jwt(client: TestClient, data: bytes) -> None:
    mid = message_id()
    security = soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_JWT, data),))
    answer = post(client, ENROLLMENT, rst_body(mid, security))
    answer.assert_fault("s:Authentication", relates_to=mid, action=ns.ACTION_RSTRC)


def test_federated_token_not_issued_here(client: TestClient) -> None:
    mid = message_id()
    value_type = ns.VALUE_TYPE_USER_TOKEN
    value_type = value_type[0] if isinstance(value_type, tuple) else value_type
    security = soap.Security(tokens=(soap.BinarySecurityToken(value_type, b"opaque-wresult"),))
    answer = post(client, ENROLLMENT, rst_body(mid, security))
    answer.assert_fault("s:Authentication", relates_to=mid, action=ns.ACTION_RSTRC)


# -- s:EnrollmentServer --------------------------------------------------------------------------


@pytest.fixture
def outage(tmp_path) -> Iterator[tuple[TestClient, EntraIssuer]]:
    """Its own issuer and app, so the shared app's key cache is not involved."""
    with EntraIssuer() as issuer:
        client, close = make_client(tmp_path / "data", issuer.jwks_url)
        with client:
            yield client, issuer
        close()


@pytest.mark.parametrize(("status", "body"), [(503, b"down for maintenance"), (200, b"<html>")])
def test_jwks_endpoint_down(outage, status: int, body: bytes) -> None:
    client, issuer = outage
    issuer.respond_with(status, body)
    jwt = issuer.token(tenant_id=TENANT, audience=SERVER_URL)
    for path, action in ((POLICY, ns.ACTION_GET_POLICIES_RESPONSE), (ENROLLMENT, ns.ACTION_RSTRC)):
        mid = message_id()
        security = jwt_security(jwt)
        request = policies_body(mid, security) if path == POLICY else rst_body(mid, security)
        answer = post(client, path, request)
        answer.assert_fault("s:EnrollmentServer", relates_to=mid, action=action)
    assert issuer.jwks_requests >= 1


def test_jwks_endpoint_gone(tmp_path) -> None:
    """Nothing listens at the JWKS URL any more: a connection error, not a traceback."""
    issuer = EntraIssuer().start()
    jwt = issuer.token(tenant_id=TENANT, audience=SERVER_URL)
    jwks_url = issuer.jwks_url
    issuer.close()
    client, close = make_client(tmp_path / "data", jwks_url)
    with client:
        mid = message_id()
        answer = post(client, ENROLLMENT, rst_body(mid, jwt_security(jwt)))
    close()
    answer.assert_fault("s:EnrollmentServer", relates_to=mid, action=ns.ACTION_RSTRC)


def test_base64_helper_round_trips_the_token(token) -> None:
    """Guard for the tests above: the builder carries the JWT the way Windows does."""
    jwt = token()
    body = policies_body(message_id(), jwt_security(jwt))
    root = etree.fromstring(body)
    assert base64.b64decode(header_token(root).text) == jwt.encode()

"""An in-process winmdm app, a real local Entra issuer, and helpers to send Windows-shaped requests.

The app and the issuer are shared by every test of tests/web, so the abuse accumulates on one
app instance and the last test proves a good device still enrolls afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from tests.support.device import SOAP_HEADERS, WindowsDevice
from tests.support.entra_issuer import EntraIssuer
from tests.support.seeds import seed_data_dir
from winmdm.config import load_config
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, wstep, xcep
from winmdm.protocol.discovery import build_discover_request
from winmdm.runtime import build
from winmdm.web.app import create_app

TENANT = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"
OTHER_TENANT = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
SERVER_URL = "https://mdm.test:8443"
DISCOVERY = "/EnrollmentServer/Discovery.svc"
POLICY = "/EnrollmentServer/Policy.svc"
ENROLLMENT = "/EnrollmentServer/Enrollment.svc"
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"


def message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


@dataclass
class Answer:
    """A response read the way Windows reads a fault, plus the checks every fault test makes."""

    response: httpx.Response

    @property
    def fault(self) -> soap.Fault:
        fault = soap.parse_fault(self.response.content)
        assert fault is not None, self.response.text
        return fault

    def assert_no_trace(self) -> None:
        text = self.response.content.decode("utf-8", errors="replace")
        assert "Traceback" not in text
        assert 'File "' not in text

    def assert_fault(self, subcode: str, *, relates_to: str | None, action: str) -> soap.Fault:
        """HTTP 500, SOAP content type, Content-Length, the subcode, RelatesTo and Action."""
        r = self.response
        self.assert_no_trace()
        assert r.status_code == 500, (r.status_code, r.text)
        assert r.headers["content-type"] == SOAP_CONTENT_TYPE
        assert r.headers.get("transfer-encoding") != "chunked"
        assert int(r.headers["content-length"]) == len(r.content)
        fault = self.fault
        assert fault.subcode == subcode, fault
        assert fault.relates_to == relates_to
        assert fault.reason
        assert action_of(r.content) == action
        return fault

    def assert_plain(self, status: int) -> str:
        """A 4xx for bodies that are not SOAP at all: text/plain with a message."""
        r = self.response
        self.assert_no_trace()
        assert r.status_code == status, (r.status_code, r.text)
        assert r.headers["content-type"].startswith("text/plain")
        assert r.text.strip()
        return r.text


def action_of(body: bytes) -> str | None:
    from winmdm.protocol import xml

    return xml.text(xml.path(xml.parse(body), "Header", "Action"))


@pytest.fixture(scope="session")
def entra() -> Iterator[EntraIssuer]:
    with EntraIssuer() as issuer:
        yield issuer


def make_client(data_dir: Path, jwks_url: str) -> tuple[TestClient, Callable[[], None]]:
    env = {
        "WINMDM_DATA_DIR": str(seed_data_dir(data_dir)),
        "WINMDM_SERVER_URL": SERVER_URL,
        "WINMDM_ENTRA_TENANT_IDS": TENANT,
        "WINMDM_ENTRA_JWKS_URL": jwks_url,
    }
    runtime = build(load_config(env), with_tls=False)
    client = TestClient(create_app(runtime), base_url=SERVER_URL, raise_server_exceptions=False)
    return client, runtime.close


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory, entra: EntraIssuer) -> Iterator[TestClient]:
    """The one app instance every hostile and fault test hits."""
    test_client, close = make_client(tmp_path_factory.mktemp("web") / "data", entra.jwks_url)
    with test_client:
        yield test_client
    close()


@pytest.fixture
def token(entra: EntraIssuer) -> Callable[..., str]:
    def make(**kwargs) -> str:
        kwargs.setdefault("tenant_id", TENANT)
        kwargs.setdefault("audience", SERVER_URL)
        return entra.token(**kwargs)

    return make


def jwt_security(jwt: str) -> soap.Security:
    return soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_JWT, jwt.encode()),))


def post(client: TestClient, path: str, body, **headers: str) -> Answer:
    sent = {**SOAP_HEADERS, **headers}
    return Answer(client.post(path, content=body, headers=sent))


def discover_body(mid: str, **kwargs) -> bytes:
    kwargs.setdefault("email", "alice@corp.example")
    kwargs.setdefault("request_version", "5.0")
    return build_discover_request(message_id=mid, to=SERVER_URL + DISCOVERY, **kwargs)


def policies_body(mid: str, security: soap.Security) -> bytes:
    return xcep.build_get_policies_request(message_id=mid, to=SERVER_URL + POLICY, security=security)


def rst_body(
    mid: str,
    security: soap.Security,
    *,
    csr: bytes | None = None,
    device: WindowsDevice | None = None,
    context: list[tuple[str, str]] | None = None,
) -> bytes:
    device = device or WindowsDevice()
    if csr is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        csr = device.csr(key, hashes.SHA256())
    return wstep.build_rst(
        message_id=mid,
        to=SERVER_URL + ENROLLMENT,
        security=security,
        request=csr,
        context=device.context() if context is None else context,
    )

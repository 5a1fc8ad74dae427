"""Discovery vectors: every request parsed, answered, validated against MS-MDE2 Appendix A."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from tests.vectors import SCHEMAS, family, vector
from winmdm.protocol import discovery, soap, xml
from winmdm.protocol.discovery import AuthPolicy, DiscoverResult

REQUESTS = [v for v in family("discovery") if "request" in v]
RESPONSES = [v for v in family("discovery") if "response" in v]
SCHEMA = etree.XMLSchema(etree.parse(str(SCHEMAS / "ms-mde2-discovery.xsd")))


def _validate_body(data: bytes) -> xml.Element:
    root = xml.parse(data)
    body_child = next(xml.children(xml.child(root, "Body")))
    SCHEMA.assertValid(etree.ElementTree(body_child))
    return root


@pytest.mark.parametrize("name", REQUESTS)
def test_request_vectors_parse(name: str) -> None:
    request = discovery.parse_discover(soap.parse_envelope(vector(name)))
    assert request.email == "user@contoso.com"
    assert request.message_id == "urn:uuid: 748132ec-a575-4329-b01b-6171a9cf8478"
    assert request.to == "https://ENROLLTEST.CONTOSO.COM/EnrollmentServer/Discovery.svc"
    assert request.request_version in (Decimal("3.0"), Decimal("5.0"))
    expected = {
        "certificate": (AuthPolicy.CERTIFICATE,),
        "federated": (AuthPolicy.FEDERATED,),
        "onpremise": (AuthPolicy.ON_PREMISE,),
    }
    kind = next((k for k in expected if k in name), None)
    if kind:
        assert request.auth_policies == expected[kind]
    else:
        assert request.auth_policies == (AuthPolicy.ON_PREMISE, AuthPolicy.FEDERATED)


@pytest.mark.parametrize("name", RESPONSES)
def test_our_response_matches_vector_shape(name: str) -> None:
    theirs = discovery.parse_discover_response(vector(name))
    ours_bytes = discovery.build_discover_response(
        DiscoverResult(
            auth_policy=theirs.auth_policy,
            enrollment_version=theirs.enrollment_version,
            enrollment_url=theirs.enrollment_url,
            policy_url=theirs.policy_url,
            authentication_url=theirs.authentication_url,
        ),
        relates_to="urn:uuid: 748132ec-a575-4329-b01b-6171a9cf8478",
        activity_id="d9eb2fdd-e38a-46ee-bd93-aea9dc86a3b8",
    )
    _validate_body(ours_bytes)
    assert discovery.parse_discover_response(ours_bytes) == theirs
    their_root, our_root = xml.parse(vector(name)), xml.parse(ours_bytes)
    for part in ("Action", "RelatesTo", "ActivityId"):
        assert xml.text(xml.path(our_root, "Header", part)) == xml.text(xml.path(their_root, "Header", part))
    their_fields = {xml.local(e) for e in xml.path(their_root, "Body", "DiscoverResponse", "DiscoverResult")}
    our_fields = {xml.local(e) for e in xml.path(our_root, "Body", "DiscoverResponse", "DiscoverResult")}
    assert our_fields == their_fields


@pytest.mark.parametrize(
    ("client", "expected"),
    [("3.0", "3.0"), ("4.0", "4.0"), ("5.0", "5.0"), ("6.0", "5.0"), ("9.0", "5.0"), ("5.5", "5.0")],
)
def test_version_never_above_client(client: str, expected: str) -> None:
    agreed = discovery.negotiate_version(discovery.parse_version(client), Decimal("5.0"))
    assert discovery.format_version(agreed) == expected


def test_namespace_with_and_without_trailing_slash() -> None:
    for namespace in (
        "http://schemas.microsoft.com/windows/management/2012/01/enrollment",
        "http://schemas.microsoft.com/windows/management/2012/01/enrollment/",
    ):
        data = discovery.build_discover_request(
            email="alice@corp.example",
            request_version="6.0",
            message_id="urn:uuid:1",
            to="https://x/d",
            namespace=namespace,
        )
        assert discovery.parse_discover(soap.parse_envelope(data)).request_version == Decimal("6.0")


@pytest.mark.parametrize("bad", ["five", "NaN", "-1", "Infinity", "1e9"])
def test_bad_request_version(bad: str) -> None:
    data = discovery.build_discover_request(
        email="alice@corp.example", request_version=bad, message_id="urn:uuid:1", to="https://x/d"
    )
    with pytest.raises(discovery.MalformedMessage):
        discovery.parse_discover(soap.parse_envelope(data))

"""Policy, enrollment, fault and provisioning vectors at the protocol level (no services)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from lxml import etree

from tests.vectors import SCHEMAS, family, vector
from winmdm.errors import HostileInput, InvalidSecurity, MalformedMessage
from winmdm.protocol import namespaces as ns
from winmdm.protocol import provisioning, soap, wstep, xcep, xml
from winmdm.protocol.soap import FaultCode, FaultDetailType

XCEP_SCHEMA = etree.XMLSchema(etree.parse(str(SCHEMAS / "ms-xcep.xsd")))
POLICY_REQUESTS = [v for v in family("policy") if "request" in v]
RST_REQUESTS = [v for v in family("enroll") if "rst_request" in v]
PLACEHOLDER = "B64EncodedSampleBinarySecurityToken"


def with_valid_token(data: bytes) -> bytes:
    """Vectors carry a non-base64 placeholder token; substitute a valid one (vectors/README.md)."""
    return data.replace(PLACEHOLDER.encode() + b'"', PLACEHOLDER.encode()).replace(
        PLACEHOLDER.encode(), base64.b64encode(b"eyJ0eXAiOiJKV1QifQ.e30.c2ln")
    )


@pytest.mark.parametrize("name", POLICY_REQUESTS)
def test_policy_requests_parse(name: str) -> None:
    raw = vector(name)
    env = soap.parse_envelope(with_valid_token(raw))
    assert env.action == ns.ACTION_GET_POLICIES
    assert env.message_id == "urn:uuid:72048B64-0F19-448F-8C2E-B4C661860AA0"
    xcep.parse_get_policies(env)
    if "onpremise" in name:
        assert env.security.username is not None
        assert env.security.username.username == "user@contoso.com"
        assert env.security.username.password
    else:
        assert env.security.tokens and env.security.tokens[0].data.startswith(b"eyJ")
    if PLACEHOLDER.encode() in raw:
        # As sent, the placeholder is not base64: the security header cannot be read.
        with pytest.raises(InvalidSecurity):
            soap.parse_envelope(raw)


def test_policy_response_validates_and_matches_vectors() -> None:
    ours = xcep.build_get_policies_response(
        xcep.PolicyTerms(common_name="winmdm device", validity_seconds=31536000, renewal_seconds=3628800),
        relates_to="urn:uuid:72048B64-0F19-448F-8C2E-B4C661860AA0",
        activity_id="a",
    )
    root = xml.parse(ours)
    body = xml.path(root, "Body", "GetPoliciesResponse")
    XCEP_SCHEMA.assertValid(etree.ElementTree(body))
    answer = xcep.parse_get_policies_response(ours)
    assert answer.min_key_length == 2048
    assert answer.hash_oid == "2.16.840.1.101.3.4.2.1"
    for name in ("policy/getpolicies_response.xml", "policy/mde2_getpolicies_response.xml"):
        theirs = xml.path(xml.parse(vector(name)), "Body", "GetPoliciesResponse")
        their_attrs = xml.path(theirs, "response", "policies", "policy", "attributes")
        our_attrs = xml.path(body, "response", "policies", "policy", "attributes")
        assert [xml.local(e) for e in our_attrs] == [xml.local(e) for e in their_attrs]
        assert xcep.parse_get_policies_response(vector(name)).min_key_length == 2048


def test_attestation_policy_vector_is_read() -> None:
    answer = xcep.parse_get_policies_response(
        vector("policy/mde2_getpolicies_response_azure_attestation.xml")
    )
    assert answer.min_key_length == 2048


@pytest.mark.parametrize("name", RST_REQUESTS)
def test_rst_requests_parse(name: str) -> None:
    raw = vector(name)
    data = with_valid_token(raw).replace(
        b"DER format PKCS#10 certificate request in Base64 encoding Insterted Here",
        base64.b64encode(b"\x30\x03\x02\x01\x00"),
    )
    rst = wstep.parse_rst(soap.parse_envelope(data))
    assert rst.request_type is wstep.RequestType.ISSUE
    assert rst.value_type == ns.VALUE_TYPE_PKCS10
    assert rst.context.get("DeviceID") in (
        "7BA748C8-703E-4DF2-A74A-92984117346A",
        "DB257C3A08778F4FB61E2749066C1F27",
    )
    assert rst.context.get("EnrollmentType") == "Full"
    assert len(rst.context.get_all("MAC")) == 2
    assert rst.context.get("devicename") == rst.context.get("DeviceName")
    if "captured" in name:
        assert rst.context.get_bool("NotInOobe") is False
        assert rst.context.get_bool("UXInitiated") is False
        assert (
            rst.context.get("HWDevID") == "BF2D12A95AE42E47D58465E9A71336CAF33FCCAD3088F140F4D50B371FB2256F"
        )
        assert rst.request[:2] == b"\x30\x82"  # the genuine DER CSR
    if "onpremise" in name:
        assert rst.security.username is not None
        assert rst.security.username.password == "mypassword"  # whitespace stripped
    else:
        assert rst.security.tokens


def test_an_rst_without_additional_context_has_none_and_no_crash() -> None:
    """Found by the fuzzer (tests/support/fuzz.py): a missing AdditionalContext was a TypeError."""
    data = vector("enroll/rst_request_win10_22h2_captured.xml")
    start = data.index(b"<ac:AdditionalContext")
    end = data.index(b"</ac:AdditionalContext>") + len(b"</ac:AdditionalContext>")
    rst = wstep.parse_rst(soap.parse_envelope(data[:start] + data[end:]))
    assert rst.context.items == () and rst.context.get("DeviceID") is None


def test_rstr_matches_vector_shape() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    ours = wstep.build_rstr(b"<wap-provisioningdoc/>", relates_to="urn:uuid:1", activity_id="x", now=now)
    assert wstep.parse_rstr(ours) == b"<wap-provisioningdoc/>"
    for name in ("enroll/rstr_response.xml", "enroll/mde2_rstr_response.xml"):
        theirs = xml.parse(vector(name))
        our_root = xml.parse(ours)

        def shape(root: xml.Element) -> list[str]:
            return [xml.local(e) for e in root.iter() if isinstance(e.tag, str) and e is not root]

        body_shape = shape(xml.child(our_root, "Body"))
        assert body_shape == shape(xml.child(theirs, "Body"))
        assert (
            xml.text(xml.path(our_root, "Header", "Security", "Timestamp", "Created"))
            == "2026-11-23T12:00:00.000Z"
        )
        assert (
            xml.text(xml.path(our_root, "Header", "Security", "Timestamp", "Expires"))
            == "2026-11-23T12:05:00.000Z"
        )
        assert xml.text(xml.path(our_root, "Header", "Action")) == xml.text(
            xml.path(theirs, "Header", "Action")
        )


@pytest.mark.parametrize("name", family("faults"))
def test_faults_match_vector_shape(name: str) -> None:
    theirs = xml.parse(vector(name))
    detail = FaultDetailType.DEVICE_CAP_REACHED if "detail" in name else None
    reason = xml.text(xml.path(theirs, "Body", "Fault", "Reason", "Text"))
    ours = soap.build_fault(
        FaultCode.AUTHORIZATION,
        reason,
        action=ns.ACTION_RSTRC,
        relates_to="urn:uuid:0d5a1441-5891-453b-becf-a2e5f6ea3749",
        activity_id="2493ee37-beeb-4cb9-833c-cadde9067645",
        detail=detail,
    )
    our_root = xml.parse(ours)
    for path in (("Header", "Action"), ("Header", "RelatesTo"), ("Header", "ActivityId")):
        assert xml.text(xml.path(our_root, *path)) == xml.text(xml.path(theirs, *path))
    assert soap.parse_fault(ours) == soap.parse_fault(vector(name)).__class__(
        subcode="s:Authorization",
        reason=reason,
        relates_to="urn:uuid:0d5a1441-5891-453b-becf-a2e5f6ea3749",
        detail_type="DeviceCapReached" if detail else None,
    )
    if detail:
        their_detail = xml.path(theirs, "Body", "Fault", "Detail")
        our_detail = xml.path(our_root, "Body", "Fault", "Detail")
        their_names = [xml.local(e).lower() for e in their_detail.iter()]
        our_names = [xml.local(e).lower() for e in our_detail.iter()]
        assert our_names == their_names
        assert xml.text(
            xml.path(theirs, "Body", "Fault", "Detail", "deviceenrollmentserviceerror", "errortype")
        ).lower() == ("devicecapreached")


@pytest.mark.parametrize("name", family("provisioning"))
def test_provisioning_vectors_are_read(name: str) -> None:
    doc = provisioning.parse_document(vector(name))
    app = doc.find("APPLICATION")
    assert app is not None and app.value("APPID") == "w7"
    provider_id = app.value("PROVIDER-ID")
    assert doc.find("DMClient", "Provider", provider_id, "Poll") is not None
    if "mam" not in name:
        assert doc.find("CertificateStore", "Root", "System") is not None
        scope = "System" if "device" in name else "User"
        assert doc.find("CertificateStore", "My", scope, "PrivateKeyContainer") is not None
        criteria = app.value("SSLCLIENTCERTSEARCHCRITERIA")
        assert criteria.startswith("Subject=") and "Stores=My%5CUser" in criteria


def test_search_criteria_escapes_once() -> None:
    assert provisioning.search_criteria("DB257C3A", False) == "Subject=CN%3DDB257C3A&Stores=My%5CUser"
    assert provisioning.search_criteria("DB257C3A", True).endswith("&Stores=My%5CSystem")


@pytest.mark.parametrize(
    "text",
    ["3x5,15x8", "3x0,15x8,480", "0x5,15x8,480", "3x5,15x8,0", "a,b,c", "3x5,15x8,480x2", "3x5,15x8,99999"],
)
def test_poll_schedule_constraints(text: str) -> None:
    with pytest.raises(ValueError):
        provisioning.PollSchedule.parse(text)


def test_poll_schedule_default_is_intunes() -> None:
    schedule = provisioning.PollSchedule()
    assert str(schedule) == "3x5,15x8,480"
    assert provisioning.PollSchedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", MalformedMessage),
        (b"<s:Envelope", MalformedMessage),
        (b"\xff\xfe\x00garbage", MalformedMessage),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', HostileInput),
        (b'<!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd"><x/>', HostileInput),
        (b"<a>" * 200 + b"</a>" * 200, (HostileInput, MalformedMessage)),
        (b"<x>" + b"a" * (2 * 1024 * 1024) + b"</x>", HostileInput),
    ],
)
def test_hostile_or_broken_xml(data: bytes, error: type) -> None:
    with pytest.raises(error):
        xml.parse(data)


def test_non_soap_root_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="not a SOAP envelope"):
        soap.parse_envelope(b"<Envelope/>")

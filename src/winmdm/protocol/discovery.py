"""MS-MDE2 §3.1 Discover: which authentication, and where the policy and enrollment services are."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from lxml import etree

from winmdm.errors import MalformedMessage
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, xml


class AuthPolicy(enum.StrEnum):
    ON_PREMISE = "OnPremise"
    FEDERATED = "Federated"
    CERTIFICATE = "Certificate"


@dataclass(frozen=True, slots=True)
class DiscoverRequest:
    message_id: str | None
    to: str | None
    email: str
    request_version: Decimal
    device_type: str | None
    application_version: str | None
    os_edition: str | None
    auth_policies: tuple[AuthPolicy, ...]


@dataclass(frozen=True, slots=True)
class DiscoverResult:
    auth_policy: AuthPolicy
    enrollment_version: Decimal
    enrollment_url: str
    policy_url: str | None
    authentication_url: str | None = None


def parse_discover(envelope: soap.Envelope) -> DiscoverRequest:
    """Read a Discover body, tolerant of the namespace's trailing slash and of element order."""
    body = envelope.body
    if xml.local(body) != "Discover" or xml.namespace(body).rstrip("/") != ns.DISCOVERY:
        raise MalformedMessage("expected a Discover request in the SOAP Body")
    request = xml.child(body, "request")
    if request is None:
        raise MalformedMessage("Discover has no request element")
    email = xml.text(xml.child(request, "EmailAddress"))
    if not email:
        raise MalformedMessage("Discover request has no EmailAddress")
    policies_el = xml.child(request, "AuthPolicies")
    names = [xml.text(p) for p in xml.children(policies_el, "AuthPolicy")] if policies_el is not None else []
    if policies_el is not None and not names and xml.text(policies_el):
        names = [
            xml.text(policies_el)
        ]  # MS-MDE2's certificate sample: <AuthPolicies>Certificate</AuthPolicies>
    policies = []
    for name in names:
        policy = next((p for p in AuthPolicy if p.value.lower() == (name or "").lower()), None)
        if policy is not None and policy not in policies:
            policies.append(policy)
    return DiscoverRequest(
        message_id=envelope.message_id,
        to=envelope.to,
        email=email,
        request_version=parse_version(xml.text(xml.child(request, "RequestVersion"))),
        device_type=xml.text(xml.child(request, "DeviceType")) or None,
        application_version=xml.text(xml.child(request, "ApplicationVersion")) or None,
        os_edition=xml.text(xml.child(request, "OSEdition")) or None,
        auth_policies=tuple(policies),
    )


def parse_version(value: str | None) -> Decimal:
    """RequestVersion is an xsd:decimal; absent means 1.0 (the first protocol version)."""
    if not value:
        return Decimal("1.0")
    try:
        version = Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"RequestVersion {value!r} is not a decimal number") from None
    if not version.is_finite() or version <= 0 or version > 100:
        raise MalformedMessage(f"RequestVersion {value!r} is out of range")
    return version


def negotiate_version(client: Decimal, server_max: Decimal) -> Decimal:
    """Echo no version higher than the client's (MS-MDE2 §3.1.4.1.1.2)."""
    return min(client, server_max)


def format_version(version: Decimal) -> str:
    text = format(version.normalize(), "f")
    return text if "." in text else text + ".0"


def build_discover_response(
    result: DiscoverResult, *, relates_to: str | None, activity_id: str, soap_ns: str = ns.SOAP12
) -> bytes:
    response = etree.Element(f"{{{ns.DISCOVERY}}}DiscoverResponse", nsmap={None: ns.DISCOVERY})
    res = etree.SubElement(response, f"{{{ns.DISCOVERY}}}DiscoverResult")
    etree.SubElement(res, f"{{{ns.DISCOVERY}}}AuthPolicy").text = result.auth_policy.value
    etree.SubElement(res, f"{{{ns.DISCOVERY}}}EnrollmentVersion").text = format_version(
        result.enrollment_version
    )
    if result.policy_url:
        etree.SubElement(res, f"{{{ns.DISCOVERY}}}EnrollmentPolicyServiceUrl").text = result.policy_url
    etree.SubElement(res, f"{{{ns.DISCOVERY}}}EnrollmentServiceUrl").text = result.enrollment_url
    if result.authentication_url:
        etree.SubElement(res, f"{{{ns.DISCOVERY}}}AuthenticationServiceUrl").text = result.authentication_url
    return soap.build_response(
        response,
        action=ns.ACTION_DISCOVER_RESPONSE,
        relates_to=relates_to,
        activity_id=activity_id,
        soap_ns=soap_ns,
    )


def parse_discover_response(data: bytes) -> DiscoverResult:
    """Read a DiscoverResponse the way Windows does (the emulator uses it)."""
    root = xml.parse(data)
    result = xml.path(root, "Body", "DiscoverResponse", "DiscoverResult")
    if result is None:
        raise MalformedMessage("no DiscoverResult in the response")
    policy = xml.text(xml.child(result, "AuthPolicy")) or ""
    enrollment_url = xml.text(xml.child(result, "EnrollmentServiceUrl"))
    if not enrollment_url:
        raise MalformedMessage("DiscoverResult has no EnrollmentServiceUrl")
    return DiscoverResult(
        auth_policy=AuthPolicy(policy),
        enrollment_version=parse_version(xml.text(xml.child(result, "EnrollmentVersion"))),
        enrollment_url=enrollment_url,
        policy_url=xml.text(xml.child(result, "EnrollmentPolicyServiceUrl")) or None,
        authentication_url=xml.text(xml.child(result, "AuthenticationServiceUrl")) or None,
    )


def build_discover_request(
    *,
    email: str,
    request_version: str,
    message_id: str,
    to: str,
    auth_policies: tuple[AuthPolicy, ...] = (AuthPolicy.ON_PREMISE, AuthPolicy.FEDERATED),
    os_edition: int = 48,
    application_version: str = "10.0.19045.2965",
    namespace: str = ns.DISCOVERY,
) -> bytes:
    """A Discover as real Windows 10/11 sends it (namespace without trailing slash)."""
    discover = etree.Element(f"{{{namespace}}}Discover", nsmap={None: namespace})
    req = etree.SubElement(discover, f"{{{namespace}}}request", nsmap={"i": ns.XSI})
    for name, value in (
        ("EmailAddress", email),
        ("RequestVersion", request_version),
        ("DeviceType", "CIMClient_Windows"),
        ("ApplicationVersion", application_version),
        ("OSEdition", str(os_edition)),
    ):
        etree.SubElement(req, f"{{{namespace}}}{name}").text = value
    policies = etree.SubElement(req, f"{{{namespace}}}AuthPolicies")
    for policy in auth_policies:
        etree.SubElement(policies, f"{{{namespace}}}AuthPolicy").text = policy.value
    return soap.build_request(discover, action=ns.ACTION_DISCOVER, message_id=message_id, to=to)

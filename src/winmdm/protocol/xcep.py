"""MS-XCEP GetPolicies as MS-MDE2 §3.3 uses it: one policy telling Windows how to make its key.

protocol.md decision 2: ask for SHA-256 (OID 2.16.840.1.101.3.4.2.1, hash group 1) and RSA
2048 at least; CSRs signed with SHA-1 are still accepted by the enrollment service.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from winmdm.errors import MalformedMessage
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, xml

SHA256_OID = "2.16.840.1.101.3.4.2.1"
HASH_OID_GROUP = 1


@dataclass(frozen=True, slots=True)
class PolicyTerms:
    """What the one certificate policy says."""

    common_name: str
    validity_seconds: int
    renewal_seconds: int
    min_key_length: int = 2048
    hash_oid: str = SHA256_OID
    hash_oid_name: str = "szOID_NIST_sha256"


def parse_get_policies(envelope: soap.Envelope) -> None:
    """Check the Body is a GetPolicies; its filters carry nothing winmdm acts on."""
    body = envelope.body
    if xml.local(body) != "GetPolicies" or xml.namespace(body) != ns.XCEP:
        raise MalformedMessage("expected a GetPolicies request in the SOAP Body")


def _nil(parent: xml.Element, name: str) -> None:
    el = etree.SubElement(parent, f"{{{ns.XCEP}}}{name}")
    el.set(f"{{{ns.XSI}}}nil", "true")


def _value(parent: xml.Element, name: str, value: str) -> xml.Element:
    el = etree.SubElement(parent, f"{{{ns.XCEP}}}{name}")
    el.text = value
    return el


def build_get_policies_response(
    terms: PolicyTerms, *, relates_to: str | None, activity_id: str, soap_ns: str = ns.SOAP12
) -> bytes:
    """GetPoliciesResponse valid against MS-XCEP §6.2 (the shape of MS-MDE2 §4.2.2)."""
    root = etree.Element(f"{{{ns.XCEP}}}GetPoliciesResponse", nsmap={None: ns.XCEP, "xsi": ns.XSI})
    response = etree.SubElement(root, f"{{{ns.XCEP}}}response")
    _value(response, "policyID", "")
    _nil(response, "policyFriendlyName")
    _nil(response, "nextUpdateHours")
    _nil(response, "policiesNotChanged")
    policies = etree.SubElement(response, f"{{{ns.XCEP}}}policies")
    policy = etree.SubElement(policies, f"{{{ns.XCEP}}}policy")
    _value(policy, "policyOIDReference", "0")
    _nil(policy, "cAs")
    attributes = etree.SubElement(policy, f"{{{ns.XCEP}}}attributes")
    _value(attributes, "commonName", terms.common_name)
    _value(attributes, "policySchema", "3")
    validity = etree.SubElement(attributes, f"{{{ns.XCEP}}}certificateValidity")
    _value(validity, "validityPeriodSeconds", str(terms.validity_seconds))
    _value(validity, "renewalPeriodSeconds", str(terms.renewal_seconds))
    permission = etree.SubElement(attributes, f"{{{ns.XCEP}}}permission")
    _value(permission, "enroll", "true")
    _value(permission, "autoEnroll", "false")
    key = etree.SubElement(attributes, f"{{{ns.XCEP}}}privateKeyAttributes")
    _value(key, "minimalKeyLength", str(terms.min_key_length))
    for name in ("keySpec", "keyUsageProperty", "permissions", "algorithmOIDReference", "cryptoProviders"):
        _nil(key, name)
    revision = etree.SubElement(attributes, f"{{{ns.XCEP}}}revision")
    _value(revision, "majorRevision", "101")
    _value(revision, "minorRevision", "0")
    for name in (
        "supersededPolicies",
        "privateKeyFlags",
        "subjectNameFlags",
        "enrollmentFlags",
        "generalFlags",
    ):
        _nil(attributes, name)
    _value(attributes, "hashAlgorithmOIDReference", "0")
    for name in ("rARequirements", "keyArchivalAttributes", "extensions"):
        _nil(attributes, name)
    _nil(root, "cAs")
    oids = etree.SubElement(root, f"{{{ns.XCEP}}}oIDs")
    oid = etree.SubElement(oids, f"{{{ns.XCEP}}}oID")
    _value(oid, "value", terms.hash_oid)
    _value(oid, "group", str(HASH_OID_GROUP))
    _value(oid, "oIDReferenceID", "0")
    _value(oid, "defaultName", terms.hash_oid_name)
    return soap.build_response(
        root,
        action=ns.ACTION_GET_POLICIES_RESPONSE,
        relates_to=relates_to,
        activity_id=activity_id,
        soap_ns=soap_ns,
    )


@dataclass(frozen=True, slots=True)
class PolicyAnswer:
    """What Windows takes from the policy response: key size and hash algorithm."""

    min_key_length: int
    hash_oid: str


def parse_get_policies_response(data: bytes) -> PolicyAnswer:
    root = xml.parse(data)
    resp = xml.path(root, "Body", "GetPoliciesResponse")
    attributes = xml.path(resp, "response", "policies", "policy", "attributes")
    if resp is None or attributes is None:
        raise MalformedMessage("no policy in the GetPoliciesResponse")
    ref = xml.text(xml.child(attributes, "hashAlgorithmOIDReference"))
    hash_oid = ""
    for oid in xml.children(xml.child(resp, "oIDs"), "oID"):
        if xml.text(xml.child(oid, "oIDReferenceID")) == ref:
            hash_oid = xml.text(xml.child(oid, "value")) or ""
    if not hash_oid:
        raise MalformedMessage("hashAlgorithmOIDReference points to no oID")
    return PolicyAnswer(
        min_key_length=int(xml.text(xml.path(attributes, "privateKeyAttributes", "minimalKeyLength")) or 0),
        hash_oid=hash_oid,
    )


def build_get_policies_request(*, message_id: str, to: str, security: soap.Security) -> bytes:
    root = etree.Element(f"{{{ns.XCEP}}}GetPolicies", nsmap={None: ns.XCEP, "xsi": ns.XSI})
    client = etree.SubElement(root, f"{{{ns.XCEP}}}client")
    _nil(client, "lastUpdate")
    _nil(client, "preferredLanguage")
    _nil(root, "requestFilter")
    return soap.build_request(
        root, action=ns.ACTION_GET_POLICIES, message_id=message_id, to=to, security=security
    )

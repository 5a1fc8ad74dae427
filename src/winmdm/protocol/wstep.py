"""MS-WSTEP RequestSecurityToken as MS-MDE2 §3.4 uses it, and its response (RSTR)."""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from winmdm.errors import MalformedMessage
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, xml


class RequestType(enum.Enum):
    ISSUE = ns.REQUEST_TYPE_ISSUE
    RENEW = ns.REQUEST_TYPE_RENEW


@dataclass(frozen=True, slots=True)
class ContextItems:
    """AdditionalContext: ordered (name, value) pairs; names may repeat (MAC, IMEI)."""

    items: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The first value of `name` (names compared case-insensitively), stripped."""
        wanted = name.lower()
        return next((v for n, v in self.items if n.lower() == wanted), None)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for n, v in self.items if n.lower() == wanted]

    def get_bool(self, name: str) -> bool | None:
        """ "True"/"true"/"1" and "False"/"false"/"0"; anything else is None (unknown)."""
        value = (self.get(name) or "").strip().lower()
        return {"true": True, "1": True, "false": False, "0": False}.get(value)


@dataclass(frozen=True, slots=True)
class RequestSecurityToken:
    message_id: str | None
    to: str | None
    security: soap.Security
    token_type: str
    request_type: RequestType
    value_type: str  # of the body BinarySecurityToken: PKCS10, or PKCS7 for renewal
    request: bytes  # DER of the CSR or of the PKCS#7 renewal request
    context: ContextItems

    @property
    def is_pkcs7(self) -> bool:
        return self.value_type in ns.VALUE_TYPES_PKCS7


def parse_rst(envelope: soap.Envelope) -> RequestSecurityToken:
    body = envelope.body
    if xml.local(body) != "RequestSecurityToken" or xml.namespace(body) != ns.WST:
        raise MalformedMessage("expected a RequestSecurityToken in the SOAP Body")
    token_type = xml.text(xml.child(body, "TokenType")) or ""
    if token_type != ns.TOKEN_TYPE_DEVICE_ENROLLMENT:
        raise MalformedMessage(f"TokenType must be {ns.TOKEN_TYPE_DEVICE_ENROLLMENT}")
    raw_request_type = xml.text(xml.child(body, "RequestType")) or ""
    try:
        request_type = RequestType(raw_request_type)
    except ValueError:
        raise MalformedMessage(f"RequestType {raw_request_type!r} is not Issue or Renew") from None
    bst = xml.child(body, "BinarySecurityToken")
    if bst is None:
        raise MalformedMessage("RequestSecurityToken carries no BinarySecurityToken (the CSR)")
    value_type = xml.attr(bst, "ValueType") or ""
    expected = (ns.VALUE_TYPE_PKCS10, *ns.VALUE_TYPES_PKCS7)
    if value_type not in expected:
        raise MalformedMessage(f"BinarySecurityToken ValueType {value_type!r} is not PKCS10 or PKCS7")
    request = soap.b64decode(xml.text(bst) or "", "the certificate request")
    if not request:
        raise MalformedMessage("the certificate request is empty")
    items = []
    for item in xml.children(xml.child(body, "AdditionalContext"), "ContextItem"):
        name = (xml.attr(item, "Name") or "").strip()
        if name:
            items.append((name, xml.text(xml.child(item, "Value")) or ""))
    return RequestSecurityToken(
        message_id=envelope.message_id,
        to=envelope.to,
        security=envelope.security,
        token_type=token_type,
        request_type=request_type,
        value_type=value_type,
        request=request,
        context=ContextItems(tuple(items)),
    )


def build_rstr(
    provisioning_doc: bytes,
    *,
    relates_to: str | None,
    activity_id: str,
    now: datetime,
    soap_ns: str = ns.SOAP12,
) -> bytes:
    """RequestSecurityTokenResponseCollection carrying the base64 WAP provisioning document."""
    coll = etree.Element(f"{{{ns.WST}}}RequestSecurityTokenResponseCollection", nsmap={None: ns.WST})
    rstr = etree.SubElement(coll, f"{{{ns.WST}}}RequestSecurityTokenResponse")
    etree.SubElement(rstr, f"{{{ns.WST}}}TokenType").text = ns.TOKEN_TYPE_DEVICE_ENROLLMENT
    etree.SubElement(rstr, f"{{{ns.ENROLLMENT}}}DispositionMessage", nsmap={None: ns.ENROLLMENT})
    requested = etree.SubElement(rstr, f"{{{ns.WST}}}RequestedSecurityToken")
    bst = etree.SubElement(requested, f"{{{ns.WSSE}}}BinarySecurityToken", nsmap={None: ns.WSSE})
    bst.set("ValueType", ns.VALUE_TYPE_PROVISION_DOC)
    bst.set("EncodingType", ns.ENCODING_BASE64)
    bst.text = base64.b64encode(provisioning_doc).decode("ascii")
    etree.SubElement(rstr, f"{{{ns.ENROLLMENT}}}RequestID", nsmap={None: ns.ENROLLMENT}).text = "0"
    return soap.build_response(
        coll,
        action=ns.ACTION_RSTRC,
        relates_to=relates_to,
        activity_id=activity_id,
        soap_ns=soap_ns,
        timestamp=now,
    )


def parse_rstr(data: bytes) -> bytes:
    """The provisioning document inside an RSTR (the emulator reads it as Windows does)."""
    root = xml.parse(data)
    rstr = xml.path(root, "Body", "RequestSecurityTokenResponseCollection", "RequestSecurityTokenResponse")
    bst = xml.path(rstr, "RequestedSecurityToken", "BinarySecurityToken")
    if bst is None or xml.attr(bst, "ValueType") != ns.VALUE_TYPE_PROVISION_DOC:
        raise MalformedMessage("no provisioning document in the RSTR")
    return soap.b64decode(xml.text(bst) or "", "the provisioning document")


def build_rst(
    *,
    message_id: str,
    to: str,
    security: soap.Security,
    request: bytes,
    context: Iterable[tuple[str, str]],
    request_type: RequestType = RequestType.ISSUE,
    value_type: str = ns.VALUE_TYPE_PKCS10,
) -> bytes:
    """An RST shaped like Windows 10 22H2's (rst_request_win10_22h2_captured.xml)."""
    rst = etree.Element(
        f"{{{ns.WST}}}RequestSecurityToken", nsmap={"wst": ns.WST, "wsse": ns.WSSE, "ac": ns.AC}
    )
    etree.SubElement(rst, f"{{{ns.WST}}}TokenType").text = ns.TOKEN_TYPE_DEVICE_ENROLLMENT
    etree.SubElement(rst, f"{{{ns.WST}}}RequestType").text = request_type.value
    bst = etree.SubElement(rst, f"{{{ns.WSSE}}}BinarySecurityToken")
    bst.set("ValueType", value_type)
    bst.set("EncodingType", ns.ENCODING_BASE64)
    bst.text = base64.b64encode(request).decode("ascii")
    additional = etree.SubElement(rst, f"{{{ns.AC}}}AdditionalContext")
    for name, value in context:
        item = etree.SubElement(additional, f"{{{ns.AC}}}ContextItem")
        item.set("Name", name)
        etree.SubElement(item, f"{{{ns.AC}}}Value").text = value
    return soap.build_request(rst, action=ns.ACTION_RST, message_id=message_id, to=to, security=security)

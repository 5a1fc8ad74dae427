"""SOAP envelopes of MS-MDE2: request headers, WS-Security tokens, responses and faults.

Faults follow protocol.md decision 1 (SOAP 1.2, subcode precise, RelatesTo the request's
MessageID, detail for the 0x8018001x cases); the HTTP status is the web layer's business.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lxml import etree

from winmdm.errors import InvalidSecurity, MalformedMessage
from winmdm.protocol import namespaces as ns
from winmdm.protocol import xml


class FaultCode(enum.Enum):
    """MS-MDE2 §2.2.10 subcodes, with the HRESULT Windows shows for each (protocol.md §4)."""

    MESSAGE_FORMAT = ("s", "MessageFormat", 0x80180001)
    AUTHENTICATION = ("s", "Authentication", 0x80180002)
    AUTHORIZATION = ("s", "Authorization", 0x80180003)
    CERTIFICATE_REQUEST = ("s", "CertificateRequest", 0x80180004)
    ENROLLMENT_SERVER = ("s", "EnrollmentServer", 0x80180005)
    INTERNAL_SERVICE_FAULT = ("a", "InternalServiceFault", 0x80180006)
    INVALID_SECURITY = ("a", "InvalidSecurity", 0x80180007)

    @property
    def qname(self) -> str:
        return f"{self.value[0]}:{self.value[1]}"

    @property
    def hresult(self) -> int:
        return self.value[2]


class FaultDetailType(enum.StrEnum):
    """DeviceEnrollmentServiceError ErrorType values (protocol.md §4) and their HRESULTs."""

    DEVICE_CAP_REACHED = "DeviceCapReached"  # 0x80180013
    DEVICE_NOT_SUPPORTED = "DeviceNotSupported"  # 0x80180014
    NOT_SUPPORTED = "NotSupported"  # 0x80180015
    NOT_ELIGIBLE_TO_RENEW = "NotEligibleToRenew"  # 0x80180016
    IN_MAINTENANCE = "InMaintenance"  # 0x80180017
    USER_LICENSE = "UserLicense"  # 0x80180018
    INVALID_ENROLLMENT_DATA = "InvalidEnrollmentData"  # 0x80180019
    CUSTOM_SERVER_ERROR = "CustomServerError"  # 0x80180032: s:Reason shown to the user


@dataclass(frozen=True, slots=True)
class UsernameToken:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class BinarySecurityToken:
    value_type: str
    data: bytes  # base64-decoded


@dataclass(frozen=True, slots=True)
class Security:
    """The wsse:Security header: at most one UsernameToken and any BinarySecurityTokens."""

    username: UsernameToken | None = None
    tokens: tuple[BinarySecurityToken, ...] = ()

    @property
    def empty(self) -> bool:
        return self.username is None and not self.tokens


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed request envelope: addressing headers, security, and the first Body child."""

    soap_ns: str
    action: str
    message_id: str | None
    to: str | None
    security: Security
    body: xml.Element = field(repr=False)


class UnreadableSecurity(InvalidSecurity):
    """The WS-Security header cannot be read; carries what the fault must still echo."""

    def __init__(self, message: str, *, soap_ns: str, action: str, message_id: str | None) -> None:
        super().__init__(message)
        self.soap_ns = soap_ns
        self.action = action
        self.message_id = message_id


def b64decode(value: str, what: str) -> bytes:
    """Strict base64 (whitespace allowed) with a message naming the field."""
    cleaned = "".join(value.split())
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage(f"{what} is not valid base64") from None


def parse_envelope(data: bytes, *, max_bytes: int = xml.DEFAULT_MAX_BYTES) -> Envelope:
    root = xml.parse(data, max_bytes=max_bytes)
    if xml.local(root) != "Envelope" or xml.namespace(root) not in (ns.SOAP12, ns.SOAP11):
        raise MalformedMessage("message is not a SOAP envelope")
    header = xml.child(root, "Header")
    body = xml.child(root, "Body")
    first = next(xml.children(body), None) if body is not None else None
    if first is None:
        raise MalformedMessage("SOAP Body is missing or empty")
    action = xml.text(xml.child(header, "Action"))
    if not action:
        raise MalformedMessage("WS-Addressing Action header is missing")
    message_id = xml.text(xml.child(header, "MessageID")) or None
    try:
        security = _parse_security(xml.child(header, "Security"))
    except InvalidSecurity as exc:
        # The a:InvalidSecurity fault still needs RelatesTo and the operation's response action.
        raise UnreadableSecurity(
            exc.message, soap_ns=xml.namespace(root), action=action, message_id=message_id
        ) from None
    return Envelope(
        soap_ns=xml.namespace(root),
        action=action,
        message_id=message_id,
        to=xml.text(xml.child(header, "To")) or None,
        security=security,
        body=first,
    )


def _parse_security(el: xml.Element | None) -> Security:
    if el is None:
        return Security()
    username = None
    ut = xml.child(el, "UsernameToken")
    if ut is not None:
        name = xml.text(xml.child(ut, "Username"))
        if not name:
            raise InvalidSecurity("UsernameToken has no Username")
        username = UsernameToken(name, xml.text(xml.child(ut, "Password")) or "")
    tokens = []
    for bst in xml.children(el, "BinarySecurityToken"):
        value_type = xml.attr(bst, "ValueType") or ""
        raw = xml.text(bst) or ""
        try:
            data = b64decode(raw, "the security token")
        except MalformedMessage as exc:
            raise InvalidSecurity(exc.message) from None
        tokens.append(BinarySecurityToken(value_type, data))
    return Security(username, tuple(tokens))


def _envelope(soap_ns: str, action: str, relates_to: str | None, activity_id: str):
    nsmap = {"s": soap_ns, "a": ns.ADDRESSING}
    env = etree.Element(f"{{{soap_ns}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(env, f"{{{soap_ns}}}Header")
    act = etree.SubElement(header, f"{{{ns.ADDRESSING}}}Action")
    act.set(f"{{{soap_ns}}}mustUnderstand", "1")
    act.text = action
    activity = etree.SubElement(header, f"{{{ns.DIAGNOSTICS}}}ActivityId", nsmap={None: ns.DIAGNOSTICS})
    activity.set("CorrelationId", activity_id)
    activity.text = activity_id
    if relates_to:
        etree.SubElement(header, f"{{{ns.ADDRESSING}}}RelatesTo").text = relates_to
    body = etree.SubElement(env, f"{{{soap_ns}}}Body")
    return env, header, body


def build_response(
    body_child: xml.Element,
    *,
    action: str,
    relates_to: str | None,
    activity_id: str,
    soap_ns: str = ns.SOAP12,
    timestamp: datetime | None = None,
) -> bytes:
    """Wrap a response body; with `timestamp`, add o:Security/u:Timestamp (protocol.md decision 6)."""
    env, header, body = _envelope(soap_ns, action, relates_to, activity_id)
    if timestamp is not None:
        security = etree.SubElement(header, f"{{{ns.WSSE}}}Security", nsmap={"o": ns.WSSE, "u": ns.WSU})
        security.set(f"{{{soap_ns}}}mustUnderstand", "1")
        stamp = etree.SubElement(security, f"{{{ns.WSU}}}Timestamp")
        stamp.set(f"{{{ns.WSU}}}Id", "_0")
        etree.SubElement(stamp, f"{{{ns.WSU}}}Created").text = _iso(timestamp)
        etree.SubElement(stamp, f"{{{ns.WSU}}}Expires").text = _iso(timestamp + timedelta(minutes=5))
    body.append(body_child)
    return xml.serialize(env)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build_fault(
    code: FaultCode,
    reason: str,
    *,
    action: str,
    relates_to: str | None,
    activity_id: str,
    detail: FaultDetailType | None = None,
    soap_ns: str = ns.SOAP12,
) -> bytes:
    """A MS-MDE2 §2.2.10 fault. Always SOAP 1.2 shape; the envelope namespace follows the client."""
    env, _header, body = _envelope(soap_ns, action, relates_to, activity_id)
    fault = etree.SubElement(body, f"{{{soap_ns}}}Fault")
    code_el = etree.SubElement(fault, f"{{{soap_ns}}}Code")
    etree.SubElement(code_el, f"{{{soap_ns}}}Value").text = "s:Receiver"
    sub = etree.SubElement(code_el, f"{{{soap_ns}}}Subcode")
    etree.SubElement(sub, f"{{{soap_ns}}}Value").text = code.qname
    reason_el = etree.SubElement(fault, f"{{{soap_ns}}}Reason")
    text_el = etree.SubElement(reason_el, f"{{{soap_ns}}}Text")
    text_el.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    text_el.text = reason
    if detail is not None:
        # Real servers use this casing; MS-MDE2's web text shows it lower-cased.
        detail_el = etree.SubElement(fault, f"{{{soap_ns}}}Detail")
        err = etree.SubElement(
            detail_el, f"{{{ns.ENROLLMENT}}}DeviceEnrollmentServiceError", nsmap={None: ns.ENROLLMENT}
        )
        etree.SubElement(err, f"{{{ns.ENROLLMENT}}}ErrorType").text = detail.value
        etree.SubElement(err, f"{{{ns.ENROLLMENT}}}Message").text = reason
        etree.SubElement(err, f"{{{ns.ENROLLMENT}}}TraceId").text = activity_id
    return xml.serialize(env)


@dataclass(frozen=True, slots=True)
class Fault:
    """A parsed fault (the emulator reads faults the way Windows does)."""

    subcode: str
    reason: str
    relates_to: str | None
    detail_type: str | None


def parse_fault(data: bytes) -> Fault | None:
    """The fault in a response, or None when the body is not a fault."""
    root = xml.parse(data)
    body = xml.child(root, "Body")
    fault = xml.child(body, "Fault")
    if fault is None:
        return None
    header = xml.child(root, "Header")
    return Fault(
        subcode=xml.text(xml.path(fault, "Code", "Subcode", "Value")) or "",
        reason=xml.text(xml.path(fault, "Reason", "Text")) or "",
        relates_to=xml.text(xml.child(header, "RelatesTo")),
        detail_type=xml.text(xml.path(fault, "Detail", "DeviceEnrollmentServiceError", "ErrorType")),
    )


def build_request(
    body_child: xml.Element,
    *,
    action: str,
    message_id: str,
    to: str,
    security: Security | None = None,
) -> bytes:
    """A client request envelope, shaped like Windows' own (used by the device emulator)."""
    nsmap = {"s": ns.SOAP12, "a": ns.ADDRESSING, "u": ns.WSU, "wsse": ns.WSSE, "wst": ns.WST, "ac": ns.AC}
    env = etree.Element(f"{{{ns.SOAP12}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(env, f"{{{ns.SOAP12}}}Header")
    act = etree.SubElement(header, f"{{{ns.ADDRESSING}}}Action")
    act.set(f"{{{ns.SOAP12}}}mustUnderstand", "1")
    act.text = action
    etree.SubElement(header, f"{{{ns.ADDRESSING}}}MessageID").text = message_id
    reply = etree.SubElement(header, f"{{{ns.ADDRESSING}}}ReplyTo")
    etree.SubElement(reply, f"{{{ns.ADDRESSING}}}Address").text = ns.ANONYMOUS
    to_el = etree.SubElement(header, f"{{{ns.ADDRESSING}}}To")
    to_el.set(f"{{{ns.SOAP12}}}mustUnderstand", "1")
    to_el.text = to
    if security is not None and not security.empty:
        sec = etree.SubElement(header, f"{{{ns.WSSE}}}Security")
        sec.set(f"{{{ns.SOAP12}}}mustUnderstand", "1")
        if security.username is not None:
            ut = etree.SubElement(sec, f"{{{ns.WSSE}}}UsernameToken")
            etree.SubElement(ut, f"{{{ns.WSSE}}}Username").text = security.username.username
            pw = etree.SubElement(ut, f"{{{ns.WSSE}}}Password")
            pw.set(f"{{{ns.WSSE}}}Type", ns.PASSWORD_TEXT)
            pw.text = security.username.password
        for token in security.tokens:
            bst = etree.SubElement(sec, f"{{{ns.WSSE}}}BinarySecurityToken")
            bst.set("ValueType", token.value_type)
            bst.set("EncodingType", ns.ENCODING_BASE64)
            bst.text = base64.b64encode(token.data).decode("ascii")
    body = etree.SubElement(env, f"{{{ns.SOAP12}}}Body")
    body.append(body_child)
    return xml.serialize(env)

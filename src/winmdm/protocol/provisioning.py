"""The WAP provisioning document an RSTR carries (MS-MDE2 §2.2.9.1, protocol.md §3).

Parm and characteristic names of the w7 APPLICATION are upper-case and case-sensitive.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from lxml import etree

from winmdm.errors import MalformedMessage
from winmdm.protocol import xml


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """DMClient/Provider/<id>/Poll: two finite schedules, then one infinite tail.

    Minutes and counts. The tail count is 0 (infinite); a 0 count in the first two would be a
    second infinite schedule, which DMClient calls invalid, so counts there are at least 1.
    """

    first_interval: int = 3
    first_count: int = 5
    second_interval: int = 15
    second_count: int = 8
    remaining_interval: int = 480
    poll_on_login: bool = True

    def __post_init__(self) -> None:
        for name in ("first_interval", "second_interval", "remaining_interval"):
            value = getattr(self, name)
            if not 1 <= value <= 10080:
                raise ValueError(f"{name} must be 1 to 10080 minutes, got {value}")
        for name in ("first_count", "second_count"):
            value = getattr(self, name)
            if not 1 <= value <= 1000:
                raise ValueError(
                    f"{name} must be 1 to 1000 (0 would be a second infinite schedule), got {value}"
                )

    @classmethod
    def parse(cls, text: str) -> PollSchedule:
        """'3x5,15x8,480': every 3 min 5 times, every 15 min 8 times, then every 480 min."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 3 or "x" in parts[2]:
            raise ValueError("expected MINUTESxCOUNT,MINUTESxCOUNT,MINUTES such as 3x5,15x8,480")
        try:
            (fi, fc), (si, sc) = (tuple(int(n) for n in p.split("x", 1)) for p in parts[:2])
            remaining = int(parts[2])
        except ValueError:
            raise ValueError("expected MINUTESxCOUNT,MINUTESxCOUNT,MINUTES such as 3x5,15x8,480") from None
        return cls(fi, fc, si, sc, remaining)

    def __str__(self) -> str:
        return (
            f"{self.first_interval}x{self.first_count},"
            f"{self.second_interval}x{self.second_count},{self.remaining_interval}"
        )


@dataclass(frozen=True, slots=True)
class RenewalTerms:
    """CertificateStore/My/WSTEP/Renew: only sent when renewal is served."""

    renew_period_days: int = 42
    retry_interval_days: int = 7


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """OMA-DM digest credentials (protocol.md decision 4)."""

    client_name: str  # APPSRV AAUTHNAME: what the device sends in Cred
    client_secret: str  # APPSRV AAUTHSECRET
    server_secret: str  # CLIENT AAUTHSECRET: what the server proves to the device
    # APPSRV AAUTHDATA: the nonce of the device's first Cred. w7 APPLICATION CSP: "APPSRV -
    # specifies that the client authenticates itself to the OMA DM Server"; AAUTHDATA "is used
    # to convey the nonce for digest authentication".
    nonce: bytes
    server_nonce: bytes  # CLIENT AAUTHDATA: for the server's own Cred to the device (unused)


@dataclass(frozen=True, slots=True)
class EnrollmentDocument:
    root_der: bytes
    root_thumbprint: str
    client_der: bytes
    client_thumbprint: str
    client_subject_cn: str
    device_context: bool  # My/System for EnrollmentType Device, else My/User
    provider_id: str
    server_name: str
    management_url: str
    credentials: DigestCredentials
    poll: PollSchedule
    upn: str | None = None
    device_name: str | None = None
    ent_dm_id: str | None = None
    renewal: RenewalTerms | None = None


def _char(parent: xml.Element | None, type_: str) -> xml.Element:
    if parent is None:
        return etree.Element("characteristic", type=type_)
    return etree.SubElement(parent, "characteristic", type=type_)


def _parm(parent: xml.Element, name: str, value: str | None = None, datatype: str | None = None) -> None:
    el = etree.SubElement(parent, "parm", name=name)
    if value is not None:
        el.set("value", value)
    if datatype is not None:
        el.set("datatype", datatype)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")  # one line: no breaks allowed


def search_criteria(subject_cn: str, device_context: bool) -> str:
    """SSLCLIENTCERTSEARCHCRITERIA; lxml escapes the & once (protocol.md decision 4)."""
    store = "My%5CSystem" if device_context else "My%5CUser"
    return f"Subject={quote('CN=' + subject_cn, safe='')}&Stores={store}"


def _store(
    doc: xml.Element,
    root_der: bytes,
    root_thumb: str,
    client_der: bytes,
    client_thumb: str,
    device_context: bool,
) -> xml.Element:
    root_store = _char(doc, "CertificateStore")
    cert = _char(_char(_char(root_store, "Root"), "System"), root_thumb)
    _parm(cert, "EncodedCertificate", _b64(root_der))
    my_store = _char(doc, "CertificateStore")
    my = _char(my_store, "My")
    scope = _char(my, "System" if device_context else "User")
    _parm(_char(scope, client_thumb), "EncodedCertificate", _b64(client_der))
    _char(scope, "PrivateKeyContainer")
    return my


def build_enrollment_document(d: EnrollmentDocument) -> bytes:
    doc = etree.Element("wap-provisioningdoc", version="1.1")
    my = _store(doc, d.root_der, d.root_thumbprint, d.client_der, d.client_thumbprint, d.device_context)
    if d.renewal is not None:
        renew = _char(_char(my, "WSTEP"), "Renew")
        _parm(renew, "ROBOSupport", "true", "boolean")
        _parm(renew, "RenewPeriod", str(d.renewal.renew_period_days), "integer")
        _parm(renew, "RetryInterval", str(d.renewal.retry_interval_days), "integer")
    app = _char(doc, "APPLICATION")
    for name, value in (
        ("APPID", "w7"),
        ("PROVIDER-ID", d.provider_id),
        ("NAME", d.server_name),
        ("ADDR", d.management_url),
        ("CONNRETRYFREQ", "6"),
        ("INITIALBACKOFFTIME", "30000"),
        ("MAXBACKOFFTIME", "120000"),
        ("BACKCOMPATRETRYDISABLED", None),
        ("DEFAULTENCODING", "application/vnd.syncml.dm+xml"),
        ("SSLCLIENTCERTSEARCHCRITERIA", search_criteria(d.client_subject_cn, d.device_context)),
    ):
        _parm(app, name, value)
    client = _char(app, "APPAUTH")
    _parm(client, "AAUTHLEVEL", "CLIENT")
    _parm(client, "AAUTHTYPE", "DIGEST")
    _parm(client, "AAUTHSECRET", d.credentials.server_secret)
    _parm(client, "AAUTHDATA", _b64(d.credentials.server_nonce))
    appsrv = _char(app, "APPAUTH")
    _parm(appsrv, "AAUTHLEVEL", "APPSRV")
    _parm(appsrv, "AAUTHTYPE", "DIGEST")
    _parm(appsrv, "AAUTHNAME", d.credentials.client_name)
    _parm(appsrv, "AAUTHSECRET", d.credentials.client_secret)
    _parm(appsrv, "AAUTHDATA", _b64(d.credentials.nonce))
    provider = _char(_char(_char(doc, "DMClient"), "Provider"), d.provider_id)
    if d.ent_dm_id:
        _parm(provider, "EntDMID", d.ent_dm_id, "string")
    if d.device_name:
        _parm(provider, "EntDeviceName", d.device_name, "string")
    if d.upn:
        _parm(provider, "UPN", d.upn, "string")
    poll = _char(provider, "Poll")
    p = d.poll
    for name, value in (
        ("NumberOfFirstRetries", p.first_count),
        ("IntervalForFirstSetOfRetries", p.first_interval),
        ("NumberOfSecondRetries", p.second_count),
        ("IntervalForSecondSetOfRetries", p.second_interval),
        ("NumberOfRemainingScheduledRetries", 0),
        ("IntervalForRemainingScheduledRetries", p.remaining_interval),
    ):
        _parm(poll, name, str(value), "integer")
    _parm(poll, "PollOnLogin", "true" if p.poll_on_login else "false", "boolean")
    _parm(poll, "AllUsersPollOnFirstLogin", "true" if p.poll_on_login else "false", "boolean")
    return etree.tostring(doc, encoding="utf-8")


def build_renewal_document(
    *,
    root_der: bytes,
    root_thumbprint: str,
    client_der: bytes,
    client_thumbprint: str,
    device_context: bool,
) -> bytes:
    """A renewal answer carries only the certificate store (protocol.md §3)."""
    doc = etree.Element("wap-provisioningdoc", version="1.1")
    _store(doc, root_der, root_thumbprint, client_der, client_thumbprint, device_context)
    return etree.tostring(doc, encoding="utf-8")


@dataclass(slots=True)
class Characteristic:
    """A parsed characteristic: its parms and child characteristics, in document order."""

    type: str
    parms: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # value, datatype
    children: list[Characteristic] = field(default_factory=list)

    def all(self, type_: str) -> Iterator[Characteristic]:
        return (c for c in self.children if c.type == type_)

    def find(self, *types: str) -> Characteristic | None:
        """Follow a path of types; at each step any same-typed sibling may continue it."""
        if not types:
            return self
        for candidate in self.all(types[0]):
            found = candidate.find(*types[1:])
            if found is not None:
                return found
        return None

    def value(self, name: str) -> str | None:
        return self.parms[name][0] if name in self.parms else None


def parse_document(data: bytes) -> Characteristic:
    """Read a wap-provisioningdoc as Windows does: a tree of characteristics and parms."""
    root = xml.parse(data)
    if root.tag != "wap-provisioningdoc":
        raise MalformedMessage("not a wap-provisioningdoc")
    return _read(root, "wap-provisioningdoc")


def _read(el: xml.Element, type_: str) -> Characteristic:
    node = Characteristic(type_)
    for sub in el:
        if sub.tag == "parm":
            node.parms[sub.get("name", "")] = (sub.get("value"), sub.get("datatype"))
        elif sub.tag == "characteristic":
            node.children.append(_read(sub, sub.get("type", "")))
    return node

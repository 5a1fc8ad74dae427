"""Reading SyncML: bytes through the hardened parser into the values of `model`.

Lenient where Windows and the documents vary (protocol.md §8, decision 5): element order, whitespace,
namespace case, prefixes and the metinf namespace of Meta children are not checked; elements winmdm
does not use are ignored. Strict where the server could not answer otherwise: SyncHdr, SessionID,
MsgID, Target and Source LocURI, a CmdID on every command, the codes of Alert and Status.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from lxml import etree

from winmdm.errors import MalformedMessage
from winmdm.protocol import xml
from winmdm.protocol.syncml.codes import (
    SYNCML_NAMESPACES,
    VER_DTD,
    VER_PROTO,
    alert_code,
    cmd_name,
    status_code,
)
from winmdm.protocol.syncml.model import (
    Add,
    Alert,
    Atomic,
    Chal,
    Command,
    Container,
    Cred,
    Delete,
    Exec,
    Get,
    Item,
    ItemCommand,
    Message,
    Meta,
    Replace,
    Results,
    Sequence,
    Status,
    SyncHdr,
    Unknown,
)

DEFAULT_MAX_BYTES = xml.DEFAULT_MAX_BYTES
_MAX_DIGITS = 19  # below 2**63 is plenty; int() of huge strings is slow
_NOT_COMMANDS = frozenset({"SyncML", "SyncHdr", "SyncBody", "Final"})


def parse_message(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """A whole SyncML message; MalformedMessage names the missing or unreadable part."""
    root = _syncml(xml.parse(data, max_bytes=max_bytes))
    header_el = xml.child(root, "SyncHdr")
    if header_el is None:
        raise MalformedMessage("SyncML has no SyncHdr")
    header = _header(header_el)
    body = _body(root)
    return Message(header=header, commands=_commands(body), final=xml.child(body, "Final") is not None)


HEADER_WINDOW = 16 * 1024  # a SyncHdr (LocURIs, LocName, Cred, Meta) is well under this


def parse_header(data: bytes, *, window: int = HEADER_WINDOW) -> SyncHdr:
    """Only the SyncHdr of a message, read from its first `window` bytes: who sends it and how
    it proves itself, known before the rest (up to the body limit) is parsed at all."""
    header_el = xml.parse_leading(data, "SyncHdr", window=window)
    root = header_el.getparent()
    if root is None or xml.local(root) != "SyncML":
        raise MalformedMessage("SyncHdr is not a child of SyncML")
    _syncml(root)
    return _header(header_el)


def parse_fragment(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Command:
    """One command element on its own (`<Alert>`, `<Exec>`...), as CSP documents show them."""
    return _lone_command(xml.parse(data, max_bytes=max_bytes))


def parse_commands(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Command, ...]:
    """The commands of a SyncML document whose SyncHdr may be absent (documentation samples,
    admin profiles), or of a single command element."""
    root = xml.parse(data, max_bytes=max_bytes)
    if xml.local(root) != "SyncML":
        return (_lone_command(root),)
    return _commands(_body(_syncml(root)))


def _lone_command(root: xml.Element) -> Command:
    if xml.local(root) in _NOT_COMMANDS:
        raise MalformedMessage(f"expected one SyncML command element, found {xml.local(root)}")
    return _command(root, "the fragment")


def _syncml(root: xml.Element) -> xml.Element:
    if xml.local(root) != "SyncML":
        raise MalformedMessage(f"root element is {xml.local(root)!r}, not SyncML")
    if xml.namespace(root).lower() not in SYNCML_NAMESPACES:
        found = xml.namespace(root) or "no namespace"
        raise MalformedMessage(f"SyncML namespace is {found!r}; expected SYNCML:SYNCML1.2")
    return root


def _body(root: xml.Element) -> xml.Element:
    body = xml.child(root, "SyncBody")
    if body is None:
        raise MalformedMessage("SyncML has no SyncBody")
    return body


def _header(el: xml.Element) -> SyncHdr:
    c = xml.index(el)
    session_id = xml.text(c.get("SessionID"))
    if not session_id:
        raise MalformedMessage("SyncHdr has no SessionID")
    msg_id = _number(c.get("MsgID"), "MsgID", "SyncHdr")
    if msg_id is None:
        raise MalformedMessage("SyncHdr has no MsgID")
    target_el, source_el = xml.index(c.get("Target")), xml.index(c.get("Source"))
    target = xml.text(target_el.get("LocURI"))
    if target is None:
        raise MalformedMessage("SyncHdr has no Target/LocURI")
    source = xml.text(source_el.get("LocURI"))
    if source is None:
        raise MalformedMessage("SyncHdr has no Source/LocURI")
    return SyncHdr(
        session_id=session_id,
        msg_id=msg_id,
        target=target,
        source=source,
        target_name=xml.text(target_el.get("LocName")),
        source_name=xml.text(source_el.get("LocName")),
        resp_uri=xml.text(c.get("RespURI")),
        cred=_cred(c.get("Cred"), "SyncHdr"),
        meta=_meta(c.get("Meta"), "SyncHdr"),
        ver_dtd=xml.text(c.get("VerDTD")) or VER_DTD,
        ver_proto=xml.text(c.get("VerProto")) or VER_PROTO,
    )


def _commands(body: xml.Element) -> tuple[Command, ...]:
    return tuple(
        _command(el, f"SyncBody (element {n})")
        for n, el in enumerate(xml.children(body), start=1)
        if xml.local(el) != "Final"  # Final closes the body
    )


def _command(el: xml.Element, where: str) -> Command:
    name = xml.local(el)
    c = xml.index(el)
    cmd_id = _number(c.get("CmdID"), "CmdID", f"{name} in {where}")
    if cmd_id is None:
        raise MalformedMessage(f"{name} in {where} has no CmdID")
    reader = _READERS.get(name)
    if reader is None:
        return Unknown(name=name, cmd_id=cmd_id)
    return reader(el, c, cmd_id, f"{name} CmdID {cmd_id}")


# A command reader gets the element, its first child of each name (xml.index), its CmdID and
# where it is, for error messages.
_Reader = Callable[[xml.Element, dict[str, xml.Element], int, str], Command]


def _alert(el: xml.Element, c: dict[str, xml.Element], cmd_id: int, where: str) -> Alert:
    code = _number(c.get("Data"), "Data", where)
    if code is None:
        raise MalformedMessage(f"{where} has no Data (the alert code)")
    return Alert(
        cmd_id=cmd_id,
        data=alert_code(code),
        items=_items(el, where),
        correlator=xml.text(c.get("Correlator")),
        no_resp="NoResp" in c,
    )


def _status(el: xml.Element, c: dict[str, xml.Element], cmd_id: int, where: str) -> Status:
    cmd_ref = _number(c.get("CmdRef"), "CmdRef", where)
    if cmd_ref is None:
        raise MalformedMessage(f"{where} has no CmdRef")
    cmd = xml.text(c.get("Cmd"))
    if not cmd:
        raise MalformedMessage(f"{where} has no Cmd")
    data_el = c.get("Data")
    code = _number(data_el, "Data", where)
    if data_el is None or code is None:
        raise MalformedMessage(f"{where} has no Data (the status code)")
    chal_el = c.get("Chal")
    return Status(
        cmd_id=cmd_id,
        msg_ref=_number(c.get("MsgRef"), "MsgRef", where),
        cmd_ref=cmd_ref,
        cmd=cmd_name(cmd),
        data=status_code(code),
        target_refs=tuple(xml.text(r) or "" for r in xml.children(el, "TargetRef")),
        source_refs=tuple(xml.text(r) or "" for r in xml.children(el, "SourceRef")),
        cred=_cred(c.get("Cred"), where),
        chal=None if chal_el is None else Chal(meta=_meta(xml.child(chal_el, "Meta"), where) or Meta()),
        items=_items(el, where),
        original_error=xml.attr(data_el, "originalerror"),
    )


def _results(el: xml.Element, c: dict[str, xml.Element], cmd_id: int, where: str) -> Results:
    cmd_ref = _number(c.get("CmdRef"), "CmdRef", where)
    if cmd_ref is None:
        raise MalformedMessage(f"{where} has no CmdRef")
    cmd = xml.text(c.get("Cmd"))
    return Results(
        cmd_id=cmd_id,
        cmd_ref=cmd_ref,
        msg_ref=_number(c.get("MsgRef"), "MsgRef", where),
        cmd=cmd_name(cmd) if cmd else None,
        meta=_meta(c.get("Meta"), where),
        items=_items(el, where),
    )


def _item_command(kind: type[ItemCommand]) -> _Reader:
    def read(el: xml.Element, c: dict[str, xml.Element], cmd_id: int, where: str) -> Command:
        fields = {
            "cmd_id": cmd_id,
            "items": _items(el, where),
            "meta": _meta(c.get("Meta"), where),
            "no_resp": "NoResp" in c,
        }
        if kind is Exec:
            fields["correlator"] = xml.text(c.get("Correlator"))
        return kind(**fields)  # type: ignore[return-value]

    return read


def _container(kind: type[Container]) -> _Reader:
    def read(el: xml.Element, c: dict[str, xml.Element], cmd_id: int, where: str) -> Command:
        inner = [e for e in xml.children(el) if xml.local(e) not in ("CmdID", "NoResp", "Meta", "Cred")]
        return kind(  # type: ignore[return-value]
            cmd_id=cmd_id,
            commands=tuple(_command(e, f"{where} (element {n})") for n, e in enumerate(inner, start=1)),
            meta=_meta(c.get("Meta"), where),
            no_resp="NoResp" in c,
        )

    return read


_READERS: dict[str, _Reader] = {
    "Alert": _alert,
    "Status": _status,
    "Results": _results,
    "Get": _item_command(Get),
    "Add": _item_command(Add),
    "Replace": _item_command(Replace),
    "Delete": _item_command(Delete),
    "Exec": _item_command(Exec),
    "Atomic": _container(Atomic),
    "Sequence": _container(Sequence),
}


def _items(el: xml.Element, where: str) -> tuple[Item, ...]:
    return tuple(_item(i, f"{where} Item {n}") for n, i in enumerate(xml.children(el, "Item"), start=1))


def _item(el: xml.Element, where: str) -> Item:
    c = xml.index(el)
    target, source = c.get("Target"), c.get("Source")
    return Item(
        target=None if target is None else xml.text(xml.child(target, "LocURI")),
        source=None if source is None else xml.text(xml.child(source, "LocURI")),
        meta=_meta(c.get("Meta"), where),
        data=_data(c.get("Data")),
        more_data="MoreData" in c,
    )


def _data(el: xml.Element | None) -> str | None:
    """Text as sent, or inline XML serialized to text (e.g. an MsiInstallJob; protocol.md §9).

    Unlike other elements, Data is not stripped: whitespace can be content, and a chunk boundary
    can fall on it. Readers of values (inventory, codes) strip what they compare."""
    if el is None:
        return None
    if len(el) == 0 or next(xml.children(el), None) is None:
        # Kept exactly: a chunk of a large object may begin or end with whitespace (MoreData).
        return "".join(el.itertext())
    parts = [el.text or ""]
    for child in el:
        parts.append(_inline(child, xml.namespace(el)) if isinstance(child.tag, str) else "")
        parts.append(child.tail or "")
    return "".join(parts).strip()


def _inline(el: xml.Element, inherited: str) -> str:
    # Inline XML sits in the SyncML default namespace only by inheritance: drop it, keep others.
    detached = copy.deepcopy(el)
    detached.tail = None
    if inherited:
        for node in detached.iter():
            if isinstance(node.tag, str) and xml.namespace(node) == inherited:
                node.tag = xml.local(node)
    etree.cleanup_namespaces(detached)
    return etree.tostring(detached, encoding="unicode")


def _cred(el: xml.Element | None, where: str) -> Cred | None:
    if el is None:
        return None
    c = xml.index(el)
    return Cred(data=xml.text(c.get("Data")) or "", meta=_meta(c.get("Meta"), f"{where} Cred"))


_META_TEXT = {"Format": "format", "Type": "type", "Mark": "mark", "NextNonce": "next_nonce"}
_META_NUMBERS = {"Size": "size", "MaxMsgSize": "max_msg_size", "MaxObjSize": "max_obj_size"}


def _meta(el: xml.Element | None, where: str) -> Meta | None:
    if el is None:
        return None
    c = xml.index(el)
    values: dict[str, object] = {}
    for name, field in _META_TEXT.items():
        values[field] = xml.text(c.get(name))
    for name, field in _META_NUMBERS.items():
        values[field] = _number(c.get(name), name, f"{where} Meta")
    return Meta(**values)  # type: ignore[arg-type]


def _number(el: xml.Element | None, name: str, where: str) -> int | None:
    """A non-negative decimal value of the child `el` (named `name`); None when it is absent."""
    if el is None:
        return None
    value = xml.text(el) or ""
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_DIGITS:
        raise MalformedMessage(f"{where}: {name} {value[:40]!r} is not a number below 10^{_MAX_DIGITS}")
    return int(value)

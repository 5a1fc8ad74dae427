"""Writing SyncML: values of `model` to bytes, elements in the order of the OMA-DM 1.2 DTD.

Windows refuses out-of-order elements (protocol.md §8), so each builder below lists its children
in DTD order. Meta children carry `xmlns="syncml:metinf"` each, as Windows itself writes them.
No XML declaration: MS-MDM samples carry none and UTF-8 is the default.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from winmdm.protocol.syncml.codes import METINF, MSFT, SYNCML12
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

_Element = etree._Element


def build_message(message: Message) -> bytes:
    """`<SyncML xmlns="SYNCML:SYNCML1.2">`: SyncHdr, then SyncBody with the commands and Final."""
    root = etree.Element(_q("SyncML"), nsmap={None: SYNCML12})
    _header(root, message.header)
    needs_msft = any(isinstance(c, Status) and c.original_error is not None for c in message.commands)
    body = etree.SubElement(root, _q("SyncBody"), nsmap={"msft": MSFT} if needs_msft else None)
    for command in message.commands:
        _command(body, command)
    if message.final:
        _sub(body, "Final")
    return etree.tostring(root, encoding="utf-8", xml_declaration=False)


def build_fragment(command: Command) -> bytes:
    """One command element on its own, as `parse_fragment` reads it (the command queue's payload)."""
    holder = etree.Element(_q("SyncBody"), nsmap={None: SYNCML12})
    _command(holder, command)
    element = holder[0]
    holder.remove(element)
    return etree.tostring(element, encoding="utf-8")


def encoded_size(message: Message) -> int:
    """Bytes `build_message` produces, to keep a reply under the client's MaxMsgSize."""
    return len(build_message(message))


_DEFAULT_NAMESPACE = len(f' xmlns="{SYNCML12}"')


def command_size(command: Command) -> int:
    """Bytes `command` adds to a message's SyncBody, so a reply's size can be kept as it grows
    (serialized in place, its one namespace declaration is the only difference)."""
    holder = etree.Element(_q("SyncBody"), nsmap={None: SYNCML12})
    _command(holder, command)
    return len(etree.tostring(holder[0], encoding="utf-8")) - _DEFAULT_NAMESPACE


def _q(name: str) -> str:
    return f"{{{SYNCML12}}}{name}"


def _sub(parent: _Element, name: str, text: str | int | None = None) -> _Element:
    el = etree.SubElement(parent, _q(name))
    if text is not None:
        el.text = str(text)
    return el


def _opt(parent: _Element, name: str, text: str | int | None) -> None:
    if text is not None:
        _sub(parent, name, text)


def _flag(parent: _Element, name: str, on: bool) -> None:
    if on:
        _sub(parent, name)


def _loc(parent: _Element, name: str, uri: str | None, loc_name: str | None = None) -> None:
    if uri is not None:
        el = _sub(parent, name)
        _sub(el, "LocURI", uri)
        _opt(el, "LocName", loc_name)


def _header(parent: _Element, header: SyncHdr) -> None:
    el = _sub(parent, "SyncHdr")
    _sub(el, "VerDTD", header.ver_dtd)
    _sub(el, "VerProto", header.ver_proto)
    _sub(el, "SessionID", header.session_id)
    _sub(el, "MsgID", header.msg_id)
    _loc(el, "Target", header.target, header.target_name)
    _loc(el, "Source", header.source, header.source_name)
    _opt(el, "RespURI", header.resp_uri)
    _cred(el, header.cred)
    _meta(el, header.meta)


_META_ORDER = (  # MetInf DTD order
    ("Format", "format"),
    ("Type", "type"),
    ("Mark", "mark"),
    ("Size", "size"),
    ("NextNonce", "next_nonce"),
    ("MaxMsgSize", "max_msg_size"),
    ("MaxObjSize", "max_obj_size"),
)


def _meta(parent: _Element, meta: Meta | None) -> None:
    if meta is None:
        return
    el = _sub(parent, "Meta")
    for name, field in _META_ORDER:
        value = getattr(meta, field)
        if value is not None:
            etree.SubElement(el, f"{{{METINF}}}{name}", nsmap={None: METINF}).text = str(value)


def _cred(parent: _Element, cred: Cred | None) -> None:
    if cred is not None:
        el = _sub(parent, "Cred")
        _meta(el, cred.meta)
        _sub(el, "Data", cred.data)


def _chal(parent: _Element, chal: Chal | None) -> None:
    if chal is not None:
        _meta(_sub(parent, "Chal"), chal.meta)


def _items(parent: _Element, items: tuple[Item, ...]) -> None:
    for item in items:
        el = _sub(parent, "Item")
        _loc(el, "Target", item.target)
        _loc(el, "Source", item.source)
        _meta(el, item.meta)
        _opt(el, "Data", item.data)  # text: lxml escapes it, inline XML included
        _flag(el, "MoreData", item.more_data)


def _command(parent: _Element, command: Command) -> None:
    build = _BUILDERS.get(type(command))
    if build is None:
        raise TypeError(f"not a SyncML command: {type(command).__name__}")
    build(parent, command)


def _alert(parent: _Element, alert: Alert) -> None:
    el = _sub(parent, "Alert")
    _sub(el, "CmdID", alert.cmd_id)
    _flag(el, "NoResp", alert.no_resp)
    _sub(el, "Data", int(alert.data))
    _opt(el, "Correlator", alert.correlator)
    _items(el, alert.items)


def _status(parent: _Element, status: Status) -> None:
    el = _sub(parent, "Status")
    _sub(el, "CmdID", status.cmd_id)
    _opt(el, "MsgRef", status.msg_ref)
    _sub(el, "CmdRef", status.cmd_ref)
    _sub(el, "Cmd", str(status.cmd))
    for ref in status.target_refs:
        _sub(el, "TargetRef", ref)
    for ref in status.source_refs:
        _sub(el, "SourceRef", ref)
    _cred(el, status.cred)
    _chal(el, status.chal)
    data = _sub(el, "Data", int(status.data))
    if status.original_error is not None:
        data.set(f"{{{MSFT}}}originalerror", status.original_error)
    _items(el, status.items)


def _results(parent: _Element, results: Results) -> None:
    el = _sub(parent, "Results")
    _sub(el, "CmdID", results.cmd_id)
    _opt(el, "MsgRef", results.msg_ref)
    _sub(el, "CmdRef", results.cmd_ref)
    _opt(el, "Cmd", None if results.cmd is None else str(results.cmd))  # as Windows writes it
    _meta(el, results.meta)
    _items(el, results.items)


def _item_command(parent: _Element, command: ItemCommand) -> None:
    el = _sub(parent, command.name)
    _sub(el, "CmdID", command.cmd_id)
    _flag(el, "NoResp", command.no_resp)
    _meta(el, command.meta)
    if isinstance(command, Exec):
        _opt(el, "Correlator", command.correlator)
    _items(el, command.items)


def _container(parent: _Element, container: Container) -> None:
    el = _sub(parent, container.name)
    _sub(el, "CmdID", container.cmd_id)
    _flag(el, "NoResp", container.no_resp)
    _meta(el, container.meta)
    for command in container.commands:
        _command(el, command)


def _unknown(parent: _Element, command: Unknown) -> None:
    _sub(_sub(parent, command.name), "CmdID", command.cmd_id)


_BUILDERS: dict[type, Callable[[_Element, object], None]] = {
    Alert: _alert,
    Status: _status,
    Results: _results,
    Get: _item_command,
    Add: _item_command,
    Replace: _item_command,
    Delete: _item_command,
    Exec: _item_command,
    Atomic: _container,
    Sequence: _container,
    Unknown: _unknown,
}  # type: ignore[dict-item]

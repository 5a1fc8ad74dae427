"""The one hardened XML parser every endpoint uses, and small lookup helpers.

No DTD, no entities, no network, bounded size and depth (design.md §3). Lookups go by local
name because Windows is lenient about prefixes and the discovery namespace's trailing slash.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from winmdm.errors import HostileInput, MalformedMessage

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 48

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)

Element = etree._Element


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> Element:
    """Parse untrusted bytes into an element tree or raise MalformedMessage/HostileInput."""
    if len(data) > max_bytes:
        raise HostileInput(f"message is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise MalformedMessage("message is empty")
    head = data[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise HostileInput("message declares a DTD or entities, which are refused")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        if _over_limit(exc):  # libxml2's own caps (depth 256): hostile, not merely broken
            raise HostileInput(f"message exceeds the parser's limits: {exc.msg}") from None
        raise MalformedMessage(f"message is not well-formed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. encoding declarations lxml refuses
        raise MalformedMessage(f"message is not readable XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise HostileInput("message declares a DTD, which is refused")
    if _too_deep(root, max_depth):
        raise HostileInput(f"message nests deeper than {max_depth} elements")
    return root


def parse_leading(data: bytes, name: str, *, window: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Element:
    """The first element with local name `name`, parsed from no more than the first `window`
    bytes of `data` with the same protections as `parse`. An incremental parser is fed up to
    each end tag of that name in turn and stops at the first that completes the element: what
    follows it is never read, so knowing who sent a large message costs what its header costs."""
    head = data[:window]
    if not head.strip():
        raise MalformedMessage("message is empty")
    upper = head.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise HostileInput("message declares a DTD or entities, which are refused")
    parser = etree.XMLPullParser(
        events=("end",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    fed = 0
    try:
        tag = rb"(?:[\w.-]+:)?" + re.escape(name.encode())
        for end_tag in re.finditer(rb"</" + tag + rb"\s*>|<" + tag + rb"(?:\s[^<>]*)?/>", head):
            parser.feed(head[fed : end_tag.end()])
            fed = end_tag.end()
            for _event, element in parser.read_events():
                if local(element) == name:
                    if _too_deep(element, max_depth):
                        raise HostileInput(f"message nests deeper than {max_depth} elements")
                    return element
    except etree.XMLSyntaxError as exc:
        raise MalformedMessage(f"message is not well-formed XML: {exc.msg}") from None
    except ValueError as exc:
        raise MalformedMessage(f"message is not readable XML: {exc}") from None
    raise MalformedMessage(f"message has no complete {name} in its first {window} bytes")


_RESOURCE_LIMIT = getattr(etree.ErrorTypes, "ERR_RESOURCE_LIMIT", None)


def _over_limit(exc: etree.XMLSyntaxError) -> bool:
    # Older libxml2 reports excessive depth as an internal error; the message names the limit.
    return (_RESOURCE_LIMIT is not None and exc.code == _RESOURCE_LIMIT) or "XML_PARSE_HUGE" in exc.msg


_DEPTH_PROBES: dict[int, etree.XPath] = {}


def _too_deep(root: Element, max_depth: int) -> bool:
    """True when an element sits deeper than max_depth (one compiled XPath, evaluated in C)."""
    probe = _DEPTH_PROBES.get(max_depth)
    if probe is None:
        probe = _DEPTH_PROBES[max_depth] = etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")
    return bool(probe(root))


def local(el: Element) -> str:
    """Local name of an element, without namespace."""
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def namespace(el: Element) -> str:
    """The namespace of an element's tag, "" for none. Split at the last "}" as `local` does:
    a namespace URI may itself hold "}" (lxml's QName would refuse the rest as a local name)."""
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    return tag[1:].rpartition("}")[0]


def children(el: Element | None, name: str | None = None) -> Iterator[Element]:
    """Children with this local name, in any namespace or none (all elements, without a name);
    none of an absent element."""
    if el is None:
        return iter(())
    return el.iterchildren(etree.Element if name is None else "{*}" + name)


def child(el: Element | None, name: str) -> Element | None:
    """The first child with this local name, in any namespace or none. lxml's tag filter runs
    in C: the readers call this constantly."""
    if el is None:
        return None
    return next(el.iterchildren("{*}" + name), None)


def index(el: Element | None) -> dict[str, Element]:
    """The first child element of each local name, found in one pass: a reader that looks up
    several children of one element (a SyncML Item, Meta or SyncHdr) walks them once, not once
    per name. Same answer as `child` for every name."""
    found: dict[str, Element] = {}
    if el is None:
        return found
    for node in el:
        tag = node.tag
        if isinstance(tag, str):  # not a comment or processing instruction
            name = tag[tag.rfind("}") + 1 :]
            if name not in found:
                found[name] = node
    return found


def path(el: Element | None, *names: str) -> Element | None:
    for name in names:
        el = child(el, name)
    return el


def text(el: Element | None) -> str | None:
    """Stripped text, or None for an absent or xsi:nil element (protocol.md §0: strip all)."""
    if el is None:
        return None
    if len(el) == 0:  # a leaf, as nearly every element read is: its text is all there is
        return (el.text or "").strip()
    return "".join(el.itertext()).strip()


def attr(el: Element, name: str) -> str | None:
    """An attribute by local name, with or without a namespace prefix (ValueType, wsse:ValueType)."""
    for key, value in el.attrib.items():
        if key.rpartition("}")[2] == name:
            return value.strip()
    return None


def serialize(root: Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")

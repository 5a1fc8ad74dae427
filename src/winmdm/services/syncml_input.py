"""Reading SyncML that people write (raw commands, configuration profiles): what is allowed and
where it is wrong, in words an admin can act on (MS-MDM §2.2.7, protocol.md §8 LocURI rules)."""

from __future__ import annotations

import re

from winmdm.errors import InvalidInput, MalformedMessage
from winmdm.protocol import syncml

# LocURIs are relative (./...), never start with "/", and keep non-alphanumerics URI-encoded.
_LOCURI = re.compile(r"^\./(?:[A-Za-z0-9\-_.!~*'()%;:@&=+$,{}]+/)*[A-Za-z0-9\-_.!~*'()%;:@&=+$,{}]+$")
MAX_BYTES = 512 * 1024


def parse_admin_syncml(
    text: str,
    *,
    allowed: tuple[type, ...] = (
        syncml.Add,
        syncml.Replace,
        syncml.Delete,
        syncml.Get,
        syncml.Exec,
        syncml.Atomic,
        syncml.Sequence,
    ),
    field: str = "syncml",
    scopes: tuple[str, ...] | None = None,
) -> tuple[syncml.Command, ...]:
    """The top-level commands of an admin's SyncML: one element, several elements, or a document."""
    try:
        data = text.strip().encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. "\ud800" in JSON
        raise InvalidInput("the SyncML is not valid UTF-8 text", field=field) from None
    if not data:
        raise InvalidInput("the SyncML is empty", field=field)
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the SyncML is {len(data)} bytes; the limit is {MAX_BYTES}", field=field)
    if not data.startswith(b"<SyncML"):
        data = b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncBody>' + data + b"</SyncBody></SyncML>"
    elif b"SYNCML:SYNCML" not in data[:200].upper():
        data = data.replace(b"<SyncML", b'<SyncML xmlns="SYNCML:SYNCML1.2"', 1)
    try:
        commands = syncml.parse_commands(data, max_bytes=MAX_BYTES * 2)
    except MalformedMessage as exc:
        raise InvalidInput(f"the SyncML is not valid: {exc.message}", field=field) from None
    if not commands:
        raise InvalidInput("the SyncML has no commands", field=field)
    for index, command in enumerate(commands, start=1):
        _check(command, f"command {index} ({_name(command)})", allowed, field, scopes)
    return commands


def _name(command: syncml.Command) -> str:
    return command.name


def _check(command, where: str, allowed, field: str, scopes) -> None:
    if not isinstance(command, allowed):
        names = ", ".join(k.__name__ for k in allowed)
        raise InvalidInput(f"{where}: {_name(command)} is not allowed here; use {names}", field=field)
    if isinstance(command, syncml.Atomic | syncml.Sequence):
        if not command.commands:
            raise InvalidInput(f"{where} is empty", field=field)
        for index, child in enumerate(command.commands, start=1):
            inner = (
                allowed
                if not isinstance(command, syncml.Atomic)
                else tuple(k for k in allowed if k is not syncml.Sequence)
            )
            _check(child, f"{where}, command {index} ({_name(child)})", inner, field, scopes)
        return
    if not command.items:
        raise InvalidInput(f"{where} has no Item", field=field)
    for item in command.items:
        uri = item.target or ""
        if not uri:
            raise InvalidInput(f"{where}: an Item has no Target LocURI", field=field)
        if not _LOCURI.match(uri):
            raise InvalidInput(
                f"{where}: LocURI {uri!r} is not valid (it must start with ./, have no empty segments "
                "and URI-encode other characters, e.g. {{ as %7B)",
                field=field,
            )
        if scopes and not uri.startswith(scopes):
            raise InvalidInput(f"{where}: LocURI {uri!r} must start with {' or '.join(scopes)}", field=field)

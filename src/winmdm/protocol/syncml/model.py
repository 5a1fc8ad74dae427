"""Typed values of a SyncML message (OMA-DM 1.2 as MS-MDM uses it; protocol.md §8).

Every value is frozen and compares by content, so `parse_message(build_message(m)) == m`.
Text is kept stripped (protocol.md §0). Numbers the DTD calls PCDATA but Windows always sends as
digits (MsgID, CmdID, MsgRef, CmdRef, Size) are ints. Codes are enum members when known and plain
ints otherwise, so a peer's unknown code survives a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from winmdm.protocol.syncml.codes import VER_DTD, VER_PROTO, AlertCode, AuthType, Cmd, Format, StatusCode


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    """The `syncml:metinf` elements Windows uses; others are ignored on parse."""

    format: str | None = None
    type: str | None = None
    mark: str | None = None
    size: int | None = None  # total size of a chunked item, in its first chunk
    next_nonce: str | None = None  # base64, in Chal
    max_msg_size: int | None = None
    max_obj_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """Target/Source LocURI, Meta, Data and the MoreData flag of a chunk.

    `data` is text. Inline XML a peer sends inside Data is kept as its serialized text; building
    always writes Data as (escaped) text.
    """

    target: str | None = None
    source: str | None = None
    meta: Meta | None = None
    data: str | None = None
    more_data: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Cred:
    data: str
    meta: Meta | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Chal:
    meta: Meta

    @classmethod
    def md5(cls, next_nonce: str) -> Chal:
        """An MD5 digest challenge with the base64 nonce of the next Cred (protocol.md decision 4)."""
        return cls(meta=Meta(format=Format.B64.value, type=AuthType.MD5.value, next_nonce=next_nonce))


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncHdr:
    """Client to server: target = server URL, source = device id; the reverse for replies."""

    session_id: str  # opaque, echoed verbatim (decimal or hex; protocol.md decision 5)
    msg_id: int
    target: str
    source: str
    target_name: str | None = None
    source_name: str | None = None  # LocName: the digest user name when Cred is sent
    resp_uri: str | None = None
    cred: Cred | None = None
    meta: Meta | None = None
    ver_dtd: str = VER_DTD
    ver_proto: str = VER_PROTO


class _Named:
    __slots__ = ()
    CMD: ClassVar[Cmd]

    @property
    def name(self) -> str:
        """The element name; what a Status answering this command puts in Cmd."""
        return self.CMD


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(_Named):
    CMD: ClassVar[Cmd] = Cmd.ALERT
    cmd_id: int
    data: AlertCode | int
    items: tuple[Item, ...] = ()
    correlator: str | None = None  # echoes an Exec's Correlator in 1226 results
    no_resp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Status(_Named):
    CMD: ClassVar[Cmd] = Cmd.STATUS
    cmd_id: int
    msg_ref: int | None  # optional in the DTD; Windows always sends it
    cmd_ref: int  # 0 for the SyncHdr
    cmd: Cmd | str
    data: StatusCode | int
    target_refs: tuple[str, ...] = ()
    source_refs: tuple[str, ...] = ()
    cred: Cred | None = None
    chal: Chal | None = None
    items: tuple[Item, ...] = ()
    original_error: str | None = None  # msft:originalerror on Data (SyncApplicationVersion >= 3.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Results(_Named):
    CMD: ClassVar[Cmd] = Cmd.RESULTS
    cmd_id: int
    cmd_ref: int
    msg_ref: int | None = None
    cmd: Cmd | str | None = None  # not in the DTD, but Windows sends <Cmd>Get</Cmd>
    meta: Meta | None = None
    items: tuple[Item, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemCommand(_Named):
    """Get, Add, Replace, Delete and Exec: a CmdID, optional Meta, Items."""

    cmd_id: int
    items: tuple[Item, ...] = ()
    meta: Meta | None = None
    no_resp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Get(ItemCommand):
    CMD: ClassVar[Cmd] = Cmd.GET


@dataclass(frozen=True, slots=True, kw_only=True)
class Add(ItemCommand):
    CMD: ClassVar[Cmd] = Cmd.ADD


@dataclass(frozen=True, slots=True, kw_only=True)
class Replace(ItemCommand):
    CMD: ClassVar[Cmd] = Cmd.REPLACE


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(ItemCommand):
    CMD: ClassVar[Cmd] = Cmd.DELETE


@dataclass(frozen=True, slots=True, kw_only=True)
class Exec(ItemCommand):
    CMD: ClassVar[Cmd] = Cmd.EXEC
    correlator: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Container(_Named):
    """Atomic and Sequence: commands applied all-or-nothing, or in order."""

    cmd_id: int
    commands: tuple[Command, ...] = ()
    meta: Meta | None = None
    no_resp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Atomic(Container):
    CMD: ClassVar[Cmd] = Cmd.ATOMIC


@dataclass(frozen=True, slots=True, kw_only=True)
class Sequence(Container):
    CMD: ClassVar[Cmd] = Cmd.SEQUENCE


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown:
    """A SyncBody element winmdm does not handle, kept so the server can answer 406 or 400."""

    name: str
    cmd_id: int


Command = Alert | Status | Results | Get | Add | Replace | Delete | Exec | Atomic | Sequence | Unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    header: SyncHdr
    commands: tuple[Command, ...] = ()
    final: bool = True


def header_status(
    header: SyncHdr, code: StatusCode | int, *, chal: Chal | None = None, cmd_id: int = 1
) -> Status:
    """The Status for the peer's SyncHdr: the first element of every reply's SyncBody (§8)."""
    return Status(cmd_id=cmd_id, msg_ref=header.msg_id, cmd_ref=0, cmd=Cmd.SYNC_HDR, data=code, chal=chal)


def command_status(
    command: Command, code: StatusCode | int, *, cmd_id: int, msg_ref: int, items: tuple[Item, ...] = ()
) -> Status:
    """The Status answering one command of the peer's message `msg_ref`."""
    return Status(
        cmd_id=cmd_id, msg_ref=msg_ref, cmd_ref=command.cmd_id, cmd=command.name, data=code, items=items
    )


def reply_header(request: SyncHdr, *, msg_id: int, meta: Meta | None = None) -> SyncHdr:
    """The header answering `request`: same SessionID, Target and Source swapped (§8)."""
    return SyncHdr(
        session_id=request.session_id, msg_id=msg_id, target=request.source, source=request.target, meta=meta
    )

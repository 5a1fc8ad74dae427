"""The mechanics of one OMA-DM session (OMA-DM 1.2 as MS-MDM uses it; protocol.md §8).

What a server keeps between the messages of a session, and how it builds each answer:
- CmdIDs: a queued command (and its children) takes the reply's next CmdIDs (`renumber`); the
  session remembers where each went (`Placed`), so the device's Status (MsgRef, CmdRef) finds it.
- Size: a reply's size is kept as it grows, command by command (`Reply`), never by rebuilding it.
- Large objects. Microsoft documents them for uploads only ("client support for uploading large
  objects to the server", oma-dm-protocol-support.md): the device's chunks (MoreData, Meta/Size in
  the first) are put together by `absorb`. The server splits a command of its own only to honour
  a MaxMsgSize the device sent; a message carrying MoreData has no Final (OMA-DM 1.2: Final marks
  the last message of a package), so the device asks for the next one with Alert 1222.

Pure: no clock and no ids of its own. The queue's references ride along as `QueuedRef`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from winmdm.protocol.syncml.codes import AlertCode, StatusCode
from winmdm.protocol.syncml.model import (
    Add,
    Alert,
    Atomic,
    Command,
    Exec,
    Message,
    Meta,
    Replace,
    Results,
    Sequence,
    Status,
    SyncHdr,
    header_status,
    reply_header,
)
from winmdm.protocol.syncml.reader import parse_fragment
from winmdm.protocol.syncml.writer import build_fragment, build_message, command_size

# A device may not make the server hold more than this for one item it sends in chunks.
MAX_OBJECT_BYTES = 8 * 1024 * 1024
_FINAL_SIZE = len(b"<Final/>")


@dataclass(frozen=True, slots=True)
class QueuedRef:
    """A command of the server's queue: the queue's key and the command's uuid."""

    id: int
    uuid: str


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a queued command went: the device's Status for (msg_id, cmd_id) answers it.

    `top` marks the element whose Status is the command's own (not a child's; of a chunked
    command, its last chunk: the chunks before are answered 213)."""

    msg_id: int
    cmd_id: int
    command: QueuedRef
    top: bool


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A later chunk of a large command, sent in a later message."""

    command: QueuedRef
    chunk: Command


@dataclass(frozen=True, slots=True)
class Assembly:
    """An item the device is sending in chunks, put together as they come.

    `answering` is the (MsgRef, CmdRef) of the server command whose Results these are; the
    device's other replies to that command are `held` until the Results are whole."""

    name: str  # Results, Replace or Add
    uri: str
    data: str
    size: int | None
    meta: Meta | None
    answering: tuple[int, int] | None = None
    held: tuple[Status, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    client_msg_id: int = 0  # the last client MsgID answered
    server_msg_id: int = 0  # the last server MsgID sent
    placed: tuple[Placed, ...] = ()
    pending: tuple[PendingChunk, ...] = ()
    incoming: Assembly | None = None

    def index(self) -> dict[tuple[int, int], Placed]:
        """Placed commands by (MsgRef, CmdRef), to look up the device's replies."""
        return {(p.msg_id, p.cmd_id): p for p in self.placed}


# -- the device's chunks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Absorbed:
    """What one client command means once chunking is accounted for."""

    command: Command | None  # the command to process now (whole), or None
    code: int | None  # the Status to answer instead of processing (213, 413, 424)
    incoming: Assembly | None  # the assembly still in progress
    released: tuple[Status, ...] = ()  # replies held by an assembly that ended


def absorb(command: Command, incoming: Assembly | None, *, max_bytes: int = MAX_OBJECT_BYTES) -> Absorbed:
    """Fold one Results/Replace/Add of the device into the chunk assembly."""
    if not isinstance(command, Results | Replace | Add) or len(command.items) != 1:
        return Absorbed(command, None, incoming)
    item = command.items[0]
    uri = item.source or item.target or ""
    released: tuple[Status, ...] = ()
    if incoming is not None and (incoming.name, incoming.uri) != (command.name, uri):
        # A new object before the last was finished: the device gave up on it (1225 territory).
        released, incoming = incoming.held, None
    if item.more_data:
        if incoming is None:
            answering = (command.msg_ref or 0, command.cmd_ref) if isinstance(command, Results) else None
            incoming = Assembly(
                name=command.name,
                uri=uri,
                data="",
                size=item.meta.size if item.meta else None,
                meta=Meta(format=item.meta.format, type=item.meta.type) if item.meta else None,
                answering=answering,
            )
        data = incoming.data + (item.data or "")
        if len(data.encode("utf-8")) > max_bytes:
            return Absorbed(None, StatusCode.REQUEST_ENTITY_TOO_LARGE, None, released + incoming.held)
        return Absorbed(None, StatusCode.CHUNK_ACCEPTED, dataclasses.replace(incoming, data=data), released)
    if incoming is None:
        return Absorbed(command, None, None, released)
    released += incoming.held
    data = incoming.data + (item.data or "")
    if incoming.size is not None and len(data.encode("utf-8")) != incoming.size:
        return Absorbed(None, StatusCode.SIZE_MISMATCH, None, released)
    whole = dataclasses.replace(item, data=data, meta=incoming.meta or item.meta, more_data=False)
    return Absorbed(dataclasses.replace(command, items=(whole,)), None, None, released)


# -- the server's messages --------------------------------------------------------------------


def renumber(command: Command, first_id: int) -> tuple[Command, list[int]]:
    """A queued command (and its children) with CmdIDs from `first_id` on, and those ids."""
    ids = [first_id]
    if isinstance(command, Atomic | Sequence):
        children = []
        for child in command.commands:
            numbered, child_ids = renumber(child, ids[-1] + 1)
            children.append(numbered)
            ids.extend(child_ids)
        return dataclasses.replace(command, cmd_id=first_id, commands=tuple(children)), ids
    return dataclasses.replace(command, cmd_id=first_id), ids


def split(command: Command, room: int) -> list[Command] | None:
    """Chunks of a one-item Add/Replace/Exec, each at most `room` bytes in a message (at the
    command's own CmdID); None when it cannot be chunked (no data, several items) or a chunk
    of one character does not fit. Sizes are the encoded bytes (escaping, UTF-8) of each chunk."""
    if not isinstance(command, Add | Replace | Exec) or len(command.items) != 1:
        return None
    item = command.items[0]
    data = item.data or ""
    if not data:
        return None
    first_meta = dataclasses.replace(item.meta or Meta(), size=len(data.encode("utf-8")))
    chunks: list[Command] = []
    start = 0
    while start < len(data):
        meta = first_meta if not chunks else None

        def chunk(end: int, meta: Meta | None = meta, start: int = start) -> Command:
            piece = dataclasses.replace(item, data=data[start:end], meta=meta, more_data=end < len(data))
            return dataclasses.replace(command, items=(piece,))

        low, high = start + 1, len(data)
        if command_size(chunk(low)) > room:
            return None
        while low < high:  # the longest piece that fits
            middle = (low + high + 1) // 2
            if command_size(chunk(middle)) <= room:
                low = middle
            else:
                high = middle - 1
        chunks.append(chunk(low))
        start = low
    return chunks


class Reply:
    """The server message answering one client message: the Status for the SyncHdr and each
    client command first, then the server's commands (protocol.md §8), sized as it grows.

    Sizing starts with the first queued command (`place`): a reply of Statuses only, the idle
    check-in, is built once and never measured."""

    def __init__(self, request: SyncHdr, msg_id: int) -> None:
        self.header = reply_header(request, msg_id=msg_id)
        self.final = True
        self._statuses: list[Command] = []
        self._commands: list[Command] = []
        self._next_id = 1
        self._measured: int | None = None  # bytes of all but `_unmeasured`, once sizing began
        self._unmeasured: list[Command] = []
        self.placed: list[Placed] = []
        self.pending: tuple[PendingChunk, ...] = ()  # chunks of a command begun in this message

    @property
    def _size(self) -> int:
        if self._measured is None:
            self._measured = len(build_message(Message(header=self.header, final=True)))
        if self._unmeasured:
            self._measured += sum(command_size(c) for c in self._unmeasured)
            self._unmeasured.clear()
        return self._measured

    @property
    def size(self) -> int:
        """Bytes of the message as built now."""
        return self._size - (0 if self.final else _FINAL_SIZE)

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(self._commands)

    def cmd_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def status(self, status: Status) -> None:
        """Append a Status numbered with `cmd_id()`."""
        self._statuses.append(status)
        self._unmeasured.append(status)

    def next_message(self) -> None:
        """Ask the device for the next message of its package (Alert 1222)."""
        self._append(Alert(cmd_id=self.cmd_id(), data=AlertCode.NEXT_MESSAGE))

    def place(self, ref: QueuedRef, command: Command, *, budget: int, device_limit: bool) -> list[int] | None:
        """Put a queued command in this message; its CmdIDs, or None when it must wait for the
        next message. A command too big for any message goes alone: whole, or, when the device
        sent its MaxMsgSize (`device_limit`) and the command can be split, its first chunk (the
        rest is `pending`, and this message has no Final)."""
        numbered, ids = renumber(command, self._next_id)
        size = command_size(numbered)
        if self._size + size > budget and self._commands:
            return None
        chunks = split(numbered, budget - self._size) if self._size + size > budget and device_limit else None
        if chunks is None:
            self._next_id = ids[-1] + 1
            self._append(numbered, size)
            self.placed.extend(Placed(self.header.msg_id, i, ref, top=i == ids[0]) for i in ids)
            return ids
        self.pending = tuple(PendingChunk(ref, c) for c in chunks[1:])
        self._chunk(ref, chunks[0], last=False)
        return [chunks[0].cmd_id]

    def next_chunk(self, pending: tuple[PendingChunk, ...]) -> tuple[PendingChunk, ...]:
        """Send the next chunk of a large command; returns the chunks still to send."""
        first, rest = pending[0], pending[1:]
        self._chunk(first.command, first.chunk, last=not rest)
        return rest

    def message(self) -> Message:
        return Message(header=self.header, commands=(*self._statuses, *self._commands), final=self.final)

    def build(self) -> bytes:
        return build_message(self.message())

    def _chunk(self, ref: QueuedRef, chunk: Command, *, last: bool) -> None:
        numbered = dataclasses.replace(chunk, cmd_id=self.cmd_id())
        self._append(numbered)
        self.placed.append(Placed(self.header.msg_id, numbered.cmd_id, ref, top=last))
        if not last:
            self.final = False  # never Final on a message with MoreData

    def _append(self, command: Command, size: int | None = None) -> None:
        self._commands.append(command)
        if size is None:
            self._unmeasured.append(command)
        else:
            self._measured = self._size + size


def refusal(request: SyncHdr, code: StatusCode | int) -> bytes:
    """A reply that applies nothing: only the Status for the SyncHdr, then Final."""
    reply = Reply(request, msg_id=1)
    reply.status(header_status(request, code, cmd_id=reply.cmd_id()))
    return reply.build()


# -- storage form -----------------------------------------------------------------------------


def dump_state(state: SessionState) -> dict[str, Any]:
    """The state as JSON values (commands as SyncML fragments), for storage."""
    return {
        "session_id": state.session_id,
        "client_msg_id": state.client_msg_id,
        "server_msg_id": state.server_msg_id,
        "placed": [[p.msg_id, p.cmd_id, p.command.id, p.command.uuid, p.top] for p in state.placed],
        "pending": [[c.command.id, c.command.uuid, _fragment(c.chunk)] for c in state.pending],
        "incoming": None if state.incoming is None else _dump_assembly(state.incoming),
    }


def load_state(data: Mapping[str, Any]) -> SessionState:
    """`dump_state` undone; ValueError (or KeyError/TypeError) when it is not that shape."""
    return SessionState(
        session_id=str(data["session_id"]),
        client_msg_id=int(data["client_msg_id"]),
        server_msg_id=int(data["server_msg_id"]),
        placed=tuple(
            Placed(int(m), int(c), QueuedRef(int(i), str(u)), bool(t)) for m, c, i, u, t in data["placed"]
        ),
        pending=tuple(
            PendingChunk(QueuedRef(int(i), str(u)), parse_fragment(f.encode("utf-8")))
            for i, u, f in data["pending"]
        ),
        incoming=None if data.get("incoming") is None else _load_assembly(data["incoming"]),
    )


def _fragment(command: Command) -> str:
    return build_fragment(command).decode("utf-8")


def _dump_assembly(a: Assembly) -> dict[str, Any]:
    return {
        "name": a.name,
        "uri": a.uri,
        "data": a.data,
        "size": a.size,
        "meta": None if a.meta is None else [a.meta.format, a.meta.type],
        "answering": None if a.answering is None else list(a.answering),
        "held": [_fragment(s) for s in a.held],
    }


def _load_assembly(data: Mapping[str, Any]) -> Assembly:
    held = tuple(parse_fragment(f.encode("utf-8")) for f in data["held"])
    if not all(isinstance(s, Status) for s in held):
        raise ValueError("a held reply is not a Status")
    meta = data["meta"]
    answering = data["answering"]
    return Assembly(
        name=str(data["name"]),
        uri=str(data["uri"]),
        data=str(data["data"]),
        size=None if data["size"] is None else int(data["size"]),
        meta=None if meta is None else Meta(format=meta[0], type=meta[1]),
        answering=None if answering is None else (int(answering[0]), int(answering[1])),
        held=held,  # type: ignore[arg-type]
    )

"""Large objects in OMA-DM sessions (MS-MDM, protocol.md §8 "Large objects"): items too big for
one message travel in chunks marked MoreData, the first carrying Meta/Size; the recipient answers
213 to each chunk but the last, and a server waiting for more sends Alert 1222."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from winmdm.protocol import syncml
from winmdm.protocol.syncml import StatusCode

# A device may not make winmdm hold more than this for one item.
MAX_OBJECT_BYTES = 8 * 1024 * 1024


def split(command: syncml.Command, fits: Callable[[syncml.Command], bool]) -> list[syncml.Command] | None:
    """Chunks of a one-item Add/Replace/Exec whose Data is too big for a message, each of which
    `fits`; None when the command cannot be chunked (no data, several items) or a chunk of one
    character does not fit."""
    if not isinstance(command, syncml.Add | syncml.Replace | syncml.Exec) or len(command.items) != 1:
        return None
    item = command.items[0]
    data = item.data or ""
    if not data:
        return None
    total = len(data.encode("utf-8"))
    first_meta = dataclasses.replace(item.meta or syncml.Meta(), size=total)
    chunks: list[syncml.Command] = []
    start = 0
    while start < len(data):
        meta = first_meta if not chunks else None

        def chunk(end: int, meta: syncml.Meta | None = meta, start: int = start) -> syncml.Command:
            piece = dataclasses.replace(item, data=data[start:end], meta=meta, more_data=end < len(data))
            return dataclasses.replace(command, items=(piece,))

        low, high = start + 1, len(data)
        if not fits(chunk(low)):
            return None
        while low < high:  # the longest piece that fits
            middle = (low + high + 1) // 2
            if fits(chunk(middle)):
                low = middle
            else:
                high = middle - 1
        chunks.append(chunk(low))
        start = low
    return chunks


@dataclasses.dataclass(frozen=True, slots=True)
class Absorbed:
    """What one client command means once chunking is accounted for."""

    command: syncml.Command | None  # the command to process now (whole), or None
    code: int | None  # the Status to answer instead of processing (213, 424, 413, 400)
    incoming: dict[str, Any] | None  # the assembly still in progress


def absorb(command: syncml.Command, incoming: dict[str, Any] | None) -> Absorbed:
    """Fold one Results/Replace/Add of the device into the chunk assembly."""
    if not isinstance(command, syncml.Results | syncml.Replace | syncml.Add) or len(command.items) != 1:
        return Absorbed(command, None, incoming)
    item = command.items[0]
    uri = item.source or item.target or ""
    key = [command.name, uri]
    if incoming is not None and incoming["key"] != key:
        # A new object before the last was finished: the device gave up on it (1225 territory).
        incoming = None
    if item.more_data:
        if incoming is None:
            size = item.meta.size if item.meta else None
            incoming = {"key": key, "data": "", "size": size, "meta": _meta(item.meta)}
        data = incoming["data"] + (item.data or "")
        if len(data.encode("utf-8")) > MAX_OBJECT_BYTES:
            return Absorbed(None, StatusCode.REQUEST_ENTITY_TOO_LARGE, None)
        return Absorbed(None, StatusCode.CHUNK_ACCEPTED, {**incoming, "data": data})
    if incoming is None:
        return Absorbed(command, None, None)
    data = incoming["data"] + (item.data or "")
    if incoming["size"] is not None and len(data.encode("utf-8")) != incoming["size"]:
        return Absorbed(None, StatusCode.SIZE_MISMATCH, None)
    meta = syncml.Meta(**incoming["meta"]) if incoming["meta"] else item.meta
    whole = dataclasses.replace(item, data=data, meta=meta, more_data=False)
    return Absorbed(dataclasses.replace(command, items=(whole,)), None, None)


def _meta(meta: syncml.Meta | None) -> dict[str, Any] | None:
    if meta is None:
        return None
    return {"format": meta.format, "type": meta.type}

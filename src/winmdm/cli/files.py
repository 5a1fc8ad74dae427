"""Files an admin names on the command line (a profile, SyncML, an MSI), read with a bound: a
wrong path (a disk image, /dev/zero) must fail at once, not fill memory before the server refuses."""

from __future__ import annotations

from pathlib import Path

import click

from winmdm.errors import InvalidInput


def read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes (`-`: standard input), refused when over `limit`."""
    if str(path) == "-":
        data = click.get_binary_stream("stdin").read(limit + 1)
    else:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{path} is over {limit} bytes, more than the server takes")
    return data


def read_text(path: Path, limit: int) -> str:
    """UTF-8 text (a byte-order mark is fine), as the API wants SyncML."""
    try:
        return read_bounded(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None

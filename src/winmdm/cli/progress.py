"""Progress on long CLI work (many hosts, a GitOps apply, an MSI upload), on stderr.

Shown only when stderr is a terminal: piped, captured or in CI the commands print exactly what
they printed before, so scripts and logs never see a spinner's escape codes. The bar goes away
when the work is done (transient): what stays on screen is the command's result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

Advance = Callable[[int], None]


def _console(console: Console | None) -> Console:
    return console or Console(stderr=True, markup=False, highlight=False)  # names may hold brackets


def _quiet(_: int = 1) -> None:
    return None


@contextmanager
def steps(
    description: str, total: int, *, console: Console | None = None, least: int = 2
) -> Iterator[Advance]:
    """A bar over `total` items; yields `advance(n)`. Quiet below `least` items (one host is
    done before a bar could be read) and when stderr is not a terminal."""
    shown = _console(console)
    if total < least or not shown.is_terminal:
        yield _quiet
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=shown, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def transfer(description: str, size: int, *, console: Console | None = None) -> Iterator[Advance]:
    """A bar over `size` bytes sent; yields `advance(n)`."""
    shown = _console(console)
    if not shown.is_terminal:
        yield _quiet
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=shown, transient=True) as bar:
        task = bar.add_task(description, total=size)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def working(description: str, *, console: Console | None = None) -> Iterator[None]:
    """A spinner while one request of unknown length runs (the server applying a spec)."""
    shown = _console(console)
    if not shown.is_terminal:
        yield
        return
    with shown.status(description):
        yield


def chunks(data: bytes, advance: Advance, size: int = 256 * 1024) -> Iterator[bytes]:
    """`data` in pieces, advancing the bar as each is handed to the connection."""
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        yield piece
        advance(len(piece))

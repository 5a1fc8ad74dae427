"""Progress is for people at a terminal: shown there, absent from pipes and captured output."""

from __future__ import annotations

import io

from rich.console import Console

from winmdm.cli.progress import chunks, steps, transfer, working


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100, markup=False), out


def test_nothing_is_written_when_not_a_terminal() -> None:
    shown, out = console(terminal=False)
    with steps("Queuing [hosts] {0}", 5, console=shown) as advance:
        advance(5)
    with transfer("Uploading agent.msi", 10, console=shown) as advance:
        assert b"".join(chunks(b"x" * 10, advance, size=3)) == b"x" * 10
    with working("Applying", console=shown):
        pass
    assert out.getvalue() == ""


def test_a_terminal_sees_the_work_and_names_are_shown_as_they_are() -> None:
    shown, out = console(terminal=True)
    with steps("Queuing [hosts] {0}", 5, console=shown) as advance:
        for _ in range(5):
            advance(1)
    assert "Queuing [hosts] {0}" in out.getvalue()
    assert "5/5" in out.getvalue()


def test_one_item_needs_no_bar() -> None:
    shown, out = console(terminal=True)
    with steps("Queuing", 1, console=shown) as advance:
        advance(1)
    assert out.getvalue() == ""

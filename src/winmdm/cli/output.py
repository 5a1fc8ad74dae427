"""What the API commands print: Rich tables for people, `--json` for scripts (docs/cli.md).

Tables and values go to stdout; notes and warnings to stderr, so stdout can be piped. Cells are
printed without Rich markup: names and paths may hold brackets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def note(text: str) -> None:
    click.echo(text, err=True)


def console() -> Console:
    shown = Console(soft_wrap=True, markup=False, highlight=False, emoji=False)
    if not shown.is_terminal:
        # Piped or captured: whole lines (a folded URL or id cannot be pasted or grepped).
        shown = Console(soft_wrap=True, markup=False, highlight=False, emoji=False, width=1000)
    return shown


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    shown = Table(title=title, box=None, title_justify="left", pad_edge=False)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*(cell(value) for value in row))
    console().print(shown)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """One `name  value` line each (a host's or a profile's details)."""
    shown = Table(box=None, show_header=False, pad_edge=False)
    shown.add_column(style="bold")
    shown.add_column(overflow="fold")
    for name, value in pairs:
        shown.add_row(name, cell(value))
    console().print(shown)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and _looks_like_time(value):
        return when(value)
    return str(value)


def when(value: str | None) -> str:
    """An API time (ISO 8601 UTC) as `2025-01-31 14:05 UTC`."""
    if not value:
        return "-"
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _looks_like_time(value: str) -> bool:
    return len(value) >= 19 and value[4] == "-" and value[7] == "-" and value[10] == "T"


class Cancelled(click.ClickException):
    exit_code = 1


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive change unless --yes; no answer (no terminal) is no."""
    if yes:
        return
    try:
        agreed = click.confirm(question, err=True, default=False)
    except click.Abort:
        agreed = False
    if not agreed:
        raise Cancelled("cancelled, nothing was changed (give --yes to skip the question)")


def typed_confirm(question: str, expected: str, yes: bool) -> None:
    """For what cannot be undone (a wipe): the admin types `expected` back."""
    if yes:
        return
    try:
        typed = click.prompt(
            f"{question}\nType {expected} to confirm", err=True, default="", show_default=False
        )
    except click.Abort:
        typed = ""
    if typed.strip() != expected:
        raise Cancelled(f"cancelled: you did not type {expected}, nothing was changed (or give --yes)")

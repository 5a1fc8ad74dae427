"""`winmdm admin create|list|delete`: admin accounts, straight on the server's database.

These work without a running server and without signing in (there is no account to sign in with
before the first one exists): run them on the server, with the same settings as `winmdm serve`
(WINMDM_* variables or --config). Human text by default, `--json` for scripts; errors are one
stderr line and an exit code (docs/cli.md).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from winmdm.cli.exits import EXIT_FAILURE
from winmdm.cli.exits import exit_code as _exit_code
from winmdm.config import load_config
from winmdm.domain.admin import Admin, Role
from winmdm.errors import InvalidInput, NotFound, WinMDMError
from winmdm.services.accounts import MIN_PASSWORD_LENGTH, AdminAccounts


def _fail(message: str, code: int) -> None:
    click.echo(f"winmdm: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """winmdm errors, and the database or file system failing, end in one line and an exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        import sqlalchemy as sa  # on use: every other `winmdm` command starts without it

        try:
            command(*args, **kwargs)
        except WinMDMError as exc:
            _fail(exc.message, _exit_code(exc))
        except sa.exc.SQLAlchemyError as exc:
            _fail(
                f"database error: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}", EXIT_FAILURE
            )
        except OSError as exc:
            _fail(f"{exc.filename or 'file system'}: {exc.strerror or exc}", EXIT_FAILURE)

    return run


_config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file (as for serve)."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
_email_option = click.option("--email", required=True, help="The admin's email (their sign-in name).")


@contextmanager
def _accounts(config_file: Path | None) -> Iterator[AdminAccounts]:
    """The accounts of the database `winmdm serve` uses with these settings, brought up to date
    the way the server does at start. Nothing else of the installation is touched."""
    from winmdm.storage import SQLStorage, create_engine_for, current_revision, migrate

    config = load_config(os.environ, config_file)
    engine = create_engine_for(config.database_url)
    try:
        fresh = current_revision(engine) is None
        migrate(engine)
        yield AdminAccounts(SQLStorage(engine), lambda: datetime.now(UTC))
        if fresh:  # only when the command succeeded: a refusal stays one line
            _note(
                "note: the database had no winmdm tables yet, so they were created; if the server "
                "uses another database, run this with its settings (WINMDM_DATABASE_URL, WINMDM_DATA_DIR)"
            )
    finally:
        engine.dispose()


def _note(text: str) -> None:
    click.echo(text, err=True)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _admin_json(admin: Admin) -> dict[str, Any]:
    return {
        "id": admin.id,
        "email": admin.email,
        "role": admin.role.value,
        "created_at": _iso(admin.created_at),
    }


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _password(given: str | None) -> str:
    """--password, or asked for: hidden and twice at a terminal, one line from a pipe."""
    if given is not None and given != "-":
        return given
    if sys.stdin.isatty():
        return click.prompt(
            f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
            hide_input=True,
            confirmation_prompt="Repeat the password",
            err=True,
        )
    line = sys.stdin.readline()
    if not line:
        raise InvalidInput(
            "no password on standard input: pipe one line, or give --password", field="password"
        )
    return line.rstrip("\r\n")


@click.group("admin")
def admin() -> None:
    """Admin accounts (on the server's database; works before the first sign-in)."""


@admin.command("create")
@_email_option
@click.option(
    "--password",
    metavar="PASSWORD|-",
    help=f"At least {MIN_PASSWORD_LENGTH} characters. Omitted or -: asked (hidden), or read from a pipe.",
)
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.ADMIN.value,
    show_default=True,
    help="admin: everything; maintainer: hosts, profiles, enrollment; observer: read only.",
)
@_json_option
@_config_option
@_one_line_errors
def create(email: str, password: str | None, role: str, as_json: bool, config_file: Path | None) -> None:
    """Make an admin account that can sign in to the web UI, the API and the CLI."""
    secret = _password(password)
    with _accounts(config_file) as accounts:
        made = accounts.create_admin(email, secret, Role(role), None)
    if as_json:
        _print_json(_admin_json(made))
        return
    click.echo(f"Created {made.role.value} {made.email} (id {made.id}); they can sign in now.")


@admin.command("list")
@_json_option
@_config_option
@_one_line_errors
def list_admins(as_json: bool, config_file: Path | None) -> None:
    """The admin accounts, by email."""
    with _accounts(config_file) as accounts:
        found = accounts.list_admins()
    if as_json:
        _print_json({"admins": [_admin_json(a) for a in found]})
        return
    if not found:
        click.echo("No admin accounts yet; make one with: winmdm admin create --email EMAIL")
        return
    table = Table(box=None)
    for column in ("ID", "EMAIL", "ROLE", "CREATED"):
        table.add_column(column)
    for a in found:
        table.add_row(
            str(a.id), a.email, a.role.value, a.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        )
    Console(soft_wrap=True, markup=False, highlight=False).print(table)


@admin.command("delete")
@_email_option
@_json_option
@_config_option
@_one_line_errors
def delete(email: str, as_json: bool, config_file: Path | None) -> None:
    """Delete an admin account and sign it out everywhere (its API tokens stop working)."""
    with _accounts(config_file) as accounts:
        found = accounts.find_admin(email)
        if found is None:
            raise NotFound(f"no admin with the email {email.strip()!r}; see winmdm admin list")
        gone = accounts.delete_admin(found.id, None)
    if as_json:
        _print_json(_admin_json(gone))
        return
    click.echo(f"Deleted {gone.role.value} {gone.email} (id {gone.id}); their tokens no longer work.")


COMMANDS = (admin,)

"""`winmdm admin create|list|delete`: admin accounts, straight on the server's database.

These work without a running server and without signing in (there is no account to sign in with
before the first one exists): run them on the server, with the same settings as `winmdm serve`
(WINMDM_* variables or --config). Human text by default, `--json` for scripts; errors are one
stderr line and an exit code (docs/cli.md).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from winmdm.cli.api_client import fail, one_line_errors
from winmdm.cli.exits import EXIT_FAILURE
from winmdm.cli.output import json_option, note, print_json, table
from winmdm.config import load_config
from winmdm.domain.admin import Admin, Role
from winmdm.errors import InvalidInput, NotFound
from winmdm.services.accounts import MIN_PASSWORD_LENGTH, AdminAccounts


def _one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """The API commands' one-line errors (winmdm errors, the file system), and the database's."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        import sqlalchemy as sa  # on use: every other `winmdm` command starts without it

        with one_line_errors():
            try:
                command(*args, **kwargs)
            except sa.exc.SQLAlchemyError as exc:
                fail(
                    f"database error: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}",
                    EXIT_FAILURE,
                )

    return run


_config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file (as for serve)."
)
_email_option = click.option("--email", required=True, help="The admin's email (their sign-in name).")


@contextmanager
def _accounts(config_file: Path | None) -> Iterator[AdminAccounts]:
    """The accounts of the database `winmdm serve` uses with these settings, brought up to date
    the way the server does at start. Nothing else of the installation is touched."""
    from winmdm import data_dir
    from winmdm.storage import SQLStorage, create_engine_for, current_revision, migrate

    config = load_config(os.environ, config_file)
    data_dir.prepare_folder(config.data_dir)
    engine = create_engine_for(config.database_url)
    try:
        fresh = current_revision(engine) is None
        migrate(engine)
        yield AdminAccounts(SQLStorage(engine), lambda: datetime.now(UTC))
        if fresh:  # only when the command succeeded: a refusal stays one line
            note(
                "note: the database had no winmdm tables yet, so they were created; if the server "
                "uses another database, run this with its settings (WINMDM_DATABASE_URL, WINMDM_DATA_DIR)"
            )
    finally:
        engine.dispose()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _admin_json(admin: Admin) -> dict[str, Any]:
    return {
        "id": admin.id,
        "email": admin.email,
        "role": admin.role.value,
        "created_at": _iso(admin.created_at),
    }


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
@json_option
@_config_option
@_one_line_errors
def create(email: str, password: str | None, role: str, as_json: bool, config_file: Path | None) -> None:
    """Make an admin account that can sign in to the web UI, the API and the CLI."""
    secret = _password(password)
    with _accounts(config_file) as accounts:
        made = accounts.create_admin(email, secret, Role(role), None)
    if as_json:
        print_json(_admin_json(made))
        return
    click.echo(f"Created {made.role.value} {made.email} (id {made.id}); they can sign in now.")


@admin.command("list")
@json_option
@_config_option
@_one_line_errors
def list_admins(as_json: bool, config_file: Path | None) -> None:
    """The admin accounts, by email."""
    with _accounts(config_file) as accounts:
        found = accounts.list_admins()
    if as_json:
        print_json({"admins": [_admin_json(a) for a in found]})
        return
    if not found:
        click.echo("No admin accounts yet; make one with: winmdm admin create --email EMAIL")
        return
    table(
        None,
        ("ID", "EMAIL", "ROLE", "CREATED"),
        [(a.id, a.email, a.role.value, _iso(a.created_at)) for a in found],
    )


@admin.command("delete")
@_email_option
@json_option
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
        print_json(_admin_json(gone))
        return
    click.echo(f"Deleted {gone.role.value} {gone.email} (id {gone.id}); their tokens no longer work.")


COMMANDS = (admin,)

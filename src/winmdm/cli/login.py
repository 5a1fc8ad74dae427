"""`winmdm login` and `winmdm logout`: a session token stored for the other commands."""

from __future__ import annotations

import os

import click

from winmdm.cli.api_client import (
    CA_ENV,
    SERVER_ENV,
    APIClient,
    APIError,
    Credentials,
    credentials_path,
    forget_credentials,
    load_credentials,
    one_line_errors,
    save_credentials,
    server_url,
)
from winmdm.cli.exits import EXIT_CONFIG
from winmdm.cli.output import json_option, note, print_json, when
from winmdm.errors import InvalidInput

PASSWORD_ENV = "WINMDM_PASSWORD"


@click.command("login")
@click.option("--server", "server_option", metavar="URL", help=f"winmdm server URL (or {SERVER_ENV}).")
@click.option("--email", required=True, help="Your admin email.")
@click.option(
    "--password",
    metavar="TEXT",
    help=f"Your password (or {PASSWORD_ENV}); asked for when not given, which keeps it out of "
    "the shell history.",
)
@click.option(
    "--ca-file", "ca_option", metavar="PEM", help=f"CA certificate(s) to trust for the server (or {CA_ENV})."
)
@json_option
def login(
    server_option: str | None, email: str, password: str | None, ca_option: str | None, as_json: bool
) -> None:
    """Sign in to a winmdm server; later commands use the session (24 hours)."""
    with one_line_errors():
        given = server_option or os.environ.get(SERVER_ENV)
        if not given:
            raise APIError(f"give --server URL (or set {SERVER_ENV})", EXIT_CONFIG)
        url = server_url(given)
        password = password or os.environ.get(PASSWORD_ENV)
        if not password:
            password = click.prompt(f"Password for {email}", hide_input=True, err=True)
        if not password:
            raise InvalidInput("the password is empty")
        ca_file = ca_option or os.environ.get(CA_ENV)
        if ca_file:
            ca_file = os.path.abspath(os.path.expanduser(ca_file))
        with APIClient(url, None, ca_file) as api:
            answer = api.post("/login", {"email": email, "password": password})
        admin = answer.get("admin") or {}
        stored = Credentials(
            server=url,
            token=answer["token"],
            ca_file=ca_file,
            email=admin.get("email", email),
            expires_at=answer.get("expires_at"),
        )
        path = save_credentials(stored)
    if as_json:
        print_json({"server": url, "admin": admin, "expires_at": stored.expires_at, "credentials": str(path)})
        return
    role = f" ({admin['role']})" if admin.get("role") else ""
    click.echo(f"Logged in to {url} as {stored.email}{role} until {when(stored.expires_at)}.")
    note(f"The session token is stored in {path} (readable only by you); winmdm logout ends it.")


@click.command("logout")
def logout() -> None:
    """End the stored session on the server and forget it here."""
    with one_line_errors():
        stored = load_credentials()
        if stored is None:
            click.echo(f"Not logged in (no {credentials_path()}).")
            return
        try:
            with APIClient(stored.server, stored.token, stored.ca_file) as api:
                api.post("/logout")
        except APIError as exc:
            # Forgotten here anyway; an expired or revoked session needs no ending.
            if exc.code != "unauthenticated":
                note(f"warning: the server did not end the session ({exc.message}); it expires by itself")
        forget_credentials()
    click.echo(f"Logged out of {stored.server}.")


COMMANDS = (login, logout)

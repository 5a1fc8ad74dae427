"""`winmdm deep-link`, `enrollment-secret` and `bulk-package`: enrollment commands for admins.

Until the REST API exists they act directly on the server's database and data dir, found through
the same settings as `winmdm serve`, so admins run them on the server. Human text by default,
`--json` for scripts; errors are one stderr line with the exit code of `exit_code`.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
from rich.console import Console
from rich.table import Table

from winmdm.config import load_config
from winmdm.domain.identity import EnrollmentSecret, Team
from winmdm.errors import ConfigError, InvalidInput, NotFound, WinMDMError
from winmdm.services.bulk import NewSecret, bulk_upn, wcd_customizations
from winmdm.services.deep_link import LINK_TOKEN_PARAMETER

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
EXIT_INVALID = 4

DEFAULT_PACKAGE_NAME = "winmdm bulk enrollment"
_MAX_PACKAGE_NAME = 64


def exit_code(exc: WinMDMError) -> int:
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, InvalidInput):
        return EXIT_INVALID
    return EXIT_FAILURE


def fail(message: str, code: int) -> None:
    click.echo(f"winmdm: {' '.join(message.split())}", err=True)
    sys.exit(code)


def one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """winmdm errors, and the database or file system failing, end in one line and an exit code."""
    import sqlalchemy as sa

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except WinMDMError as exc:
            fail(exc.message, exit_code(exc))
        except sa.exc.SQLAlchemyError as exc:
            fail(
                f"database error: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}", EXIT_FAILURE
            )
        except OSError as exc:
            fail(f"{exc.filename or 'file system'}: {exc.strerror or exc}", EXIT_FAILURE)

    return run


config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file (as for serve)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
team_option = click.option(
    "--team", "team_ref", metavar="NAME_OR_ID", help="Team name or id (default: No team)."
)


@contextmanager
def server_runtime(config_file: Path | None) -> Iterator[Any]:
    """The installation `winmdm serve` runs with these settings. A data dir without a device CA is
    refused: a link or secret made for a fresh, empty one would not work on the real server."""
    from winmdm.runtime import build

    config = load_config(os.environ, config_file)
    if not (config.data_dir / "device-ca.crt").exists():
        raise ConfigError(
            "WINMDM_DATA_DIR",
            f"{config.data_dir} holds no winmdm installation (no device-ca.crt); run these commands "
            "with the server's settings, or run `winmdm serve` once first",
        )
    runtime = build(config, with_tls=False)
    try:
        yield runtime
    finally:
        runtime.close()


def resolve_team(runtime: Any, ref: str | None) -> Team | None:
    """None (No team) without --team; else the team with that id, or else that exact name."""
    if ref is None:
        return None
    wanted = ref.strip()
    with runtime.storage.transaction() as tx:
        if wanted.isdigit():
            team = tx.teams.get(int(wanted))
            if team is not None:
                return team
        for team in tx.teams.list():
            if team.name == wanted:
                return team
    raise NotFound(f"no team named {wanted!r} (give a team's exact name or its id)")


# --- output ---------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


def _shown(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _team_json(team: Team | None) -> dict[str, Any] | None:
    return None if team is None else {"id": team.id, "name": team.name}


def _team_text(team: Team | None) -> str:
    return "No team" if team is None else f"team {team.name!r} (id {team.id})"


def _secret_json(record: EnrollmentSecret) -> dict[str, Any]:
    return {
        "id": record.id,
        "team_id": record.team_id,
        "created_at": _iso(record.created_at),
        "revoked_at": _iso(record.revoked_at),
    }


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _note(text: str) -> None:
    """Commentary goes to stderr, so stdout holds only the link or secret (pipe-able)."""
    click.echo(text, err=True)


# --- deep-link ------------------------------------------------------------------------------------


@click.command("deep-link")
@click.option(
    "--username", metavar="UPN", help="The user's principal name (user@domain), filled in for them."
)
@click.option(
    "--preauthorize", is_flag=True, help="Let that user enroll one PC without signing in (single use)."
)
@json_option
@config_option
@one_line_errors
def deep_link(username: str | None, preauthorize: bool, as_json: bool, config_file: Path | None) -> None:
    """Print an ms-device-enrollment: link that starts MDM enrollment in Windows Settings."""
    from winmdm.runtime import utc_now

    with server_runtime(config_file) as runtime:
        now = utc_now()
        link = runtime.deep_links.link(username, preauthorize=preauthorize, now=now)
        expires = _link_expiry(runtime, link, now) if preauthorize else None
        sign_in_ready = runtime.oidc is not None
    user = (username or "").strip() or None
    if as_json:
        _print_json(
            {"link": link, "username": user, "preauthorized": preauthorize, "expires_at": _iso(expires)}
        )
        return
    click.echo(link)
    who = f" as {user}" if user else ""
    if expires is not None:
        _note(
            f"Opened on a Windows PC, this link enrolls that PC in winmdm{who} without signing in; "
            f"it works once and expires {_shown(expires)}. Send it only to {user}."
        )
        return
    _note(f"Opened on a Windows PC, this link starts MDM enrollment in Settings{who}; the user signs in.")
    if not sign_in_ready:
        _note(
            "warning: no sign-in is set up (WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID, "
            "WINMDM_OIDC_CLIENT_SECRET), so this enrollment is refused; use --preauthorize instead"
        )


def _link_expiry(runtime: Any, link: str, now: datetime) -> datetime:
    servername = parse_qs(urlsplit(link).query)["servername"][0]
    token = parse_qs(urlsplit(servername).query)[LINK_TOKEN_PARAMETER][0]
    return runtime.enrollment_tokens.verify(token, now).expires


# --- enrollment-secret ----------------------------------------------------------------------------


@click.group("enrollment-secret")
def enrollment_secret() -> None:
    """Bulk-enrollment secrets of a team (stored hashed; shown once when made)."""


@enrollment_secret.command("create")
@team_option
@json_option
@config_option
@one_line_errors
def secret_create(team_ref: str | None, as_json: bool, config_file: Path | None) -> None:
    """Make another secret for the team; its other secrets keep working."""
    with server_runtime(config_file) as runtime:
        team = resolve_team(runtime, team_ref)
        new = runtime.bulk.create(None if team is None else team.id)
    _show_new_secret(new, team, revoked=[], as_json=as_json)


@enrollment_secret.command("rotate")
@team_option
@json_option
@config_option
@one_line_errors
def secret_rotate(team_ref: str | None, as_json: bool, config_file: Path | None) -> None:
    """Make a new secret for the team and revoke all its others now."""
    with server_runtime(config_file) as runtime:
        team = resolve_team(runtime, team_ref)
        new, revoked = _rotate(runtime, team)
    _show_new_secret(new, team, revoked=revoked, as_json=as_json)


@enrollment_secret.command("list")
@team_option
@json_option
@config_option
@one_line_errors
def secret_list(team_ref: str | None, as_json: bool, config_file: Path | None) -> None:
    """The team's secrets: id, when made, when revoked (never the secrets themselves)."""
    with server_runtime(config_file) as runtime:
        team = resolve_team(runtime, team_ref)
        records = runtime.bulk.list(None if team is None else team.id)
    if as_json:
        _print_json({"team": _team_json(team), "secrets": [_secret_json(r) for r in records]})
        return
    if not records:
        click.echo(
            f"{_team_text(team)} has no enrollment secrets; make one with winmdm enrollment-secret create"
        )
        return
    table = Table(title=f"Enrollment secrets of {_team_text(team)}", box=None, title_justify="left")
    for column in ("ID", "CREATED", "REVOKED"):
        table.add_column(column)
    for r in records:
        table.add_row(str(r.id), _shown(r.created_at), "-" if r.revoked_at is None else _shown(r.revoked_at))
    Console(soft_wrap=True, markup=False, highlight=False).print(table)


def _rotate(runtime: Any, team: Team | None) -> tuple[NewSecret, list[int]]:
    team_id = None if team is None else team.id
    active = {r.id for r in runtime.bulk.list(team_id) if r.revoked_at is None}
    new = runtime.bulk.rotate(team_id)
    revoked = [r.id for r in runtime.bulk.list(team_id) if r.id in active and r.revoked_at is not None]
    return new, revoked


def _show_new_secret(new: NewSecret, team: Team | None, *, revoked: list[int], as_json: bool) -> None:
    if as_json:
        _print_json(
            {"secret": new.secret, **_secret_json(new.record), "team": _team_json(team), "revoked": revoked}
        )
        return
    click.echo(new.secret)
    _note(
        f"Enrollment secret {new.record.id} for {_team_text(team)}. It is shown only now: winmdm stores "
        "only its hash. It goes into a provisioning package (winmdm bulk-package writes one)."
    )
    if revoked:
        _note(_revoked_text(revoked))


def _revoked_text(ids: list[int]) -> str:
    listed = ", ".join(map(str, ids))
    if len(ids) == 1:
        return f"Revoked secret {listed}: packages made with it no longer enroll PCs."
    return f"Revoked secrets {listed}: packages made with them no longer enroll PCs."


# --- bulk-package ---------------------------------------------------------------------------------


@click.command("bulk-package")
@team_option
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="Customizations XML file to write."
)
@click.option("--name", "package_name", default=DEFAULT_PACKAGE_NAME, show_default=True, help="Package name.")
@click.option("--rotate", is_flag=True, help="Revoke the team's other secrets (their packages stop working).")
@json_option
@config_option
@one_line_errors
def bulk_package(
    team_ref: str | None, out: Path, package_name: str, rotate: bool, as_json: bool, config_file: Path | None
) -> None:
    """Write the Windows Configuration Designer settings that enroll PCs into the team."""
    name = package_name.strip()
    if not name or len(name) > _MAX_PACKAGE_NAME or not name.isprintable():
        raise InvalidInput(f"--name must be 1 to {_MAX_PACKAGE_NAME} printable characters")
    out = out.expanduser().absolute()
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a directory; give a file name such as {out / 'winmdm-bulk.xml'}")
    if not out.parent.is_dir():
        raise InvalidInput(f"--out {out}: the folder {out.parent} does not exist")
    with server_runtime(config_file) as runtime:
        team = resolve_team(runtime, team_ref)
        with _private_file(out) as handle:
            # The file is open before the secret exists: a rotation never leaves the team with no package.
            if rotate:
                new, revoked = _rotate(runtime, team)
            else:
                new, revoked = runtime.bulk.create(None if team is None else team.id), []
            handle.write(
                wcd_customizations(
                    endpoints=runtime.endpoints,
                    server_host=runtime.config.server_host,
                    secret=new.secret,
                    package_name=name,
                )
            )
        upn, discovery = bulk_upn(runtime.config.server_host), runtime.endpoints.discovery
    if as_json:
        _print_json(
            {
                "file": str(out),
                "team": _team_json(team),
                "secret_id": new.record.id,
                "revoked": revoked,
                "upn": upn,
                "discovery_url": discovery,
            }
        )
        return
    lines = [
        f"Wrote {out} (readable only by you: it holds enrollment secret {new.record.id} "
        f"of {_team_text(team)}).",
        f"PCs enroll as {upn} through {discovery}, as On (automatic).",
        "Next, in Windows Configuration Designer (Windows ADK), as administrator:",
        f'  1. Build the package: icd.exe /Build-ProvisioningPackage /CustomizationXML:"{out.name}" '
        '/PackagePath:"winmdm-bulk.ppkg"',
        "  2. Apply the .ppkg on each PC: open it, or Settings > Accounts > Access work or school > "
        "Add or remove a provisioning package, or from a USB drive during Windows setup.",
        "  3. Keep the .ppkg like a password; winmdm enrollment-secret rotate stops it working.",
    ]
    if revoked:
        lines.append(_revoked_text(revoked))
    click.echo("\n".join(lines))


@contextmanager
def _private_file(path: Path) -> Iterator[Any]:
    """Written beside `path` with mode 0600 from the start, then moved into place whole."""
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(aside, 0o600)
        os.replace(aside, path)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise


COMMANDS = (deep_link, enrollment_secret, bulk_package)

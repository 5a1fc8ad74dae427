"""`winmdm deep-link`, `enrollment-secret` and `bulk-package`: enrollment commands for admins.

They act through the server's API (docs/api.md "Enrollment", "Teams"), with the same rules and
errors as the API and the UI. `bulk-package` writes the Windows Configuration Designer file here,
with a secret the server made. Human text by default, `--json` for scripts; the link or secret
alone on stdout (pipe-able), commentary on stderr.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.output import json_option, note, print_json, table, when
from winmdm.cli.teams import resolve_team, team_id, team_option, team_text
from winmdm.errors import InvalidInput
from winmdm.services.endpoints import Endpoints

DEFAULT_PACKAGE_NAME = "winmdm bulk enrollment"
_MAX_PACKAGE_NAME = 64


def _team_json(team: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if team is None else {"id": team["id"], "name": team["name"]}


def _secret_json(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "team_id": record["team_id"] or None,
        "created_at": record["created_at"],
        "revoked_at": record.get("revoked_at"),
    }


# --- deep-link ------------------------------------------------------------------------------------


@click.command("deep-link")
@click.option(
    "--username", metavar="UPN", help="The user's principal name (user@domain), filled in for them."
)
@click.option(
    "--preauthorize", is_flag=True, help="Let that user enroll one PC without signing in (single use)."
)
@json_option
@with_api
def deep_link(username: str | None, preauthorize: bool, as_json: bool, api: APIClient) -> None:
    """Print an ms-device-enrollment: link that starts MDM enrollment in Windows Settings."""
    made = api.post("/enrollment/deep_link", {"username": username, "preauthorized": preauthorize})
    link, expires = made["url"], made.get("expires_at")
    user = (username or "").strip() or None
    if as_json:
        print_json({"link": link, "username": user, "preauthorized": preauthorize, "expires_at": expires})
        return
    click.echo(link)
    who = f" as {user}" if user else ""
    if preauthorize:
        note(
            f"Opened on a Windows PC, this link enrolls that PC in winmdm{who} without signing in; "
            f"it works once and expires {when(expires)}. Send it only to {user}."
        )
        return
    note(f"Opened on a Windows PC, this link starts MDM enrollment in Settings{who}; the user signs in.")
    if not api.get("/config")["server"].get("sign_in_configured"):
        note(
            "warning: no sign-in is set up (WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID, "
            "WINMDM_OIDC_CLIENT_SECRET), so this enrollment is refused; use --preauthorize instead"
        )


# --- enrollment-secret ----------------------------------------------------------------------------


@click.group("enrollment-secret")
def enrollment_secret() -> None:
    """Enrollment secrets of a team, for bulk-enrollment packages and osquery's
    --enroll_secret_path (stored hashed; shown once when made)."""


def _secrets_path(team: dict[str, Any] | None) -> str:
    return f"/teams/{team_id(team)}/enrollment_secrets"


def _secrets(api: APIClient, team: dict[str, Any] | None) -> list[dict[str, Any]]:
    return api.get(_secrets_path(team))["enrollment_secrets"]


def _rotate(api: APIClient, team: dict[str, Any] | None) -> tuple[dict[str, Any], list[int]]:
    active = {s["id"] for s in _secrets(api, team) if s.get("revoked_at") is None}
    new = api.post(_secrets_path(team) + "/rotate")
    revoked = [s["id"] for s in _secrets(api, team) if s["id"] in active and s.get("revoked_at") is not None]
    return new, revoked


@enrollment_secret.command("create")
@team_option
@json_option
@with_api
def secret_create(team_ref: str | None, as_json: bool, api: APIClient) -> None:
    """Make another secret for the team; its other secrets keep working."""
    team = resolve_team(api, team_ref)
    _show_new_secret(api.post(_secrets_path(team)), team, revoked=[], as_json=as_json)


@enrollment_secret.command("rotate")
@team_option
@json_option
@with_api
def secret_rotate(team_ref: str | None, as_json: bool, api: APIClient) -> None:
    """Make a new secret for the team and revoke all its others now."""
    team = resolve_team(api, team_ref)
    new, revoked = _rotate(api, team)
    _show_new_secret(new, team, revoked=revoked, as_json=as_json)


@enrollment_secret.command("list")
@team_option
@json_option
@with_api
def secret_list(team_ref: str | None, as_json: bool, api: APIClient) -> None:
    """The team's secrets: id, when made, when revoked (never the secrets themselves)."""
    team = resolve_team(api, team_ref)
    records = _secrets(api, team)
    if as_json:
        print_json({"team": _team_json(team), "secrets": [_secret_json(r) for r in records]})
        return
    if not records:
        click.echo(
            f"{team_text(team)} has no enrollment secrets; make one with winmdm enrollment-secret create"
        )
        return
    rows = [(r["id"], when(r["created_at"]), when(r.get("revoked_at"))) for r in records]
    table(f"Enrollment secrets of {team_text(team)}", ("ID", "CREATED", "REVOKED"), rows)


@enrollment_secret.command("revoke")
@click.argument("secret_id", type=int)
@team_option
@json_option
@with_api
def secret_revoke(secret_id: int, team_ref: str | None, as_json: bool, api: APIClient) -> None:
    """Revoke one secret now: packages made with it no longer enroll PCs."""
    team = resolve_team(api, team_ref)
    api.delete(f"{_secrets_path(team)}/{secret_id}")
    if as_json:
        print_json({"team": _team_json(team), "revoked": [secret_id]})
        return
    click.echo(_revoked_text([secret_id]))


def _show_new_secret(
    new: dict[str, Any], team: dict[str, Any] | None, *, revoked: list[int], as_json: bool
) -> None:
    if as_json:
        print_json(
            {"secret": new["secret"], **_secret_json(new), "team": _team_json(team), "revoked": revoked}
        )
        return
    click.echo(new["secret"])
    note(
        f"Enrollment secret {new['id']} for {team_text(team)}. It is shown only now: winmdm stores "
        "only its hash. It goes into a provisioning package (winmdm bulk-package writes one) or "
        "osquery's --enroll_secret_path file (docs/agent-channel.md)."
    )
    if revoked:
        note(_revoked_text(revoked))


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
@with_api
def bulk_package(
    team_ref: str | None, out: Path, package_name: str, rotate: bool, as_json: bool, api: APIClient
) -> None:
    """Write the Windows Configuration Designer settings that enroll PCs into the team."""
    # Here, not at the top: it brings the storage layer, which the other commands never need.
    from winmdm.services.bulk import bulk_upn, wcd_customizations

    name = package_name.strip()
    if not name or len(name) > _MAX_PACKAGE_NAME or not name.isprintable():
        raise InvalidInput(f"--name must be 1 to {_MAX_PACKAGE_NAME} printable characters")
    out = out.expanduser().absolute()
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a directory; give a file name such as {out / 'winmdm-bulk.xml'}")
    if not out.parent.is_dir():
        raise InvalidInput(f"--out {out}: the folder {out.parent} does not exist")
    team = resolve_team(api, team_ref)
    server_url = api.get("/config")["server"]["server_url"]
    endpoints, server_host = Endpoints.from_server_url(server_url), urlsplit(server_url).hostname or ""
    with _private_file(out) as handle:
        # The file is open before the secret exists: a rotation never leaves the team with no package.
        new, revoked = _rotate(api, team) if rotate else (api.post(_secrets_path(team)), [])
        handle.write(
            wcd_customizations(
                endpoints=endpoints, server_host=server_host, secret=new["secret"], package_name=name
            )
        )
    upn, discovery = bulk_upn(server_host), endpoints.discovery
    if as_json:
        print_json(
            {
                "file": str(out),
                "team": _team_json(team),
                "secret_id": new["id"],
                "revoked": revoked,
                "upn": upn,
                "discovery_url": discovery,
            }
        )
        return
    lines = [
        f"Wrote {out} (readable only by you: it holds enrollment secret {new['id']} of {team_text(team)}).",
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

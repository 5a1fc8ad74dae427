"""`winmdm config` (MDM settings, license, server URLs), `winmdm activities` and
`winmdm agent package`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.files import read_bounded
from winmdm.cli.output import fields, json_option, note, print_json, table, when
from winmdm.cli.progress import chunks, transfer
from winmdm.errors import InvalidInput

TRUE = ("true", "on", "yes", "1")
FALSE = ("false", "off", "no", "0")


@click.group("config")
def config() -> None:
    """The server's MDM settings (mdm.*), license and URLs."""


@config.command("show")
@json_option
@with_api
def show(as_json: bool, api: APIClient) -> None:
    """Settings, license tier and what to register in Entra."""
    found = api.get("/config")
    if as_json:
        print_json(found)
        return
    lic, server = found["license"], found["server"]
    tier = str(lic.get("tier", "")).capitalize()
    if lic.get("organization"):
        tier += f" ({lic['organization']}, until {when(lic.get('expires_at'))})"
    pairs: list[tuple[str, Any]] = [(f"mdm.{key}", value) for key, value in found["mdm"].items()]
    pairs += [("license", tier)]
    pairs += [(f"server.{key}", _value(value)) for key, value in server.items()]
    fields(pairs)
    if lic.get("warning"):
        note(f"warning: {lic['warning']}")


def _value(value: Any) -> Any:
    return ", ".join(value) if isinstance(value, list) else value


@config.command("set")
@click.argument("key")
@click.argument("value")
@json_option
@with_api
def set_value(key: str, value: str, as_json: bool, api: APIClient) -> None:
    """Change one setting, e.g. `winmdm config set mdm.enable_turn_on_windows_mdm_manually true`."""
    name = key.strip().removeprefix("mdm.")
    wanted: Any = value
    if value.strip().lower() in TRUE:
        wanted = True
    elif value.strip().lower() in FALSE:
        wanted = False
    # Anything else goes to the server as typed: its error has the API's words.
    found = api.patch("/config", {"mdm": {name: wanted}})
    if as_json:
        print_json(found)
        return
    shown = found["mdm"].get(name)
    click.echo(f"mdm.{name} is {'true' if shown else 'false'}.")


@click.group("activities")
def activities() -> None:
    """The activity feed: enrollments, unenrollments and every admin change."""


@activities.command("list")
@click.option("--host", "host_id", type=int, help="Only this host's activities (host id).")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@with_api
def list_activities(host_id: int | None, page: int, per_page: int, as_json: bool, api: APIClient) -> None:
    """What happened, newest first: enrollments, admin changes, unenrollments."""
    found = api.get("/activities", host_id=host_id, page=page, per_page=per_page)
    if as_json:
        print_json(found)
        return
    rows = [
        (a["created_at"], a["type"], a.get("actor"), a.get("host_id"), _details(a.get("details") or {}))
        for a in found["activities"]
    ]
    table(None, ("WHEN", "ACTIVITY", "BY", "HOST", "DETAILS"), rows)
    if found["total"] > page * per_page:
        note(f"{found['total']} activities in all (--page {page + 1} for older ones).")


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in details.items() if v is not None and not k.endswith("_id"))


@click.group("agent")
def agent() -> None:
    """The agent package every newly enrolled host installs."""


@agent.group("package")
def package() -> None:
    """Show or set the agent MSI."""


@package.command("show")
@json_option
@with_api
def package_show(as_json: bool, api: APIClient) -> None:
    """The current agent package."""
    found = api.get("/agent_package")["agent_package"]
    if as_json:
        print_json({"agent_package": found})
        return
    if found is None:
        click.echo("No agent package is set (winmdm agent package set).")
        return
    fields(_package_fields(found))


def _package_fields(found: dict[str, Any]) -> list[tuple[str, Any]]:
    source = found.get("url") or f"uploaded MSI ({found.get('size')} bytes)"
    return [
        ("Product code", found["product_code"]),
        ("Version", found["version"]),
        ("SHA-256", found["sha256"]),
        ("Install arguments", found.get("install_args")),
        ("Source", source),
        ("Updated", found.get("updated_at")),
    ]


@package.command("set")
@click.option("--url", help="https:// URL Windows downloads the MSI from (with --sha256).")
@click.option("--sha256", help="SHA-256 of the MSI at --url (64 hex characters).")
@click.option("--file", "msi", type=click.Path(path_type=Path, dir_okay=False), help="Upload this MSI.")
@click.option("--product-code", required=True, help="The MSI's ProductCode, {GUID}.")
@click.option("--version", "version", required=True, help="The MSI's ProductVersion, e.g. 1.2.3.")
@click.option("--install-args", default="", help="msiexec arguments, e.g. /quiet.")
@json_option
@with_api
def package_set(
    url: str | None,
    sha256: str | None,
    msi: Path | None,
    product_code: str,
    version: str,
    install_args: str,
    as_json: bool,
    api: APIClient,
) -> None:
    """Set the agent package: an MSI at a URL with its SHA-256, or an MSI file uploaded."""
    if (url is None) == (msi is None):
        raise click.UsageError("give --url with --sha256, or --file")
    if msi is not None:
        if sha256 is not None:
            raise click.UsageError("--sha256 goes with --url; for --file winmdm computes it")
        from winmdm.web.api.app import MAX_UPLOAD_BYTES  # here: the other commands need no FastAPI

        # Sent whole (up to the server's upload limit, 200 MiB), so read with that bound.
        data = read_bounded(msi, MAX_UPLOAD_BYTES)
        with transfer(f"Uploading {msi.name}", len(data)) as advance:
            found = api.request(
                "POST",
                "/agent_package/upload",
                params={"product_code": product_code, "version": version, "install_args": install_args},
                content=chunks(data, advance),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            )["agent_package"]
    else:
        if not sha256:
            raise InvalidInput("--sha256 is required with --url: the SHA-256 of the MSI")
        body = {"url": url, "sha256": sha256, "product_code": product_code, "version": version}
        found = api.put("/agent_package", {**body, "install_args": install_args})["agent_package"]
    if as_json:
        print_json({"agent_package": found})
        return
    click.echo(f"Agent package set: {found['product_code']} {found['version']}.")
    note("Hosts that enroll from now on install it; hosts enrolled before keep what they have.")


COMMANDS = (config, activities, agent)

"""`winmdm commands`: SyncML, reboot, wipe and unenroll sent to hosts, and their results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.files import read_text
from winmdm.cli.hosts import resolve_host
from winmdm.cli.output import confirm, json_option, note, print_json, table, typed_confirm
from winmdm.cli.progress import steps

MAX_SYNCML_BYTES = 1024 * 1024  # the API's default body limit; the server's own check has the words


@click.group("commands")
def commands() -> None:
    """Commands to hosts (delivered in their next management session)."""


def _queued(host: dict[str, Any], what: str, answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"host_id": host["id"], "command_uuid": answer["command_uuid"]})
        return
    click.echo(answer["command_uuid"])
    note(
        f"{what} queued for {host['display_name']} (id {host['id']}); it runs in the host's next "
        f"management session. See the result with: winmdm commands results {answer['command_uuid']}"
    )


@commands.command("run")
@click.argument("host_refs", metavar="HOST...", nargs=-1, required=True)
@click.option(
    "-f",
    "--file",
    "syncml_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="SyncML commands (Get, Add, Replace, Delete, Exec, Atomic...) to send; - for stdin.",
)
@json_option
@with_api
def run(host_refs: tuple[str, ...], syncml_file: Path, as_json: bool, api: APIClient) -> None:
    """Send your own SyncML commands to hosts."""
    text = read_text(syncml_file, MAX_SYNCML_BYTES)
    # Every host is found before anything is queued: a typo queues nothing.
    with steps("Finding hosts", len(host_refs)) as advance:
        hosts = []
        for ref in host_refs:
            hosts.append(resolve_host(api, ref))
            advance(1)
    queued = []
    with steps("Queuing", len(hosts)) as advance:
        for host in hosts:
            answer = api.post(f"/hosts/{host['id']}/commands", {"syncml": text})
            queued.append({"host_id": host["id"], "command_uuid": answer["command_uuid"]})
            advance(1)
    if as_json:
        print_json({"commands": queued})
        return
    for host, entry in zip(hosts, queued, strict=True):
        click.echo(f"{entry['command_uuid']}  {host['display_name']} (id {host['id']})")
    note("Queued; each runs in its host's next management session (winmdm commands results UUID).")


@commands.command("reboot")
@click.argument("host_ref", metavar="HOST")
@json_option
@with_api
def reboot(host_ref: str, as_json: bool, api: APIClient) -> None:
    """Restart the PC (Reboot CSP RebootNow)."""
    host = resolve_host(api, host_ref)
    _queued(host, "Reboot", api.post(f"/hosts/{host['id']}/reboot"), as_json)


@commands.command("refetch")
@click.argument("host_ref", metavar="HOST")
@json_option
@with_api
def refetch(host_ref: str, as_json: bool, api: APIClient) -> None:
    """Read the host's inventory again."""
    host = resolve_host(api, host_ref)
    _queued(host, "Refetch", api.post(f"/hosts/{host['id']}/refetch"), as_json)


@commands.command("wipe")
@click.argument("host_ref", metavar="HOST")
@click.option("--protected", is_flag=True, help="doWipeProtected: also survives a user's attempt to stop it.")
@click.option("--yes", is_flag=True, help="Do not ask (scripts).")
@json_option
@with_api
def wipe(host_ref: str, protected: bool, yes: bool, as_json: bool, api: APIClient) -> None:
    """Erase the PC and reinstall Windows (RemoteWipe CSP). Asks you to type the host's name."""
    host = resolve_host(api, host_ref)
    typed_confirm(
        f"Wiping {host['display_name']} (id {host['id']}) erases everything on it. It cannot be undone.",
        host["display_name"],
        yes,
    )
    _queued(host, "Wipe", api.post(f"/hosts/{host['id']}/wipe", {"protected": protected}), as_json)


@commands.command("unenroll")
@click.argument("host_ref", metavar="HOST")
@click.option("--yes", is_flag=True, help="Do not ask.")
@json_option
@with_api
def unenroll(host_ref: str, yes: bool, as_json: bool, api: APIClient) -> None:
    """Turn MDM off on the PC; it leaves winmdm's management."""
    host = resolve_host(api, host_ref)
    confirm(f"Unenroll {host['display_name']} (id {host['id']}) from MDM?", yes)
    _queued(host, "Unenroll", api.post(f"/hosts/{host['id']}/unenroll"), as_json)


@commands.command("results")
@click.argument("command_uuid")
@json_option
@with_api
def results(command_uuid: str, as_json: bool, api: APIClient) -> None:
    """What each host answered to a command."""
    found = api.get(f"/commands/{command_uuid.strip()}/results")
    if as_json:
        print_json(found)
        return
    rows = []
    for result in found["results"]:
        codes = ", ".join(
            f"{r['cmd']} {r['code']}" for r in result.get("replies", []) if r.get("code") is not None
        )
        values = "; ".join(
            f"{uri}={value}" for r in result.get("replies", []) for uri, value in r.get("items", [])
        )
        rows.append(
            (
                result["host_id"],
                result["state"],
                result.get("status_code"),
                codes,
                values,
                result.get("done_at"),
            )
        )
    table(None, ("HOST", "STATE", "STATUS", "REPLIES", "RESULTS", "DONE"), rows)


COMMANDS = (commands,)

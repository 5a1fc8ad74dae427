"""`winmdm hosts`: list, show, delete, transfer between teams, and the MDM summary."""

from __future__ import annotations

from typing import Any

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.output import confirm, fields, json_option, note, print_json, table
from winmdm.cli.progress import steps
from winmdm.cli.teams import resolve_team, team_id, team_option, team_text
from winmdm.errors import InvalidInput, NotFound

STATUSES = ("on_manual", "on_automatic", "off", "pending")
PAGE_MAX = 500  # the API's per_page limit, also used as the transfer batch size


def resolve_host(api: APIClient, ref: str) -> dict[str, Any]:
    """A host by id, or else the one host whose name, serial or ids match the text exactly."""
    wanted = ref.strip()
    if wanted.isdigit():
        return api.get(f"/hosts/{int(wanted)}")
    found = api.get("/hosts", query=wanted, per_page=50)["hosts"]
    exact = [h for h in found if wanted in (h.get("display_name"), h.get("serial"), h.get("idp_username"))]
    if len(exact) == 1:
        return api.get(f"/hosts/{exact[0]['id']}")
    if not exact:
        raise NotFound(f"no host {wanted!r} (give a host's id, or its exact name or serial number)")
    ids = ", ".join(str(h["id"]) for h in exact)
    raise InvalidInput(f"{len(exact)} hosts match {wanted!r} (ids {ids}); give the id of the one you mean")


def all_hosts(api: APIClient, **filters: Any) -> list[dict[str, Any]]:
    hosts: list[dict[str, Any]] = []
    page = 1
    while True:
        found = api.get("/hosts", page=page, per_page=PAGE_MAX, **filters)
        hosts += found["hosts"]
        if len(hosts) >= found["total"] or not found["hosts"]:
            return hosts
        page += 1


@click.group("hosts")
def hosts() -> None:
    """Hosts (enrolled PCs)."""


@hosts.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only hosts with this MDM status.")
@team_option
@click.option("--query", help="Search display name, serial, IdP username, hardware or device id.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, PAGE_MAX), default=50, show_default=True)
@json_option
@with_api
def list_hosts(
    status: str | None,
    team_ref: str | None,
    query: str | None,
    page: int,
    per_page: int,
    as_json: bool,
    api: APIClient,
) -> None:
    """Hosts, every team unless --team (0 for No team)."""
    team = None if team_ref is None else team_id(resolve_team(api, team_ref))
    found = api.get("/hosts", mdm_status=status, team_id=team, query=query, page=page, per_page=per_page)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            h["id"],
            h["display_name"],
            h.get("serial"),
            h["team_name"],
            h["mdm_status_label"],
            h.get("idp_username"),
            h.get("last_seen_at"),
        )
        for h in found["hosts"]
    ]
    table(None, ("ID", "NAME", "SERIAL", "TEAM", "MDM", "IDP USERNAME", "LAST SEEN"), rows)
    first = (page - 1) * per_page + 1
    shown = len(found["hosts"])
    if not shown:
        note(f"No hosts match (page {page}, {found['total']} in all).")
    elif shown < found["total"]:
        more = " (--page for more)" if first + shown - 1 < found["total"] else ""
        note(f"Hosts {first}-{first + shown - 1} of {found['total']}{more}.")


@hosts.command("show")
@click.argument("host_ref", metavar="HOST")
@json_option
@with_api
def show_host(host_ref: str, as_json: bool, api: APIClient) -> None:
    """One host: team, MDM status and enrollment, usernames, inventory, agent and profiles."""
    host = resolve_host(api, host_ref)
    profiles = api.get(f"/hosts/{host['id']}/profiles")["profiles"]
    if as_json:
        print_json({**host, "profiles": profiles})
        return
    mdm, inventory, agent = host["mdm"], host.get("inventory") or {}, host.get("agent") or {}
    fields(
        [
            ("Host", f"{host['display_name']} (id {host['id']})"),
            ("Team", host["team"]["name"]),
            ("MDM status", mdm["status_label"]),
            ("", mdm.get("status_tooltip")),
            ("Enrollment", mdm.get("enrollment_path")),
            ("IdP username", mdm.get("idp_username")),
            ("End-user sign-in", mdm.get("end_user_username")),
            ("Enrolled", mdm.get("enrolled_at")),
            ("Last seen", host.get("last_seen_at")),
            ("Serial", host.get("serial")),
            ("OS", " ".join(str(v) for v in (host.get("os_edition"), host.get("os_version")) if v) or None),
            (
                "Model",
                " ".join(str(inventory.get(k)) for k in ("manufacturer", "model") if inventory.get(k))
                or None,
            ),
            ("Agent", agent.get("status") and f"{agent['status']} {agent.get('last_error') or ''}".strip()),
            ("Device id", host.get("device_id")),
            ("Hardware id", host.get("hw_dev_id")),
        ]
    )
    if profiles:
        table(
            "Profiles",
            ("ID", "NAME", "STATUS", "DETAIL"),
            [(p["profile_id"], p.get("name"), p["status"], p.get("detail")) for p in profiles],
        )


@hosts.command("delete")
@click.argument("host_ref", metavar="HOST")
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_api
def delete_host(host_ref: str, yes: bool, api: APIClient) -> None:
    """Forget a host; its certificates are revoked, so the PC must enroll again to be managed."""
    host = resolve_host(api, host_ref)
    name = f"{host['display_name']} (id {host['id']})"
    confirm(f"Delete host {name}? It must enroll again to be managed.", yes)
    api.delete(f"/hosts/{host['id']}")
    click.echo(f"Deleted host {name}.")


@hosts.command("transfer")
@click.argument("host_refs", metavar="[HOST]...", nargs=-1)
@click.option(
    "--team", "team_ref", metavar="NAME_OR_ID", required=True, help="Destination team; 0 is No team."
)
@click.option("--from-team", metavar="NAME_OR_ID", help="Move every host of this team (0: No team).")
@click.option("--status", type=click.Choice(STATUSES), help="Move every host with this MDM status.")
@click.option("--query", help="Move every host this search finds.")
@json_option
@with_api
def transfer_hosts(
    host_refs: tuple[str, ...],
    team_ref: str,
    from_team: str | None,
    status: str | None,
    query: str | None,
    as_json: bool,
    api: APIClient,
) -> None:
    """Move hosts to a team: the hosts named, or every host a filter selects."""
    target = resolve_team(api, team_ref)
    selecting = from_team is not None or status is not None or query is not None
    if bool(host_refs) == selecting:
        raise click.UsageError(
            "give host ids, or select hosts with --from-team, --status or --query (not both)"
        )
    if selecting:
        source = None if from_team is None else team_id(resolve_team(api, from_team))
        ids = [h["id"] for h in all_hosts(api, team_id=source, mdm_status=status, query=query)]
    else:
        ids = [int(r) if r.strip().isdigit() else resolve_host(api, r)["id"] for r in host_refs]
    moved = _transfer(api, team_id(target), ids, progress=not as_json)
    if as_json:
        print_json({"team": target, "transferred": moved, "host_ids": ids})
        return
    click.echo(f"Moved {moved} host(s) to {team_text(target)}.")


def _transfer(api: APIClient, target: int, ids: list[int], *, progress: bool) -> int:
    batches = [ids[i : i + PAGE_MAX] for i in range(0, len(ids), PAGE_MAX)]
    moved = 0
    # A bar only when there is more than one batch to wait for (and a terminal to show it on).
    with steps("Moving hosts", len(ids) if progress and len(batches) > 1 else 0) as advance:
        for batch in batches:
            moved += api.post("/hosts/transfer", {"team_id": target, "host_ids": batch})["transferred"]
            advance(len(batch))
    return moved


@hosts.command("summary")
@team_option
@json_option
@with_api
def summary(team_ref: str | None, as_json: bool, api: APIClient) -> None:
    """How many hosts are On (automatic), On (manual), Off and Pending, per team."""
    team = None if team_ref is None else team_id(resolve_team(api, team_ref))
    found = api.get("/mdm/summary", team_id=team)
    if as_json:
        print_json(found)
        return
    rows = [
        (
            t["name"],
            *(t["counts"].get(s, 0) for s in ("on_automatic", "on_manual", "off", "pending")),
            t["total"],
        )
        for t in found["teams"]
    ]
    counts = found["counts"]
    rows.append(
        ("All", *(counts.get(s, 0) for s in ("on_automatic", "on_manual", "off", "pending")), found["total"])
    )
    table(None, ("TEAM", "ON (AUTOMATIC)", "ON (MANUAL)", "OFF", "PENDING", "TOTAL"), rows)


COMMANDS = (hosts,)

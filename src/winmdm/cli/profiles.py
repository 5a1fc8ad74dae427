"""`winmdm profiles`: Windows configuration profiles (SyncML) of a team."""

from __future__ import annotations

from pathlib import Path

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.files import read_text
from winmdm.cli.output import confirm, fields, json_option, print_json, table
from winmdm.cli.teams import resolve_team, team_id, team_option, team_text

MAX_PROFILE_BYTES = 1024 * 1024


@click.group("profiles")
def profiles() -> None:
    """Configuration profiles, delivered to every host of their team."""


@profiles.command("list")
@team_option
@click.option("--all-teams", is_flag=True, help="Every team's profiles, No team's too.")
@json_option
@with_api
def list_profiles(team_ref: str | None, all_teams: bool, as_json: bool, api: APIClient) -> None:
    """A team's profiles (No team's without --team)."""
    if all_teams and team_ref is not None:
        raise click.UsageError("give --team or --all-teams, not both")
    teams = api.get("/teams")["teams"] if all_teams else [resolve_team(api, team_ref)]
    if all_teams:
        teams = [None, *teams]
    found = []
    for team in teams:
        for profile in api.get("/profiles", team_id=team_id(team))["profiles"]:
            found.append({**profile, "team_name": "No team" if team is None else team["name"]})
    if as_json:
        print_json({"profiles": found})
        return
    rows = [(p["id"], p["name"], p["team_name"], p["updated_at"]) for p in found]
    table(None, ("ID", "NAME", "TEAM", "UPDATED"), rows)


@profiles.command("show")
@click.argument("profile_id", type=int)
@json_option
@with_api
def show_profile(profile_id: int, as_json: bool, api: APIClient) -> None:
    """A profile, its SyncML and how many hosts have each status."""
    profile = api.get(f"/profiles/{profile_id}")
    if as_json:
        print_json(profile)
        return
    counts = (
        ", ".join(f"{n} {status}" for status, n in sorted(profile.get("hosts", {}).items())) or "no hosts"
    )
    fields(
        [
            ("Profile", f"{profile['name']} (id {profile['id']})"),
            ("Team id", profile["team_id"]),
            ("Hosts", counts),
        ]
    )
    click.echo(profile.get("syncml", ""))


@profiles.command("add")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", help="Profile name (default: the file name without .xml).")
@team_option
@json_option
@with_api
def add_profile(path: Path, name: str | None, team_ref: str | None, as_json: bool, api: APIClient) -> None:
    """Add a profile from a file of SyncML Add/Replace commands; the team's hosts get it now."""
    text = read_text(path, MAX_PROFILE_BYTES)
    team = resolve_team(api, team_ref)
    profile = api.post("/profiles", {"team_id": team_id(team), "name": name or path.stem, "syncml": text})
    if as_json:
        print_json(profile)
        return
    click.echo(f"Added profile {profile['name']!r} (id {profile['id']}) to {team_text(team)}.")


@profiles.command("delete")
@click.argument("profile_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_api
def delete_profile(profile_id: int, yes: bool, api: APIClient) -> None:
    """Remove a profile: hosts get Deletes for what it added."""
    profile = api.get(f"/profiles/{profile_id}")
    confirm(f"Remove profile {profile['name']!r} (id {profile_id}) from its hosts?", yes)
    api.delete(f"/profiles/{profile_id}")
    click.echo(f"Removed profile {profile['name']!r} (id {profile_id}).")


COMMANDS = (profiles,)

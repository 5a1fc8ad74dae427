"""`winmdm teams`: list, create, edit (rename, end-user authentication), delete."""

from __future__ import annotations

from typing import Any

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.output import confirm, json_option, print_json, table
from winmdm.errors import NotFound

team_option = click.option(
    "--team", "team_ref", metavar="NAME_OR_ID", help="Team name or id; 0 is No team (the default)."
)


def resolve_team(api: APIClient, ref: str | None) -> dict[str, Any] | None:
    """None (No team) for no ref or "0"; else the team with that id, or else that exact name."""
    if ref is None:
        return None
    wanted = ref.strip()
    if wanted == "0":
        return None
    teams = api.get("/teams")["teams"]
    if wanted.isdigit():
        for team in teams:
            if team["id"] == int(wanted):
                return team
    for team in teams:
        if team["name"] == wanted:
            return team
    raise NotFound(f"no team named {wanted!r} (give a team's exact name or its id)")


def team_id(team: dict[str, Any] | None) -> int:
    return 0 if team is None else int(team["id"])


def team_text(team: dict[str, Any] | None) -> str:
    return "No team" if team is None else f"team {team['name']!r} (id {team['id']})"


@click.group("teams")
def teams() -> None:
    """Teams: hosts, profiles and enrollment secrets are per team."""


@teams.command("list")
@json_option
@with_api
def list_teams(as_json: bool, api: APIClient) -> None:
    """Every team, with its end-user authentication and host counts."""
    found = api.get("/teams")["teams"]
    if as_json:
        print_json({"teams": found})
        return
    summary = {t["team_id"]: t for t in api.get("/mdm/summary")["teams"]}
    rows = []
    for team in [{"id": 0, "name": "No team", "end_user_authentication": None}, *found]:
        counts = summary.get(team["id"], {})
        rows.append(
            (
                team["id"],
                team["name"],
                counts.get("total", 0),
                "(mdm.end_user_authentication)" if team["id"] == 0 else team["end_user_authentication"],
            )
        )
    table(None, ("ID", "NAME", "HOSTS", "END-USER AUTHENTICATION"), rows)


@teams.command("create")
@click.argument("name")
@click.option(
    "--end-user-auth/--no-end-user-auth",
    default=False,
    help="Sign users in with the IdP on the Entra terms page.",
)
@json_option
@with_api
def create_team(name: str, end_user_auth: bool, as_json: bool, api: APIClient) -> None:
    """Create a team."""
    team = api.post("/teams", {"name": name, "end_user_authentication": end_user_auth})
    if as_json:
        print_json(team)
        return
    click.echo(f"Created {team_text(team)}.")


@teams.command("edit")
@click.argument("team_ref", metavar="TEAM")
@click.option("--name", "new_name", help="New name.")
@click.option(
    "--end-user-auth/--no-end-user-auth", default=None, help="Turn end-user authentication on or off."
)
@json_option
@with_api
def edit_team(
    team_ref: str, new_name: str | None, end_user_auth: bool | None, as_json: bool, api: APIClient
) -> None:
    """Rename a team or turn its end-user authentication on or off."""
    team = _a_team(api, team_ref)
    changes = {"name": new_name, "end_user_authentication": end_user_auth}
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise click.UsageError("give --name or --end-user-auth/--no-end-user-auth")
    edited = api.patch(f"/teams/{team['id']}", changes)
    if as_json:
        print_json(edited)
        return
    auth = "on" if edited["end_user_authentication"] else "off"
    click.echo(f"Saved {team_text(edited)}: end-user authentication {auth}.")


@teams.command("delete")
@click.argument("team_ref", metavar="TEAM")
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_api
def delete_team(team_ref: str, yes: bool, api: APIClient) -> None:
    """Delete a team: its hosts move to No team; its profiles and enrollment secrets go."""
    team = _a_team(api, team_ref)
    confirm(
        f"Delete {team_text(team)}? Its hosts move to No team, its profiles are removed from them and "
        "its enrollment secrets stop working.",
        yes,
    )
    api.delete(f"/teams/{team['id']}")
    click.echo(f"Deleted {team_text(team)}.")


def _a_team(api: APIClient, ref: str) -> dict[str, Any]:
    team = resolve_team(api, ref)
    if team is None:
        raise click.UsageError("No team is not a team you can edit or delete; give a team's name or id")
    return team


COMMANDS = (teams,)

"""`winmdm policies`: list, create, show (with the failing hosts), delete (docs/policies.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.files import read_text
from winmdm.cli.output import confirm, json_option, print_json, table
from winmdm.cli.teams import resolve_team, team_id, team_text

# Far above the server's 8,000-character limit (services/policies.py), whose check has the words.
MAX_SQL_FILE_BYTES = 64 * 1024


@click.group("policies")
def policies() -> None:
    """Policies: osquery SQL each host's agent answers; a host passes when it returns a row."""


def _scope(policy: dict[str, Any]) -> str:
    return "global" if policy["team_id"] is None else f"team {policy['team_id']}"


@policies.command("list")
@click.option(
    "--team", "team_ref", metavar="NAME_OR_ID", help="A team's policies; without it (or 0) the global ones."
)
@click.option("--all", "everything", is_flag=True, help="Every policy: global and of every team.")
@json_option
@with_api
def list_policies(team_ref: str | None, everything: bool, as_json: bool, api: APIClient) -> None:
    """The global policies (or a team's with --team, or all), with passing and failing hosts."""
    team = resolve_team(api, team_ref)
    found = api.get("/policies", team_id=team_id(team), all=str(everything).lower())["policies"]
    if as_json:
        print_json({"policies": found})
        return
    rows = [(p["id"], p["name"], _scope(p), p["passing_host_count"], p["failing_host_count"]) for p in found]
    table(None, ("ID", "NAME", "SCOPE", "PASSING", "FAILING"), rows)


@policies.command("create")
@click.option("--name", required=True, help="The policy's name (unique in its team, or among globals).")
@click.option("--sql", help="The osquery SQL query; a host passes when it returns a row.")
@click.option(
    "--sql-file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Read the SQL here (- for stdin).",
)
@click.option(
    "--team",
    "team_ref",
    metavar="NAME_OR_ID",
    help="The team whose hosts run it; without it (or 0) the policy is global: every host runs it.",
)
@json_option
@with_api
def create_policy(
    name: str, sql: str | None, sql_file: Path | None, team_ref: str | None, as_json: bool, api: APIClient
) -> None:
    """Create a policy: global, or for a team with --team."""
    if (sql is None) == (sql_file is None):
        raise click.UsageError("give the query with --sql or --sql-file (one of them)")
    query = sql if sql is not None else read_text(sql_file, MAX_SQL_FILE_BYTES)  # type: ignore[arg-type]
    team = resolve_team(api, team_ref)
    body: dict[str, Any] = {"name": name, "sql": query}
    if team is not None:
        body["team_id"] = team["id"]
    policy = api.post("/policies", body)["policy"]
    if as_json:
        print_json({"policy": policy})
        return
    scope = "a global policy" if team is None else f"a policy of {team_text(team)}"
    click.echo(f"Created {scope}: {policy['name']!r} (id {policy['id']}).")


@policies.command("show")
@click.argument("policy_id", type=click.IntRange(min=1))
@json_option
@with_api
def show_policy(policy_id: int, as_json: bool, api: APIClient) -> None:
    """A policy, its counts, and the hosts that fail it."""
    shown = api.get(f"/policies/{policy_id}")
    if as_json:
        print_json(shown)
        return
    policy = shown["policy"]
    click.echo(
        f"{policy['name']} ({_scope(policy)}): {policy['passing_host_count']} passing, "
        f"{policy['failing_host_count']} failing"
    )
    click.echo(policy["sql"])
    table("Failing hosts", ("ID", "NAME"), [(h["id"], h["display_name"]) for h in shown["failing_hosts"]])


@policies.command("delete")
@click.argument("policy_id", type=click.IntRange(min=1))
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_api
def delete_policy(policy_id: int, yes: bool, api: APIClient) -> None:
    """Delete a policy and every host's answer to it."""
    policy = api.get(f"/policies/{policy_id}")["policy"]
    confirm(f"Delete the policy {policy['name']!r} and every host's answer to it?", yes)
    api.delete(f"/policies/{policy_id}")
    click.echo(f"Deleted the policy {policy['name']!r}.")


COMMANDS = (policies,)

"""`winmdm queries`: live queries to a host's osquery agent (docs/agent-channel.md)."""

from __future__ import annotations

import time
from typing import Any

import click

from winmdm.cli.api_client import APIClient, with_api
from winmdm.cli.hosts import resolve_host
from winmdm.cli.output import json_option, note, print_json, table


@click.group("queries")
def queries() -> None:
    """Live queries: osquery SQL a host's agent runs at its next distributed read."""


def _show(query: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({"query": query})
        return
    click.echo(f"Query {query['id']} on host {query['host_id']}: {query['state']}")
    if query["state"] != "done":
        return
    if query["status"]:
        click.echo(f"osquery status {query['status']}: {query['message'] or 'failed'}")
        return
    rows = query["rows"]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    table(
        f"{query['row_count']} row(s)",
        columns or ("(no columns)",),
        [[r.get(c) for c in columns] for r in rows],
    )


@queries.command("run")
@click.argument("host_ref", metavar="HOST")
@click.option("--sql", required=True, help="The osquery SQL to run on the host.")
@click.option(
    "--wait",
    type=click.IntRange(min=0, max=3600),
    default=0,
    help="Seconds to wait for the answer (0: do not).",
)
@json_option
@with_api
def run(host_ref: str, sql: str, wait: int, as_json: bool, api: APIClient) -> None:
    """Send a live query to a host's osquery agent; with --wait, show its rows."""
    host = resolve_host(api, host_ref)
    query = api.post(f"/hosts/{host['id']}/queries", {"sql": sql})["query"]
    deadline = time.monotonic() + wait
    while query["state"] != "done" and time.monotonic() < deadline:
        time.sleep(min(2.0, max(deadline - time.monotonic(), 0.1)))
        query = api.get(f"/hosts/{host['id']}/queries/{query['id']}")["query"]
    if wait and query["state"] != "done":
        note(f"No answer yet; see it later with: winmdm queries show {host['id']} {query['id']}")
    _show(query, as_json)


@queries.command("show")
@click.argument("host_ref", metavar="HOST")
@click.argument("query_id", type=click.IntRange(min=1))
@json_option
@with_api
def show(host_ref: str, query_id: int, as_json: bool, api: APIClient) -> None:
    """A live query of a host: its state and, once answered, its rows."""
    host = resolve_host(api, host_ref)
    _show(api.get(f"/hosts/{host['id']}/queries/{query_id}")["query"], as_json)


COMMANDS = (queries,)

"""Live queries on a host's page: a maintainer sends osquery SQL to the host's agent, everyone
reads the answers (services/live_queries.py, docs/agent-channel.md "Live queries")."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import Role
from winmdm.domain.osquery import LiveQuery
from winmdm.errors import InvalidInput
from winmdm.web.ui import render
from winmdm.web.ui.fleet_routes import host_page
from winmdm.web.ui.page import Page, admin_page


def columns(query: LiveQuery) -> list[str]:
    """The result's columns: the first row's, in its order, then any other row's new ones."""
    seen: dict[str, None] = {}
    for row in query.rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


@admin_page("hosts", needs=Role.MAINTAINER)
def run(page: Page) -> Response:
    host_id = page.path_id("host_id")
    sql = page.form.get("sql")
    try:
        query = page.runtime.live_queries.run(host_id, sql, actor=page.actor)
    except InvalidInput as exc:
        return host_page(page, host_id, status=422, query_errors={"sql": exc.message}, query_sql=sql)
    return render.redirect(
        f"/hosts/{host_id}/queries/{query.id}",
        notice="Query sent: the host's osquery agent runs it at its next distributed read.",
    )


@admin_page("hosts")
def result(page: Page) -> Response:
    host_id = page.path_id("host_id")
    host = page.runtime.hosts.get(host_id)
    query = page.runtime.live_queries.get(host_id, page.path_id("query_id"))
    names = columns(query)
    table = [["" if row.get(name) is None else row[name] for name in names] for row in query.rows]
    return page.render(
        "query.html", title=f"Live query {query.id}", host=host, query=query, columns=names, table=table
    )


def routes() -> list[Route]:
    return [
        Route("/hosts/{host_id:int}/queries", run, methods=["POST"]),
        Route("/hosts/{host_id:int}/queries/{query_id:int}", result, methods=["GET"]),
    ]

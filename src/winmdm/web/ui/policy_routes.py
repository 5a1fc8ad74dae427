"""Policies: list with passing/failing counts, add (errors at the field), one policy's failing
hosts, delete (services/policies.py, docs/policies.md)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import Role
from winmdm.domain.fleet import TeamScope
from winmdm.errors import Conflict, InvalidInput, NotFound
from winmdm.web.ui import render
from winmdm.web.ui.fleet_routes import parse_team, team_value
from winmdm.web.ui.page import Page, admin_page

GLOBAL = "Global (every host)"


def _policies_page(page: Page, *, status: int = 200, **extra) -> Response:
    runtime = page.runtime
    try:
        team = parse_team(page.query("team_id"))
    except InvalidInput:
        team = TeamScope.ALL
    teams = runtime.teams.list()
    names = {t.id: t.name for t in teams}
    if team is TeamScope.ALL:
        found = runtime.policies.list(None, everything=True)
    else:
        found = runtime.policies.list(None if team is TeamScope.NO_TEAM else team)
    rows = [{"counts": c, "scope": names.get(c.policy.team_id, GLOBAL)} for c in found]
    return page.render(
        "policies.html",
        status=status,
        title="Policies",
        rows=rows,
        teams=teams,
        team_value=team_value(team),
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("policies")
def policies(page: Page) -> Response:
    return _policies_page(page)


@admin_page("policies", needs=Role.MAINTAINER)
def add(page: Page) -> Response:
    form = page.form
    values = {"name": form.text("name"), "sql": form.get("sql"), "team_id": form.text("team_id")}
    try:
        team = parse_team(form.text("team_id") or "0")
        team_id = None if isinstance(team, TeamScope) else team
        created = page.runtime.policies.create(values["name"], values["sql"], team_id, actor=page.actor)
    except (InvalidInput, Conflict, NotFound) as exc:
        field = getattr(exc, "field", None) or "form"
        field = field if field in ("name", "sql") else "form"
        return _policies_page(page, status=422, errors={field: exc.message}, values=values)
    return render.redirect(f"/policies/{created.id}", notice=f"Policy {created.name} added.")


@admin_page("policies")
def policy(page: Page) -> Response:
    runtime = page.runtime
    detail = runtime.policies.get(page.path_id("policy_id"))
    teams = {t.id: t.name for t in runtime.teams.list()}
    found = detail.counts.policy
    return page.render(
        "policy.html",
        title=found.name,
        counts=detail.counts,
        policy=found,
        scope=teams.get(found.team_id, GLOBAL),
        failing=detail.failing_hosts,
    )


@admin_page("policies", needs=Role.MAINTAINER)
def delete(page: Page) -> Response:
    found = page.runtime.policies.get(page.path_id("policy_id")).counts.policy
    page.runtime.policies.delete(found.id, actor=page.actor)
    return render.redirect("/policies", notice=f"Policy {found.name} deleted.")


def routes() -> list[Route]:
    return [
        Route("/policies", policies, methods=["GET"]),
        Route("/policies", add, methods=["POST"]),
        Route("/policies/{policy_id:int}", policy, methods=["GET"]),
        Route("/policies/{policy_id:int}/delete", delete, methods=["POST"]),
    ]

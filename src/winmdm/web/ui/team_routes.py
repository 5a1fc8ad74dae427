"""Teams: create, rename, delete, end-user authentication, enrollment secrets (services/teams.py,
services/bulk.py). Team id 0 is No team: its end-user authentication is the server's
mdm.end_user_authentication setting, and it has enrollment secrets like any team."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import Role
from winmdm.domain.fleet import NO_TEAM_NAME, TeamScope
from winmdm.errors import Conflict, InvalidInput
from winmdm.services.settings import END_USER_AUTH
from winmdm.web.ui import render
from winmdm.web.ui.page import Page, admin_page

SECRET_COOKIE = "__Host-winmdm_new_secret"


@dataclass(frozen=True, slots=True)
class TeamView:
    id: int  # 0 is No team
    name: str
    end_user_auth: bool

    @property
    def team_id(self) -> int | None:
        return self.id or None


def _team(page: Page, team_id: int) -> TeamView:
    if team_id == 0:
        return TeamView(0, NO_TEAM_NAME, page.runtime.settings.get().end_user_authentication)
    team = page.runtime.teams.get(team_id)
    return TeamView(team.id, team.name, team.end_user_auth)


def _teams_page(page: Page, *, status: int = 200, **extra) -> Response:
    runtime = page.runtime
    summary = runtime.hosts.summary()
    hosts = {(row.team_id or 0): row.total for row in summary.teams}
    profiles: dict[int, int] = {}
    for profile in runtime.profiles.all_profiles():
        profiles[profile.team_id or 0] = profiles.get(profile.team_id or 0, 0) + 1
    teams = [_team(page, 0)] + [TeamView(t.id, t.name, t.end_user_auth) for t in runtime.teams.list()]
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "end_user_auth": t.end_user_auth,
            "hosts": hosts.get(t.id, 0),
            "profiles": profiles.get(t.id, 0),
        }
        for t in teams
    ]
    return page.render(
        "teams.html",
        status=status,
        title="Teams",
        rows=rows,
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("teams")
def teams(page: Page) -> Response:
    return _teams_page(page)


@admin_page("teams", needs=Role.ADMIN)
def create(page: Page) -> Response:
    name = page.form.text("name")
    eua = page.form.flag("end_user_authentication")
    try:
        team = page.runtime.teams.create(name, end_user_authentication=eua, actor=page.actor)
    except (InvalidInput, Conflict) as exc:
        field = getattr(exc, "field", None) or "name"
        values = {"name": name, "end_user_authentication": eua}
        return _teams_page(page, status=422, errors={field: exc.message}, values=values)
    return render.redirect(f"/teams/{team.id}", notice=f"Team {team.name} created.")


def _team_page(page: Page, team_id: int, *, status: int = 200, **extra) -> Response:
    runtime = page.runtime
    team = _team(page, team_id)
    scope = TeamScope.NO_TEAM if team_id == 0 else team_id
    return page.render(
        "team.html",
        status=status,
        title=team.name,
        team=team,
        hosts=runtime.hosts.summary(scope).total,
        profiles=len(runtime.profiles.list_profiles(team.team_id)),
        secrets=sorted(runtime.bulk.list(team.team_id), key=lambda s: s.id, reverse=True),
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("teams")
def team(page: Page) -> Response:
    """Shows a secret just made, once: it comes in a one-minute cookie the page then deletes, so
    a reload neither shows it again nor makes another (the POST redirected here)."""
    team_id = page.path_id("team_id")
    kept = page.request.cookies.get(SECRET_COOKIE, "")
    owner, _, secret = kept.partition(":")
    response = _team_page(page, team_id, new_secret=secret if owner == str(team_id) and secret else None)
    if kept:
        response.delete_cookie(SECRET_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _show_secret_once(team_id: int, secret: str, notice: str) -> Response:
    response = render.redirect(f"/teams/{team_id}", notice=notice)
    value = f"{team_id}:{secret}"
    response.set_cookie(
        SECRET_COOKIE, value, max_age=60, path="/", secure=True, httponly=True, samesite="strict"
    )
    return response


@admin_page("teams", needs=Role.ADMIN)
def update(page: Page) -> Response:
    team_id = page.path_id("team_id")
    eua = page.form.flag("end_user_authentication")
    try:
        if team_id == 0:
            page.runtime.settings.update({END_USER_AUTH: eua}, page.principal)
        else:
            name = page.form.text("name") if page.form.has("name") else None
            page.runtime.teams.update(team_id, name=name, end_user_authentication=eua, actor=page.actor)
    except (InvalidInput, Conflict) as exc:
        field = getattr(exc, "field", None) or ""
        field = "end_user_authentication" if field.endswith(END_USER_AUTH) else field or "name"
        return _team_page(
            page, team_id, status=422, errors={field: exc.message}, values={"name": page.form.text("name")}
        )
    return render.redirect(f"/teams/{team_id}", notice="Team saved.")


@admin_page("teams", needs=Role.ADMIN)
def delete(page: Page) -> Response:
    team_id = page.path_id("team_id")
    if team_id == 0:
        return page.error(409, "No team can't be deleted", "No team holds every host without a team.")
    name = _team(page, team_id).name
    page.runtime.teams.delete(team_id, actor=page.actor)
    return render.redirect("/teams", notice=f"Team {name} deleted; its hosts are in No team now.")


@admin_page("teams", needs=Role.MAINTAINER)
def create_secret(page: Page) -> Response:
    team_id = page.path_id("team_id")
    created = page.runtime.bulk.create(_team(page, team_id).team_id, actor=page.actor)
    return _show_secret_once(team_id, created.secret, f"Enrollment secret {created.record.id} created.")


@admin_page("teams", needs=Role.MAINTAINER)
def rotate_secrets(page: Page) -> Response:
    team_id = page.path_id("team_id")
    created = page.runtime.bulk.rotate(_team(page, team_id).team_id, actor=page.actor)
    return _show_secret_once(
        team_id, created.secret, f"Secrets rotated: only the new secret {created.record.id} works now."
    )


@admin_page("teams", needs=Role.MAINTAINER)
def revoke_secret(page: Page) -> Response:
    team_id = page.path_id("team_id")
    secret_id = page.path_id("secret_id")
    page.runtime.bulk.revoke(_team(page, team_id).team_id, secret_id, actor=page.actor)
    return render.redirect(f"/teams/{team_id}", notice=f"Enrollment secret {secret_id} revoked.")


def routes() -> list[Route]:
    return [
        Route("/teams", teams, methods=["GET"]),
        Route("/teams", create, methods=["POST"]),
        Route("/teams/{team_id:int}", team, methods=["GET"]),
        Route("/teams/{team_id:int}", update, methods=["POST"]),
        Route("/teams/{team_id:int}/delete", delete, methods=["POST"]),
        Route("/teams/{team_id:int}/secrets", create_secret, methods=["POST"]),
        Route("/teams/{team_id:int}/secrets/rotate", rotate_secrets, methods=["POST"]),
        Route("/teams/{team_id:int}/secrets/{secret_id:int}/revoke", revoke_secret, methods=["POST"]),
    ]

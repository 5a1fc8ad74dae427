"""Configuration profiles: list, add (a SyncML file or pasted text, errors shown at the field),
one profile's per-host status, delete (services/profiles.py)."""

from __future__ import annotations

from collections import Counter

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import Role
from winmdm.domain.fleet import MAX_PER_PAGE, NO_TEAM_NAME, HostFilter, TeamScope
from winmdm.errors import Conflict, InvalidInput
from winmdm.web.ui import render
from winmdm.web.ui.fleet_routes import parse_team, team_value
from winmdm.web.ui.page import Page, admin_page

PROFILE_LIMIT = 1024 * 1024


def _profiles_page(page: Page, *, status: int = 200, **extra) -> Response:
    runtime = page.runtime
    try:
        team = parse_team(page.query("team_id"))
    except InvalidInput:
        team = TeamScope.ALL
    teams = runtime.teams.list()
    names = {t.id: t.name for t in teams}
    if team is TeamScope.ALL:
        profiles = runtime.profiles.all_profiles()
    else:
        profiles = runtime.profiles.list_profiles(None if team is TeamScope.NO_TEAM else team)
    rows = []
    for profile in profiles:
        counts = Counter(row.status.value for row in runtime.profiles.hosts_with_profile(profile.id))
        rows.append(
            {
                "profile": profile,
                "team": names.get(profile.team_id, NO_TEAM_NAME),
                "counts": sorted(counts.items()),
            }
        )
    return page.render(
        "profiles.html",
        status=status,
        title="Profiles",
        rows=rows,
        teams=teams,
        team_value=team_value(team),
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("profiles")
def profiles(page: Page) -> Response:
    return _profiles_page(page)


@admin_page("profiles", needs=Role.MAINTAINER, limit=PROFILE_LIMIT)
def add(page: Page) -> Response:
    form = page.form
    name = form.text("name")
    text = form.get("syncml")
    upload = form.file("file")
    values = {"name": name, "syncml": text, "team_id": form.text("team_id")}
    try:
        if upload is not None:
            try:
                text = upload.data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InvalidInput(f"{upload.filename} is not UTF-8 text", field="syncml") from None
            values["syncml"] = text
            if not name:
                name = upload.filename.rsplit(".", 1)[0]
                values["name"] = name
        team = parse_team(form.text("team_id") or "0")
        team_id = None if isinstance(team, TeamScope) else team
        if not text.strip():
            raise InvalidInput("choose a SyncML file or paste the SyncML", field="syncml")
        profile = page.runtime.profiles.add_profile(team_id, name, text, actor=page.actor)
    except (InvalidInput, Conflict) as exc:
        field = getattr(exc, "field", None) or "form"
        field = field if field in ("name", "syncml") else "form"
        return _profiles_page(page, status=422, errors={field: exc.message}, values=values)
    return render.redirect(f"/profiles/{profile.id}", notice=f"Profile {profile.name} added.")


@admin_page("profiles")
def profile(page: Page) -> Response:
    runtime = page.runtime
    found = runtime.profiles.get_profile(page.path_id("profile_id"))
    teams = {t.id: t.name for t in runtime.teams.list()}
    scope = TeamScope.NO_TEAM if found.team_id is None else found.team_id
    hosts = runtime.hosts.list(HostFilter(team=scope, per_page=MAX_PER_PAGE)).items
    return page.render(
        "profile.html",
        title=found.name,
        profile=found,
        team_name=teams.get(found.team_id, NO_TEAM_NAME),
        hosts=runtime.profiles.hosts_with_profile(found.id),
        names={h.id: h.display_name for h in hosts},
    )


@admin_page("profiles", needs=Role.MAINTAINER)
def delete(page: Page) -> Response:
    found = page.runtime.profiles.get_profile(page.path_id("profile_id"))
    page.runtime.profiles.remove_profile(found.id, actor=page.actor)
    return render.redirect("/profiles", notice=f"Profile {found.name} deleted.")


def routes() -> list[Route]:
    return [
        Route("/profiles", profiles, methods=["GET"]),
        Route("/profiles", add, methods=["POST"]),
        Route("/profiles/{profile_id:int}", profile, methods=["GET"]),
        Route("/profiles/{profile_id:int}/delete", delete, methods=["POST"]),
    ]

"""Dashboard, hosts list and host details: the fleet pages (services/hosts.py underneath)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import Role
from winmdm.domain.fleet import HostFilter, HostMDMStatus, TeamFilter, TeamScope, team_filter
from winmdm.errors import InvalidInput
from winmdm.web.ids import MAX_ID
from winmdm.web.ui import render
from winmdm.web.ui.activity_text import describe_activity
from winmdm.web.ui.page import Page, admin_page, whole_number

STATUSES = (HostMDMStatus.ON_AUTOMATIC, HostMDMStatus.ON_MANUAL, HostMDMStatus.OFF, HostMDMStatus.PENDING)
PER_PAGE = 50
RECENT_ACTIVITIES = 10
_BAR = 440  # the chart's longest bar, in SVG units


def parse_team(value: str) -> TeamFilter:
    """The team filter of a query string: empty for every team, 0 for No team, else a team id."""
    value = value.strip()
    if not value:
        return TeamScope.ALL
    if not value.isdigit() or len(value) > len(str(MAX_ID)) or int(value) > MAX_ID:
        raise InvalidInput(f"team_id must be 0 (No team) or a team's id, not {value[:20]!r}", field="team_id")
    return team_filter(int(value))


def team_value(team: TeamFilter) -> str:
    if team is TeamScope.ALL:
        return ""
    return "0" if team is TeamScope.NO_TEAM else str(team)


# OSEdition as Windows reports it: the SKU number of GetProductInfo (the common ones).
EDITIONS = {
    "4": "Enterprise",
    "27": "Enterprise N",
    "48": "Pro",
    "49": "Pro N",
    "98": "Home N",
    "100": "Home Single Language",
    "101": "Home",
    "121": "Education",
    "122": "Education N",
    "125": "Enterprise LTSC",
    "161": "Pro for Workstations",
    "164": "Pro Education",
    "175": "Enterprise multi-session",
}


def os_label(host) -> str:
    """ "Windows 11 Pro 10.0.22631.2861": the release from the build number, the edition by name."""
    version = (host.os_version or "").strip()
    name = "Windows"
    parts = version.split(".")
    if len(parts) >= 3 and parts[0] == "10" and parts[2].isdigit():
        name = "Windows 11" if int(parts[2]) >= 22000 else "Windows 10"
    edition = (host.os_edition or "").strip()
    edition = EDITIONS.get(edition, "" if edition.isdigit() else edition)
    return " ".join(p for p in (name, edition, version) if p)


@admin_page("dashboard")
def dashboard(page: Page) -> Response:
    try:
        team = parse_team(page.query("team_id"))
    except InvalidInput:
        team = TeamScope.ALL
    summary = page.runtime.hosts.summary(team)
    teams = page.runtime.teams.list()
    biggest = max([summary.counts[s] for s in STATUSES] + [1])
    chosen = team_value(team)
    team_name = None
    if team is TeamScope.NO_TEAM:
        team_name = "No team"
    elif isinstance(team, int):
        team_name = next((t.name for t in teams if t.id == team), None)

    def hosts_url(status: HostMDMStatus) -> str:
        query = {"mdm_status": status.value}
        if chosen:
            query["team_id"] = chosen
        return "/hosts?" + urlencode(query)

    return page.render(
        "dashboard.html",
        title="Dashboard",
        summary=summary,
        statuses=STATUSES,
        teams=teams,
        team_value=chosen,
        team_name=team_name,
        hosts_url=hosts_url,
        bar_width=lambda count: round(_BAR * count / biggest, 1),
    )


@admin_page("hosts")
def hosts(page: Page) -> Response:
    error = None
    try:
        status_text = page.query("mdm_status").strip()
        filters = HostFilter(
            mdm_status=HostMDMStatus.parse(status_text) if status_text else None,
            team=parse_team(page.query("team_id")),
            query=page.query("query")[:255],
            page=whole_number(page.query("page"), "page") or 1,
            per_page=PER_PAGE,
        )
    except InvalidInput as exc:
        error = exc.message
        filters = HostFilter(per_page=PER_PAGE)
    result = page.runtime.hosts.list(filters)
    chosen = team_value(filters.team)

    def page_url(number: int) -> str:
        query = {
            "mdm_status": filters.mdm_status.value if filters.mdm_status else "",
            "team_id": chosen,
            "query": filters.query or "",
            "page": str(number),
        }
        return "/hosts?" + urlencode({k: v for k, v in query.items() if v})

    return page.render(
        "hosts.html",
        status=400 if error else 200,
        title="Hosts",
        result=result,
        filters=filters,
        filter_error=error,
        statuses=STATUSES,
        teams=page.runtime.teams.list(),
        team_value=chosen,
        page_url=page_url,
        os_label=os_label,
    )


def host_page(page: Page, host_id: int, *, status: int = 200, **extra) -> Response:
    """A host's page; `extra` carries a form's errors back to it."""
    runtime = page.runtime
    host = runtime.hosts.get(host_id)
    names = {p.id: p.name for p in runtime.profiles.all_profiles()}
    profiles = [
        {
            "profile_id": row.profile_id,
            "name": names.get(row.profile_id),
            "status": row.status,
            "detail": row.detail,
            "updated_at": row.updated_at,
        }
        for row in runtime.profiles.host_profiles(host_id)
    ]
    activities = runtime.activities.list(page=1, per_page=RECENT_ACTIVITIES, host_id=host_id).items
    return page.render(
        "host.html",
        status=status,
        title=host.display_name,
        host=host,
        teams=runtime.teams.list(),
        profiles=profiles,
        policies=runtime.policies.for_host(host_id),
        queries=runtime.live_queries.list(host_id, with_rows=False),  # the page shows counts
        query_errors=extra.pop("query_errors", {}),
        activities=activities,
        agent_package=runtime.agent.package(),
        describe_activity=describe_activity,
        os_label=os_label,
        **extra,
    )


@admin_page("hosts")
def host(page: Page) -> Response:
    return host_page(page, page.path_id("host_id"))


@admin_page("hosts", needs=Role.MAINTAINER)
def transfer(page: Page) -> Response:
    host_id = page.path_id("host_id")
    try:
        team = parse_team(page.form.get("team_id"))
        team_id = None if team is TeamScope.NO_TEAM or team is TeamScope.ALL else team
        page.runtime.hosts.transfer(team_id, [host_id], actor=page.actor)
    except InvalidInput as exc:
        return host_page(page, host_id, status=422, error=exc.message)
    return render.redirect(f"/hosts/{host_id}", notice="The host was transferred.")


@admin_page("hosts", needs=Role.MAINTAINER)
def refetch(page: Page) -> Response:
    host_id = page.path_id("host_id")
    page.runtime.commands.refetch(host_id, actor=page.actor)
    return render.redirect(f"/hosts/{host_id}", notice="Refetch queued for the host's next check-in.")


@admin_page("hosts", needs=Role.MAINTAINER)
def reboot(page: Page) -> Response:
    host_id = page.path_id("host_id")
    page.runtime.commands.reboot(host_id, actor=page.actor)
    return render.redirect(f"/hosts/{host_id}", notice="Reboot queued for the host's next check-in.")


@admin_page("hosts", needs=Role.MAINTAINER)
def unenroll(page: Page) -> Response:
    host_id = page.path_id("host_id")
    page.runtime.commands.unenroll(host_id, actor=page.actor)
    return render.redirect(f"/hosts/{host_id}", notice="Unenroll queued for the host's next check-in.")


@admin_page("hosts", needs=Role.MAINTAINER)
def wipe(page: Page) -> Response:
    host_id = page.path_id("host_id")
    name = page.runtime.hosts.get(host_id).display_name
    if page.form.text("confirm") != name:
        return host_page(
            page,
            host_id,
            status=422,
            wipe_error=f"Type the host's name, {name}, exactly to confirm the wipe.",
        )
    page.runtime.commands.wipe(host_id, protected=page.form.flag("protected"), actor=page.actor)
    return render.redirect(f"/hosts/{host_id}", notice="Wipe queued for the host's next check-in.")


@admin_page("hosts", needs=Role.MAINTAINER)
def delete(page: Page) -> Response:
    host_id = page.path_id("host_id")
    name = page.runtime.hosts.get(host_id).display_name
    page.runtime.hosts.delete(host_id, actor=page.actor)
    return render.redirect("/hosts", notice=f"{name} was deleted.")


def routes() -> list[Route]:
    return [
        Route("/", dashboard, methods=["GET"]),
        Route("/hosts", hosts, methods=["GET"]),
        Route("/hosts/{host_id:int}", host, methods=["GET"]),
        Route("/hosts/{host_id:int}/transfer", transfer, methods=["POST"]),
        Route("/hosts/{host_id:int}/refetch", refetch, methods=["POST"]),
        Route("/hosts/{host_id:int}/reboot", reboot, methods=["POST"]),
        Route("/hosts/{host_id:int}/unenroll", unenroll, methods=["POST"]),
        Route("/hosts/{host_id:int}/wipe", wipe, methods=["POST"]),
        Route("/hosts/{host_id:int}/delete", delete, methods=["POST"]),
    ]

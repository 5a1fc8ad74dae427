"""Hosts and the MDM summary (docs/api.md "Hosts", "MDM summary")."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request, Response

from winmdm.domain.admin import Role
from winmdm.domain.fleet import HostFilter, HostMDMStatus, team_filter
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import (
    Body,
    BodyId,
    BodyTeamId,
    PageQuery,
    PathId,
    PerPageQuery,
    TeamQuery,
    team_ref,
)
from winmdm.web.ids import MAX_ID

api = Endpoints("hosts")


class Transfer(Body):
    team_id: BodyTeamId | None
    host_ids: list[BodyId]


@api.get("/hosts", Role.OBSERVER)
def list_hosts(
    request: Request,
    mdm_status: str | None = Query(None, description="on_manual, on_automatic, off or pending"),
    team_id: int | None = Query(
        None, ge=0, le=MAX_ID, description="a team's id, or 0 for No team; absent: every team"
    ),
    query: str | None = Query(None, description="search name, serial, IdP username, hardware/device id"),
    page: int = PageQuery,
    per_page: int = PerPageQuery,
) -> dict[str, Any]:
    wanted = HostMDMStatus.parse(mdm_status) if mdm_status else None
    found = runtime_of(request).hosts.list(
        HostFilter(mdm_status=wanted, team=team_filter(team_id), query=query, page=page, per_page=per_page)
    )
    return views.page("hosts", [views.host_summary(h) for h in found.items], found.total, page, per_page)


@api.get("/hosts/{host_id}", Role.OBSERVER)
def get_host(host_id: PathId, request: Request) -> dict[str, Any]:
    return views.host_detail(runtime_of(request).hosts.get(host_id))


@api.delete("/hosts/{host_id}", Role.MAINTAINER, status_code=204)
def delete_host(host_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).hosts.delete(host_id, actor=actor(principal))
    return Response(status_code=204)


@api.post("/hosts/transfer", Role.MAINTAINER)
def transfer(body: Transfer, request: Request, principal: SignedIn) -> dict[str, Any]:
    moved = runtime_of(request).hosts.transfer(team_ref(body.team_id), body.host_ids, actor=actor(principal))
    return {"transferred": moved}


@api.get("/hosts/{host_id}/profiles", Role.OBSERVER)
def host_profiles(host_id: PathId, request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    rows = runtime.profiles.host_profiles(host_id)
    names = {p.id: p.name for p in runtime.profiles.all_profiles()}
    return {"profiles": [views.host_profile(r, names) for r in rows]}


@api.get("/hosts/{host_id}/activities", Role.OBSERVER)
def host_activities(
    host_id: PathId, request: Request, page: int = PageQuery, per_page: int = PerPageQuery
) -> dict[str, Any]:
    runtime = runtime_of(request)
    runtime.hosts.get(host_id)  # NotFound for an unknown host
    found = runtime.activities.list(page=page, per_page=per_page, host_id=host_id)
    return views.page("activities", [views.activity(a) for a in found.items], found.total, page, per_page)


@api.get("/mdm/summary", Role.OBSERVER)
def mdm_summary(request: Request, team_id: int | None = TeamQuery) -> dict[str, Any]:
    return views.summary(runtime_of(request).hosts.summary(team_filter(team_id)))

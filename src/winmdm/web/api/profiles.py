"""Configuration profiles (docs/api.md "Profiles")."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from winmdm.domain.admin import Role
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body, BodyTeamId, PathId, TeamQuery, team_ref

api = Endpoints("profiles")


class NewProfile(Body):
    team_id: BodyTeamId | None = None
    name: str
    syncml: str


@api.post("/profiles", Role.MAINTAINER, status_code=201)
def create_profile(body: NewProfile, request: Request, principal: SignedIn) -> dict[str, Any]:
    profile = runtime_of(request).profiles.add_profile(
        team_ref(body.team_id), body.name, body.syncml, actor=actor(principal)
    )
    return views.profile(profile, with_syncml=True)


@api.get("/profiles", Role.OBSERVER)
def list_profiles(request: Request, team_id: int | None = TeamQuery) -> dict[str, Any]:
    profiles = runtime_of(request).profiles.list_profiles(team_ref(team_id))
    return {"profiles": [views.profile(p) for p in profiles]}


@api.get("/profiles/{profile_id}", Role.OBSERVER)
def get_profile(profile_id: PathId, request: Request) -> dict[str, Any]:
    service = runtime_of(request).profiles
    profile = service.get_profile(profile_id)
    counts: dict[str, int] = {}
    for row in service.hosts_with_profile(profile_id):
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    return {**views.profile(profile, with_syncml=True), "hosts": counts}


@api.get("/profiles/{profile_id}/hosts", Role.OBSERVER)
def profile_hosts(profile_id: PathId, request: Request) -> dict[str, Any]:
    service = runtime_of(request).profiles
    profile = service.get_profile(profile_id)
    rows = service.hosts_with_profile(profile_id)
    return {"hosts": [views.host_profile(r, {profile.id: profile.name}) for r in rows]}


@api.delete("/profiles/{profile_id}", Role.MAINTAINER, status_code=204)
def delete_profile(profile_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).profiles.remove_profile(profile_id, actor=actor(principal))
    return Response(status_code=204)

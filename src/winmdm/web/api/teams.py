"""Teams, their end-user authentication and enrollment secrets (docs/api.md "Teams")."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from winmdm.domain.admin import Role
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body, PathId, PathTeamId, team_ref

api = Endpoints("teams")


class NewTeam(Body):
    name: str
    end_user_authentication: bool = False


class TeamChanges(Body):
    name: str | None = None
    end_user_authentication: bool | None = None


@api.get("/teams", Role.OBSERVER)
def list_teams(request: Request) -> dict[str, Any]:
    return {"teams": [views.team(t) for t in runtime_of(request).teams.list()]}


@api.post("/teams", Role.ADMIN, status_code=201)
def create_team(body: NewTeam, request: Request, principal: SignedIn) -> dict[str, Any]:
    team = runtime_of(request).teams.create(
        body.name, end_user_authentication=body.end_user_authentication, actor=actor(principal)
    )
    return views.team(team)


@api.get("/teams/{team_id}", Role.OBSERVER)
def get_team(team_id: PathId, request: Request) -> dict[str, Any]:
    return views.team(runtime_of(request).teams.get(team_id))


@api.patch("/teams/{team_id}", Role.ADMIN)
def edit_team(team_id: PathId, body: TeamChanges, request: Request, principal: SignedIn) -> dict[str, Any]:
    team = runtime_of(request).teams.update(
        team_id, name=body.name, end_user_authentication=body.end_user_authentication, actor=actor(principal)
    )
    return views.team(team)


@api.delete("/teams/{team_id}", Role.ADMIN, status_code=204)
def delete_team(team_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).teams.delete(team_id, actor=actor(principal))
    return Response(status_code=204)


@api.get("/teams/{team_id}/enrollment_secrets", Role.MAINTAINER)
def list_secrets(team_id: PathTeamId, request: Request) -> dict[str, Any]:
    secrets = runtime_of(request).bulk.list(team_ref(team_id))
    return {"enrollment_secrets": [views.enrollment_secret(s) for s in secrets]}


@api.post("/teams/{team_id}/enrollment_secrets", Role.MAINTAINER, status_code=201)
def create_secret(team_id: PathTeamId, request: Request, principal: SignedIn) -> dict[str, Any]:
    new = runtime_of(request).bulk.create(team_ref(team_id), actor=actor(principal))
    return {**views.enrollment_secret(new.record), "secret": new.secret}


@api.post("/teams/{team_id}/enrollment_secrets/rotate", Role.MAINTAINER, status_code=201)
def rotate_secret(team_id: PathTeamId, request: Request, principal: SignedIn) -> dict[str, Any]:
    new = runtime_of(request).bulk.rotate(team_ref(team_id), actor=actor(principal))
    return {**views.enrollment_secret(new.record), "secret": new.secret}


@api.delete("/teams/{team_id}/enrollment_secrets/{secret_id}", Role.MAINTAINER, status_code=204)
def revoke_secret(team_id: PathTeamId, secret_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).bulk.revoke(team_ref(team_id), secret_id, actor=actor(principal))
    return Response(status_code=204)

"""Policies: osquery SQL every host of their scope answers yes or no (docs/api.md "Policies",
docs/policies.md)."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request, Response

from winmdm.domain.admin import Role
from winmdm.domain.osquery import HostPolicy, PolicyCounts
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body, BodyTeamId, PathId, TeamQuery, team_ref

api = Endpoints("policies")


class NewPolicy(Body):
    name: str
    sql: str
    team_id: BodyTeamId | None = None


def _counts(c: PolicyCounts) -> dict[str, Any]:
    return {**views.plain(c.policy), "passing_host_count": c.passing, "failing_host_count": c.failing}


def _host_policy(h: HostPolicy) -> dict[str, Any]:
    return {**views.plain(h.policy), "passes": h.passes, "answered_at": views.plain(h.updated_at)}


@api.get("/policies", Role.OBSERVER)
def list_policies(
    request: Request,
    team_id: int | None = TeamQuery,
    all_teams: bool = Query(False, alias="all", description="every policy, global and of every team"),
) -> dict[str, Any]:
    found = runtime_of(request).policies.list(team_ref(team_id), everything=all_teams)
    return {"policies": [_counts(c) for c in found]}


@api.post("/policies", Role.MAINTAINER, status_code=201)
def create_policy(body: NewPolicy, request: Request, principal: SignedIn) -> dict[str, Any]:
    policy = runtime_of(request).policies.create(
        body.name, body.sql, team_ref(body.team_id), actor=actor(principal)
    )
    return {"policy": views.plain(policy)}


@api.get("/policies/{policy_id}", Role.OBSERVER)
def get_policy(policy_id: PathId, request: Request) -> dict[str, Any]:
    detail = runtime_of(request).policies.get(policy_id)
    failing = [{"id": host_id, "display_name": name} for host_id, name in detail.failing_hosts]
    return {"policy": _counts(detail.counts), "failing_hosts": failing}


@api.delete("/policies/{policy_id}", Role.MAINTAINER, status_code=204)
def delete_policy(policy_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).policies.delete(policy_id, actor=actor(principal))
    return Response(status_code=204)


@api.get("/hosts/{host_id}/policies", Role.OBSERVER)
def host_policies(host_id: PathId, request: Request) -> dict[str, Any]:
    return {"policies": [_host_policy(h) for h in runtime_of(request).policies.for_host(host_id)]}

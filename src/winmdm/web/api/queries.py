"""Live queries to a host's osquery agent (docs/api.md "Hosts", docs/agent-channel.md)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from winmdm.domain.admin import Role
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body, PathId

api = Endpoints("queries")


class LiveQueryBody(Body):
    sql: str


@api.post("/hosts/{host_id}/queries", Role.MAINTAINER, status_code=202)
def run_query(host_id: PathId, body: LiveQueryBody, request: Request, principal: SignedIn) -> dict[str, Any]:
    query = runtime_of(request).live_queries.run(host_id, body.sql, actor=actor(principal))
    return {"query": views.plain(query)}


@api.get("/hosts/{host_id}/queries", Role.OBSERVER)
def list_queries(host_id: PathId, request: Request) -> dict[str, Any]:
    return {"queries": views.plain(runtime_of(request).live_queries.list(host_id))}


@api.get("/hosts/{host_id}/queries/{query_id}", Role.OBSERVER)
def get_query(host_id: PathId, query_id: PathId, request: Request) -> dict[str, Any]:
    return {"query": views.plain(runtime_of(request).live_queries.get(host_id, query_id))}

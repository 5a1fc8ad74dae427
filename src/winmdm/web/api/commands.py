"""Commands to hosts and their results (docs/api.md "Hosts", "commands")."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from winmdm.domain.admin import Role
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body, PathId

api = Endpoints("commands")


class RawCommand(Body):
    syncml: str


class Wipe(Body):
    protected: bool = False


def _queued(command: Any) -> dict[str, Any]:
    return {"command_uuid": command.uuid}


@api.post("/hosts/{host_id}/commands", Role.MAINTAINER, status_code=202)
def run_command(host_id: PathId, body: RawCommand, request: Request, principal: SignedIn) -> dict[str, Any]:
    return _queued(runtime_of(request).commands.run_syncml([host_id], body.syncml, actor=actor(principal)))


@api.post("/hosts/{host_id}/reboot", Role.MAINTAINER, status_code=202)
def reboot(host_id: PathId, request: Request, principal: SignedIn) -> dict[str, Any]:
    return _queued(runtime_of(request).commands.reboot(host_id, actor=actor(principal)))


@api.post("/hosts/{host_id}/wipe", Role.MAINTAINER, status_code=202)
def wipe(host_id: PathId, request: Request, principal: SignedIn, body: Wipe | None = None) -> dict[str, Any]:
    protected = body.protected if body is not None else False
    return _queued(runtime_of(request).commands.wipe(host_id, protected=protected, actor=actor(principal)))


@api.post("/hosts/{host_id}/unenroll", Role.MAINTAINER, status_code=202)
def unenroll(host_id: PathId, request: Request, principal: SignedIn) -> dict[str, Any]:
    return _queued(runtime_of(request).commands.unenroll(host_id, actor=actor(principal)))


@api.post("/hosts/{host_id}/refetch", Role.MAINTAINER, status_code=202)
def refetch(host_id: PathId, request: Request, principal: SignedIn) -> dict[str, Any]:
    return _queued(runtime_of(request).commands.refetch(host_id, actor=actor(principal)))


@api.get("/commands/{command_uuid}/results", Role.OBSERVER)
def results(command_uuid: str, request: Request) -> dict[str, Any]:
    rows = runtime_of(request).commands.results(command_uuid)
    return {"results": [views.command_result(r) for r in rows]}

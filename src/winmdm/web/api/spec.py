"""The GitOps spec (docs/api.md "GitOps"; docs/gitops.md): the server's state as one document,
and applying one, through the same services as every other endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from winmdm.domain.admin import Role
from winmdm.errors import InvalidInput
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import json_object
from winmdm.web.api.views import plain

api = Endpoints("gitops")


@api.get("/spec", Role.ADMIN)
def get_spec(request: Request) -> dict[str, Any]:
    return {"spec": runtime_of(request).gitops.export()}


@api.post("/spec", Role.ADMIN)
async def apply_spec(request: Request, principal: SignedIn) -> dict[str, Any]:
    body = await json_object(request)
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise InvalidInput('spec must be an object: {"spec": {...}, "dry_run": false}', field="spec")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run must be true or false", field="dry_run")
    plan = await run_in_threadpool(
        runtime_of(request).gitops.apply, spec, dry_run=dry_run, actor=actor(principal)
    )
    return plain(plan)

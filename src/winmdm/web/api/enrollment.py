"""Deep links and enrollment instructions (docs/api.md "Enrollment")."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from winmdm.domain.admin import Role
from winmdm.services.instructions import enrollment_instructions
from winmdm.web.api.auth import Endpoints, SignedIn, runtime_of
from winmdm.web.api.params import Body
from winmdm.web.api.views import plain

api = Endpoints("enrollment")


class DeepLinkRequest(Body):
    username: str | None = None
    preauthorized: bool = False


@api.post("/enrollment/deep_link", Role.MAINTAINER)
def make_deep_link(body: DeepLinkRequest, request: Request, principal: SignedIn) -> dict[str, Any]:
    runtime = runtime_of(request)
    now = runtime.clock()
    url = runtime.deep_links.link(body.username, preauthorize=body.preauthorized, now=now)
    expires = now + runtime.deep_links.lifetime if body.preauthorized else None
    return {"url": url, "expires_at": plain(expires)}


@api.get("/enrollment/instructions", Role.OBSERVER)
def instructions(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    found = enrollment_instructions(
        runtime.endpoints,
        runtime.deep_links,
        entra=bool(runtime.config.entra_tenant_ids),
        now=runtime.clock(),
    )
    return plain(found)

"""The agent package (docs/api.md "Agent package"): by URL and SHA-256, or uploaded."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from starlette.concurrency import run_in_threadpool

from winmdm.domain.admin import Role
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body

api = Endpoints("agent package")

UPLOAD_PATH = "/agent_package/upload"


class PackageByURL(Body):
    url: str
    sha256: str
    product_code: str
    version: str
    install_args: str = ""


@api.get("/agent_package", Role.OBSERVER)
def get_package(request: Request) -> dict[str, Any]:
    return {"agent_package": views.agent_package(runtime_of(request).agent.package())}


@api.put("/agent_package", Role.MAINTAINER)
def set_package(body: PackageByURL, request: Request, principal: SignedIn) -> dict[str, Any]:
    package = runtime_of(request).agent.set_package(
        body.product_code,
        body.version,
        body.install_args,
        url=body.url,
        sha256=body.sha256,
        actor=actor(principal),
    )
    return {"agent_package": views.agent_package(package)}


@api.post(
    UPLOAD_PATH,
    Role.MAINTAINER,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_package(
    request: Request,
    principal: SignedIn,
    product_code: str = Query(...),
    version: str = Query(...),
    install_args: str = Query(""),
) -> dict[str, Any]:
    content = await request.body()
    package = await run_in_threadpool(
        runtime_of(request).agent.set_package,
        product_code,
        version,
        install_args,
        content=content,
        actor=actor(principal),
    )
    return {"agent_package": views.agent_package(package)}

"""Builds the /api/v1 application from the route modules (docs/api.md)."""

from __future__ import annotations

from fastapi import FastAPI

from winmdm import __version__
from winmdm.runtime import Runtime
from winmdm.web.api import (
    activities,
    agent,
    commands,
    config,
    docs_page,
    enrollment,
    errors,
    hosts,
    policies,
    profiles,
    queries,
    sessions,
    spec,
    teams,
)
from winmdm.web.api.body_limit import BodyLimit

PREFIX = "/api/v1"
# An MSI upload is the one large body the API takes.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024

ROUTE_MODULES = (
    sessions,
    config,
    hosts,
    commands,
    queries,
    policies,
    teams,
    profiles,
    agent,
    activities,
    enrollment,
    spec,
)


def create_api(runtime: Runtime) -> BodyLimit:
    api = FastAPI(
        title="winmdm admin API",
        version=__version__,
        description="Hosts, teams, profiles, commands, settings and GitOps of a winmdm server. "
        'Every error is {"error": {"code", "message", "field"}}.',
        openapi_url="/openapi.json",
        docs_url=None,  # docs_page.install: Swagger UI served from this server, not a CDN
        redoc_url=None,
    )
    api.state.runtime = runtime
    for module in ROUTE_MODULES:
        api.include_router(module.api.router)
    errors.install(api)
    docs_page.install(api, PREFIX)
    limit = runtime.config.max_body_bytes

    def limit_for(path: str) -> int:
        return MAX_UPLOAD_BYTES if path.endswith(agent.UPLOAD_PATH) else limit

    return BodyLimit(api, limit_for, runtime.config.body_timeout)

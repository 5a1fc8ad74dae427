"""The ASGI application: the only place HTTP meets winmdm's services."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount

from winmdm.runtime import Runtime
from winmdm.web import (
    agent_routes,
    enrollment_routes,
    health_routes,
    management_routes,
    metrics_routes,
    osquery_routes,
    signin_routes,
    terms_routes,
    ui,
)
from winmdm.web.api import create_api
from winmdm.web.api.app import PREFIX as API_PREFIX
from winmdm.web.observability import RequestObserver


async def _server_error(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("The server failed unexpectedly; the error was logged.", status_code=500)


def create_app(runtime: Runtime) -> Starlette:
    app = Starlette(
        routes=[
            *health_routes.routes(),  # /healthz (liveness) and /readyz (database, schema)
            *metrics_routes.routes(runtime),  # /metrics, unless it has a listener of its own
            *enrollment_routes.routes(),
            *management_routes.routes(),
            *agent_routes.routes(),
            *osquery_routes.routes(),  # /api/osquery/...: osquery's TLS remote API
            *signin_routes.routes(),
            *terms_routes.routes(),
            Mount(API_PREFIX, app=create_api(runtime)),
            *ui.routes(),  # the admin pages and the end-user enrollment page
        ],
        exception_handlers={500: _server_error},
        middleware=[Middleware(RequestObserver, metrics=runtime.metrics)],
    )
    app.state.runtime = runtime
    app.state.readiness = health_routes.readiness_for(runtime.engine)
    return app

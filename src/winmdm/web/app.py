"""The ASGI application: the only place HTTP meets winmdm's services."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from winmdm.runtime import Runtime
from winmdm.web import agent_routes, enrollment_routes, management_routes, signin_routes, terms_routes, ui
from winmdm.web.api import create_api
from winmdm.web.api.app import PREFIX as API_PREFIX


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _server_error(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("The server failed unexpectedly; the error was logged.", status_code=500)


def create_app(runtime: Runtime) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            *enrollment_routes.routes(),
            *management_routes.routes(),
            *agent_routes.routes(),
            *signin_routes.routes(),
            *terms_routes.routes(),
            Mount(API_PREFIX, app=create_api(runtime)),
            *ui.routes(),  # the admin pages and the end-user enrollment page
        ],
        exception_handlers={500: _server_error},
    )
    app.state.runtime = runtime
    return app

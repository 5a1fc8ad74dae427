"""The web UI: server-rendered pages for admins (Jinja2, plain CSS, a little vanilla JS, no build
step) and the end-user enrollment page. They call the same services as the REST API, so they keep
the same rules and show the same error texts."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from winmdm.web.ui import (
    activity_routes,
    admin_routes,
    auth_routes,
    fleet_routes,
    policy_routes,
    profile_routes,
    query_routes,
    settings_routes,
    team_routes,
)
from winmdm.web.ui.render import STATIC_PREFIX

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    return [
        *auth_routes.routes(),
        *fleet_routes.routes(),
        *query_routes.routes(),
        *team_routes.routes(),
        *profile_routes.routes(),
        *policy_routes.routes(),
        *activity_routes.routes(),
        *settings_routes.routes(),
        *admin_routes.routes(),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static"),
    ]

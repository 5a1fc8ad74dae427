"""The activity feed (docs/api.md "Activities")."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from winmdm.domain.admin import Role
from winmdm.web.api import views
from winmdm.web.api.auth import Endpoints, runtime_of
from winmdm.web.api.params import HostIdQuery, PageQuery, PerPageQuery

api = Endpoints("activities")


@api.get("/activities", Role.OBSERVER)
def list_activities(
    request: Request, page: int = PageQuery, per_page: int = PerPageQuery, host_id: int | None = HostIdQuery
) -> dict[str, Any]:
    found = runtime_of(request).activities.list(page=page, per_page=per_page, host_id=host_id)
    return views.page("activities", [views.activity(a) for a in found.items], found.total, page, per_page)

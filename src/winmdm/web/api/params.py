"""Request shapes shared by several route modules."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict

from winmdm.errors import InvalidInput, MalformedMessage

MAX_PER_PAGE = 500


class Body(BaseModel):
    """Request bodies refuse unknown fields and coerce nothing ("true" is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def team_ref(team_id: int | None, field: str = "team_id") -> int | None:
    """The API's team id (0 or null = No team) -> the services' (None = No team)."""
    if team_id is None or team_id == 0:
        return None
    if team_id < 0:
        raise InvalidInput(f"{field} must be a team id, or 0 for No team", field=field)
    return team_id


PageQuery = Query(1, ge=1, description="page number, from 1")
PerPageQuery = Query(50, ge=1, le=MAX_PER_PAGE, description="items per page (1-500)")


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (for endpoints whose service validates the fields itself, so
    the API, the CLI and GitOps give the same texts), or the API's bad_request error."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage("the body is not valid JSON: send a JSON object") from None
    if not isinstance(body, dict):
        raise MalformedMessage("the body must be a JSON object")
    return body

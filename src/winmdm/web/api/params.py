"""Request shapes shared by several route modules."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from winmdm.errors import MalformedMessage
from winmdm.web.ids import MAX_ID

MAX_PER_PAGE = 500

# Ids are bounded here to what the id columns hold, so an id no row can have is a 422 naming the
# field, never a database error (a 500).
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
PathTeamId = Annotated[int, Path(ge=0, le=MAX_ID, description="a team's id, or 0 for No team")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
BodyTeamId = Annotated[int, Field(ge=0, le=MAX_ID)]


class Body(BaseModel):
    """Request bodies refuse unknown fields and coerce nothing ("true" is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def team_ref(team_id: int | None) -> int | None:
    """The API's team id (0 or null = No team; bounded by PathTeamId, BodyTeamId or TeamQuery) ->
    the services' (None = No team)."""
    return team_id or None


TeamQuery = Query(None, ge=0, le=MAX_ID, description="a team's id, or 0 for No team")
HostIdQuery = Query(None, ge=1, le=MAX_ID, description="only this host's activities")


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

"""The statements behind the fleet views of HostStore (search, status counts) and forgetting a host.

Admin reads, not the check-in hot path: statements are built per call from the filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.fleet import (
    HostFilter,
    HostMDMStatus,
    HostSummary,
    StatusCount,
    TeamFilter,
    TeamScope,
    host_mdm_status,
    stored_states,
)
from winmdm.storage.schema import hosts, teams

_h = hosts.c
# What `query` is looked for in (docs/api.md: display name, serial, IdP username, hardware and
# MDM device id).
_SEARCHED = (_h.display_name, _h.serial, _h.idp_username, _h.hw_dev_id, _h.device_id)
_SUMMARY_COLUMNS = (
    *(_h.id, _h.display_name, _h.serial, _h.os_version, _h.os_edition, _h.team_id),
    *(_h.mdm_status, _h.enrollment_kind, _h.idp_username, _h.last_seen_at, _h.created_at),
    teams.c.name.label("team_name"),
)
_DELETE_HOST = hosts.delete().where(_h.id == sa.bindparam("host_id"))


def team_condition(team: TeamFilter) -> sa.ColumnElement[bool] | None:
    if team is TeamScope.ALL:
        return None
    if team is TeamScope.NO_TEAM:
        return _h.team_id.is_(None)
    return _h.team_id == team


def status_condition(wanted: HostMDMStatus) -> sa.ColumnElement[bool]:
    """The SQL of `host_mdm_status(...) is wanted`, from the rule itself (domain.fleet)."""
    return sa.or_(
        *(
            sa.and_(
                _h.mdm_status == status,
                _h.enrollment_kind.is_(None) if kind is None else _h.enrollment_kind == kind,
            )
            for status, kind in stored_states(wanted)
        )
    )


def query_condition(query: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring anywhere in one of the searched columns; % and _ are literal."""
    return sa.or_(*(column.icontains(query, autoescape=True) for column in _SEARCHED))


def _conditions(filter: HostFilter) -> list[sa.ColumnElement[bool]]:
    found = [team_condition(filter.team)]
    if filter.mdm_status is not None:
        found.append(status_condition(filter.mdm_status))
    if filter.query is not None:
        found.append(query_condition(filter.query))
    return [condition for condition in found if condition is not None]


def _summary(row: Mapping[str, Any]) -> HostSummary:
    return HostSummary(
        id=row["id"],
        display_name=row["display_name"],
        serial=row["serial"],
        os_version=row["os_version"],
        os_edition=row["os_edition"],
        team_id=row["team_id"],
        team_name=row["team_name"],
        mdm_status=host_mdm_status(row["mdm_status"], row["enrollment_kind"]),
        idp_username=row["idp_username"],
        last_seen_at=row["last_seen_at"],
        created_at=row["created_at"],
    )


def search_hosts(conn: Connection, filter: HostFilter) -> tuple[list[HostSummary], int]:
    conditions = _conditions(filter)
    total = conn.execute(sa.select(sa.func.count()).select_from(hosts).where(*conditions)).scalar_one()
    if total <= filter.offset:
        return [], total
    page = (
        sa.select(*_SUMMARY_COLUMNS)
        .select_from(hosts.outerjoin(teams, teams.c.id == _h.team_id))
        .where(*conditions)
        .order_by(_h.id)
        .limit(filter.per_page)
        .offset(filter.offset)
    )
    return [_summary(row._mapping) for row in conn.execute(page)], total


def status_counts(conn: Connection, team: TeamFilter) -> list[StatusCount]:
    grouped = (_h.team_id, _h.mdm_status, _h.enrollment_kind)
    query = sa.select(*grouped, sa.func.count().label("hosts")).group_by(*grouped)
    condition = team_condition(team)
    if condition is not None:
        query = query.where(condition)
    return [
        StatusCount(
            team_id=row.team_id,
            mdm_status=row.mdm_status,
            enrollment_kind=row.enrollment_kind,
            count=row.hosts,
        )
        for row in conn.execute(query)
    ]


def delete_host(conn: Connection, host_id: int) -> bool:
    """The foreign keys (schema.py) take the rest: enrollments, device certificates, queued
    commands, session, profile and agent statuses cascade; activities keep a NULL host id."""
    return conn.execute(_DELETE_HOST, {"host_id": host_id}).rowcount == 1

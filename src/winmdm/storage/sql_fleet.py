"""The statements behind the fleet views of HostStore (search, status counts) and forgetting a host.

Admin reads, not the check-in hot path: statements are built per call from the filter. Counts
come from host_status_counts (schema.py: rows of changes the triggers of revision 0007 keep),
never from counting hosts, so the dashboard and the hosts list's total cost the same at a
million hosts as at ten; only a text search still counts the hosts it matches.
"""

from __future__ import annotations

from collections import Counter
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
from winmdm.storage.schema import host_status_counts, hosts, teams

_h = hosts.c
_n = host_status_counts.c
_GROUP = (_n.team_id, _n.mdm_status, _n.enrollment_kind)
# Readers fold host_status_counts into one row per group once it has more rows than this: sums
# stay a read of at most this many rows plus one per group.
FOLD_ABOVE = 1000
# Any fixed 64-bit number: on PostgreSQL one reader folds at a time, the others just add up.
_FOLD_LOCK_ID = 0x57494E464F4C44  # "WINFOLD"
# What `query` is looked for in (docs/api.md: display name, serial, IdP username, hardware and
# MDM device id).
_SEARCHED = (_h.display_name, _h.serial, _h.idp_username, _h.hw_dev_id, _h.device_id)
_SUMMARY_COLUMNS = (
    *(_h.id, _h.display_name, _h.serial, _h.os_version, _h.os_edition, _h.team_id),
    *(_h.mdm_status, _h.enrollment_kind, _h.idp_username, _h.last_seen_at, _h.created_at),
    teams.c.name.label("team_name"),
)
_DELETE_HOST = hosts.delete().where(_h.id == sa.bindparam("host_id"))


def team_condition(team: TeamFilter, table: sa.Table = hosts) -> sa.ColumnElement[bool] | None:
    """The team filter on hosts, or on host_status_counts (the same column names)."""
    if team is TeamScope.ALL:
        return None
    if team is TeamScope.NO_TEAM:
        return table.c.team_id.is_(None)
    return table.c.team_id == team


def status_condition(wanted: HostMDMStatus, table: sa.Table = hosts) -> sa.ColumnElement[bool]:
    """The SQL of `host_mdm_status(...) is wanted`, from the rule itself (domain.fleet), on hosts
    or on host_status_counts."""
    status_column, kind_column = table.c.mdm_status, table.c.enrollment_kind
    return sa.or_(
        *(
            sa.and_(
                status_column == status,
                kind_column.is_(None) if kind is None else kind_column == kind,
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
    if filter.query is None:  # team and status only: the kept counts know the total
        fold_counts(conn)
        counted = [team_condition(filter.team, host_status_counts)]
        if filter.mdm_status is not None:
            counted.append(status_condition(filter.mdm_status, host_status_counts))
        total_query = sa.select(sa.func.coalesce(sa.func.sum(_n.hosts), 0)).where(
            *(condition for condition in counted if condition is not None)
        )
    else:
        total_query = sa.select(sa.func.count()).select_from(hosts).where(*conditions)
    total = int(conn.execute(total_query).scalar_one())
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
    fold_counts(conn)
    total = sa.func.sum(_n.hosts)
    query = sa.select(*_GROUP, total.label("hosts")).group_by(*_GROUP).having(total > 0)
    condition = team_condition(team, host_status_counts)
    if condition is not None:
        query = query.where(condition)
    return [
        StatusCount(
            team_id=row.team_id,
            mdm_status=row.mdm_status,
            enrollment_kind=row.enrollment_kind,
            count=int(row.hosts),
        )
        for row in conn.execute(query)
    ]


def fold_counts(conn: Connection, *, above: int = FOLD_ABOVE) -> bool:
    """Replace host_status_counts' rows by one per group (none for a group at 0) once there are
    more than `above`; True when it did. The sums are unchanged.

    Only the rows this transaction deletes are added up again (DELETE ... RETURNING): rows that
    concurrent transactions insert meanwhile are left for the next fold. On PostgreSQL a reader
    that finds another folding skips it instead of waiting; on SQLite the transaction is the
    only writer already (BEGIN IMMEDIATE).
    """
    many = sa.select(sa.literal(1)).select_from(host_status_counts).limit(above + 1).subquery()
    if conn.execute(sa.select(sa.func.count()).select_from(many)).scalar_one() <= above:
        return False
    if conn.dialect.name == "postgresql":
        locked = sa.select(sa.func.pg_try_advisory_xact_lock(_FOLD_LOCK_ID))
        if not conn.execute(locked).scalar_one():
            return False
    sums: Counter[tuple[Any, ...]] = Counter()
    for row in conn.execute(host_status_counts.delete().returning(*_GROUP, _n.hosts)):
        sums[(row.team_id, row.mdm_status, row.enrollment_kind)] += row.hosts
    folded = [
        {"team_id": team_id, "mdm_status": status, "enrollment_kind": kind, "hosts": n}
        for (team_id, status, kind), n in sums.items()
        if n
    ]
    if folded:
        conn.execute(host_status_counts.insert(), folded)
    return True


def delete_host(conn: Connection, host_id: int) -> bool:
    """The foreign keys (schema.py) take the rest: enrollments, device certificates, queued
    commands, session, profile and agent statuses cascade; activities keep a NULL host id."""
    return conn.execute(_DELETE_HOST, {"host_id": host_id}).rowcount == 1

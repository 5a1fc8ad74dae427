"""SQL PolicyStore (osquery_protocols.py, docs/policies.md)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.osquery import HostPolicy, Policy, PolicyCounts
from winmdm.storage.schema import hosts, policies, policy_results, teams
from winmdm.storage.sql_rows import execute_unique, team_missing, upsert

_p = sa.bindparam
_c = policies.c
_r = policy_results.c
_INSERT = policies.insert().returning(*policies.c)
_GET = policies.select().where(_c.id == _p("policy_id"))
_TEAM_EXISTS = sa.select(teams.c.id).where(teams.c.id == _p("team_id"))


def _policy(row: Mapping[str, Any]) -> Policy:
    return Policy(**{name: row[name] for name in Policy.__slots__})  # type: ignore[attr-defined]


def _applies(team_id: int | None) -> sa.ColumnElement[bool]:
    """Policies a host of this team runs: the global ones and its team's."""
    if team_id is None:
        return _c.team_id.is_(None)
    return sa.or_(_c.team_id.is_(None), _c.team_id == team_id)


# Each answer with its host and policy.
_ANSWERS = policy_results.join(hosts, hosts.c.id == policy_results.c.host_id).join(
    policies, policies.c.id == policy_results.c.policy_id
)
# The hosts a policy applies to: every host for a global policy, its team's for a team's.
_HOST_IN_SCOPE = sa.or_(policies.c.team_id.is_(None), hosts.c.team_id == policies.c.team_id)


class SQLPolicyStore:
    """PolicyStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, team_id: int | None, name: str, sql: str, *, at: datetime) -> Policy:
        if team_id is not None and self._conn.execute(_TEAM_EXISTS, {"team_id": team_id}).first() is None:
            raise team_missing(team_id)
        values = {
            "team_id": team_id,
            "team_key": team_id or 0,
            "name": name,
            "sql": sql,
            "created_at": at,
            "updated_at": at,
        }
        where = "the global policies" if team_id is None else "this team"
        row = execute_unique(self._conn, _INSERT, values, f"{where} already have a policy named {name!r}")
        assert row is not None
        return _policy(row._mapping)

    def get(self, policy_id: int) -> Policy | None:
        row = self._conn.execute(_GET, {"policy_id": policy_id}).one_or_none()
        return None if row is None else _policy(row._mapping)

    def list(self, team_id: int | None, *, everything: bool = False) -> list[PolicyCounts]:
        counted = (
            sa.select(
                _r.policy_id,
                sa.func.count().filter(_r.passes.is_(True)).label("passing"),
                sa.func.count().filter(_r.passes.is_(False)).label("failing"),
            )
            .select_from(
                policy_results.join(hosts, hosts.c.id == _r.host_id).join(policies, _c.id == _r.policy_id)
            )
            .where(_HOST_IN_SCOPE)
            .group_by(_r.policy_id)
            .subquery()
        )
        query = (
            sa.select(policies, counted.c.passing, counted.c.failing)
            .select_from(policies.outerjoin(counted, counted.c.policy_id == _c.id))
            .order_by(_c.name, _c.id)
        )
        if not everything:
            query = query.where(_c.team_id.is_(None) if team_id is None else _c.team_id == team_id)
        return [
            PolicyCounts(_policy(row._mapping), row.passing or 0, row.failing or 0)
            for row in self._conn.execute(query)
        ]

    def for_team(self, team_id: int | None) -> list[Policy]:
        query = policies.select().where(_applies(team_id)).order_by(_c.id)
        return [_policy(row._mapping) for row in self._conn.execute(query)]

    def delete(self, policy_id: int) -> bool:
        return self._conn.execute(policies.delete().where(_c.id == policy_id)).rowcount == 1

    def record(self, policy_id: int, host_id: int, passes: bool | None, *, at: datetime) -> None:
        values = {"policy_id": policy_id, "host_id": host_id, "passes": passes, "updated_at": at}
        upsert(self._conn, policy_results, values, ("policy_id", "host_id"))

    def failing_hosts(self, policy_id: int, *, limit: int) -> list[tuple[int, str]]:
        query = (
            sa.select(hosts.c.id, hosts.c.display_name)
            .select_from(
                policy_results.join(hosts, hosts.c.id == _r.host_id).join(policies, _c.id == _r.policy_id)
            )
            .where(_r.policy_id == policy_id, _r.passes.is_(False), _HOST_IN_SCOPE)
            .order_by(hosts.c.id)
            .limit(limit)
        )
        return [(row.id, row.display_name) for row in self._conn.execute(query)]

    def for_host(self, host_id: int, team_id: int | None) -> list[HostPolicy]:
        query = (
            sa.select(policies, _r.passes, _r.updated_at.label("answered_at"))
            .select_from(
                policies.outerjoin(policy_results, sa.and_(_r.policy_id == _c.id, _r.host_id == host_id))
            )
            .where(_applies(team_id))
            .order_by(_c.name, _c.id)
        )
        return [
            HostPolicy(_policy(row._mapping), row.passes, row.answered_at)
            for row in self._conn.execute(query)
        ]

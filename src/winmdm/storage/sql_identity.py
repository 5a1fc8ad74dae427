"""SQL TeamStore, EnrollmentTokenStore and EnrollmentSecretStore (identity_protocols.py), and
the statements that fold two host records of one device together (HostStore.merge_into)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.identity import EnrollmentSecret, Team
from winmdm.errors import Conflict
from winmdm.storage.schema import (
    activities,
    device_certificates,
    enrollment_secrets,
    enrollment_tokens_used,
    enrollments,
    host_agent,
    host_commands,
    host_profiles,
    hosts,
    live_queries,
    osquery_nodes,
    policy_results,
    teams,
)
from winmdm.storage.sql_rows import PerDialect, execute_unique, insert_for_dialect, team_missing

# Statements are built once and run with parameter dicts (see sql.py). Parameters of an UPDATE
# are never named after a column of its table (SQLAlchemy would add them to its SET clause).
_p = sa.bindparam
_t = teams.c
_INSERT_TEAM = teams.insert().returning(*teams.c)
_GET_TEAM = teams.select().where(_t.id == _p("team_id"))
_LIST_TEAMS = teams.select()
_SET_END_USER_AUTH = (
    teams.update()
    .where(_t.id == _p("match_id"))
    .values(end_user_auth=_p("new_end_user_auth", type_=sa.Boolean))
    .returning(*teams.c)
)
_TEAM_EXISTS = sa.select(_t.id).where(_t.id == _p("team_id"))
_RENAME_TEAM = teams.update().where(_t.id == _p("match_id")).values(name=_p("new_name")).returning(*teams.c)
# The foreign keys do the rest (schema.py): hosts.team_id SET NULL, profiles and enrollment
# secrets CASCADE (and host_profiles with the profiles).
_DELETE_TEAM = teams.delete().where(_t.id == _p("team_id"))

_u = enrollment_tokens_used.c
# ON CONFLICT DO NOTHING: the primary key decides which of two concurrent uses is the first; the
# other waits for it (PostgreSQL) or for the write lock (SQLite), then inserts nothing.
_CONSUME = PerDialect(
    lambda dialect: (
        insert_for_dialect(dialect, enrollment_tokens_used)
        .on_conflict_do_nothing(index_elements=[_u.token_id])
        .returning(_u.token_id)
    )
)
_PURGE_EXPIRED = enrollment_tokens_used.delete().where(_u.expires_at < _p("now", type_=_u.expires_at.type))

_s = enrollment_secrets.c
_INSERT_SECRET = PerDialect(
    lambda dialect: (
        insert_for_dialect(dialect, enrollment_secrets)
        .on_conflict_do_nothing(index_elements=[_s.secret_hash])
        .returning(*enrollment_secrets.c)
    )
)
_FIND_ACTIVE_SECRET = enrollment_secrets.select().where(
    _s.secret_hash == _p("secret_hash"), _s.revoked_at.is_(None)
)
_SECRETS_BY_AGE = enrollment_secrets.select().order_by(_s.created_at, _s.id)
_SECRETS_OF_NO_TEAM = _SECRETS_BY_AGE.where(_s.team_id.is_(None))
_SECRETS_OF_TEAM = _SECRETS_BY_AGE.where(_s.team_id == _p("team_id"))
_REVOKE_SECRET = (
    enrollment_secrets.update()
    .where(_s.id == _p("match_id"), _s.revoked_at.is_(None))
    .values(revoked_at=_p("new_revoked_at", type_=_s.revoked_at.type))
)


def _team(row: Mapping[str, Any]) -> Team:
    return Team(
        id=row["id"],
        name=row["name"],
        end_user_auth=bool(row["end_user_auth"]),
        created_at=row["created_at"],
    )


def _secret(row: Mapping[str, Any]) -> EnrollmentSecret:
    return EnrollmentSecret(
        id=row["id"],
        team_id=row["team_id"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _name_taken(name: str) -> str:
    return f'a team named "{name}" already exists; choose another name or use that team'


class SQLTeamStore:
    """TeamStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, name: str, *, at: datetime, end_user_auth: bool = False) -> Team:
        values = {"name": name, "created_at": at, "end_user_auth": end_user_auth}
        row = execute_unique(self._conn, _INSERT_TEAM, values, _name_taken(name))
        assert row is not None  # INSERT ... RETURNING
        return _team(row._mapping)

    def get(self, team_id: int) -> Team | None:
        row = self._conn.execute(_GET_TEAM, {"team_id": team_id}).one_or_none()
        return None if row is None else _team(row._mapping)

    def list(self) -> list[Team]:
        # Sorted here, not by ORDER BY: the two backends collate text differently, and there are
        # few teams. Case-insensitive first, so "alpha" sorts next to "Alpha".
        found = [_team(row._mapping) for row in self._conn.execute(_LIST_TEAMS)]
        return sorted(found, key=lambda team: (team.name.casefold(), team.name, team.id))

    def set_end_user_auth(self, team_id: int, enabled: bool) -> Team:
        row = self._conn.execute(
            _SET_END_USER_AUTH, {"match_id": team_id, "new_end_user_auth": enabled}
        ).one_or_none()
        if row is None:
            raise team_missing(team_id)
        return _team(row._mapping)

    def rename(self, team_id: int, name: str) -> Team:
        row = execute_unique(
            self._conn, _RENAME_TEAM, {"match_id": team_id, "new_name": name}, _name_taken(name)
        )
        if row is None:
            raise team_missing(team_id)
        return _team(row._mapping)

    def delete(self, team_id: int) -> bool:
        return self._conn.execute(_DELETE_TEAM, {"team_id": team_id}).rowcount == 1


class SQLEnrollmentTokenStore:
    """EnrollmentTokenStore on one connection: the ids of enrollment tokens already used."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def consume(self, token_id: str, *, expires_at: datetime, at: datetime) -> bool:
        row = self._conn.execute(
            _CONSUME(self._conn), {"token_id": token_id, "expires_at": expires_at, "used_at": at}
        ).one_or_none()
        return row is not None

    def purge_expired(self, now: datetime) -> int:
        """Tokens whose expiry is before `now`; pass now minus any leeway the verifier allows, or
        a token still accepted could be used a second time."""
        return self._conn.execute(_PURGE_EXPIRED, {"now": now}).rowcount


class SQLEnrollmentSecretStore:
    """EnrollmentSecretStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, team_id: int | None, secret_hash: str, *, at: datetime) -> EnrollmentSecret:
        # Asked first: a foreign key failure would abort the transaction on PostgreSQL.
        if team_id is not None and self._conn.execute(_TEAM_EXISTS, {"team_id": team_id}).first() is None:
            raise team_missing(team_id)
        row = self._conn.execute(
            _INSERT_SECRET(self._conn),
            {"team_id": team_id, "secret_hash": secret_hash, "created_at": at, "revoked_at": None},
        ).one_or_none()
        if row is None:
            # Secrets are random: the same hash twice is a bug, or a secret reused on purpose.
            raise Conflict("this enrollment secret is already stored; generate a new one")
        return _secret(row._mapping)

    def find_active(self, secret_hash: str) -> EnrollmentSecret | None:
        row = self._conn.execute(_FIND_ACTIVE_SECRET, {"secret_hash": secret_hash}).one_or_none()
        return None if row is None else _secret(row._mapping)

    def list(self, team_id: int | None) -> list[EnrollmentSecret]:
        if team_id is None:
            rows = self._conn.execute(_SECRETS_OF_NO_TEAM)
        else:
            rows = self._conn.execute(_SECRETS_OF_TEAM, {"team_id": team_id})
        return [_secret(row._mapping) for row in rows]

    def revoke(self, secret_id: int, at: datetime) -> bool:
        result = self._conn.execute(_REVOKE_SECRET, {"match_id": secret_id, "new_revoked_at": at})
        return result.rowcount == 1


# --- merging hosts -----------------------------------------------------------------------------

# merge_into: the source is the newer record of the same device, so what it knows wins and the
# target keeps who it is (id, uuid, team, created_at). _SOURCE/_TARGET are used in several places
# of one statement; their names are no column's.
_SOURCE = _p("source_id", type_=sa.Integer)
_TARGET = _p("target_id", type_=sa.Integer)
_source_host = hosts.alias("source_host")
_MERGED_HOST_COLUMNS = (
    *("display_name", "hw_dev_id", "device_id", "serial", "mdm_status", "os_version", "os_edition"),
    *("idp_username", "last_seen_at", "manufacturer", "model", "language", "dm_version"),
    *("enrollment_kind", "entra_device_id"),
)
# UPDATE ... FROM (SQLite 3.33+): no row when either host is missing. The ids differing is the
# join condition (SQLAlchemy warns about a FROM without one) and true for any two hosts.
_MERGE_HOST = (
    hosts.update()
    .where(hosts.c.id == _TARGET, _source_host.c.id == _SOURCE, _source_host.c.id != hosts.c.id)
    .values(
        {name: sa.func.coalesce(_source_host.c[name], hosts.c[name]) for name in _MERGED_HOST_COLUMNS}
        | {"updated_at": _p("new_updated_at", type_=hosts.c.updated_at.type)}
    )
)


def _moved(table: sa.Table) -> sa.Update:
    return table.update().where(table.c.host_id == _SOURCE).values(host_id=_TARGET)


def _replaced_by_source(table: sa.Table, *keys: str) -> sa.Delete:
    """Delete the target's rows that the source has a row for (same keys besides host_id)."""
    theirs = table.alias(f"source_{table.name}")
    return table.delete().where(
        table.c.host_id == _TARGET,
        sa.exists().where(theirs.c.host_id == _SOURCE, *(theirs.c[key] == table.c[key] for key in keys)),
    )


_target_queue = host_commands.alias("target_queue")
_MERGE_STATEMENTS = (
    _moved(enrollments),
    _moved(device_certificates),
    # A command queued for both stays the target's; the source's copy goes with the source host.
    _moved(host_commands).where(
        ~sa.exists().where(
            _target_queue.c.host_id == _TARGET,
            _target_queue.c.command_id == host_commands.c.command_id,
        )
    ),
    _replaced_by_source(host_profiles, "profile_id"),
    _moved(host_profiles),
    _replaced_by_source(host_agent),
    _moved(host_agent),
    _moved(activities),
    # One osquery node per host: the source's replaces the target's, as host_agent's does.
    _replaced_by_source(osquery_nodes),
    _moved(osquery_nodes),
    _moved(live_queries),
    _replaced_by_source(policy_results, "policy_id"),
    _moved(policy_results),
    hosts.delete().where(hosts.c.id == _SOURCE),
)


def merge_hosts(conn: Connection, source_id: int, target_id: int, at: datetime) -> bool:
    """HostStore.merge_into's statements; False (and nothing done) when either host is missing."""
    params = {"source_id": source_id, "target_id": target_id}
    if conn.execute(_MERGE_HOST, {**params, "new_updated_at": at}).rowcount != 1:
        return False
    for statement in _MERGE_STATEMENTS:
        conn.execute(statement, params)
    return True
